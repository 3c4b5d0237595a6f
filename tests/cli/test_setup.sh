#!/bin/bash
# quilt-cli's setup progress display (src/cli/progress.c) against a real
# quiltd: `sh:` setup steps on the built-in busybox image, so no registry is
# needed. Plain lines when stderr is not a terminal, nothing extra with
# --json, a redrawn status line on a terminal (a pty, python's pty module).
#
# usage: tests/cli/test_setup.sh PATH/TO/quilt-cli PATH/TO/quiltd
# Needs root. Exits 0 when all pass, 1 on any failure, 77 when not root.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cli_init setup-cli "${1:-}" "${2:-}"

q() {
  "$CLI" --socket "$SOCK" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
  rc=$?
  out=$(cat "$TMP/out")
  err=$(cat "$TMP/err")
}

want_no_err_line() { ! grep -qxF -- "$1" "$TMP/err" || problems+=("stderr has the line: $1" "stderr: $err"); }
want_err_re() { grep -qE -- "$1" "$TMP/err" || problems+=("stderr lacks /$1/" "stderr: $err"); }

"$QUILTD" --socket "$SOCK" --root "$TMP/root" >"$TMP/quiltd.log" 2>&1 &
DAEMON_PID=$!
if ! "$CLI" --socket "$SOCK" --timeout 15 health --wait >/dev/null 2>&1; then
  echo "not ok - quiltd did not start"
  cat "$TMP/quiltd.log"
  exit 1
fi

S1='sh: echo one; sleep 0.3; echo two'
S2='sh: echo three'

begin "run --setup: one plain line per step start and end, then the summary"
q run --rm --setup "$S1" --setup "$S2" -- echo hello
want_rc 0; want_out_is hello
want_err "setup: step 1/2: $S1"
want_err_re '^setup: step 1/2 done in [0-9]+\.[0-9] s$'
want_err "setup: step 2/2: $S2"
want_err_re '^setup: step 2/2 done in [0-9]+\.[0-9] s$'
want_err_re '^setup: done in [0-9]+\.[0-9] s \(layer cached: [0-9a-f]{12}\)$'
# The steps' own output stays in the log, off the terminal.
want_no_err_line one; want_no_err_line three
[ "$(wc -l <"$TMP/err")" = 5 ] || problems+=("want 5 lines on stderr, got: $err")
end

begin "the same steps again: the cached layer, nothing run"
q run --rm --setup "$S1" --setup "$S2" -- echo hello
want_rc 0; want_out_is hello
want_err_re '^setup: reused cached layer [0-9a-f]{12}$'
[ "$(wc -l <"$TMP/err")" = 1 ] || problems+=("want 1 line on stderr, got: $err")
end

begin "a failing step: the step, its exit code and its last lines"
q run --rm --setup 'sh: echo bad; echo worse >&2; exit 3' -- echo hello
want_rc 125; want_out_is ""
want_err "setup: step 1/1 (sh: echo bad; echo worse >&2; exit 3) failed with exit code 3 after"
want_err "  | bad"
want_err "  | worse"
want_err "quilt-cli: run: FAILED_PRECONDITION: setup step 1/1"
end

begin "a manager the image lacks: the step and why"
q run --rm --setup 'npm: left-pad' -- true
want_rc 125
want_err "setup: step 1/1 (npm: left-pad) failed with exit code 90"
want_err "  | quilt-setup: npm is not in the image"
end

begin "--json: JSON Lines on stdout, nothing on stderr"
q run --rm --json --setup 'sh: echo js' -- echo hi
want_rc 0; want_no_err
"$PY" -m json.tool --json-lines "$TMP/out" >/dev/null 2>&1 || problems+=("stdout is not JSON Lines: $out")
want_out '"stream":"LOG_STREAM_SETUP"'
end

begin "create --start: the id on stdout, the progress on stderr; logs keep the output"
q create --start --name cs --setup 'sh: echo made-by-setup' -- sleep 30
want_rc 0; want_out_re '^[0-9a-f]{64}$'
want_err "setup: step 1/1: sh: echo made-by-setup"
want_err_re '^setup: done in '
q logs cs
want_rc 0; want_err_re '^made-by-setup$'
q rm -f cs
end

begin "create --start --json: the container as JSON, nothing on stderr"
q create --start --json --name cj --setup 'sh: echo x' -- sleep 30
want_rc 0; want_no_err; want_json_doc
want_json 'd["state"] == "CONTAINER_STATE_RUNNING" and len(d["setup_layer"]) == 64'
q rm -f cj
end

begin "on a terminal: a status line redrawn in place, then the summary"
"$PY" - "$CLI" "$SOCK" >"$TMP/out" 2>"$TMP/err" <<'EOF'
import os, pty, sys
cli, sock = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(cli, [cli, "--socket", sock, "run", "--rm", "--setup",
                   "sh: for i in 1 2 3; do echo line $i; sleep 0.4; done", "--", "echo", "hello"])
out = b""
while True:
    try:
        d = os.read(fd, 4096)
    except OSError:
        break
    if not d:
        break
    out += d
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace").replace("\r", "<CR>").replace("\x1b", "<ESC>"))
sys.exit(os.waitstatus_to_exitcode(status))
EOF
rc=$?
out=$(cat "$TMP/out")
want_rc 0
want_out '<CR><ESC>[K[1/1 '
want_out 's] sh: for i in 1 2 3; do echo line $i; sleep 0.4; done | line 2'
want_out 'setup: step 1/1 done in '
want_out_re '^setup: done in [0-9.]+ s \(layer cached: [0-9a-f]{12}\)<CR>$'
want_out 'hello'
end

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

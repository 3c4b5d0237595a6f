#!/bin/bash
# End-to-end tests of quilt-cli against tests/cli/fake_server.py (grpcio and a
# raw HTTP/2 responder): options, output, errors, deadlines, streaming.
#
# usage: tests/cli/test_cli.sh PATH/TO/quilt-cli    (or QUILT_CLI=... in env)
# Exits 0 when all pass, 1 on any failure, 77 (skip) without python3-grpcio.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
CLI=${1:-${QUILT_CLI:-}}
# Debian's interpreter: the one on PATH may be a build without python3-grpcio.
PY=/usr/bin/python3
GRPC_PROTO_DIR=${GRPC_PROTO_DIR:-/usr/share/grpc-proto}

if [ -z "$CLI" ] || [ ! -x "$CLI" ]; then
  echo "usage: $0 PATH/TO/quilt-cli" >&2
  exit 2
fi
CLI=$(cd "$(dirname "$CLI")" && pwd)/$(basename "$CLI")
if ! "$PY" -c 'import grpc, grpc_tools' 2>/dev/null; then
  echo "SKIP: $PY lacks grpc/grpc_tools (apt-get install python3-grpcio python3-grpc-tools)"
  exit 77
fi

TMP=$(mktemp -d /tmp/quilt-cli-test.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
unset QUILT_SOCKET QUILT_HOST QUILT_TOKEN_FILE

# ---------------------------------------------------------------- helpers

pass=0
fail=0
name=
problems=()

# run ARGS...: runs quilt-cli; sets rc, out, err, ms (wall time).
run() {
  local t0
  t0=$(date +%s%N)
  "$CLI" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
  rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  out=$(cat "$TMP/out")
  err=$(cat "$TMP/err")
}

want_rc() { [ "$rc" = "$1" ] || problems+=("exit code $rc, want $1"); }
want_out() { grep -qF -- "$1" "$TMP/out" || problems+=("stdout lacks: $1"); }
want_err() { grep -qF -- "$1" "$TMP/err" || problems+=("stderr lacks: $1"); }
want_faster() { [ "$ms" -lt "$1" ] || problems+=("took ${ms}ms, want < $1ms"); }
want_log() { grep -qF -- "$1" "$TMP/log" || problems+=("server log lacks: $1"); }

# wait_ready FILE PID: until the fake server wrote FILE (stub generation
# takes a moment); fails when the server died.
wait_ready() {
  for _ in $(seq 300); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# start_grpc SOCKET READYFILE: a grpcio fake quiltd in the background.
start_grpc() {
  "$PY" "$HERE/fake_server.py" --unix "$1" --ready "$2" --proto-dir "$SRC/proto" \
    --grpc-proto-dir "$GRPC_PROTO_DIR" --mode-file "$TMP/mode" --log "$TMP/log" \
    2>>"$TMP/server.err" &
  PIDS+=($!)
}

# ---------------------------------------------------------------- servers

echo ok >"$TMP/mode"
: >"$TMP/log"
SOCK=$TMP/quiltd.sock
start_grpc "$SOCK" "$TMP/ready"
GRPC_PID=${PIDS[-1]}
mkdir "$TMP/raw"
"$PY" "$HERE/fake_server.py" --raw-dir "$TMP/raw" --ready "$TMP/raw-ready" \
  --proto-dir "$SRC/proto" --grpc-proto-dir "$GRPC_PROTO_DIR" --log "$TMP/log" \
  2>>"$TMP/server.err" &
PIDS+=($!)
RAW_PID=$!
if ! wait_ready "$TMP/ready" "$GRPC_PID" || ! wait_ready "$TMP/raw-ready" "$RAW_PID"; then
  echo "not ok - fake servers did not start"
  cat "$TMP/server.err"
  exit 1
fi
PORT=$(cat "$TMP/ready")

# ---------------------------------------------------------------- command line

begin "--help lists the commands"
run --help
want_rc 0; want_out "Usage: quilt-cli"; want_out "  info "; want_out "  health "; want_no_err
end

begin "CMD --help prints that command's usage"
run info --help
want_rc 0; want_out "Usage: quilt-cli info"; want_no_err
run help health
want_rc 0; want_out "Usage: quilt-cli health"
end

begin "--version"
run --version
want_rc 0; want_out_is "quilt-cli 0.1.0"
end

begin "unknown command: one line, exit 2"
run foo
want_rc 2; want_err_is "quilt-cli: unknown command 'foo' (see quilt-cli --help)"
end

begin "bad global flag: one line, exit 2"
run --bogus info
want_rc 2; want_err_is "quilt-cli: unknown option '--bogus' (see quilt-cli --help)"
run --timeout
want_rc 2; want_err_is "quilt-cli: option '--timeout' needs a value (see quilt-cli --help)"
run --timeout soon info
want_rc 2; want_err "invalid --timeout 'soon'"
run --host http://localhost:80 info
want_rc 2; want_err "invalid daemon address 'http://localhost:80'"
end

begin "bad command flag or argument: one line, exit 2"
run info --frob
want_rc 2; want_err_is "quilt-cli: info: unknown option '--frob' (see quilt-cli info --help)"
run info extra
want_rc 2; want_err_is "quilt-cli: info: unexpected argument 'extra' (see quilt-cli info --help)"
run health --service
want_rc 2; want_err_is "quilt-cli: health: option '--service' needs a value (see quilt-cli health --help)"
end

begin "no command: usage on stderr, exit 2"
run
want_rc 2; want_err "Usage: quilt-cli"
end

# ---------------------------------------------------------------- reaching the daemon

begin "missing socket: one clear line, exit 1"
run --socket "$TMP/missing.sock" info
want_rc 1
want_err_is "quilt-cli: cannot reach quiltd at $TMP/missing.sock: No such file or directory (is the daemon running? start it with: quiltd)"
end

begin "refused socket: same hint"
"$PY" -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$TMP/dead.sock"
run --socket "$TMP/dead.sock" health
want_rc 1
want_err_is "quilt-cli: cannot reach quiltd at $TMP/dead.sock: Connection refused (is the daemon running? start it with: quiltd)"
end

begin "QUILT_SOCKET is used; flags override it"
QUILT_SOCKET=$SOCK run health
want_rc 0; want_out_is "SERVING"
QUILT_SOCKET=$TMP/missing.sock run --socket "$SOCK" health
want_rc 0; want_out_is "SERVING"
QUILT_SOCKET=$TMP/missing.sock run health
want_rc 1; want_err "cannot reach quiltd at $TMP/missing.sock"
end

begin "address forms: unix://, unix:, plain path, tcp://"
run --host "unix://$SOCK" health
want_rc 0; want_out_is "SERVING"
run --host "unix:$SOCK" health
want_rc 0; want_out_is "SERVING"
run -H "$SOCK" health
want_rc 0; want_out_is "SERVING"
run --host "tcp://127.0.0.1:$PORT" health
want_rc 0; want_out_is "SERVING"
run --host "tcp://localhost:$PORT" info
want_rc 0; want_out "Version:"
end

# ---------------------------------------------------------------- info

begin "info: human key/value lines"
run --socket "$SOCK" info
want_rc 0; want_no_err
want_out "Version:         0.1.0-fake"
want_out "Containers:      5 (2 running)"
want_out "Uptime:          1h 2m"
want_out "io_uring:        IORING_OP_ACCEPT, IORING_FEAT_FAST_POLL"
want_log "GetSystemInfo mode=ok timeout=yes ua=quilt-cli/"
end

begin "info --json: one JSON object (global flag or after the command)"
run --socket "$SOCK" --json info
want_rc 0
want_json 'd["version"] == "0.1.0-fake" and d["pid"] == 4242 and d["uptime_seconds"] == 3725'
want_json 'd["root_dir"] == "/var/lib/quilt \"test\""'
want_json 'd["io_uring_features"] == ["IORING_OP_ACCEPT", "IORING_FEAT_FAST_POLL"]'
run --socket "$SOCK" info --json
want_rc 0; want_json 'd["containers_total"] == 5'
end

begin "Trailers-Only error: status name and percent-decoded UTF-8 message"
echo notfound >"$TMP/mode"
run --socket "$SOCK" info
want_rc 1; want_out_is ""
want_err_is "quilt-cli: info: NOT_FOUND: no such service 'info': 100% missing — ümläut ✓"
end

begin "error without grpc-message: status name only"
echo empty-error >"$TMP/mode"
run --socket "$SOCK" info
want_rc 1; want_err_is "quilt-cli: info: PERMISSION_DENIED"
end

begin "deadline: --timeout bounds a slow call"
echo slow >"$TMP/mode"
run --socket "$SOCK" --timeout 0.5 info
want_rc 1; want_err "quilt-cli: info: DEADLINE_EXCEEDED: "; want_faster 3000
echo ok >"$TMP/mode"
end

# ---------------------------------------------------------------- health

begin "health: SERVING exits 0, NOT_SERVING exits 1"
run --socket "$SOCK" health
want_rc 0; want_out_is "SERVING"; want_log "Check service=''"
run --socket "$SOCK" health --service down
want_rc 1; want_out_is "NOT_SERVING"
end

begin "health --json"
run --socket "$SOCK" --json health -s quilt.v1.Quilt
want_rc 0; want_json 'd == {"service": "quilt.v1.Quilt", "status": "SERVING", "serving": True}'
run --socket "$SOCK" health --service down --json
want_rc 1; want_json 'd["status"] == "NOT_SERVING" and d["serving"] is False'
end

begin "health of an unknown service: gRPC error"
run --socket "$SOCK" health --service 'ghost%20'
want_rc 1
want_err_is "quilt-cli: health: NOT_FOUND: no such service 'ghost%20': 100% missing — ümläut ✓"
end

begin "daemon messages: control characters neutralised, long UTF-8 cut cleanly"
run --socket "$SOCK" health -s ctrl
want_rc 1; want_err_is "quilt-cli: health: INTERNAL: bad?[31mred?line2"
run --socket "$SOCK" health -s long
want_rc 1; want_err "quilt-cli: health: INTERNAL: ééé"
"$PY" -c 'import sys; open(sys.argv[1], encoding="utf-8", errors="strict").read()' "$TMP/err" \
  2>/dev/null || problems+=("stderr is not valid UTF-8")
end

begin "health deadline"
run --socket "$SOCK" --timeout 0.3 health -s slow
want_rc 1; want_err "quilt-cli: health: DEADLINE_EXCEEDED"; want_faster 3000
end

begin "health --wait: streams Watch, cancels once SERVING"
run --socket "$SOCK" --timeout 10 health --wait
want_rc 0; want_out_is "SERVING"; want_faster 5000
sleep 0.3 # the server notices the RST_STREAM asynchronously
want_log "watch cancelled service=''"
end

begin "health --wait falls back to Check without Watch"
run --socket "$SOCK" --timeout 10 health --wait -s nowatch
want_rc 0; want_out_is "SERVING"; want_log "Check service='nowatch'"
end

begin "health --wait gives up at the deadline"
run --socket "$SOCK" --timeout 1 health --wait -s down
want_rc 1; want_faster 4000
want_err_is "quilt-cli: health: DEADLINE_EXCEEDED: not SERVING within 1s (last status: NOT_SERVING)"
end

begin "health --wait waits for the daemon to start"
"$CLI" --socket "$TMP/late.sock" --timeout 30 health --wait >"$TMP/late.out" 2>"$TMP/late.err" &
late_cli=$!
sleep 1
start_grpc "$TMP/late.sock" "$TMP/late-ready"
wait "$late_cli"
rc=$?
want_rc 0
[ "$(cat "$TMP/late.out")" = SERVING ] || problems+=("stdout: $(cat "$TMP/late.out" "$TMP/late.err")")
end

# ---------------------------------------------------------------- protocol edge cases

begin "message split across 1-byte DATA frames is reassembled"
run --socket "$TMP/raw/split.sock" --json info
want_rc 0; want_json 'd["version"] == "0.1.0-fake"'
end

begin "non-200 :status maps to a gRPC status"
run --socket "$TMP/raw/http503.sock" info
want_rc 1; want_err_is "quilt-cli: info: UNAVAILABLE: quiltd answered HTTP 503 instead of gRPC"
end

begin "missing grpc-status is INTERNAL"
run --socket "$TMP/raw/nostatus.sock" info
want_rc 1; want_err_is "quilt-cli: info: INTERNAL: quiltd's answer has no grpc-status"
end

begin "RST_STREAM REFUSED_STREAM is UNAVAILABLE"
run --socket "$TMP/raw/rst.sock" info
want_rc 1; want_err_is "quilt-cli: info: UNAVAILABLE: quiltd reset the call (REFUSED_STREAM)"
end

begin "connection closed mid-call is UNAVAILABLE"
run --socket "$TMP/raw/close.sock" info
want_rc 1; want_err "quilt-cli: info: UNAVAILABLE: "
end

begin "local deadline on a server that never answers; the call is reset"
run --socket "$TMP/raw/hang.sock" --timeout 0.5 info
want_rc 1; want_faster 3000
want_err_is "quilt-cli: info: DEADLINE_EXCEEDED: no answer from quiltd within 0.5s"
sleep 0.2
want_log "raw rst from client stream=1 code=8"
end

begin "HTTP/1 server is recognised"
run --socket "$TMP/raw/http1.sock" info
# Seen while connecting or during the call, depending on timing.
want_rc 1; want_err "quilt-cli: "; want_err "$TMP/raw/http1.sock answered with HTTP/1, not gRPC over HTTP/2"
[ "$(wc -l <"$TMP/err")" = 1 ] || problems+=("want one line on stderr")
end

begin "two messages for a unary call is INTERNAL"
run --socket "$TMP/raw/twomsgs.sock" info
want_rc 1; want_err_is "quilt-cli: info: INTERNAL: quiltd sent more than one message for a unary call"
end

begin "oversize message is RESOURCE_EXHAUSTED"
run --socket "$TMP/raw/huge.sock" info
want_rc 1; want_err "quilt-cli: info: RESOURCE_EXHAUSTED: "
end

begin "several stream messages in one DATA frame; callback stops the stream"
run --socket "$TMP/raw/stream.sock" --timeout 5 health --wait
want_rc 0; want_out_is "SERVING"; want_faster 3000
end

# cp unpacks what a container's root may have crafted: nothing may land
# outside the destination.
mkdir -p "$TMP/cp/victim" "$TMP/cp/dest"
for kind in through-symlink dotdot absolute; do
  begin "cp refuses a crafted archive ($kind)"
  run --socket "$SOCK" cp "c:/$kind" "$TMP/cp/dest/out-$kind"
  want_rc 1; want_one_err_line; want_err "quilt-cli: cp: "
  [ -z "$(ls "$TMP/cp/victim")" ] || problems+=("landed in the victim dir: $(ls "$TMP/cp/victim")")
  [ ! -e "$TMP/cp/pwned" ] && [ ! -e "$TMP/pwned" ] && [ ! -e /tmp/quilt-fake-pwned ] ||
    problems+=("landed outside the destination")
  end
done
rm -f /tmp/quilt-fake-pwned

begin "cp skips device nodes out of a container"
run --socket "$SOCK" cp c:/device "$TMP/cp/dest/dev"
want_rc 0; want_err "skipping device node evil/sda"
[ ! -e "$TMP/cp/dest/dev/sda" ] || problems+=("the device node was made")
[ "$(cat "$TMP/cp/dest/dev/after" 2>/dev/null)" = after ] || problems+=("the next entry is missing")
end

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

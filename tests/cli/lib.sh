# Shared assertions for the quilt-cli shell tests, sourced by test_*.sh.
# A test is `begin NAME`, any number of want_* checks on the last command's
# $rc, $out/$err (and $TMP/out, $TMP/err), then `end`; the script keeps the
# counters $pass/$fail and prints "N passed, N failed" itself. Needs $TMP and
# $PY (/usr/bin/python3) set by the script.

begin() {
  name=$1
  problems=()
}

want_rc() { [ "$rc" = "$1" ] || problems+=("exit code $rc, want $1" "stderr: $err"); }

want_out() { grep -qF -- "$1" "$TMP/out" || problems+=("stdout lacks: $1" "stdout: $out"); }

want_out_is() { [ "$out" = "$1" ] || problems+=("stdout: $out" "want:   $1"); }

want_out_re() { grep -qE -- "$1" "$TMP/out" || problems+=("stdout lacks /$1/" "stdout: $out"); }

want_err() { grep -qF -- "$1" "$TMP/err" || problems+=("stderr lacks: $1" "stderr: $err"); }

want_err_is() { [ "$err" = "$1" ] || problems+=("stderr: $err" "want:   $1"); }

want_no_err() { [ -z "$err" ] || problems+=("unexpected stderr: $err"); }

want_one_err_line() {
  [ "$(wc -l <"$TMP/err")" = 1 ] || problems+=("want one line on stderr, got: $err")
}

# want_json PYTHON-EXPR: evaluated with d = the parsed stdout.
want_json() {
  "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($1) else 1)" \
    "$TMP/out" 2>/dev/null || problems+=("JSON check failed: $1" "stdout: $out")
}

# stdout is one JSON document / JSON Lines, as json.tool sees it.
want_json_doc() {
  "$PY" -m json.tool "$TMP/out" >/dev/null 2>&1 || problems+=("stdout is not JSON: $out")
}

end() {
  if [ ${#problems[@]} -eq 0 ]; then
    pass=$((pass + 1))
    echo "ok - $name"
  else
    fail=$((fail + 1))
    echo "not ok - $name"
    printf '    %s\n' "${problems[@]}"
  fi
}

# cli_init TAG CLI QUILTD: the start every script against a real quiltd
# shares. Exits 2 on bad usage and 77 (skip) when not root; sets CLI and
# QUILTD (absolute paths), PY, TMP (/tmp/quilt-TAG-test.XXXXXX), SOCK,
# DAEMON_PID (the script's quiltd, once started), PIDS (other background
# processes) and the counters; clears the client's environment. On exit:
# PIDS killed, quiltd stopped (SIGTERM, SIGKILL after 5 s), whatever is
# still mounted under TMP unmounted (quiltd's scratch tmpfs when it was
# killed; never follow a mount into the host's files), TMP removed, then
# cli_cleanup_extra if the script defines it.
cli_init() {
  local tag=$1
  CLI=${2:-}
  QUILTD=${3:-}
  PY=/usr/bin/python3
  if [ -z "$CLI" ] || [ ! -x "$CLI" ] || [ -z "$QUILTD" ] || [ ! -x "$QUILTD" ]; then
    echo "usage: $0 PATH/TO/quilt-cli PATH/TO/quiltd" >&2
    exit 2
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "SKIP: needs root to run quiltd and containers"
    exit 77
  fi
  CLI=$(cd "$(dirname "$CLI")" && pwd)/$(basename "$CLI")
  QUILTD=$(cd "$(dirname "$QUILTD")" && pwd)/$(basename "$QUILTD")
  TMP=$(mktemp -d "/tmp/quilt-$tag-test.XXXXXX")
  SOCK=$TMP/quiltd.sock
  DAEMON_PID=
  PIDS=()
  trap cli_cleanup EXIT
  trap 'exit 130' INT TERM
  unset QUILT_SOCKET QUILT_HOST QUILT_TOKEN_FILE
  pass=0
  fail=0
  name=
  problems=()
}

cli_cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  if [ -n "$DAEMON_PID" ]; then
    kill "$DAEMON_PID" 2>/dev/null
    # quiltd kills its containers on the way out; give it a moment.
    for _ in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$DAEMON_PID" 2>/dev/null
  fi
  wait 2>/dev/null
  grep -o " $TMP/[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf --one-file-system "$TMP"
  if declare -F cli_cleanup_extra >/dev/null; then cli_cleanup_extra; fi
}

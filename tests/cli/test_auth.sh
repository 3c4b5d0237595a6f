#!/bin/bash
# quilt-cli against a quiltd whose TCP listener needs a bearer token:
# --host tcp:// with --token-file (or QUILT_HOST / QUILT_TOKEN_FILE), the
# one-line "unauthenticated" error and its exit status, health without a
# token, and token files quilt-cli refuses to read.
#
# usage: tests/cli/test_auth.sh PATH/TO/quilt-cli PATH/TO/quiltd
# Exits 0 when all pass, 1 on any failure, 77 (skip) when not root.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cli_init cli-auth "${1:-}" "${2:-}"

# qq ARGS...: quilt-cli as given; sets rc, out, err.
qq() {
  "$CLI" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
  rc=$?
  out=$(cat "$TMP/out")
  err=$(cat "$TMP/err")
}

# ---------------------------------------------------------------- daemon

TOKEN=$TMP/token
head -c 32 /dev/urandom | base64 >"$TOKEN"
chmod 600 "$TOKEN"
printf 'not-the-right-token-at-all\n' >"$TMP/wrong"
chmod 600 "$TMP/wrong"
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HOST=tcp://127.0.0.1:$PORT
"$QUILTD" --socket "$SOCK" --listen "127.0.0.1:$PORT" --auth-token-file "$TOKEN" \
  --root "$TMP/root" --warm-pool 0 >"$TMP/quiltd.log" 2>&1 &
DAEMON_PID=$!
if ! "$CLI" --host "$HOST" --timeout 15 health --wait >/dev/null 2>&1; then
  echo "not ok - quiltd did not start"
  cat "$TMP/quiltd.log"
  echo "0 passed, 1 failed"
  exit 1
fi

# ---------------------------------------------------------------- tests

HINT="give --token-file PATH (or set QUILT_TOKEN_FILE) with the token quiltd reads from --auth-token-file"

begin "--host tcp:// with --token-file is served"
qq --host "$HOST" --token-file "$TOKEN" info
want_rc 0; want_out "Version:"; want_no_err
qq --host "$HOST" --token-file "$TOKEN" ps -a
want_rc 0; want_out "ID"
qq -H "$HOST" --token-file="$TOKEN" --json info
want_rc 0; want_json_doc
end

begin "QUILT_HOST and QUILT_TOKEN_FILE"
QUILT_HOST=$HOST QUILT_TOKEN_FILE=$TOKEN qq info
want_rc 0; want_out "Version:"
# Flags beat the environment.
QUILT_HOST=tcp://127.0.0.1:1 QUILT_TOKEN_FILE=$TMP/wrong qq --host "$HOST" --token-file "$TOKEN" info
want_rc 0
QUILT_HOST=$HOST QUILT_SOCKET=$TMP/nope.sock QUILT_TOKEN_FILE=$TOKEN qq info
want_rc 0
QUILT_HOST="ftp://x" qq info
want_rc 2; want_err_is "quilt-cli: invalid QUILT_HOST 'ftp://x' (expected a socket path, unix://PATH or tcp://HOST:PORT)"
end

begin "no token over TCP: one line, unauthenticated, exit 1"
qq --host "$HOST" info
want_rc 1; want_one_err_line
want_err_is "quilt-cli: unauthenticated: missing authorization: send the metadata 'authorization: Bearer <token>' with quiltd's token; $HINT"
qq --host "$HOST" ps
want_rc 1; want_err "quilt-cli: unauthenticated: "
# A streaming call fails the same way.
qq --host "$HOST" events
want_rc 1; want_one_err_line; want_err "quilt-cli: unauthenticated: "
end

begin "wrong token over TCP"
qq --host "$HOST" --token-file "$TMP/wrong" info
want_rc 1; want_one_err_line
want_err_is "quilt-cli: unauthenticated: invalid bearer token; $HINT"
end

begin "health needs no token; the socket needs none"
qq --host "$HOST" health
want_rc 0; want_out_is "SERVING"
qq --socket "$SOCK" info
want_rc 0; want_out "Version:"
end

begin "token files quilt-cli refuses"
cp "$TOKEN" "$TMP/open"; chmod 644 "$TMP/open"
qq --host "$HOST" --token-file "$TMP/open" info
want_rc 1; want_one_err_line
want_err_is "quilt-cli: token file $TMP/open has mode 0644: it must not be accessible by group or others (chmod 600 $TMP/open)"
qq --host "$HOST" --token-file "$TMP/missing" info
want_rc 1; want_err_is "quilt-cli: token file $TMP/missing: No such file or directory"
printf 'short\n' >"$TMP/short"; chmod 600 "$TMP/short"
QUILT_TOKEN_FILE=$TMP/short qq --host "$HOST" info
want_rc 1; want_err "at least 16"
qq --host "$HOST" --token-file
want_rc 2; want_err "needs a value"
end

begin "--help mentions the token"
qq --help
want_rc 0; want_out "--token-file PATH"; want_out "QUILT_TOKEN_FILE"; want_out "QUILT_HOST"
end

begin "refusals are logged by quiltd with the peer"
grep -q "refused unauthenticated gRPC call from 127.0.0.1:" "$TMP/quiltd.log" ||
  problems+=("no refusal in the log: $(tail -5 "$TMP/quiltd.log")")
end

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

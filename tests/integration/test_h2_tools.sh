#!/usr/bin/env bash
# Integration tests: quiltd against stock HTTP/2 and HTTP/1.1 tools (nghttp,
# curl) and against misbehaving raw clients (tests/integration/h2raw.py).
#
#   QUILTD=/path/to/quiltd bash tests/integration/test_h2_tools.sh
#   bash tests/integration/test_h2_tools.sh /path/to/quiltd
#
# Starts its own quiltd on a temporary Unix socket, a free 127.0.0.1 port and a
# temporary root; the EXIT trap stops it and every helper it started and
# removes the directory, whatever happens. Only loopback and Unix sockets are
# used; every client is bounded by a timeout.
set -euo pipefail

QUILTD=${QUILTD:-${1:-}}
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
H2RAW="$HERE/h2raw.py"

for tool in "$QUILTD" "$PY" nghttp curl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "missing: ${tool:-quiltd (set QUILTD or pass its path)}" >&2
    exit 1
  fi
done

WORK=$(mktemp -d /tmp/quilt-h2-tools.XXXXXX)
SOCK="$WORK/quiltd.sock"
ROOT="$WORK/root"
LOG="$WORK/quiltd.log"
DPID=""
HELPERS=()

cleanup() {
  local rc=$?
  set +e
  for p in "${HELPERS[@]}"; do
    kill "$p" 2>/dev/null
  done
  if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
    kill -TERM "$DPID" 2>/dev/null
    for _ in $(seq 50); do
      is_running "$DPID" || break
      sleep 0.1
    done
    kill -KILL "$DPID" 2>/dev/null
  fi
  wait 2>/dev/null
  if [ "$rc" -ne 0 ] && [ -f "$LOG" ]; then
    echo "--- quiltd log (tail) ---"
    tail -n 40 "$LOG"
  fi
  # quiltd's scratch tmpfs stays mounted if it was killed with layers in it.
  grep -o " $WORK/[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf --one-file-system "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A child that exited but was not yet reaped is a zombie: not running.
is_running() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

PASSED=0
FAILED=0
FAILED_NAMES=()
pass() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
fail() {
  FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1"); echo "not ok - $1"
  [ -z "${2:-}" ] || printf '    %s\n' "${2//$'\n'/$'\n    '}" | head -n 40
}
# check NAME CMD...: CMD's status decides; its output is shown on failure.
# CMD runs in this shell (not a subshell) so it can start and reap children.
check() {
  local name=$1
  shift
  if "$@" >"$WORK/check.out" 2>&1; then
    pass "$name"
  else
    fail "$name" "$(cat "$WORK/check.out")"
  fi
}

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_daemon() {
  for _ in 1 2 3 4 5; do
    PORT=$(free_port)
    "$QUILTD" --socket "$SOCK" --listen "127.0.0.1:$PORT" --insecure-no-auth --root "$ROOT" --log-level debug \
      >>"$LOG" 2>&1 </dev/null &
    DPID=$!
    for _ in $(seq 100); do
      is_running "$DPID" || break
      if [ -S "$SOCK" ] && curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/healthz"; then
        return 0
      fi
      sleep 0.05
    done
    kill -KILL "$DPID" 2>/dev/null || true
    wait "$DPID" 2>/dev/null || true
    DPID=""
  done
  echo "quiltd did not start" >&2
  return 1
}

BASE=""
GRPC_BODY="$WORK/empty.grpc"

# ----------------------------------------------------------------- checks

curl_grpc() { # curl_grpc CONTENT-TYPE -> "HTTP-CODE" plus headers/trailers on stdout
  curl -sS --http2-prior-knowledge --max-time 5 -o /dev/null -D - \
    -H "content-type: $1" -H 'te: trailers' --data-binary "@$GRPC_BODY" \
    -w 'http_code=%{http_code} http_version=%{http_version}\n' \
    "$BASE/quilt.v1.Quilt/GetSystemInfo"
}

system_info_ok() { # a GetSystemInfo over h2c prior knowledge answers grpc-status 0
  local out
  out=$(curl_grpc application/grpc) || { echo "$out"; return 1; }
  echo "$out"
  grep -q '^http_code=200 http_version=2' <<<"$out" && grep -qi '^grpc-status: 0' <<<"$out"
}

healthz_ok() { # healthz_ok [--unix]: HTTP/1.1 /healthz is 200 "ok" (TCP or unix socket)
  local out
  if [ "${1:-}" = --unix ]; then
    out=$(curl -sS --max-time 5 --unix-socket "$SOCK" -w '%{http_code}' http://localhost/healthz)
  else
    out=$(curl -sS --max-time 5 -w '%{http_code}' "$BASE/healthz")
  fi
  echo "$out"
  [ "$out" = $'ok\n200' ]
}

daemon_alive() { is_running "$DPID" || { echo "quiltd (pid $DPID) is gone"; return 1; }; }

metric() { # metric NAME_WITH_LABELS: prints its value, empty if absent
  curl -sS --max-time 5 "$BASE/metrics" | awk -v k="$1" '$1 == k { print $2 }'
}

nghttp_get_healthz_h2() {
  # Prior knowledge (no -u): an h2 GET of a non-gRPC path must get an HTTP
  # answer (quiltd serves gRPC only on h2, so an HTTP error), not a crash.
  local out
  out=$(timeout 10 nghttp -nv -t 5 "$BASE/healthz" 2>&1) || true
  echo "$out"
  grep -q 'recv (stream_id=[0-9]*) :status: [245][0-9][0-9]' <<<"$out" &&
    grep -q 'send SETTINGS frame' <<<"$out" && ! grep -q 'HTTP Upgrade' <<<"$out"
}

nghttp_upgrade_healthz() {
  # h2c Upgrade: quiltd does not switch protocols, it answers over HTTP/1.1.
  local out
  out=$(timeout 10 nghttp -nv -u -t 5 "$BASE/healthz" 2>&1) || true
  echo "$out"
  grep -q '^HTTP/1.1 200' <<<"$out"
}

nghttp_grpc_post() {
  local out
  out=$(timeout 10 nghttp -nv -t 5 -d "$GRPC_BODY" -H 'content-type: application/grpc' \
    -H 'te: trailers' "$BASE/quilt.v1.Quilt/GetSystemInfo" 2>&1) || { echo "$out"; return 1; }
  echo "$out"
  # :status 200 in the response headers, a DATA frame, then grpc-status: 0 in
  # the trailers (the HEADERS frame after the DATA, which ends the stream).
  awk '
    /recv \(stream_id=[0-9]+\) :status: 200/ { status = 1 }
    /recv DATA frame/ && status { data = 1 }
    /recv \(stream_id=[0-9]+\) grpc-status: 0$/ && data { trailer = 1 }
    /recv HEADERS frame/ && trailer { getline; if ($0 ~ /END_STREAM/) ok = 1 }
    END { exit ok ? 0 : 1 }' <<<"$out"
}

curl_grpc_post() {
  local out
  out=$(curl_grpc application/grpc) || { echo "$out"; return 1; }
  echo "$out"
  grep -q '^http_code=200 http_version=2' <<<"$out" && grep -qi '^grpc-status: 0' <<<"$out" &&
    grep -qi '^content-type: application/grpc' <<<"$out"
}

curl_wrong_content_type() {
  local out
  out=$(curl_grpc text/plain) || { echo "$out"; return 1; }
  echo "$out"
  grep -q '^http_code=415 ' <<<"$out"
}

curl_server_deadline() {
  # The server enforces grpc-timeout on its own (curl has no deadline logic):
  # WatchEvents with 30 s heartbeats and a 500 ms timeout ends with
  # grpc-status 4 well before the next heartbeat.
  local body="$WORK/watch.grpc" out start end
  printf '\x00\x00\x00\x00\x02\x18\x1e' >"$body" # WatchEventsRequest{heartbeat_seconds: 30}
  start=$(date +%s%N)
  out=$(curl -sS --http2-prior-knowledge --max-time 10 -o /dev/null -D - \
    -H 'content-type: application/grpc' -H 'te: trailers' -H 'grpc-timeout: 500m' \
    --data-binary "@$body" "$BASE/quilt.v1.Quilt/WatchEvents") || { echo "$out"; return 1; }
  end=$(date +%s%N)
  echo "$out"
  echo "took $(((end - start) / 1000000)) ms"
  grep -qi '^grpc-status: 4' <<<"$out" && [ $(((end - start) / 1000000)) -lt 3000 ]
}

curl_huge_timeout() {
  # The largest grpc-timeout the spec allows (99999999H, saturated to the
  # largest uint64) means "never": WatchEvents keeps sending heartbeats
  # until curl gives up, instead of ending at once with DEADLINE_EXCEEDED
  # because start + timeout wrapped around (found with tests/fuzz).
  local body="$WORK/watch1.grpc" out rc
  printf '\x00\x00\x00\x00\x02\x18\x01' >"$body" # WatchEventsRequest{heartbeat_seconds: 1}
  out=$(curl -sS --http2-prior-knowledge --max-time 2 -o /dev/null -D - \
    -H 'content-type: application/grpc' -H 'te: trailers' -H 'grpc-timeout: 99999999H' \
    --data-binary "@$body" "$BASE/quilt.v1.Quilt/WatchEvents" 2>&1)
  rc=$?
  echo "$out"
  echo "curl exit $rc"
  [ $rc = 28 ] && grep -qi '^content-type: application/grpc' <<<"$out" &&
    ! grep -qi '^grpc-status' <<<"$out"
}

curl_grpc_message_encoding() {
  # Health/Check NOT_FOUND echoes the service name; on the wire grpc-message
  # must be percent-encoded: UTF-8 bytes and '%' escaped, ASCII kept.
  local body="$WORK/health.grpc" out
  # HealthCheckRequest{service: "ü %41"}: field 1, 6 bytes.
  printf '\x00\x00\x00\x00\x08\x0a\x06\xc3\xbc %%41' >"$body"
  out=$(curl -sS --http2-prior-knowledge --max-time 5 -o /dev/null -D - \
    -H 'content-type: application/grpc' -H 'te: trailers' --data-binary "@$body" \
    "$BASE/grpc.health.v1.Health/Check") || { echo "$out"; return 1; }
  echo "$out"
  grep -qi '^grpc-status: 5' <<<"$out" &&
    grep -q '^grpc-message: unknown service "%C3%BC %2541"' <<<"$out"
}

http1_healthz() { healthz_ok; }
http1_healthz_unix() { healthz_ok --unix; }

http1_metrics() {
  local out
  out=$(curl -sS --max-time 5 -w '\nhttp_code=%{http_code}\n' "$BASE/metrics") || {
    echo "$out"; return 1; }
  grep -q '^http_code=200$' <<<"$out" || { echo "$out" | tail -n 5; return 1; }
  grep -Eq '^quilt_connections [0-9]+$' <<<"$out" || { echo "no quilt_connections"; return 1; }
  # Exactly the two successful GetSystemInfo calls made so far (nghttp, curl).
  local n
  n=$(awk '$1 == "quilt_grpc_requests_total{method=\"/quilt.v1.Quilt/GetSystemInfo\",code=\"OK\"}" { print $2 }' <<<"$out")
  echo "GetSystemInfo OK count: '${n}'"
  [ "$n" = 2 ] || return 1
  grep -Eq '^quilt_grpc_request_duration_seconds_count\{method="/quilt.v1.Quilt/GetSystemInfo"\} [0-9]+$' <<<"$out"
}

http1_404() {
  local code
  code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "$BASE/nope")
  echo "$code"
  [ "$code" = 404 ]
}

garbage() { # garbage ADDR [--preface]
  "$PY" "$H2RAW" garbage "$1" 65536 ${2:+"$2"} && daemon_alive && healthz_ok && healthz_ok --unix
}

bad_http1_one_response() { # bad_http1_one_response ADDR
  # A malformed request gets one 400 with "Connection: close", then the
  # connection closes: bytes that arrive after the error are not answered.
  "$PY" "$H2RAW" bad-http1 "$1" && daemon_alive
}

stalled_clients_do_not_block() {
  # A silent connection and one that stops half-way through the preface,
  # on each listener, held open while other clients are served.
  local tmp="$WORK/hold" i ok=0
  mkdir -p "$tmp"
  HOLD_PIDS=()
  i=0
  for spec in "tcp:127.0.0.1:$PORT silent" "tcp:127.0.0.1:$PORT half-preface" \
              "unix:$SOCK silent" "unix:$SOCK half-preface"; do
    # shellcheck disable=SC2086
    "$PY" "$H2RAW" hold $spec 15 >"$tmp/$i" 2>&1 &
    HOLD_PIDS+=($!)
    HELPERS+=($!)
    i=$((i + 1))
  done
  # Wait (bounded) until every holder is connected.
  for _ in $(seq 50); do
    ok=0
    for j in 0 1 2 3; do grep -q connected "$tmp/$j" 2>/dev/null && ok=$((ok + 1)); done
    [ "$ok" = 4 ] && break
    sleep 0.1
  done
  [ "$ok" = 4 ] || { echo "holders did not connect"; cat "$tmp"/*; return 1; }
  local t0 t1
  t0=$(date +%s%N)
  system_info_ok && healthz_ok --unix || return 1
  t1=$(date +%s%N)
  echo "served in $(((t1 - t0) / 1000000)) ms while 4 stalled connections were open"
  [ $(((t1 - t0) / 1000000)) -lt 2000 ]
}

stalled_clients_dropped() {
  # quiltd drops a connection that never completes a request after its
  # handshake timeout (10 s); the holders give up at 15 s.
  local j out
  for p in "${HOLD_PIDS[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  for j in 0 1 2 3; do
    out=$(cat "$WORK/hold/$j")
    echo "holder $j: $(tr '\n' ' ' <<<"$out")"
    grep -q '^closed-by-server' <<<"$out" || return 1
  done
}

rapid_reset() {
  local out before after
  before=$(metric quilt_rapid_reset_sheds_total)
  out=$(timeout 30 "$PY" "$H2RAW" rapid-reset "tcp:127.0.0.1:$PORT" 1000) || {
    echo "$out"; return 1; }
  echo "$out"
  grep -q '^goaway code=0xb ' <<<"$out" || return 1
  after=$(metric quilt_rapid_reset_sheds_total)
  echo "quilt_rapid_reset_sheds_total: $before -> $after"
  [ "$after" -gt "$before" ] && daemon_alive && system_info_ok >/dev/null && healthz_ok --unix
}

rapid_reset_unix() {
  local out
  out=$(timeout 30 "$PY" "$H2RAW" rapid-reset "unix:$SOCK" 1000) || { echo "$out"; return 1; }
  echo "$out"
  grep -q '^goaway code=0xb ' <<<"$out" && daemon_alive && system_info_ok >/dev/null
}

protocol_error_counted() {
  # DATA on stream 0 is a connection error (RFC 9113 6.1): GOAWAY
  # PROTOCOL_ERROR, and the connection counts in quilt_h2_protocol_errors_total.
  local before after out
  before=$(metric quilt_h2_protocol_errors_total)
  out=$("$PY" - "tcp:127.0.0.1:$PORT" "$H2RAW" <<'EOF'
import importlib.util, struct, sys, time
spec = importlib.util.spec_from_file_location("h2raw", sys.argv[2])
h2raw = importlib.util.module_from_spec(spec); spec.loader.exec_module(h2raw)
s = h2raw.connect(sys.argv[1])
s.sendall(h2raw.PREFACE + h2raw.frame(h2raw.FRAME_SETTINGS, 0, 0) +
          h2raw.frame(h2raw.FRAME_DATA, 0, 0, b"abc"))
got, eof = h2raw.drain(s, time.monotonic() + 5)
codes = [struct.unpack(">II", p[:8])[1] for t, _, _, p in h2raw.FrameReader().feed(got)
         if t == h2raw.FRAME_GOAWAY]
print("goaway codes=%s eof=%s" % (codes, eof))
sys.exit(0 if codes == [1] and eof else 1)
EOF
  ) || { echo "$out"; return 1; }
  echo "$out"
  after=$(metric quilt_h2_protocol_errors_total)
  echo "quilt_h2_protocol_errors_total: $before -> $after"
  [ "$after" -gt "$before" ]
}

connections_drain() {
  # Every connection opened above is gone: only the scrape itself remains.
  local v=""
  for _ in $(seq 50); do
    v=$(metric quilt_connections)
    [ "$v" = 1 ] && break
    sleep 0.1
  done
  echo "quilt_connections=$v quilt_streams=$(metric quilt_streams)"
  [ "$v" = 1 ] && [ "$(metric quilt_streams)" = 0 ]
}

sigterm_clean_exit() {
  local rc
  kill -TERM "$DPID"
  for _ in $(seq 50); do
    is_running "$DPID" || break
    sleep 0.1
  done
  if is_running "$DPID"; then
    echo "still running 5 s after SIGTERM"
    return 1
  fi
  rc=0
  wait "$DPID" || rc=$?
  DPID=""
  echo "exit status $rc"
  [ "$rc" = 0 ] || return 1
  [ ! -e "$SOCK" ] || { echo "socket file left behind"; return 1; }
  ! curl -s -o /dev/null --max-time 2 "$BASE/healthz" || { echo "still accepting TCP"; return 1; }
}

# ------------------------------------------------------------------- run

mkdir -p "$WORK"
printf '\x00\x00\x00\x00\x00' >"$GRPC_BODY"
start_daemon
BASE="http://127.0.0.1:$PORT"
echo "# quiltd pid $DPID on $SOCK and 127.0.0.1:$PORT"

check "nghttp: h2 prior-knowledge GET /healthz gets an HTTP answer" nghttp_get_healthz_h2
check "nghttp: h2c Upgrade GET /healthz answered over HTTP/1.1" nghttp_upgrade_healthz
check "nghttp: gRPC GetSystemInfo POST ends with grpc-status 0 in trailers" nghttp_grpc_post
check "curl: h2 prior-knowledge gRPC POST is HTTP 200, grpc-status 0" curl_grpc_post
check "curl: wrong content-type (text/plain) is HTTP 415" curl_wrong_content_type
check "curl: grpc-message is percent-encoded on the wire" curl_grpc_message_encoding
check "curl: HTTP/1.1 /healthz is 200 ok (TCP)" http1_healthz
check "curl: HTTP/1.1 /healthz is 200 ok (unix socket)" http1_healthz_unix
check "curl: /metrics has quilt_connections and counts the 2 GetSystemInfo calls" http1_metrics
check "curl: /nope is 404" http1_404
check "curl: server enforces grpc-timeout (DEADLINE_EXCEEDED within 3 s)" curl_server_deadline
check "curl: grpc-timeout 99999999H never expires (WatchEvents still open after 2 s)" \
  curl_huge_timeout
check "64 KiB of random bytes into TCP: daemon survives" garbage "tcp:127.0.0.1:$PORT"
check "64 KiB of random bytes into the unix socket: daemon survives" garbage "unix:$SOCK"
check "h2 preface + 64 KiB of random bytes into TCP: daemon survives" \
  garbage "tcp:127.0.0.1:$PORT" --preface
check "malformed HTTP/1.1 request: exactly one 400, then close (TCP)" \
  bad_http1_one_response "tcp:127.0.0.1:$PORT"
check "malformed HTTP/1.1 request: exactly one 400, then close (unix)" \
  bad_http1_one_response "unix:$SOCK"
check "silent and half-preface connections do not block other clients" \
  stalled_clients_do_not_block
check "rapid HEADERS+RST_STREAM gets GOAWAY ENHANCE_YOUR_CALM (TCP)" rapid_reset
check "rapid HEADERS+RST_STREAM gets GOAWAY ENHANCE_YOUR_CALM (unix)" rapid_reset_unix
check "HTTP/2 protocol error: GOAWAY PROTOCOL_ERROR, counted in metrics" protocol_error_counted
check "stalled connections are dropped after the handshake timeout" stalled_clients_dropped
check "all client connections drained" connections_drain
check "quiltd still running" daemon_alive
check "SIGTERM: exit 0 within 5 s, socket removed, listener closed" sigterm_clean_exit

echo
if [ "$FAILED" -gt 0 ]; then
  printf 'failed: %s\n' "${FAILED_NAMES[@]}"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]

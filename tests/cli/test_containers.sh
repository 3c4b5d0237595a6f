#!/bin/bash
# End-to-end tests of quilt-cli's container commands against a real quiltd
# (its built-in busybox rootfs): run, create, start, status, ps, logs, stop,
# kill, rm, wait, events, stats, --json and error handling.
#
# usage: tests/cli/test_containers.sh PATH/TO/quilt-cli PATH/TO/quiltd
# Needs root (namespaces, cgroups, mounts). Exits 0 when all pass, 1 on any
# failure, 77 (skip) when not root.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cli_init ctr "${1:-}" "${2:-}"

# ---------------------------------------------------------------- helpers

# q ARGS...: quilt-cli against our daemon; sets rc, out, err, ms (wall time).
q() {
  local t0
  t0=$(date +%s%N)
  "$CLI" --socket "$SOCK" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
  rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  out=$(cat "$TMP/out")
  err=$(cat "$TMP/err")
}

want_no_out() { ! grep -qF -- "$1" "$TMP/out" || problems+=("stdout has: $1"); }
want_faster() { [ "$ms" -lt "$1" ] || problems+=("took ${ms}ms, want < $1ms"); }
want_json_lines() {
  "$PY" -m json.tool --json-lines "$TMP/out" >/dev/null 2>&1 ||
    problems+=("stdout is not JSON Lines: $out")
}

# wait_for SECS CMD...: polls CMD every 0.1 s until it succeeds.
wait_for() {
  local n=$(($1 * 10))
  shift
  for _ in $(seq "$n"); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

# state CONTAINER: its state word from `status --json`.
state() {
  "$CLI" --socket "$SOCK" status --json "$1" 2>/dev/null |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null
}

# ---------------------------------------------------------------- daemon

"$QUILTD" --socket "$SOCK" --root "$TMP/root" >"$TMP/quiltd.log" 2>&1 &
DAEMON_PID=$!
if ! "$CLI" --socket "$SOCK" --timeout 15 health --wait >/dev/null 2>&1; then
  echo "not ok - quiltd did not start"
  cat "$TMP/quiltd.log"
  exit 1
fi

# ---------------------------------------------------------------- command line

begin "--help lists the container commands"
q --help
want_rc 0
for c in run create start status list ps logs exec stop kill pause unpause resume remove rm wait events stats; do
  want_out "  $c "
done
end

begin "every container command has --help"
for c in run create start status list ps logs exec stop kill pause unpause resume remove rm wait events stats; do
  q "$c" --help
  want_rc 0
  want_out "Usage: quilt-cli $c"
done
end

begin "unknown flags and bad usage exit 2 with one line"
q ps --bogus
want_rc 2; want_err_is "quilt-cli: ps: unknown option '--bogus' (see quilt-cli ps --help)"
q run --frob -- true
want_rc 2; want_one_err_line
q run
want_rc 2; want_err "no command given"
q run --command true -- true
want_rc 2; want_err "not both"
q create -d -- true
want_rc 2; want_one_err_line
q kill -s NOPE x
want_rc 2; want_err "invalid signal 'NOPE'"
q stop -t soon x
want_rc 2; want_one_err_line
q logs --tail many x
want_rc 2; want_one_err_line
q logs
want_rc 2; want_err "missing container id or name"
q status a b
want_rc 2; want_err "unexpected argument 'b'"
q run --memory-limit lots -- true
want_rc 2; want_err "invalid --memory-limit"
q run --network wifi -- true
want_rc 2; want_err "invalid --network"
q events --type nonsense
want_rc 2; want_err "unknown event type"
end

begin "missing daemon: one clear line, exit 1"
"$CLI" --socket "$TMP/missing.sock" ps >"$TMP/out" 2>"$TMP/err"
rc=$?; err=$(cat "$TMP/err")
want_rc 1
want_err_is "quilt-cli: cannot reach quiltd at $TMP/missing.sock: No such file or directory (is the daemon running? start it with: quiltd)"
"$CLI" --socket "$TMP/missing.sock" stop a b c >"$TMP/out" 2>"$TMP/err"
rc=$?; err=$(cat "$TMP/err")
want_rc 1; want_one_err_line
"$CLI" --socket "$TMP/missing.sock" run -- true >"$TMP/out" 2>"$TMP/err"
rc=$?; err=$(cat "$TMP/err")
want_rc 125; want_one_err_line
end

# ---------------------------------------------------------------- run

begin "run -- echo hello"
q run -- echo hello
want_rc 0; want_out_is "hello"; want_no_err
end

begin "run exits with the container's code"
q run -- sh -c 'exit 7'
want_rc 7; want_out_is ""
q run --command 'exit 3'
want_rc 3
end

begin "run routes the container's stdout and stderr"
q run -- sh -c 'echo out; echo err >&2'
want_rc 0; want_out_is "out"; want_err_is "err"
end

begin "run keeps bytes as they are (no trailing newline, no re-encoding)"
q run -- printf 'a\tb\001\377'
want_rc 0
[ "$(od -An -tx1 "$TMP/out" | tr -d ' \n')" = "61096201ff" ] ||
  problems+=("bytes: $(od -An -tx1 "$TMP/out")")
end

begin "run of a missing command: 127 and a clear message"
q run -- nope
want_rc 127; want_out_is ""; want_one_err_line
want_err "quilt-cli: run: NOT_FOUND: "; want_err "nope"
end

begin "run of a file that cannot be executed: 126"
q run -- /etc/passwd
want_rc 126; want_one_err_line; want_err "/etc/passwd"
end

begin "run of a missing image: 125"
q run --image "$TMP/no-such-image" -- true
want_rc 125; want_one_err_line
end

begin "run: a container killed by a signal exits 128+N"
"$CLI" --socket "$SOCK" run --name sig -- sh -c 'echo up; sleep 30' >"$TMP/sig.out" 2>&1 &
cli_pid=$!
wait_for 10 grep -q up "$TMP/sig.out" || problems+=("never ran: $(cat "$TMP/sig.out")")
q kill sig
wait "$cli_pid"
rc=$?
want_rc 137
q rm sig
end

begin "run passes env, workdir, hostname, user"
q run -e FOO=bar -w /tmp --hostname box -u 65534 -- sh -c 'echo $FOO $(pwd) $(hostname) $(id -u)'
want_rc 0; want_out_is "bar /tmp box 65534"
end

begin "run --rm removes the container; without it stays in ps -a"
q run --rm --name gone -- echo bye
want_rc 0; want_out_is "bye"
q ps -a
want_no_out "gone"
q run --name kept -- true
q ps -a
want_out "kept"
q rm kept
want_rc 0
end

begin "run -d prints the full id and returns at once"
q run -d --name bg -- sleep 30
want_rc 0; want_out_re '^[0-9a-f]{64}$'; want_faster 5000
[ "$(state bg)" = CONTAINER_STATE_RUNNING ] || problems+=("state: $(state bg)")
q rm -f bg
want_rc 0
end

begin "run --json: JSON Lines of chunks, then the exit status"
q run --json -- sh -c 'echo hi; exit 4'
want_rc 4; want_json_lines
tail -n1 "$TMP/out" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d["exit_code"] != 4)' ||
  problems+=("last line: $(tail -n1 "$TMP/out")")
head -n1 "$TMP/out" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d["data"] != "hi\n")' ||
  problems+=("first line: $(head -n1 "$TMP/out")")
end

begin "Ctrl-C during run stops waiting: exit 130, the container runs on"
"$CLI" --socket "$SOCK" run --name intr -- sh -c 'echo up; sleep 30' >"$TMP/intr.out" 2>"$TMP/intr.err" &
cli_pid=$!
wait_for 10 grep -q up "$TMP/intr.out" || problems+=("no output before the interrupt")
kill -INT "$cli_pid"
wait "$cli_pid"
rc=$?
want_rc 130
[ "$(state intr)" = CONTAINER_STATE_RUNNING ] || problems+=("state after ^C: $(state intr)")
q rm -f intr
end

# ---------------------------------------------------------------- lifecycle

begin "create --name web; ps lists it; status says created"
q create --name web -- sleep 100
want_rc 0; want_out_re '^[0-9a-f]{64}$'; want_no_err
web_id=$out
q ps
want_rc 0; want_out "${web_id:0:12}"; want_out_re "web +created"
q status web
want_rc 0; want_out_re '^State: +created$'; want_out "$web_id"; want_out_re '^Started: +-$'
end

begin "duplicate name fails with a clear error"
q create --name web -- true
want_rc 1; want_one_err_line
want_err 'quilt-cli: create: ALREADY_EXISTS: name "web" is already used'
end

begin "start web -> running, with a pid and a start time"
q start web
want_rc 0; want_out_is "web"
q status web
want_out_re '^State: +running$'; want_out_re '^Pid: +[0-9]+$'
want_out_re '^Started: +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}(Z|[+-][0-9:]{5})$'
q ps
want_out_re 'web +running +up '
q start web
want_rc 1; want_err "already started"
end

begin "stop -t 1 web: SIGKILL after 1 s, exit 137, within ~2 s"
q stop -t 1 web
want_rc 0; want_out_is "web"; want_faster 2500
q status web
want_out_re '^State: +exited$'; want_out_re '^Exit code: +137$'; want_out_re '^Signal: +9 \(KILL\)$'
q ps
want_no_out "web"
q ps -a
want_out_re 'web +exited +exited \(137\)'
end

begin "rm web; ps -a no longer lists it"
q rm web
want_rc 0; want_out_is "web"
q ps -a
want_rc 0; want_no_out "web"
q status web
want_rc 1; want_err "NOT_FOUND"
end

begin "rm of a running container needs -f"
q run -d --name busy -- sleep 30
q rm busy
want_rc 1; want_err "FAILED_PRECONDITION"
q rm -f busy
want_rc 0
end

begin "multi-id commands go on past failures and exit 1"
q run -d --name m1 -- sleep 30
q kill m1 nosuch
want_rc 1; want_out_is "m1"; want_err "nosuch"
q rm -f nosuch m1
want_rc 1; want_out_is "m1"
q ps -a
want_no_out "m1"
end

begin "ps --label filters; ps -q prints ids"
q create --name lab1 -l tier=web -- true
q create --name lab2 -l tier=db -- true
q ps --label tier=web
want_out "lab1"; want_no_out "lab2"
q ps -q
want_out_re '^[0-9a-f]{64}$'
q rm lab1 lab2
want_rc 0
end

# ---------------------------------------------------------------- logs, wait, kill

begin "logs -f prints lines as they come and returns when the container exits"
q run -d --name lf -- sh -c 'echo one; sleep 1.5; echo two; echo oops >&2'
"$CLI" --socket "$SOCK" logs -f lf >"$TMP/lf.out" 2>"$TMP/lf.err" &
logs_pid=$!
wait_for 5 grep -q one "$TMP/lf.out" || problems+=("'one' not shown while running")
grep -q two "$TMP/lf.out" && problems+=("'two' shown too early: not live")
kill -0 "$logs_pid" 2>/dev/null || problems+=("logs -f returned before the container exited")
wait_for 10 sh -c "! kill -0 $logs_pid 2>/dev/null" || problems+=("logs -f did not return")
wait "$logs_pid"
rc=$?
want_rc 0
[ "$(cat "$TMP/lf.out")" = "$(printf 'one\ntwo')" ] || problems+=("stdout: $(cat "$TMP/lf.out")")
[ "$(cat "$TMP/lf.err")" = oops ] || problems+=("stderr: $(cat "$TMP/lf.err")")
end

begin "logs --tail 2, --stdout, --stderr, --timestamps, --since"
q run --name lt -- sh -c 'for i in 1 2 3 4 5; do echo l$i; done'
q logs --tail 2 lt
want_rc 0; want_out_is "$(printf 'l4\nl5')"
q logs lt
want_out_is "$(printf 'l1\nl2\nl3\nl4\nl5')"
q logs --stderr lf
want_out_is ""; want_err_is "oops"
q logs --stdout lf
want_out_is "$(printf 'one\ntwo')"; want_no_err
q logs -t --tail 1 lt
want_out_re '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\.[0-9]{9}(Z|[+-][0-9:]{5}) l5$'
q logs --since 2099-01-01T00:00:00Z lt
want_rc 0; want_out_is ""
q logs --since 1h lt
want_out "l1"
q logs --since yesterday lt
want_rc 2
q logs --json lt
want_rc 0; want_json_lines
q logs nosuch
want_rc 1; want_one_err_line; want_err "NOT_FOUND"
q rm lf lt
end

begin "wait prints exit codes and exits with the last one"
q run -d --name w1 -- sh -c 'sleep 0.5; exit 5'
q run -d --name w2 -- sh -c 'exit 6'
q --timeout 10 wait w1 w2
want_rc 6; want_out_is "$(printf '5\n6')"
q wait --json w1
want_rc 5; want_json_doc; want_json 'd[0]["exit_code"] == 5 and d[0]["id"] == "w1"'
q wait w1 nosuch
want_rc 1; want_out_is "5"; want_err "nosuch"
q rm w1 w2
end

begin "kill -s KILL; kill -s by name and number"
q run -d --name k1 -- sleep 30
q kill -s KILL k1
want_rc 0; want_out_is "k1"
q --timeout 10 wait k1
want_rc 137; want_out_is "137"
q run -d --name k2 -- sh -c 'trap "exit 42" USR1; while :; do sleep 0.1; done'
sleep 0.3
q kill -s SIGUSR1 k2
want_rc 0
q --timeout 10 wait k2
want_out_is "42"
q run -d --name k3 -- sleep 30
q kill -s 9 k3
q --timeout 10 wait k3
want_out_is "137"
q kill k3
want_rc 1; want_err "not running"
q rm k1 k2 k3
end

# ---------------------------------------------------------------- events, stats

begin "exec: output, exit code, -i, -e, -w, --json, errors"
q run -d --name ex -- sleep 60
q exec ex -- sh -c 'echo out; echo err >&2; exit 4'
want_rc 4; want_out_is "out"; want_err_is "err"
q exec ex sh -c 'kill -9 $$'
want_rc 137
printf 'from stdin\n' >"$TMP/in"
# q reads /dev/null: call the CLI directly to give it stdin.
"$CLI" --socket "$SOCK" exec -i -e A=1 -w /tmp ex -- sh -c 'cat; echo $A; pwd' <"$TMP/in" >"$TMP/out"
rc=$?; out=$(cat "$TMP/out")
want_rc 0; want_out_is "$(printf 'from stdin\n1\n/tmp')"
q --json exec ex -- echo hi
want_rc 0; want_json_doc; want_out '"stdout": "hi\n"'; want_out '"exit_code": 0'
q exec ex no-such-program
want_rc 1; want_one_err_line; want_err "NOT_FOUND: command not found in the container: no-such-program"
q exec nobody true
want_rc 1; want_err "NOT_FOUND"
q exec -t ex sh
want_rc 2; want_err "-t needs -i"
# -i streams: stdin of any size goes through as it comes.
head -c 5000000 /dev/urandom >"$TMP/big"
"$CLI" --socket "$SOCK" exec -i ex md5sum <"$TMP/big" >"$TMP/out"
rc=$?; out=$(cat "$TMP/out")
want_rc 0; want_out "$(md5sum <"$TMP/big" | cut -d' ' -f1)"
# -it: an interactive shell on a terminal; its exit code comes back.
out=$("$PY" - "$CLI" "$SOCK" <<'PY'
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], ["quilt-cli", "--socket", sys.argv[2], "exec", "-it", "ex", "sh"])
out = b""
def read_for(t):
    global out
    end = time.monotonic() + t
    while time.monotonic() < end:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                out += os.read(fd, 4096)
            except OSError:
                return
read_for(1.0)
os.write(fd, b"tty; echo $((6*7))\r")
read_for(1.0)
os.write(fd, b"exit 5\r")
read_for(2.0)
_, st = os.waitpid(pid, 0)
print(out.decode(errors="replace").replace("\r", ""))
print("exit=%d" % os.waitstatus_to_exitcode(st))
PY
)
rc=0; printf '%s\n' "$out" >"$TMP/out"
want_out_re '^/dev/pts/[0-9]+$'; want_out_re '^42$'; want_out_re '^exit=5$'

q exec ex
want_rc 2; want_err "no command given"
q kill ex
q --timeout 10 wait ex
q exec ex true
want_rc 1; want_err "is not running"
q rm ex
end

begin "pause freezes, unpause thaws; status shows paused; errors say why"
q run -d --name pz -- sh -c 'while :; do :; done'
q pause pz
want_rc 0; want_out_is "pz"
q status pz
want_out_re "State: +paused"
q pause pz
want_rc 1; want_one_err_line; want_err "pause: FAILED_PRECONDITION: container " ; want_err " is already paused"
q --json unpause pz
want_rc 0; want_json_doc
want_out '"state": "CONTAINER_STATE_RUNNING"'
q resume pz
want_rc 1; want_err "is not paused"
q pause nobody pz
want_rc 1; want_out_is "pz"; want_err "NOT_FOUND"
q kill pz
want_rc 0
q --timeout 10 wait pz
want_out_is "137"
q status pz
want_out_re "State: +exited"
q rm pz
end

begin "events sees created, started and exited"
"$CLI" --socket "$SOCK" events >"$TMP/ev.out" 2>"$TMP/ev.err" &
ev_pid=$!
PIDS+=("$ev_pid")
# By name, before the container exists: filtered on our side.
"$CLI" --socket "$SOCK" --timeout 4 events --json --container evc >"$TMP/evj.out" 2>"$TMP/evj.err" &
evj_pid=$!
PIDS+=("$evj_pid")
sleep 0.5
q run --name evc -- sh -c 'exit 2'
want_rc 2
evc_id=$(grep -m1 ' created ' "$TMP/ev.out" | awk '{print $3}')
for t in created started exited; do
  wait_for 5 grep -qE "^[0-9T:.+Z-]+ $t [0-9a-f]{12} evc" "$TMP/ev.out" ||
    problems+=("events lacks '$t': $(cat "$TMP/ev.out" "$TMP/ev.err")")
done
grep -qE " exited [0-9a-f]{12} evc 2$" "$TMP/ev.out" || problems+=("exit code not in the exited line")
grep -q heartbeat "$TMP/ev.out" && problems+=("heartbeat shown without --heartbeats")
[ -n "$evc_id" ] || problems+=("no container id in the created line")
kill "$ev_pid" 2>/dev/null
# --timeout ends the watch normally.
wait "$evj_pid"
rc=$?
want_rc 0
cp "$TMP/evj.out" "$TMP/out"
out=$(cat "$TMP/out")
want_json_lines
"$PY" - "$TMP/evj.out" <<'EOF' || problems+=("JSON events: $(cat "$TMP/evj.out")")
import json, sys
types = [json.loads(l)["type"] for l in open(sys.argv[1])]
want = ["EVENT_TYPE_CREATED", "EVENT_TYPE_STARTED", "EVENT_TYPE_EXITED"]
sys.exit(0 if types == want else 1)
EOF
q rm evc
end

begin "events --type filters; --heartbeats shows heartbeats"
q --timeout 2 events --type removed --heartbeats --heartbeat-seconds 1 &
q_pid=$!
sleep 0.5
"$CLI" --socket "$SOCK" run --rm -- true >/dev/null 2>&1
wait "$q_pid"
grep -q ' removed ' "$TMP/out" || problems+=("no removed event: $(cat "$TMP/out")")
grep -qE ' (created|started|exited) ' "$TMP/out" && problems+=("unfiltered types: $(cat "$TMP/out")")
grep -q ' heartbeat ' "$TMP/out" || problems+=("no heartbeat: $(cat "$TMP/out")")
end

begin "stats of a running container shows its memory limit"
q run -d --name st --memory-limit 64 --pids-limit 50 -- sleep 30
q stats st
want_rc 0
want_out_re '^Memory limit: +64\.0 MiB$'; want_out_re '^Memory: +[0-9.]+ (B|KiB|MiB)$'
want_out_re '^CPU time: +[0-9]+\.[0-9]{3} s$'; want_out_re '^PIDs: +[0-9]+$'
want_out_re '^PIDs limit: +50$'
q stats --json st
want_rc 0; want_json_doc; want_json 'd["memory_limit_bytes"] == 64 * 1024 * 1024'
q rm -f st
q stats st
want_rc 1; want_one_err_line
end

# ---------------------------------------------------------------- JSON

begin "--json outputs are valid JSON"
q create --json --name js -l a=b -e X=1 --memory-limit 32 -- echo 'x y'
want_rc 0; want_json_doc
want_json 'd["name"] == "js" and len(d["id"]) == 64 and d["state"] == "CONTAINER_STATE_CREATED"'
want_json 'd["spec"]["labels"] == {"a": "b"} and d["spec"]["command"] == ["echo", "x y"]'
want_json 'd["spec"]["memory_limit_mib"] == 32 and d["spec"]["env"] == ["X=1"]'
q status --json js
want_rc 0; want_json_doc; want_json 'd["name"] == "js"'
q --json ps -a
want_rc 0; want_json_doc; want_json 'any(c["name"] == "js" for c in d)'
q start --json js
want_rc 0; want_json_doc; want_json 'd[0]["name"] == "js"'
q --timeout 10 wait js
q rm --json js
want_rc 0; want_json_doc; want_json 'd == [{"id": "js"}]'
q run -d --json --name js2 -- sleep 30
want_rc 0; want_json_doc; want_json 'd["state"] == "CONTAINER_STATE_RUNNING"'
q stop --json -t 1 js2
want_rc 0; want_json_doc; want_json 'd[0]["exit_code"] == 137'
q kill --json js2
want_rc 1; want_json_doc; want_json 'd == []'
q rm js2
if command -v jq >/dev/null; then
  q ps --json -a
  jq -e 'type == "array"' "$TMP/out" >/dev/null || problems+=("jq rejects ps --json")
fi
end

# ---------------------------------------------------------------- mounts and volumes

begin "--mount bind: read-only refuses writes, read-write reaches the host"
mkdir -p "$TMP/share" && echo host >"$TMP/share/f"
q run --rm --mount "type=bind,source=$TMP/share,target=/data,readonly" -- sh -c 'cat /data/f; echo x >/data/f'
want_rc 1; want_out "host"; want_err "Read-only file system"
want_file_is() { [ "$(cat "$1")" = "$2" ] || problems+=("$1 is '$(cat "$1")', want '$2'"); }
want_file_is "$TMP/share/f" host
q run --rm -v "$TMP/share:/data" -- sh -c 'echo new >/data/g'
want_rc 0
want_file_is "$TMP/share/g" new
end

begin "--mount tmpfs with a size; -v NAME:/PATH keeps data across containers"
q run --rm --mount type=tmpfs,target=/t,size=1m -- sh -c 'dd if=/dev/zero of=/t/f bs=65536 count=32'
want_rc 1; want_err "No space left on device"
q run --rm -v clivol:/v -- sh -c 'echo kept >/v/f'
want_rc 0
q run --rm -v clivol:/w:ro -- cat /w/f
want_rc 0; want_out_is "kept"
end

begin "bad mounts: usage errors and refused sources, one line each"
q run --mount type=nfs,target=/x -- true
want_rc 2; want_err "invalid --mount 'type=nfs,target=/x': unknown mount type 'nfs'"
q run -v justaname -- true
want_rc 2; want_err "invalid --volume 'justaname'"
q run --mount type=bind,source=/proc,target=/x -- true
want_rc 125; want_one_err_line
want_err "quilt-cli: run: INVALID_ARGUMENT: bind mount source /proc is denied (/proc is not mountable)"
q create -v "$TMP/root:/x" -- true
want_rc 1; want_one_err_line; want_err "quilt-cli: create: INVALID_ARGUMENT: bind mount source $TMP/root is denied"
q create -v "$TMP/nope:/x" -- true
want_rc 1; want_err "quilt-cli: create: NOT_FOUND: bind mount source $TMP/nope"
end

begin "volume create, ls, rm, prune"
q volume create -l team=a vol-a
want_rc 0; want_out_is "vol-a"
q volume create vol-a
want_rc 1; want_one_err_line; want_err "quilt-cli: volume create: ALREADY_EXISTS: volume vol-a already exists"
q volume create 'bad name'
want_rc 1; want_err "INVALID_ARGUMENT: invalid volume name"
q volume create --json vol-b
want_rc 0; want_json_doc; want_json 'd["name"] == "vol-b" and int(d["created_ns"]) > 0'
q volumes
want_rc 0; want_out_re '^NAME +SIZE +CREATED +USED BY$'; want_out_re '^vol-a +'
q volume ls --json
want_rc 0; want_json_doc
want_json '[v["name"] for v in d] == ["clivol", "vol-a", "vol-b"]'
want_json 'd[1]["labels"] == {"team": "a"}'
q create --name vuser -v vol-a:/a -- true
want_rc 0
q volume rm vol-a
want_rc 1; want_one_err_line
want_err "quilt-cli: volume rm: FAILED_PRECONDITION: volume vol-a is in use by 1 container"
q volume prune
want_rc 0; want_out "clivol"; want_out "vol-b"; want_no_out "vol-a"; want_err "Removed 2 volumes"
q rm vuser
q volume rm --json vol-a nope
want_rc 1; want_json_doc; want_json 'd == [{"id": "vol-a"}]'; want_err "NOT_FOUND: no such volume: nope"
q volume ls -q
want_rc 0; want_out_is ""
q volume prune --json
want_rc 0; want_json_doc
q volume frob
want_rc 2; want_err "unknown subcommand 'frob'"
end

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

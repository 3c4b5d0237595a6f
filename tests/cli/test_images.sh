#!/bin/bash
# End-to-end tests of quilt-cli's image commands against a real quiltd:
# import (daemon-side path and upload), images / image ls, rmi (untag and
# delete, the built-in busybox:latest too), prune,
# run/create --image NAME:TAG | id prefix | FILE, over the Unix socket and
# over TCP, --json and error handling.
#
# usage: tests/cli/test_images.sh PATH/TO/quilt-cli PATH/TO/quiltd
# The built-in rootfs is taken from the build directory (the directory of
# quilt-cli): BUILDDIR/busybox-rootfs. Needs root (containers, and a private
# mount namespace to prove uploads). Exits 0 when all pass, 1 on any
# failure, 77 (skip) when not root.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cli_init img "${1:-}" "${2:-}"
ROOTFS=$(dirname "$CLI")/busybox-rootfs
if [ ! -x "$ROOTFS/bin/busybox" ] && [ ! -e "$ROOTFS/bin/sh" ]; then
  echo "not ok - no built-in rootfs at $ROOTFS (build the busybox-rootfs target)"
  echo "0 passed, 1 failed"
  exit 1
fi


# q ARGS...: quilt-cli against our daemon's socket; sets rc, out, err.
# qt ARGS...: the same over TCP.
run_cli() {
  "$CLI" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
  rc=$?
  out=$(cat "$TMP/out")
  err=$(cat "$TMP/err")
}
q() { run_cli --socket "$SOCK" "$@"; }
qt() { run_cli --host "tcp://127.0.0.1:$PORT" "$@"; }
# qns CMD: a shell command line in a private mount namespace (see below).
qns() {
  unshare -m --propagation private sh -c "mount -t tmpfs quilt-private '$PRIV' &&
    cp '$MINI' '$PRIV/private.tar.gz' && $1" >"$TMP/out" 2>"$TMP/err" </dev/null
  rc=$?
  out=$(cat "$TMP/out")
  err=$(cat "$TMP/err")
}

want_fail() { [ "$rc" != 0 ] || problems+=("exit code 0, want a failure" "stdout: $out"); }
want_no_out() { ! grep -qF -- "$1" "$TMP/out" || problems+=("stdout has: $1" "stdout: $out"); }
want_id() { [[ "$out" =~ ^[0-9a-f]{64}$ ]] || problems+=("stdout is not an image id: $out"); }

# image_row ID: the `images` table row of that image.
image_row() { "$CLI" --socket "$SOCK" images 2>/dev/null | grep "^${1:0:12} "; }

# ---------------------------------------------------------------- fixtures

# A tiny rootfs: a copy of the built-in one, packed as tar.gz.
MINI=$TMP/mini.tar.gz
mkdir -p "$TMP/mini"
cp -a "$ROOTFS/." "$TMP/mini/"
echo mini >"$TMP/mini/etc/quilt-test-marker"
tar -C "$TMP/mini" --numeric-owner -czf "$MINI" .
# The same rootfs as a plain tar: another image, for prune.
OTHER=$TMP/other.tar
tar -C "$TMP/mini" --numeric-owner -cf "$OTHER" .
head -c 65536 /dev/urandom >"$TMP/random.tar.gz"
# Mounted (in a private mount namespace only) where the daemon cannot look.
PRIV=$TMP/private
mkdir -p "$PRIV"

PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# ---------------------------------------------------------------- daemon

# TCP calls need the token; every quilt-cli below sends it (over the socket
# too, where quiltd ignores it).
head -c 24 /dev/urandom | base64 >"$TMP/token"
chmod 600 "$TMP/token"
export QUILT_TOKEN_FILE=$TMP/token
"$QUILTD" --socket "$SOCK" --listen "127.0.0.1:$PORT" --auth-token-file "$TMP/token" \
  --root "$TMP/root" >"$TMP/quiltd.log" 2>&1 &
DAEMON_PID=$!
if ! "$CLI" --socket "$SOCK" --timeout 15 health --wait >/dev/null 2>&1; then
  echo "not ok - quiltd did not start"
  cat "$TMP/quiltd.log"
  echo "0 passed, 1 failed"
  exit 1
fi

# ---------------------------------------------------------------- command line

begin "--help lists the image commands, each has --help"
q --help
want_rc 0
for c in import images image rmi prune; do want_out "  $c "; done
for c in import images image rmi prune "image ls" "image rm" "image prune" "image import"; do
  # shellcheck disable=SC2086
  q $c --help
  want_rc 0
  want_out "Usage: quilt-cli $c"
done
q run --help
want_out "NAME[:TAG]"; want_out "over TCP it is uploaded first"
end

begin "bad usage exits 2 with one line"
q import
want_rc 2; want_err_is "quilt-cli: import: missing FILE (a rootfs tarball) (see quilt-cli import --help)"
q import a b
want_rc 2; want_one_err_line
q import --bogus "$MINI"
want_rc 2; want_one_err_line
q import --tag
want_rc 2; want_err "needs a value"
q images extra
want_rc 2; want_one_err_line
q rmi
want_rc 2; want_one_err_line
q prune now
want_rc 2; want_one_err_line
q image
want_rc 2; want_err "missing subcommand"
q image frob
want_rc 2; want_err "unknown subcommand 'frob'"
end

# ---------------------------------------------------------------- listing

begin "images lists the built-in busybox:latest"
q images
want_rc 0; want_no_err
want_out_re '^ID +TAGS +SIZE +CREATED +CONTAINERS$'
want_out_re '^[0-9a-f]{12} +busybox:latest +[0-9.]+ [KMG]?i?B +.* ago +0$'
BUSYBOX_ID=$("$CLI" --socket "$SOCK" images -q | head -1)
q image ls -q
want_rc 0; want_out_is "$BUSYBOX_ID"
[[ "$BUSYBOX_ID" =~ ^[0-9a-f]{64}$ ]] || problems+=("images -q: $BUSYBOX_ID")
q images --json
want_rc 0; want_json_doc
want_json 'any(i["tags"] == ["busybox:latest"] and len(i["id"]) == 64 and i["size_bytes"] > 0 for i in d)'
end

# ---------------------------------------------------------------- import

begin "import --tag mini:1 FILE prints the id"
q import --tag mini:1 "$MINI"
want_rc 0; want_id; want_no_err
MINI_ID=$out
[ "$MINI_ID" = "$(sha256sum "$MINI" | cut -d' ' -f1)" ] || problems+=("id is not the archive's sha256")
end

begin "re-import: same id, already present"
q import --tag mini:1 "$MINI"
want_rc 0; want_out_is "$MINI_ID"; want_err_is "(already present)"
end

begin "import --upload --tag mini:2: same id"
q import --upload --tag mini:2 "$MINI"
want_rc 0; want_out_is "$MINI_ID"; want_err "already present"
end

begin "images shows mini:1 and mini:2 on that id"
row=$(image_row "$MINI_ID")
[[ "$row" =~ ^${MINI_ID:0:12}\ +mini:1,mini:2\ + ]] || problems+=("row: $row")
q images --json
want_rc 0; want_json_doc
want_json "[i['tags'] for i in d if i['id'] == '$MINI_ID'] == [['mini:1', 'mini:2']]"
end

begin "import --json: the Image plus cached"
q import --json "$MINI"
want_rc 0; want_json_doc; want_no_err
want_json "d['id'] == '$MINI_ID' and d['cached'] is True and d['tags'] == ['mini:1', 'mini:2']"
want_json "d['size_bytes'] > 0 and d['created_at_ns'] > 0 and d['containers'] == 0"
"$CLI" --socket "$SOCK" import --json --upload --tag mini:3 - <"$MINI" >"$TMP/out" 2>"$TMP/err"
rc=$?; out=$(cat "$TMP/out"); err=$(cat "$TMP/err")
want_rc 0; want_json_doc; want_json "d['id'] == '$MINI_ID' and 'mini:3' in d['tags']"
end

begin "a bad archive fails with INVALID_ARGUMENT (path and upload)"
q import "$TMP/random.tar.gz"
want_fail; want_one_err_line; want_err "quilt-cli: import: INVALID_ARGUMENT: "
q import --upload --tag bad:1 "$TMP/random.tar.gz"
want_fail; want_one_err_line; want_err "quilt-cli: import: INVALID_ARGUMENT: "
q images
want_no_out "bad"
end

begin "a missing file, a directory: one clear line"
q import "$TMP/nope.tar"
want_rc 1; want_err_is "quilt-cli: import: $TMP/nope.tar: No such file or directory"
q import --upload "$TMP/nope.tar"
want_rc 1; want_err_is "quilt-cli: import: $TMP/nope.tar: No such file or directory"
q import "$TMP/mini"
want_rc 1; want_one_err_line; want_err "not a regular file"
end

begin "a relative FILE is sent as an absolute path"
(cd "$TMP" && "$CLI" --socket "$SOCK" import mini.tar.gz) >"$TMP/out" 2>"$TMP/err" </dev/null
rc=$?; out=$(cat "$TMP/out"); err=$(cat "$TMP/err")
want_rc 0; want_out_is "$MINI_ID"
end

begin "no terminal: nothing on stderr while importing"
q import --upload --tag other:1 "$OTHER"
want_rc 0; want_id; want_no_err
OTHER_ID=$out
end

if command -v script >/dev/null; then
  begin "on a terminal: a progress bar on stderr, cleared at the end"
  # Big enough to take more than the 100 ms before the first redraw.
  mkdir -p "$TMP/big"
  cp -a "$TMP/mini/." "$TMP/big/"
  head -c $((96 << 20)) /dev/urandom >"$TMP/big/blob"
  tar -C "$TMP/big" -cf "$TMP/big.tar" .
  rm -rf "$TMP/big"
  script -qec "stty cols 100; '$CLI' --socket '$SOCK' import --upload --tag big:1 '$TMP/big.tar'" \
    /dev/null >"$TMP/tty" 2>&1 </dev/null
  rc=$?; err=$(tr '\r' '\n' <"$TMP/tty" | cat -v)
  want_rc 0
  grep -qE 'Importing \[[=> ]+\] +[0-9]+%  .* / .*MiB/s' "$TMP/tty" ||
    problems+=("no progress bar: $err")
  grep -qaE $'\r\e\\[K[0-9a-f]{64}' "$TMP/tty" || problems+=("bar not cleared before the id: $err")
  q rmi big:1
  rm -f "$TMP/big.tar"
  end
fi

# ---------------------------------------------------------------- run, rmi

begin "run --image mini:1 -- echo hi"
q run --image mini:1 -- cat /etc/quilt-test-marker
want_rc 0; want_out_is "mini"
q run --image mini:1 -- echo hi
want_rc 0; want_out_is "hi"
end

begin "run --image ID-PREFIX and a full id"
q run --rm --image "${MINI_ID:0:12}" -- echo prefix
want_rc 0; want_out_is "prefix"
q run --rm --image "$MINI_ID" -- echo full
want_rc 0; want_out_is "full"
end

begin "run --image FILE over the socket: the daemon imports its absolute path"
(cd "$TMP" && "$CLI" --socket "$SOCK" run --rm --image mini.tar.gz -- cat /etc/quilt-test-marker) \
  >"$TMP/out" 2>"$TMP/err" </dev/null
rc=$?; out=$(cat "$TMP/out"); err=$(cat "$TMP/err")
want_rc 0; want_out_is "mini"
end

begin "rmi NAME:TAG of an image with other tags only untags it, even in use"
# mini has mini:1, mini:2 and mini:3 by now.
CTR=$("$CLI" --socket "$SOCK" create --image mini:1 -- true)
q rmi mini:1
want_rc 0; want_out_is "Untagged: mini:1"; want_no_err
q images --json
want_json "[i['tags'] for i in d if i['id'] == '$MINI_ID'] == [['mini:2', 'mini:3']]"
q run --rm --image mini:1 -- true
want_rc 125; want_err "NOT_FOUND"
end

begin "rmi ID of an image with several tags is refused without -f"
q rmi "$MINI_ID"
want_rc 1; want_one_err_line
want_err_is "quilt-cli: rmi: FAILED_PRECONDITION: image ${MINI_ID:0:12} is tagged mini:2, mini:3: remove the tags or use force"
q rmi "${MINI_ID:0:8}"
want_rc 1; want_err "is tagged mini:2, mini:3"
q images -q
want_out "$MINI_ID"
end

begin "rmi of the last tag while a container uses it fails, then works after rm"
q rmi mini:2
want_rc 0; want_out_is "Untagged: mini:2"
q rmi mini:3
want_rc 1; want_one_err_line
want_err "quilt-cli: rmi: FAILED_PRECONDITION: image ${MINI_ID:0:12} is used by"
row=$(image_row "$MINI_ID")
[[ "$row" =~ \ [1-9][0-9]*$ ]] || problems+=("CONTAINERS should count it: $row")
q rm "$CTR"
want_rc 0
# The earlier `run --image mini:1` containers use it too.
for c in $("$CLI" --socket "$SOCK" ps -aq); do "$CLI" --socket "$SOCK" rm -f "$c" >/dev/null; done
q rmi mini:3
want_rc 0; want_no_err
want_out_is "Untagged: mini:3
Deleted: $MINI_ID"
q images
want_no_out "${MINI_ID:0:12}"
end

begin "rmi goes on past failures and exits 1; --json"
"$CLI" --socket "$SOCK" import --tag mini:1 "$MINI" >/dev/null 2>&1
q rmi --json no-such:image mini:1
want_rc 1; want_one_err_line; want_err "NOT_FOUND"
want_json_doc
want_json "d == [{'id': 'mini:1', 'untagged': ['mini:1'], 'deleted': ['$MINI_ID']}]"
end

begin "rmi -f ID removes an image with several tags: each untagged, then deleted"
"$CLI" --socket "$SOCK" import --tag mini:1 --tag mini:2 "$MINI" >/dev/null 2>&1
q rmi -f "${MINI_ID:0:12}"
want_rc 0; want_no_err
want_out_is "Untagged: mini:1
Untagged: mini:2
Deleted: $MINI_ID"
"$CLI" --socket "$SOCK" import --tag mini:1 --tag mini:2 "$MINI" >/dev/null 2>&1
q image rm --json -f "$MINI_ID" mini:1
want_rc 1; want_json_doc; want_err "NOT_FOUND"
want_json "d == [{'id': '$MINI_ID', 'untagged': ['mini:1', 'mini:2'], 'deleted': ['$MINI_ID']}]"
end

# ---------------------------------------------------------------- prune

begin "prune removes unused images, not busybox:latest while a container uses it"
"$CLI" --socket "$SOCK" import --tag mini:1 "$MINI" >/dev/null 2>&1
CTR=$("$CLI" --socket "$SOCK" create -- true)
q prune
want_rc 0
want_out "$MINI_ID"; want_out "$OTHER_ID"; want_no_out "$BUSYBOX_ID"
want_err "reclaimed"
q images -q
want_out_is "$BUSYBOX_ID"
q image prune --json
want_rc 0; want_json_doc; want_json 'd["removed_ids"] == [] and d["reclaimed_bytes"] == 0'
q rm "$CTR"
end

# ---------------------------------------------------------------- TCP

begin "TCP: import uploads (the daemon cannot see the file)"
# The archive exists only in this mount namespace: ImportImage by path must
# fail there, an upload must work.
qns "'$CLI' --socket '$SOCK' import '$PRIV/private.tar.gz'"
want_rc 1; want_one_err_line; want_err "NOT_FOUND"
qns "'$CLI' --host tcp://127.0.0.1:$PORT import --tag tcp:1 '$PRIV/private.tar.gz'"
want_rc 0; want_out_is "$MINI_ID"; want_no_err
qns "'$CLI' --socket '$SOCK' import --upload --tag tcp:2 '$PRIV/private.tar.gz'"
want_rc 0; want_out_is "$MINI_ID"; want_err "already present"
qt images
want_rc 0; want_out_re "^${MINI_ID:0:12} +tcp:1,tcp:2 "
end

begin "TCP: run --image FILE uploads it first"
"$CLI" --socket "$SOCK" rmi tcp:1 >/dev/null 2>&1
qns "'$CLI' --host tcp://127.0.0.1:$PORT run --rm --image '$PRIV/private.tar.gz' -- cat /etc/quilt-test-marker"
want_rc 0; want_out_is "mini"
qt images -q
want_out "$MINI_ID"
qns "'$CLI' --host tcp://127.0.0.1:$PORT create --image '$PRIV/private.tar.gz' -- true"
want_rc 0; [[ "$out" =~ ^[0-9a-f]{64}$ ]] || problems+=("create: $out")
[ -n "$out" ] && "$CLI" --socket "$SOCK" rm "$out" >/dev/null 2>&1
end

begin "TCP: errors, --json"
qt import "$TMP/random.tar.gz"
want_fail; want_one_err_line; want_err "quilt-cli: import: INVALID_ARGUMENT: "
qt import "$TMP/nope.tar"
want_rc 1; want_err_is "quilt-cli: import: $TMP/nope.tar: No such file or directory"
qt import --json --tag tcp:3 "$MINI"
want_rc 0; want_json_doc; want_json "d['id'] == '$MINI_ID' and 'tcp:3' in d['tags']"
qt images --json
want_rc 0; want_json_doc
qt rmi --json tcp:3
want_rc 0; want_json_doc
qt prune --json
want_rc 0; want_json_doc
qt run --image "$TMP/random.tar.gz" -- true
want_rc 125; want_one_err_line; want_err "INVALID_ARGUMENT"
end

# ---------------------------------------------------------------- the built-in image

begin "busybox:latest: untagged while it has another tag, removed, re-imported at start"
BUILTIN_TAR=$(dirname "$CLI")/busybox-rootfs.tar
q import --tag bb:1 "$BUILTIN_TAR"
want_rc 0; want_out_is "$BUSYBOX_ID"
q rmi busybox
want_rc 0; want_out_is "Untagged: busybox:latest"
q images --json
want_json "[i['tags'] for i in d if i['id'] == '$BUSYBOX_ID'] == [['bb:1']]"
q run --rm -- true
want_rc 125; want_one_err_line; want_err "busybox:latest"
q run --rm --image bb:1 -- echo still
want_rc 0; want_out_is "still"
q rmi bb:1
want_rc 0; want_out_is "Untagged: bb:1
Deleted: $BUSYBOX_ID"
q images -q
want_no_out "$BUSYBOX_ID"
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
"$QUILTD" --socket "$SOCK" --root "$TMP/root" >>"$TMP/quiltd.log" 2>&1 &
DAEMON_PID=$!
"$CLI" --socket "$SOCK" --timeout 15 health --wait >/dev/null 2>&1
q images
want_rc 0; want_out_re "^${BUSYBOX_ID:0:12} +busybox:latest "
q run --rm -- echo back
want_rc 0; want_out_is "back"
end

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

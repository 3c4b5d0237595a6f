#!/bin/bash
# End-to-end tests of `quilt-cli cp` against a real quiltd: both directions
# with docker cp's naming rules, '-' archives on stdin/stdout, running and
# stopped containers, symlinks that must not lead to the host, errors and
# exit codes.
#
# usage: tests/cli/test_cp.sh PATH/TO/quilt-cli PATH/TO/quiltd
# Needs root. Exits 0 when all pass, 1 on any failure, 77 (skip) when not root.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cli_init cp "${1:-}" "${2:-}"
MARK=quilt-cp-$$-$RANDOM
cli_cleanup_extra() { rm -f "/$MARK" "/etc/$MARK"; }

# q ARGS...: quilt-cli against our daemon; sets rc, out, err. stdin from $IN.
IN=/dev/null
q() {
  "$CLI" --socket "$SOCK" "$@" >"$TMP/out" 2>"$TMP/err" <"$IN"
  rc=$?
  out=$(cat "$TMP/out")
  err=$(cat "$TMP/err")
}
# x CMD: sh -c CMD in container c1; its output in $out.
x() { q exec c1 -- sh -c "$1"; }
want_file() { [ "$(cat "$1" 2>/dev/null)" = "$2" ] || problems+=("$1: '$(cat "$1" 2>&1)', want '$2'"); }
want_missing() { [ ! -e "$1" ] && [ ! -L "$1" ] || problems+=("$1 exists"); }

"$QUILTD" --socket "$SOCK" --root "$TMP/root" >"$TMP/quiltd.log" 2>&1 &
DAEMON_PID=$!
if ! "$CLI" --socket "$SOCK" --timeout 15 health --wait >/dev/null 2>&1; then
  echo "not ok - quiltd did not start"
  cat "$TMP/quiltd.log"
  exit 1
fi

# The host side: a file, a tree with a symlink and an empty dir.
H=$TMP/host
mkdir -p "$H/tree/sub" "$H/tree/empty" "$H/dest"
echo one >"$H/file.txt"
echo two >"$H/tree/sub/f"
ln -s sub/f "$H/tree/link"
chmod 0750 "$H/tree/sub"

q run -d --name c1 -- sh -c 'mkdir -p /box /cdir && echo inside >/cfile &&
  mkdir -p /cdir/d && echo deep >/cdir/d/x && ln -s / /escape && ln -s /etc /etcl && sleep 1000'
for _ in $(seq 50); do x 'test -L /etcl' && break; sleep 0.1; done

begin "cp --help and usage errors exit 2"
q cp --help
want_rc 0; want_out "Usage: quilt-cli cp"; want_out "CONTAINER:SRC_PATH"
q cp onlyone
want_rc 2; want_one_err_line
q cp "$H/file.txt" "$H/dest"
want_rc 2; want_err "one of the paths must be CONTAINER:PATH"
q cp c1:/a c1:/b
want_rc 2; want_err "between containers"
q cp c1:relative "$H/dest"
want_rc 2; want_err "must be absolute"
end

begin "a file into a directory, onto a new name, over a file"
q cp "$H/file.txt" c1:/box
want_rc 0; want_no_err
q cp "$H/file.txt" c1:/box/renamed
want_rc 0
q cp "$H/tree/sub/f" c1:/cfile
want_rc 0
x 'cat /box/file.txt /box/renamed /cfile; stat -c "%u:%g" /box/file.txt'
want_out_is "$(printf 'one\none\ntwo\n0:0')"
end

begin "a directory into a directory, to a new path, its contents with /."
q cp "$H/tree" c1:/box
want_rc 0
q cp "$H/tree" c1:/newdir
want_rc 0
q cp "$H/tree/." c1:/cdir
want_rc 0
x 'cat /box/tree/sub/f /newdir/sub/f /cdir/sub/f; readlink /box/tree/link; test -d /newdir/empty &&
   stat -c %a /box/tree/sub && ls /cdir | tr "\n" " "'
want_out_is "$(printf 'two\ntwo\ntwo\nsub/f\n750\nd empty link sub ')"
end

begin "-a keeps the owners; --json prints bytes and entries"
chown 1234:4321 "$H/file.txt"
q cp -a --json "$H/file.txt" c1:/box/owned
want_rc 0; want_json_doc; want_json 'd["entries"] == 1 and d["bytes"] == 4'
x 'stat -c "%u:%g" /box/owned'
want_out_is "1234:4321"
end

begin "out: a file into a directory, to a new name; a directory, new and existing; /."
q cp c1:/cfile "$H/dest"
want_rc 0
q cp c1:/cfile "$H/dest/other"
want_rc 0
q cp c1:/cdir "$H/dest"
want_rc 0
q cp c1:/cdir "$H/dest/made"
want_rc 0
mkdir "$H/dest/dots"
q cp --json c1:/cdir/. "$H/dest/dots"
want_rc 0; want_json 'd["entries"] >= 4'
want_file "$H/dest/cfile" two
want_file "$H/dest/other" two
want_file "$H/dest/cdir/d/x" deep
want_file "$H/dest/made/d/x" deep
want_file "$H/dest/dots/d/x" deep
[ "$(stat -c %u "$H/dest/cfile")" = 0 ] || problems+=("owner of a copied-out file")
end

begin "out: a symlink stays a symlink (-L follows it); nothing reaches the host"
q cp c1:/escape "$H/dest/esc"
want_rc 0
[ "$(readlink "$H/dest/esc")" = / ] || problems+=("escape is not the link: $(ls -l "$H/dest/esc")")
q cp -L c1:/etcl "$H/dest/etc-copy"
want_rc 0
[ -d "$H/dest/etc-copy" ] || problems+=("-L did not copy the directory")
end

begin "in: through the container's symlinks, still inside it"
echo marked >"$H/$MARK"
q cp "$H/$MARK" c1:/escape
want_rc 0
q cp "$H/$MARK" c1:/etcl/
want_rc 0
x "cat /$MARK /etc/$MARK"
want_out_is "$(printf 'marked\nmarked')"
want_missing "/$MARK"
want_missing "/etc/$MARK"
end

begin "- streams a tar in and out"
tar -C "$H" -cf "$TMP/in.tar" file.txt tree
IN=$TMP/in.tar q cp - c1:/box/
want_rc 0
x 'cat /box/tree/sub/f'
want_out_is two
"$CLI" --socket "$SOCK" cp c1:/cdir/d - >"$TMP/d.tar" 2>"$TMP/err"
rc=$?
want_rc 0
[ "$(tar -tf "$TMP/d.tar" | sort | tr '\n' ' ')" = "d/ d/x " ] ||
  problems+=("tar from stdout: $(tar -tvf "$TMP/d.tar" 2>&1)")
q cp - c1:/cfile
want_rc 1; want_err "must be a directory"
end

begin "a stopped container: out and in"
q run --name stopped -- sh -c 'mkdir /res && echo done >/res/out'
q cp stopped:/res/out "$H/dest/from-stopped"
want_rc 0
want_file "$H/dest/from-stopped" done
q cp "$H/file.txt" stopped:/res
want_rc 0
"$CLI" --socket "$SOCK" cp stopped:/res/file.txt - 2>"$TMP/err" | tar -xOf - >"$TMP/got"
want_file "$TMP/got" one
end

begin "errors: one line, non-zero exit"
q cp nope:/x "$H/dest"
want_rc 1; want_one_err_line; want_err_is "quilt-cli: cp: no such container: nope"
q cp "$H/file.txt" nope:/x
want_rc 1; want_err_is "quilt-cli: cp: no such container: nope"
q cp c1:/nope "$H/dest"
want_rc 1; want_one_err_line; want_err "NOT_FOUND: /nope: no such file or directory in container"
q cp "$H/file.txt" c1:/nope/deeper
want_rc 1; want_one_err_line; want_err "NOT_FOUND"
q cp "$H/missing" c1:/box
want_rc 1; want_err "missing: No such file or directory"
q cp "$H/tree" c1:/cfile
want_rc 1; want_err "cannot copy a directory to a file"
q cp c1:/cdir "$H/file.txt"
want_rc 1; want_err "cannot copy a directory to a file"
q cp c1:/cfile "$H/nodir/"
want_rc 1; want_one_err_line
IN=$TMP/quiltd.log q cp - c1:/box
want_rc 1; want_one_err_line; want_err "INVALID_ARGUMENT"
end

begin "a symlink the container points at the host comes out as a link"
x 'mkdir -p /evil && cd /evil && ln -s '"$H"'/victim l && mkdir -p /evil/l2'
mkdir -p "$H/victim"
q cp c1:/evil "$H/dest/evil"
want_rc 0
[ -L "$H/dest/evil/l" ] || problems+=("the link was not kept as a link")
want_missing "$H/victim/anything"
end

q rm -f c1 stopped
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

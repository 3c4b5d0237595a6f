#!/bin/sh
# Builds rootfs tarballs for the setup tests from this host's own files: no
# registry, no network. Each is busybox (Debian's busybox-static, one
# symlink per applet) plus one language runtime and its package manager:
#   node.tar    /usr/bin/node, npm (where `npm` resolves to, normally
#               /usr/lib/node_modules/npm) with /usr/bin/npm and npx, the
#               shared libraries node needs
#   python.tar  /usr/bin/python3.11 (+ python3), its standard library without
#               tests, caches, IDLE and Tk, Debian's pip from
#               /usr/lib/python3/dist-packages (+ /usr/bin/pip3), the shared
#               libraries of python and of every lib-dynload module
# Both have /etc/passwd, /etc/group, /etc/hosts, /root, /tmp (1777) and the
# CA bundle when the host has one. Plain tar, owners 0:0, mtimes 0, sorted:
# the same host files give the same bytes, hence the same image id.
#
# usage: make_image.sh [--check] OUTDIR [node|python]...   (default: both)
#   --check  also unpack each tarball into a scratch directory and run
#            `npm --version` / `python3 -m pip --version` in a chroot of it
#            (needs root: a private mount namespace binds /dev and mounts
#            /proc there, and goes away with it)
# Needs: busybox-static, nodejs + npm (node image), python3 + python3-pip
# (python image), ldd, GNU tar.
set -eu

usage() {
  echo "usage: make_image.sh [--check] OUTDIR [node|python]..." >&2
  exit 2
}

check=0
if [ "${1-}" = --check ]; then
  check=1
  shift
fi
[ $# -ge 1 ] || usage
out=$1
shift
[ $# -gt 0 ] || set -- node python
mkdir -p "$out"
out=$(cd "$out" && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/quilt-make-image.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

die() {
  echo "make_image.sh: $*" >&2
  exit 1
}

# copy SRC DST_ROOT: SRC (symlinks resolved) at the same path under DST_ROOT.
copy_file() {
  mkdir -p "$2$(dirname "$1")"
  cp -L --preserve=mode "$1" "$2$1"
}

# copy_libs ROOT < FILES: the shared libraries (and the loader) the ELF files
# listed on stdin need, copied at the paths ldd names: the loader's path is
# compiled into the binaries.
copy_libs() {
  root=$1
  while read -r f; do
    ldd "$f" 2>/dev/null || true
  done | awk '
    $2 == "=>" && $3 ~ /^\// { print $3 }
    $1 ~ /^\// { print $1 }' | sort -u | while read -r lib; do
    [ -e "$root$lib" ] || copy_file "$lib" "$root"
  done
}

base() {
  root=$1
  bb=/bin/busybox
  [ -x "$bb" ] || die "$bb not found (apt-get install busybox-static)"
  ldd "$bb" >/dev/null 2>&1 && die "$bb is not static (apt-get install busybox-static)"
  mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/usr/local/bin" \
           "$root/etc" "$root/tmp" "$root/var/tmp" "$root/root" "$root/home" "$root/proc" \
           "$root/sys" "$root/dev"
  chmod 1777 "$root/tmp" "$root/var/tmp"
  chmod 700 "$root/root"
  cp "$bb" "$root/bin/busybox"
  # Applets where a distribution has them (usr/bin/env for npm's shebang).
  "$bb" --list-full | while read -r applet; do
    [ -e "$root/$applet" ] || [ -L "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
  done
  cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat > "$root/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
nogroup:x:65534:
EOF
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    copy_file /etc/ssl/certs/ca-certificates.crt "$root"
  fi
}

node_image() {
  root=$1
  node=$(command -v node) || die "node not found (nodejs)"
  node=$(readlink -f "$node")
  npm_cli=$(command -v npm) || die "npm not found"
  npm_cli=$(readlink -f "$npm_cli")                 # .../npm/bin/npm-cli.js
  npm_dir=$(dirname "$(dirname "$npm_cli")")
  [ -f "$npm_dir/package.json" ] || die "cannot tell npm's directory from $npm_cli"
  base "$root"
  mkdir -p "$root/usr/bin" "$root/usr/lib/node_modules"
  cp --preserve=mode "$node" "$root/usr/bin/node"
  # npm sits where its global prefix says: node's prefix is /usr, so global
  # installs go to /usr/lib/node_modules and their bins to /usr/bin.
  cp -a "$npm_dir" "$root/usr/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/bin/npx"
  echo "$node" | copy_libs "$root"
}

python_image() {
  root=$1
  py=$(readlink -f /usr/bin/python3) || die "/usr/bin/python3 not found"
  ver=$(basename "$py")                             # python3.11
  stdlib=/usr/lib/$ver
  [ -d "$stdlib" ] || die "$stdlib not found"
  [ -d /usr/lib/python3/dist-packages/pip ] || die "Debian's pip not found (apt-get install python3-pip)"
  base "$root"
  cp --preserve=mode "$py" "$root/usr/bin/$ver"
  ln -sf "$ver" "$root/usr/bin/python3"
  # The standard library without what no setup test runs: tests, bytecode
  # caches (Python writes its own), IDLE, Tk, turtledemo, and the static
  # libpython archives (for linking C extensions: 25 MB).
  mkdir -p "$root/usr/lib"
  tar -C /usr/lib --exclude=__pycache__ --exclude=test --exclude=tests \
      --exclude='idle_test' --exclude="$ver/idlelib" --exclude="$ver/tkinter" \
      --exclude="$ver/turtledemo" --exclude='libpython*.a' -cf - "$ver" | tar -C "$root/usr/lib" -xf -
  # sitecustomize.py links to /etc/pythonX.Y.
  [ ! -d "/etc/$ver" ] || cp -a "/etc/$ver" "$root/etc/$ver"
  # Debian's pip (it vendors its dependencies) and its launchers.
  mkdir -p "$root/usr/lib/python3/dist-packages"
  (cd /usr/lib/python3/dist-packages && tar --exclude=__pycache__ -cf - pip pip-*.dist-info) |
    tar -C "$root/usr/lib/python3/dist-packages" -xf -
  for p in pip pip3 "pip${ver#python}"; do
    [ ! -f "/usr/bin/$p" ] || cp --preserve=mode "/usr/bin/$p" "$root/usr/bin/$p"
  done
  { echo "$py"; find "$root$stdlib/lib-dynload" -name '*.so'; } | copy_libs "$root"
}

pack() {
  root=$1
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$2.tmp" .
  mv "$2.tmp" "$2"
}

# Runs CMD (sh -c text) in a chroot of an unpacked copy of TARBALL, with
# /dev and /proc, in a mount namespace of its own.
check_image() {
  dir=$scratch/check-$(basename "$1" .tar)
  rm -rf "$dir"
  mkdir -p "$dir"
  tar -C "$dir" -xf "$1"
  # shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments
  unshare --mount --fork sh -c '
    set -e
    mount --make-rprivate /
    mount --rbind /dev "$1/dev"
    mount -t proc proc "$1/proc"
    exec chroot "$1" /bin/sh -c "$2"' check "$dir" "$2"
  rm -rf "$dir"
}

for image in "$@"; do
  case $image in
    node | python) ;;
    *) usage ;;
  esac
  root=$scratch/$image
  rm -rf "$root"
  mkdir -p "$root"
  "${image}_image" "$root"
  pack "$root" "$out/$image.tar"
  rm -rf "$root"
  echo "$out/$image.tar $(du -k "$out/$image.tar" | cut -f1) KiB"
  if [ "$check" = 1 ]; then
    case $image in
      node) check_image "$out/node.tar" 'HOME=/root; export HOME; node -e "console.log(process.version)" && npm --version' ;;
      python) check_image "$out/python.tar" 'python3 -c "import ssl, sqlite3, ctypes, zlib; print(\"stdlib ok\")" && python3 -m pip --version' ;;
    esac
  fi
done

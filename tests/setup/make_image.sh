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
#   debian.tar  apt-get and its http method, dpkg (+ dpkg-deb, dpkg-query,
#               dpkg-split), the static ldconfig, their shared libraries;
#               /etc/apt/sources.list naming one [trusted=yes] source on
#               deb.debian.org (setup tests point it at a local repository
#               with apt_mirror), an empty dpkg status
#   ruby.tar    /usr/bin/ruby and gem, Ruby's library (without its docs),
#               Debian's rubygems integration, the shared libraries of ruby
#               and of every extension
# Both have /etc/passwd, /etc/group, /etc/hosts, /root, /tmp (1777) and the
# CA bundle when the host has one. Plain tar, owners 0:0, mtimes 0, sorted:
# the same host files give the same bytes, hence the same image id.
#
# usage: make_image.sh [--check] OUTDIR [node|python|debian|ruby]...
#        (default: node python)
#   --check  also unpack each tarball into a scratch directory and run
#            `npm --version` / `python3 -m pip --version` in a chroot of it
#            (needs root: a private mount namespace binds /dev and mounts
#            /proc there, and goes away with it)
# Needs: busybox-static, nodejs + npm (node image), python3 + python3-pip
# (python image), apt + dpkg (debian image), ruby (ruby image), ldd, GNU tar.
set -eu

usage() {
  echo "usage: make_image.sh [--check] OUTDIR [node|python|debian|ruby]..." >&2
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
# Whatever is there goes first: a busybox applet link (an absolute
# /bin/busybox) would have cp write through it into the host's busybox.
copy_file() {
  mkdir -p "$2$(dirname "$1")"
  rm -f "$2$1"
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

# debian.tar: just enough of Debian for `apt-get update && apt-get install`
# from a repository of packages without maintainer scripts or dependencies
# on what is not there (tests/setup/apt_repo.py builds such packages).
debian_image() {
  root=$1
  for f in /usr/bin/apt-get /usr/bin/dpkg /usr/lib/apt/methods/http /sbin/ldconfig; do
    [ -x "$f" ] || die "$f not found (apt, dpkg, libc-bin)"
  done
  base "$root"
  echo '_apt:x:42:65534::/nonexistent:/bin/false' >> "$root/etc/passwd"
  # The methods apt-get update and install use with an http source (store
  # decompresses the lists, gpgv would check signatures: a [trusted=yes]
  # source skips it, but apt still runs it when a Release.gpg exists).
  bins="/usr/bin/apt-get /usr/bin/apt-config /usr/bin/dpkg /usr/bin/dpkg-deb
        /usr/bin/dpkg-query /usr/bin/dpkg-split /usr/lib/apt/methods/http
        /usr/lib/apt/methods/file /usr/lib/apt/methods/copy /usr/lib/apt/methods/store
        /usr/lib/apt/methods/gpgv"
  for f in $bins; do
    copy_file "$f" "$root"
  done
  # dpkg refuses to run without ldconfig and start-stop-daemon on PATH; the
  # host's ldconfig is static, busybox has start-stop-daemon. dpkg-deb
  # unpacks with GNU tar's options: it replaces busybox's tar.
  copy_file /sbin/ldconfig "$root"
  copy_file /bin/tar "$root"
  mkdir -p "$root/etc/apt/apt.conf.d" "$root/etc/apt/preferences.d" \
           "$root/etc/apt/sources.list.d" "$root/etc/apt/trusted.gpg.d" \
           "$root/etc/dpkg/dpkg.cfg.d" "$root/var/lib/dpkg/info" \
           "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers" \
           "$root/var/lib/apt/lists/partial" "$root/var/cache/apt/archives/partial" \
           "$root/var/log/apt"
  [ ! -f /etc/dpkg/dpkg.cfg ] || cp /etc/dpkg/dpkg.cfg "$root/etc/dpkg/dpkg.cfg"
  # apt reads dpkg's architecture tables.
  for f in cputable ostable tupletable; do
    [ ! -f "/usr/share/dpkg/$f" ] || copy_file "/usr/share/dpkg/$f" "$root"
  done
  # An empty status: apt-get sees nothing installed, and installs nothing
  # but what it is asked for (the test packages depend on nothing).
  : > "$root/var/lib/dpkg/status"
  : > "$root/var/lib/dpkg/available"
  # One source, on Debian's host: quilt's apt_mirror replaces the host, so
  # a test repository on loopback serves it. Unsigned, hence trusted=yes.
  echo 'deb [trusted=yes] http://deb.debian.org/debian bookworm main' > "$root/etc/apt/sources.list"
  printf '%s\n' $bins /bin/tar | copy_libs "$root"
}

# ruby.tar: ruby and gem as Debian installs them (gem's default install
# directory is /var/lib/gems, its executables go to /usr/local/bin).
ruby_image() {
  root=$1
  ruby=$(readlink -f /usr/bin/ruby 2>/dev/null) || die "/usr/bin/ruby not found (apt-get install ruby)"
  [ -x "$ruby" ] || die "/usr/bin/ruby not found (apt-get install ruby)"
  base "$root"
  copy_file "$ruby" "$root"
  ln -sf "$(basename "$ruby")" "$root/usr/bin/ruby"
  copy_file /usr/bin/gem "$root"
  mkdir -p "$root/usr/lib/x86_64-linux-gnu" "$root/var/lib/gems"
  # Ruby's library and the gems Debian ships with it, without their docs
  # and test suites; the C extensions of the architecture directory.
  tar -C /usr/lib --exclude='rdoc' --exclude='ri' --exclude='test' --exclude='tests' \
      --exclude='*.md' -cf - ruby | tar -C "$root/usr/lib" -xf -
  arch_dir=$(dirname "$(ruby -e 'print RbConfig::CONFIG["archdir"]')")
  parent=$(dirname "$arch_dir")
  mkdir -p "$root$parent"
  cp -a "$arch_dir" "$root$parent/"
  { echo "$ruby"; find "$root$arch_dir" -name '*.so'; } | copy_libs "$root"
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
    node | python | debian | ruby) ;;
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
      debian) check_image "$out/debian.tar" '/usr/bin/apt-get --version | head -1 && /usr/bin/dpkg --version | head -1 && /usr/bin/dpkg --audit && /usr/bin/apt-get check' ;;
      ruby) check_image "$out/ruby.tar" 'HOME=/root; export HOME; ruby -e "require \"openssl\"; require \"zlib\"; puts RUBY_VERSION" && gem --version' ;;
    esac
  fi
done

#!/bin/sh
# Checks the registries against the host's own clients: npm installs a
# generated package (plain, scoped, pinned) from npm_registry.py, pip
# installs a generated wheel from pypi_index.py, and a missing package is
# each client's "not found"; when the host has them, apt-get (in a private
# state directory) downloads a package from apt_repo.py and gem installs
# one from gem_source.py. Needs npm and /usr/bin/python3 with pip; exits
# 77 (meson's "skipped") without them. Leaves nothing behind.
# usage: check_fixtures.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
command -v npm >/dev/null 2>&1 || { echo "skip: no npm" >&2; exit 77; }
"$py" -m pip --version >/dev/null 2>&1 || { echo "skip: no pip for $py" >&2; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/quilt-setup-fixtures.XXXXXX")
pids=
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# start NAME CMD...: runs a server in the background, waits for its port.
start() {
  name=$1
  shift
  "$@" --port-file "$tmp/$name.port" --log "$tmp/$name.log" >/dev/null 2>"$tmp/$name.err" &
  pids="$pids $!"
  i=0
  while [ ! -s "$tmp/$name.port" ]; do
    i=$((i + 1))
    [ $i -lt 100 ] || fail "$name did not start: $(cat "$tmp/$name.err")"
    sleep 0.1
  done
}

start npm "$py" "$here/npm_registry.py" --package quilt-hello@1.0.0 --package quilt-hello@1.2.0 \
  --package @quilt/scoped@0.3.1
start pypi "$py" "$here/pypi_index.py" --package quilt-hello==1.0.0 --package quilt-hello==1.1.0
npm_url=http://127.0.0.1:$(cat "$tmp/npm.port")
pypi_port=$(cat "$tmp/pypi.port")

# npm: latest, a range on a scoped package, then a pinned version.
export HOME="$tmp/home" npm_config_cache="$tmp/npm-cache" npm_config_update_notifier=false
npm install -g --prefix "$tmp/npm1" --no-audit --no-fund --registry "$npm_url" \
  quilt-hello '@quilt/scoped@^0.3' >"$tmp/out" 2>&1 || fail "npm install: $(cat "$tmp/out")"
[ "$("$tmp/npm1/bin/quilt-hello")" = "quilt-hello 1.2.0" ] || fail "quilt-hello is not 1.2.0"
[ "$("$tmp/npm1/bin/scoped")" = "@quilt/scoped 0.3.1" ] || fail "scoped is not 0.3.1"
npm install -g --prefix "$tmp/npm2" --no-audit --no-fund --registry "$npm_url" \
  quilt-hello@1.0.0 >"$tmp/out" 2>&1 || fail "npm install @1.0.0: $(cat "$tmp/out")"
[ "$("$tmp/npm2/bin/quilt-hello")" = "quilt-hello 1.0.0" ] || fail "quilt-hello is not 1.0.0"
if npm install -g --prefix "$tmp/npm3" --no-audit --no-fund --registry "$npm_url" \
  no-such-package >"$tmp/out" 2>&1; then
  fail "npm installed a package the registry does not have"
fi
grep -q E404 "$tmp/out" || fail "npm did not say E404: $(cat "$tmp/out")"
grep -q "GET /@quilt%2fscoped 200" "$tmp/npm.log" || fail "no scoped request in the npm log"
echo "ok npm"

# pip: latest, then a pinned version; the console script runs.
pip_install() {
  "$py" -m pip install --disable-pip-version-check --no-cache-dir --target "$1" \
    --index-url "http://127.0.0.1:$pypi_port/simple" --trusted-host "127.0.0.1:$pypi_port" "$2"
}
pip_install "$tmp/pip1" quilt-hello >"$tmp/out" 2>&1 || fail "pip install: $(cat "$tmp/out")"
[ "$(PYTHONPATH="$tmp/pip1" "$tmp/pip1/bin/quilt-hello")" = "quilt-hello 1.1.0" ] ||
  fail "quilt-hello is not 1.1.0"
pip_install "$tmp/pip2" 'quilt_hello==1.0.0' >"$tmp/out" 2>&1 || fail "pip ==1.0.0: $(cat "$tmp/out")"
[ "$(PYTHONPATH="$tmp/pip2" "$py" -c 'import quilt_hello; print(quilt_hello.VERSION)')" = 1.0.0 ] ||
  fail "quilt_hello.VERSION is not 1.0.0"
if pip_install "$tmp/pip3" no-such-package >"$tmp/out" 2>&1; then
  fail "pip installed a package the index does not have"
fi
grep -q "No matching distribution found for no-such-package" "$tmp/out" ||
  fail "pip did not say no matching distribution: $(cat "$tmp/out")"
echo "ok pip"

# apt: the repository's lists and a package, with apt's state in $tmp.
if command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then
  start apt "$py" "$here/apt_repo.py" --package quilt-hello-deb=1.0
  mkdir -p "$tmp/apt/lists/partial" "$tmp/apt/cache/archives/partial" "$tmp/apt/dl"
  echo "deb [trusted=yes] http://127.0.0.1:$(cat "$tmp/apt.port")/debian bookworm main" \
    >"$tmp/apt/sources.list"
  apt_get() {
    apt-get -q -o Dir::Etc::SourceList="$tmp/apt/sources.list" -o Dir::Etc::SourceParts=- \
      -o Dir::State::Lists="$tmp/apt/lists" -o Dir::Cache="$tmp/apt/cache" \
      -o Dir::State::status=/dev/null -o APT::Sandbox::User=root "$@"
  }
  apt_get update >"$tmp/out" 2>&1 || fail "apt-get update: $(cat "$tmp/out")"
  (cd "$tmp/apt/dl" && apt_get download quilt-hello-deb) >"$tmp/out" 2>&1 ||
    fail "apt-get download: $(cat "$tmp/out")"
  dpkg-deb -x "$tmp/apt/dl/quilt-hello-deb_1.0_all.deb" "$tmp/apt/root"
  [ "$("$tmp/apt/root/usr/bin/quilt-hello-deb")" = "quilt-hello-deb 1.0" ] ||
    fail "quilt-hello-deb is not 1.0"
  if (cd "$tmp/apt/dl" && apt_get download no-such-package) >"$tmp/out" 2>&1; then
    fail "apt-get downloaded a package the repository does not have"
  fi
  grep -q "Unable to locate package no-such-package" "$tmp/out" ||
    fail "apt-get did not say unable to locate: $(cat "$tmp/out")"
  echo "ok apt"
fi

# gem: install into $tmp, run its executable.
if command -v gem >/dev/null 2>&1; then
  start gem "$py" "$here/gem_source.py" --gem quilt_hello=1.0.0
  gem_url=http://127.0.0.1:$(cat "$tmp/gem.port")/
  gem install --no-document --install-dir "$tmp/gem" --bindir "$tmp/gem/bin" --clear-sources \
    --source "$gem_url" quilt_hello >"$tmp/out" 2>&1 || fail "gem install: $(cat "$tmp/out")"
  [ "$(GEM_HOME="$tmp/gem" "$tmp/gem/bin/quilt_hello")" = "quilt_hello 1.0.0" ] ||
    fail "quilt_hello is not 1.0.0"
  if gem install --no-document --install-dir "$tmp/gem2" --clear-sources --source "$gem_url" \
    no_such_gem >"$tmp/out" 2>&1; then
    fail "gem installed a gem the source does not have"
  fi
  echo "ok gem"
fi

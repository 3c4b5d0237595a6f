# shellcheck shell=bash
# Shared by bench/spawn/run, bench/spawn/profile and bench/logs/run (sourced,
# not run).
#
# Provides: say/die, a temp dir with a cleanup trap that stops quiltd and
# anything registered in bench_pids, tool installation (apt-get, as root),
# the release build of quiltd + the busybox rootfs + bench/spawn/spawn_client,
# starting quiltd on a temp socket/root, load sampling, and the OCI peers'
# bundle config and hybrid-cgroup wrapper (bench_oci_config, bench_oci_wrap).
#
# The caller sets before sourcing: bench_name (for messages and the temp dir
# prefix), keep (0/1). After bench_build: $build, $quiltd, $rootfs, $client.
# After the first bench_start_quiltd: $qpid, $sock, $qroot.

say() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: FAIL: %s\n' "$bench_name" "$*" >&2; exit 1; }

bench_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$bench_here/../.." && pwd)   # the tree the script sits in
build_src=$src                          # the tree that is built (see --commit)
bench_build_base=${bench_build_base:-/tmp/quilt-bench-build}
build=${QUILT_BENCH_BUILD_DIR:-$bench_build_base}
bench_commit=                           # set by the caller's --commit REV
bench_cflags=${bench_cflags:-}          # extra -Dc_args (profiling builds)

# ------------------------------------------------------------------ cleanup
tmp=$(mktemp -d "/tmp/quilt-$bench_name.XXXXXX")
qpid=
bench_pids=()          # extra processes to stop on exit
bench_cleanup_hooks=() # extra commands (strings) to eval on exit
bench_stop() { # bench_stop PID: SIGTERM, up to 10 s, then SIGKILL
  local p=$1
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
bench_cleanup() {
  local rc=$? p h
  trap - EXIT INT TERM
  for p in "${bench_pids[@]}"; do bench_stop "$p"; done
  bench_stop "$qpid"
  for h in "${bench_cleanup_hooks[@]}"; do eval "$h" >/dev/null 2>&1 || true; done
  # A killed quiltd leaves its scratch tmpfs (ROOT/scratch) mounted.
  grep -o " $tmp/[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  if [ "${keep:-0}" = 1 ]; then
    echo "$bench_name: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit $rc
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ tools
# bench_need_tools [extra-command:package ...]
bench_need_tools() {
  local need=() spec cmd pkg
  for spec in meson:meson ninja:ninja-build cc:gcc python3:python3 curl:curl pkg-config:pkg-config \
              protoc-c:protobuf-c-compiler "$@"; do
    cmd=${spec%%:*} pkg=${spec#*:}
    command -v "$cmd" >/dev/null || need+=("$pkg")
  done
  [ -e /usr/include/nghttp2/nghttp2.h ] || need+=(libnghttp2-dev)
  [ -e /usr/include/protobuf-c/protobuf-c.h ] || need+=(libprotobuf-c-dev)
  [ -x /bin/busybox ] || need+=(busybox-static)
  [ ${#need[@]} -eq 0 ] && return 0
  [ "${QUILT_BENCH_NO_INSTALL:-0}" = 1 ] &&
    die "missing ${need[*]}; not installing them (QUILT_BENCH_NO_INSTALL=1: scripts/install-deps, or apt-get)"
  [ "$(id -u)" = 0 ] || die "missing ${need[*]}; install them (apt-get) or run as root"
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >"$tmp/apt.log" 2>&1 &&
    apt-get install -y -q --no-install-recommends "${need[@]}" >>"$tmp/apt.log" 2>&1 ||
    { tail -20 "$tmp/apt.log" >&2; die "apt-get install ${need[*]} (scripts/install-deps installs the build deps)"; }
}

# ------------------------------------------------------------------ build
# Release quiltd, the busybox rootfs and the static libs the client links,
# in $build (shared with bench/unary/run, same options); then the client.
#
# With bench_commit=REV the build uses `git archive REV` unpacked in the temp
# dir (and its own build dir), so edits in progress in the work tree do not
# get in the way.
#
# With QUILT_BENCH_PREBUILT=DIR (bench/smoke under `meson test`) nothing is
# configured or built: DIR is an existing meson build dir of this tree whose
# quiltd, busybox-rootfs and static libs are used as they are.
bench_build() {
  if [ -n "${QUILT_BENCH_PREBUILT:-}" ]; then
    bench_build_prebuilt
    return
  fi
  if [ -n "$bench_commit" ]; then
    local sha
    sha=$(git -C "$src" rev-parse --verify --short "$bench_commit^{commit}" 2>/dev/null) ||
      die "--commit $bench_commit: no such commit"
    bench_commit=$sha  # resolved once: HEAD may move while we run
    build_src=$tmp/src
    mkdir -p "$build_src"
    git -C "$src" archive "$sha" | tar -x -C "$build_src" || die "git archive $sha"
    [ -n "${QUILT_BENCH_BUILD_DIR:-}" ] || build=$bench_build_base-$sha
    say "building commit $sha (git archive) in $build"
  fi
  say "building quiltd (release, -Db_ndebug=true, tests off${bench_cflags:+, c_args $bench_cflags}) in $build"
  local opts=(-Dbuildtype=release -Db_ndebug=true -Dtests=false) configured_src=
  [ -z "$bench_cflags" ] || opts+=("-Dc_args=$bench_cflags")
  exec 9>"$build.lock"
  flock 9
  if [ -f "$build/meson-info/meson-info.json" ]; then
    configured_src=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["directories"]["source"])' \
      "$build/meson-info/meson-info.json" 2>/dev/null || true)
  fi
  if [ -n "$configured_src" ] && [ "$(cd "$configured_src" 2>/dev/null && pwd -P)" = "$(cd "$build_src" && pwd -P)" ]; then
    meson configure "$build" "${opts[@]}" >"$tmp/meson.log" 2>&1 ||
      { tail -30 "$tmp/meson.log" >&2; die "meson configure"; }
  else
    if [ -e "$build" ]; then
      [ -f "$build/meson-info/meson-info.json" ] || [ -z "$(ls -A "$build" 2>/dev/null)" ] ||
        die "$build exists and is not a meson build dir; set QUILT_BENCH_BUILD_DIR"
      rm -rf "$build"
    fi
    meson setup "$build" "$build_src" "${opts[@]}" >"$tmp/meson.log" 2>&1 ||
      { tail -30 "$tmp/meson.log" >&2; die "meson setup"; }
  fi
  # Every default target (tests are off): quiltd, the rootfs, the static libs
  # the client links, and any helper binary quiltd needs at run time.
  ninja -C "$build" >"$tmp/ninja.log" 2>&1 || { tail -40 "$tmp/ninja.log" >&2; die "ninja"; }
  bench_build_client
  flock -u 9
  exec 9>&-
}

bench_build_prebuilt() {
  build=$(cd "$QUILT_BENCH_PREBUILT" && pwd) || die "QUILT_BENCH_PREBUILT=$QUILT_BENCH_PREBUILT: no such dir"
  say "using the prebuilt quiltd in $build (QUILT_BENCH_PREBUILT; not rebuilt)"
  bench_build_client
}

# Sets $quiltd and $rootfs from $build and compiles bench/spawn/spawn_client.c
# into $client.
bench_build_client() {
  quiltd=$build/quiltd
  rootfs=$build/busybox-rootfs
  [ -x "$quiltd" ] || die "no quiltd binary in $build"
  [ -x "$rootfs/bin/busybox" ] || die "no busybox rootfs in $build"
  # The client: the CLI's gRPC client plus the generated protobuf code.
  client=$tmp/spawn_client
  local libs
  read -r -a libs < <(pkg-config --libs libnghttp2 libprotobuf-c)
  cc -O2 -g -std=gnu17 -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -DQUILT_VERSION='"bench"' \
    -I"$build_src/src" -I"$build" "$bench_here/spawn_client.c" "$build_src/src/cli/client.c" \
    "$build/libquiltcore.a" "$build/libquiltproto.a" "$build/libllhttp.a" \
    "${libs[@]}" -o "$client" >"$tmp/cc.log" 2>&1 ||
    { cat "$tmp/cc.log" >&2; die "compiling bench/spawn/spawn_client.c"; }
}

# ------------------------------------------------------------------ quiltd
# bench_start_quiltd SOCKET ROOT [extra quiltd args...]: starts a quiltd and
# waits for /healthz; sets $started_pid. The first one started becomes $qpid
# (with $sock and $qroot); later ones are stopped through bench_pids.
bench_start_quiltd() {
  local s=$1 r=$2 up=0 p
  shift 2
  mkdir -p "$r"
  "$quiltd" --socket "$s" --root "$r" --default-rootfs "$rootfs" --log-level warn "$@" \
    >>"$tmp/quiltd.log" 2>&1 &
  p=$!
  if [ -z "$qpid" ]; then qpid=$p sock=$s qroot=$r; else bench_pids+=("$p"); fi
  for _ in $(seq 200); do
    kill -0 "$p" 2>/dev/null || break
    if curl -sf -o /dev/null --max-time 1 --unix-socket "$s" http://quilt/healthz; then up=1; break; fi
    sleep 0.05
  done
  [ $up = 1 ] || { tail -20 "$tmp/quiltd.log" >&2; die "quiltd did not come up"; }
  started_pid=$p
  say "quiltd pid $p, socket $s, root $r ($(findmnt -no FSTYPE -T "$r"), $(findmnt -no OPTIONS -T "$r"))"
}

# utime+stime and cutime+cstime of a quiltd (default $qpid), in clock ticks:
# "self children".
quiltd_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13, $14 + $15 }' "/proc/${1:-$qpid}/stat"; }

# ------------------------------------------------------------------ load
# Busy share of all CPUs over one second, in percent (integer).
busy_pct() {
  local a b
  a=$(awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $5+$6 }' /proc/stat)
  sleep 1
  b=$(awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $5+$6 }' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
    busy = y[1] - x[1]; tot = busy + y[2] - x[2]; printf "%d\n", (tot > 0 ? 100 * busy / tot : 0) }'
}
# wait_for_quiet LABEL MAX_SECONDS: waits while other work keeps the machine
# above 10% busy; sets $last_busy.
wait_for_quiet() {
  local label=$1 max=$2 waited=0
  last_busy=$(busy_pct)
  while [ "$last_busy" -ge 10 ] && [ "$waited" -lt "$max" ]; do
    [ $waited = 0 ] && say "$label: machine is busy (${last_busy}% CPU used by other processes); waiting up to ${max}s"
    sleep 4
    waited=$((waited + 5))
    last_busy=$(busy_pct)
  done
  [ "$last_busy" -ge 10 ] && say "$label: WARNING: machine busy (${last_busy}% CPU) while measuring"
  return 0
}
# The 1-minute load average and the busy share, as "load1 busy%".
load_note() { echo "$(cut -d' ' -f1 /proc/loadavg) ${last_busy:-?}"; }

# key=value lines describing the machine and the tree, for the JSON.
bench_machine_env() {
  local git_commit git_dirty=false
  if [ -n "$bench_commit" ]; then
    git_commit=$bench_commit
  else
    git_commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
    [ -n "$(git -C "$src" status --porcelain --untracked-files=no 2>/dev/null)" ] && git_dirty=true
  fi
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host=$(uname -n)"
  echo "nproc=$(nproc)"
  echo "kernel=$(uname -r)"
  echo "cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "mem_total_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
  echo "git_commit=$git_commit"
  echo "git_dirty=$git_dirty"
  echo "cc=$(cc --version 2>/dev/null | head -1)"
  echo "build_dir=$build"
  echo "cgroup_mode=$(if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo unified;
                      elif mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then echo hybrid; else echo legacy; fi)"
  echo "loadavg_at_end=$(cut -d' ' -f1-3 /proc/loadavg)"
}

# ------------------------------------------------------------------ OCI peers
# bench_oci_config DIR ARG...: DIR/config.json from `crun spec` (or `runc
# spec`) with process.args = ARG..., no terminal, and exactly the five
# namespaces quiltd gives a container. The rootfs is DIR/rootfs.
bench_oci_config() {
  local dir=$1
  shift
  if command -v crun >/dev/null; then
    (cd "$dir" && rm -f config.json && crun spec >/dev/null)
  else
    (cd "$dir" && rm -f config.json && runc spec >/dev/null)
  fi
  python3 - "$dir/config.json" "$@" <<'PY'
import json, sys
path, args = sys.argv[1], sys.argv[2:]
c = json.load(open(path))
c["process"]["args"] = args
c["process"]["terminal"] = False
c["linux"]["namespaces"] = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]
json.dump(c, open(path, "w"), indent=1)
PY
}

# crun refuses a hybrid cgroup host (v1 controllers plus an empty v2 mount at
# /sys/fs/cgroup/unified). bench_oci_wrap CMD... runs CMD in a private mount
# namespace where that v2 mount is unmounted; the host is not touched.
bench_hybrid=0
mountpoint -q /sys/fs/cgroup/unified 2>/dev/null && [ ! -f /sys/fs/cgroup/cgroup.controllers ] && bench_hybrid=1
bench_oci_wrap() {
  if [ $bench_hybrid = 1 ]; then
    unshare -m --propagation private -- sh -c 'umount /sys/fs/cgroup/unified && exec "$@"' sh "$@"
  else
    "$@"
  fi
}

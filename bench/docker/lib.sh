# shellcheck shell=bash
# The Docker peer of the benchmarks: start, use and stop a private dockerd.
# Sourced (not run) by bench/docker/run and bench/run. Defines functions
# only: no traps, no output unless something goes wrong. The caller must
# call docker_stop from its own exit trap.
#
#   docker_find_tools            sets $docker_cli / $dockerd_bin; 1 + $docker_why if missing
#   docker_start DIR             a dockerd to talk to (see below); sets $docker_host
#                                and $docker_pid; 1 + $docker_why when it cannot
#   dk ARGS...                   the docker CLI against $docker_host
#   docker_import TAR NAME       `docker import` of a rootfs tarball
#   docker_versions              "client X, server Y, containerd Z, runc W"
#   docker_stop                  stops what docker_start started and removes DIR
#
# Which dockerd: $QUILT_BENCH_DOCKER_HOST (unix://PATH, e.g. one that bench/run
# started) when it answers; else, when none is given, a private one started
# here:
#
#   dockerd --host unix://DIR/docker.sock --data-root DIR/data
#     --exec-root DIR/exec --pidfile DIR/docker.pid --bridge none
#     --iptables=false --ip-masq=false --exec-opt native.cgroupdriver=cgroupfs
#
# so it never touches /var/lib/docker, the host's networking (no bridge, no
# iptables rules: containers run with --network none, loopback only, like
# quiltd's) or a system dockerd. cgroupfs because this kind of host has no
# systemd and hybrid cgroups (v1 controllers, an empty v2 mount at
# /sys/fs/cgroup/unified); runc, which dockerd uses, runs on it without the
# unmount crun needs. dockerd starts its own containerd under DIR/exec.
# dockerd itself still creates /run/docker and /run/containerd (shim
# sockets) and /etc/docker/key.json; docker_stop removes the two /run
# directories when they did not exist before docker_start.

docker_cli= dockerd_bin= docker_why= docker_host= docker_pid= docker_dir= docker_owned=0
docker_run_created=() # /run directories that docker_start found absent

docker_find_tools() {
  # Debian's CLI (docker.io) matches Debian's dockerd; another `docker` earlier
  # on PATH may be a different major version.
  if [ -x /usr/bin/docker ]; then docker_cli=/usr/bin/docker; else docker_cli=$(command -v docker || true); fi
  dockerd_bin=$(command -v dockerd || true)
  if [ -z "$docker_cli" ] || [ -z "$dockerd_bin" ]; then
    docker_why="docker.io is not installed (no docker CLI or dockerd)"
    return 1
  fi
  return 0
}

dk() { "$docker_cli" -H "$docker_host" "$@"; }

docker_start() {
  local dir=$1 i
  docker_find_tools || return 1
  if [ -n "${QUILT_BENCH_DOCKER_HOST:-}" ]; then
    docker_host=$QUILT_BENCH_DOCKER_HOST
    if dk info >/dev/null 2>&1; then
      docker_owned=0
      return 0
    fi
    docker_why="QUILT_BENCH_DOCKER_HOST=$docker_host does not answer"
    return 1
  fi
  docker_dir=$dir
  mkdir -p "$dir"
  for i in /run/docker /run/containerd; do [ -e "$i" ] || docker_run_created+=("$i"); done
  docker_host=unix://$dir/docker.sock
  "$dockerd_bin" --host "$docker_host" --data-root "$dir/data" --exec-root "$dir/exec" \
    --pidfile "$dir/docker.pid" --bridge none --iptables=false --ip-masq=false \
    --exec-opt native.cgroupdriver=cgroupfs --log-level warn >"$dir/dockerd.log" 2>&1 &
  docker_pid=$!
  docker_owned=1
  for i in $(seq 150); do
    kill -0 "$docker_pid" 2>/dev/null || break
    dk info >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  docker_why="dockerd did not come up: $(grep -v '^\s*$' "$dir/dockerd.log" | tail -3 | tr '\n' ' ' | cut -c1-400)"
  return 1
}

docker_import() { # docker_import TAR NAME
  dk import "$1" "$2" >/dev/null
}

docker_versions() {
  echo "client $("$docker_cli" --version 2>/dev/null | sed 's/^Docker version //'), server $(dk version --format '{{.Server.Version}}' 2>/dev/null),"\
       "containerd $(containerd --version 2>/dev/null | awk '{ print $3 }'), runc $(runc --version 2>/dev/null | awk 'NR == 1 { print $3 }')"
}

docker_stop() {
  local i
  [ "$docker_owned" = 1 ] || return 0
  docker_owned=0
  if [ -n "$docker_pid" ] && kill -0 "$docker_pid" 2>/dev/null; then
    # Containers left by an interrupted series first, then the daemon (it
    # stops the containerd it started).
    dk ps -aq 2>/dev/null | xargs -r "$docker_cli" -H "$docker_host" rm -f >/dev/null 2>&1 || true
    kill -TERM "$docker_pid" 2>/dev/null || true
    for i in $(seq 150); do kill -0 "$docker_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$docker_pid" 2>/dev/null || true
    wait "$docker_pid" 2>/dev/null || true
  fi
  # A containerd that outlived a killed dockerd: ours is the one whose
  # command line names our private config file.
  if [ -n "$docker_dir" ]; then
    local cmd
    for i in /proc/[0-9]*; do
      cmd=$(tr '\0' ' ' <"$i/cmdline" 2>/dev/null) || continue
      case $cmd in
        "containerd --config $docker_dir/exec/containerd/containerd.toml"*) kill -KILL "${i#/proc/}" 2>/dev/null || true ;;
      esac
    done
  fi
  if [ -n "$docker_dir" ] && [ -d "$docker_dir" ]; then
    # Mounts that survived (overlays of a killed container) would block rm.
    awk -v d="$docker_dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
      while read -r i; do umount -l "$i" 2>/dev/null || true; done
    rm -rf "$docker_dir"
  fi
  for i in "${docker_run_created[@]}"; do rm -rf "$i"; done
  docker_run_created=()
}

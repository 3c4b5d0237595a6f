#!/usr/bin/python3
"""Density: N containers running `sleep 3600` at once through one quiltd.

Driven by bench/density/run, which builds and starts quiltd; this is the
client and the measurement. Run under Debian's /usr/bin/python3
(python3-grpcio, python3-grpc-tools).

Phases:
  idle      quiltd's RSS and fds, /proc/meminfo
  create    N x CreateContainer(command ["sleep", "3600"], default image),
            WINDOW requests in flight on one channel
  verify    every container RUNNING in ListContainers, its pid alive, running
            sleep 3600, in its own cgroup <parent>/quilt/<id>, in its own
            pid/mnt/net namespaces
  measure   quiltd VmRSS/VmHWM/fds, the containers' cgroup memory, the
            machine's memory; GetContainer latency over M sequential calls on
            random ids (and GetSystemInfo as the client+transport floor,
            ListContainers with all N)
  teardown  StopContainer(timeout) for all N at once, then RemoveContainer
            for all N at once
  after     nothing left: ListContainers(all) empty, no cgroup dirs, no
            processes, no container dirs, no mounts under the root; quiltd's
            fds back to idle

Writes one JSON file and prints a table; exit 3 under --strict when a target
is missed, 1 when a check fails.
"""
import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import grpc

CGROUP_ROOT = "/sys/fs/cgroup"
V1_CTRLS = ("memory", "pids", "cpu", "cpuacct", "freezer")
TARGET_RSS_MIB = 64
TARGET_GET_P99_MS = 5.0
MIB = 1024 * 1024


class Fail(Exception):
    pass


def say(msg):
    print("==> " + msg, file=sys.stderr, flush=True)


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        if default is None:
            raise
        return default


def pct(s, p):
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def lat_stats(us):
    s = sorted(us)
    return {"n": len(s), "p50_us": round(pct(s, 50), 1), "p90_us": round(pct(s, 90), 1),
            "p99_us": round(pct(s, 99), 1), "mean_us": round(sum(s) / len(s), 1),
            "min_us": round(s[0], 1), "max_us": round(s[-1], 1)}


def proc_status(pid):
    """VmRSS, VmHWM, RssAnon, RssFile, VmSize (KiB), threads, fds."""
    out = {}
    for line in read("/proc/%d/status" % pid).splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "VmSize", "VmData"):
            out[k + "_kib"] = int(v.split()[0])
        elif k == "Threads":
            out["threads"] = int(v)
    out["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    return out


def cpu_us(pid):
    """CPU time of all of pid's threads in microseconds (schedstat: ns, unlike
    /proc/pid/stat's clock ticks)."""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        total += int(read("/proc/%d/task/%s/schedstat" % (pid, t), "0").split()[0])
    return total / 1000.0


def children(pid):
    """{pid: comm} of pid's child processes."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = read("/proc/%s/stat" % name, "")
        if not st:
            continue
        comm = st[st.find("(") + 1:st.rfind(")")]
        if int(st.rsplit(")", 1)[1].split()[1]) == pid:
            out[int(name)] = comm
    return out


def janitor_of(qpid):
    """quiltd's janitor (src/runtime/janitor.c: a forked process that deletes
    container trees off the event loop), or None on builds without one."""
    for p, comm in children(qpid).items():
        if comm == "quilt-janitor":
            return p
    return None


def meminfo():
    out = {}
    for line in read("/proc/meminfo").splitlines():
        k, _, v = line.partition(":")
        if k in ("MemFree", "MemAvailable", "Cached", "Slab", "SReclaimable", "SUnreclaim",
                 "KernelStack", "PageTables", "Shmem", "AnonPages", "Percpu"):
            out[k + "_kib"] = int(v.split()[0])
    return out


def cgroup_lines(pid):
    out = {}
    for line in read("/proc/%d/cgroup" % pid, "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[1] == "":
            out[""] = parts[2]
        for c in parts[1].split(","):
            if c:
                out[c] = parts[2]
    return out


def cgroup_parents(qpid, mode):
    """{hierarchy: dir} where quiltd puts container cgroups: <own cgroup>/quilt
    (src/runtime/cgroup_v1.c make_parent; on v2 quiltd moves itself into
    <own>/supervisor, cgroup_v2.c setup_own)."""
    lines = cgroup_lines(qpid)
    dirs = {}
    if mode == "unified":
        own = lines.get("", "/")
        if own.endswith("/supervisor"):
            own = own[: -len("/supervisor")]
        dirs["unified"] = os.path.join(CGROUP_ROOT, own.lstrip("/"), "quilt")
        return dirs
    for c in V1_CTRLS:
        if c in lines and os.path.isdir(os.path.join(CGROUP_ROOT, c)):
            d = os.path.realpath(os.path.join(CGROUP_ROOT, c))  # cpu -> cpu,cpuacct
            dirs[c] = os.path.join(d, lines[c].lstrip("/"), "quilt")
    return dirs


def mem_dir(parents):
    return parents.get("memory") or parents.get("unified")


def cg_usage(d):
    """Memory charged to cgroup dir d: (usage bytes, kmem bytes or None)."""
    if os.path.exists(os.path.join(d, "memory.usage_in_bytes")):
        u = int(read(os.path.join(d, "memory.usage_in_bytes")))
        k = read(os.path.join(d, "memory.kmem.usage_in_bytes"), "")
        return u, int(k) if k.strip() else None
    u = int(read(os.path.join(d, "memory.current")))
    kern = None
    for line in read(os.path.join(d, "memory.stat"), "").splitlines():
        if line.startswith("kernel "):
            kern = int(line.split()[1])
    return u, kern


def cg_stat(d, keys):
    out = {}
    for line in read(os.path.join(d, "memory.stat"), "").splitlines():
        k, _, v = line.partition(" ")
        if k in keys:
            out[k] = int(v)
    return out


def mounts_mentioning(path):
    """Mounts naming path, except quiltd's own scratch tmpfs (<root>/scratch,
    where the layers live; it stays while quiltd runs)."""
    return [l for l in read("/proc/self/mountinfo").splitlines()
            if path in l and not l.split()[4].endswith("/scratch")]


# ------------------------------------------------------------------ grpc

def load_stubs(proto_dir, tmp):
    out = os.path.join(tmp, "stubs")
    os.makedirs(out, exist_ok=True)
    p = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + proto_dir,
                        "--python_out=" + out, "--grpc_python_out=" + out, "quilt.proto"],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise Fail("grpc_tools.protoc failed:\n" + p.stderr)
    sys.path.insert(0, out)
    import quilt_pb2
    import quilt_pb2_grpc
    return quilt_pb2, quilt_pb2_grpc


class Window:
    """At most `size` calls in flight; records per-call latency and errors."""

    def __init__(self, size):
        self.sem = threading.Semaphore(size)
        self.lock = threading.Lock()
        self.pending = 0
        self.idle = threading.Condition(self.lock)
        self.errors = []

    def submit(self, start, done):
        """start() -> future; done(future, latency_us) runs on completion."""
        self.sem.acquire()
        with self.lock:
            self.pending += 1
        t0 = time.monotonic()
        fut = start()

        def cb(f):
            try:
                done(f, (time.monotonic() - t0) * 1e6)
            except Exception as e:  # noqa: BLE001 - reported below
                with self.lock:
                    self.errors.append(repr(e))
            finally:
                self.sem.release()
                with self.lock:
                    self.pending -= 1
                    if self.pending == 0:
                        self.idle.notify_all()

        fut.add_done_callback(cb)

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Fail("%d calls still pending after %.0f s" % (self.pending, timeout))
                self.idle.wait(left)
        if self.errors:
            raise Fail("%d calls failed, first: %s" % (len(self.errors), self.errors[0]))


class RssSampler(threading.Thread):
    """Peak VmRSS of quiltd sampled every 50 ms (VmHWM is the kernel's own)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop_ev = pid, 0, threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            try:
                for line in read("/proc/%d/status" % self.pid).splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak = max(self.peak, int(line.split()[1]))
            except OSError:
                return
            self.stop_ev.wait(0.05)

    def stop(self):
        self.stop_ev.set()
        self.join()


# ------------------------------------------------------------------ phases

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--proto-dir", required=True)
    ap.add_argument("--quiltd-pid", type=int, required=True)
    ap.add_argument("--root", required=True, help="quiltd's --root")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--get-calls", type=int, default=2000)
    ap.add_argument("--stop-timeout", type=int, default=1)
    ap.add_argument("--stop-window", type=int, default=0, help="0: all at once")
    ap.add_argument("--network", choices=("none", "host"), default="none",
                    help="none: the default (own network namespace); host: no network namespace")
    ap.add_argument("--ids-file", required=True, help="created ids are appended here")
    ap.add_argument("--env", required=True, help="key=value lines for the JSON")
    ap.add_argument("--out", required=True)
    ap.add_argument("--strict", action="store_true")
    a = ap.parse_args()

    env = {}
    for line in read(a.env).splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            env[k] = v
    tmp = tempfile.mkdtemp(prefix="quilt-density-py-")
    try:
        return run(a, env, tmp)
    except Fail as e:
        print("density: FAIL: %s" % e, file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print("density: FAIL: an RPC failed: %s: %s" % (e.code(), e.details()), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("density: interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(a, env, tmp):
    pb, pbg = load_stubs(a.proto_dir, tmp)
    qpid, n = a.quiltd_pid, a.count
    # Python grpc shares a subchannel (one HTTP/2 connection) per target:
    # every call below goes over one connection.
    ch = grpc.insecure_channel("unix:" + a.socket,
                               options=[("grpc.max_receive_message_length", 64 * MIB)])
    stub = pbg.QuiltStub(ch)
    info = stub.GetSystemInfo(pb.GetSystemInfoRequest(), timeout=10, wait_for_ready=True)
    if info.pid != qpid:
        raise Fail("GetSystemInfo says pid %d, expected quiltd %d" % (info.pid, qpid))
    if info.containers_total != 0:
        raise Fail("quiltd already has %d containers" % info.containers_total)
    parents = cgroup_parents(qpid, info.cgroup_mode)
    mdir = mem_dir(parents)
    say("quiltd %s, cgroups %s, rootfs driver %s; container cgroups under %s"
        % (info.version, info.cgroup_mode, info.rootfs_driver,
           ", ".join(sorted(set(parents.values())))))
    if not mdir:
        raise Fail("no memory cgroup for quiltd's containers (cgroup lines %r)" % cgroup_lines(qpid))

    res = {"quiltd": {"version": info.version, "cgroup_mode": info.cgroup_mode,
                      "rootfs_driver": info.rootfs_driver, "cgroup_parents": parents}}
    host_ns = {t: os.readlink("/proc/self/ns/" + t) for t in ("pid", "mnt", "net")}

    # ---------------------------------------------------------- idle
    time.sleep(1)
    idle = proc_status(qpid)
    jpid = janitor_of(qpid)
    mem0 = meminfo()
    parent0 = cg_usage(mdir)[0] if os.path.isdir(mdir) else 0
    say("idle: quiltd VmRSS %.1f MiB, %d fds" % (idle["VmRSS_kib"] / 1024, idle["fds"]))
    res["idle"] = {"quiltd": idle, "meminfo": mem0, "quilt_cgroup_usage_bytes": parent0,
                   "janitor": proc_status(jpid) if jpid else None,
                   "other_quiltd_children": len(children(qpid)) - (1 if jpid else 0)}

    # ---------------------------------------------------------- create
    sampler = RssSampler(qpid)
    sampler.start()
    ids, pids, create_us = [], {}, []
    lock = threading.Lock()
    idsf = open(a.ids_file, "a")
    spec = pb.ContainerSpec(command=["sleep", "3600"], labels={"bench": "density"})
    if a.network == "host":
        spec.network_mode = pb.NETWORK_MODE_HOST

    def created(f, us):
        c = f.result().container
        if c.state != pb.CONTAINER_STATE_RUNNING or c.pid <= 0:
            raise Fail("container %s: state %s, pid %d, failure %r"
                       % (c.id[:12], pb.ContainerState.Name(c.state), c.pid, c.failure_reason))
        with lock:
            ids.append(c.id)
            pids[c.id] = c.pid
            create_us.append(us)
            idsf.write(c.id + "\n")
            idsf.flush()

    win = Window(a.window)
    say("creating %d containers, %d requests in flight" % (n, a.window))
    cc0 = cpu_us(qpid)
    t0 = time.monotonic()
    for _ in range(n):
        win.submit(lambda: stub.CreateContainer.future(pb.CreateContainerRequest(spec=spec),
                                                       timeout=120), created)
    win.wait(600)
    create_s = time.monotonic() - t0
    create_cpu = (cpu_us(qpid) - cc0) / n
    idsf.close()
    after_create = proc_status(qpid)
    say("created %d in %.2f s (%.0f/s); CreateContainer p50 %.1f ms, p99 %.1f ms; quiltd VmRSS %.1f MiB"
        % (len(ids), create_s, n / create_s, pct(sorted(create_us), 50) / 1000,
           pct(sorted(create_us), 99) / 1000, after_create["VmRSS_kib"] / 1024))
    res["create"] = {"count": n, "window": a.window, "seconds": round(create_s, 3),
                     "rate_per_s": round(n / create_s, 1), "latency": lat_stats(create_us),
                     "quiltd_cpu_us_per_create": round(create_cpu, 1),
                     "quiltd_after": after_create}

    # ---------------------------------------------------------- verify
    time.sleep(2)  # let the last ones settle before measuring memory
    lst = stub.ListContainers(pb.ListContainersRequest(), timeout=60)
    running = {c.id: c for c in lst.containers if c.state == pb.CONTAINER_STATE_RUNNING}
    missing = [i for i in ids if i not in running]
    if len(running) != n or missing:
        raise Fail("ListContainers: %d running, expected %d (missing e.g. %s)"
                   % (len(running), n, missing[:3]))
    netns = set()
    for cid in ids:
        pid = pids[cid]
        cmd = read("/proc/%d/cmdline" % pid, "").split("\0")
        if cmd[:2] != ["sleep", "3600"]:
            raise Fail("container %s: pid %d runs %r, not sleep 3600" % (cid[:12], pid, cmd))
        cg = cgroup_lines(pid)
        key = "memory" if "memory" in parents else ""
        if not cg.get(key, "").endswith("/quilt/" + cid):
            raise Fail("container %s: pid %d is in cgroup %r" % (cid[:12], pid, cg.get(key)))
        for t in ("pid", "mnt", "net"):
            ns = os.readlink("/proc/%d/ns/%s" % (pid, t))
            if ns == host_ns[t] and not (t == "net" and a.network == "host"):
                raise Fail("container %s shares the host's %s namespace" % (cid[:12], t))
            if t == "net":
                netns.add(ns)
        for h, d in parents.items():
            if not os.path.isdir(os.path.join(d, cid)):
                raise Fail("container %s: no cgroup dir in %s" % (cid[:12], d))
    if a.network == "host":
        if netns != {host_ns["net"]}:
            raise Fail("network host: containers are not in the host's network namespace")
    elif len(netns) != n:
        raise Fail("%d distinct network namespaces for %d containers" % (len(netns), n))
    say("verified: %d running `sleep 3600`, each pid 1 of its own pid/mnt/net namespaces, "
        "in its own cgroup" % n)

    # ---------------------------------------------------------- measure
    running_st = proc_status(qpid)
    mem1 = meminfo()
    usage, kmem = [], []
    for cid in ids:
        u, k = cg_usage(os.path.join(mdir, cid))
        usage.append(u)
        if k is not None:
            kmem.append(k)
    parent1 = cg_usage(mdir)[0]
    stat_keys = ("rss", "cache", "mapped_file", "shmem", "total_rss", "total_cache",
                 "total_kernel", "anon", "file", "kernel", "kernel_stack", "pagetables",
                 "slab", "sock", "percpu")
    parent_stat = cg_stat(mdir, stat_keys)
    ctr_rss = []
    for cid in ids:
        for line in read("/proc/%d/status" % pids[cid], "").splitlines():
            if line.startswith("VmRSS:"):
                ctr_rss.append(int(line.split()[1]))
    memdelta = {k: mem1[k] - mem0[k] for k in mem1}
    res["running"] = {
        "quiltd": running_st,
        "quiltd_fds_per_container": round((running_st["fds"] - idle["fds"]) / n, 2),
        "quiltd_rss_kib_per_container": round((running_st["VmRSS_kib"] - idle["VmRSS_kib"]) / n, 2),
        "cgroup_memory": {
            "dir": mdir,
            "sum_usage_bytes": sum(usage),
            "per_container_usage_bytes": {"mean": round(statistics.mean(usage)),
                                          "median": round(statistics.median(usage)),
                                          "min": min(usage), "max": max(usage)},
            "sum_kmem_bytes": sum(kmem) if kmem else None,
            "quilt_parent_usage_bytes": parent1,
            "quilt_parent_usage_delta_bytes": parent1 - parent0,
            "quilt_parent_stat": parent_stat,
        },
        "container_processes_vmrss_kib": {"sum": sum(ctr_rss), "mean": round(statistics.mean(ctr_rss), 1)},
        "meminfo": mem1,
        "meminfo_delta_kib": memdelta,
        "meminfo_delta_kib_per_container": {k: round(v / n, 1) for k, v in memdelta.items()},
    }
    say("%d running: quiltd VmRSS %.1f MiB (VmHWM %.1f), %d fds (%.2f per container); "
        "container cgroups %.1f MiB in all (%.0f KiB each); MemAvailable %+.0f MiB (%+.0f KiB per container)"
        % (n, running_st["VmRSS_kib"] / 1024, running_st["VmHWM_kib"] / 1024, running_st["fds"],
           res["running"]["quiltd_fds_per_container"], sum(usage) / MIB, sum(usage) / n / 1024,
           memdelta["MemAvailable_kib"] / 1024, memdelta["MemAvailable_kib"] / n))

    # GetContainer, one call at a time on random ids.
    rnd = random.Random(1)
    calls = a.get_calls
    order = [rnd.choice(ids) for _ in range(calls)]
    for cid in order[:50]:  # warm-up: channel, caches
        stub.GetContainer(pb.GetContainerRequest(id=cid), timeout=10)
    get_us = []
    c0 = cpu_us(qpid)
    t0 = time.monotonic()
    for cid in order:
        t = time.monotonic()
        c = stub.GetContainer(pb.GetContainerRequest(id=cid), timeout=10)
        get_us.append((time.monotonic() - t) * 1e6)
        if c.id != cid or c.state != pb.CONTAINER_STATE_RUNNING:
            raise Fail("GetContainer(%s) answered %s %s" % (cid[:12], c.id[:12],
                                                            pb.ContainerState.Name(c.state)))
    get_s = time.monotonic() - t0
    c1 = cpu_us(qpid)
    get_cpu_us = (c1 - c0) / calls
    # The same loop on GetSystemInfo: what the client and the transport cost.
    sys_us = []
    c0 = cpu_us(qpid)
    for _ in range(calls):
        t = time.monotonic()
        stub.GetSystemInfo(pb.GetSystemInfoRequest(), timeout=10)
        sys_us.append((time.monotonic() - t) * 1e6)
    sys_cpu_us = (cpu_us(qpid) - c0) / calls
    # ListContainers with all of them.
    list_us, list_bytes = [], 0
    for _ in range(10):
        t = time.monotonic()
        r = stub.ListContainers(pb.ListContainersRequest(), timeout=60)
        list_us.append((time.monotonic() - t) * 1e6)
        list_bytes = r.ByteSize()
        if len(r.containers) != n:
            raise Fail("ListContainers returned %d, expected %d" % (len(r.containers), n))
    gs = lat_stats(get_us)
    res["get_container"] = {"calls": calls, "concurrency": 1, "ids": "random among the running",
                            "seconds": round(get_s, 3), "latency": gs,
                            "quiltd_cpu_us_per_call": round(get_cpu_us, 1)}
    res["get_system_info_reference"] = {"calls": len(sys_us), "latency": lat_stats(sys_us),
                                        "quiltd_cpu_us_per_call": round(sys_cpu_us, 1)}
    res["list_containers"] = {"calls": 10, "containers": n, "response_bytes": list_bytes,
                              "latency": lat_stats(list_us)}
    say("GetContainer x%d: p50 %.0f us, p99 %.0f us, max %.0f us (quiltd CPU %.0f us/call); "
        "GetSystemInfo p50 %.0f us (%.0f us/call); ListContainers(%d) p50 %.1f ms, %d bytes"
        % (calls, gs["p50_us"], gs["p99_us"], gs["max_us"], get_cpu_us,
           pct(sorted(sys_us), 50), sys_cpu_us, n, pct(sorted(list_us), 50) / 1000, list_bytes))
    before_teardown = proc_status(qpid)
    res["before_teardown"] = {"quiltd": before_teardown}

    # ---------------------------------------------------------- teardown
    # Two phases, each with every call in flight at once (the channel queues
    # what is over quiltd's per-connection stream limit): StopContainer,
    # then RemoveContainer once every Stop has answered.
    stop_us, rm_us, signals = [], [], {}

    def stopped(cid):
        def done(f, us):
            c = f.result().container
            if c.state != pb.CONTAINER_STATE_EXITED:
                raise Fail("StopContainer(%s): state %s" % (cid[:12], pb.ContainerState.Name(c.state)))
            with lock:
                stop_us.append(us)
                signals[c.exit_signal] = signals.get(c.exit_signal, 0) + 1
        return done

    def removed(f, us):
        f.result()
        with lock:
            rm_us.append(us)

    inflight = a.stop_window or n
    say("stopping all %d (timeout %d s), %s in flight; then removing them"
        % (n, a.stop_timeout, a.stop_window or "all"))
    c0 = cpu_us(qpid)
    t0 = time.monotonic()
    win2 = Window(inflight)
    for cid in ids:
        win2.submit(lambda cid=cid: stub.StopContainer.future(
            pb.StopContainerRequest(id=cid, timeout_seconds=a.stop_timeout), timeout=900),
            stopped(cid))
    win2.wait(900)
    stop_s = time.monotonic() - t0
    c1 = cpu_us(qpid)
    t1 = time.monotonic()
    j0 = cpu_us(jpid) if jpid else 0
    win3 = Window(inflight)
    for cid in ids:
        win3.submit(lambda cid=cid: stub.RemoveContainer.future(
            pb.RemoveContainerRequest(id=cid), timeout=900), removed)
    win3.wait(900)
    rm_s = time.monotonic() - t1
    c2 = cpu_us(qpid)
    # RemoveContainer may answer before the container's tree is gone (the
    # janitor deletes it): wait for every one of our dirs to disappear.
    cdir = os.path.join(a.root, "containers")
    deadline = time.monotonic() + 300
    while True:
        entries = set(os.listdir(cdir)) if os.path.isdir(cdir) else set()
        pending = [cid for cid in ids if cid in entries]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    drain_s = time.monotonic() - t1
    j_cpu = (cpu_us(jpid) - j0) / n if jpid and os.path.exists("/proc/%d" % jpid) else None
    res["teardown"] = {
        "stop_timeout_s": a.stop_timeout, "in_flight": inflight,
        "stop_seconds": round(stop_s, 3), "remove_seconds": round(rm_s, 3),
        "seconds": round(stop_s + rm_s, 3),
        "remove_rate_per_s": round(n / rm_s, 1),
        "stop_latency": lat_stats(stop_us), "remove_latency": lat_stats(rm_us),
        "quiltd_cpu_us_per_stop": round((c1 - c0) / n, 1),
        "quiltd_cpu_us_per_remove": round((c2 - c1) / n, 1),
        "dirs_gone_seconds_after_remove_start": round(drain_s, 3),
        "janitor_cpu_us_per_remove": round(j_cpu, 1) if j_cpu is not None else None,
        "exit_signals": {str(k): v for k, v in sorted(signals.items())},
    }
    say("teardown: all stopped after %.2f s (Stop p50 %.2f s, max %.2f s; exit signals %s), "
        "all removed %.2f s later (%.0f/s, Remove p50 %.1f ms, p99 %.1f ms; quiltd CPU %.0f us/remove)%s; "
        "their dirs gone %.2f s after the first Remove"
        % (stop_s, pct(sorted(stop_us), 50) / 1e6, max(stop_us) / 1e6, signals, rm_s, n / rm_s,
           pct(sorted(rm_us), 50) / 1000, pct(sorted(rm_us), 99) / 1000,
           res["teardown"]["quiltd_cpu_us_per_remove"],
           ", janitor CPU %.0f us/remove" % j_cpu if j_cpu is not None else "", drain_s))

    # ---------------------------------------------------------- after
    sampler.stop()
    left = stub.ListContainers(pb.ListContainersRequest(all=True), timeout=60).containers
    if left:
        raise Fail("ListContainers(all) still lists %d containers, e.g. %s" % (len(left), left[0].id[:12]))
    info2 = stub.GetSystemInfo(pb.GetSystemInfoRequest(), timeout=10)
    if info2.containers_total != 0 or info2.containers_running != 0:
        raise Fail("GetSystemInfo still counts %d containers (%d running)"
                   % (info2.containers_total, info2.containers_running))
    cg_left = [os.path.join(d, cid) for d in parents.values() for cid in ids
               if os.path.exists(os.path.join(d, cid))]
    if cg_left:
        raise Fail("%d container cgroup dirs left, e.g. %s" % (len(cg_left), cg_left[0]))
    alive = [p for p in pids.values() if read("/proc/%d/cmdline" % p, "").startswith("sleep\0003600")]
    if alive:
        raise Fail("%d container processes still alive, e.g. pid %d" % (len(alive), alive[0]))
    # Only our ids: <root>/containers also holds the warm pool's sandboxes
    # (quiltd --warm-pool), which are no containers yet.
    entries = set(os.listdir(cdir)) if os.path.isdir(cdir) else set()
    dirs_left = [cid for cid in ids if cid in entries]
    if dirs_left:
        raise Fail("%d container dirs still in %s %.0f s after RemoveContainer, e.g. %s"
                   % (len(dirs_left), cdir, drain_s, dirs_left[0]))
    mnt_left = mounts_mentioning(a.root)
    if mnt_left:
        raise Fail("%d mounts mention %s, e.g. %s" % (len(mnt_left), a.root, mnt_left[0]))
    time.sleep(1)
    final = proc_status(qpid)
    mem2 = meminfo()
    res["after"] = {"quiltd": final, "meminfo": mem2,
                    "janitor": proc_status(jpid) if jpid and os.path.exists("/proc/%d" % jpid) else None,
                    "other_entries_in_root_containers": len(entries),
                    "quilt_cgroup_usage_bytes": cg_usage(mdir)[0] if os.path.isdir(mdir) else 0,
                    "checks": "ListContainers(all) empty, no cgroup dirs, no processes, "
                              "no container dirs, no mounts under the root"}
    # + 4: the warm pool keeps up to four exited containers' network
    # namespaces open for its next sandboxes (quilt_warm_pool_netns_spare).
    if final["fds"] > idle["fds"] + 2 + 4:
        raise Fail("quiltd holds %d fds after removing everything, %d when idle (leak?)"
                   % (final["fds"], idle["fds"]))
    say("after: nothing left (containers, cgroups, processes, dirs, mounts); quiltd %d fds "
        "(idle %d), VmRSS %.1f MiB" % (final["fds"], idle["fds"], final["VmRSS_kib"] / 1024))

    # ---------------------------------------------------------- report
    hwm_mib = max(final["VmHWM_kib"], sampler.peak) / 1024
    rss_running_mib = running_st["VmRSS_kib"] / 1024
    p99_ms = gs["p99_us"] / 1000
    rss_met = hwm_mib <= TARGET_RSS_MIB
    get_met = p99_ms <= TARGET_GET_P99_MS
    res["quiltd_rss_peak_sampled_kib"] = sampler.peak
    res["targets"] = {
        "quiltd_rss_mib_at_most": TARGET_RSS_MIB, "quiltd_rss_judged_on": "VmHWM over the whole run",
        "quiltd_vmhwm_mib": round(hwm_mib, 2), "quiltd_rss_met": rss_met,
        "get_container_p99_ms_at_most": TARGET_GET_P99_MS, "get_container_p99_ms": round(p99_ms, 3),
        "get_container_p99_met": get_met,
    }
    result = {
        "benchmark": "density",
        "what": "N containers running `sleep 3600` at once through one quiltd (busybox default "
                "image, default namespaces): daemon memory, container memory, GetContainer "
                "latency, teardown time",
        "mode": env.get("mode"), "date": env.get("date"), "host": env.get("host"),
        "machine": {"nproc": int(env["nproc"]), "kernel": env["kernel"], "cpu_model": env["cpu_model"],
                    "mem_total_kb": int(env["mem_total_kb"]), "cgroup_mode": env["cgroup_mode"],
                    "nofile_hard": int(env["nofile_hard"])},
        "git": {"commit": env["git_commit"], "dirty": env["git_dirty"] == "true"},
        "build": {"buildtype": "release", "b_ndebug": True, "tests": False, "cc": env["cc"],
                  "dir": env["build_dir"]},
        "quiltd_root_fs": env.get("quiltd_root_fs"),
        "client": "Python grpcio %s, one channel (one HTTP/2 connection) over the Unix socket"
                  % grpc.__version__,
        "count": n,
        "network": a.network,
        "quiltd_args": env.get("quiltd_args", ""),
    }
    result.update(res)
    result["loadavg_at_end"] = read("/proc/loadavg").split()[:3]
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")

    mib = lambda b: "%.1f MiB" % (b / MIB)
    cm = res["running"]["cgroup_memory"]
    print()
    print("  density: %d containers running `sleep 3600`%s  (%s CPUs, %s, %s%s%s)"
          % (n, ", network host" if a.network == "host" else "", env["nproc"], env["kernel"],
             env["git_commit"], " dirty" if env["git_dirty"] == "true" else "",
             ", quiltd " + env["quiltd_args"] if env.get("quiltd_args") else ""))
    print("  create           %d in %.2f s = %.0f containers/s (%d in flight); CreateContainer p50 %.1f ms, p99 %.1f ms;"
          " quiltd CPU %.0f us/create"
          % (n, create_s, n / create_s, a.window, res["create"]["latency"]["p50_us"] / 1000,
             res["create"]["latency"]["p99_us"] / 1000, create_cpu))
    print("  quiltd RSS       idle %.1f MiB, %d running %.1f MiB (%.1f KiB/container), peak VmHWM %.1f MiB, after removal %.1f MiB"
          % (idle["VmRSS_kib"] / 1024, n, rss_running_mib, res["running"]["quiltd_rss_kib_per_container"],
             hwm_mib, final["VmRSS_kib"] / 1024))
    print("  quiltd fds       idle %d, running %d (%.2f/container), after %d"
          % (idle["fds"], running_st["fds"], res["running"]["quiltd_fds_per_container"], final["fds"]))
    if res["after"]["janitor"]:
        print("  janitor          pid %d (a child of quiltd, not counted above): VmRSS %.1f MiB, VmHWM %.1f MiB"
              % (jpid, res["after"]["janitor"]["VmRSS_kib"] / 1024, res["after"]["janitor"]["VmHWM_kib"] / 1024))
    print("  container memory cgroups: %s in all, %.0f KiB each (median %.0f, min %.0f, max %.0f KiB)%s"
          % (mib(cm["sum_usage_bytes"]), cm["per_container_usage_bytes"]["mean"] / 1024,
             cm["per_container_usage_bytes"]["median"] / 1024, cm["per_container_usage_bytes"]["min"] / 1024,
             cm["per_container_usage_bytes"]["max"] / 1024,
             "; kmem %s" % mib(cm["sum_kmem_bytes"]) if cm["sum_kmem_bytes"] is not None else ""))
    md = res["running"]["meminfo_delta_kib_per_container"]
    print("  machine          MemAvailable %+.0f KiB/container (Slab %+.0f, SUnreclaim %+.0f, "
          "KernelStack %+.0f, PageTables %+.0f, Percpu %+.0f)"
          % (md["MemAvailable_kib"], md["Slab_kib"], md["SUnreclaim_kib"], md["KernelStack_kib"],
             md["PageTables_kib"], md.get("Percpu_kib", 0)))
    print("  GetContainer     x%d sequential: p50 %.0f us, p90 %.0f us, p99 %.0f us, max %.0f us; quiltd CPU %.0f us/call"
          % (calls, gs["p50_us"], gs["p90_us"], gs["p99_us"], gs["max_us"], get_cpu_us))
    rs = res["get_system_info_reference"]["latency"]
    print("  (GetSystemInfo   same client: p50 %.0f us, p99 %.0f us, quiltd CPU %.0f us/call; ListContainers of %d: p50 %.1f ms, %d KiB)"
          % (rs["p50_us"], rs["p99_us"], sys_cpu_us, n, res["list_containers"]["latency"]["p50_us"] / 1000,
             list_bytes / 1024))
    td = res["teardown"]
    print("  teardown         Stop(timeout %d s) all at once: %.2f s; then Remove all at once: %.2f s (%.0f/s);"
          " %.2f s in all; quiltd CPU %.0f us/stop, %.0f us/remove%s"
          % (a.stop_timeout, td["stop_seconds"], td["remove_seconds"], td["remove_rate_per_s"],
             td["seconds"], td["quiltd_cpu_us_per_stop"], td["quiltd_cpu_us_per_remove"],
             " (+ janitor %.0f us); dirs gone %.2f s after the first Remove"
             % (td["janitor_cpu_us_per_remove"], td["dirs_gone_seconds_after_remove_start"])
             if td["janitor_cpu_us_per_remove"] is not None else ""))
    print()
    print("  target quiltd RSS <= %d MiB (VmHWM): %.1f MiB -> %s"
          % (TARGET_RSS_MIB, hwm_mib, "MET" if rss_met else "MISSED"))
    print("  target GetContainer p99 <= %.0f ms: %.2f ms -> %s"
          % (TARGET_GET_P99_MS, p99_ms, "MET" if get_met else "MISSED"))
    print("\n  JSON: %s" % a.out)
    if a.strict and not (rss_met and get_met):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())

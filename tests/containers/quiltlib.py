"""Helpers for the container integration tests (tests/containers).

Run under Debian's /usr/bin/python3 (python3-grpcio, python3-grpc-tools,
python3-protobuf). Configuration comes from the environment:

    QUILTD           path of the quiltd binary
    QUILT_PROTO_DIR  directory holding quilt.proto

Stubs are generated into a temporary directory by load_stubs(); a Daemon runs
one real quiltd (as root) on a temporary socket and root directory.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc

pb = pbg = None  # quilt_pb2, quilt_pb2_grpc once load_stubs() ran
_stub_dir = None

CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "freezer")
RPC_TIMEOUT = 10.0


# ------------------------------------------------------------------ stubs

def load_stubs():
    """Generates quilt_pb2 / quilt_pb2_grpc with grpc_tools.protoc and imports them."""
    global pb, pbg, _stub_dir
    if pb is not None:
        return pb, pbg
    quiltd = os.environ.get("QUILTD", "")
    proto_dir = os.environ.get("QUILT_PROTO_DIR", "")
    if not quiltd or not os.access(quiltd, os.X_OK):
        raise RuntimeError("set QUILTD to the quiltd binary (got %r)" % quiltd)
    if not os.path.isfile(os.path.join(proto_dir, "quilt.proto")):
        raise RuntimeError("set QUILT_PROTO_DIR to the directory of quilt.proto (got %r)"
                           % proto_dir)
    _stub_dir = tempfile.mkdtemp(prefix="quilt-ct-stubs-")
    proc = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I" + proto_dir,
         "--python_out=" + _stub_dir, "--grpc_python_out=" + _stub_dir, "quilt.proto"],
        capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        shutil.rmtree(_stub_dir, ignore_errors=True)
        raise RuntimeError("grpc_tools.protoc failed:\n" + proc.stderr)
    sys.path.insert(0, _stub_dir)
    import quilt_pb2
    import quilt_pb2_grpc
    pb, pbg = quilt_pb2, quilt_pb2_grpc
    return pb, pbg


def unload_stubs():
    global _stub_dir
    if _stub_dir:
        if _stub_dir in sys.path:
            sys.path.remove(_stub_dir)
        shutil.rmtree(_stub_dir, ignore_errors=True)
        _stub_dir = None


# ------------------------------------------------------------------ host probes

def read_text(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def cgroup_lines(pid):
    """{controller: path} from /proc/<pid>/cgroup; the v2 line is under ""."""
    out = {}
    for line in read_text("/proc/%d/cgroup" % pid).splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[1] == "":
            out[""] = parts[2]
        for ctrl in parts[1].split(","):
            if ctrl:
                out[ctrl] = parts[2]
    return out


def pids_in_cgroups_named(ids):
    """{pid: cgroup line} of host processes whose cgroup path ends in quilt/<id>."""
    ids = set(ids)
    found = {}
    if not ids:
        return found
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        for line in read_text("/proc/%s/cgroup" % name).splitlines():
            m = re.search(r"/quilt/([0-9a-f]{64})$", line)
            if m and m.group(1) in ids:
                found[int(name)] = line
                break
    return found


def process_alive(pid):
    """True unless the process is gone or a zombie."""
    stat = read_text("/proc/%d/stat" % pid)
    if not stat:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def scratch_of(root):
    """The tmpfs quiltd keeps containers' writable layers on (--scratch)."""
    return os.path.join(root, "scratch")


def mounts_mentioning(path):
    """Mounts naming path, except a daemon's own scratch tmpfs under it."""
    out = []
    for l in read_text("/proc/self/mountinfo").splitlines():
        if path in l and not l.split()[4].endswith("/scratch"):
            out.append(l)
    return out


def unmount_scratch(root):
    """A test's root may keep quiltd's scratch tmpfs mounted (containers
    left in it, or quiltd killed): unmount it before deleting the root."""
    path = scratch_of(root)
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", path], check=False)


# ------------------------------------------------------------------ daemon

class Daemon:
    """One quiltd on a temporary Unix socket and a (possibly shared) root."""

    _counter = 0

    def __init__(self, tmp, root=None, extra_args=(), wrapper=()):
        Daemon._counter += 1
        self.tmp = tmp
        self.root = root or os.path.join(tmp, "root")
        self.socket_path = os.path.join(tmp, "quiltd-%d.sock" % Daemon._counter)
        self.log_path = os.path.join(tmp, "quiltd-%d.log" % Daemon._counter)
        self.extra_args = list(extra_args)
        self.wrapper = list(wrapper)  # e.g. ("unshare", "-n"): a network of its own
        self.proc = None
        self.channel = None
        self.stub = None
        self.cgroup_dirs = {}

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=10.0):
        args = self.wrapper + [os.environ["QUILTD"], "--socket", self.socket_path, "--root", self.root,
                "--log-level", "info"] + self.extra_args + \
            os.environ.get("QUILTD_EXTRA_ARGS", "").split()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("quiltd exited with %d at start\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            if os.path.exists(self.socket_path):
                break
            time.sleep(0.02)
        else:
            self.kill()
            raise RuntimeError("quiltd did not create its socket in %.0f s\n%s"
                               % (timeout, self.log_tail()))
        self.connect()
        self.stub.GetSystemInfo(pb.GetSystemInfoRequest(), timeout=timeout,
                                wait_for_ready=True)
        self.cgroup_dirs = self._cgroup_parents()
        return self

    def connect(self):
        self.channel = grpc.insecure_channel("unix:" + self.socket_path)
        self.stub = pbg.QuiltStub(self.channel)

    def disconnect(self):
        if self.channel is not None:
            self.channel.close()
        self.channel = self.stub = None

    def _cgroup_parents(self):
        """Where quiltd puts container cgroups: <hierarchy>/<own cgroup>/quilt."""
        lines = cgroup_lines(self.pid)
        dirs = {}
        for ctrl in CGROUP_CONTROLLERS:
            if ctrl in lines and os.path.isdir(os.path.join(CGROUP_ROOT, ctrl)):
                dirs[ctrl] = os.path.join(CGROUP_ROOT, ctrl, lines[ctrl].lstrip("/"), "quilt")
        if not dirs and "" in lines:  # unified hierarchy
            own = lines[""].lstrip("/")
            dirs["unified"] = os.path.join(CGROUP_ROOT, own, "quilt")
            dirs["unified-parent"] = os.path.join(CGROUP_ROOT, os.path.dirname(own), "quilt")
        return dirs

    def container_cgroups(self, cid):
        return {ctrl: os.path.join(d, cid) for ctrl, d in self.cgroup_dirs.items()}

    def fd_count(self):
        return fd_count(self.pid)

    def http_get(self, path):
        """Body of an HTTP/1.1 GET on the daemon's socket (health, metrics)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(RPC_TIMEOUT)
            s.connect(self.socket_path)
            s.sendall(b"GET %s HTTP/1.1\r\nHost: quilt\r\nConnection: close\r\n\r\n"
                      % path.encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.split(b"\r\n\r\n", 1)[1].decode()

    def metric(self, name):
        for line in self.http_get("/metrics").splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def pool_enabled(self):
        args = self.extra_args + os.environ.get("QUILTD_EXTRA_ARGS", "").split()
        return not any(a == "--warm-pool" and args[i + 1] == "0"
                       for i, a in enumerate(args[:-1]))

    def wait_pool_ready(self, n=2, timeout=20.0):
        """Waits until the warm pool holds n sandboxes; returns their ids."""
        deadline = time.monotonic() + timeout
        while self.metric("quilt_warm_pool_ready") < n:
            if time.monotonic() > deadline:
                raise AssertionError("warm pool not ready after %.0f s\n%s"
                                     % (timeout, self.log_tail()))
            time.sleep(0.05)
        return self.dir_ids()

    def layer_dir(self, cid):
        """Where a container's writable layer is: the scratch tmpfs, or its
        directory with --scratch disk."""
        if os.path.ismount(scratch_of(self.root)):
            return os.path.join(scratch_of(self.root), cid)
        return os.path.join(self.root, "containers", cid)

    def dir_ids(self):
        """Ids of everything under <root>/containers (containers and warm
        sandboxes; not .spare, the emptied directories kept for reuse)."""
        try:
            return {n for n in os.listdir(os.path.join(self.root, "containers"))
                    if not n.startswith(".")}
        except OSError:
            return set()

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Signals quiltd and returns its exit status (None if it had to be killed)."""
        self.disconnect()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode

    def kill(self):
        self.disconnect()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def log_tail(self, n=40):
        lines = read_text(self.log_path).splitlines()
        return "\n".join("quiltd| " + l for l in lines[-n:])


# ------------------------------------------------------------------ streams

class EventCollector:
    """Reads WatchEvents on a thread; wait_for() looks at what arrived."""

    def __init__(self, stub, timeout=120.0, **req):
        self.events = []
        self.error = None
        self.done = False
        self.cond = threading.Condition()
        self.call = stub.WatchEvents(pb.WatchEventsRequest(**req), timeout=timeout)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        # The first heartbeat is sent at subscription: after it, nothing is missed.
        if self.wait_for(lambda e: e.type == pb.EVENT_TYPE_HEARTBEAT, 5.0) is None:
            self.close()
            raise AssertionError("WatchEvents sent no initial heartbeat within 5 s (%s)"
                                 % self.error)

    def _run(self):
        try:
            for ev in self.call:
                with self.cond:
                    self.events.append(ev)
                    self.cond.notify_all()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.error = e
        finally:
            with self.cond:
                self.done = True
                self.cond.notify_all()

    def wait_for(self, pred, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.events:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or self.done:
                    return None
                self.cond.wait(left)

    def for_container(self, cid):
        with self.cond:
            return [e for e in self.events
                    if e.type != pb.EVENT_TYPE_HEARTBEAT and e.container_id == cid]

    def close(self):
        self.call.cancel()
        self.thread.join(10)


def signal_quietly(pid, sig):
    """Sends sig to pid unless it is gone already."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def children_of(ppid, name):
    """Pids of ppid's children whose name (comm) is name."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fields = dict(l.split(":\t", 1) for l in read_text("/proc/%s/status" % pid).splitlines()
                      if ":\t" in l)
        if fields.get("Name") == name and int(fields.get("PPid", "0")) == ppid:
            out.append(int(pid))
    return out

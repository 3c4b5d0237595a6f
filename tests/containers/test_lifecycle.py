#!/usr/bin/python3
"""Container lifecycle integration tests: real containers run by a real quiltd.

Needs root, Debian's /usr/bin/python3 with python3-grpcio/-grpc-tools/-protobuf,
and quiltd's built-in busybox rootfs (the `busybox-rootfs` build target):

    QUILTD=/tmp/build/quiltd QUILT_PROTO_DIR=proto \
        /usr/bin/python3 tests/containers/test_lifecycle.py -v

Each test class starts its own quiltd on a temporary socket and root (the
restart tests start several in turn on one root). tearDown force-removes every
container the daemon knows and checks each one left nothing behind (cgroup
directories, <root>/containers/<id>, processes); tearDownClass checks the
daemon's fd count is back at its baseline and no mount mentions the root, then
stops the daemon with SIGTERM and expects exit status 0.
"""
import concurrent.futures
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quiltlib  # noqa: E402
from quiltlib import Daemon, EventCollector, RPC_TIMEOUT  # noqa: E402

pb = None  # quilt_pb2, set by setUpModule
Code = grpc.StatusCode
FD_TOLERANCE = 3


def setUpModule():
    global pb
    pb, _ = quiltlib.load_stubs()


def tearDownModule():
    quiltlib.unload_stubs()


# ------------------------------------------------------------------ leak checks

def pool_fds(daemon):
    """The fds of warm sandboxes beyond the default image's two, which the
    baseline holds: the pool also keeps sandboxes of images and setup layers
    it learned (each holds a pidfd, its status and control pipes and the
    read ends of its stdout and stderr)."""
    if not daemon.pool_enabled():
        return 0
    # Plus the network namespaces of exited containers kept for the next
    # sandboxes (one fd each).
    return 5 * max(0, int(daemon.metric("quilt_warm_pool_size")) - 2) + \
        int(daemon.metric("quilt_warm_pool_netns_spare"))


def leftovers(daemon, ids, fd_baseline=None, timeout=10.0):
    """Problems left by the containers `ids`; polls until none or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        problems = []
        for cid in sorted(ids):
            for ctrl, path in daemon.container_cgroups(cid).items():
                if os.path.exists(path):
                    procs = quiltlib.read_text(os.path.join(path, "cgroup.procs")).split()
                    problems.append("cgroup dir left: %s (processes: %s)"
                                    % (path, " ".join(procs) or "none"))
            cdir = os.path.join(daemon.root, "containers", cid)
            try:  # the janitor may be deleting it right now
                problems.append("container dir left: %s (%s)" % (cdir, os.listdir(cdir)))
            except FileNotFoundError:
                pass
        for pid, line in sorted(quiltlib.pids_in_cgroups_named(ids).items()):
            if quiltlib.process_alive(pid):
                problems.append("process %d still in container cgroup %s" % (pid, line))
        for line in quiltlib.mounts_mentioning(daemon.root):
            problems.append("mount left: %s" % line)
        if fd_baseline is not None and daemon.proc.poll() is None:
            now = daemon.fd_count()
            allowed = FD_TOLERANCE + pool_fds(daemon)
            if now > fd_baseline + allowed:
                problems.append("quiltd has %d open fds, baseline %d (+%d allowed): %s"
                                % (now, fd_baseline, allowed, fd_listing(daemon.pid)))
        if not problems or time.monotonic() >= deadline:
            return problems
        time.sleep(0.1)


def fd_listing(pid):
    out = []
    try:
        for fd in sorted(os.listdir("/proc/%d/fd" % pid), key=int):
            try:
                out.append("%s->%s" % (fd, os.readlink("/proc/%d/fd/%s" % (pid, fd))))
            except OSError:
                pass
    except OSError:
        pass
    return ", ".join(out)


def remove_all(daemon, extra_ids=()):
    """Force-removes every container quiltd lists (and extra_ids); returns (ids, errors)."""
    ids, errors = set(extra_ids), []
    try:
        listed = daemon.stub.ListContainers(pb.ListContainersRequest(all=True),
                                            timeout=RPC_TIMEOUT)
        ids |= {c.id for c in listed.containers}
    except grpc.RpcError as e:
        errors.append("ListContainers: %s %s" % (e.code(), e.details()))
    for cid in sorted(ids):
        try:
            daemon.stub.RemoveContainer(pb.RemoveContainerRequest(id=cid, force=True),
                                        timeout=30)
        except grpc.RpcError as e:
            if e.code() != Code.NOT_FOUND:
                errors.append("RemoveContainer(%s, force): %s %s"
                              % (cid[:12], e.code(), e.details()))
    return ids, errors


# ------------------------------------------------------------------ base class

class QuiltTestCase(unittest.TestCase):
    """One quiltd per class; helpers to run containers on it."""

    daemon = None
    start_daemon = True

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="quilt-ct-")
        cls.seen_ids = set()
        cls.daemons = []
        cls.daemon = None
        cls.fd_baseline = None
        if not cls.start_daemon:
            return
        try:
            cls.daemon = cls.new_daemon()
            cls.fd_baseline = cls.warm_up(cls.daemon)
        except BaseException:
            cls.cleanup_daemons()
            raise

    daemon_args = ()
    daemon_wrapper = ()

    @classmethod
    def new_daemon(cls, root=None):
        d = Daemon(cls.tmp, root=root, extra_args=cls.daemon_args, wrapper=cls.daemon_wrapper)
        cls.daemons.append(d)
        return d.start()

    @classmethod
    def warm_up(cls, d):
        """Runs one container so lazily opened fds (the store's journal...) are
        part of the baseline; fails early without a default rootfs."""
        try:
            r = d.stub.CreateContainer(pb.CreateContainerRequest(
                spec=pb.ContainerSpec(command=["true"])), timeout=RPC_TIMEOUT)
        except grpc.RpcError as e:
            raise RuntimeError(
                "quiltd cannot run a container with its default rootfs: %s %s\n"
                "(is the busybox-rootfs target built? `ninja -C BUILD quiltd busybox-rootfs`)\n%s"
                % (e.code(), e.details(), d.log_tail()))
        d.stub.WaitContainer(pb.WaitContainerRequest(id=r.container.id), timeout=30)
        cls.seen_ids.add(r.container.id)
        d.stub.RemoveContainer(pb.RemoveContainerRequest(id=r.container.id, force=True),
                               timeout=30)
        time.sleep(0.2)
        if d.pool_enabled():  # each ready sandbox holds a few of quiltd's fds
            d.wait_pool_ready()
        return d.fd_count()

    @classmethod
    def cleanup_daemons(cls):
        for d in cls.daemons:
            d.kill()
            quiltlib.unmount_scratch(d.root)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        problems = []
        try:
            d = cls.daemon
            if d is not None and d.proc.poll() is None:
                problems += leftovers(d, cls.seen_ids, cls.fd_baseline)
                rc = d.stop()
                if rc != 0:
                    problems.append("quiltd did not exit 0 on SIGTERM: %r\n%s"
                                    % (rc, d.log_tail()))
            elif d is not None:
                problems.append("quiltd died during the tests (status %r)\n%s"
                                % (d.proc.returncode, d.log_tail()))
        finally:
            cls.cleanup_daemons()
        if problems:
            raise AssertionError("after %s:\n  %s" % (cls.__name__, "\n  ".join(problems)))

    # -------------------------------------------------------------- per test

    def setUp(self):
        self.created = []
        self.collectors = []

    def tearDown(self):
        for col in self.collectors:
            col.close()
        d = self.daemon
        if d is None or d.stub is None or d.proc.poll() is not None:
            return
        ids, errors = remove_all(d, self.created)
        type(self).seen_ids |= ids
        problems = errors + leftovers(d, ids)
        if problems:
            self.fail("cleanup:\n  " + "\n  ".join(problems) + "\n" + d.log_tail(15))

    # -------------------------------------------------------------- helpers

    @property
    def stub(self):
        return self.daemon.stub

    @staticmethod
    def spec(cmd, **kw):
        if isinstance(cmd, str):
            cmd = ["sh", "-c", cmd]
        return pb.ContainerSpec(command=cmd, **kw)

    def create(self, cmd, no_start=False, timeout=RPC_TIMEOUT, **kw):
        r = self.stub.CreateContainer(
            pb.CreateContainerRequest(spec=self.spec(cmd, **kw), no_start=no_start),
            timeout=timeout)
        self.created.append(r.container.id)
        return r.container

    def get(self, ref):
        return self.stub.GetContainer(pb.GetContainerRequest(id=ref), timeout=RPC_TIMEOUT)

    def wait(self, ref, timeout=30):
        return self.stub.WaitContainer(pb.WaitContainerRequest(id=ref), timeout=timeout)

    def kill(self, ref, sig):
        return self.stub.KillContainer(pb.KillContainerRequest(id=ref, signal=sig),
                                       timeout=RPC_TIMEOUT)

    def stats(self, ref):
        return self.stub.GetStats(pb.GetStatsRequest(id=ref), timeout=RPC_TIMEOUT)

    def chunks(self, ref, follow=True, timeout=60, **kw):
        return list(self.stub.StreamLogs(pb.StreamLogsRequest(id=ref, follow=follow, **kw),
                                         timeout=timeout))

    def logs(self, ref, follow=True, timeout=60, **kw):
        return b"".join(c.data for c in self.chunks(ref, follow, timeout, **kw))

    def run_container(self, cmd, timeout=30, **kw):
        c = self.create(cmd, timeout=max(timeout, RPC_TIMEOUT), **kw)
        w = self.wait(c.id, timeout)
        return c, w, self.logs(c.id, timeout=timeout)

    def wait_for_output(self, ref, marker, timeout=15):
        """Follows the logs until `marker` shows up; False if it never does."""
        call = self.stub.StreamLogs(pb.StreamLogsRequest(id=ref, follow=True), timeout=timeout)
        seen = b""
        try:
            for chunk in call:
                seen += chunk.data
                if marker in seen:
                    return True
        except grpc.RpcError as e:
            if e.code() != Code.DEADLINE_EXCEEDED:
                raise
        finally:
            call.cancel()
        return False

    def events(self, **req):
        col = EventCollector(self.stub, **req)
        self.collectors.append(col)
        return col

    def assertRpcCode(self, code, fn, *args, **kw):
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        return cm.exception


def parse_kv(data):
    out = {}
    for line in data.decode(errors="replace").splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k] = v.strip()
    return out


# ------------------------------------------------------------------ lifecycle

class LifecycleTest(QuiltTestCase):

    def test_echo_hello(self):
        c, w, out = self.run_container(["echo", "hello"])
        self.assertEqual((w.exit_code, w.signal), (0, 0))
        self.assertEqual(out, b"hello\n")
        self.assertEqual(self.get(c.id).state, pb.CONTAINER_STATE_EXITED)

    def test_create_returns_running(self):
        c = self.create(["sleep", "100"])
        self.assertEqual(c.state, pb.CONTAINER_STATE_RUNNING)
        self.assertGreater(c.pid, 0)
        self.assertTrue(quiltlib.process_alive(c.pid))

    def test_exit_code(self):
        c, w, _ = self.run_container("exit 42")
        self.assertEqual((w.exit_code, w.signal, w.oom_killed), (42, 0, False))
        g = self.get(c.id)
        self.assertEqual((g.state, g.exit_code, g.exit_signal, g.pid),
                         (pb.CONTAINER_STATE_EXITED, 42, 0, 0))
        self.assertGreater(g.finished_at_ns, g.started_at_ns)
        self.assertGreaterEqual(g.started_at_ns, g.created_at_ns)

    def test_kill_sigkill(self):
        c = self.create(["sleep", "100"])
        self.kill(c.id, 9)
        w = self.wait(c.id)
        self.assertEqual((w.signal, w.exit_code), (9, 137))
        g = self.get(c.id)
        self.assertEqual((g.exit_signal, g.exit_code), (9, 137))

    def test_kill_sigterm_runs_trap(self):
        c = self.create('trap "exit 5" TERM; echo ready; while true; do sleep 0.1; done')
        self.assertTrue(self.wait_for_output(c.id, b"ready"), "container never got ready")
        self.kill(c.id, 15)
        w = self.wait(c.id, 15)
        self.assertEqual((w.exit_code, w.signal), (5, 0))

    def test_env_and_workdir(self):
        _, w, out = self.run_container(
            'echo "FOO=$FOO"; echo "PATH=$PATH"; echo "HOME=$HOME"; echo "TERM=$TERM"; '
            'echo "PWD=$(pwd)"; echo "NTERM=$(env | grep -c ^TERM=)"',
            env=["FOO=bar"], working_dir="/tmp")
        self.assertEqual(w.exit_code, 0, out)
        kv = parse_kv(out)
        self.assertEqual(kv.get("FOO"), "bar", out)
        self.assertIn("/bin", kv.get("PATH", "").split(":"), out)
        self.assertEqual(kv.get("HOME"), "/root", out)
        self.assertEqual(kv.get("TERM"), "xterm", out)
        self.assertEqual(kv.get("PWD"), "/tmp", out)
        self.assertEqual(kv.get("NTERM"), "1", out)

    def test_env_overrides_default(self):
        _, _, out = self.run_container('echo "TERM=$TERM"; echo "N=$(env | grep -c ^TERM=)"',
                                       env=["TERM=dumb"])
        self.assertEqual(parse_kv(out), {"TERM": "dumb", "N": "1"})

    def test_no_leaked_fds(self):
        _, w, out = self.run_container(["ls", "/proc/self/fd"])
        self.assertEqual(w.exit_code, 0, out)
        fds = set(out.split())
        # ls itself holds one more fd for the directory it lists.
        self.assertEqual(fds - {b"3"}, {b"0", b"1", b"2"}, out)
        # The container's init (sh as PID 1) holds exactly stdin/stdout/stderr.
        # (not the shell's last command, which busybox sh would exec in its place)
        _, _, out = self.run_container("ls /proc/1/fd; exit 0")
        self.assertEqual(set(out.split()), {b"0", b"1", b"2"}, out)

    def test_stop_escalates_to_sigkill(self):
        c = self.create('trap "" TERM; echo ready; while :; do sleep 0.1; done')
        self.assertTrue(self.wait_for_output(c.id, b"ready"))
        t0 = time.monotonic()
        r = self.stub.StopContainer(pb.StopContainerRequest(id=c.id, timeout_seconds=1),
                                    timeout=15)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.9, "SIGKILL came before the 1 s grace period")
        self.assertLess(elapsed, 3.5)
        self.assertEqual(r.container.state, pb.CONTAINER_STATE_EXITED)
        self.assertEqual((r.container.exit_signal, r.container.exit_code), (9, 137))

    def test_stop_plain_sleep_needs_sigkill(self):
        # PID 1 without a SIGTERM handler ignores SIGTERM: Stop must escalate.
        c = self.create(["sleep", "100"])
        t0 = time.monotonic()
        r = self.stub.StopContainer(pb.StopContainerRequest(id=c.id, timeout_seconds=1),
                                    timeout=15)
        self.assertLess(time.monotonic() - t0, 3.5)
        self.assertEqual((r.container.exit_signal, r.container.exit_code), (9, 137))
        self.assertEqual(self.wait(c.id).exit_code, 137)

    def test_stop_exited_is_noop(self):
        c, _, _ = self.run_container("exit 3")
        r = self.stub.StopContainer(pb.StopContainerRequest(id=c.id, timeout_seconds=1),
                                    timeout=RPC_TIMEOUT)
        self.assertEqual((r.container.state, r.container.exit_code),
                         (pb.CONTAINER_STATE_EXITED, 3))

    # -------------------------------------------------------------- names

    def test_lookup_by_name_id_and_prefix(self):
        name = "lookup-" + uuid.uuid4().hex[:8]
        c = self.create(["sleep", "100"], name=name)
        self.assertEqual(c.name, name)
        self.assertEqual(self.get(name).id, c.id)
        self.assertEqual(self.get(c.id).id, c.id)
        self.assertEqual(self.get(c.id[:8]).id, c.id)
        e = self.assertRpcCode(Code.ALREADY_EXISTS, self.create, ["true"], name=name)
        self.assertIn(name, e.details())

    # -------------------------------------------------------------- bad input

    def test_missing_image_not_found(self):
        self.assertRpcCode(Code.NOT_FOUND, self.create, ["true"], image="/nonexistent")

    def test_unknown_id_not_found(self):
        ghost = "f" * 64
        self.assertRpcCode(Code.NOT_FOUND, self.get, ghost)
        self.assertRpcCode(Code.NOT_FOUND, self.wait, ghost)
        self.assertRpcCode(Code.NOT_FOUND, self.kill, ghost, 9)
        self.assertRpcCode(Code.NOT_FOUND, self.stub.RemoveContainer,
                           pb.RemoveContainerRequest(id=ghost, force=True), timeout=RPC_TIMEOUT)
        self.assertRpcCode(Code.NOT_FOUND, self.logs, ghost)

    def test_empty_command_invalid(self):
        self.assertRpcCode(Code.INVALID_ARGUMENT, self.create, [])

    def test_negative_pids_limit_invalid(self):
        self.assertRpcCode(Code.INVALID_ARGUMENT, self.create, ["true"], pids_limit=-5)

    def test_command_not_found(self):
        name = "nocmd-" + uuid.uuid4().hex[:8]
        e = self.assertRpcCode(Code.NOT_FOUND, self.create, ["no-such-command-xyz"], name=name)
        self.assertIn("no-such-command-xyz", e.details())
        g = self.get(name)
        self.assertEqual(g.state, pb.CONTAINER_STATE_FAILED)
        self.assertIn("no-such-command-xyz", g.failure_reason)

    def test_bad_working_dir(self):
        e = self.assertRpcCode(Code.FAILED_PRECONDITION, self.create, ["true"],
                               working_dir="/no/such/dir")
        self.assertIn("/no/such/dir", e.details())

    def test_remove_running_without_force(self):
        c = self.create(["sleep", "100"])
        self.assertRpcCode(Code.FAILED_PRECONDITION, self.stub.RemoveContainer,
                           pb.RemoveContainerRequest(id=c.id), timeout=RPC_TIMEOUT)
        self.assertEqual(self.get(c.id).state, pb.CONTAINER_STATE_RUNNING)

    def test_kill_exited(self):
        c, _, _ = self.run_container(["true"])
        self.assertRpcCode(Code.FAILED_PRECONDITION, self.kill, c.id, 9)

    # -------------------------------------------------------------- start, wait

    def test_no_start_then_start(self):
        c = self.create(["sleep", "100"], no_start=True)
        self.assertEqual(c.state, pb.CONTAINER_STATE_CREATED)
        self.assertEqual(c.pid, 0)
        self.assertEqual(self.get(c.id).state, pb.CONTAINER_STATE_CREATED)
        r = self.stub.StartContainer(pb.StartContainerRequest(id=c.id), timeout=RPC_TIMEOUT)
        self.assertEqual(r.container.state, pb.CONTAINER_STATE_RUNNING)
        self.assertGreater(r.container.pid, 0)
        self.assertRpcCode(Code.FAILED_PRECONDITION, self.stub.StartContainer,
                           pb.StartContainerRequest(id=c.id), timeout=RPC_TIMEOUT)
        self.assertEqual(self.get(c.id).state, pb.CONTAINER_STATE_RUNNING)

    def test_remove_created_container(self):
        c = self.create(["true"], no_start=True)
        self.stub.RemoveContainer(pb.RemoveContainerRequest(id=c.id), timeout=RPC_TIMEOUT)
        self.assertRpcCode(Code.NOT_FOUND, self.get, c.id)

    def test_wait_deadline(self):
        c = self.create(["sleep", "100"])
        t0 = time.monotonic()
        self.assertRpcCode(Code.DEADLINE_EXCEEDED, self.wait, c.id, 0.5)
        self.assertLess(time.monotonic() - t0, 3)
        self.stub.GetSystemInfo(pb.GetSystemInfoRequest(), timeout=2)
        self.assertEqual(self.get(c.id).state, pb.CONTAINER_STATE_RUNNING)
        # The abandoned waiter must not disturb the next one.
        self.kill(c.id, 9)
        self.assertEqual(self.wait(c.id).signal, 9)

    def test_auto_remove(self):
        ev = self.events(types=[pb.EVENT_TYPE_REMOVED])
        c = self.create("echo bye", auto_remove=True)
        removed = ev.wait_for(lambda e: e.container_id == c.id, 15)
        self.assertIsNotNone(removed, "no REMOVED event for an auto_remove container")
        self.assertRpcCode(Code.NOT_FOUND, self.get, c.id)
        self.assertEqual(leftovers(self.daemon, {c.id}), [])

    # -------------------------------------------------------------- events

    def test_events_in_order(self):
        everything = self.events()
        c = self.create("exit 7", no_start=True)
        by_id = self.events(container_id=c.id)
        other = self.create(["true"])  # noise the filter must drop
        self.stub.StartContainer(pb.StartContainerRequest(id=c.id), timeout=RPC_TIMEOUT)
        self.assertEqual(self.wait(c.id).exit_code, 7)
        EX = pb.EVENT_TYPE_EXITED
        for col, cid in ((everything, c.id), (everything, other.id), (by_id, c.id)):
            self.assertIsNotNone(col.wait_for(lambda e: e.type == EX and e.container_id == cid,
                                              10), "no EXITED event for %s" % cid[:12])
        seq = everything.for_container(c.id)
        self.assertEqual([e.type for e in seq],
                         [pb.EVENT_TYPE_CREATED, pb.EVENT_TYPE_STARTED, EX])
        self.assertEqual(seq[-1].detail, "7")
        ts = [e.timestamp_ns for e in seq]
        self.assertEqual(ts, sorted(ts))
        filtered = [e for e in by_id.events if e.type != pb.EVENT_TYPE_HEARTBEAT]
        self.assertEqual([(e.type, e.container_id) for e in filtered],
                         [(pb.EVENT_TYPE_STARTED, c.id), (EX, c.id)])
        self.assertEqual(filtered[-1].detail, "7")

    def test_events_filter_by_name_or_prefix(self):
        # quilt.proto: "Every RPC that names a container accepts its full id, a
        # unique id prefix, or its name" -- WatchEventsRequest.container_id too.
        name = "evname-" + uuid.uuid4().hex[:8]
        c = self.create("exit 0", no_start=True, name=name)
        by_name = self.events(container_id=name)
        by_prefix = self.events(container_id=c.id[:12])
        self.stub.StartContainer(pb.StartContainerRequest(id=c.id), timeout=RPC_TIMEOUT)
        self.wait(c.id)
        missed = [label for label, col in (("name", by_name), ("id prefix", by_prefix))
                  if col.wait_for(lambda e: e.type == pb.EVENT_TYPE_EXITED, 5) is None]
        self.assertEqual(missed, [], "WatchEvents(container_id=<name or id prefix>) saw no "
                         "EXITED event of the container")


# ------------------------------------------------------------------ isolation

class IsolationTest(QuiltTestCase):

    SCRIPT = "; ".join([
        'echo "pid=$$"',
        'echo "host=$(hostname)"',
        r'echo "procs=$(ls /proc | grep -E "^[0-9]+$" | tr "\n" " ")"',
        r'echo "netdev=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\n" " ")"',
        r'echo "netdirs=$(ls /sys/class/net | tr "\n" " ")"',
        'echo "loflags=$(cat /sys/class/net/lo/flags)"',
        'for ns in ipc net uts pid mnt; do echo "ns_$ns=$(readlink /proc/1/ns/$ns)"; done',
        'echo "shm=$(tail -n +2 /proc/sysvipc/shm | wc -l)"',
    ])

    def test_capabilities_are_the_default_set(self):
        """Root in a container keeps Docker's default capabilities and no
        more: no SYS_ADMIN (mount), nothing in the bounding set beyond them."""
        script = ("grep -E '^Cap(Prm|Eff|Bnd|Amb|Inh)' /proc/self/status | tr -d '\\t' | "
                  "sed 's/:/=/'; mount -t tmpfs none /tmp 2>/dev/null && echo mount=allowed "
                  "|| echo mount=refused; chown 1:1 /tmp && echo chown=ok")
        _, w, out = self.run_container(["sh", "-c", script])
        kv = parse_kv(out)
        want = "00000000a80425fb"
        self.assertEqual((kv.get("CapPrm"), kv.get("CapEff"), kv.get("CapBnd")),
                         (want, want, want), out)
        self.assertEqual((kv.get("CapInh"), kv.get("CapAmb")),
                         ("0000000000000000", "0000000000000000"), out)
        self.assertEqual((kv.get("mount"), kv.get("chown")), ("refused", "ok"), out)
        # Another user has none left, and cannot get them back.
        _, w, out = self.run_container(["sh", "-c", script], user="1000")
        kv = parse_kv(out)
        self.assertEqual((kv.get("CapEff"), kv.get("CapBnd")), ("0000000000000000", want), out)

    def test_pid1_hostname_net_ipc(self):
        shmid = self.host_shm_segment()
        try:
            name = "iso-" + uuid.uuid4().hex[:8]
            _, w, out = self.run_container(self.SCRIPT, name=name)
        finally:
            if shmid is not None:
                self.libc.shmctl(shmid, 0, None)  # IPC_RMID
        self.assertEqual(w.exit_code, 0, out)
        kv = parse_kv(out)
        self.assertEqual(kv.get("pid"), "1", out)
        self.assertEqual(kv.get("host"), name, out)
        procs = [int(p) for p in kv.get("procs", "").split()]
        self.assertIn(1, procs, out)
        self.assertLessEqual(len(procs), 8, "host processes visible: %s" % procs)
        self.assertNotIn(self.daemon.pid, procs)
        self.assertEqual(kv.get("netdev", "").split(), ["lo"], out)
        self.assertEqual(kv.get("netdirs", "").split(), ["lo"], out)
        self.assertTrue(int(kv.get("loflags", "0"), 16) & 1, "lo is not UP: %s" % out)
        for ns in ("ipc", "net", "uts", "pid", "mnt"):
            host = os.readlink("/proc/self/ns/" + ns)
            self.assertTrue(kv.get("ns_" + ns, "").startswith(ns + ":["), out)
            self.assertNotEqual(kv.get("ns_" + ns), host, "container shares the %s namespace"
                                % ns)
        if shmid is not None:
            self.assertEqual(kv.get("shm"), "0", "host SysV shm segment visible inside")

    def test_network_namespaces_are_reused_only_unused(self):
        """Pool sandboxes join the network namespace of an exited container
        instead of making one, but only one that no packet crossed and whose
        container had no CAP_NET_ADMIN."""
        if not self.daemon.pool_enabled():
            self.skipTest("the warm pool is off (--warm-pool 0)")
        netns = "readlink /proc/self/ns/net"

        def run_ns(cmd=netns, **kw):
            _, w, out = self.run_container(cmd, **kw)
            self.assertEqual(w.exit_code, 0, out)
            return out.decode().split()[0]

        quiet = [run_ns() for _ in range(8)]
        self.assertLess(len(set(quiet)), len(quiet),
                        "8 containers in a row, none reused a namespace: %s" % quiet)
        used = run_ns(netns + "; ping -c 1 -W 1 127.0.0.1 >/dev/null && echo pinged")
        admin = run_ns(security=pb.Security(cap_add=["NET_ADMIN"]))
        later = [run_ns() for _ in range(8)]
        self.assertNotIn(used, later, "a namespace that carried packets was reused")
        self.assertNotIn(admin, later, "a namespace under CAP_NET_ADMIN was reused")
        self.assertLess(len(set(later)), len(later), later)
        self.assertGreater(self.daemon.metric("quilt_warm_pool_netns_given_total"), 0)

    def test_signals_start_default_and_unblocked(self):
        """quiltd and its zygote ignore some signals (SIGPIPE, SIGTERM...);
        a container's command starts with none ignored or blocked, warm or
        cold, and its capability bounding set holds the default set only."""
        for extra in ({}, {"hostname": "cold-one", "namespaces": pb.Namespaces(cgroup=True)}):
            _, w, out = self.run_container(["cat", "/proc/self/status"], **extra)
            self.assertEqual(w.exit_code, 0, out)
            fields = dict(l.split(":\t", 1) for l in out.decode().splitlines() if ":\t" in l)
            self.assertEqual(int(fields["SigIgn"], 16), 0, extra)
            self.assertEqual(int(fields["SigBlk"], 16), 0, extra)
            self.assertEqual(int(fields["CapBnd"], 16), 0xa80425fb, extra)

    def test_auto_remove_mount_namespace_is_released_after_the_exit(self):
        """A pooled auto-remove container's mount namespace is held by
        quiltd (so its teardown waits until the exit is answered), handed
        to the janitor after it, and released there; a container that is
        not auto-remove keeps the usual teardown."""
        if not self.daemon.pool_enabled():
            self.skipTest("the warm pool is off (--warm-pool 0)")
        d = self.daemon
        d.wait_pool_ready()

        def mnt_fds(pid):
            out = set()
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                except OSError:
                    continue
                if link.startswith("mnt:"):
                    out.add(link)
            return out

        (janitor,) = quiltlib.children_of(d.pid, "quilt-janitor")
        held = self.create(["sleep", "100"], auto_remove=True)
        kept = self.create(["sleep", "100"])
        ns = os.readlink("/proc/%d/ns/mnt" % held.pid)
        self.assertIn(ns, mnt_fds(d.pid))
        self.assertNotIn(os.readlink("/proc/%d/ns/mnt" % kept.pid), mnt_fds(d.pid))
        for c in (held, kept):
            self.kill(c.id, signal.SIGKILL)
            self.assertEqual(self.wait(c.id).signal, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (mnt_fds(d.pid) or mnt_fds(janitor)) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(mnt_fds(d.pid), set(), "quiltd still holds a mount namespace")
        self.assertEqual(mnt_fds(janitor), set(), "the janitor still holds one")

    def test_user_namespace(self):
        script = "; ".join([
            'echo "id=$(id -u):$(id -g)"',
            'echo "map=$(cat /proc/self/uid_map | tr -s \" \")"',
            'echo x > /tmp/f && echo "tmp=ok"',
            'touch /made-by-root && echo "rootfs=ok"',
            # The image's files belong to the namespace's root, as on the host
            # they belong to root: it may change them (a copy-up).
            "echo passwd_owner=$(ls -ln /etc/passwd | awk '{print $3\":\"$4}')",
            'echo "quilt:x:1000:1000::/:/bin/sh" >> /etc/passwd && echo "passwd=ok"',
            'echo "ns_user=$(readlink /proc/1/ns/user)"',
            'sleep 1',
        ])
        # The mapped root (an unprivileged host uid) must reach its overlay
        # dirs under the daemon's root: the test's mkdtemp dir is 0700.
        os.chmod(self.tmp, 0o711)
        c = self.create(script, namespaces=pb.Namespaces(user=True))
        with open("/proc/%d/status" % c.pid) as f:
            host_uid = [l for l in f if l.startswith("Uid:")][0].split()[1]
        w = self.wait(c.id)
        out = self.logs(c.id)
        self.assertEqual(w.exit_code, 0, out)
        kv = parse_kv(out)
        self.assertEqual(kv.get("id"), "0:0", out)
        self.assertEqual(kv.get("map", "").split(), ["0", "100000", "65536"], out)
        self.assertEqual(kv.get("tmp"), "ok", out)
        self.assertEqual(kv.get("rootfs"), "ok", out)
        self.assertNotEqual(kv.get("ns_user"), os.readlink("/proc/self/ns/user"), out)
        self.assertEqual(host_uid, "100000", "root inside must be unprivileged outside")
        self.assertEqual(kv.get("passwd_owner"), "0:0", out)
        self.assertEqual(kv.get("passwd"), "ok", out)
        # On the host: the change is in the container's own layer, owned by
        # the namespace's root; the image is untouched.
        changed = os.path.join(self.daemon.layer_dir(c.id), "upper", "etc", "passwd")
        st = os.stat(changed)
        self.assertEqual((st.st_uid, st.st_gid), (100000, 100000))
        image = self.get(c.id).image_id
        with open(os.path.join(self.daemon.root, "images", image, "rootfs", "etc",
                               "passwd")) as f:
            self.assertNotIn("quilt:x:1000", f.read())
        # Two at once from the same image: each attaches its own copy of the
        # image's idmapped tree.
        both = [self.create("sleep 5; ls -ln /etc/passwd", namespaces=pb.Namespaces(user=True))
                for _ in range(2)]
        for x in both:
            self.assertEqual(self.wait(x.id).exit_code, 0)
            self.assertIn(b" 0        0 ", self.logs(x.id))

    def test_hostname_defaults_to_short_id(self):
        c, w, out = self.run_container(["hostname"])
        self.assertEqual(out, c.id[:12].encode() + b"\n")

    def host_shm_segment(self):
        """A SysV shm segment on the host, or None where ctypes cannot make one."""
        try:
            self.libc = ctypes.CDLL(None, use_errno=True)
            shmid = self.libc.shmget(0, 4096, 0o1000 | 0o600)  # IPC_PRIVATE, IPC_CREAT
        except (OSError, AttributeError):
            return None
        if shmid < 0:
            return None
        if str(shmid) not in quiltlib.read_text("/proc/sysvipc/shm"):
            self.libc.shmctl(shmid, 0, None)
            return None
        return shmid


# ------------------------------------------------------------------ limits

class ResourceLimitTest(QuiltTestCase):

    def test_oom_killed_and_reported(self):
        ev = self.events(types=[pb.EVENT_TYPE_OOM])
        c = self.create(["awk", 'BEGIN{s="a"; while(1){s=s s}}'], memory_limit_mib=16)
        w = self.wait(c.id, 60)
        self.assertTrue(w.oom_killed, w)
        self.assertEqual((w.signal, w.exit_code), (9, 137))
        g = self.get(c.id)
        self.assertTrue(g.oom_killed)
        self.assertEqual((g.state, g.exit_signal), (pb.CONTAINER_STATE_EXITED, 9))
        self.assertIsNotNone(ev.wait_for(lambda e: e.container_id == c.id, 10),
                             "no OOM event published")

    def test_memory_limit_in_stats(self):
        c = self.create(["sleep", "100"], memory_limit_mib=64)
        st = self.stats(c.id)
        self.assertEqual(st.memory_limit_bytes, 64 << 20)
        self.assertGreater(st.memory_current_bytes, 0)

    def test_fork_bomb_stopped_by_pids_limit(self):
        # busybox sh gives up on a failed fork, so the bomb runs in a subshell
        # and the outer shell (PID 1) survives to keep the cgroup full.
        c = self.create("(for i in $(seq 200); do sleep 30 & done; echo spawned); "
                        "echo bomb-over; sleep 60", pids_limit=32)
        self.assertTrue(self.wait_for_output(c.id, b"bomb-over", 30), "bomb never finished")
        worst = 0.0
        for _ in range(5):
            t0 = time.monotonic()
            self.stub.GetSystemInfo(pb.GetSystemInfoRequest(), timeout=5)
            worst = max(worst, time.monotonic() - t0)
        self.assertLess(worst, 1.0, "GetSystemInfo took %.2f s during the fork bomb" % worst)
        st = self.stats(c.id)
        self.assertEqual(st.pids_limit, 32)
        self.assertLessEqual(st.pids_current, 32)
        self.assertGreaterEqual(st.pids_current, 16, "the bomb did not fill the cgroup")
        self.kill(c.id, 9)
        self.assertEqual(self.wait(c.id).signal, 9)
        err = self.logs(c.id, stream=pb.LOG_STREAM_STDERR)
        self.assertIn(b"can't fork", err)

    def cpu_fraction(self, cid, window=1.5):
        time.sleep(0.3)
        s0, t0 = self.stats(cid).cpu_usage_ns, time.monotonic()
        time.sleep(window)
        s1, t1 = self.stats(cid).cpu_usage_ns, time.monotonic()
        return (s1 - s0) / ((t1 - t0) * 1e9)

    def test_cpu_limit(self):
        busy = "while :; do :; done"
        limited = self.create(busy, cpu_limit_percent=20)
        frac_limited = self.cpu_fraction(limited.id)
        cpu_dir = self.daemon.container_cgroups(limited.id).get("cpu")
        quota = quiltlib.read_text(os.path.join(cpu_dir, "cpu.cfs_quota_us")).strip() \
            if cpu_dir else None
        cpu_stat = parse_cpu_stat(os.path.join(cpu_dir, "cpu.stat")) if cpu_dir else {}
        self.kill(limited.id, 9)
        self.wait(limited.id)
        free = self.create(busy)
        frac_free = self.cpu_fraction(free.id)
        self.kill(free.id, 9)
        self.wait(free.id)
        msg = "busy loop used %.0f%% of a CPU with a 20%% limit, %.0f%% without" % (
            100 * frac_limited, 100 * frac_free)
        if cpu_dir:
            self.assertEqual(quota, "20000", "cpu.cfs_quota_us (period 100 ms)")
            self.assertGreater(cpu_stat.get("nr_throttled", 0), 0, "never throttled: " + msg)
        self.assertLess(frac_limited, 0.5, msg)
        # Other work on a shared host can keep the unlimited loop from a full
        # CPU; it must still clearly outrun the limited one.
        self.assertGreater(frac_free, min(0.6, max(0.35, 2 * frac_limited)), msg)

    def test_pause_freezes_and_resume_thaws(self):
        events = self.events()
        spin = self.create("while :; do :; done")
        deadline = time.monotonic() + 10  # let it get going
        while self.stats(spin.id).cpu_usage_ns < 20_000_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        r = self.stub.PauseContainer(pb.PauseContainerRequest(id=spin.id), timeout=RPC_TIMEOUT)
        self.assertEqual(r.container.state, pb.CONTAINER_STATE_PAUSED)
        self.assertEqual(self.get(spin.id).state, pb.CONTAINER_STATE_PAUSED)
        # Frozen: not one more nanosecond of CPU.
        before = self.stats(spin.id).cpu_usage_ns
        time.sleep(1.0)
        self.assertEqual(self.stats(spin.id).cpu_usage_ns, before, "a paused container ran")
        e = self.assertRpcCode(Code.FAILED_PRECONDITION, self.stub.PauseContainer,
                               pb.PauseContainerRequest(id=spin.id), timeout=RPC_TIMEOUT)
        self.assertIn("already paused", e.details())
        r = self.stub.ResumeContainer(pb.ResumeContainerRequest(id=spin.id), timeout=RPC_TIMEOUT)
        self.assertEqual(r.container.state, pb.CONTAINER_STATE_RUNNING)
        deadline = time.monotonic() + 10
        while self.stats(spin.id).cpu_usage_ns <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertGreater(self.stats(spin.id).cpu_usage_ns, before, "it did not run again")
        e = self.assertRpcCode(Code.FAILED_PRECONDITION, self.stub.ResumeContainer,
                               pb.ResumeContainerRequest(id=spin.id), timeout=RPC_TIMEOUT)
        self.assertIn("not paused", e.details())
        # Stop works on a paused container: SIGTERM (ignored by this PID 1),
        # then SIGKILL, which a frozen process could not act on.
        self.stub.PauseContainer(pb.PauseContainerRequest(id=spin.id), timeout=RPC_TIMEOUT)
        st = self.stub.StopContainer(pb.StopContainerRequest(id=spin.id, timeout_seconds=1),
                                     timeout=30)
        self.assertEqual(st.container.state, pb.CONTAINER_STATE_EXITED)
        self.assertEqual(st.container.exit_code, 137)
        seq = [ev.type for ev in events.for_container(spin.id)]
        self.assertEqual(seq[:6], [pb.EVENT_TYPE_CREATED, pb.EVENT_TYPE_STARTED,
                                   pb.EVENT_TYPE_PAUSED, pb.EVENT_TYPE_RESUMED,
                                   pb.EVENT_TYPE_PAUSED, pb.EVENT_TYPE_RESUMED])
        self.assertRpcCode(Code.FAILED_PRECONDITION, self.stub.PauseContainer,
                           pb.PauseContainerRequest(id=spin.id), timeout=RPC_TIMEOUT)
        self.assertRpcCode(Code.NOT_FOUND, self.stub.PauseContainer,
                           pb.PauseContainerRequest(id="no-such-container"), timeout=RPC_TIMEOUT)
        # Kill and forced removal of a paused one.
        k = self.create("sleep 60")
        self.stub.PauseContainer(pb.PauseContainerRequest(id=k.id), timeout=RPC_TIMEOUT)
        self.kill(k.id, 9)
        self.assertEqual(self.wait(k.id).signal, 9)
        f = self.create("sleep 60")
        self.stub.PauseContainer(pb.PauseContainerRequest(id=f.id), timeout=RPC_TIMEOUT)
        self.stub.RemoveContainer(pb.RemoveContainerRequest(id=f.id, force=True), timeout=30)
        self.created.remove(f.id)
        type(self).seen_ids.add(f.id)
        self.assertRpcCode(Code.NOT_FOUND, self.get, f.id)


def parse_cpu_stat(path):
    out = {}
    for line in quiltlib.read_text(path).splitlines():
        k, _, v = line.partition(" ")
        if v.strip().isdigit():
            out[k] = int(v)
    return out


# ------------------------------------------------------------------ logs

class LogsTest(QuiltTestCase):

    def test_100mib_of_text_intact(self):
        size = 104857600
        line = b"0123456789abcdef\n"
        expected = hashlib.sha256((line * (size // len(line) + 1))[:size]).hexdigest()
        c = self.create("yes 0123456789abcdef | head -c %d" % size)
        h, total, streams = hashlib.sha256(), 0, set()
        for chunk in self.stub.StreamLogs(pb.StreamLogsRequest(id=c.id, follow=True),
                                          timeout=150):
            h.update(chunk.data)
            total += len(chunk.data)
            streams.add(chunk.stream)
        self.assertEqual(self.wait(c.id).exit_code, 0)
        self.assertEqual(total, size)
        self.assertEqual(h.hexdigest(), expected)
        self.assertEqual(streams, {pb.LOG_STREAM_STDOUT})

    def test_100mib_replay_after_exit(self):
        # Written at full speed, then read back once the container is gone: the
        # log is ~350 MB in CRI form, so the daemon rotates it at 256 MiB
        # (--log-max-size) and keeps log.1; the replay must still be whole.
        size = 104857600
        line = b"0123456789abcdef\n"
        expected = hashlib.sha256((line * (size // len(line) + 1))[:size]).hexdigest()
        c = self.create("yes 0123456789abcdef | head -c %d" % size)
        self.assertEqual(self.wait(c.id, 120).exit_code, 0)
        h, total = hashlib.sha256(), 0
        for chunk in self.stub.StreamLogs(pb.StreamLogsRequest(id=c.id), timeout=150):
            h.update(chunk.data)
            total += len(chunk.data)
        self.assertEqual(total, size, "replay returned %d of %d bytes" % (total, size))
        self.assertEqual(h.hexdigest(), expected)

    def test_binary_partial_lines_intact(self):
        c = self.create("head -c 1000000 /dev/urandom > /tmp/r; cat /tmp/r; "
                        "sha256sum /tmp/r >&2")
        self.assertEqual(self.wait(c.id).exit_code, 0)
        out = self.chunks(c.id, stream=pb.LOG_STREAM_STDOUT)
        data = b"".join(ch.data for ch in out)
        err = self.logs(c.id, stream=pb.LOG_STREAM_STDERR)
        self.assertEqual(len(data), 1000000)
        self.assertEqual(hashlib.sha256(data).hexdigest().encode(), err.split()[0], err)
        self.assertEqual(out[-1].complete, data.endswith(b"\n"))
        self.assertTrue(all(ch.stream == pb.LOG_STREAM_STDOUT for ch in out))

    def test_follow_streams_live(self):
        c = self.create("for i in 1 2 3 4 5 6 7 8 9 10; do echo line$i; sleep 0.2; done")
        t_start = time.monotonic()
        arrivals = []
        for chunk in self.stub.StreamLogs(pb.StreamLogsRequest(id=c.id, follow=True),
                                          timeout=30):
            arrivals.append((time.monotonic(), chunk.data))
        t_end = time.monotonic()
        data = b"".join(d for _, d in arrivals)
        self.assertEqual(data, b"".join(b"line%d\n" % i for i in range(1, 11)))
        self.assertLess(arrivals[0][0] - t_start, 1.0, "first line came late")
        self.assertGreater(t_end - arrivals[0][0], 1.0,
                           "first line arrived only %.2f s before the stream ended"
                           % (t_end - arrivals[0][0]))
        # The stream ends once the container has exited.
        self.assertEqual(self.get(c.id).state, pb.CONTAINER_STATE_EXITED)
        # tail of the finished container
        self.assertEqual(self.logs(c.id, follow=False, tail=2), b"line9\nline10\n")
        self.assertEqual(self.logs(c.id, follow=True, tail=2), b"line9\nline10\n")

    def test_stream_filter(self):
        c = self.create("echo out1; echo err1 >&2; echo out2; echo err2 >&2")
        self.wait(c.id)
        err = self.chunks(c.id, stream=pb.LOG_STREAM_STDERR)
        self.assertEqual(b"".join(ch.data for ch in err), b"err1\nerr2\n")
        self.assertTrue(all(ch.stream == pb.LOG_STREAM_STDERR for ch in err))
        self.assertEqual(self.logs(c.id, stream=pb.LOG_STREAM_STDOUT), b"out1\nout2\n")
        both = self.logs(c.id)
        self.assertEqual(sorted(both.splitlines()), [b"err1", b"err2", b"out1", b"out2"])

    def test_many_followers(self):
        n = 200000
        expected = b"".join(b"%d\n" % i for i in range(1, n + 1))
        c = self.create("sleep 0.5; seq 1 %d" % n)
        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            futs = [pool.submit(self.logs, c.id, True, 60) for _ in range(5)]
            results = [f.result(timeout=90) for f in futs]
        for i, got in enumerate(results):
            self.assertEqual((len(got), hashlib.sha256(got).hexdigest()),
                             (len(expected), hashlib.sha256(expected).hexdigest()),
                             "follower %d got different data" % i)

    def test_logs_of_silent_container(self):
        c, w, out = self.run_container(["true"])
        self.assertEqual(out, b"")
        self.assertEqual(self.logs(c.id, follow=False), b"")


def docker_save_archive(path, rootfs_dir, config):
    """A one-layer `docker save` archive of rootfs_dir with the given config."""
    import hashlib
    import io
    import json
    import tarfile
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        t.add(rootfs_dir, arcname=".")
    layer_bytes = layer.getvalue()
    cfg = json.dumps({"config": config, "rootfs": {"type": "layers"}}).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    layer_name = hashlib.sha256(layer_bytes).hexdigest() + "/layer.tar"  # docker's layout
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": ["saved/app:v1"],
                            "Layers": [layer_name]}]).encode()
    with tarfile.open(path, "w") as t:
        for name, data in ((layer_name, layer_bytes), (cfg_name, cfg),
                           ("manifest.json", manifest)):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))


class ImageConfigTest(QuiltTestCase):
    """A `docker save` image's config supplies the defaults a spec leaves out."""

    def test_docker_save_config_defaults(self):
        rootfs = os.path.join(os.path.dirname(os.environ["QUILTD"]), "busybox-rootfs")
        archive = os.path.join(self.tmp, "app.tar")
        docker_save_archive(archive, rootfs, {
            "Env": ["GREETING=hello", "PATH=/bin:/usr/bin"],
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ['echo "$GREETING from $(pwd) as $(id -u)"'],
            "WorkingDir": "/tmp", "User": "nobody"})
        last = None
        for p in self.stub.ImportImage(pb.ImportImageRequest(path=archive, tags=["app:1"]),
                                       timeout=60):
            last = p
        self.assertEqual(len(last.image.id), 64)
        self.assertIn("saved/app:v1", list(last.image.tags))  # the archive's RepoTags
        c = self.create([], image="app:1")
        self.assertEqual(list(c.spec.command)[:2], ["/bin/sh", "-c"])
        w = self.wait(c.id)
        self.assertEqual(w.exit_code, 0)
        self.assertEqual(self.logs(c.id), b"hello from /tmp as 65534\n")
        # The spec still wins where it speaks.
        _, w, out = self.run_container(["sh", "-c", "echo $GREETING $(pwd)"], image="app:1",
                                       env=["GREETING=bye"], working_dir="/")
        self.assertEqual(out, b"bye /\n")
        for ref in self.created[:]:
            self.stub.RemoveContainer(pb.RemoveContainerRequest(id=ref, force=True), timeout=30)
        self.created.clear()
        # Two tags (app:1 and the RepoTag): its id is refused, a tag only untags,
        # then the id (or the last tag) removes it.
        image_id = last.image.id
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.RemoveImage(pb.RemoveImageRequest(id=image_id), timeout=30)
        self.assertEqual(cm.exception.code(), Code.FAILED_PRECONDITION)
        self.assertIn("is tagged app:1, saved/app:v1", cm.exception.details())
        r = self.stub.RemoveImage(pb.RemoveImageRequest(id="app:1"), timeout=30)
        self.assertEqual((list(r.untagged), list(r.deleted)), (["app:1"], []))
        r = self.stub.RemoveImage(pb.RemoveImageRequest(id=image_id), timeout=30)
        self.assertEqual((list(r.untagged), list(r.deleted)), (["saved/app:v1"], [image_id]))
        images = self.stub.ListImages(pb.ListImagesRequest(), timeout=30).images
        self.assertNotIn(image_id, [i.id for i in images])


class ArchiveCreateTest(QuiltTestCase):
    """CreateContainer naming an archive path imports it on the ring."""

    def test_create_from_archive_path(self):
        import io
        import tarfile
        rootfs = os.path.join(os.path.dirname(os.environ["QUILTD"]), "busybox-rootfs")
        archive = os.path.join(self.tmp, "big.tar")
        with tarfile.open(archive, "w") as t:
            t.add(rootfs, arcname=".")
            # Enough bytes that the import takes a while on any machine.
            ti = tarfile.TarInfo("var/ballast")
            ti.size = 192 << 20
            t.addfile(ti, io.BytesIO(b"\0" * ti.size))
        fut = self.stub.CreateContainer.future(pb.CreateContainerRequest(
            spec=self.spec(["sh", "-c", "ls -s /var/ballast; echo ok"], image=archive)),
            timeout=120)
        time.sleep(0.1)
        # The loop is not stuck in the import: other calls are answered.
        t0 = time.monotonic()
        self.stub.GetSystemInfo(pb.GetSystemInfoRequest(), timeout=RPC_TIMEOUT)
        answered_in = time.monotonic() - t0
        self.assertFalse(fut.done(), "the import was over before anything could be asked")
        self.assertLess(answered_in, 1.0)
        c = fut.result().container
        self.created.append(c.id)
        self.assertEqual(len(c.image_id), 64)
        self.assertEqual(self.wait(c.id).exit_code, 0)
        self.assertTrue(self.logs(c.id).endswith(b"ok\n"))
        # The same file again: the store knows it, no second import.
        t0 = time.monotonic()
        c2 = self.create(["true"], image=archive)
        self.assertLess(time.monotonic() - t0, 5.0)
        self.assertEqual(c2.image_id, c.image_id)
        # A file that is no archive: refused, nothing created.
        bad = os.path.join(self.tmp, "bad.tar.gz")
        with open(bad, "wb") as f:
            f.write(b"\x1f\x8bnot really gzip" * 100)
        before = len(self.stub.ListContainers(pb.ListContainersRequest(all=True),
                                              timeout=RPC_TIMEOUT).containers)
        self.assertRpcCode(Code.INVALID_ARGUMENT, self.create, ["true"], image=bad)
        after = len(self.stub.ListContainers(pb.ListContainersRequest(all=True),
                                             timeout=RPC_TIMEOUT).containers)
        self.assertEqual(after, before)
        self.wait(c2.id)  # a running container's image cannot go, even with force
        self.stub.RemoveImage(pb.RemoveImageRequest(id=c.image_id, force=True), timeout=60)


class BridgeNetworkTest(QuiltTestCase):
    """--network bridge: an address on quiltd's bridge, a route out through
    it. quiltd runs in a network namespace of its own (unshare -n), so the
    bridge, its NAT rules and all traffic stay inside what the test made."""

    daemon_wrapper = ("unshare", "-n")
    daemon_args = ("--bridge", "qtest0", "--bridge-subnet", "10.216.0.0/24",
                   "--bridge-dns", "10.216.0.1")

    def in_daemon_net(self, *argv, **kw):
        return subprocess.run(["nsenter", "--net=/proc/%d/ns/net" % self.daemon.pid] + list(argv),
                              capture_output=True, text=True, timeout=30, **kw)

    def test_bridge_addresses_routes_and_teardown(self):
        BRIDGE = pb.NETWORK_MODE_BRIDGE
        # A listener on the gateway, in the daemon's network namespace.
        server = subprocess.Popen(
            ["nsenter", "--net=/proc/%d/ns/net" % self.daemon.pid, "/usr/bin/python3", "-c",
             "import socket\n"
             "s = socket.socket(); s.bind(('10.216.0.1', 0)); s.listen(1)\n"
             "print(s.getsockname()[1], flush=True)\n"
             "s.settimeout(30); c, a = s.accept(); print(a[0], c.recv(100).decode().strip())\n"],
            stdout=subprocess.PIPE, text=True)
        try:
            port = None
            deadline = time.monotonic() + 10
            while port is None and time.monotonic() < deadline:
                line = server.stdout.readline()
                port = int(line) if line.strip().isdigit() else None
            self.assertIsNotNone(port, "the listener did not start")
            script = ("ip -4 -o addr show eth0 | awk '{print \"addr=\" $4}'; "
                      "ip route | awk '/^default/ {print \"gw=\" $3}'; "
                      "awk '/^nameserver/ {print \"dns=\" $2}' /etc/resolv.conf; "
                      "echo hello-from-container | nc -w 5 10.216.0.1 %d && echo sent=yes" % port)
            c, w, out = self.run_container(script, network_mode=BRIDGE)
            self.assertEqual(w.exit_code, 0, out)
            kv = parse_kv(out)
            self.assertEqual((kv.get("gw"), kv.get("dns"), kv.get("sent")),
                             ("10.216.0.1", "10.216.0.1", "yes"), out)
            addr = kv.get("addr", "")
            self.assertTrue(addr.startswith("10.216.0.") and addr.endswith("/24"), out)
            got, _ = server.communicate(timeout=30)
            self.assertEqual(got.split(), [addr.split("/")[0], "hello-from-container"])
        finally:
            server.kill()
            server.wait()
        # Two at once get two addresses, shown by GetContainer; removal frees them.
        a = self.create(["sleep", "30"], network_mode=BRIDGE)
        b = self.create(["sleep", "30"], network_mode=BRIDGE)
        ips = {self.get(a.id).ip_address, self.get(b.id).ip_address}
        self.assertEqual(len(ips), 2, ips)
        self.assertTrue(all(ip.startswith("10.216.0.") for ip in ips), ips)
        links = self.in_daemon_net("ip", "-o", "link", "show", "master", "qtest0").stdout
        self.assertIn("qv" + a.id[:8], links)
        for ref in (a.id, b.id):
            self.stub.RemoveContainer(pb.RemoveContainerRequest(id=ref, force=True), timeout=30)
            self.created.remove(ref)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "qv" in self.in_daemon_net(
                "ip", "-o", "link", "show", "master", "qtest0").stdout:
            time.sleep(0.1)
        self.assertNotIn("qv", self.in_daemon_net("ip", "-o", "link", "show", "master",
                                                   "qtest0").stdout)
        nat = self.in_daemon_net("iptables", "-t", "nat", "-S", "POSTROUTING").stdout
        self.assertIn("10.216.0.0/24", nat)
        # An address is given again once freed; a container without the
        # network namespace cannot be bridged.
        c = self.create(["true"], network_mode=BRIDGE)
        self.assertIn(self.get(c.id).ip_address, ips | {""})
        self.assertRpcCode(Code.INVALID_ARGUMENT, self.create, ["true"], network_mode=BRIDGE,
                           namespaces=pb.Namespaces(disable_network=True))


SETUP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "setup")


class SetupStepsTest(QuiltTestCase):
    """--setup: packages installed before the command, kept as a layer. The
    registries run on loopback and the setup uses the host's network."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.registry = None
        if not os.path.exists("/usr/lib/python3/dist-packages/pip"):
            return  # each test skips: no pip on this host to build the image from
        out = os.path.join(cls.tmp, "images")
        subprocess.run(["sh", os.path.join(SETUP_DIR, "make_image.sh"), out, "python"],
                       check=True, capture_output=True, timeout=300)
        cls.python_tar = os.path.join(out, "python.tar")
        port_file = os.path.join(cls.tmp, "pypi.port")
        cls.registry_log = os.path.join(cls.tmp, "pypi.log")
        cls.registry = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(SETUP_DIR, "pypi_index.py"),
             "--package", "quilt-hello==1.0.0", "--port-file", port_file,
             "--log", cls.registry_log], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not os.path.exists(port_file) and time.monotonic() < deadline:
            time.sleep(0.05)
        with open(port_file) as f:
            cls.index = "http://127.0.0.1:%s/simple" % f.read().strip()
        last = None
        for last in cls.daemon.stub.ImportImage(
                pb.ImportImageRequest(path=cls.python_tar, tags=["py:setup"]), timeout=120):
            pass
        cls.image_id = last.image.id

    @classmethod
    def tearDownClass(cls):
        if cls.registry is not None:
            cls.registry.terminate()
            cls.registry.wait(timeout=10)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        if self.registry is None:
            self.skipTest("no Debian python3-pip on this host to build the test image from")

    def setup_spec(self, cmd, steps, index=None, **kw):
        return dict(image="py:setup", setup=steps,
                    setup_network=pb.NETWORK_MODE_HOST,
                    setup_config=pb.SetupConfig(pip_index=index or self.index), **kw)

    def registry_requests(self):
        return quiltlib.read_text(self.registry_log).count("quilt_hello-1.0.0")

    def layers(self):
        try:
            return set(os.listdir(os.path.join(self.daemon.root, "layers")))
        except OSError:
            return set()

    def test_pip_step_runs_once_then_its_layer_is_reused(self):
        events = EventCollector(self.stub)
        self.collectors.append(events)
        cmd = ["sh", "-c", "quilt-hello && python3 -c 'import quilt_hello'"]
        c, w, out = self.run_container(cmd, timeout=120, **self.setup_spec(cmd, ["pip: quilt-hello"]))
        self.assertEqual(w.exit_code, 0, out)
        self.assertIn(b"quilt-hello 1.0.0\n", out)
        # Setup output is in the log, marked as such, apart from the command's.
        setup_out = self.logs(c.id, stream=pb.LOG_STREAM_SETUP)
        self.assertIn(b"quilt-setup: step 1/1: pip: quilt-hello", setup_out)
        self.assertNotIn(b"quilt-setup", self.logs(c.id, stream=pb.LOG_STREAM_STDOUT))
        g = self.get(c.id)
        self.assertEqual((len(g.setup_layer), g.setup_reused), (64, False))
        self.assertIn(g.setup_layer, self.layers())
        fetched = self.registry_requests()
        self.assertEqual(fetched, 1)
        # The same image, steps and sources: the layer, not the registry.
        c2, w2, out2 = self.run_container(["quilt-hello"], timeout=60,
                                          **self.setup_spec(None, ["pip: quilt-hello"]))
        # Nothing ran: the setup output is one line saying so.
        self.assertEqual((w2.exit_code, out2),
                         (0, b"quilt-setup: reused layer %s\nquilt-hello 1.0.0\n"
                          % g.setup_layer.encode()))
        g2 = self.get(c2.id)
        self.assertEqual((g2.setup_layer, g2.setup_reused), (g.setup_layer, True))
        self.assertEqual(self.registry_requests(), fetched)
        self.assertIsNotNone(events.wait_for(
            lambda e: e.type == pb.EVENT_TYPE_SETUP_DONE and e.container_id == c2.id
            and e.detail == "reused " + g.setup_layer, 10))
        self.assertIsNotNone(events.wait_for(
            lambda e: e.type == pb.EVENT_TYPE_SETUP_STARTED and e.container_id == c.id, 10))
        ids = [c.id, c2.id]
        d = self.daemon
        if d.pool_enabled():
            # c2 found no sandbox of image + layer: the pool learned that
            # view and keeps sandboxes of it from now on.
            self.assertEqual(d.metric("quilt_warm_pool_views"), 2)
            warm = d.wait_pool_ready(4, timeout=60)
            hits = d.metric("quilt_warm_pool_hits_total")
            c3, w3, out3 = self.run_container(["quilt-hello"], timeout=60,
                                              **self.setup_spec(None, ["pip: quilt-hello"]))
            ids.append(c3.id)
            self.assertEqual((w3.exit_code, out3),
                             (0, b"quilt-setup: reused layer %s\nquilt-hello 1.0.0\n"
                              % g.setup_layer.encode()))
            self.assertIn(c3.id, warm, "the cached layer's container got no warm sandbox")
            self.assertEqual(d.metric("quilt_warm_pool_hits_total"), hits + 1)
            g3 = self.get(c3.id)
            self.assertEqual((g3.setup_layer, g3.setup_reused), (g.setup_layer, True))
            self.assertIsNotNone(events.wait_for(
                lambda e: e.type == pb.EVENT_TYPE_SETUP_DONE and e.container_id == c3.id
                and e.detail == "reused " + g.setup_layer, 10))
            self.assertEqual(self.registry_requests(), fetched)
        # Listed with the images; pruned once no container uses it (this is
        # the class's last test: the prune also takes its image).
        listed = {y.key: y for y in self.stub.ListImages(pb.ListImagesRequest(),
                                                         timeout=RPC_TIMEOUT).setup_layers}
        self.assertEqual(listed[g.setup_layer].containers, len(ids))
        self.assertGreater(listed[g.setup_layer].size_bytes, 0)
        for ref in ids:
            self.stub.RemoveContainer(pb.RemoveContainerRequest(id=ref), timeout=30)
            self.created.remove(ref)
        r = self.stub.PruneImages(pb.PruneImagesRequest(), timeout=60)
        self.assertIn(g.setup_layer, list(r.removed_layers))
        deadline = time.monotonic() + 10
        while g.setup_layer in self.layers() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertNotIn(g.setup_layer, self.layers())
        if d.pool_enabled():  # the pool forgot the view with the layer
            self.assertEqual(d.metric("quilt_warm_pool_views"), 1)

    def test_failing_steps_fail_the_container_and_cache_nothing(self):
        before = self.layers()
        # A package the index does not have: the step, its code, pip's words.
        e = self.assertRpcCode(Code.FAILED_PRECONDITION, self.create, ["true"], timeout=120,
                               **self.setup_spec(None, ["pip: quilt-nonexistent"]))
        self.assertIn("pip: quilt-nonexistent", e.details())
        self.assertIn("exit code 1", e.details())
        self.assertIn("No matching distribution", e.details())
        failed = [c for c in self.stub.ListContainers(pb.ListContainersRequest(all=True),
                                                      timeout=RPC_TIMEOUT).containers
                  if c.state == pb.CONTAINER_STATE_FAILED]
        self.assertEqual(len(failed), 1)
        self.created.append(failed[0].id)
        self.assertIn("pip: quilt-nonexistent", failed[0].failure_reason)
        upper = os.path.join(self.daemon.root, "containers", failed[0].id, "setup", "upper")
        deadline = time.monotonic() + 10  # the janitor deletes it, off the loop
        while os.path.exists(upper) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(os.path.exists(upper))
        # A manager the image lacks and cannot install.
        e = self.assertRpcCode(Code.FAILED_PRECONDITION, self.create, ["true"], timeout=120,
                               **self.setup_spec(None, ["npm: left-pad"]))
        self.assertIn("npm is not in the image", e.details())
        # A registry nobody listens on.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            dead = "http://127.0.0.1:%d/simple" % probe.getsockname()[1]
        e = self.assertRpcCode(Code.FAILED_PRECONDITION, self.create, ["true"], timeout=180,
                               **self.setup_spec(None, ["pip: quilt-hello"], index=dead))
        self.assertIn("pip: quilt-hello", e.details())
        # Refused before anything runs.
        self.assertRpcCode(Code.INVALID_ARGUMENT, self.create, ["true"],
                           **self.setup_spec(None, ["bogus: x"]))
        self.assertRpcCode(Code.INVALID_ARGUMENT, self.create, ["true"],
                           **self.setup_spec(None, ["pip: --index-url=http://evil/ x"]))
        self.assertEqual(self.layers(), before)
        for c in self.stub.ListContainers(pb.ListContainersRequest(all=True),
                                          timeout=RPC_TIMEOUT).containers:
            if c.id not in self.created:
                self.created.append(c.id)


class NpmSetupTest(QuiltTestCase):
    """--setup "npm: ..." against an npm registry on loopback, in an image
    made of the host's node and npm (skipped where the host has neither)."""

    def test_npm_step_installs_a_global_package(self):
        if not shutil.which("node") or not shutil.which("npm"):
            self.skipTest("no node and npm on this host to build the test image from")
        out = os.path.join(self.tmp, "images")
        subprocess.run(["sh", os.path.join(SETUP_DIR, "make_image.sh"), out, "node"],
                       check=True, capture_output=True, timeout=300)
        port_file = os.path.join(self.tmp, "npm.port")
        log = os.path.join(self.tmp, "npm.log")
        registry = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(SETUP_DIR, "npm_registry.py"),
             "--package", "quilt-hello@1.0.0", "--package", "@quilt/scoped@0.3.1",
             "--port-file", port_file, "--log", log],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while not os.path.exists(port_file) and time.monotonic() < deadline:
                time.sleep(0.05)
            with open(port_file) as f:
                url = "http://127.0.0.1:%s/" % f.read().strip()
            for _ in self.stub.ImportImage(pb.ImportImageRequest(
                    path=os.path.join(out, "node.tar"), tags=["node:setup"]), timeout=120):
                pass
            spec = dict(image="node:setup", setup=["npm: quilt-hello @quilt/scoped"],
                        setup_network=pb.NETWORK_MODE_HOST,
                        setup_config=pb.SetupConfig(npm_registry=url))
            c, w, got = self.run_container(["sh", "-c", "quilt-hello; scoped"], timeout=180,
                                           **spec)
            self.assertEqual(w.exit_code, 0, got)
            self.assertIn(b"added 2 packages", self.logs(c.id, stream=pb.LOG_STREAM_SETUP))
            self.assertEqual(self.logs(c.id, stream=pb.LOG_STREAM_STDOUT),
                             b"quilt-hello 1.0.0\n@quilt/scoped 0.3.1\n")
            fetched = quiltlib.read_text(log).count(".tgz")
            c2, w2, got2 = self.run_container(["quilt-hello"], timeout=60, **spec)
            self.assertEqual((w2.exit_code, self.logs(c2.id, stream=pb.LOG_STREAM_STDOUT)),
                             (0, b"quilt-hello 1.0.0\n"))
            self.assertTrue(self.get(c2.id).setup_reused)
            self.assertEqual(quiltlib.read_text(log).count(".tgz"), fetched)
        finally:
            registry.terminate()
            registry.wait(timeout=10)


class ExecTest(QuiltTestCase):
    """Exec: a process run in a running container, output captured."""

    def exec(self, ref, cmd, timeout=RPC_TIMEOUT, **kw):
        return self.stub.Exec(pb.ExecRequest(id=ref, command=cmd, **kw), timeout=timeout)

    def test_exec_sees_the_container(self):
        c = self.create("echo made > /made-by-main; sleep 60", name="execd",
                        env=["FROM_SPEC=1", "BOTH=spec"], memory_limit_mib=64)
        deadline = time.monotonic() + 10
        r = None
        while time.monotonic() < deadline:
            r = self.exec("execd", ["cat", "/made-by-main"])
            if r.exit_code == 0:
                break
            time.sleep(0.05)
        self.assertEqual(r.stdout, b"made\n")  # its rootfs
        script = "; ".join([
            "echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' ')",
            "echo host=$(hostname)",
            "echo env=$FROM_SPEC,$BOTH,$EXTRA",
            "echo cwd=$(pwd)",
            "echo cg=$(cat /proc/self/cgroup | grep memory | cut -d: -f3)",
            "echo capbnd=$(grep CapBnd /proc/self/status | cut -f2)",
            "echo main_capbnd=$(grep CapBnd /proc/1/status | cut -f2)",
            "echo nnp=$(grep NoNewPrivs /proc/self/status | cut -f2)",
            "echo seccomp=$(grep '^Seccomp:' /proc/self/status | cut -f2)",
        ])
        r = self.exec("execd", ["sh", "-c", script], env=["BOTH=exec", "EXTRA=x"],
                      working_dir="/tmp")
        self.assertEqual((r.exit_code, r.stderr), (0, b""))
        kv = parse_kv(r.stdout)
        self.assertEqual(kv["pid1"].strip(), "sleep 60")  # sh execs its last command
        self.assertEqual(kv["host"], "execd")
        self.assertEqual(kv["env"], "1,exec,x")
        self.assertEqual(kv["cwd"], "/tmp")
        self.assertEqual(kv["capbnd"], kv["main_capbnd"], "not the container's capabilities")
        self.assertEqual(kv["nnp"], "1")
        self.assertEqual(kv["seccomp"], "2", "no seccomp filter")
        self.kill(c.id, 9)
        self.wait(c.id)

    def test_exec_in_the_container_cgroup(self):
        c = self.create("sleep 60", memory_limit_mib=64)
        fut = self.stub.Exec.future(pb.ExecRequest(id=c.id, command=["sleep", "2.5"]),
                                    timeout=20)
        deadline = time.monotonic() + 10
        host_pid = None
        while host_pid is None and time.monotonic() < deadline:
            out = subprocess.run(["pgrep", "-x", "-f", "sleep 2.5"], capture_output=True,
                                 text=True).stdout.split()
            host_pid = out[0] if len(out) == 1 else None
            time.sleep(0.05)
        self.assertIsNotNone(host_pid, "the exec'd process never showed up")
        cgs = self.daemon.container_cgroups(c.id)
        self.assertTrue(cgs)
        for ctrl, path in cgs.items():
            procs = quiltlib.read_text(os.path.join(path, "cgroup.procs")).split()
            self.assertIn(host_pid, procs, "not in the container's %s cgroup" % ctrl)
        self.assertEqual(fut.result().exit_code, 0)
        self.kill(c.id, 9)
        self.wait(c.id)

    def test_exit_codes_signals_stdin_and_limits(self):
        c = self.create("sleep 60")
        self.assertEqual(self.exec(c.id, ["sh", "-c", "exit 7"]).exit_code, 7)
        r = self.exec(c.id, ["sh", "-c", "kill -9 $$"])
        self.assertEqual((r.exit_code, r.signal), (137, 9))
        data = os.urandom(3 << 20)
        r = self.exec(c.id, ["sh", "-c", "cat > /tmp/in; md5sum < /tmp/in; cat /tmp/in"],
                      stdin=data, output_limit_bytes=4 << 20, timeout=60)
        self.assertEqual(r.exit_code, 0, r.stderr)
        self.assertEqual(r.stdout[:32].decode(), hashlib.md5(data).hexdigest())
        self.assertEqual(r.stdout.split(b"\n", 1)[1], data)
        self.assertFalse(r.output_truncated)
        r = self.exec(c.id, ["sh", "-c", "head -c 5000000 /dev/zero; echo err >&2"],
                      output_limit_bytes=1000, timeout=60)
        self.assertEqual((len(r.stdout), r.stderr, r.output_truncated, r.exit_code),
                         (1000, b"err\n", True, 0))
        self.kill(c.id, 9)
        self.wait(c.id)

    def test_deadline_kills_a_hung_exec(self):
        c = self.create("sleep 60")
        t0 = time.monotonic()
        e = self.assertRpcCode(Code.DEADLINE_EXCEEDED, self.exec, c.id, ["sleep", "4321"],
                               timeout=1)
        self.assertLess(time.monotonic() - t0, 5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            left = self.exec(c.id, ["ps"]).stdout
            if b"4321" not in left:
                break
            time.sleep(0.1)
        self.assertNotIn(b"sleep 4321", left, "the hung exec was left running")
        self.kill(c.id, 9)
        self.wait(c.id)

    def test_exec_errors(self):
        self.assertRpcCode(Code.NOT_FOUND, self.exec, "no-such-container", ["true"])
        c = self.create("sleep 60")
        e = self.assertRpcCode(Code.NOT_FOUND, self.exec, c.id, ["no-such-program"])
        self.assertIn("no-such-program", e.details())
        e = self.assertRpcCode(Code.FAILED_PRECONDITION, self.exec, c.id, ["true"],
                               working_dir="/no/such/dir")
        self.assertIn("/no/such/dir", e.details())
        self.assertRpcCode(Code.INVALID_ARGUMENT, self.exec, c.id, [])
        self.stub.PauseContainer(pb.PauseContainerRequest(id=c.id), timeout=RPC_TIMEOUT)
        e = self.assertRpcCode(Code.FAILED_PRECONDITION, self.exec, c.id, ["true"])
        self.assertIn("paused", e.details())
        self.kill(c.id, 9)
        self.wait(c.id)
        e = self.assertRpcCode(Code.FAILED_PRECONDITION, self.exec, c.id, ["true"])
        self.assertIn("not running", e.details())

    def test_exec_as_another_user_and_in_a_user_namespace(self):
        c = self.create("sleep 60")
        r = self.exec(c.id, ["id"], user="1234:5678")
        self.assertEqual(r.stdout.split()[:2], [b"uid=1234", b"gid=5678"])
        self.kill(c.id, 9)
        self.wait(c.id)
        os.chmod(self.tmp, 0o711)
        u = self.create("sleep 60", namespaces=pb.Namespaces(user=True))
        r = self.exec(u.id, ["sh", "-c", "id -u; echo $(cat /proc/self/uid_map | tr -s ' ')"])
        self.assertEqual(r.exit_code, 0, r.stderr)
        self.assertEqual(r.stdout.split(b"\n")[:2], [b"0", b"0 100000 65536"])
        self.kill(u.id, 9)
        self.wait(u.id)
def start_fixture(tmp, script, args, name):
    """Starts tests/setup/SCRIPT ARGS (a registry on loopback); returns
    (process, port, log path) once it listens."""
    port_file = os.path.join(tmp, name + ".port")
    log = os.path.join(tmp, name + ".log")
    proc = subprocess.Popen(["/usr/bin/python3", os.path.join(SETUP_DIR, script)] + args
                            + ["--port-file", port_file, "--log", log],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError("%s did not start (status %r)" % (script, proc.returncode))
        time.sleep(0.05)
    with open(port_file) as f:
        return proc, int(f.read()), log


def stop_fixture(proc):
    if proc is not None:
        proc.terminate()
        proc.wait(timeout=10)


class ExecStreamTest(QuiltTestCase):
    """ExecStream: stdin, stdout and stderr as they happen, a terminal,
    resizes and signals."""

    def stream(self, inputs, timeout=60):
        return self.stub.ExecStream(iter(inputs), timeout=timeout)

    def drain(self, call):
        out, err, last = b"", b"", None
        for o in call:
            out += o.stdout
            err += o.stderr
            if o.exited:
                last = o
        return out, err, last

    def test_ten_mib_of_stdin_round_trips(self):
        c = self.create("sleep 120")
        data = os.urandom(10 << 20)

        def inputs():
            yield pb.ExecInput(start=pb.ExecRequest(id=c.id, command=["cat"]))
            for i in range(0, len(data), 65536):
                yield pb.ExecInput(stdin=data[i:i + 65536])
            yield pb.ExecInput(close_stdin=True)
        out, err, last = self.drain(self.stream(inputs(), timeout=120))
        self.assertEqual((last.exit_code, err), (0, b""))
        self.assertEqual(len(out), len(data))
        self.assertEqual(hashlib.sha256(out).hexdigest(), hashlib.sha256(data).hexdigest())
        self.kill(c.id, 9)
        self.wait(c.id)

    def test_output_comes_live_and_signals_reach_the_process(self):
        c = self.create("sleep 120")
        gate = threading.Event()

        def inputs():
            yield pb.ExecInput(start=pb.ExecRequest(
                id=c.id, command=["sh", "-c", "echo first; echo oops >&2; exec sleep 30"]))
            gate.wait(20)
            yield pb.ExecInput(signal=15)
        call = self.stream(inputs())
        t0 = time.monotonic()
        got, err, last = b"", b"", None
        for o in call:
            got += o.stdout
            err += o.stderr
            if b"first" in got and b"oops" in err and not gate.is_set():
                self.assertLess(time.monotonic() - t0, 10)
                gate.set()  # seen while it still runs: now signal it
            if o.exited:
                last = o
        self.assertTrue(gate.is_set(), "no output before the exit")
        self.assertEqual((last.signal, last.exit_code), (15, 143))
        self.kill(c.id, 9)
        self.wait(c.id)

    def test_terminal_size_and_resize(self):
        c = self.create("sleep 120")
        step = threading.Event()

        def inputs():
            yield pb.ExecInput(start=pb.ExecRequest(
                id=c.id, command=["sh"], tty=True,
                terminal_size=pb.TerminalSize(rows=24, cols=80)))
            yield pb.ExecInput(stdin=b"tty; stty size; echo mark1\n")
            step.wait(20)
            yield pb.ExecInput(resize=pb.TerminalSize(rows=40, cols=100))
            yield pb.ExecInput(stdin=b"stty size; exit 3\n")
        call = self.stream(inputs())
        out, last = b"", None
        for o in call:
            out += o.stdout
            self.assertEqual(o.stderr, b"", "a terminal has one output")
            if b"\nmark1\r\n" in out:  # its output line, not the echo of the input
                step.set()
            if o.exited:
                last = o
        self.assertEqual(last.exit_code, 3, out)
        self.assertIn(b"/dev/pts/0", out)
        self.assertIn(b"24 80", out)
        self.assertIn(b"40 100", out)
        self.kill(c.id, 9)
        self.wait(c.id)

    def test_cancel_kills_and_errors_are_statuses(self):
        c = self.create("sleep 120")
        call = self.stream([pb.ExecInput(start=pb.ExecRequest(id=c.id,
                                                              command=["sleep", "4322"]))],
                           timeout=1)
        with self.assertRaises(grpc.RpcError) as e:
            self.drain(call)
        self.assertEqual(e.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            left = self.stub.Exec(pb.ExecRequest(id=c.id, command=["ps"]), timeout=10).stdout
            if b"4322" not in left:
                break
            time.sleep(0.1)
        self.assertNotIn(b"sleep 4322", left, "the cancelled exec was left running")
        for inputs, code, text in (
                ([pb.ExecInput(stdin=b"x")], grpc.StatusCode.INVALID_ARGUMENT, "start"),
                ([pb.ExecInput(start=pb.ExecRequest(id="no-such", command=["true"]))],
                 grpc.StatusCode.NOT_FOUND, "no-such"),
                ([pb.ExecInput(start=pb.ExecRequest(id=c.id, command=["no-such-program"]))],
                 grpc.StatusCode.NOT_FOUND, "no-such-program")):
            with self.assertRaises(grpc.RpcError) as e:
                self.drain(self.stream(inputs, timeout=20))
            self.assertEqual(e.exception.code(), code)
            self.assertIn(text, e.exception.details())
        self.kill(c.id, 9)
        self.wait(c.id)


class PackageSetupTest(QuiltTestCase):
    """Shared by the apt and gem setup tests: an image made by make_image.sh,
    one registry on loopback, setup with the host's network."""

    image = None      # make_image.sh's name: debian, ruby
    needs = ()        # host files the image is made of
    registry = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.registry = None
        missing = [f for f in cls.needs if not os.path.exists(f)]
        if missing:
            cls.skip_why = "no %s on this host to build the test image from" % missing[0]
            return
        out = os.path.join(cls.tmp, "images")
        subprocess.run(["sh", os.path.join(SETUP_DIR, "make_image.sh"), out, cls.image],
                       check=True, capture_output=True, timeout=300)
        for _ in cls.daemon.stub.ImportImage(pb.ImportImageRequest(
                path=os.path.join(out, cls.image + ".tar"), tags=[cls.image + ":setup"]),
                timeout=120):
            pass
        cls.registry, cls.port, cls.registry_log = cls.start_registry()

    @classmethod
    def tearDownClass(cls):
        stop_fixture(cls.registry)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        if self.registry is None:
            self.skipTest(self.skip_why)

    def layers(self):
        try:
            return set(os.listdir(os.path.join(self.daemon.root, "layers")))
        except OSError:
            return set()

    def fetches(self, suffix):
        return sum(1 for line in quiltlib.read_text(self.registry_log).splitlines()
                   if line.split()[1].endswith(suffix) and line.endswith(" 200"))

    def spec_for(self, steps, **kw):
        return dict(image=self.image + ":setup", setup=steps,
                    setup_network=pb.NETWORK_MODE_HOST, setup_config=self.config(), **kw)

    def check_installs_then_reuses(self, step, cmd, want, artifact):
        """Runs cmd after step twice: installed from the registry, then from
        the cached layer (its field, its event, no second download)."""
        events = self.events()
        c, w, _ = self.run_container(cmd, timeout=180, **self.spec_for([step]))
        out = self.logs(c.id, stream=pb.LOG_STREAM_STDOUT)
        self.assertEqual((w.exit_code, out), (0, want), self.logs(c.id))
        setup_out = self.logs(c.id, stream=pb.LOG_STREAM_SETUP)
        self.assertIn(("quilt-setup: step 1/1: %s\n" % step).encode(), setup_out)
        self.assertIn(b"quilt-setup: done\n", setup_out)
        g = self.get(c.id)
        self.assertEqual((len(g.setup_layer), g.setup_reused), (64, False))
        self.assertIn(g.setup_layer, self.layers())
        fetched = self.fetches(artifact)
        self.assertEqual(fetched, 1)
        c2, w2, out2 = self.run_container(cmd, timeout=60, **self.spec_for([step]))
        g2 = self.get(c2.id)
        # Nothing ran: the setup output is one line saying so.
        self.assertEqual((w2.exit_code, out2),
                         (0, b"quilt-setup: reused layer %s\n%s" % (g.setup_layer.encode(), want)))
        self.assertEqual((g2.setup_layer, g2.setup_reused), (g.setup_layer, True))
        self.assertIsNotNone(events.wait_for(
            lambda e: e.type == pb.EVENT_TYPE_SETUP_DONE and e.container_id == c2.id
            and e.detail == "reused " + g.setup_layer, 10))
        self.assertEqual(self.fetches(artifact), fetched)
        return g.setup_layer

    def check_missing_package(self, step, *want):
        before = self.layers()
        e = self.assertRpcCode(Code.FAILED_PRECONDITION, self.create, ["true"], timeout=180,
                               **self.spec_for([step]))
        for text in (step,) + want:
            self.assertIn(text, e.details())
        self.assertEqual(self.layers(), before)


class AptSetupTest(PackageSetupTest):
    """--setup "apt: ..." in an image made of the host's apt and dpkg, against
    a Debian repository on loopback (tests/setup/apt_repo.py) that apt_mirror
    puts in place of the image's deb.debian.org source."""

    image = "debian"
    needs = ("/usr/bin/apt-get", "/usr/bin/dpkg-deb")

    @classmethod
    def start_registry(cls):
        return start_fixture(cls.tmp, "apt_repo.py",
                             ["--package", "quilt-hello-deb=1.0", "--stub-pip"], "apt")

    def config(self):
        return pb.SetupConfig(apt_mirror="http://127.0.0.1:%d" % self.port,
                              pip_index="http://127.0.0.1:1/simple")

    def test_apt_step_installs_then_reuses_its_layer(self):
        key = self.check_installs_then_reuses("apt: quilt-hello-deb", ["quilt-hello-deb"],
                                              b"quilt-hello-deb 1.0\n", ".deb")
        # What apt-get downloaded and listed stays out of the layer.
        layer = os.path.join(self.daemon.root, "layers", key)
        self.assertTrue(os.path.exists(os.path.join(layer, "usr/bin/quilt-hello-deb")))
        for d in ("var/lib/apt/lists", "var/cache/apt/archives"):
            left = [f for f in os.listdir(os.path.join(layer, d)) if f not in ("partial", "lock")] \
                if os.path.isdir(os.path.join(layer, d)) else []
            self.assertEqual(left, [], d)

    def test_missing_package_fails_and_caches_nothing(self):
        self.check_missing_package("apt: quilt-nonexistent", "exit code 100",
                                   "Unable to locate package quilt-nonexistent")

    def test_missing_pip_is_installed_with_apt_first(self):
        # The repository's python3-pip is a stub (apt_repo.py --stub-pip);
        # what matters is that the script asked apt for it.
        c, w, _ = self.run_container(["quilt-tool"], timeout=180,
                                     **self.spec_for(["pip: quilt-tool"]))
        out = self.logs(c.id, stream=pb.LOG_STREAM_STDOUT)
        self.assertEqual((w.exit_code, out), (0, b"quilt-tool (stub pip)\n"), self.logs(c.id))
        self.assertIn(b"quilt-setup: step 1/1: installing python3-pip with apt-get",
                      self.logs(c.id, stream=pb.LOG_STREAM_SETUP))
        self.assertEqual(self.fetches("python3-pip_0.0-quilt_all.deb"), 1)


class GemSetupTest(PackageSetupTest):
    """--setup "gem: ..." in an image made of the host's ruby, against a gem
    source on loopback (tests/setup/gem_source.py)."""

    image = "ruby"
    needs = ("/usr/bin/ruby", "/usr/bin/gem")

    @classmethod
    def start_registry(cls):
        return start_fixture(cls.tmp, "gem_source.py", ["--gem", "quilt_hello=1.0.0"], "gem")

    def config(self):
        return pb.SetupConfig(gem_source="http://127.0.0.1:%d/" % self.port)

    def test_gem_step_installs_then_reuses_its_layer(self):
        self.check_installs_then_reuses(
            "gem: quilt_hello", ["sh", "-c", "quilt_hello && ruby -rquilt_hello -e 'p QuiltHello::VERSION'"],
            b'quilt_hello 1.0.0\n"1.0.0"\n', ".gem")

    def test_missing_gem_fails_and_caches_nothing(self):
        self.check_missing_package("gem: quilt_nonexistent", "exit code 2",
                                   "quilt_nonexistent")


class NoOverlayTest(QuiltTestCase):
    """Where overlayfs is missing each container gets a private copy of the
    image (reflinked where the filesystem can): writable, and nobody else's."""

    daemon_args = ("--no-overlay",)

    def test_each_container_gets_a_private_copy(self):
        info = self.stub.GetSystemInfo(pb.GetSystemInfoRequest(), timeout=RPC_TIMEOUT)
        self.assertIn("copy", info.rootfs_driver)
        script = "; ".join([
            'echo hi > /made && echo "made=$(cat /made)"',
            'rm /bin/ls && echo "ls=removed"',
            'echo x > /tmp/f && echo "tmp=ok"',
        ])
        _, w, out = self.run_container(script)
        kv = parse_kv(out)
        self.assertEqual((kv.get("made"), kv.get("ls"), kv.get("tmp")), ("hi", "removed", "ok"),
                         out)
        _, w, out = self.run_container(
            'test -e /made && echo made=yes || echo made=no; '
            'test -e /bin/ls && echo ls=yes || echo ls=no')
        kv = parse_kv(out)
        self.assertEqual((kv.get("made"), kv.get("ls")), ("no", "yes"), out)


# ------------------------------------------------------------------ restart

class RestartTest(QuiltTestCase):
    """Several daemons in turn on one root: started here, not in setUpClass."""

    start_daemon = False

    def restart(self):
        """Stops the current daemon with SIGTERM (expecting 0) and starts another."""
        old = self.daemon
        self.assertEqual(old.stop(), 0, "quiltd did not exit 0 on SIGTERM\n" + old.log_tail())
        return self.replace_daemon(old.root)

    def replace_daemon(self, root):
        d = type(self).daemon = self.new_daemon(root=root)
        self.fd_base = self.warm_up(d)
        return d

    def setUp(self):
        super().setUp()
        self.replace_daemon(os.path.join(self.tmp, self.id().split(".")[-1]))

    def tearDown(self):
        try:
            super().tearDown()
            d = self.daemon
            self.assertEqual(leftovers(d, self.seen_ids, self.fd_base), [])
            self.assertEqual(d.stop(), 0, "quiltd did not exit 0 on SIGTERM\n" + d.log_tail())
        finally:
            for d in self.daemons:
                d.kill()
            type(self).daemon = None

    def test_exited_container_survives_restart(self):
        c = self.create("echo bye; echo oops >&2; exit 3", name="survivor")
        self.assertEqual(self.wait(c.id).exit_code, 3)
        before = self.logs(c.id)
        self.restart()
        g = self.get(c.id)
        self.assertEqual((g.state, g.exit_code, g.name),
                         (pb.CONTAINER_STATE_EXITED, 3, "survivor"))
        self.assertEqual(self.get("survivor").id, c.id)
        self.assertEqual(self.logs(c.id, follow=False), before)
        self.assertEqual(self.logs(c.id, stream=pb.LOG_STREAM_STDOUT), b"bye\n")
        self.assertEqual(self.wait(c.id).exit_code, 3)

    def test_scratch_keeps_layers_across_restart(self):
        """Writable layers live on a tmpfs quiltd mounts at <root>/scratch; it
        stays mounted while a layer is in it (across a restart) and is
        unmounted by the quiltd that stops with none left."""
        d = self.daemon
        scratch = quiltlib.scratch_of(d.root)
        if "--scratch" in " ".join(d.extra_args) + os.environ.get("QUILTD_EXTRA_ARGS", ""):
            self.assertFalse(os.path.ismount(scratch))
            info = self.stub.GetSystemInfo(pb.GetSystemInfoRequest(), timeout=RPC_TIMEOUT)
            self.assertEqual(info.rootfs_driver, "overlay (layers on disk)")
            self.skipTest("--scratch disk: layers are in the containers' directories")
        self.assertTrue(os.path.ismount(scratch), "no tmpfs at %s" % scratch)
        info = self.stub.GetSystemInfo(pb.GetSystemInfoRequest(), timeout=RPC_TIMEOUT)
        self.assertEqual(info.rootfs_driver, "overlay (layers on tmpfs)")
        fstype = subprocess.run(["stat", "-f", "-c", "%T", scratch], capture_output=True,
                                text=True).stdout.strip()
        self.assertEqual(fstype, "tmpfs")
        c = self.create("echo kept > /made")
        self.assertEqual(self.wait(c.id).exit_code, 0)
        made = os.path.join(scratch, c.id, "upper", "made")
        self.assertEqual(quiltlib.read_text(made), "kept\n")
        self.assertFalse(os.path.exists(os.path.join(d.root, "containers", c.id, "upper")))
        d = self.restart()
        self.assertTrue(os.path.ismount(scratch))
        self.assertEqual(quiltlib.read_text(made), "kept\n")
        self.stub.RemoveContainer(pb.RemoveContainerRequest(id=c.id), timeout=RPC_TIMEOUT)
        deadline = time.monotonic() + 10
        while os.path.exists(os.path.join(scratch, c.id)) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(os.path.exists(os.path.join(scratch, c.id)))
        self.assertEqual(d.stop(), 0, d.log_tail())
        self.assertFalse(os.path.ismount(scratch), "quiltd left its empty scratch mounted")
        self.replace_daemon(d.root)  # tearDown checks and stops this one

    def children(self, name):
        return quiltlib.children_of(self.daemon.pid, name)

    def test_zygote_forks_sandboxes_for_quiltd(self):
        """The warm pool's sandboxes come from the quilt-zygote process but
        are quiltd's children (CLONE_PARENT); the zygote goes with quiltd."""
        self.require_pool()
        d = self.daemon
        d.wait_pool_ready()
        zygotes = self.children("quilt-zygote")
        self.assertEqual(len(zygotes), 1, "quiltd's zygote processes: %s" % zygotes)
        self.assertGreaterEqual(len(self.children("quilt-sandbox")), 2)
        c = self.create(["sleep", "100"])
        ppid = [l for l in quiltlib.read_text("/proc/%d/status" % c.pid).splitlines()
                if l.startswith("PPid:")]
        self.assertEqual(ppid, ["PPid:\t%d" % d.pid])
        self.kill(c.id, signal.SIGKILL)
        self.assertEqual(self.wait(c.id).signal, signal.SIGKILL)
        self.assertEqual(d.stop(), 0, d.log_tail())
        self.assertFalse(quiltlib.process_alive(zygotes[0]), "the zygote outlived quiltd")
        self.replace_daemon(d.root)  # tearDown checks and stops this one

    def check_pool_survives_zygote(self, sig, says):
        """After the zygote gets sig, containers still start, the pool
        refills (quiltd forks the sandboxes) and the zygote is reaped."""
        self.require_pool()
        d = self.daemon
        d.wait_pool_ready()
        (zygote,) = self.children("quilt-zygote")
        os.kill(zygote, sig)
        for i in range(4):  # empties the pool: refills ask the zygote
            c = self.create(["sh", "-c", "exit %d" % i])
            self.assertEqual(self.wait(c.id).exit_code, i)
        deadline = time.monotonic() + 10
        while says not in quiltlib.read_text(d.log_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn(says, quiltlib.read_text(d.log_path))
        d.wait_pool_ready()
        while os.path.exists("/proc/%d" % zygote) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(os.path.exists("/proc/%d" % zygote), "the zygote was not reaped")
        self.assertEqual(self.children("quilt-zygote"), [])
        c = self.create(["true"])
        self.assertEqual(self.wait(c.id).exit_code, 0)

    def take_pool_with_zygote_stopped(self):
        """Empties the warm pool with the zygote stopped: the refill's
        request to it stays unanswered. Returns the zygote's pid and the
        count of creates that waited so far."""
        self.require_pool()
        d = self.daemon
        d.wait_pool_ready()
        (zygote,) = self.children("quilt-zygote")
        os.kill(zygote, signal.SIGSTOP)
        self.addCleanup(quiltlib.signal_quietly, zygote, signal.SIGCONT)
        for _ in range(8):  # a take after the stop asks the stopped zygote
            c = self.create(["true"])
            self.assertEqual(self.wait(c.id).exit_code, 0)
            if d.metric("quilt_warm_pool_size") == 0:
                break
        self.assertEqual(d.metric("quilt_warm_pool_size"), 0)
        return zygote, d.metric("quilt_warm_pool_waited_total")

    def test_create_waits_for_the_sandbox_being_built(self):
        """A create that finds no ready sandbox, while one is on its way,
        takes that one when it is ready instead of starting cold."""
        d = self.daemon
        zygote, waited = self.take_pool_with_zygote_stopped()
        req = pb.CreateContainerRequest(spec=self.spec(["sh", "-c", "exit 7"]))
        fut = self.stub.CreateContainer.future(req, timeout=RPC_TIMEOUT)
        time.sleep(0.3)
        self.assertFalse(fut.done(), "the create did not wait for the sandbox")
        os.kill(zygote, signal.SIGCONT)
        c = fut.result().container
        self.created.append(c.id)
        self.assertEqual(self.wait(c.id).exit_code, 7)
        self.assertEqual(d.metric("quilt_warm_pool_waited_total"), waited + 1)
        self.assertEqual(self.children("quilt-zygote"), [zygote])

    def test_create_that_gives_up_waiting_leaves_nothing(self):
        """A waiting create whose deadline passes answers DEADLINE_EXCEEDED,
        creates nothing, and the sandbox it waited for joins the pool."""
        d = self.daemon
        zygote, waited = self.take_pool_with_zygote_stopped()
        req = pb.CreateContainerRequest(spec=self.spec(["true"], name="gave-up"))
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.CreateContainer(req, timeout=0.3)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        os.kill(zygote, signal.SIGCONT)
        d.wait_pool_ready()
        with self.assertRaises(grpc.RpcError) as cm:
            self.get("gave-up")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(d.metric("quilt_warm_pool_waited_total"), waited)
        c = self.create(["true"], name="gave-up")
        self.assertEqual(self.wait(c.id).exit_code, 0)

    def test_pool_survives_a_dead_zygote(self):
        self.check_pool_survives_zygote(signal.SIGKILL, "the zygote failed")

    def test_pool_survives_a_stuck_zygote(self):
        """A zygote that stops answering is given up on after 2 s; the
        loop never waits for it meanwhile."""
        self.check_pool_survives_zygote(signal.SIGSTOP, "the zygote did not answer")

    def test_running_container_after_daemon_sigkill(self):
        c = self.create(["sleep", "1000"])
        host_pid = c.pid
        self.assertTrue(quiltlib.process_alive(host_pid))
        self.daemon.kill()  # SIGKILL: no chance to clean up
        time.sleep(0.2)
        self.assertTrue(quiltlib.process_alive(host_pid),
                        "the container died with its daemon; nothing left to test")
        self.replace_daemon(self.daemon.root)
        g = self.get(c.id)
        self.assertEqual(g.state, pb.CONTAINER_STATE_EXITED, g)
        self.assertEqual(g.pid, 0)
        # The new daemon killed what the old one left running.
        deadline = time.monotonic() + 10
        while quiltlib.process_alive(host_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertFalse(quiltlib.process_alive(host_pid),
                         "container process %d survived the restart" % host_pid)
        self.assertEqual(quiltlib.pids_in_cgroups_named({c.id}), {})
        self.assertEqual(self.wait(c.id).exit_code, 137)

    # ------------------------------------------------------------ warm pool

    def require_pool(self):
        if not self.daemon.pool_enabled():
            self.skipTest("the warm pool is off (--warm-pool 0)")

    def test_created_container_starts_after_restart(self):
        """A container created from a warm sandbox and not started keeps its
        files across a restart and then starts cold."""
        c = self.create("echo started; cat /proc/self/cgroup | grep -c quilt", no_start=True,
                        name="later")
        self.restart()
        self.stub.StartContainer(pb.StartContainerRequest(id="later"), timeout=RPC_TIMEOUT)
        self.assertEqual(self.wait(c.id).exit_code, 0)
        out = self.logs(c.id).decode().split()
        self.assertEqual(out[0], "started")
        self.assertGreater(int(out[1]), 0, "not in its cgroup")

    def test_warm_sandboxes_swept_after_daemon_sigkill(self):
        self.require_pool()
        warm = self.daemon.wait_pool_ready()
        self.assertEqual(len(warm), 2, warm)
        self.daemon.kill()
        # The sandboxes wait on a pipe from the daemon: its death ends them.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
                quiltlib.process_alive(p) for p in quiltlib.pids_in_cgroups_named(warm)):
            time.sleep(0.1)
        self.assertEqual({p: l for p, l in quiltlib.pids_in_cgroups_named(warm).items()
                          if quiltlib.process_alive(p)}, {})
        d = self.replace_daemon(self.daemon.root)
        # The new daemon removed the old sandboxes' cgroups and files.
        self.assertEqual(leftovers(d, warm), [])
        type(self).seen_ids |= warm

    def test_pool_follows_the_default_image(self):
        """When busybox:latest moves to another image, the pool's sandboxes
        of the old one are dropped and it refills with the new one."""
        import io
        import tarfile
        self.require_pool()
        d = self.daemon
        old = d.wait_pool_ready()
        rootfs = os.path.join(os.path.dirname(os.environ["QUILTD"]), "busybox-rootfs")
        archive = os.path.join(self.tmp, "busybox-marked.tar")
        with tarfile.open(archive, "w") as t:
            t.add(rootfs, arcname=".")
            ti = tarfile.TarInfo("etc/quilt-marker")
            ti.size = 4
            t.addfile(ti, io.BytesIO(b"new\n"))
        for _ in self.stub.ImportImage(pb.ImportImageRequest(path=archive,
                                                             tags=["busybox:latest"]),
                                       timeout=60):
            pass
        c, w, out = self.run_container(["cat", "/etc/quilt-marker"])
        self.assertEqual((w.exit_code, out), (0, b"new\n"))
        deadline = time.monotonic() + 20
        while old & d.dir_ids() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(old & d.dir_ids(), set(), "stale sandboxes kept")
        fresh = d.wait_pool_ready()
        hits = d.metric("quilt_warm_pool_hits_total")
        c2, w2, out2 = self.run_container(["cat", "/etc/quilt-marker"])
        self.assertEqual(out2, b"new\n")
        self.assertIn(c2.id, fresh)
        self.assertEqual(d.metric("quilt_warm_pool_hits_total"), hits + 1)

    def test_pool_learns_other_images(self):
        """A container of another image that found no sandbox makes the pool
        keep sandboxes of that image too, until the image goes."""
        import io
        import tarfile
        self.require_pool()
        d = self.daemon
        d.wait_pool_ready()
        rootfs = os.path.join(os.path.dirname(os.environ["QUILTD"]), "busybox-rootfs")
        archive = os.path.join(self.tmp, "busybox-learned.tar")
        with tarfile.open(archive, "w") as t:
            t.add(rootfs, arcname=".")
            ti = tarfile.TarInfo("etc/quilt-learned")
            ti.size = 8
            t.addfile(ti, io.BytesIO(b"learned\n"))
        last = None
        for last in self.stub.ImportImage(pb.ImportImageRequest(path=archive, tags=["learn:1"]),
                                          timeout=60):
            pass
        views = d.metric("quilt_warm_pool_views")
        misses = d.metric("quilt_warm_pool_misses_total")
        before = d.dir_ids()
        c1, w1, out1 = self.run_container(["cat", "/etc/quilt-learned"], image="learn:1")
        self.assertEqual((w1.exit_code, out1), (0, b"learned\n"))
        self.assertEqual(d.metric("quilt_warm_pool_misses_total"), misses + 1)
        self.assertEqual(d.metric("quilt_warm_pool_views"), views + 1)
        learned = d.wait_pool_ready(4) - before - {c1.id}
        self.assertEqual(len(learned), 2, learned)
        hits = d.metric("quilt_warm_pool_hits_total")
        c2, w2, out2 = self.run_container(["cat", "/etc/quilt-learned"], image="learn:1")
        self.assertEqual((w2.exit_code, out2), (0, b"learned\n"))
        self.assertIn(c2.id, learned)
        self.assertEqual(d.metric("quilt_warm_pool_hits_total"), hits + 1)
        # Removing the image takes its sandboxes and its view.
        for ref in (c1.id, c2.id):
            self.stub.RemoveContainer(pb.RemoveContainerRequest(id=ref), timeout=30)
            self.created.remove(ref)
        self.stub.RemoveImage(pb.RemoveImageRequest(id=last.image.id), timeout=30)
        self.assertEqual(d.metric("quilt_warm_pool_views"), views)
        deadline = time.monotonic() + 20
        while learned & d.dir_ids() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(learned & d.dir_ids(), set(), "the image's sandboxes stayed")
        type(self).seen_ids |= learned

    def test_pool_serves_and_refills(self):
        self.require_pool()
        d = self.daemon
        warm = d.wait_pool_ready()
        hits = d.metric("quilt_warm_pool_hits_total")
        c = self.create(["hostname"], name="pooled", memory_limit_mib=64, pids_limit=20)
        self.assertIn(c.id, warm, "the container did not get a warm sandbox")
        self.assertEqual(self.wait(c.id).exit_code, 0)
        self.assertEqual(self.logs(c.id), b"pooled\n")
        self.assertEqual(d.metric("quilt_warm_pool_hits_total"), hits + 1)
        # Its own limits, not the sandbox's (none).
        s = self.create(["sh", "-c", "sleep 30"], memory_limit_mib=64, pids_limit=20)
        st = self.stats(s.id)
        self.assertEqual(st.pids_limit, 20)
        self.assertEqual(st.memory_limit_bytes, 64 << 20)
        self.kill(s.id, 9)
        self.wait(s.id)
        refilled = d.wait_pool_ready()
        self.assertEqual(len(refilled - {c.id, s.id}), 2)
        # Anything but the default image and namespaces starts cold.
        misses = d.metric("quilt_warm_pool_misses_total")
        u = self.create(["true"], namespaces=pb.Namespaces(disable_network=True))
        self.assertNotIn(u.id, refilled)
        self.assertEqual(self.wait(u.id).exit_code, 0)
        self.assertEqual(d.metric("quilt_warm_pool_misses_total"), misses + 1)
        # Stopping the daemon takes the sandboxes down with it, files and all.
        ids = d.dir_ids()
        self.assertEqual(d.stop(), 0)
        type(self).seen_ids |= ids
        self.replace_daemon(d.root)
        self.assertEqual(leftovers(self.daemon, ids - {c.id, s.id, u.id}), [])


# ------------------------------------------------------------------ mounts

class MountTest(QuiltTestCase):
    """Bind, tmpfs and volume mounts (docs/containers.md#mounts-and-volumes)."""

    daemon_args = ("--mount-deny", "/etc")

    def setUp(self):
        super().setUp()
        self.host = tempfile.mkdtemp(prefix="mnt-", dir=self.tmp)

    def tearDown(self):
        super().tearDown()
        d = self.daemon
        if d is not None and d.stub is not None and d.proc.poll() is None:
            for v in self.stub.ListVolumes(pb.ListVolumesRequest(), timeout=RPC_TIMEOUT).volumes:
                self.stub.RemoveVolume(pb.RemoveVolumeRequest(name=v.name, force=True),
                                       timeout=RPC_TIMEOUT)

    def bind(self, source, target, readonly=False):
        return pb.Mount(type="bind", source=source, target=target, readonly=readonly)

    def test_readonly_bind_cannot_be_written(self):
        path = os.path.join(self.host, "f")
        with open(path, "w") as f:
            f.write("host\n")
        _, w, out = self.run_container(
            "cat /data/f; echo x > /data/f || echo refused; touch /data/g || echo refused2",
            mounts=[self.bind(self.host, "/data", readonly=True)])
        self.assertEqual(w.exit_code, 0, out)
        self.assertIn(b"host\n", out)
        self.assertIn(b"Read-only file system", out)
        self.assertIn(b"refused\n", out)
        self.assertIn(b"refused2\n", out)
        with open(path) as f:
            self.assertEqual(f.read(), "host\n")
        self.assertEqual(os.listdir(self.host), ["f"])

    def test_readwrite_bind_reaches_host(self):
        path = os.path.join(self.host, "file")
        with open(path, "w") as f:
            f.write("old")
        _, w, out = self.run_container(
            "mkdir -p /deep/er; echo new > /deep/er/dir/out; cat /f",
            mounts=[self.bind(self.host, "/deep/er/dir"), self.bind(path, "/f")])
        self.assertEqual(w.exit_code, 0, out)
        self.assertEqual(out, b"old")
        with open(os.path.join(self.host, "out")) as f:
            self.assertEqual(f.read(), "new\n")

    def test_denied_sources_are_refused(self):
        link = os.path.join(self.host, "to-proc")
        os.symlink("/proc/self", link)
        etc_link = os.path.join(self.host, "to-etc")
        os.symlink("/etc", etc_link)
        for source, named in (("/", "/"), ("/proc", "/proc"), ("/sys/kernel", "/sys"),
                              ("/dev", "/dev"), (self.daemon.root, self.daemon.root),
                              (os.path.join(self.daemon.root, "containers"), self.daemon.root),
                              (os.path.dirname(self.daemon.root), self.daemon.root),
                              (link, "/proc"), (etc_link, "/etc")):
            e = self.assertRpcCode(Code.INVALID_ARGUMENT, self.create, ["true"],
                                   mounts=[self.bind(source, "/x")])
            self.assertIn("bind mount source %s" % source, e.details())
            self.assertIn("(%s is not mountable)" % named, e.details())
        # Under / is fine, and so is a path the deny list only shares a prefix with.
        # A symlink is judged, and mounted, as what it points at.
        os.makedirs(os.path.join(self.host, "proc"))
        os.symlink(os.path.join(self.host, "proc"), os.path.join(self.host, "ok-link"))
        _, w, out = self.run_container("touch /x/a /y/b; ls /x", mounts=[
            self.bind(os.path.join(self.host, "proc"), "/x"),
            self.bind(os.path.join(self.host, "ok-link"), "/y")])
        self.assertEqual((w.exit_code, out), (0, b"a\nb\n"))

    def test_invalid_mounts_are_refused(self):
        cases = [
            (pb.Mount(type="nfs", source="x", target="/x"), Code.INVALID_ARGUMENT, "unknown type"),
            (self.bind(self.host, "rel"), Code.INVALID_ARGUMENT, "not an absolute path"),
            (self.bind(self.host, "/a/../b"), Code.INVALID_ARGUMENT, "contains \"..\""),
            (self.bind(self.host, "/"), Code.INVALID_ARGUMENT, "cannot be a mount"),
            (self.bind(self.host, "/proc/sys"), Code.INVALID_ARGUMENT, "cannot be mounted over"),
            (self.bind("rel/x", "/x"), Code.INVALID_ARGUMENT, "not an absolute path"),
            (self.bind(self.host + "/missing", "/x"), Code.NOT_FOUND, "missing"),
            (pb.Mount(type="tmpfs", source="x", target="/t"), Code.INVALID_ARGUMENT,
             "takes no source"),
            (pb.Mount(type="volume", source="-bad", target="/v"), Code.INVALID_ARGUMENT,
             "invalid volume name"),
        ]
        for m, code, text in cases:
            e = self.assertRpcCode(code, self.create, ["true"], mounts=[m])
            self.assertIn(text, e.details())
        e = self.assertRpcCode(Code.INVALID_ARGUMENT, self.create, ["true"],
                               mounts=[self.bind(self.host, "/x"), self.bind(self.host, "/x")])
        self.assertIn("two mounts on /x", e.details())
        e = self.assertRpcCode(Code.INVALID_ARGUMENT, self.create, ["true"], mounts=[
            pb.Mount(type="tmpfs", target="/t%d" % i) for i in range(33)])
        self.assertIn("at most 32", e.details())
        e = self.assertRpcCode(Code.INVALID_ARGUMENT, self.create, ["true"],
                               mounts=[pb.Mount(type="tmpfs", target="/t")],
                               namespaces=pb.Namespaces(disable_mount=True))
        self.assertIn("mounts need the mount namespace", e.details())

    def test_symlink_target_stays_in_rootfs(self):
        import tarfile
        rootfs = os.path.join(os.path.dirname(os.environ["QUILTD"]), "busybox-rootfs")
        archive = os.path.join(self.tmp, "links.tar")
        with tarfile.open(archive, "w") as t:
            t.add(rootfs, arcname=".")
            ti = tarfile.TarInfo("escape")
            ti.type = tarfile.SYMTYPE
            ti.linkname = "/../../../../../../tmp"
            t.addfile(ti)
        last = None
        for last in self.stub.ImportImage(pb.ImportImageRequest(path=archive, tags=["links:1"]),
                                          timeout=60):
            pass
        name = "quilt-mount-escape-%s" % uuid.uuid4().hex[:12]
        try:
            _, w, out = self.run_container(
                "ls /tmp/%s; echo hi > /escape/%s/file" % (name, name), image="links:1",
                mounts=[self.bind(self.host, "/escape/%s" % name)])
            self.assertEqual(w.exit_code, 0, out)
            self.assertFalse(os.path.exists("/tmp/" + name))
            with open(os.path.join(self.host, "file")) as f:
                self.assertEqual(f.read(), "hi\n")
        finally:
            for ref in self.created[:]:
                self.stub.RemoveContainer(pb.RemoveContainerRequest(id=ref, force=True),
                                          timeout=30)
            self.created.clear()
            self.stub.RemoveImage(pb.RemoveImageRequest(id="links:1", force=True), timeout=30)

    def test_tmpfs_size_is_enforced(self):
        _, w, out = self.run_container(
            "stat -c %a /scratch; dd if=/dev/zero of=/scratch/big bs=65536 count=64 2>&1; "
            "echo rc=$?; dd if=/dev/zero of=/scratch/big bs=65536 count=8 2>/dev/null; "
            "echo small=$?",
            mounts=[pb.Mount(type="tmpfs", target="/scratch", size_bytes=1 << 20)])
        self.assertEqual(w.exit_code, 0, out)
        self.assertIn(b"1777\n", out)
        self.assertIn(b"No space left on device", out)
        self.assertNotIn(b"rc=0\n", out)
        self.assertIn(b"small=0\n", out)

    def test_volume_keeps_data_across_containers(self):
        vol = pb.Mount(type="volume", source="data-1", target="/vol")
        _, w, out = self.run_container("echo kept > /vol/f", mounts=[vol])
        self.assertEqual(w.exit_code, 0, out)
        _, w, out = self.run_container("cat /v2/f; touch /v2/g", mounts=[
            pb.Mount(type="volume", source="data-1", target="/v2", readonly=True)])
        self.assertIn(b"Read-only file system", out)
        out = out.split(b"touch")[0]
        self.assertEqual(out, b"kept\n")
        vols = {v.name: v for v in
                self.stub.ListVolumes(pb.ListVolumesRequest(), timeout=RPC_TIMEOUT).volumes}
        self.assertEqual(sorted(vols["data-1"].in_use_by), sorted(self.created))
        self.assertGreater(vols["data-1"].created_ns, 0)
        self.assertGreater(vols["data-1"].size_bytes, 0)
        # In use: refused; unused volumes go with a prune, used ones stay.
        self.stub.CreateVolume(pb.CreateVolumeRequest(name="spare", labels={"k": "v"}),
                               timeout=RPC_TIMEOUT)
        self.assertRpcCode(Code.ALREADY_EXISTS, self.stub.CreateVolume,
                           pb.CreateVolumeRequest(name="spare"), timeout=RPC_TIMEOUT)
        e = self.assertRpcCode(Code.FAILED_PRECONDITION, self.stub.RemoveVolume,
                               pb.RemoveVolumeRequest(name="data-1"), timeout=RPC_TIMEOUT)
        self.assertIn("volume data-1 is in use by 2 containers", e.details())
        r = self.stub.PruneVolumes(pb.PruneVolumesRequest(), timeout=RPC_TIMEOUT)
        self.assertEqual(list(r.removed), ["spare"])
        for ref in self.created[:]:
            self.stub.RemoveContainer(pb.RemoveContainerRequest(id=ref, force=True), timeout=30)
        self.created.clear()
        r = self.stub.PruneVolumes(pb.PruneVolumesRequest(), timeout=RPC_TIMEOUT)
        self.assertEqual(list(r.removed), ["data-1"])
        self.assertGreater(r.reclaimed_bytes, 0)
        self.assertEqual(
            list(self.stub.ListVolumes(pb.ListVolumesRequest(), timeout=RPC_TIMEOUT).volumes), [])
        self.assertRpcCode(Code.NOT_FOUND, self.stub.RemoveVolume,
                           pb.RemoveVolumeRequest(name="data-1"), timeout=RPC_TIMEOUT)

    def test_forced_removal_of_a_volume_in_use(self):
        vol = [pb.Mount(type="volume", source="forced", target="/v")]
        _, w, _ = self.run_container("echo old > /v/f", mounts=vol)
        c = self.create("ls /v; echo listed", no_start=True, mounts=vol)
        self.stub.RemoveVolume(pb.RemoveVolumeRequest(name="forced", force=True),
                               timeout=RPC_TIMEOUT)
        self.assertFalse(os.path.exists(os.path.join(self.daemon.root, "volumes", "forced")))
        # The start makes it again, empty.
        self.stub.StartContainer(pb.StartContainerRequest(id=c.id), timeout=RPC_TIMEOUT)
        self.assertEqual(self.wait(c.id).exit_code, 0)
        self.assertEqual(self.logs(c.id), b"listed\n")
        self.assertEqual([v.name for v in self.stub.ListVolumes(
            pb.ListVolumesRequest(), timeout=RPC_TIMEOUT).volumes], ["forced"])

    def test_mounts_skip_the_warm_pool(self):
        d = self.daemon
        if not d.pool_enabled():
            self.skipTest("no warm pool")
        d.wait_pool_ready()
        hits = d.metric("quilt_warm_pool_hits_total")
        _, w, out = self.run_container("ls /m", mounts=[self.bind(self.host, "/m")])
        self.assertEqual(w.exit_code, 0, out)
        self.assertEqual(d.metric("quilt_warm_pool_hits_total"), hits)
        _, w, _ = self.run_container(["true"])
        self.assertEqual(d.metric("quilt_warm_pool_hits_total"), hits + 1)

    def test_user_namespace_mounts(self):
        # One container: a second user-namespaced container of one image
        # trips over the cached idmapped tree on this kernel (not mounts').
        os.chmod(self.tmp, 0o711)
        os.chmod(self.host, 0o755)
        with open(os.path.join(self.host, "f"), "w") as f:
            f.write("shared\n")
        _, w, out = self.run_container(
            "cat /data/f; stat -c %u /data/f; echo mine > /v/f && stat -c %u /v/f",
            namespaces=pb.Namespaces(user=True),
            mounts=[self.bind(self.host, "/data", readonly=True),
                    pb.Mount(type="volume", source="userns-vol", target="/v")])
        self.assertEqual(w.exit_code, 0, out)
        # A bind keeps host ownership: root outside is unmapped (the overflow
        # id) inside; a volume first used by such a container belongs to its root.
        self.assertEqual(out, b"shared\n65534\n0\n")
        st = os.stat(os.path.join(self.daemon.root, "volumes", "userns-vol", "data", "f"))
        self.assertEqual(st.st_uid, 100000)


if __name__ == "__main__":
    unittest.main()

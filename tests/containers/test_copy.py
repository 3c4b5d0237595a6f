#!/usr/bin/python3
"""CopyIn / CopyOut integration tests: real containers run by a real quiltd.

    QUILTD=/tmp/build/quiltd QUILT_PROTO_DIR=proto \\
        /usr/bin/python3 tests/containers/test_copy.py -v

Trees go in and come back out of running, created and exited containers;
symlinks planted in a container (`escape -> /`, `etcl -> /etc`) and crafted
archives (`../../x`, `/abs`, a symlink and a file through it) must never
reach the host; errors are statuses; after every copy, cancelled ones too,
no helper process, mount or fd is left. The restart test checks a named
volume's data survives a daemon restart. Cleanup (containers, leftovers) is
test_lifecycle's QuiltTestCase.
"""
import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
import threading
import time
import unittest
import uuid

import grpc

import quiltlib
import test_lifecycle
from quiltlib import RPC_TIMEOUT
from test_lifecycle import QuiltTestCase, leftovers

pb = None
Code = grpc.StatusCode
BIG = 64 << 20
CHUNK = 256 << 10


def setUpModule():
    global pb
    pb, _ = quiltlib.load_stubs()
    test_lifecycle.pb = pb


def tearDownModule():
    quiltlib.unload_stubs()


# ------------------------------------------------------------------ archives

def tar_bytes(entries):
    """entries: (name, kind, value[, mode]); kind file (bytes), dir, sym (target),
    hard (target), chr (device)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            name, kind, value = e[:3]
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            ti.uid = ti.gid = 1234
            if len(e) > 3:
                ti.mode = e[3]
            if kind == "file":
                ti.size = len(value)
                tf.addfile(ti, io.BytesIO(value))
                continue
            ti.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                       "hard": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE}[kind]
            if kind in ("sym", "hard"):
                ti.linkname = value
            if kind == "chr":
                ti.devmajor, ti.devminor = 1, 3
            tf.addfile(ti)
    return buf.getvalue()


def tar_members(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        out = {}
        for m in tf.getmembers():
            sha = None
            if m.isfile():
                h = hashlib.sha256()
                f = tf.extractfile(m)
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
                sha = h.hexdigest()
            out[m.name.rstrip("/")] = (m.type, stat.S_IMODE(m.mode), m.linkname, sha, m.uid)
        return out


def make_tree(root):
    """A tree with files, dirs, an empty dir, symlinks, modes and a 64 MiB file;
    returns the big file's sha256."""
    os.makedirs(os.path.join(root, "sub", "deeper"))
    os.makedirs(os.path.join(root, "empty"))
    with open(os.path.join(root, "hello.txt"), "w") as f:
        f.write("hello\n")
    with open(os.path.join(root, "sub", "deeper", "run.sh"), "w") as f:
        f.write("#!/bin/sh\necho ran\n")
    os.chmod(os.path.join(root, "sub", "deeper", "run.sh"), 0o755)
    with open(os.path.join(root, "secret"), "w") as f:
        f.write("s\n")
    os.chmod(os.path.join(root, "secret"), 0o600)
    os.symlink("hello.txt", os.path.join(root, "rel-link"))
    os.symlink("/etc/passwd", os.path.join(root, "abs-link"))
    h = hashlib.sha256()
    with open(os.path.join(root, "big.bin"), "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(BIG >> 20):
            chunk = bytes([i]) + block[1:]
            h.update(chunk)
            f.write(chunk)
    return h.hexdigest()


def vm_hwm_kib(pid):
    for line in quiltlib.read_text("/proc/%d/status" % pid).splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def helper_children(pid):
    """quilt-copy processes whose parent is quiltd (zombies too)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = quiltlib.read_text("/proc/%s/stat" % name)
        if not st:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        ppid = int(st.rsplit(")", 1)[1].split()[1])
        if ppid == pid and comm.startswith("quilt-copy"):
            out.append(int(name))
    return out


class CopyBase(QuiltTestCase):

    def copy_in(self, ref, path, data, archive=False, timeout=60, chunk=CHUNK):
        def gen():
            yield pb.CopyInChunk(container=ref, path=path, archive=archive)
            for i in range(0, len(data), chunk):
                yield pb.CopyInChunk(data=data[i:i + chunk])
        return self.stub.CopyIn(gen(), timeout=timeout)

    def copy_out(self, ref, path, follow=False, timeout=60):
        msgs = list(self.stub.CopyOut(pb.CopyOutRequest(container=ref, path=path,
                                                        follow_link=follow), timeout=timeout))
        self.assertTrue(msgs and msgs[0].HasField("stat"), "the first message carries the stat")
        return msgs[0].stat, b"".join(m.data for m in msgs[1:])

    def stat_only(self, ref, path, follow=False):
        msgs = list(self.stub.CopyOut(pb.CopyOutRequest(container=ref, path=path,
                                                        follow_link=follow, stat_only=True),
                                      timeout=RPC_TIMEOUT))
        self.assertEqual(len(msgs), 1)
        return msgs[0].stat

    def exec_out(self, ref, cmd):
        r = self.stub.Exec(pb.ExecRequest(id=ref, command=["sh", "-c", cmd]), timeout=30)
        self.assertEqual(r.exit_code, 0, r.stderr)
        return r.stdout

    def sleeper(self, setup="", **kw):
        """A running container, once its setup commands are done."""
        c = self.create("%s%stouch /.ready; sleep 1000" % (setup, "; " if setup else ""), **kw)
        deadline = time.monotonic() + 10
        while self.stub.Exec(pb.ExecRequest(id=c.id, command=["test", "-e", "/.ready"]),
                             timeout=30).exit_code != 0:
            self.assertLess(time.monotonic(), deadline, "the container's setup did not end")
            time.sleep(0.02)
        return c

    def exited(self, script, **kw):
        c = self.create(script, **kw)
        self.assertEqual(self.wait(c.id).exit_code, 0, self.logs(c.id))
        return c

    def assertNoHelpers(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while helper_children(self.daemon.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(helper_children(self.daemon.pid), [], "quilt-copy left running")


# ------------------------------------------------------------------ tests

class CopyTest(CopyBase):

    def test_tree_round_trip_into_a_running_container(self):
        src = tempfile.mkdtemp(dir=self.tmp)
        big_sha = make_tree(src)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            tf.add(src, arcname="tree")
        data = buf.getvalue()
        c = self.sleeper("mkdir /data")
        hwm0 = vm_hwm_kib(self.daemon.pid)
        r = self.copy_in(c.id, "/data", data)
        self.assertGreaterEqual(r.entries, 10)
        self.assertGreater(r.bytes, BIG)
        out = self.exec_out(c.id, "cd /data/tree && sha256sum big.bin && cat hello.txt rel-link && "
                                  "readlink abs-link && sub/deeper/run.sh && "
                                  "stat -c '%n %a %u:%g' secret sub empty")
        self.assertIn(big_sha.encode(), out)
        self.assertIn(b"hello\nhello\n/etc/passwd\nran\n", out)
        self.assertIn(b"secret 600 0:0\nsub 755 0:0\nempty 755 0:0\n", out)
        st, tar = self.copy_out(c.id, "/data/tree")
        self.assertEqual((st.name, st.is_dir), ("tree", True))
        growth = vm_hwm_kib(self.daemon.pid) - hwm0
        # ASan keeps freed memory in quarantine: its RSS says nothing of ours.
        if "libasan" not in quiltlib.read_text("/proc/%d/maps" % self.daemon.pid):
            self.assertLess(growth, 24 << 10, "quiltd's peak RSS grew by %d KiB" % growth)
        got = tar_members(tar)
        self.assertEqual(got["tree/big.bin"][3], big_sha)
        self.assertEqual(got["tree/rel-link"][:3], (tarfile.SYMTYPE, 0o777, "hello.txt"))
        self.assertEqual(got["tree/abs-link"][2], "/etc/passwd")
        self.assertEqual(got["tree/secret"][1], 0o600)
        self.assertEqual(got["tree/sub/deeper/run.sh"][1], 0o755)
        self.assertEqual(got["tree/empty"][0], tarfile.DIRTYPE)
        self.assertEqual({m[4] for m in got.values()}, {0})
        self.assertEqual(set(got), {"tree", "tree/big.bin", "tree/hello.txt", "tree/secret",
                                    "tree/rel-link", "tree/abs-link", "tree/empty", "tree/sub",
                                    "tree/sub/deeper", "tree/sub/deeper/run.sh"})
        # --archive keeps the archive's owners.
        self.copy_in(c.id, "/data", tar_bytes([("owned", "file", b"x")]), archive=True)
        self.assertEqual(self.exec_out(c.id, "stat -c %u:%g /data/owned"), b"1234:1234\n")
        self.assertNoHelpers()

    def test_copy_out_of_an_exited_container(self):
        c = self.exited("mkdir -p /out/d && echo result > /out/d/r && ln -s d/r /out/l")
        st, tar = self.copy_out(c.id, "/out")
        self.assertTrue(st.is_dir)
        got = tar_members(tar)
        self.assertEqual(got["out/d/r"][3], hashlib.sha256(b"result\n").hexdigest())
        self.assertEqual(got["out/l"][2], "d/r")
        st = self.stat_only(c.id, "/out/l")
        self.assertEqual((st.name, st.link_target, stat.S_ISLNK(st.mode)), ("l", "d/r", True))
        st = self.stat_only(c.id, "/out/l", follow=True)
        self.assertEqual((st.name, st.size, stat.S_ISREG(st.mode)), ("l", 7, True))
        # The image's files are there too (overlay), and copying in works.
        self.assertIn("busybox", tar_members(self.copy_out(c.id, "/bin/busybox")[1]))
        self.copy_in(c.id, "/out", tar_bytes([("late", "file", b"late\n")]))
        self.assertIn("out/late", tar_members(self.copy_out(c.id, "/out")[1]))
        self.assertNoHelpers()

    def test_copy_into_a_created_container_then_start(self):
        vol = pb.Mount(type="volume", source="cp-vol", target="/vol")
        for kw in ({}, {"mounts": [vol]}):  # the pool's sandbox, and a cold (stopped) one
            c = self.create("cat /incoming/f /vol/g 2>&1", no_start=True, **kw)
            self.copy_in(c.id, "/", tar_bytes([("incoming", "dir", None),
                                               ("incoming/f", "file", b"from outside\n")]))
            if kw:  # the volume is mounted for the copy, as for the container
                self.copy_in(c.id, "/vol", tar_bytes([("g", "file", b"in the volume\n")]))
            self.stub.StartContainer(pb.StartContainerRequest(id=c.id), timeout=RPC_TIMEOUT)
            self.wait(c.id)
            want = b"from outside\n" + (b"in the volume\n" if kw else b"")
            self.assertEqual(self.logs(c.id)[:len(want)], want)
        data = os.path.join(self.daemon.root, "volumes", "cp-vol", "data", "g")
        self.assertTrue(os.path.exists(data))
        self.assertNoHelpers()

    def test_start_waits_for_a_copy_of_a_stopped_container(self):
        # A mount keeps it out of the warm pool: its filesystem is mounted by the copy.
        c = self.create("cat /slow", no_start=True,
                        mounts=[pb.Mount(type="tmpfs", target="/scratch")])
        go = threading.Event()
        data = tar_bytes([("slow", "file", b"x" * 100000)])

        def gen():
            yield pb.CopyInChunk(container=c.id, path="/", data=data[:1024])
            go.wait(20)
            yield pb.CopyInChunk(data=data[1024:])
        fut = self.stub.CopyIn.future(gen(), timeout=30)
        deadline = time.monotonic() + 10
        while not helper_children(self.daemon.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        e = self.assertRpcCode(Code.UNAVAILABLE, self.stub.StartContainer,
                               pb.StartContainerRequest(id=c.id), timeout=RPC_TIMEOUT)
        self.assertIn("copy", e.details())
        # A second copy into it waits too; copies out of a running one do not.
        e = self.assertRpcCode(Code.UNAVAILABLE, self.copy_in, c.id, "/",
                               tar_bytes([("other", "file", b"o")]))
        go.set()
        self.assertEqual(fut.result().entries, 1)
        self.stub.StartContainer(pb.StartContainerRequest(id=c.id), timeout=RPC_TIMEOUT)
        self.assertEqual(self.wait(c.id).exit_code, 0)
        self.assertEqual(len(self.logs(c.id)), 100000)

    def test_symlinks_in_the_container_lead_back_into_it(self):
        name = "quilt-cp-%s" % uuid.uuid4().hex
        links = "ln -s / /escape && ln -s /etc /etcl && ln -s ../../../.. /dots"
        running = self.sleeper(links)
        stopped = self.exited(links)
        try:
            for c in (running, stopped):
                for dest, inside in (("/escape", "/"), ("/etcl", "/etc/"), ("/dots", "/"),
                                     ("/escape/etc", "/etc/")):
                    self.copy_in(c.id, dest, tar_bytes([(name, "file", b"inside\n")]))
                    st, tar = self.copy_out(c.id, inside + name)
                    self.assertEqual(tar_members(tar)[name][3],
                                     hashlib.sha256(b"inside\n").hexdigest())
                    self.assertFalse(os.path.lexists("/" + name), "landed on the host's /")
                    self.assertFalse(os.path.lexists("/etc/" + name), "landed in the host's /etc")
                # CopyOut stores the link, never the host's /.
                st, tar = self.copy_out(c.id, "/escape")
                self.assertEqual((st.link_target, stat.S_ISLNK(st.mode)), ("/", True))
                self.assertEqual(list(tar_members(tar).items()),
                                 [("escape", (tarfile.SYMTYPE, 0o777, "/", None, 0))])
                # Followed (-L), it is the container's root, not the host's.
                st, tar = self.copy_out(c.id, "/dots", follow=True)
                got = tar_members(tar)
                self.assertIn("dots/" + name, got)
                self.assertIn("dots/bin/busybox", got)
                self.assertNotIn("dots/" + os.path.basename(self.tmp), got)
                st = self.stat_only(c.id, "/etcl/" + name)
                self.assertEqual(st.name, name)
        finally:
            for p in ("/" + name, "/etc/" + name):
                if os.path.lexists(p):
                    os.unlink(p)
        self.assertNoHelpers()

    def test_crafted_archives_are_refused(self):
        victim = tempfile.mkdtemp(dir=self.tmp)
        name = "pwned-%s" % uuid.uuid4().hex
        c = self.sleeper("mkdir -p /a/b")
        stopped = self.exited("mkdir -p /a/b")
        cases = [
            ([("../../" + name, "file", b"evil")], "../../" + name),
            ([("/" + name, "file", b"evil")], "/" + name),
            ([("l", "sym", victim), ("l/" + name, "file", b"evil")], "l/" + name),
            ([("up", "sym", "../../../../../.."), ("up/" + name, "file", b"evil")],
             "up/" + name),
            ([("h", "hard", "/etc/passwd")], "h"),
            ([("dev", "chr", None)], "dev"),
        ]
        for ref in (c.id, stopped.id):
            for entries, bad in cases:
                e = self.assertRpcCode(Code.INVALID_ARGUMENT, self.copy_in, ref, "/a/b",
                                       tar_bytes(entries))
                self.assertIn(bad, e.details())
            self.assertEqual(os.listdir(victim), [])
            self.assertFalse(os.path.lexists("/" + name))
            st, tar = self.copy_out(ref, "/")
            self.assertEqual([n for n in tar_members(tar) if name in n], [])
        self.assertNoHelpers()

    def test_paused_container(self):
        c = self.sleeper("echo before > /f")
        self.stub.PauseContainer(pb.PauseContainerRequest(id=c.id), timeout=RPC_TIMEOUT)
        self.copy_in(c.id, "/", tar_bytes([("while-paused", "file", b"p\n")]))
        self.assertIn("f", tar_members(self.copy_out(c.id, "/f")[1]))
        self.stub.ResumeContainer(pb.ResumeContainerRequest(id=c.id), timeout=RPC_TIMEOUT)
        self.assertEqual(self.exec_out(c.id, "cat /while-paused"), b"p\n")
        self.assertNoHelpers()

    def test_errors_are_statuses(self):
        c = self.sleeper("mkdir /d && touch /d/file")
        tar = tar_bytes([("f", "file", b"x")])
        e = self.assertRpcCode(Code.NOT_FOUND, self.copy_out, "no-such-container", "/")
        self.assertIn("no-such-container", e.details())
        e = self.assertRpcCode(Code.NOT_FOUND, self.copy_in, "no-such-container", "/", tar)
        e = self.assertRpcCode(Code.NOT_FOUND, self.copy_out, c.id, "/nope")
        self.assertEqual(e.details(), "/nope: no such file or directory in container %s"
                         % c.id[:12])
        e = self.assertRpcCode(Code.NOT_FOUND, self.copy_in, c.id, "/nope/deeper", tar)
        self.assertIn("/nope/deeper", e.details())
        e = self.assertRpcCode(Code.FAILED_PRECONDITION, self.copy_in, c.id, "/d/file", tar)
        self.assertIn("not a directory", e.details())
        e = self.assertRpcCode(Code.INVALID_ARGUMENT, self.copy_in, c.id, "/d",
                               b"this is not a tar archive" * 100)
        e = self.assertRpcCode(Code.INVALID_ARGUMENT, self.copy_in, c.id, "/d", tar[:700])
        e = self.assertRpcCode(Code.INVALID_ARGUMENT, self.copy_out, c.id, "relative")
        e = self.assertRpcCode(Code.INVALID_ARGUMENT, self.stub.CopyIn,
                               iter([pb.CopyInChunk(data=tar)]), timeout=RPC_TIMEOUT)
        self.assertNoHelpers()

    def test_nothing_left_after_copies_cancels_and_removal(self):
        d = self.daemon
        c = self.sleeper("dd if=/dev/zero of=/big bs=1M count=32 2>/dev/null")
        stopped = self.exited("dd if=/dev/zero of=/big bs=1M count=32 2>/dev/null")
        fds = d.fd_count()
        host_mounts = set(quiltlib.read_text("/proc/self/mountinfo").splitlines())
        daemon_mounts = set(quiltlib.read_text("/proc/%d/mountinfo" % d.pid).splitlines())
        for ref in (c.id, stopped.id):
            self.copy_out(ref, "/big")
            self.copy_in(ref, "/", tar_bytes([("small", "file", b"s")]))
            # A reader that goes away after the first chunk.
            call = self.stub.CopyOut(pb.CopyOutRequest(container=ref, path="/big"), timeout=30)
            next(call)
            next(call)
            call.cancel()
            # A writer that stops halfway.
            stop = threading.Event()

            def gen():
                yield pb.CopyInChunk(container=ref, path="/", data=tar_bytes(
                    [("part", "file", b"p" * 100000)])[:5000])
                stop.wait(10)
            fut = self.stub.CopyIn.future(gen(), timeout=30)
            time.sleep(0.3)
            fut.cancel()
            stop.set()
            # Until it is reaped the helper holds a stopped container's filesystem.
            self.assertNoHelpers()
            # A deadline.
            with self.assertRaises(grpc.RpcError) as cm:
                for _ in self.stub.CopyOut(pb.CopyOutRequest(container=ref, path="/big"),
                                           timeout=0.05):
                    time.sleep(0.2)
            self.assertIn(cm.exception.code(), (Code.DEADLINE_EXCEEDED,))
            self.assertNoHelpers()
        # Removal ends a copy into a stopped container.
        go = threading.Event()

        def slow():
            yield pb.CopyInChunk(container=stopped.id, path="/", data=b"\0" * 512)
            go.wait(20)
        fut = self.stub.CopyIn.future(slow(), timeout=30)
        deadline = time.monotonic() + 10
        while not helper_children(d.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.stub.RemoveContainer(pb.RemoveContainerRequest(id=stopped.id, force=True),
                                  timeout=RPC_TIMEOUT)
        with self.assertRaises(grpc.RpcError) as cm:
            fut.result()
        go.set()
        self.assertEqual(cm.exception.code(), Code.ABORTED, cm.exception.details())
        self.assertNoHelpers()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and d.fd_count() > fds:
            time.sleep(0.1)
        self.assertLessEqual(d.fd_count(), fds + test_lifecycle.FD_TOLERANCE,
                             test_lifecycle.fd_listing(d.pid))
        # Other work on this machine may mount and unmount meanwhile: what
        # must not appear is a mount of ours (an overlay, anything under our
        # root), in the host's namespace or the daemon's.
        for where, before in (("self", host_mounts), (str(d.pid), daemon_mounts)):
            added = set(quiltlib.read_text("/proc/%s/mountinfo" % where).splitlines()) - before
            self.assertEqual([m for m in added if self.tmp in m or " overlay " in m], [],
                             "mounts left in /proc/%s/mountinfo" % where)
        self.assertEqual([x for x in os.listdir(d.layer_dir(c.id))
                          if x.startswith("copy-work")], [])

    def test_user_namespace(self):
        os.chmod(self.tmp, 0o711)
        userns = pb.Namespaces(user=True)
        running = self.sleeper("echo img > /made", namespaces=userns)
        stopped = self.exited("echo img > /made", namespaces=userns)
        for c in (running, stopped):
            self.copy_in(c.id, "/", tar_bytes([("mine", "file", b"m"),
                                               ("kept", "file", b"k")]))
            self.copy_in(c.id, "/", tar_bytes([("ids", "file", b"i")]), archive=True)
            got = tar_members(self.copy_out(c.id, "/")[1])
            self.assertEqual(got["./mine"][4], 0)
            self.assertEqual(got["./ids"][4], 1234)
            self.assertEqual(got["./made"][4], 0)
            self.assertEqual(got["./bin/busybox"][4], 0)
            upper = os.path.join(self.daemon.layer_dir(c.id), "upper", "mine")
            self.assertEqual(os.stat(upper).st_uid, 100000)
        self.assertEqual(self.exec_out(running.id, "stat -c %u /mine /ids"), b"0\n1234\n")
        self.assertNoHelpers()


class VolumeRestartTest(CopyBase):
    """A named volume's data outlives the daemon: written by one container,
    read by another after quiltd restarted on the same root."""

    start_daemon = False

    def test_volume_data_survives_a_daemon_restart(self):
        root = os.path.join(self.tmp, "root")
        d = type(self).daemon = self.new_daemon(root=root)
        vol = [pb.Mount(type="volume", source="kept", target="/v")]
        c = self.create("echo survived > /v/f", mounts=vol)
        self.assertEqual(self.wait(c.id).exit_code, 0)
        self.assertEqual(d.stop(), 0, d.log_tail())
        d = type(self).daemon = self.new_daemon(root=root)
        self.assertEqual([v.name for v in self.stub.ListVolumes(
            pb.ListVolumesRequest(), timeout=RPC_TIMEOUT).volumes], ["kept"])
        c2 = self.create("cat /data/f", mounts=[pb.Mount(type="volume", source="kept",
                                                          target="/data", readonly=True)])
        self.assertEqual(self.wait(c2.id).exit_code, 0)
        self.assertEqual(self.logs(c2.id), b"survived\n")
        # And the first container's copy sees it again after the restart.
        st, tar = self.copy_out(c.id, "/v/f")
        self.assertEqual(tar_members(tar)["f"][3], hashlib.sha256(b"survived\n").hexdigest())

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            d = type(self).daemon
            if d is not None:
                self.assertEqual(leftovers(d, self.seen_ids), [])
                self.assertEqual(d.stop(), 0, d.log_tail())
            type(self).daemon = None


if __name__ == "__main__":
    unittest.main()

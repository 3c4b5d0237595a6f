#!/usr/bin/python3
"""The escape suite: from inside a default container, every way out fails and
the host is unchanged.

Needs root, Debian's /usr/bin/python3 with python3-grpcio/-grpc-tools/-protobuf,
quiltd's built-in busybox rootfs and the static escape_probe helper:

    QUILTD=/tmp/build/quiltd ESCAPE_PROBE=/tmp/build/tests/containers/escape_probe \
    QUILT_PROTO_DIR=proto /usr/bin/python3 tests/containers/test_escape.py -v

Most attempts use busybox in the default image (served by the warm pool, so
pooled sandboxes are what is tested); the system calls busybox cannot make
come from escape_probe, run from a copy of the busybox rootfs that also
carries symlinks pointing out of the root. Each attempt is harmless even if
the protection were missing (no real reboot, kexec, module or sysrq key).
Where a protection can be switched off, the test also runs with it off and
expects the attempt to get further: proof that the check can fail.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quiltlib  # noqa: E402
import test_lifecycle  # noqa: E402
from quiltlib import RPC_TIMEOUT  # noqa: E402
from test_lifecycle import QuiltTestCase, parse_kv  # noqa: E402

pb = None
Code = grpc.StatusCode

# Denied by the default seccomp profile with EPERM (clone3: ENOSYS).
SECCOMP_DENIED = ("mount", "umount_proc", "pivot_root", "init_module", "finit_module",
                  "delete_module", "reboot", "kexec_load", "kexec_file_load", "swapon", "bpf",
                  "perf_event_open", "keyctl", "userfaultfd", "open_by_handle_at",
                  "io_uring_setup", "setns", "unshare_userns", "clone_userns", "personality")
# Allowed by the kernel to an unprivileged root: only the filter stops them.
FILTER_ONLY = ("keyctl", "userfaultfd", "unshare_userns", "clone_userns", "personality",
               "io_uring_setup", "clone3")


def setUpModule():
    global pb
    pb, _ = quiltlib.load_stubs()
    test_lifecycle.pb = pb


def tearDownModule():
    quiltlib.unload_stubs()


def host_mountinfo():
    return quiltlib.read_text("/proc/self/mountinfo").splitlines()


def mount_of(mountinfo, point):
    """(options, fstype) of the topmost mount at `point` in mountinfo text."""
    found = None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        f = left.split()
        if len(f) >= 6 and f[4] == point:
            found = (f[5].split(","), right.split()[0] if right else "")
    return found


def host_block_device():
    """(major, minor) of a real disk of the host, or None."""
    for line in quiltlib.read_text("/proc/partitions").splitlines()[2:]:
        f = line.split()
        if len(f) == 4 and not f[3].startswith(("loop", "ram", "zram")):
            return int(f[0]), int(f[1])
    return None


class EscapeTest(QuiltTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        probe = os.environ.get("ESCAPE_PROBE", "")
        if not os.access(probe, os.X_OK):
            cls.cleanup_daemons()
            raise RuntimeError("set ESCAPE_PROBE to the escape_probe binary (got %r)" % probe)
        # Outside the root: what a symlink in the image points at.
        cls.outside = os.path.join(cls.tmp, "outside")
        os.makedirs(cls.outside)
        with open(os.path.join(cls.outside, "host-secret"), "w") as f:
            f.write("escapee:x:4242:4242::/:/bin/sh\n")
        cls.image = cls.make_image("escape-image", {
            "work": "/../../..",
            "work-out": "/../../../../../../.." + cls.outside,
        })
        # /tmp is a mount target: pointed out of the root.
        cls.image_tmp_link = cls.make_image("escape-tmp", {
            "tmp": "/../../../../../../.." + cls.outside})
        cls.image_passwd_link = cls.make_image("escape-passwd", {
            "etc/passwd": "/../../../../../../.." + cls.outside + "/host-secret"})

    @classmethod
    def make_image(cls, name, links):
        rootfs = os.path.join(os.path.dirname(os.environ["QUILTD"]), "busybox-rootfs")
        image = os.path.join(cls.tmp, name)
        shutil.copytree(rootfs, image, symlinks=True)
        shutil.copy(os.environ["ESCAPE_PROBE"], os.path.join(image, "bin", "escape_probe"))
        open(os.path.join(image, ".quilt-escape-image"), "w").close()
        for path, target in links.items():
            full = os.path.join(image, path)
            if os.path.lexists(full):
                if os.path.isdir(full) and not os.path.islink(full):
                    shutil.rmtree(full)
                else:
                    os.unlink(full)
            os.symlink(target, full)
        return image

    # -------------------------------------------------------------- helpers

    def sh(self, script, **kw):
        """Runs a script in a container; (exit code, stdout+stderr text)."""
        _, w, out = self.run_container(["sh", "-c", script], **kw)
        return w.exit_code, out.decode(errors="replace")

    def probe(self, **kw):
        _, w, out = self.run_container(["escape_probe", str(self.daemon.pid)],
                                       image=self.image, **kw)
        self.assertEqual(w.exit_code, 0, out)
        return parse_kv(out)

    def assertHostUntouched(self):
        self.assertEqual(quiltlib.mounts_mentioning(self.daemon.root), [])
        self.assertEqual(quiltlib.mounts_mentioning(self.outside), [])
        self.assertEqual(sorted(os.listdir(self.outside)), ["host-secret"])

    # -------------------------------------------------------------- mounts

    def test_mount_tmpfs_fails(self):
        before = len(host_mountinfo())
        code, out = self.sh("mount -t tmpfs none /mnt; echo rc=$?; "
                            "grep -c ' /mnt ' /proc/self/mountinfo")
        self.assertIn("permission denied", out)
        self.assertNotIn("rc=0", out)
        self.assertTrue(out.strip().endswith("0"), "a tmpfs is on /mnt:\n" + out)
        self.assertHostUntouched()
        self.assertLessEqual(abs(len(host_mountinfo()) - before), 2)  # others' noise only
        kv = self.probe()
        self.assertEqual((kv.get("mount"), kv.get("umount_proc"), kv.get("pivot_root")),
                         ("EPERM", "EPERM", "EPERM"), kv)

    def test_remount_root_proc_sys_fails(self):
        script = "; ".join([
            "mount -o remount,rw / && echo root=remounted",
            "mount -o remount,rw /proc && echo proc=remounted",
            "mount -o remount,rw /proc/sys && echo procsys=remounted",
            "mount -o remount,rw /sys && echo sys=remounted",
            # Writing back the value read: harmless even if it went through.
            "v=$(cat /proc/sys/vm/overcommit_ratio); "
            "echo $v 2>/dev/null > /proc/sys/vm/overcommit_ratio && echo sysctl=written",
            "cat /proc/self/mountinfo",
        ])
        code, out = self.sh(script)
        self.assertNotIn("remounted", out)
        self.assertNotIn("sysctl=written", out)
        self.assertIn("ro", mount_of(out, "/proc/sys")[0], out)
        self.assertIn("ro", mount_of(out, "/sys")[0], out)
        self.assertHostUntouched()

    # -------------------------------------------------------------- /proc

    def test_sysrq_trigger_not_writable(self):
        # Opening for write and writing nothing: harmless if it succeeded.
        code, out = self.sh(": > /proc/sysrq-trigger && echo opened=yes; "
                            "cat /proc/self/mountinfo")
        self.assertNotIn("opened=yes", out)
        if os.path.exists("/proc/sysrq-trigger"):
            self.assertIn("Read-only file system", out)
            self.assertIn("ro", mount_of(out, "/proc/sysrq-trigger")[0], out)
        # Off: the knob is back (and writable, for root with the capabilities).
        _, out = self.sh("cat /proc/self/mountinfo",
                         security=pb.Security(unmask_paths=True))
        self.assertIsNone(mount_of(out, "/proc/sysrq-trigger"), out)
        self.assertIsNone(mount_of(out, "/proc/sys"), out)

    def test_kernel_state_files_masked(self):
        paths = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"]
        script = "; ".join('echo "%s=$(head -c 64 %s 2>/dev/null | wc -c)"' % (p, p)
                           for p in paths)
        script += '; echo "firmware=$(ls /sys/firmware | wc -l)"; cat /proc/self/mountinfo'
        code, out = self.sh(script)
        kv = parse_kv(out.encode())
        for p in paths:
            self.assertEqual(kv.get(p), "0", "%s readable in the container:\n%s" % (p, out))
            if os.path.exists(p):
                self.assertIsNotNone(mount_of(out, p), "%s not masked:\n%s" % (p, out))
        self.assertEqual(kv.get("firmware"), "0", out)
        # Unmasked, what the host shows is there again.
        _, out = self.sh('echo "firmware=$(ls /sys/firmware | wc -l)"',
                         security=pb.Security(unmask_paths=True))
        kv = parse_kv(out.encode())
        if os.listdir("/sys/firmware"):
            self.assertNotEqual(kv.get("firmware"), "0", out)

    # -------------------------------------------------------------- kernel

    def test_module_load_fails(self):
        modules = quiltlib.read_text("/proc/modules")
        code, out = self.sh("insmod /nonexistent.ko; echo rc=$?; modprobe -q dummy; echo rc2=$?")
        self.assertNotIn("rc=0", out)
        kv = self.probe()
        for call in ("init_module", "finit_module", "delete_module"):
            self.assertEqual(kv.get(call), "EPERM", kv)
        self.assertEqual(quiltlib.read_text("/proc/modules"), modules)

    def test_reboot_and_kexec_fail(self):
        kexec_loaded = quiltlib.read_text("/sys/kernel/kexec_loaded")
        kv = self.probe()
        for call in ("reboot", "kexec_load", "kexec_file_load", "swapon"):
            self.assertEqual(kv.get(call), "EPERM", kv)
        self.assertEqual(quiltlib.read_text("/sys/kernel/kexec_loaded"), kexec_loaded)
        self.assertIsNone(self.daemon.proc.poll(), "quiltd died")

    def test_seccomp_denies_and_unconfined_does_not(self):
        kv = self.probe()
        for call in SECCOMP_DENIED:
            self.assertEqual(kv.get(call), "EPERM", "%s: %s" % (call, kv))
        self.assertEqual(kv.get("clone3"), "ENOSYS", kv)
        # What must keep working under the filter.
        for call in ("fork", "personality_query", "personality_linux"):
            self.assertEqual(kv.get(call), "ok", kv)
        # Without the profile the same calls get past it: the test can fail.
        free = self.probe(security=pb.Security(seccomp_unconfined=True))
        for call in FILTER_ONLY:
            self.assertNotIn(free.get(call), ("EPERM", "ENOSYS", None), "%s: %s" % (call, free))
        st = self.sh("grep Seccomp: /proc/self/status")[1]
        self.assertIn("2", st)  # SECCOMP_MODE_FILTER

    # -------------------------------------------------------------- devices

    def test_device_node_cannot_reach_host_disk(self):
        dev = host_block_device()
        if dev is None:
            self.skipTest("no block device on this host")
        major, minor = dev
        script = "; ".join(
            "mknod %s b %d %d 2>&1; echo \"%s=$(head -c 512 %s 2>&1 | wc -c)\"; "
            "head -c 1 %s 2>&1 >/dev/null" % (p, major, minor, p, p, p)
            for p in ("/disk", "/dev/disk", "/tmp/disk", "/dev/shm/disk"))
        code, out = self.sh(script)
        for p in ("/disk", "/dev/disk", "/tmp/disk", "/dev/shm/disk"):
            self.assertNotIn("%s=512" % p, out, out)
        self.assertNotIn("No such device", out)  # the node was refused, not absent
        # Only the minimal /dev.
        _, out = self.sh("ls /dev")
        self.assertEqual(sorted(out.split()), sorted([
            "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
            "stdout", "tty", "urandom", "zero"]))
        self.assertHostUntouched()

    # -------------------------------------------------------------- processes

    def test_ptrace_and_signals_cannot_reach_the_host(self):
        kv = self.probe()
        self.assertIn(kv.get("ptrace_host"), ("ESRCH", "EPERM"), kv)
        self.assertEqual(kv.get("kill_host"), "ESRCH", kv)
        status = quiltlib.read_text("/proc/%d/status" % self.daemon.pid)
        self.assertIn("TracerPid:\t0", status)

    def test_host_processes_invisible(self):
        host = subprocess.Popen(["sleep", "987654"])
        try:
            code, out = self.sh("ps -o pid,args; ls /proc")
        finally:
            host.kill()
            host.wait()
        self.assertNotIn("987654", out)
        procs = [int(p) for p in out.split() if p.isdigit()]
        self.assertNotIn(self.daemon.pid, procs)
        self.assertNotIn(host.pid, procs)
        self.assertLessEqual(len(set(procs)), 12, out)

    def test_host_loopback_unreachable(self):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        srv.setblocking(False)
        port = srv.getsockname()[1]
        try:
            code, out = self.sh("echo hi | nc -w 2 127.0.0.1 %d; echo rc=$?; "
                                "wget -q -T 2 -O - http://127.0.0.1:%d/; echo wrc=$?"
                                % (port, port))
            try:
                conn, _ = srv.accept()
                conn.close()
                self.fail("the container reached a host loopback service:\n" + out)
            except BlockingIOError:
                pass
        finally:
            srv.close()
        self.assertNotIn("rc=0", out)
        self.assertNotIn("wrc=0", out)

    # -------------------------------------------------------------- paths

    def test_symlinked_workdir_stays_in_rootfs(self):
        code, out = self.sh("pwd -P; ls -a", image=self.image, working_dir="/work")
        self.assertEqual(code, 0, out)
        self.assertTrue(out.startswith("/\n"), out)
        self.assertIn(".quilt-escape-image", out)  # the container's own root
        # Pointing at a host directory: resolved inside the root, where it is not.
        e = self.assertRpcCode(Code.FAILED_PRECONDITION, self.create, ["ls"], image=self.image,
                               working_dir="/work-out")
        self.assertIn("working directory /work-out: No such file", e.details())
        self.assertHostUntouched()

    def test_symlinked_mount_target_stays_in_rootfs(self):
        # Resolved inside the root, the link leads back to itself: refused.
        e = self.assertRpcCode(Code.FAILED_PRECONDITION, self.create, ["ls", "/tmp/"],
                               image=self.image_tmp_link)
        self.assertIn("mount target /tmp in the rootfs", e.details())
        self.assertHostUntouched()

    def test_symlinked_passwd_stays_in_rootfs(self):
        # Read after pivot_root: the link's target is not in the root.
        e = self.assertRpcCode(Code.FAILED_PRECONDITION, self.create, ["id"],
                               image=self.image_passwd_link, user="escapee")
        self.assertIn('user "escapee" not found', e.details())
        self.assertHostUntouched()

    # -------------------------------------------------------------- limits

    def test_rlimits_cannot_pass_the_hard_limit(self):
        code, out = self.sh('h=$(ulimit -H -n); echo "hard=$h"; '
                            'ulimit -H -n $((h + 1)) 2>&1 && echo raised=hard; '
                            'ulimit -n $((h + 1)) 2>&1 && echo raised=soft; '
                            'echo "after=$(ulimit -H -n)"')
        kv = parse_kv(out.encode())
        self.assertNotIn("raised", out)
        self.assertEqual(kv.get("hard"), kv.get("after"), out)

    def test_pids_and_memory_are_bounded(self):
        c = self.create(["sleep", "30"])
        self.assertEqual(self.stats(c.id).pids_limit, 1024)  # the default
        half = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2 >> 20 << 20
        self.assertEqual(self.stats(c.id).memory_limit_bytes, half)  # the default
        self.kill(c.id, 9)
        self.wait(c.id)
        code, out = self.sh("(for i in $(seq 40); do sleep 5 & done) 2>&1 | grep -m1 fork",
                            pids_limit=16)
        self.assertIn("can't fork", out)
        c, w, _ = self.run_container(["awk", 'BEGIN{s="a"; while(1){s=s s}}'],
                                     memory_limit_mib=16, timeout=60)
        self.assertTrue(w.oom_killed, w)
        self.assertIsNone(self.daemon.proc.poll(), "quiltd died")

    # -------------------------------------------------------------- neighbours

    def test_containers_cannot_touch_each_other(self):
        a = self.create("echo secret > /tmp/a-secret; echo x > /a-file; echo ready; sleep 60",
                        name="victim")
        self.assertTrue(self.wait_for_output(a.id, b"ready"), "victim never got ready")
        script = "; ".join([
            "ps -o pid,args",
            "kill -9 %d 2>&1; echo kill=$?" % a.pid,
            "ls /a-file /tmp/a-secret 2>&1",
            "ls /proc/*/root/a-file 2>&1",
        ])
        code, out = self.sh(script)
        self.assertNotIn("sleep 60", out)
        self.assertIn("kill=1", out)
        self.assertNotIn("secret", out.replace("a-secret", ""))
        self.assertTrue(quiltlib.process_alive(a.pid), "the other container's init died")
        self.assertEqual(self.get(a.id).state, pb.CONTAINER_STATE_RUNNING)
        root = "/proc/%d/root" % a.pid
        with open(root + "/tmp/a-secret") as f:
            self.assertEqual(f.read(), "secret\n")
        self.assertTrue(os.path.exists(root + "/a-file"))

    # -------------------------------------------------------------- switches

    def test_cap_add_and_cap_drop(self):
        ipadd = "ip addr add 10.123.0.1/32 dev lo && echo ip=ok; chown 1:1 /tmp && echo chown=ok"
        _, out = self.sh(ipadd)
        self.assertNotIn("ip=ok", out)
        self.assertIn("chown=ok", out)
        _, out = self.sh(ipadd, security=pb.Security(cap_add=["NET_ADMIN"],
                                                     cap_drop=["CAP_CHOWN"]))
        self.assertIn("ip=ok", out)
        self.assertNotIn("chown=ok", out)
        _, out = self.sh("grep CapEff /proc/self/status",
                         security=pb.Security(cap_drop=["ALL"], cap_add=["kill"]))
        self.assertIn("0000000000000020", out)

    def test_unknown_capability_is_invalid(self):
        e = self.assertRpcCode(Code.INVALID_ARGUMENT, self.create, ["true"],
                               security=pb.Security(cap_add=["SYS_WIZARD"]))
        self.assertIn('"SYS_WIZARD"', e.details())
        e = self.assertRpcCode(Code.INVALID_ARGUMENT, self.create, ["true"],
                               security=pb.Security(cap_drop=["NET_ADMIN", ""]))
        self.assertIn('""', e.details())

    def test_security_settings_are_recorded(self):
        sec = pb.Security(seccomp_unconfined=True, cap_add=["SYS_PTRACE"])
        c = self.create(["true"], security=sec)
        self.wait(c.id)
        g = self.get(c.id)
        self.assertTrue(g.spec.security.seccomp_unconfined)
        self.assertEqual(list(g.spec.security.cap_add), ["SYS_PTRACE"])


class DefaultMemoryLimitTest(QuiltTestCase):
    """A container that asks for no memory limit gets the daemon's default
    (half the host's memory unless --default-memory-limit says otherwise),
    so it cannot take the host's memory."""
    daemon_args = ("--default-memory-limit", "48")

    def test_default_container_cannot_exhaust_memory(self):
        c, w, _ = self.run_container(["awk", 'BEGIN{s="a"; while(1){s=s s}}'], timeout=60)
        self.assertTrue(w.oom_killed, w)
        self.assertIsNone(self.daemon.proc.poll(), "quiltd died")
        s = self.create(["sleep", "30"])
        self.assertEqual(self.stats(s.id).memory_limit_bytes, 48 << 20)
        # Its own limit still wins.
        t = self.create(["sleep", "30"], memory_limit_mib=64)
        self.assertEqual(self.stats(t.id).memory_limit_bytes, 64 << 20)
        for x in (s, t):
            self.kill(x.id, 9)
            self.wait(x.id)


class EscapeRestartTest(QuiltTestCase):
    """Security settings are part of the stored spec: a restart keeps them."""

    def test_settings_survive_restart(self):
        c = self.create("ip addr add 10.123.0.2/32 dev lo && echo ip=ok; "
                        "grep Seccomp: /proc/self/status", no_start=True,
                        security=pb.Security(cap_add=["NET_ADMIN"], seccomp_unconfined=True))
        old = self.daemon
        self.assertEqual(old.stop(), 0, old.log_tail())
        d = type(self).daemon = self.new_daemon(root=old.root)
        type(self).fd_baseline = self.warm_up(d)
        self.stub.StartContainer(pb.StartContainerRequest(id=c.id), timeout=RPC_TIMEOUT)
        self.assertEqual(self.wait(c.id).exit_code, 0)
        out = self.logs(c.id).decode()
        self.assertIn("ip=ok", out)
        self.assertIn("Seccomp:\t0", out)
        g = self.get(c.id)
        self.assertEqual(list(g.spec.security.cap_add), ["NET_ADMIN"])


if __name__ == "__main__":
    unittest.main()

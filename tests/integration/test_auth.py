#!/usr/bin/python3
"""API access control against a real quiltd (docs/security.md).

TCP (--listen) needs the bearer token from --auth-token-file: gRPC calls
without it end UNAUTHENTICATED without running their handler, health checks
stay reachable, /metrics answers 401; the Unix socket needs no token (its
mode, 0660 with group `quilt` when that group exists, decides who connects).
quiltd refuses --listen without a token file and a token file others can
read. Failures are counted (quilt_auth_failures_total) and logged,
rate-limited.

Run with Debian's /usr/bin/python3 (python3-grpcio, python3-grpc-tools).
Environment: QUILTD, QUILT_PROTO_DIR, QUILT_GRPC_PROTO_DIR. Loopback only;
every daemon, temporary directory and group the test makes is removed.
"""
import grp
import http.client
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

QUILTD = os.environ.get("QUILTD", "")
PROTO_DIR = os.environ.get("QUILT_PROTO_DIR", "")
GRPC_PROTO_DIR = os.environ.get("QUILT_GRPC_PROTO_DIR", "/usr/share/grpc-proto")
RPC_TIMEOUT = 10.0
TOKEN = "s3cr3t-t0ken-for-the-auth-test-0123456789"

pb = pbg = hpb = hpbg = rpb = rpbg = None
_stub_dir = None


def setUpModule():
    global _stub_dir, pb, pbg, hpb, hpbg, rpb, rpbg
    if not QUILTD or not os.access(QUILTD, os.X_OK):
        raise RuntimeError("set QUILTD to the quiltd binary (got %r)" % QUILTD)
    sources = [os.path.join(PROTO_DIR, "quilt.proto"),
               os.path.join(GRPC_PROTO_DIR, "grpc", "health", "v1", "health.proto"),
               os.path.join(GRPC_PROTO_DIR, "grpc", "reflection", "v1alpha", "reflection.proto")]
    _stub_dir = tempfile.mkdtemp(prefix="quilt-auth-stubs-")
    # Flat: generating under grpc/... would shadow the grpc module.
    for src in sources:
        shutil.copy(src, _stub_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", _stub_dir,
         "--python_out=" + _stub_dir, "--grpc_python_out=" + _stub_dir]
        + [os.path.basename(s) for s in sources],
        capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        shutil.rmtree(_stub_dir, ignore_errors=True)
        raise RuntimeError("grpc_tools.protoc failed:\n" + proc.stderr)
    sys.path.insert(0, _stub_dir)
    import quilt_pb2, quilt_pb2_grpc, health_pb2, health_pb2_grpc
    import reflection_pb2, reflection_pb2_grpc
    pb, pbg, hpb, hpbg = quilt_pb2, quilt_pb2_grpc, health_pb2, health_pb2_grpc
    rpb, rpbg = reflection_pb2, reflection_pb2_grpc


def tearDownModule():
    if _stub_dir:
        shutil.rmtree(_stub_dir, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_secret(path, text, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("quilt", timeout=RPC_TIMEOUT)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(RPC_TIMEOUT)
        self.sock.connect(self.path)


def http_get(conn, path, headers=None):
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        conn.close()


class Daemon:
    """One quiltd on a temporary socket, a free loopback port and a temp root."""

    def __init__(self, *args, token=TOKEN, tmp=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix="quilt-auth-")
        self.socket_path = os.path.join(self.tmp, "quiltd.sock")
        self.token_path = os.path.join(self.tmp, "token")
        self.log_path = os.path.join(self.tmp, "quiltd.log")
        self.args = list(args)
        self.proc = None
        self.port = None
        if token is not None:
            write_secret(self.token_path, token + "\n")
            self.args += ["--auth-token-file", self.token_path]

    def start(self):
        for _ in range(5):  # the free port may be taken between probe and bind
            self.port = free_port()
            cmd = [QUILTD, "--socket", self.socket_path, "--listen", "127.0.0.1:%d" % self.port,
                   "--root", os.path.join(self.tmp, "root"), "--warm-pool", "0"] + self.args
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                if os.path.exists(self.socket_path) and self._tcp_up():
                    return self
                time.sleep(0.05)
            self.proc.kill()
            self.proc.wait()
        raise RuntimeError("quiltd did not start:\n" + self.log())

    def _tcp_up(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def tcp(self):
        return grpc.insecure_channel("127.0.0.1:%d" % self.port)

    def unix(self):
        return grpc.insecure_channel("unix:" + self.socket_path)

    def metric(self, name):
        """Read over the socket, which needs no token and so counts no failure."""
        _, _, body = http_get(UnixHTTPConnection(self.socket_path), "/metrics")
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def stop(self):
        # Into meson's test log, shown when the test fails.
        if os.path.exists(self.log_path):
            sys.stderr.write("--- quiltd log (%s)\n%s" % (self.tmp, self.log()[-4000:]))
        rc = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # quiltd's scratch tmpfs stays mounted if it was killed with layers in it.
        for line in open("/proc/self/mounts").read().splitlines():
            if (" " + self.tmp + "/") in line:
                subprocess.run(["umount", "-l", line.split()[1]], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return rc


def bearer(token=TOKEN):
    return (("authorization", "Bearer " + token),)


class TokenOverTcp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon().start()
        cls.tcp = cls.d.tcp()
        cls.unix = cls.d.unix()

    @classmethod
    def tearDownClass(cls):
        cls.tcp.close()
        cls.unix.close()
        assert cls.d.stop() == 0, "quiltd did not exit cleanly"

    def info(self, channel, metadata=None):
        return pbg.QuiltStub(channel).GetSystemInfo(pb.GetSystemInfoRequest(),
                                                    metadata=metadata, timeout=RPC_TIMEOUT)

    def assert_unauthenticated(self, fn, want_text):
        with self.assertRaises(grpc.RpcError) as cm:
            fn()
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED,
                         cm.exception.details())
        self.assertIn(want_text, cm.exception.details() or "")

    def test_no_token_is_unauthenticated_with_a_message(self):
        self.assert_unauthenticated(lambda: self.info(self.tcp), "authorization: Bearer")

    def test_wrong_token_is_unauthenticated(self):
        self.assert_unauthenticated(lambda: self.info(self.tcp, bearer("x" * len(TOKEN))),
                                    "invalid bearer token")
        self.assert_unauthenticated(lambda: self.info(self.tcp, bearer(TOKEN[:-1])),
                                    "invalid bearer token")
        self.assert_unauthenticated(lambda: self.info(self.tcp, bearer(TOKEN + "x")),
                                    "invalid bearer token")
        self.assert_unauthenticated(
            lambda: self.info(self.tcp, (("authorization", "Basic " + TOKEN),)), "Bearer")

    def test_right_token_is_served(self):
        self.assertTrue(self.info(self.tcp, bearer()).version)
        # The scheme is case-insensitive.
        self.assertTrue(self.info(self.tcp, (("authorization", "bearer " + TOKEN),)).version)
        resp = pbg.QuiltStub(self.tcp).ListContainers(pb.ListContainersRequest(all=True),
                                                      metadata=bearer(), timeout=RPC_TIMEOUT)
        self.assertIsNotNone(resp)

    def test_unix_socket_needs_no_token(self):
        self.assertTrue(self.info(self.unix).version)

    def test_health_stays_reachable(self):
        stub = hpbg.HealthStub(self.tcp)
        resp = stub.Check(hpb.HealthCheckRequest(), timeout=RPC_TIMEOUT)
        self.assertEqual(resp.status, hpb.HealthCheckResponse.SERVING)
        watch = stub.Watch(hpb.HealthCheckRequest(service="quilt.v1.Quilt"), timeout=RPC_TIMEOUT)
        self.assertEqual(next(watch).status, hpb.HealthCheckResponse.SERVING)
        watch.cancel()

    def test_reflection_and_unknown_methods_need_the_token(self):
        stub = rpbg.ServerReflectionStub(self.tcp)

        def reflect():
            req = rpb.ServerReflectionRequest(list_services="")
            return list(stub.ServerReflectionInfo(iter([req]), timeout=RPC_TIMEOUT))
        self.assert_unauthenticated(reflect, "authorization")
        self.assertTrue(list(stub.ServerReflectionInfo(
            iter([rpb.ServerReflectionRequest(list_services="")]), metadata=bearer(),
            timeout=RPC_TIMEOUT)))
        # Without the token an unknown method is not told apart from a real one.
        nope = self.tcp.unary_unary("/quilt.v1.Quilt/NoSuchMethod")
        self.assert_unauthenticated(lambda: nope(b"", timeout=RPC_TIMEOUT), "authorization")

    def test_handler_does_not_run(self):
        stub = pbg.QuiltStub(self.tcp)
        spec = pb.ContainerSpec(command=["true"], name="must-not-exist")
        self.assert_unauthenticated(
            lambda: stub.CreateContainer(pb.CreateContainerRequest(spec=spec),
                                         timeout=RPC_TIMEOUT), "authorization")
        # A client-streaming upload: its per-message handler must not run either.
        chunks = iter([pb.UploadImageChunk(tags=["auth:1"], data=b"x" * 1024)] * 4)
        self.assert_unauthenticated(
            lambda: list(stub.UploadImage(chunks, timeout=RPC_TIMEOUT)), "authorization")
        names = [c.name for c in stub.ListContainers(pb.ListContainersRequest(all=True),
                                                     metadata=bearer(),
                                                     timeout=RPC_TIMEOUT).containers]
        self.assertNotIn("must-not-exist", names)
        tags = [t for i in stub.ListImages(pb.ListImagesRequest(), metadata=bearer(),
                                           timeout=RPC_TIMEOUT).images for t in i.tags]
        self.assertNotIn("auth:1", tags)

    def test_failures_are_counted(self):
        before = self.d.metric("quilt_auth_failures_total")
        self.assertIsNotNone(before, "quilt_auth_failures_total is not exported")
        for md in (None, bearer("wrong-token-wrong-token")):
            with self.assertRaises(grpc.RpcError):
                self.info(self.tcp, md)
        status, _, _ = http_get(http.client.HTTPConnection("127.0.0.1", self.d.port,
                                                           timeout=RPC_TIMEOUT), "/metrics")
        self.assertEqual(status, 401)
        self.info(self.tcp, bearer())
        hpbg.HealthStub(self.tcp).Check(hpb.HealthCheckRequest(), timeout=RPC_TIMEOUT)
        self.assertEqual(self.d.metric("quilt_auth_failures_total"), before + 3)

    def test_failures_are_logged_with_the_peer_rate_limited(self):
        for _ in range(30):
            with self.assertRaises(grpc.RpcError):
                self.info(self.tcp)
        lines = [l for l in self.d.log().splitlines() if "refused unauthenticated" in l]
        self.assertTrue(lines, "no log line for a refused call")
        self.assertIn("from 127.0.0.1:", lines[0])
        self.assertIn(" warn ", lines[0])
        # At most 5 a window of 10 s: this test's 30 fit in two windows at worst.
        self.assertLess(len(lines), 20, "\n".join(lines))

    def test_http1_health_and_metrics(self):
        tcp = lambda: http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=RPC_TIMEOUT)
        status, _, body = http_get(tcp(), "/healthz")
        self.assertEqual((status, body), (200, "ok\n"))
        status, headers, body = http_get(tcp(), "/metrics")
        self.assertEqual(status, 401, body)
        self.assertIn("Bearer", headers.get("WWW-Authenticate", ""))
        self.assertIn("authorization", body)
        status, _, _ = http_get(tcp(), "/metrics", {"Authorization": "Bearer nope-nope-nope-nope"})
        self.assertEqual(status, 401)
        status, _, body = http_get(tcp(), "/metrics", {"Authorization": "Bearer " + TOKEN})
        self.assertEqual(status, 200)
        self.assertIn("quilt_auth_failures_total", body)
        status, _, body = http_get(UnixHTTPConnection(self.d.socket_path), "/metrics")
        self.assertEqual(status, 200)


class StartupChecks(unittest.TestCase):
    def run_quiltd(self, *args):
        tmp = tempfile.mkdtemp(prefix="quilt-auth-start-")
        self.addCleanup(shutil.rmtree, tmp, True)
        cmd = [QUILTD, "--socket", os.path.join(tmp, "s.sock"), "--root",
               os.path.join(tmp, "root"), "--warm-pool", "0"]
        cmd += [a.replace("@TMP@", tmp) for a in args]
        return tmp, cmd

    def refused(self, cmd, want_rc, want_text):
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, want_rc, p.stderr)
        self.assertIn(want_text, p.stderr)

    def test_listen_needs_a_token_file(self):
        _, cmd = self.run_quiltd("--listen", "127.0.0.1:%d" % free_port())
        self.refused(cmd, 2, "--listen needs --auth-token-file")

    def test_token_file_others_can_read_is_refused(self):
        for mode in (0o644, 0o640, 0o604, 0o620):
            tmp, cmd = self.run_quiltd("--listen", "127.0.0.1:%d" % free_port(),
                                       "--auth-token-file", "@TMP@/token")
            write_secret(os.path.join(tmp, "token"), TOKEN, mode)
            self.refused(cmd, 1, "must not be accessible by group or others")

    def test_bad_tokens_are_refused(self):
        for text, want in (("short\n", "at least 16"), ("with a space in it, long\n", "space"),
                           ("", "at least 16")):
            tmp, cmd = self.run_quiltd("--listen", "127.0.0.1:%d" % free_port(),
                                       "--auth-token-file", "@TMP@/token")
            write_secret(os.path.join(tmp, "token"), text)
            self.refused(cmd, 1, want)
        _, cmd = self.run_quiltd("--listen", "127.0.0.1:%d" % free_port(),
                                 "--auth-token-file", "@TMP@/missing")
        self.refused(cmd, 1, "No such file")

    def test_token_and_insecure_exclude_each_other(self):
        _, cmd = self.run_quiltd("--listen", "127.0.0.1:%d" % free_port(),
                                 "--auth-token-file", "@TMP@/t", "--insecure-no-auth")
        self.refused(cmd, 2, "exclude each other")

    def test_world_writable_socket_dir_is_refused(self):
        tmp, cmd = self.run_quiltd()
        os.mkdir(os.path.join(tmp, "open"))
        os.chmod(os.path.join(tmp, "open"), 0o777)
        cmd[2] = os.path.join(tmp, "open", "s.sock")
        self.refused(cmd, 1, "world-writable")

    def test_insecure_no_auth_serves_tcp_and_warns(self):
        d = Daemon("--insecure-no-auth", token=None).start()
        try:
            with d.tcp() as ch:
                info = pbg.QuiltStub(ch).GetSystemInfo(pb.GetSystemInfoRequest(),
                                                       timeout=RPC_TIMEOUT)
            self.assertTrue(info.version)
            self.assertIn("WITHOUT AUTHENTICATION", d.log())
        finally:
            self.assertEqual(d.stop(), 0)


class TokenRotation(unittest.TestCase):
    def test_sighup_rereads_the_token_file(self):
        d = Daemon().start()
        try:
            stub = pbg.QuiltStub(d.tcp())
            call = lambda tok: stub.GetSystemInfo(pb.GetSystemInfoRequest(),
                                                  metadata=bearer(tok), timeout=RPC_TIMEOUT)
            self.assertTrue(call(TOKEN).version)
            # A bad file (others may read it) is refused; the old token stays.
            new = "rotated-token-rotated-token-0123"
            write_secret(d.token_path, new + "\n", 0o644)
            d.proc.send_signal(signal.SIGHUP)
            self.wait_log(d, "the previous token stays in force")
            self.assertTrue(call(TOKEN).version)
            os.chmod(d.token_path, 0o600)
            d.proc.send_signal(signal.SIGHUP)
            self.wait_log(d, "reloaded the token")
            self.assertTrue(call(new).version)
            with self.assertRaises(grpc.RpcError) as cm:
                call(TOKEN)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        finally:
            self.assertEqual(d.stop(), 0)

    def wait_log(self, d, text):
        deadline = time.monotonic() + 10
        while text not in d.log():
            self.assertLess(time.monotonic(), deadline, "no '%s' in the log" % text)
            time.sleep(0.05)


class SocketPermissions(unittest.TestCase):
    def check_socket(self, want_gid):
        d = Daemon().start()
        try:
            st = os.stat(d.socket_path)
            self.assertTrue(stat.S_ISSOCK(st.st_mode))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
            self.assertEqual(st.st_uid, os.geteuid())
            self.assertEqual(st.st_gid, want_gid)
        finally:
            self.assertEqual(d.stop(), 0)

    def test_socket_mode_and_group(self):
        try:
            gid = grp.getgrnam("quilt").gr_gid
            self.check_socket(gid)  # a real `quilt` group: leave it alone
            return
        except KeyError:
            pass
        # Without the group: the daemon's own group.
        self.check_socket(os.getegid())
        groupadd = shutil.which("groupadd")
        if os.geteuid() != 0 or not groupadd:
            self.skipTest("needs root and groupadd to create the quilt group")
        subprocess.run([groupadd, "quilt"], check=True, capture_output=True, timeout=30)
        try:
            self.check_socket(grp.getgrnam("quilt").gr_gid)
        finally:
            subprocess.run([shutil.which("groupdel") or "groupdel", "quilt"],
                           capture_output=True, timeout=30)


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/python3
"""Interop tests: quiltd against the stock Python gRPC client (grpcio).

Run with Debian's /usr/bin/python3 (python3-grpcio, python3-grpc-tools,
python3-protobuf); a pyenv python3 on PATH will not have them.

    /usr/bin/python3 tests/interop/test_grpcio.py \
        [--quiltd PATH] [--proto-dir DIR] [--grpc-proto-dir DIR] [unittest args]

Defaults come from the environment: QUILTD, QUILT_PROTO_DIR,
QUILT_GRPC_PROTO_DIR (/usr/share/grpc-proto). Stubs are generated at start-up
into a temporary directory with grpc_tools.protoc.

Every test class starts its own quiltd on a fresh temporary Unix socket, a
free 127.0.0.1 port and a temporary root directory, and stops it (SIGTERM,
then SIGKILL) and removes all of it in cleanups that run even on failure.
"""
import concurrent.futures
import http.client
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

import grpc
from google.protobuf import descriptor_pb2

# Filled in by setUpModule once the stubs exist.
quilt_pb2 = quilt_pb2_grpc = health_pb2 = health_pb2_grpc = None
reflection_pb2 = reflection_pb2_grpc = None

CONFIG = {
    "quiltd": os.environ.get("QUILTD", ""),
    "proto_dir": os.environ.get("QUILT_PROTO_DIR", ""),
    "grpc_proto_dir": os.environ.get("QUILT_GRPC_PROTO_DIR", "/usr/share/grpc-proto"),
}

RPC_TIMEOUT = 5.0
MAX_RECV_MSG = 65536
_stub_dir = None


# --------------------------------------------------------------------- stubs

def setUpModule():
    global _stub_dir, quilt_pb2, quilt_pb2_grpc, health_pb2, health_pb2_grpc
    global reflection_pb2, reflection_pb2_grpc
    if not CONFIG["quiltd"] or not os.access(CONFIG["quiltd"], os.X_OK):
        raise RuntimeError("quiltd binary not found: set QUILTD or pass --quiltd (got %r)"
                           % CONFIG["quiltd"])
    quilt_proto = os.path.join(CONFIG["proto_dir"], "quilt.proto")
    if not os.path.isfile(quilt_proto):
        raise RuntimeError("quilt.proto not found: set QUILT_PROTO_DIR or pass --proto-dir "
                           "(looked at %r)" % quilt_proto)
    gdir = CONFIG["grpc_proto_dir"]
    sources = [quilt_proto,
               os.path.join(gdir, "grpc", "health", "v1", "health.proto"),
               os.path.join(gdir, "grpc", "reflection", "v1alpha", "reflection.proto")]
    _stub_dir = tempfile.mkdtemp(prefix="quilt-interop-stubs-")
    try:
        # A flat directory: generating under grpc/... would shadow the grpc module.
        for src in sources:
            shutil.copy(src, _stub_dir)
        names = [os.path.basename(s) for s in sources]
        proc = subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", "-I", _stub_dir,
             "--python_out=" + _stub_dir, "--grpc_python_out=" + _stub_dir] + names,
            capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError("grpc_tools.protoc failed:\n" + proc.stderr)
        sys.path.insert(0, _stub_dir)
        import quilt_pb2 as q, quilt_pb2_grpc as qg
        import health_pb2 as h, health_pb2_grpc as hg
        import reflection_pb2 as r, reflection_pb2_grpc as rg
    except BaseException:
        shutil.rmtree(_stub_dir, ignore_errors=True)
        raise
    quilt_pb2, quilt_pb2_grpc, health_pb2, health_pb2_grpc = q, qg, h, hg
    reflection_pb2, reflection_pb2_grpc = r, rg


def tearDownModule():
    if _stub_dir:
        if _stub_dir in sys.path:
            sys.path.remove(_stub_dir)
        shutil.rmtree(_stub_dir, ignore_errors=True)


# -------------------------------------------------------------------- daemon

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """One quiltd on a temp Unix socket, a free loopback port and a temp root."""

    def __init__(self, *extra_args):
        self.extra_args = list(extra_args)
        self.proc = None
        self.tmp = tempfile.mkdtemp(prefix="quilt-interop-")
        self.socket_path = os.path.join(self.tmp, "quiltd.sock")
        self.root = os.path.join(self.tmp, "root")
        self.log_path = os.path.join(self.tmp, "quiltd.log")
        self.port = None

    @property
    def unix_target(self):
        return "unix:" + self.socket_path

    @property
    def tcp_target(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        last_error = "not started"
        for _ in range(5):  # the free port may be taken between probe and bind
            self.port = free_port()
            args = [CONFIG["quiltd"], "--socket", self.socket_path,
                    "--listen", self.tcp_target, "--insecure-no-auth", "--root", self.root,
                    "--log-level", "debug"] + self.extra_args + \
                os.environ.get("QUILTD_EXTRA_ARGS", "").split()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last_error = "quiltd exited with %d" % self.proc.returncode
                    break
                if os.path.exists(self.socket_path) and self._tcp_up():
                    return self
                time.sleep(0.02)
            else:
                last_error = "quiltd did not come up within 5 s"
                self.kill()
            self.proc = None
        raise RuntimeError("%s\n%s" % (last_error, self.log_tail()))

    def _tcp_up(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def stop(self):
        """SIGTERM, then SIGKILL after 5 s; removes the temp directory."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.kill()
        finally:
            # quiltd's scratch tmpfs stays mounted if it was killed with layers in it.
            for line in open("/proc/self/mounts").read().splitlines():
                if (" " + self.tmp + "/") in line:
                        subprocess.run(["umount", "-l", line.split()[1]], check=False)
            shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return "--- quiltd log (tail) ---\n" + "".join(f.readlines()[-n:])
        except OSError:
            return "(no quiltd log)"

    def metrics(self):
        """Scrapes /metrics over HTTP/1.1: {'name{labels}': float}."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=RPC_TIMEOUT)
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            body = resp.read().decode()
            if resp.status != 200:
                raise AssertionError("/metrics answered %d" % resp.status)
        finally:
            conn.close()
        out = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out


def channel(target):
    # A private subchannel pool: no connection is shared between channels,
    # so every test talks over connections of its own.
    return grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


def unknown_field_message(total):
    """A valid protobuf message of exactly `total` bytes: one unknown
    length-delimited field 15. Decodes as any proto3 message (unknown fields
    are kept), so only its size can get it rejected."""
    for hdr in range(2, 8):
        length = total - hdr
        v, varint = length, bytearray()
        while True:
            if v >= 0x80:
                varint.append((v & 0x7F) | 0x80)
                v >>= 7
            else:
                varint.append(v)
                break
        if 1 + len(varint) == hdr:
            return bytes([15 << 3 | 2]) + bytes(varint) + b"q" * length
    raise ValueError(total)


# --------------------------------------------------------------------- cases

class _QuiltdCases:
    """Every case runs once per transport: see the subclasses below."""

    transport = None  # "unix" or "tcp"
    daemon = None

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon("--max-recv-msg", str(MAX_RECV_MSG))
        try:
            cls.daemon.start()
        except BaseException:
            cls.daemon.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def setUp(self):
        if not self.daemon.alive():
            self.fail("quiltd is not running (died in an earlier case)\n" + self.daemon.log_tail())
        target = (self.daemon.unix_target if self.transport == "unix" else self.daemon.tcp_target)
        self.channel = channel(target)
        self.addCleanup(self.channel.close)
        self.quilt = quilt_pb2_grpc.QuiltStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def tearDown(self):
        # After each case the daemon must still be up and answering, on a
        # brand-new connection over each transport.
        if not self.daemon.alive():
            self.fail("quiltd died during this case (exit %s)\n%s"
                      % (self.daemon.proc.returncode, self.daemon.log_tail()))
        for target in (self.daemon.unix_target, self.daemon.tcp_target):
            ch = channel(target)
            try:
                info = quilt_pb2_grpc.QuiltStub(ch).GetSystemInfo(
                    quilt_pb2.GetSystemInfoRequest(), timeout=RPC_TIMEOUT)
            except grpc.RpcError as e:
                self.fail("GetSystemInfo over %s failed after the case: %s %s\n%s"
                          % (target, e.code(), e.details(), self.daemon.log_tail()))
            finally:
                ch.close()
            self.assertEqual(info.pid, self.daemon.proc.pid)

    # Helpers ---------------------------------------------------------------

    def assertRpcError(self, code, fn, *args, **kwargs):
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*args, **kwargs)
        self.assertEqual(cm.exception.code(), code,
                         "details: %r" % (cm.exception.details(),))
        return cm.exception

    def wait_streams_closed(self, timeout=5.0):
        """The daemon's open-stream gauge drops back to 0 (bounded poll)."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.daemon.metrics().get("quilt_streams")
            if value == 0:
                return
            time.sleep(0.05)
        self.fail("quilt_streams is %r, not 0, %.0f s after the calls ended" % (value, timeout))

    # Health ----------------------------------------------------------------

    def test_health_check_serving(self):
        for service in ("", "quilt.v1.Quilt"):
            with self.subTest(service=service):
                resp = self.health.Check(health_pb2.HealthCheckRequest(service=service),
                                         timeout=RPC_TIMEOUT)
                self.assertEqual(resp.status, health_pb2.HealthCheckResponse.SERVING)

    def test_health_check_unknown_service_not_found(self):
        err = self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.health.Check,
                                  health_pb2.HealthCheckRequest(service="no.such.Service"),
                                  timeout=RPC_TIMEOUT)
        self.assertIn("no.such.Service", err.details())

    def test_grpc_message_non_ascii_round_trips(self):
        # The NOT_FOUND message echoes the service name: UTF-8 and '%' must
        # survive the grpc-message percent-encoding both ways ("%41" comes
        # back as "A" if the server forgets to escape '%').
        name = "naïve-☃-100%-%41-ünïcode"
        err = self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.health.Check,
                                  health_pb2.HealthCheckRequest(service=name),
                                  timeout=RPC_TIMEOUT)
        self.assertEqual(err.details(), 'unknown service "%s"' % name)

    # Quilt -----------------------------------------------------------------

    def test_get_system_info_fields(self):
        info = self.quilt.GetSystemInfo(quilt_pb2.GetSystemInfoRequest(), timeout=RPC_TIMEOUT)
        self.assertTrue(info.version)
        self.assertIn(info.cgroup_mode, ("unified", "hybrid", "legacy"))
        self.assertGreater(len(info.io_uring_features), 0)
        self.assertTrue(all(info.io_uring_features))
        self.assertEqual(info.pid, self.daemon.proc.pid)
        self.assertEqual(info.root_dir, self.daemon.root)
        self.assertTrue(info.kernel)

    def test_unknown_method_unimplemented(self):
        for path in ("/quilt.v1.Quilt/Nope", "/no.such.Service/Method"):
            with self.subTest(path=path):
                self.assertRpcError(grpc.StatusCode.UNIMPLEMENTED,
                                    self.channel.unary_unary(path), b"", timeout=RPC_TIMEOUT)

    def test_exec_of_a_missing_container_names_it(self):
        # Every Quilt method is served (none answers UNIMPLEMENTED any more).
        err = self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.quilt.Exec,
                                  quilt_pb2.ExecRequest(id="no-such-container",
                                                        command=["true"]),
                                  timeout=RPC_TIMEOUT)
        self.assertIn("no-such-container", err.details())

    def test_watch_events_heartbeats_then_client_cancel(self):
        call = self.quilt.WatchEvents(quilt_pb2.WatchEventsRequest(heartbeat_seconds=1),
                                      timeout=15)
        times = []
        start = time.monotonic()
        for ev in call:
            self.assertEqual(ev.type, quilt_pb2.EVENT_TYPE_HEARTBEAT)
            self.assertGreater(ev.timestamp_ns, 0)
            times.append(time.monotonic())
            if len(times) == 2:
                break
            if time.monotonic() - start > 10:
                break
        self.assertEqual(len(times), 2, "fewer than 2 heartbeats")
        # First at once, the next one about a heartbeat interval later.
        self.assertLess(times[0] - start, 2.0)
        self.assertGreater(times[1] - times[0], 0.5)
        self.assertLess(times[1] - times[0], 3.0)
        call.cancel()
        with self.assertRaises(grpc.RpcError) as cm:
            next(call)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.CANCELLED)
        self.wait_streams_closed()

    def test_watch_events_deadline_exceeded(self):
        start = time.monotonic()
        call = self.quilt.WatchEvents(quilt_pb2.WatchEventsRequest(heartbeat_seconds=30),
                                      timeout=0.5)
        got = []
        with self.assertRaises(grpc.RpcError) as cm:
            for ev in call:
                got.append(ev)
                if time.monotonic() - start > 10:
                    break
        elapsed = time.monotonic() - start
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertLess(elapsed, 3.0)
        self.assertEqual(len(got), 1, "expected exactly the immediate heartbeat")
        self.wait_streams_closed()

    def test_request_over_max_recv_msg_resource_exhausted(self):
        raw = self.channel.unary_unary("/quilt.v1.Quilt/GetSystemInfo",
                                       response_deserializer=quilt_pb2.SystemInfo.FromString)
        # Exactly at the limit is fine (unknown fields are ignored) ...
        info = raw(unknown_field_message(MAX_RECV_MSG), timeout=RPC_TIMEOUT)
        self.assertEqual(info.pid, self.daemon.proc.pid)
        # ... one byte more, or 100 KB, is not.
        for size in (MAX_RECV_MSG + 1, 100 * 1024):
            with self.subTest(size=size):
                err = self.assertRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, raw,
                                          unknown_field_message(size), timeout=RPC_TIMEOUT)
                self.assertIn(str(MAX_RECV_MSG), err.details())

    def test_garbage_request_invalid_argument(self):
        raw = self.channel.unary_unary("/quilt.v1.Quilt/GetSystemInfo")
        for body in (b"\xff\xff\xff\xff\xff", b"\x0a\x64abc"):  # bad varint; truncated field
            with self.subTest(body=body):
                self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, raw, body,
                                    timeout=RPC_TIMEOUT)

    def test_compressed_message_rejected(self):
        # grpcio sets the compressed flag and grpc-encoding: gzip; quiltd does
        # not implement gzip and must say so instead of misreading the bytes.
        raw = self.channel.unary_unary("/quilt.v1.Quilt/GetSystemInfo")
        err = self.assertRpcError(grpc.StatusCode.UNIMPLEMENTED, raw, b"\x0a\x00" * 64,
                                  timeout=RPC_TIMEOUT, compression=grpc.Compression.Gzip)
        self.assertIn("compress", err.details())

    def test_oversized_headers_refused(self):
        # 20 KiB of metadata is over quiltd's 16 KiB header-list limit: the
        # stream is refused, and the connection keeps serving.
        raw = self.channel.unary_unary("/quilt.v1.Quilt/GetSystemInfo")
        with self.assertRaises(grpc.RpcError) as cm:
            raw(b"", timeout=RPC_TIMEOUT, metadata=[("x-big", "a" * 20000)])
        self.assertNotEqual(cm.exception.code(), grpc.StatusCode.OK)
        self.assertNotEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)

    # Reflection ------------------------------------------------------------

    def reflect(self, *requests):
        stub = reflection_pb2_grpc.ServerReflectionStub(self.channel)
        return list(stub.ServerReflectionInfo(iter(requests), timeout=RPC_TIMEOUT))

    def test_reflection_list_services(self):
        (resp,) = self.reflect(reflection_pb2.ServerReflectionRequest(list_services="*"))
        self.assertEqual(resp.WhichOneof("message_response"), "list_services_response")
        names = {s.name for s in resp.list_services_response.service}
        self.assertIn("quilt.v1.Quilt", names)
        self.assertIn("grpc.health.v1.Health", names)

    def test_reflection_file_containing_symbol(self):
        resps = self.reflect(
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="quilt.v1.Quilt"),
            reflection_pb2.ServerReflectionRequest(file_by_filename="quilt.proto"),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Symbol"))
        self.assertEqual(len(resps), 3)
        for resp in resps[:2]:
            self.assertEqual(resp.WhichOneof("message_response"), "file_descriptor_response")
            protos = resp.file_descriptor_response.file_descriptor_proto
            self.assertGreaterEqual(len(protos), 1)
            fdp = descriptor_pb2.FileDescriptorProto.FromString(protos[0])
            self.assertEqual(fdp.package, "quilt.v1")
            services = {s.name: s for s in fdp.service}
            self.assertIn("Quilt", services)
            methods = {m.name: m for m in services["Quilt"].method}
            self.assertIn("GetSystemInfo", methods)
            self.assertEqual(methods["GetSystemInfo"].output_type, ".quilt.v1.SystemInfo")
            self.assertTrue(methods["WatchEvents"].server_streaming)
        self.assertEqual(resps[2].WhichOneof("message_response"), "error_response")
        self.assertEqual(resps[2].error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0])

    # Concurrency -----------------------------------------------------------

    def test_50_concurrent_unary_calls(self):
        n = 50
        barrier = threading.Barrier(n, timeout=10)

        def one(_):
            barrier.wait()
            return self.quilt.GetSystemInfo(quilt_pb2.GetSystemInfoRequest(),
                                            timeout=10).pid

        with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
            futures = [pool.submit(one, i) for i in range(n)]
            pids = [f.result(timeout=20) for f in futures]
        self.assertEqual(pids, [self.daemon.proc.pid] * n)


class UnixSocketTests(_QuiltdCases, unittest.TestCase):
    transport = "unix"


class TcpTests(_QuiltdCases, unittest.TestCase):
    transport = "tcp"


# ------------------------------------------------------------------ shutdown

class ShutdownTests(unittest.TestCase):
    def setUp(self):
        self.daemon = Daemon()
        self.addCleanup(self.daemon.stop)
        self.daemon.start()

    def test_sigterm_ends_streams_unavailable_and_exits_cleanly(self):
        results = {}
        first_heartbeat = {"unix": threading.Event(), "tcp": threading.Event()}
        channels = {"unix": channel(self.daemon.unix_target),
                    "tcp": channel(self.daemon.tcp_target)}
        for ch in channels.values():
            self.addCleanup(ch.close)

        def watch(name):
            stub = quilt_pb2_grpc.QuiltStub(channels[name])
            call = stub.WatchEvents(quilt_pb2.WatchEventsRequest(heartbeat_seconds=1),
                                    timeout=20)
            try:
                for _ in call:
                    first_heartbeat[name].set()
                results[name] = ("ended OK", None)
            except grpc.RpcError as e:
                results[name] = (e.code(), e.details())
            except Exception as e:  # recorded, asserted on below
                results[name] = ("exception", repr(e))
            finally:
                first_heartbeat[name].set()

        threads = [threading.Thread(target=watch, args=(name,), daemon=True)
                   for name in channels]
        for t in threads:
            t.start()
        for name, ev in first_heartbeat.items():
            self.assertTrue(ev.wait(5), "no heartbeat on the %s stream" % name)
        self.assertEqual(results, {}, "a stream ended before SIGTERM")

        start = time.monotonic()
        self.daemon.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=5)
        self.assertFalse(any(t.is_alive() for t in threads),
                         "streams still open 5 s after SIGTERM")
        for name in channels:
            self.assertEqual(results[name][0], grpc.StatusCode.UNAVAILABLE,
                             "%s stream: %r" % (name, results[name]))
        try:
            rc = self.daemon.proc.wait(timeout=max(0.1, 5 - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            self.fail("quiltd still running 5 s after SIGTERM\n" + self.daemon.log_tail())
        self.assertEqual(rc, 0, self.daemon.log_tail())
        self.assertFalse(os.path.exists(self.daemon.socket_path), "socket file left behind")
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.daemon.port), timeout=1).close()


# ---------------------------------------------------------------------- main

def main(argv):
    rest = [argv[0]]
    it = iter(argv[1:])
    for arg in it:
        key = {"--quiltd": "quiltd", "--proto-dir": "proto_dir",
               "--grpc-proto-dir": "grpc_proto_dir"}.get(arg.split("=", 1)[0])
        if key is None:
            rest.append(arg)
        elif "=" in arg:
            CONFIG[key] = arg.split("=", 1)[1]
        else:
            CONFIG[key] = next(it, "")
    unittest.main(argv=rest, verbosity=2)


if __name__ == "__main__":
    main(sys.argv)

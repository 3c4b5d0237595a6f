#!/usr/bin/python3
"""HTTP/2 abuse against a running quiltd (issue 7): CONTINUATION floods,
PING and SETTINGS floods, window-update abuse, thousands of idle
connections, a client that never reads its stream. For each, the abuser is
shed (GOAWAY or a closed connection) within a bounded time, a well-behaved
client on another connection is still served, and quiltd's memory stays
bounded. Standard library only; the daemon listens on a Unix socket; every
loop is bounded in count and time."""
import os
import resource
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h2raw  # noqa: E402

QUILTD = os.environ.get("QUILTD", "")
HEADERS, PING, SETTINGS, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x1, 0x6, 0x4, 0x7, 0x8, 0x9
PROTOCOL_ERROR, FLOW_CONTROL_ERROR = 0x1, 0x3
RSS_BUDGET_KIB = 64 * 1024  # growth allowed over the idle daemon's RSS


class Daemon:
    def __init__(self, *args):
        self.tmp = tempfile.TemporaryDirectory(prefix="quilt-abuse-")
        self.sock = os.path.join(self.tmp.name, "quiltd.sock")
        self.addr = "unix:" + self.sock
        self.log = open(os.path.join(self.tmp.name, "quiltd.log"), "w+")
        cmd = [QUILTD, "--socket", self.sock, "--root", os.path.join(self.tmp.name, "root"),
               "--warm-pool", "0"] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.healthy():
                self.rss0 = self.rss_kib()
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("quiltd did not start")

    def http_get(self, path, timeout=5.0):
        """(status, body) of GET path over the Unix socket (HTTP/1.1)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(self.sock)
            s.sendall(b"GET %s HTTP/1.1\r\nHost: quilt\r\nConnection: close\r\n\r\n"
                      % path.encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body.decode(errors="replace")

    def healthy(self):
        try:
            return self.http_get("/healthz", 2.0)[0] == 200
        except OSError:
            return False

    def metric(self, name):
        for line in self.http_get("/metrics")[1].splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.log.close()
        self.tmp.cleanup()
        return self.proc.returncode


def connect_h2(addr):
    s = h2raw.connect(addr)
    s.sendall(h2raw.PREFACE + h2raw.frame(SETTINGS, 0, 0))
    return s


def send_for(sock, data, seconds):
    """Writes as much of data as the peer takes within `seconds`, without
    reading; returns (bytes written, whether the peer closed on us)."""
    sock.setblocking(False)
    sent, deadline = 0, time.monotonic() + seconds
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    try:
        while sent < len(data) and time.monotonic() < deadline:
            if not poller.poll(200):
                continue
            try:
                sent += sock.send(data[sent:sent + 65536])
            except BlockingIOError:
                continue
    except (BrokenPipeError, ConnectionResetError):
        return sent, True
    finally:
        sock.setblocking(True)
        sock.settimeout(5.0)
    return sent, False


def shed_within(sock, seconds):
    """Reads until the server closes the connection or `seconds` pass;
    returns (closed, frames seen)."""
    data, eof = h2raw.drain(sock, time.monotonic() + seconds)
    return eof, h2raw.FrameReader().feed(data)


def request_block(path):
    return b"".join(h2raw.hpack_literal(k, v) for k, v in [
        (":method", "POST"), (":scheme", "http"), (":path", path),
        (":authority", "localhost"), ("content-type", "application/grpc"), ("te", "trailers")])


def goaway_codes(frames):
    return [struct.unpack(">II", f[3][:8])[1] for f in frames if f[0] == GOAWAY]


class AbuseTest(unittest.TestCase):
    def setUp(self):
        if not QUILTD:
            self.skipTest("QUILTD not set")
        self.assertTrue(os.access(QUILTD, os.X_OK), "QUILTD=%s is not executable" % QUILTD)
        self.daemon = None

    def tearDown(self):
        if self.daemon is not None:
            self.assertEqual(self.daemon.stop(), 0, "quiltd did not exit 0 on SIGTERM")

    def start(self, *args):
        self.daemon = Daemon(*args)
        return self.daemon

    def assert_serving(self, d):
        """The daemon is alive, answers others, and its memory stayed bounded."""
        self.assertIsNone(d.proc.poll(), "quiltd died")
        # Within seconds: a connect burst may still sit in the listen backlog.
        deadline = time.monotonic() + 5
        while not d.healthy() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertTrue(d.healthy(), "a well-behaved client was not served")
        # A gRPC call on a fresh HTTP/2 connection is answered too.
        s = connect_h2(d.addr)
        try:
            block = request_block("/quilt.v1.Quilt/GetSystemInfo")
            s.sendall(h2raw.frame(HEADERS, 0x4, 1, block) +
                      h2raw.frame(0x0, 0x1, 1, b"\x00\x00\x00\x00\x00"))
            deadline, trailers = time.monotonic() + 5, False
            reader = h2raw.FrameReader()
            while time.monotonic() < deadline and not trailers:
                data, eof = h2raw.drain(s, time.monotonic() + 0.2)
                for f in reader.feed(data):
                    trailers |= f[0] == HEADERS and f[2] == 1 and bool(f[1] & 0x1)
                if eof:
                    break
            self.assertTrue(trailers, "GetSystemInfo on a new connection got no answer")
        finally:
            s.close()
        grown = d.rss_kib() - d.rss0
        self.assertLess(grown, RSS_BUDGET_KIB, "quiltd's RSS grew by %d KiB" % grown)

    def test_continuation_flood(self):
        d = self.start()
        errors = d.metric("quilt_h2_protocol_errors_total")
        s = connect_h2(d.addr)
        pad = h2raw.hpack_literal("x-pad", "a" * 100)
        flood = h2raw.frame(HEADERS, 0, 1, h2raw.REQUEST_BLOCK) + \
            h2raw.frame(CONTINUATION, 0, 1, pad) * 50000  # ~6 MiB, never END_HEADERS
        send_for(s, flood, 5)
        closed, frames = shed_within(s, 5)
        s.close()
        self.assertTrue(closed, "a CONTINUATION flood was not shed")
        # nghttp2 stops at its CONTINUATION limit with a fatal error: no
        # GOAWAY can follow, the connection just closes.
        self.assertEqual(d.metric("quilt_h2_protocol_errors_total"), errors + 1)
        self.assert_serving(d)

    def test_ping_flood_without_reading(self):
        d = self.start()
        s = connect_h2(d.addr)
        sent, closed = send_for(s, h2raw.frame(PING, 0, 0, b"12345678") * 200000, 5)
        if not closed:
            closed, _ = shed_within(s, 5)
        s.close()
        self.assertTrue(closed, "a PING flood (%d bytes taken) was not shed" % sent)
        self.assert_serving(d)

    def test_settings_flood_without_reading(self):
        d = self.start()
        s = connect_h2(d.addr)
        sent, closed = send_for(s, h2raw.frame(SETTINGS, 0, 0) * 200000, 5)
        if not closed:
            closed, _ = shed_within(s, 5)
        s.close()
        self.assertTrue(closed, "a SETTINGS flood (%d bytes taken) was not shed" % sent)
        self.assert_serving(d)

    def test_window_update_abuse(self):
        d = self.start()
        # Overflowing the connection window past 2^31-1.
        s = connect_h2(d.addr)
        s.sendall(h2raw.frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF)) * 2)
        closed, frames = shed_within(s, 5)
        s.close()
        self.assertTrue(closed)
        self.assertIn(FLOW_CONTROL_ERROR, goaway_codes(frames))
        # A zero increment is a protocol error.
        s = connect_h2(d.addr)
        s.sendall(h2raw.frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)))
        closed, frames = shed_within(s, 5)
        s.close()
        self.assertTrue(closed)
        self.assertIn(PROTOCOL_ERROR, goaway_codes(frames))
        # A flood of tiny updates costs the daemon nothing it keeps.
        s = connect_h2(d.addr)
        send_for(s, h2raw.frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)) * 100000, 5)
        s.close()
        self.assert_serving(d)

    def test_ten_thousand_idle_connections(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 10300)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        try:
            d = self.start("--max-connections", "4096")
            held, deadline = [], time.monotonic() + 30
            try:
                failures = 0
                while len(held) < min(10000, want - 200) and time.monotonic() < deadline \
                        and failures < 50:
                    s = socket.socket(socket.AF_UNIX)
                    s.settimeout(1)
                    try:
                        s.connect(d.sock)
                    except OSError:  # the backlog is full: let the daemon catch up
                        s.close()
                        failures += 1
                        time.sleep(0.05)
                        continue
                    held.append(s)
                self.assertGreaterEqual(len(held), 8000, "could not open the connections")
                # The newest connections took the place of the oldest quiet ones,
                # and a new client is still served while they all sit there.
                self.assert_serving(d)
                self.assertLessEqual(d.metric("quilt_connections"), 4096)
                self.assertGreater(d.metric("quilt_connections_evicted_total"), 0)
            finally:
                for s in held:
                    s.close()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    def test_client_that_never_reads(self):
        d = self.start("--send-timeout", "2")
        s = connect_h2(d.addr)
        # A reflection stream asked for the same descriptors over and over:
        # the answers pile up on the daemon's side, never read.
        block = request_block("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        # Our windows are huge, so flow control does not stop the daemon.
        s.sendall(h2raw.frame(SETTINGS, 0, 0, struct.pack(">HI", 0x4, 0x7FFFFFFF)) +
                  h2raw.frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF - 65535)) +
                  h2raw.frame(HEADERS, 0x4, 1, block))
        msg = b"\x22" + bytes([len(b"quilt.v1.Quilt")]) + b"quilt.v1.Quilt"
        req = h2raw.frame(0x0, 0, 1, b"\x00" + struct.pack(">I", len(msg)) + msg)
        # 2000 requests fit the stream's initial window (64 KiB); their
        # answers, ~8 KiB each, do not fit any socket buffer.
        sent, closed = send_for(s, req * 2000, 5)
        self.assertEqual(sent, len(req) * 2000)
        t0 = time.monotonic()
        while not closed and time.monotonic() - t0 < 10:
            time.sleep(0.2)
            closed = d.metric("quilt_connections_stalled_total") >= 1
        self.assertTrue(closed, "a client that never reads was never shed")
        # Reading now finds what the kernel had buffered, then the close.
        self.assertTrue(shed_within(s, 5)[0], "the stalled connection is still open")
        s.close()
        self.assertGreaterEqual(d.metric("quilt_connections_stalled_total"), 1)
        self.assert_serving(d)


if __name__ == "__main__":
    unittest.main()

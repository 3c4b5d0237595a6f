#!/usr/bin/python3
"""quiltd's connection limits against raw HTTP/2 clients: the connection
cap, the idle timeout (and that an open stream keeps a connection alive),
and the per-connection stream cap. Standard library only; loopback only;
every wait is bounded."""
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h2raw  # noqa: E402

QUILTD = os.environ.get("QUILTD", "")
RST_STREAM, GOAWAY = 0x3, 0x7
REFUSED_STREAM = 0x7


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self, *args):
        self.tmp = tempfile.TemporaryDirectory(prefix="quilt-limits-")
        self.port = free_port()
        self.addr = "tcp:127.0.0.1:%d" % self.port
        cmd = [QUILTD, "--socket", "", "--listen", "127.0.0.1:%d" % self.port,
               "--insecure-no-auth",
               "--root", os.path.join(self.tmp.name, "root")] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("quiltd did not start")

    def metric(self, name):
        url = "http://127.0.0.1:%d/metrics" % self.port
        for line in urllib.request.urlopen(url, timeout=5).read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def stop(self):
        self.proc.terminate()
        rc = self.proc.wait(timeout=10)
        self.tmp.cleanup()
        return rc


def h2_connect(addr):
    s = h2raw.connect(addr)
    s.sendall(h2raw.PREFACE + h2raw.frame(0x4, 0, 0))
    return s


def frames_until(sock, seconds):
    data, eof = h2raw.drain(sock, time.monotonic() + seconds)
    return h2raw.FrameReader().feed(data), eof


class Limits(unittest.TestCase):
    def test_bad_flags_exit_2_with_one_line(self):
        cases = [(["--root", "relative/dir"], "--root must be an absolute path"),
                 (["--warm-pool", "many"], "--warm-pool expects a number"),
                 (["--max-streams", "0"], "--max-streams expects a number"),
                 (["--no-such-flag"], "see quiltd --help")]
        for args, want in cases:
            p = subprocess.run([QUILTD] + args, capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertIn(want, p.stderr, args)
            # getopt names an unknown flag on a line of its own.
            self.assertLessEqual(len(p.stderr.strip().splitlines()), 2, p.stderr)

    def test_connection_cap(self):
        d = Daemon("--max-connections", "3")
        try:
            # Let the start-up probe connection's close be processed first.
            deadline = time.monotonic() + 5
            while d.metric("quilt_connections") != 1 and time.monotonic() < deadline:
                time.sleep(0.1)  # the metrics request itself is the one
            time.sleep(0.2)
            # Three busy connections (an open WatchEvents stream each).
            held = [h2_connect(d.addr) for _ in range(3)]
            for s in held:
                s.sendall(h2raw.frame(0x1, 0x4, 1, h2raw.REQUEST_BLOCK))
            time.sleep(0.3)
            extra = h2raw.connect(d.addr)
            _, eof = h2raw.drain(extra, time.monotonic() + 3)
            self.assertTrue(eof, "a 4th connection must be closed at once")
            for s in held:
                s.close()
            time.sleep(0.3)
            self.assertGreaterEqual(d.metric("quilt_connections_rejected_total"), 1)
            # Three quiet ones: a newcomer takes the place of the quietest.
            quiet = [h2_connect(d.addr) for _ in range(3)]
            time.sleep(0.3)
            newcomer = h2_connect(d.addr)
            _, eof = h2raw.drain(quiet[0], time.monotonic() + 3)
            self.assertTrue(eof, "the quietest connection was not evicted")
            _, eof = h2raw.drain(newcomer, time.monotonic() + 0.5)
            self.assertFalse(eof, "the newcomer was closed")
            self.assertGreaterEqual(d.metric("quilt_connections_evicted_total"), 1)
            for s in quiet + [newcomer]:
                s.close()
            time.sleep(0.3)
            # Below the cap again: served.
            self.assertIsNotNone(d.metric("quilt_connections"))
        finally:
            self.assertEqual(d.stop(), 0)

    def test_idle_timeout_closes_quiet_connection(self):
        d = Daemon("--idle-timeout", "1")
        try:
            s = h2_connect(d.addr)
            t0 = time.monotonic()
            frames, eof = frames_until(s, 5)
            self.assertTrue(eof, "an idle connection must be closed")
            self.assertLess(time.monotonic() - t0, 4.5)
            self.assertIn(GOAWAY, [f[0] for f in frames], "idle close starts with GOAWAY")
        finally:
            self.assertEqual(d.stop(), 0)

    def test_open_stream_keeps_connection(self):
        d = Daemon("--idle-timeout", "1")
        try:
            s = h2_connect(d.addr)
            # WatchEvents, request not yet half-closed: the stream stays open.
            s.sendall(h2raw.frame(0x1, 0x4, 1, h2raw.REQUEST_BLOCK))
            frames, eof = frames_until(s, 2.5)
            self.assertFalse(eof, "a connection with an open stream is not idle")
            s.close()
        finally:
            self.assertEqual(d.stop(), 0)

    def test_stream_cap(self):
        d = Daemon("--max-streams", "2")
        try:
            s = h2_connect(d.addr)
            h2raw.drain(s, time.monotonic() + 0.3)  # server SETTINGS
            s.sendall(h2raw.frame(0x4, 0x1, 0))    # ack them: the cap applies
            for sid in (1, 3, 5):
                s.sendall(h2raw.frame(0x1, 0x4, sid, h2raw.REQUEST_BLOCK))
            frames, _ = frames_until(s, 1.5)
            # nghttp2 refuses the stream before the client acknowledged the
            # limit and treats it as a connection error after: either holds.
            refused = [f for f in frames if f[0] == RST_STREAM and f[2] == 5
                       and int.from_bytes(f[3][:4], "big") == REFUSED_STREAM]
            goaway = [f for f in frames if f[0] == GOAWAY and b"concurrent streams" in f[3]]
            self.assertTrue(refused or goaway,
                            "the third concurrent stream must be refused: %r" % frames)
            s.close()
        finally:
            self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    if not QUILTD:
        sys.exit("set QUILTD")
    unittest.main(verbosity=2)

#!/usr/bin/python3
"""Raw-socket helpers for tests/integration/test_h2_tools.sh.

Standard library only (run with /usr/bin/python3). Every mode is bounded in
bytes, iterations and wall-clock time and exits on its own.

  h2raw.py garbage  ADDR NBYTES [--preface]
      Connects, optionally sends the HTTP/2 client preface, then up to NBYTES
      random bytes; ignores the peer closing on us. Exits 0 once the server
      has closed the connection (or after 10 s), printing what it saw.
  h2raw.py hold     ADDR MODE MAX_SECONDS
      MODE "silent" sends nothing, "half-preface" sends the first 12 bytes of
      the preface. Keeps the connection open until the server closes it or
      MAX_SECONDS pass; prints "closed-by-server SECS" or "still-open SECS".
  h2raw.py rapid-reset ADDR COUNT
      Preface + SETTINGS, then COUNT x (HEADERS for a gRPC request, RST_STREAM
      CANCEL) on streams 1, 3, 5, ... Prints "goaway code=0x.. last_stream=N
      after=K" for the first GOAWAY received (exit 0), or "no-goaway" (exit 1).
  h2raw.py bad-http1 ADDR
      Sends one malformed HTTP/1.1 request followed by 64 KiB more junk in a
      single write, reads until the server closes (at most 5 s) and prints
      how many HTTP/1.1 responses came back. Exits 0 only for exactly one
      "400" response followed by the server closing the connection.

ADDR is "tcp:HOST:PORT" or "unix:PATH".
"""
import os
import select
import socket
import struct
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

FRAME_DATA, FRAME_HEADERS, FRAME_RST_STREAM, FRAME_SETTINGS = 0x0, 0x1, 0x3, 0x4
FRAME_GOAWAY = 0x7
FLAG_END_HEADERS = 0x4
ERR_CANCEL = 0x8


def connect(addr, timeout=5.0):
    kind, _, rest = addr.partition(":")
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        s = socket.create_connection((host, int(port)), timeout=timeout)
    elif kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(rest)
    else:
        raise SystemExit("bad address %r (want tcp:HOST:PORT or unix:PATH)" % addr)
    return s


def frame(ftype, flags, stream_id, payload=b""):
    n = len(payload)
    return struct.pack(">BHBBI", (n >> 16) & 0xFF, n & 0xFFFF, ftype, flags,
                       stream_id & 0x7FFFFFFF) + payload


def hpack_literal(name, value):
    """Literal header field without indexing, new name (RFC 7541 6.2.2).
    Only for names and values shorter than 127 bytes (7-bit length, H=0)."""
    name, value = name.encode(), value.encode()
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


REQUEST_BLOCK = b"".join(hpack_literal(k, v) for k, v in [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/quilt.v1.Quilt/WatchEvents"),
    (":authority", "localhost"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
])


class FrameReader:
    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        frames = []
        while len(self.buf) >= 9:
            hi, lo, ftype, flags, sid = struct.unpack(">BHBBI", self.buf[:9])
            n = hi << 16 | lo
            if len(self.buf) < 9 + n:
                break
            frames.append((ftype, flags, sid & 0x7FFFFFFF, self.buf[9:9 + n]))
            self.buf = self.buf[9 + n:]
        return frames


def drain(sock, until):
    """Reads until EOF or `until` (monotonic); returns (bytes, eof)."""
    got = b""
    poller = select.poll()  # not select(): callers may hold fds past 1024
    poller.register(sock, select.POLLIN)
    while time.monotonic() < until:
        if not poller.poll(1000 * max(0.0, min(0.2, until - time.monotonic()))):
            continue
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return got, True
        except socket.timeout:
            continue
        if not chunk:
            return got, True
        got += chunk
    return got, False


def cmd_garbage(addr, nbytes, preface):
    s = connect(addr)
    payload = (PREFACE if preface else b"") + os.urandom(nbytes)
    sent = 0
    try:
        while sent < len(payload):
            sent += s.send(payload[sent:sent + 16384])
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    try:
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    got, eof = drain(s, time.monotonic() + 10)
    s.close()
    head = got[:40]
    print("sent=%d received=%d eof=%s head=%r" % (sent, len(got), eof, head))
    return 0


def cmd_hold(addr, mode, max_seconds):
    s = connect(addr)
    start = time.monotonic()
    if mode == "half-preface":
        s.sendall(PREFACE[:12])
    elif mode != "silent":
        raise SystemExit("bad hold mode %r" % mode)
    sys.stdout.write("connected\n")
    sys.stdout.flush()
    _, eof = drain(s, start + max_seconds)
    s.close()
    print("%s %.1f" % ("closed-by-server" if eof else "still-open", time.monotonic() - start))
    return 0


def cmd_rapid_reset(addr, count):
    s = connect(addr)
    s.sendall(PREFACE + frame(FRAME_SETTINGS, 0, 0))
    reader = FrameReader()
    goaway = None
    sent_pairs = 0
    deadline = time.monotonic() + 20
    rst_payload = struct.pack(">I", ERR_CANCEL)
    batch = 20
    eof = False
    while sent_pairs < count and goaway is None and not eof and time.monotonic() < deadline:
        out = b""
        for _ in range(min(batch, count - sent_pairs)):
            sid = 2 * sent_pairs + 1
            out += frame(FRAME_HEADERS, FLAG_END_HEADERS, sid, REQUEST_BLOCK)
            out += frame(FRAME_RST_STREAM, 0, sid, rst_payload)
            sent_pairs += 1
        try:
            s.sendall(out)
        except (BrokenPipeError, ConnectionResetError):
            eof = True
        # Non-blocking look at what the server said so far.
        while True:
            r, _, _ = select.select([s], [], [], 0)
            if not r:
                break
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                eof = True
                break
            if not chunk:
                eof = True
                break
            for ftype, _, _, payload in reader.feed(chunk):
                if ftype == FRAME_GOAWAY and goaway is None:
                    goaway = struct.unpack(">II", payload[:8])
    if goaway is None and not eof:
        got, _ = drain(s, time.monotonic() + 5)
        for ftype, _, _, payload in reader.feed(got):
            if ftype == FRAME_GOAWAY and goaway is None:
                goaway = struct.unpack(">II", payload[:8])
    s.close()
    if goaway is None:
        print("no-goaway after=%d eof=%s" % (sent_pairs, eof))
        return 1
    last, code = goaway
    print("goaway code=0x%x last_stream=%d after=%d" % (code, last & 0x7FFFFFFF, sent_pairs))
    return 0


def cmd_bad_http1(addr):
    s = connect(addr)
    try:
        s.sendall(b"\x01 / HTTP/1.1\r\n" + b"x" * 65536)
    except (BrokenPipeError, ConnectionResetError):
        pass
    got = b""
    eof = False
    until = time.monotonic() + 5
    while time.monotonic() < until:
        r, _, _ = select.select([s], [], [], 0.2)
        if not r:
            continue
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError) as e:
            print("recv: %s" % e)
            eof = True
            break
        if not chunk:
            eof = True
            break
        got += chunk
    s.close()
    n = got.count(b"HTTP/1.1 ")
    print("responses=%d bytes=%d eof=%s" % (n, len(got), eof))
    print(got.decode(errors="replace"))
    return 0 if n == 1 and got.startswith(b"HTTP/1.1 400 ") and eof else 1


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    mode, addr = argv[1], argv[2]
    if mode == "garbage":
        return cmd_garbage(addr, int(argv[3]), "--preface" in argv[4:])
    if mode == "hold":
        return cmd_hold(addr, argv[3], float(argv[4]))
    if mode == "bad-http1":
        return cmd_bad_http1(addr)
    if mode == "rapid-reset":
        return cmd_rapid_reset(addr, int(argv[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/python3
"""A stand-in for quiltd, for testing quilt-cli's gRPC client.

Two kinds of server:

* gRPC (default): Debian's grpcio serving quilt.v1.Quilt/GetSystemInfo and
  grpc.health.v1.Health on a Unix socket and on 127.0.0.1 (ephemeral port).
  Behaviour is picked per request so one server covers many checks:
    GetSystemInfo  reads MODE_FILE (if given): "ok" (default), "notfound"
                   (abort, Trailers-Only), "slow" (sleep 5 s), "empty-error"
                   (abort with no message)
    CopyOut        a crafted archive named after the path, as a container's
                   root could make one: /through-symlink (a symlink to
                   ../../victim, then a file through it), /dotdot (../x),
                   /absolute (an absolute name), /device (a device node,
                   then a file); each a directory "evil" holding them
    Health/Check   service ""/"quilt.v1.Quilt"/"nowatch": SERVING;
                   "down": NOT_SERVING; "slow": sleeps 5 s; "ctrl": INTERNAL
                   with control characters; "long": INTERNAL with 800 bytes;
                   anything else: NOT_FOUND with a message containing '%'
                   and non-ASCII text
    Health/Watch   "": NOT_SERVING, then SERVING after 0.3 s, then stays open
                   (logs "watch cancelled" to LOG when the client resets);
                   "down": NOT_SERVING forever; "nowatch": UNIMPLEMENTED

* raw (--raw-dir DIR): a hand-written HTTP/2 server listening on
  DIR/MODE.sock for each MODE below; each answers every request in one
  broken or unusual way, to test the client's handling of what grpcio would
  never send:
    http503    :status 503, no gRPC trailers
    nostatus   a valid message but no grpc-status
    rst        RST_STREAM REFUSED_STREAM
    close      closes the connection without answering
    hang       never answers
    http1      answers like an HTTP/1.1 server
    split      a valid SystemInfo, one byte per DATA frame, then trailers
    twomsgs    two messages for a unary call
    huge       announces a 5 MiB message (over the 4 MiB receive limit)
    stream     (Watch) NOT_SERVING then SERVING in one DATA frame, then
               keeps the stream open

It writes READY_FILE ("PORT\\n": the TCP port, 0 for raw) once it accepts
connections, and runs until killed. Only loopback and Unix sockets are used.
"""
import argparse
import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time

import grpc
from grpc_tools import protoc

NOT_FOUND_MSG = "no such service '{}': 100% missing \u2014 \u00fcml\u00e4ut \u2713"


def generate_stubs(proto_dir, grpc_proto_dir, out):
    """Compiles quilt.proto and health.proto into importable modules in out."""
    # health.proto lives under grpc/health/v1/; a module path starting with
    # "grpc." would clash with the grpc package, so compile a flat copy.
    shutil.copy(os.path.join(grpc_proto_dir, "grpc/health/v1/health.proto"), out)
    for root, name in ((proto_dir, "quilt.proto"), (out, "health.proto")):
        rc = protoc.main(["protoc", "-I" + root, "--python_out=" + out,
                          "--grpc_python_out=" + out, os.path.join(root, name)])
        if rc != 0:
            sys.exit("protoc failed for " + name)
    sys.path.insert(0, out)


class Log:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def __call__(self, line):
        if not self.path:
            return
        with self.lock, open(self.path, "a") as f:
            f.write(line + "\n")


def system_info(pb):
    return pb.SystemInfo(
        version="0.1.0-fake", kernel="Linux 6.1.0 x86_64", cgroup_mode="unified",
        io_uring_features=["IORING_OP_ACCEPT", "IORING_FEAT_FAST_POLL"],
        uptime_seconds=3725, containers_running=2, containers_total=5, images=3,
        root_dir="/var/lib/quilt \"test\"", pid=4242, rootfs_driver="overlay")


def make_quilt_servicer(pb, pb_grpc, mode_file, log):
    class Quilt(pb_grpc.QuiltServicer):
        def GetSystemInfo(self, request, context):
            mode = "ok"
            if mode_file and os.path.exists(mode_file):
                mode = open(mode_file).read().strip() or "ok"
            md = dict(context.invocation_metadata())
            log("GetSystemInfo mode=%s timeout=%s ua=%s" % (
                mode, "yes" if context.time_remaining() is not None else "no",
                md.get("user-agent", "")))
            if mode == "notfound":
                context.abort(grpc.StatusCode.NOT_FOUND, NOT_FOUND_MSG.format("info"))
            if mode == "empty-error":
                context.abort(grpc.StatusCode.PERMISSION_DENIED, "")
            if mode == "slow":
                time.sleep(5)
            return system_info(pb)

        def CopyOut(self, request, context):
            log("CopyOut path=%s" % request.path)
            yield pb.CopyChunk(stat=pb.CopyStat(name="evil", mode=0o40755, is_dir=True))
            yield pb.CopyChunk(data=crafted_tar(request.path))
    return Quilt()


def crafted_tar(kind):
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        def add(name, typ=tarfile.REGTYPE, data=b"", link=""):
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname, ti.size = typ, link, len(data)
            if typ == tarfile.CHRTYPE:
                ti.devmajor, ti.devminor = 8, 0
            tf.addfile(ti, io.BytesIO(data) if data else None)
        add("evil", tarfile.DIRTYPE)
        if kind == "/through-symlink":
            add("evil/l", tarfile.SYMTYPE, link="../../victim")
            add("evil/l/pwned", data=b"pwned\n")
        elif kind == "/dotdot":
            add("evil/../../pwned", data=b"pwned\n")
        elif kind == "/absolute":
            add("/tmp/quilt-fake-pwned", data=b"pwned\n")
        elif kind == "/device":
            add("evil/sda", tarfile.CHRTYPE)
            add("evil/after", data=b"after\n")
    return buf.getvalue()


def make_health_servicer(hpb, hpb_grpc, log):
    S = hpb.HealthCheckResponse

    class Health(hpb_grpc.HealthServicer):
        def Check(self, request, context):
            svc = request.service
            log("Check service=%r" % svc)
            if svc in ("", "quilt.v1.Quilt", "nowatch"):
                return S(status=S.SERVING)
            if svc == "down":
                return S(status=S.NOT_SERVING)
            if svc == "slow":
                time.sleep(5)
                return S(status=S.SERVING)
            if svc == "ctrl":
                context.abort(grpc.StatusCode.INTERNAL, "bad\x1b[31mred\nline2")
            if svc == "long":
                context.abort(grpc.StatusCode.INTERNAL, "\u00e9" * 400)
            context.abort(grpc.StatusCode.NOT_FOUND, NOT_FOUND_MSG.format(svc))

        def Watch(self, request, context):
            svc = request.service
            log("Watch service=%r" % svc)
            if svc == "nowatch":
                context.abort(grpc.StatusCode.UNIMPLEMENTED, "Watch is not implemented")
            context.add_callback(lambda: log("watch cancelled service=%r" % svc))
            yield S(status=S.NOT_SERVING)
            if svc == "":
                time.sleep(0.3)
                yield S(status=S.SERVING)
            while context.is_active():
                time.sleep(0.05)
    return Health()


def serve_grpc(args):
    import quilt_pb2, quilt_pb2_grpc, health_pb2, health_pb2_grpc  # noqa: E401
    from concurrent import futures
    log = Log(args.log)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    quilt_pb2_grpc.add_QuiltServicer_to_server(
        make_quilt_servicer(quilt_pb2, quilt_pb2_grpc, args.mode_file, log), server)
    health_pb2_grpc.add_HealthServicer_to_server(
        make_health_servicer(health_pb2, health_pb2_grpc, log), server)
    server.add_insecure_port("unix:" + args.unix)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    write_ready(args.ready, port)
    server.wait_for_termination()


def write_ready(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, path)


# ---------------------------------------------------------------- raw HTTP/2

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0, 1, 3, 4, 6, 7
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack(headers):
    """Literal header fields without indexing, no Huffman: always valid."""
    out = b""
    for name, value in headers:
        n, v = name.encode(), value.encode()
        out += b"\x00" + hpack_int(len(n), 7) + n + hpack_int(len(v), 7) + v
    return out


def grpc_msg(payload):
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def read_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def read_frame(conn):
    hdr = read_exact(conn, 9)
    length = int.from_bytes(hdr[:3], "big")
    return hdr[3], hdr[4], int.from_bytes(hdr[5:9], "big") & 0x7fffffff, \
        read_exact(conn, length)


RESP_HEADERS = [(":status", "200"), ("content-type", "application/grpc")]
OK_TRAILERS = [("grpc-status", "0")]


def raw_answer(mode, sid, pb, hpb):
    """The frames that answer one complete request on stream sid."""
    hdrs = lambda h, end: frame(HEADERS, END_HEADERS | (END_STREAM if end else 0), sid, hpack(h))
    info = grpc_msg(system_info(pb).SerializeToString())
    if mode == "http503":
        return hdrs([(":status", "503"), ("content-type", "text/plain")], True)
    if mode == "nostatus":
        return hdrs(RESP_HEADERS, False) + frame(DATA, END_STREAM, sid, info)
    if mode == "rst":
        return frame(RST_STREAM, 0, sid, struct.pack(">I", 7))  # REFUSED_STREAM
    if mode == "split":
        data = b"".join(frame(DATA, 0, sid, info[i:i + 1]) for i in range(len(info)))
        return hdrs(RESP_HEADERS, False) + data + hdrs(OK_TRAILERS, True)
    if mode == "twomsgs":
        return hdrs(RESP_HEADERS, False) + frame(DATA, 0, sid, info + info) + \
            hdrs(OK_TRAILERS, True)
    if mode == "huge":
        return hdrs(RESP_HEADERS, False) + \
            frame(DATA, 0, sid, b"\x00" + struct.pack(">I", 5 << 20) + b"x" * 100)
    if mode == "stream":
        S = hpb.HealthCheckResponse
        two = grpc_msg(S(status=S.NOT_SERVING).SerializeToString()) + \
            grpc_msg(S(status=S.SERVING).SerializeToString())
        return hdrs(RESP_HEADERS, False) + frame(DATA, 0, sid, two)
    raise ValueError(mode)


def raw_conn(conn, mode, pb, hpb, log):
    with conn:
        if mode == "http1":
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        if read_exact(conn, len(PREFACE)) != PREFACE:
            return
        conn.sendall(frame(SETTINGS, 0, 0))
        while True:
            ftype, flags, sid, payload = read_frame(conn)
            if ftype == SETTINGS and not flags & ACK:
                conn.sendall(frame(SETTINGS, ACK, 0))
            elif ftype == PING and not flags & ACK:
                conn.sendall(frame(PING, ACK, 0, payload))
            elif ftype == RST_STREAM:
                log("raw rst from client stream=%d code=%d" % (
                    sid, int.from_bytes(payload, "big")))
            elif ftype == GOAWAY:
                log("raw goaway from client")
            elif ftype in (HEADERS, DATA) and flags & END_STREAM:
                log("raw request complete stream=%d mode=%s" % (sid, mode))
                if mode == "close":
                    return
                if mode != "hang":
                    conn.sendall(raw_answer(mode, sid, pb, hpb))


RAW_MODES = ("http503", "nostatus", "rst", "close", "hang", "http1", "split", "twomsgs",
             "huge", "stream")


def serve_raw(args):
    import quilt_pb2, health_pb2  # noqa: E401
    log = Log(args.log)

    def handle(conn, mode):
        try:
            raw_conn(conn, mode, quilt_pb2, health_pb2, log)
        except (EOFError, ConnectionError):
            pass

    def accept_loop(srv, mode):
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=handle, args=(conn, mode), daemon=True).start()

    for mode in RAW_MODES:
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(os.path.join(args.raw_dir, mode + ".sock"))
        srv.listen(16)
        threading.Thread(target=accept_loop, args=(srv, mode), daemon=True).start()
    write_ready(args.ready, 0)
    while True:
        time.sleep(3600)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unix", help="Unix socket path to serve gRPC on")
    ap.add_argument("--ready", required=True, help="file written once serving")
    ap.add_argument("--proto-dir", required=True, help="directory holding quilt.proto")
    ap.add_argument("--grpc-proto-dir", default="/usr/share/grpc-proto")
    ap.add_argument("--mode-file", help="file whose content picks GetSystemInfo's behaviour")
    ap.add_argument("--log", help="append request notes here")
    ap.add_argument("--raw-dir", help="serve raw HTTP/2 on DIR/MODE.sock instead of gRPC")
    args = ap.parse_args()
    if not args.unix and not args.raw_dir:
        ap.error("one of --unix and --raw-dir is required")
    # Exit through `finally` on the test's kill, so the stubs are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    stubs = tempfile.mkdtemp(prefix="quilt-fake-stubs.")
    try:
        generate_stubs(args.proto_dir, args.grpc_proto_dir, stubs)
        (serve_raw if args.raw_dir else serve_grpc)(args)
    finally:
        shutil.rmtree(stubs, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Writes the hand-made seed inputs of every fuzz target into
tests/fuzz/corpus/<target>/seed-* (standard library only). The committed
corpus is these seeds plus what `tests/fuzz/run --merge` kept; rerunning
this script rewrites the seeds and leaves the merged files alone.

  tests/fuzz/make-seeds.py [CORPUS_DIR]
"""
import gzip
import hashlib
import io
import json
import os
import struct
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")

# The daemon's method table, in registry order (grpc_registry_init): byte 0
# of a fuzz_proto_requests input picks the method by its index here.
Q = "/quilt.v1.Quilt/"
METHODS = [Q + m for m in (
    "CreateContainer", "StartContainer", "GetContainer", "ListContainers", "StopContainer",
    "KillContainer", "PauseContainer", "ResumeContainer", "RemoveContainer", "WaitContainer",
    "StreamLogs", "WatchEvents", "GetStats", "Exec", "ExecStream", "CopyOut", "CopyIn",
    "ImportImage", "UploadImage", "ListImages", "RemoveImage", "PruneImages", "CreateVolume",
    "ListVolumes", "RemoveVolume", "PruneVolumes", "GetSystemInfo")] + [
    "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
]

def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ------------------------------------------------------------ protobuf
def varint(n):
    out = b""
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def f_str(num, s):
    s = s.encode() if isinstance(s, str) else s
    return varint(num << 3 | 2) + varint(len(s)) + s


def f_int(num, n):
    return varint(num << 3) + varint(n)


CID = "0f" * 32
SPEC = (f_str(1, "busybox:latest") + f_str(2, "sh") + f_str(2, "-c") + f_str(2, "echo hi") +
        f_str(3, "A=1") + f_str(4, "/tmp") + f_str(5, "pip: flask==3.0.0") +
        f_int(6, 64) + f_int(7, 50) + f_int(8, 100) +
        f_str(9, f_int(1, 1) + f_int(7, 1)) + f_str(10, "web") +
        f_str(11, f_str(1, "k") + f_str(2, "v")) +
        f_str(12, f_str(1, "bind") + f_str(2, "/src") + f_str(3, "/dst") + f_int(4, 1)) +
        f_int(13, 1) + f_str(14, "1000:1000") + f_int(15, 1) + f_str(16, "box") +
        f_str(17, f_str(1, "http://npm.local/") + f_str(8, "localhost,10.0.0.0/8")) +
        f_int(18, 2))
BY_NAME = {
    "CreateContainer": [f_str(1, SPEC) + f_int(2, 1), f_str(1, f_str(1, "alpine"))],
    "StartContainer": [f_str(1, CID)], "GetContainer": [f_str(1, CID[:12])],
    "ListContainers": [f_int(1, 1) + f_str(2, f_str(1, "app") + f_str(2, "web"))],
    "StopContainer": [f_str(1, CID) + f_int(2, 10)], "KillContainer": [f_str(1, CID) + f_int(2, 9)],
    "RemoveContainer": [f_str(1, CID) + f_int(2, 1)], "WaitContainer": [f_str(1, CID)],
    "StreamLogs": [f_str(1, CID) + f_int(2, 1) + f_int(3, 10) + f_int(4, 1700000000 * 10**9) +
                   f_int(5, 1)],
    "WatchEvents": [f_str(1, varint(1) + varint(2) + varint(3)) + f_str(2, CID) + f_int(3, 5),
                    f_int(1, 4) + f_int(1, 5)],
    "GetStats": [f_str(1, CID)],
    "Exec": [f_str(1, CID) + f_str(2, "ls") + f_str(2, "-l") + f_int(3, 1)],
    "CopyOut": [f_str(1, CID) + f_str(2, "/etc/.") + f_int(3, 1) + f_int(4, 1)],
    "CopyIn": [f_str(1, "web") + f_str(2, "/srv") + f_int(3, 1) +
               f_str(4, b"./\x00" + b"\x00" * 97 + b"0000755\x00")],
    "ImportImage": [f_str(1, "/tmp/img.tar") + f_str(2, "app:1") + f_str(2, "app:latest")],
    "UploadImage": [f_str(1, "app:1") + f_str(2, b"\x1f\x8b\x08\x00" + b"\x00" * 40)],
    "ListImages": [b""], "RemoveImage": [f_str(1, "app:1") + f_int(2, 1)],
    "PruneImages": [b""], "GetSystemInfo": [b""],
}
OTHERS = {
    "/grpc.health.v1.Health/Check": [f_str(1, "quilt.v1.Quilt")],
    "/grpc.health.v1.Health/Watch": [f_str(1, "")],
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": [
        f_str(1, "localhost") + f_str(3, "list"), f_str(4, "quilt.v1.Quilt"),
        f_str(5, "quilt.proto"), f_str(6, f_str(1, "quilt.v1.ContainerSpec") + f_int(2, 10))],
}
# Keyed by method index, as the harness picks them.
REQUESTS = {METHODS.index(k if k.startswith("/") else Q + k): v
            for k, v in list(BY_NAME.items()) + list(OTHERS.items())}


def ix(name):
    """The index of a method of the Quilt service (or a full path)."""
    return METHODS.index(name if name.startswith("/") else Q + name)


def proto_seeds():
    for idx, msgs in REQUESTS.items():
        for i, m in enumerate(msgs):
            write("fuzz_proto_requests", "%02d-%d" % (idx, i), bytes([idx]) + m)


# ------------------------------------------------------------ gRPC framing
def grpc_msg(body, compressed=0):
    return bytes([compressed]) + struct.pack(">I", len(body)) + body


def framing_seeds():
    one = grpc_msg(REQUESTS[ix("CreateContainer")][0])
    write("fuzz_framing", "one", b"\x05\x03" + one)
    write("fuzz_framing", "several", b"\x05\x11" + grpc_msg(b"") + grpc_msg(b"ab") +
          grpc_msg(b"x" * 300, 1))
    write("fuzz_framing", "oversize", b"\x03\x00" + grpc_msg(b"y" * 200))
    write("fuzz_framing", "bad-flag", b"\x05\x00" + b"\x02\x00\x00\x00\x01z")
    write("fuzz_framing", "truncated", b"\x06\x07" + grpc_msg(b"z" * 50)[:30])
    write("fuzz_framing", "many-empty", b"\x04\x01" + grpc_msg(b"") * 70)


# ------------------------------------------------------------ HTTP/1.1
def http1_seeds():
    reqs = {
        "health": b"GET /healthz HTTP/1.1\r\nHost: quilt\r\n\r\n",
        "metrics": b"GET /metrics?x=1 HTTP/1.1\r\nHost: quilt\r\nAccept: */*\r\n\r\n",
        "head-close": b"HEAD /healthz HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        "pipelined": b"GET /healthz HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n"
                     b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                     b"GET /metrics HTTP/1.0\r\n\r\n",
        "chunked": b"POST /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3\r\nabc\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n",
        "upgrade": b"GET /healthz HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
                   b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\nPRI * HTTP/2.0\r\n\r\n",
        "bad": b"GET /healthz HTTP/9.9\r\n\r\n",
        "long-url": b"GET /" + b"a" * 2100 + b" HTTP/1.1\r\n\r\n",
        "many-headers": b"GET /healthz HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
    }
    for name, r in reqs.items():
        write("fuzz_http1", name, b"\x05" + r)
    write("fuzz_http1", "shutting-down", b"\x85" + reqs["health"])


# ------------------------------------------------------------ HTTP/2
def h2frame(ftype, flags, sid, payload=b""):
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags, sid) + payload


def hpack_literal(name, value):
    # Literal header field without indexing, new name, no Huffman.
    name, value = name.encode(), value.encode()
    return b"\x00" + bytes([len(name)]) + name + hpack_len(value) + value


def hpack_len(s):
    n = len(s)
    if n < 127:
        return bytes([n])
    out, n = [127], n - 127
    while n >= 128:
        out.append(n % 128 + 128)
        n //= 128
    return bytes(out + [n])


def grpc_headers(path, extra=()):
    block = b"\x83\x86" + hpack_literal(":path", path) + hpack_literal(":authority", "quilt")
    block += hpack_literal("content-type", "application/grpc") + hpack_literal("te", "trailers")
    for k, v in extra:
        block += hpack_literal(k, v)
    return block


SETTINGS = h2frame(4, 0, 0, struct.pack(">HI", 3, 100) + struct.pack(">HI", 4, 65535))
SETTINGS_ACK = h2frame(4, 1, 0)


def unary(sid, idx, msg, extra=()):
    return (h2frame(1, 4, sid, grpc_headers(METHODS[idx], extra)) +
            h2frame(0, 1, sid, grpc_msg(msg)))


def h2_seeds():
    t = "fuzz_h2_server"
    head = b"\x05\x00"
    write(t, "settings-only", head + SETTINGS + SETTINGS_ACK)
    for idx, msgs in REQUESTS.items():
        write(t, "unary-%02d" % idx, head + SETTINGS + unary(1, idx, msgs[0]))
    write(t, "timeout", head + SETTINGS + unary(1, ix("GetContainer"), REQUESTS[ix("GetContainer")][0], [("grpc-timeout", "5S")]) +
          unary(3, ix("StartContainer"), REQUESTS[ix("StartContainer")][0], [("grpc-timeout", "bogus")]))
    # The largest timeout the spec allows (8 digits, hours) saturates to
    # UINT64_MAX ns; added to the start time it wrapped to a past deadline.
    write(t, "timeout-max", head + SETTINGS +
          unary(1, ix("GetContainer"), REQUESTS[ix("GetContainer")][0], [("grpc-timeout", "99999999H")]))
    write(t, "several-streams", head + SETTINGS + unary(1, ix("GetSystemInfo"), b"") + unary(3, ix("ListImages"), b"") +
          unary(5, ix("ListContainers"), REQUESTS[ix("ListContainers")][0]) + h2frame(6, 0, 0, b"12345678") +
          h2frame(8, 0, 0, struct.pack(">I", 65535)))
    up = REQUESTS[ix("UploadImage")][0]
    write(t, "upload-bidi", head + SETTINGS + h2frame(1, 4, 1, grpc_headers(METHODS[ix("UploadImage")])) +
          h2frame(0, 0, 1, grpc_msg(up)[:7]) + h2frame(0, 0, 1, grpc_msg(up)[7:] + grpc_msg(up)) +
          h2frame(8, 0, 1, struct.pack(">I", 1000)) + h2frame(0, 1, 1, b""))
    write(t, "rst", head + SETTINGS + h2frame(1, 4, 1, grpc_headers(METHODS[ix("StreamLogs")])) +
          h2frame(3, 0, 1, struct.pack(">I", 8)) + unary(3, ix("StreamLogs"), REQUESTS[ix("StreamLogs")][0]))
    write(t, "continuation", head + SETTINGS +
          h2frame(1, 0, 1, grpc_headers(METHODS[ix("GetContainer")])[:10]) +
          h2frame(9, 4, 1, grpc_headers(METHODS[ix("GetContainer")])[10:]) + h2frame(0, 1, 1, grpc_msg(b"")))
    write(t, "get-and-bad-ctype", head + SETTINGS +
          h2frame(1, 5, 1, b"\x82\x86" + hpack_literal(":path", METHODS[ix("GetSystemInfo")])) +
          h2frame(1, 5, 3, b"\x83\x86" + hpack_literal(":path", METHODS[ix("GetSystemInfo")]) +
                  hpack_literal("content-type", "text/plain")))
    write(t, "unknown-method", head + SETTINGS + unary(1, ix("CreateContainer"), b"")[:0] +
          h2frame(1, 4, 1, grpc_headers("/nope.Svc/Do")) + h2frame(0, 1, 1, grpc_msg(b"x")))
    write(t, "compressed-and-two", b"\x05\x02" + SETTINGS +
          h2frame(1, 4, 1, grpc_headers(METHODS[ix("GetContainer")])) +
          h2frame(0, 1, 1, grpc_msg(b"ab", 1)) +
          h2frame(1, 4, 3, grpc_headers(METHODS[ix("GetContainer")])) +
          h2frame(0, 1, 3, grpc_msg(REQUESTS[ix("GetContainer")][0]) * 2))
    write(t, "goaway-shutdown", b"\x05\x01" + SETTINGS + h2frame(1, 4, 1, grpc_headers(METHODS[ix("WatchEvents")])) +
          h2frame(0, 1, 1, grpc_msg(REQUESTS[ix("WatchEvents")][0])) + h2frame(7, 0, 0, struct.pack(">II", 1, 0)))
    write(t, "priority-padded", head + SETTINGS +
          h2frame(2, 0, 1, struct.pack(">IB", 0, 16)) +
          h2frame(1, 0x4 | 0x8 | 0x20, 1, b"\x02" + struct.pack(">IB", 0, 200) +
                  grpc_headers(METHODS[ix("GetSystemInfo")]) + b"\x00\x00") + h2frame(0, 1, 1, grpc_msg(b"")))


# ------------------------------------------------------------ setup specs
def setup_seeds():
    t = "fuzz_setup_spec"
    specs = [b"pip: flask==3.0.0 requests>=2,<3 uvicorn[standard]~=0.29",
             b"npm: typescript@5.4.0 @types/node@^20 x@latest",
             b"gem: rake rails:7.1.3 nokogiri:~>1.16",
             b"apt: curl=7.88.1-10+deb12u5 libssl3:amd64 curl/bookworm-backports",
             b"apk: curl=8.5.0-r0 python3>=3.11", b"sh: echo hi && ls /\n  pwd  ",
             b"npm: -g", b"pip: pkg @ http://x", b"apt: curl=7.88*", b"sh: \x01bad",
             b"  pip :flask", b"nope: x"]
    write(t, "all", b"\x00" + b"\x00".join(specs))
    cfg = [b"http://npm.local:4873/", b"https://pypi.local/simple", b"http://gems.local/",
           b"http://mirror:3142", b"http://apk.local/v3.19/main", b"http://proxy:3128",
           b"http://proxy:3128", b"localhost,.local,10.0.0.0/8"]
    write(t, "config", b"\xff" + b"\x00".join(cfg + specs[:6]))
    write(t, "bad-config", b"\x0a" + b"\x00".join([b"ftp://x", b"http://a b", b"pip: x"]))
    for i, s in enumerate(specs[:6]):
        write(t, "one-%d" % i, b"\x00" + s)


# ------------------------------------------------------------ mount specs
def mountspec_seeds():
    t = "fuzz_mountspec"
    mounts = [b"type=bind,source=/srv/data,target=/data,readonly",
              b"type=bind,src=/x,dst=/y,ro", b"type=tmpfs,target=/t,size=64m",
              b"type=tmpfs,destination=/t,tmpfs-size=1g", b"type=volume,source=cache,target=/c",
              b"type=volume,source=v,target=/v,readonly=true", b"type=bind,target=/x",
              b"type=nope,target=/x", b"source=/a", b"type=tmpfs,target=/t,size=12q", b""]
    for i, m in enumerate(mounts):
        write(t, "mount-%d" % i, b"\x00" + m)
    vols = [b"cache:/root/.cache", b"/srv/x:/x:ro", b"name:/p:rw", b"a:b", b":/x", b"/a:/b:zz",
            b"/only"]
    for i, v in enumerate(vols):
        write(t, "volume-%d" % i, b"\x01" + v)
    for i, z in enumerate([b"64m", b"1g", b"4096", b"512k", b"99999999999999999999g", b"-1"]):
        write(t, "size-%d" % i, b"\x02" + z)


# ------------------------------------------------------------ archives
def tar_bytes(entries, compress=None, fmt=tarfile.GNU_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for e in entries:
            ti = tarfile.TarInfo(e[0])
            ti.mtime = 1700000000
            ti.mode = 0o755 if e[1] == "dir" else 0o644
            data = None
            if e[1] == "dir":
                ti.type = tarfile.DIRTYPE
            elif e[1] == "file":
                data = e[2]
                ti.size = len(data)
            elif e[1] == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, e[2]
            elif e[1] == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, e[2]
            elif e[1] == "fifo":
                ti.type = tarfile.FIFOTYPE
            elif e[1] == "chr":
                ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    if compress == "gz":
        return gzip.compress(raw, mtime=0)
    return raw


def image_tar(kind):
    layer1 = tar_bytes([("bin/", "dir"), ("bin/sh", "file", b"#!x\n"), ("etc/", "dir"),
                        ("etc/passwd", "file", b"root:x:0:0::/:/bin/sh\n"), ("old", "file", b"1")])
    layer2 = tar_bytes([("etc/.wh.passwd", "file", b""), ("bin/.wh..wh..opq", "file", b""),
                        ("old/", "dir"), ("new", "symlink", "bin/sh")])
    config = json.dumps({"config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Entrypoint": ["/bin/x"],
                                    "WorkingDir": "/w", "User": "1:1"},
                         "architecture": "amd64", "os": "linux"}).encode()
    sha = lambda b: hashlib.sha256(b).hexdigest()
    if kind == "docker":
        manifest = json.dumps([{"Config": sha(config) + ".json", "RepoTags": ["app:1"],
                                "Layers": ["l1/layer.tar", "l2/layer.tar"]}]).encode()
        return tar_bytes([("manifest.json", "file", manifest),
                          (sha(config) + ".json", "file", config),
                          ("l1/", "dir"), ("l1/layer.tar", "file", layer1),
                          ("l2/", "dir"), ("l2/layer.tar", "file", layer2),
                          ("l3", "symlink", "l2")])
    blobs = {sha(b): b for b in (layer1, layer2, config)}
    mani = json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:" + sha(config),
                                                       "mediaType": "x", "size": len(config)},
                       "layers": [{"digest": "sha256:" + sha(layer1), "size": len(layer1)},
                                  {"digest": "sha256:" + sha(layer2), "size": len(layer2)}]}).encode()
    blobs[sha(mani)] = mani
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "digest": "sha256:" + sha(mani), "size": len(mani),
        "platform": {"architecture": "amd64", "os": "linux"},
        "annotations": {"org.opencontainers.image.ref.name": "1"}}]}).encode()
    ents = [("oci-layout", "file", b'{"imageLayoutVersion":"1.0.0"}'),
            ("index.json", "file", index), ("blobs/", "dir"), ("blobs/sha256/", "dir")]
    ents += [("blobs/sha256/" + k, "file", v) for k, v in blobs.items()]
    return tar_bytes(ents)


def extract_seeds():
    t = "fuzz_extract"
    rootfs = [("./", "dir"), ("bin/", "dir"), ("bin/busybox", "file", b"\x7fELF" + b"\0" * 60),
              ("bin/sh", "symlink", "busybox"), ("bin/ls", "hardlink", "bin/busybox"),
              ("etc/", "dir"), ("etc/hosts", "file", b"127.0.0.1 localhost\n"),
              ("tmp/fifo", "fifo")]
    write(t, "rootfs", b"\x00" + tar_bytes(rootfs))
    write(t, "rootfs-gz", b"\x00" + tar_bytes(rootfs, "gz"))
    write(t, "rootfs-pax", b"\x01" + tar_bytes(rootfs, fmt=tarfile.PAX_FORMAT))
    write(t, "dotdot", b"\x00" + tar_bytes([("a/", "dir"), ("a/../../etc/x", "file", b"x")]))
    write(t, "through-symlink", b"\x00" + tar_bytes([("a", "symlink", "/etc"),
                                                     ("a/passwd", "file", b"x")]))
    write(t, "hardlink-out", b"\x00" + tar_bytes([("h", "hardlink", "../../etc/passwd")]))
    write(t, "abs-symlink", b"\x00" + tar_bytes([("l", "symlink", "/"), ("d/", "dir"),
                                                 ("d", "file", b"conflict")]))
    write(t, "device", b"\x00" + tar_bytes([("dev/null", "chr")]))
    write(t, "docker", b"\x01" + image_tar("docker"))
    write(t, "oci", b"\x01" + image_tar("oci"))


framing_seeds()
http1_seeds()
h2_seeds()
proto_seeds()
setup_seeds()
mountspec_seeds()
extract_seeds()

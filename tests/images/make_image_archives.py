#!/usr/bin/python3
"""Builds the image archives tests/images/test_images.c imports: a
`docker save` archive and an OCI image layout of the same two-layer image
(whiteouts, an opaque directory, a file replaced by a directory and the
reverse, a config with Env/Entrypoint/Cmd/WorkingDir/User), and hostile
variants. Usage: make_image_archives.py OUTDIR"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

out = sys.argv[1]
MTIME = 1700000000


def tar_bytes(entries, fmt=tarfile.PAX_FORMAT):
    """entries: (name, kind, data/target); kind 'f', 'd', 'l' (symlink)."""
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=fmt) as t:
        for name, kind, val in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = MTIME
            if kind == "d":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            elif kind == "l":
                ti.type, ti.linkname = tarfile.SYMTYPE, val
                t.addfile(ti)
            elif kind == "z":  # val bytes of zeros
                ti.size, ti.mode = val, 0o644
                t.addfile(ti, ZeroReader(val))
            else:
                data = val.encode() if isinstance(val, str) else val
                ti.size, ti.mode = len(data), 0o644
                t.addfile(ti, io.BytesIO(data))
    return b.getvalue()


class ZeroReader:
    def __init__(self, n):
        self.n = n

    def read(self, k=-1):
        k = self.n if k < 0 else min(k, self.n)
        self.n -= k
        return b"\0" * k


LAYER1 = [
    ("bin", "d", None), ("bin/sh", "f", "#!shell\n"),
    ("etc", "d", None), ("etc/hostname", "f", "one\n"), ("etc/gone", "f", "bye\n"),
    ("gonedir", "d", None), ("gonedir/deep", "d", None), ("gonedir/deep/f", "f", "x"),
    ("opq", "d", None), ("opq/a", "f", "a"), ("opq/b", "f", "b"),
    ("opq/sub", "d", None), ("opq/sub/c", "f", "c"),
    ("repl", "f", "a file\n"),
    ("dirfile", "d", None), ("dirfile/x", "f", "x"),
    ("keep", "d", None), ("keep/k", "f", "k"),
]
LAYER2 = [
    ("etc", "d", None), ("etc/.wh.gone", "f", ""), ("etc/hostname", "f", "two\n"),
    (".wh.gonedir", "f", ""),
    ("opq", "d", None), ("opq/.wh..wh..opq", "f", ""), ("opq/new", "f", "new\n"),
    ("repl", "d", None), ("repl/inside", "f", "in\n"),
    ("dirfile", "f", "now a file\n"),
    ("keep", "d", None), ("keep/.wh.notthere", "f", ""),
]
CONFIG = {
    "architecture": "amd64", "os": "linux",
    "config": {
        "Env": ["PATH=/usr/bin:/bin", "FOO=bar baz", "MULTI=a\nb\\c"],
        "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"],
        "WorkingDir": "/work", "User": "1000:1000",
    },
    "rootfs": {"type": "layers", "diff_ids": []},
}


def sha(b):
    return hashlib.sha256(b).hexdigest()


def write(name, entries):
    with open(os.path.join(out, name), "wb") as f:
        f.write(tar_bytes(entries, tarfile.GNU_FORMAT))


def docker_save(name, layers, config=None, manifest=None, extra=(), layer_paths=None,
                tags=("example/app:v1", "localhost:5000/bad:tag")):
    """layers: list of layer tar bytes; manifest.json comes last, as docker does."""
    cfg = json.dumps(config if config is not None else CONFIG).encode()
    ents, paths = [], []
    for i, l in enumerate(layers):
        d = sha(l + bytes([i]))
        ents += [(d, "d", None), (d + "/VERSION", "f", "1.0"), (d + "/layer.tar", "f", l)]
        paths.append(d + "/layer.tar")
    ents += list(extra)
    ents.append((sha(cfg) + ".json", "f", cfg))
    ents.append(("repositories", "f", "{}"))
    m = manifest if manifest is not None else [{
        "Config": sha(cfg) + ".json", "RepoTags": list(tags),
        "Layers": layer_paths if layer_paths is not None else paths}]
    ents.append(("manifest.json", "f", m if isinstance(m, (str, bytes)) else json.dumps(m)))
    write(name, ents)
    return paths


def oci_layout(name, layers):
    blobs = []
    descs = []
    for l in layers:
        z = gzip.compress(l, mtime=0)
        blobs.append(z)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      "digest": "sha256:" + sha(z), "size": len(z)})
    cfg = json.dumps(CONFIG).encode()
    blobs.append(cfg)
    man = json.dumps({"schemaVersion": 2,
                      "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                 "digest": "sha256:" + sha(cfg), "size": len(cfg)},
                      "layers": descs}).encode()
    blobs.append(man)
    # An attestation-like manifest for another platform comes first.
    other = json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:" + "0" * 64},
                        "layers": []}).encode()
    blobs.append(other)
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": "sha256:" + sha(other), "size": len(other),
         "platform": {"os": "unknown", "architecture": "unknown"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": "sha256:" + sha(man), "size": len(man),
         "platform": {"os": "linux", "architecture": os.uname().machine.replace(
             "x86_64", "amd64").replace("aarch64", "arm64")}}]}
    ents = [("oci-layout", "f", '{"imageLayoutVersion": "1.0.0"}'), ("blobs", "d", None),
            ("blobs/sha256", "d", None)]
    for b in blobs:
        ents.append(("blobs/sha256/" + sha(b), "f", b))
    ents.append(("index.json", "f", json.dumps(index)))
    write(name, ents)


l1, l2 = tar_bytes(LAYER1), tar_bytes(LAYER2)
# The second layer through a symlink of the outer archive, as old docker does.
paths = docker_save("docker.tar", [l1, l2])
docker_save("docker-symlink.tar", [l1, l2],
            extra=[("aaaa", "d", None), ("aaaa/layer.tar", "l", "../" + paths[1])],
            layer_paths=[paths[0], "aaaa/layer.tar"])
oci_layout("oci.tar", [l1, l2])

# Whiteouts through symlinks of an earlier layer remove nothing outside.
docker_save("wh-symlink.tar", [
    tar_bytes([("up", "l", "/"), ("etc", "l", "/etc"), ("f", "f", "f")]),
    tar_bytes([("up/.wh.rootfs", "f", ""), ("etc/.wh.passwd", "f", ""),
               ("up/.wh..wh..opq", "f", "")])])

# Hostile.
docker_save("h-dotdot.tar", [tar_bytes([("ok", "f", "ok"), ("../x", "f", "x")])])
docker_save("h-wh-dotdot.tar", [l1, tar_bytes([("../../etc/.wh.passwd", "f", "")])])
docker_save("h-through-symlink.tar", [tar_bytes([("lnk", "l", "/etc")]),
                                      tar_bytes([("lnk/passwd", "f", "pwned\n")])])
docker_save("h-layer-dotdot.tar", [l1], layer_paths=["../../etc/passwd"])
docker_save("h-layer-abs.tar", [l1], layer_paths=["/etc/passwd"])
docker_save("h-layer-missing.tar", [l1], layer_paths=["deadbeef/layer.tar"])
docker_save("h-layer-outlink.tar", [l1], extra=[("bbbb", "d", None),
            ("bbbb/layer.tar", "l", "../../../../etc/passwd")],
            layer_paths=["bbbb/layer.tar"])
docker_save("h-not-tar.tar", [b"this is not a tar archive\n" * 100])
docker_save("h-not-json.tar", [l1], manifest="[{\"Config\": nope")
# 2 x 40 MiB of zeros, compressed: over a 64 MiB limit only together.
big1 = gzip.compress(tar_bytes([("zero1", "z", 40 << 20)]), 1)
big2 = gzip.compress(tar_bytes([("zero2", "z", 40 << 20)]), 1)
docker_save("h-huge.tar", [big1, big2])

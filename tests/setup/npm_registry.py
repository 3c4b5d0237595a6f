#!/usr/bin/python3
"""A static npm registry on loopback for the setup tests: no internet, no
verdaccio, only the standard library.

    npm_registry.py [--host 127.0.0.1] [--port 0] [--port-file F] [--log F]
                    [--package NAME@VERSION ...] [--dir DIR ...]

Packages come from two places:
  --package NAME@VERSION   generated: package.json, index.js exporting
                           {name, version}, and a bin named after the
                           package (the part after the scope) printing
                           "NAME VERSION". Scoped names work: @quilt/hello@1.0.0.
  --dir DIR                every directory under DIR holding a package.json
                           is packed as it is (its name and version are read
                           from that package.json). Several versions of one
                           package may sit side by side.
Tarballs are built at start, in memory, reproducibly (mtime 0, sorted).

Served:
  GET /NAME, /@SCOPE/NAME, /@SCOPE%2fNAME   the packument (all versions,
      dist-tags.latest = the highest version), tarball URLs built from the
      request's Host header, so the registry is usable through any address
      it listens on (a container on a bridge reaches it by the host's IP)
  GET /NAME/-/BASENAME-VERSION.tgz          the tarball
  GET /-/ping                               {}
  anything else: 404 with {"error": "Not found"} (npm: E404)

The chosen port is printed on stdout as "PORT\n" (and written to
--port-file, atomically, when given) once the socket listens; --log appends
one line per request, "METHOD PATH STATUS", so a test can tell whether a
second container reached the registry at all. SIGTERM or SIGINT stops it.
"""
import argparse
import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import re
import signal
import sys
import tarfile
import threading
import urllib.parse

NAME_RE = re.compile(r"^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$")


def version_key(v):
    """Orders 1.2.10 after 1.2.9; pre-releases before their release."""
    main, _, pre = v.partition("-")
    nums = [int(x) if x.isdigit() else 0 for x in main.split(".")]
    return (nums, pre == "", pre)


def generated_files(name, version):
    """A package that proves it was installed: a bin and a module."""
    short = name.split("/")[-1]
    pkg = {
        "name": name,
        "version": version,
        "description": "quilt setup test package",
        "main": "index.js",
        "bin": {short: "bin/cli.js"},
        "license": "MIT",
    }
    index = "module.exports = { name: %s, version: %s };\n" % (
        json.dumps(name), json.dumps(version))
    cli = "#!/usr/bin/env node\nconsole.log(%s);\n" % json.dumps("%s %s" % (name, version))
    return {
        "package.json": (json.dumps(pkg, indent=2) + "\n").encode(),
        "index.js": index.encode(),
        "bin/cli.js": cli.encode(),
    }, pkg


def pack(files):
    """A .tgz of files (rel path -> bytes, or (bytes, mode)) under package/."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for rel in sorted(files):
            data = files[rel]
            mode = 0o755 if rel.startswith("bin/") else 0o644
            if isinstance(data, tuple):
                data, mode = data
            info = tarfile.TarInfo("package/" + rel)
            info.size = len(data)
            info.mode = mode
            info.mtime = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    # mtime=0: the same files give the same bytes, hence the same integrity.
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def dir_files(root):
    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "node_modules")
        for fn in filenames:
            full = os.path.join(dirpath, fn)
            rel = os.path.relpath(full, root)
            with open(full, "rb") as f:
                files[rel] = (f.read(), os.stat(full).st_mode & 0o777)
    return files


class Registry:
    def __init__(self):
        self.packages = {}   # name -> {version: (manifest, tarball bytes)}

    def add(self, manifest, files):
        name, version = manifest["name"], manifest["version"]
        if not NAME_RE.match(name):
            raise SystemExit("npm_registry: bad package name %r" % name)
        self.packages.setdefault(name, {})[version] = (manifest, pack(files))

    def add_generated(self, spec):
        at = spec.rfind("@")
        if at <= 0:
            raise SystemExit("npm_registry: --package wants NAME@VERSION, got %r" % spec)
        name, version = spec[:at], spec[at + 1:]
        files, manifest = generated_files(name, version)
        self.add(manifest, files)

    def add_dir(self, top):
        found = False
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d != "node_modules")
            if "package.json" in filenames:
                with open(os.path.join(dirpath, "package.json")) as f:
                    manifest = json.load(f)
                self.add(manifest, dir_files(dirpath))
                dirnames[:] = []
                found = True
        if not found:
            raise SystemExit("npm_registry: no package.json under %s" % top)

    def packument(self, name, base):
        versions = {}
        short = name.split("/")[-1]
        for version, (manifest, tgz) in self.packages[name].items():
            m = dict(manifest)
            m["_id"] = "%s@%s" % (name, version)
            m["dist"] = {
                "tarball": "%s/%s/-/%s-%s.tgz" % (base, name, short, version),
                "shasum": hashlib.sha1(tgz).hexdigest(),
                "integrity": "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode(),
            }
            versions[version] = m
        latest = max(versions, key=version_key)
        return {"_id": name, "name": name, "dist-tags": {"latest": latest},
                "versions": versions}

    def tarball(self, name, filename):
        short = name.split("/")[-1]
        for version, (_, tgz) in self.packages.get(name, {}).items():
            if filename == "%s-%s.tgz" % (short, version):
                return tgz
        return None


def make_handler(registry, log_path):
    log_lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):   # stderr stays quiet; see --log
            pass

        def record(self, status):
            if log_path:
                with log_lock, open(log_path, "a") as f:
                    f.write("%s %s %d\n" % (self.command, self.path, status))

        def reply(self, status, body, ctype):
            self.record(status)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def json(self, status, obj):
            self.reply(status, json.dumps(obj).encode(), "application/json")

        def do_GET(self):
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            if path == "/-/ping":
                return self.json(200, {})
            parts = path.strip("/").split("/")
            if parts and parts[0].startswith("@") and len(parts) >= 2:
                parts = ["/".join(parts[:2])] + parts[2:]
            name = parts[0] if parts else ""
            if len(parts) == 1 and name in registry.packages:
                host = self.headers.get("Host") or "%s:%d" % self.server.server_address[:2]
                return self.json(200, registry.packument(name, "http://" + host))
            if len(parts) == 3 and parts[1] == "-":
                tgz = registry.tarball(name, parts[2])
                if tgz is not None:
                    return self.reply(200, tgz, "application/octet-stream")
            self.json(404, {"error": "Not found"})

        do_HEAD = do_GET

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--package", action="append", default=[])
    ap.add_argument("--dir", action="append", default=[])
    args = ap.parse_args()
    registry = Registry()
    for spec in args.package:
        registry.add_generated(spec)
    for d in args.dir:
        registry.add_dir(d)
    if not registry.packages:
        ap.error("no packages: give --package NAME@VERSION or --dir DIR")

    server = http.server.ThreadingHTTPServer((args.host, args.port),
                                             make_handler(registry, args.log))
    server.daemon_threads = True
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    print(port, flush=True)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""A PEP 503 simple index on loopback for the setup tests, serving pure-Python
wheels it builds itself: no internet, no build tools, only the standard
library.

    pypi_index.py [--host 127.0.0.1] [--port 0] [--port-file F] [--log F]
                  [--package NAME==VERSION ...] [--wheel FILE ...]

  --package NAME==VERSION  a wheel MODULE-VERSION-py3-none-any.whl holding
                           the module MODULE.py (MODULE: NAME in lower case,
                           runs of - _ . as one '_') with VERSION and main()
                           printing "NAME VERSION", and a console script
                           NAME running it, so `NAME` works once pip
                           installed it. Repeat for more versions.
  --wheel FILE             serve an existing wheel (or sdist) as well; its
                           project is taken from the file name.

Served (names normalized as PEP 503 says: lower case, runs of -_. as -):
  GET /simple/               an index of every project
  GET /simple/NAME/          the project's files, each link ending in
                             #sha256=DIGEST, which pip verifies
  GET /files/FILENAME        the file
  anything else: 404 (pip: "No matching distribution found")

The port is printed on stdout as "PORT\n" (and written to --port-file)
once the socket listens; --log appends "METHOD PATH STATUS" per request.
SIGTERM or SIGINT stops it. Point pip at http://HOST:PORT/simple (plain
http needs --trusted-host HOST:PORT, which quilt's setup script adds).
"""
import argparse
import base64
import hashlib
import html
import http.server
import io
import os
import re
import signal
import sys
import threading
import urllib.parse
import zipfile


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def record_hash(data):
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def build_wheel(name, version):
    """The bytes and file name of a minimal, valid pure-Python wheel."""
    module = dist = normalize(name).replace("-", "_")
    info = "%s-%s.dist-info" % (dist, version)
    files = {
        module + ".py": (
            '"""quilt setup test package."""\n'
            "VERSION = %r\n\n\n"
            "def main():\n"
            "    print(%r)\n" % (version, "%s %s" % (name, version))).encode(),
        info + "/METADATA": (
            "Metadata-Version: 2.1\n"
            "Name: %s\n"
            "Version: %s\n"
            "Summary: quilt setup test package\n" % (name, version)).encode(),
        info + "/WHEEL": (
            "Wheel-Version: 1.0\n"
            "Generator: quilt-pypi-index\n"
            "Root-Is-Purelib: true\n"
            "Tag: py3-none-any\n").encode(),
        info + "/entry_points.txt": (
            "[console_scripts]\n"
            "%s = %s:main\n" % (name, module)).encode(),
        info + "/top_level.txt": (module + "\n").encode(),
    }
    record = "".join("%s,%s,%d\n" % (path, record_hash(data), len(data))
                     for path, data in sorted(files.items()))
    record += info + "/RECORD,,\n"
    files[info + "/RECORD"] = record.encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(files):   # fixed order and dates: same bytes each run
            zi = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, files[path])
    return "%s-%s-py3-none-any.whl" % (dist, version), out.getvalue()


def project_of(filename):
    """The project a wheel or sdist file name belongs to (PEP 427/625)."""
    base = os.path.basename(filename)
    if base.endswith(".whl"):
        return normalize(base.split("-")[0])
    m = re.match(r"^(.+)-[0-9][^-]*\.(tar\.gz|zip)$", base)
    if not m:
        raise SystemExit("pypi_index: cannot tell the project of %s" % base)
    return normalize(m.group(1))


class Index:
    def __init__(self):
        self.projects = {}   # normalized name -> {filename: bytes}

    def add(self, project, filename, data):
        self.projects.setdefault(project, {})[filename] = data

    def page(self, title, links):
        body = "".join('    <a href="%s">%s</a><br/>\n' % (html.escape(href), html.escape(text))
                       for href, text in links)
        return ("<!DOCTYPE html>\n<html>\n  <head><meta name=\"pypi:repository-version\" "
                "content=\"1.0\"><title>%s</title></head>\n  <body>\n%s  </body>\n</html>\n"
                % (html.escape(title), body)).encode()

    def root_page(self):
        return self.page("Simple index", [("%s/" % p, p) for p in sorted(self.projects)])

    def project_page(self, project):
        links = [("../../files/%s#sha256=%s" % (fn, hashlib.sha256(data).hexdigest()), fn)
                 for fn, data in sorted(self.projects[project].items())]
        return self.page("Links for %s" % project, links)

    def file(self, filename):
        for files in self.projects.values():
            if filename in files:
                return files[filename]
        return None


def make_handler(index, log_path):
    log_lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):   # quiet; see --log
            pass

        def reply(self, status, body, ctype):
            if log_path:
                with log_lock, open(log_path, "a") as f:
                    f.write("%s %s %d\n" % (self.command, self.path, status))
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self):
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            parts = [p for p in path.split("/") if p]
            if parts == ["simple"]:
                if not path.endswith("/"):   # as PyPI does: the canonical URL
                    return self.redirect("/simple/")
                return self.reply(200, index.root_page(), "text/html")
            if len(parts) == 2 and parts[0] == "simple":
                project = normalize(parts[1])
                if project in index.projects:
                    if parts[1] != project or not path.endswith("/"):
                        return self.redirect("/simple/%s/" % project)
                    return self.reply(200, index.project_page(project), "text/html")
            if len(parts) == 2 and parts[0] == "files":
                data = index.file(parts[1])
                if data is not None:
                    return self.reply(200, data, "application/octet-stream")
            self.reply(404, b"Not Found\n", "text/plain")

        def redirect(self, location):
            if log_path:
                with log_lock, open(log_path, "a") as f:
                    f.write("%s %s 301\n" % (self.command, self.path))
            self.send_response(301)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--package", action="append", default=[])
    ap.add_argument("--wheel", action="append", default=[])
    args = ap.parse_args()
    index = Index()
    for spec in args.package:
        name, sep, version = spec.partition("==")
        if not sep or not re.match(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$", name) \
                or not re.match(r"^[0-9][A-Za-z0-9.+!]*$", version):
            ap.error("--package wants NAME==VERSION, got %r" % spec)
        filename, data = build_wheel(name, version)
        index.add(normalize(name), filename, data)
    for path in args.wheel:
        with open(path, "rb") as f:
            index.add(project_of(path), os.path.basename(path), f.read())
    if not index.projects:
        ap.error("no packages: give --package NAME==VERSION or --wheel FILE")

    server = http.server.ThreadingHTTPServer((args.host, args.port),
                                             make_handler(index, args.log))
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

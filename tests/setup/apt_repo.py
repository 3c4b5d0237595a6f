#!/usr/bin/python3
"""A static Debian repository on loopback, for the apt setup tests.

    apt_repo.py --package quilt-hello-deb=1.0 [--stub-pip] [--suite bookworm]
        [--prefix /debian] [--host 127.0.0.1] [--port 0] [--port-file F] [--log F]

Builds its packages with dpkg-deb in a temporary directory and serves them
in Debian's layout under PREFIX (default /debian, so that quilt's apt_mirror,
which replaces only the scheme and host of http://deb.debian.org/debian,
lands here):

    PREFIX/dists/SUITE/Release                         unsigned
    PREFIX/dists/SUITE/main/binary-amd64/Packages{,.gz}
    PREFIX/pool/main/N/NAME/NAME_VERSION_all.deb

--package NAME=VERSION   a package holding /usr/bin/NAME, a script printing
                         "NAME VERSION"; no dependencies, no maintainer
                         scripts (repeatable).
--stub-pip               a package named python3-pip, what quilt's setup
                         script installs with apt-get when a pip step finds
                         no pip: /usr/bin/python3, a shell script answering
                         `python3 -m pip --version` and, for
                         `python3 -m pip install ... PKG...`, writing
                         /usr/local/bin/PKG printing "PKG (stub pip)".

The Release is unsigned: the image's source must say [trusted=yes]
(tests/setup/make_image.sh's debian.tar does). InRelease and Release.gpg are
404s, which apt accepts for a trusted source. The port goes to stdout and,
atomically, to --port-file once listening; --log gets one line per request
("GET /debian/dists/bookworm/Release 200"). SIGTERM/SIGINT stop it.
"""
import argparse
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import static_server  # tests/setup/static_server.py, next to this script

STUB_PYTHON3 = r"""#!/bin/sh
# python3-pip stub from tests/setup/apt_repo.py: only `-m pip`.
[ "$1" = -m ] && [ "$2" = pip ] || { echo "stub python3: only -m pip" >&2; exit 2; }
shift 2
case $1 in
  --version) echo "pip 0.0 from /usr/bin/python3 (quilt stub)"; exit 0 ;;
  install) ;;
  *) echo "stub pip: unknown command $1" >&2; exit 2 ;;
esac
shift
while [ $# -gt 0 ]; do
  case $1 in
    --index-url | --trusted-host) shift 2 ;;
    -*) shift ;;
    *) printf '#!/bin/sh\necho "%s (stub pip)"\n' "$1" > "/usr/local/bin/$1"
       chmod 755 "/usr/local/bin/$1"
       echo "stub pip: installed $1"
       shift ;;
  esac
done
"""


def build_deb(work, name, version, files, description):
    """files: {path in the package: (mode, text)}. Returns the .deb path."""
    root = os.path.join(work, "%s-%s" % (name, version))
    os.makedirs(os.path.join(root, "DEBIAN"))
    size = 0
    for path, (mode, text) in files.items():
        full = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
        os.chmod(full, mode)
        size += len(text)
    with open(os.path.join(root, "DEBIAN", "control"), "w") as f:
        f.write("Package: %s\nVersion: %s\nArchitecture: all\n"
                "Maintainer: Quilt tests <quilt@invalid>\nInstalled-Size: %d\n"
                "Section: misc\nPriority: optional\nDescription: %s\n"
                % (name, version, max(1, size // 1024), description))
    deb = os.path.join(work, "%s_%s_all.deb" % (name, version))
    env = dict(os.environ, SOURCE_DATE_EPOCH="0")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, deb],
                   check=True, stdout=subprocess.DEVNULL, env=env)
    return deb


def control_of(deb):
    return subprocess.run(["dpkg-deb", "-f", deb], check=True, capture_output=True,
                          text=True).stdout.rstrip("\n")


def build_repo(top, prefix, suite, debs):
    """Lays the debs out under top/prefix; returns nothing."""
    base = os.path.join(top, prefix.strip("/"))
    entries = []
    for deb in debs:
        name = os.path.basename(deb).split("_")[0]
        rel = "pool/main/%s/%s/%s" % (name[0], name, os.path.basename(deb))
        os.makedirs(os.path.join(base, os.path.dirname(rel)), exist_ok=True)
        shutil.copy(deb, os.path.join(base, rel))
        data = open(deb, "rb").read()
        entries.append("%s\nFilename: %s\nSize: %d\nSHA256: %s\n"
                       % (control_of(deb), rel, len(data), hashlib.sha256(data).hexdigest()))
    packages = "\n".join(entries).encode()
    bdir = os.path.join(base, "dists", suite, "main", "binary-amd64")
    os.makedirs(bdir)
    with open(os.path.join(bdir, "Packages"), "wb") as f:
        f.write(packages)
    gz = gzip.compress(packages, mtime=0)
    with open(os.path.join(bdir, "Packages.gz"), "wb") as f:
        f.write(gz)
    sums = "".join(" %s %d main/binary-amd64/%s\n" % (hashlib.sha256(b).hexdigest(), len(b), n)
                   for n, b in (("Packages", packages), ("Packages.gz", gz)))
    date = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(time.time() - 60))
    with open(os.path.join(base, "dists", suite, "Release"), "w") as f:
        f.write("Origin: Quilt tests\nLabel: Quilt tests\nSuite: %s\nCodename: %s\n"
                "Date: %s\nArchitectures: amd64 all\nComponents: main\n"
                "Description: quilt setup test repository\nSHA256:\n%s"
                % (suite, suite, date, sums))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--package", action="append", default=[], metavar="NAME=VERSION")
    ap.add_argument("--stub-pip", action="store_true")
    ap.add_argument("--suite", default="bookworm")
    ap.add_argument("--prefix", default="/debian")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="quilt-apt-repo-")
    try:
        debs = []
        for spec in a.package:
            name, sep, version = spec.partition("=")
            if not sep or not name or not version:
                ap.error("--package wants NAME=VERSION, not %r" % spec)
            script = '#!/bin/sh\necho "%s %s"\n' % (name, version)
            debs.append(build_deb(work, name, version, {"/usr/bin/" + name: (0o755, script)},
                                  "quilt setup test package"))
        if a.stub_pip:
            debs.append(build_deb(work, "python3-pip", "0.0-quilt",
                                  {"/usr/bin/python3": (0o755, STUB_PYTHON3)},
                                  "stand-in for pip (quilt setup tests)"))
        top = os.path.join(work, "www")
        build_repo(top, a.prefix, a.suite, debs)
        static_server.serve(top, a.host, a.port, a.port_file, a.log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""A RubyGems source on loopback, for the gem setup tests.

    gem_source.py --gem quilt_hello=1.0.0 [--host 127.0.0.1] [--port 0]
        [--port-file F] [--log F]

Builds each gem with the host's `gem build` in a temporary directory
(lib/NAME.rb defining NAME_VERSION, an executable bin/NAME printing
"NAME VERSION"), indexes them with `gem generate_index` (specs.4.8.gz,
latest_specs, prerelease_specs, quick/Marshal.4.8/*.gemspec.rz, gems/) and
serves that directory: what `gem install --clear-sources --source URL`
reads. Anything else is a 404.

The port goes to stdout and, atomically, to --port-file once listening;
--log gets one line per request ("GET /gems/quilt_hello-1.0.0.gem 200").
SIGTERM/SIGINT stop it. Needs ruby (gem) on the host.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import static_server  # tests/setup/static_server.py, next to this script

GEMSPEC = """Gem::Specification.new do |s|
  s.name = %(name)r
  s.version = %(version)r
  s.summary = "quilt setup test gem"
  s.authors = ["Quilt tests"]
  s.license = "MIT"
  s.files = ["lib/%(name)s.rb", "bin/%(name)s"]
  s.executables = [%(name)r]
  s.bindir = "bin"
end
"""


def build_gem(work, name, version):
    src = os.path.join(work, "src-%s-%s" % (name, version))
    os.makedirs(os.path.join(src, "lib"))
    os.makedirs(os.path.join(src, "bin"))
    const = "".join(p.capitalize() for p in name.split("_"))
    with open(os.path.join(src, "lib", name + ".rb"), "w") as f:
        f.write("module %s\n  VERSION = %r\nend\n" % (const, version))
    with open(os.path.join(src, "bin", name), "w") as f:
        f.write("#!/usr/bin/env ruby\nrequire %r\nputs \"%s #{%s::VERSION}\"\n"
                % (name, name, const))
    os.chmod(os.path.join(src, "bin", name), 0o755)
    with open(os.path.join(src, name + ".gemspec"), "w") as f:
        f.write(GEMSPEC % {"name": name, "version": version})
    env = dict(os.environ, SOURCE_DATE_EPOCH="0", HOME=work)
    subprocess.run(["gem", "build", name + ".gemspec"], cwd=src, check=True,
                   stdout=subprocess.DEVNULL, env=env)
    return os.path.join(src, "%s-%s.gem" % (name, version))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gem", action="append", default=[], metavar="NAME=VERSION")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="quilt-gem-source-")
    try:
        top = os.path.join(work, "www")
        os.makedirs(os.path.join(top, "gems"))
        for spec in a.gem:
            name, sep, version = spec.partition("=")
            if not sep or not name or not version:
                ap.error("--gem wants NAME=VERSION, not %r" % spec)
            shutil.copy(build_gem(work, name, version), os.path.join(top, "gems"))
        subprocess.run(["gem", "generate_index", "--directory", top], check=True,
                       stdout=subprocess.DEVNULL, env=dict(os.environ, HOME=work))
        static_server.serve(top, a.host, a.port, a.port_file, a.log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

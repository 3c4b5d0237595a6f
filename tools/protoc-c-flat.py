#!/usr/bin/env python3
"""Run protoc-c on one .proto and write its .pb-c.{c,h} flat into OUTDIR.

protoc-c names outputs after the proto's path (grpc/health/v1/health.pb-c.c);
meson wants outputs directly in the target's directory, so we generate into a
scratch directory, move the files up and fix the generated #include.
usage: protoc-c-flat.py PROTOC_C PROTO_ROOT REL_PROTO OUTDIR
"""
import os
import shutil
import subprocess
import sys
import tempfile

protoc, root, rel, outdir = sys.argv[1:5]
stem = rel[:-len('.proto')]
base = os.path.basename(stem)
with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([protoc, '-I' + root, '--c_out=' + tmp, os.path.join(root, rel)], check=True)
    for ext in ('.pb-c.c', '.pb-c.h'):
        with open(os.path.join(tmp, stem + ext)) as f:
            text = f.read()
        text = text.replace('#include "%s.pb-c.h"' % stem, '#include "%s.pb-c.h"' % base)
        with open(os.path.join(outdir, base + ext), 'w') as f:
            f.write(text)

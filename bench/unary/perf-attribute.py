#!/usr/bin/env python3
"""Attributes a `perf record --call-graph dwarf` profile of quiltd to quiltd's
own functions.

Usage: perf script -i perf.data | perf-attribute.py --binary quiltd --src DIR [--top N]

For every sample the innermost frame that lies in the quiltd binary names the
function charged with it ("own + callees outside quiltd": the libc, nghttp2,
protobuf-c and kernel work it asked for, but not other quiltd functions). That
is where a change in quiltd's source would save the time. Also printed: the
inclusive share of each quiltd function, and, per hot function, the leaf
symbols that burn its time.
"""
import argparse
import collections
import os
import re
import sys

FRAME = re.compile(r"^\s*([0-9a-f]+)\s+(.+?)\s+\((.*)\)\s*$")


def samples(stream):
    cur = None
    for line in stream:
        if not line.strip():
            if cur:
                yield cur
            cur = None
            continue
        if not line.startswith((" ", "\t")):
            cur = []
            continue
        m = FRAME.match(line)
        if m is not None and cur is not None:
            sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(2))
            cur.append((sym, m.group(3)))
    if cur:
        yield cur


def dso_class(dso, binary):
    base = os.path.basename(dso)
    if dso == binary or base == os.path.basename(binary):
        return "quiltd"
    if "kernel" in dso:
        return "kernel"
    for k in ("nghttp2", "protobuf-c", "uring", "libc.so", "vdso", "libm"):
        if k in base:
            return {"libc.so": "libc"}.get(k, k)
    return base or "?"


def find_defs(src):
    """function name -> 'path' of its definition in the source tree."""
    defs = {}
    pat = re.compile(r"^(?:static\s+)?(?:inline\s+)?[A-Za-z_][\w\s\*]*?\b(\w+)\(")
    for root, _, files in os.walk(os.path.join(src, "src")):
        for f in files:
            if not f.endswith(".c"):
                continue
            path = os.path.join(root, f)
            with open(path, errors="replace") as fh:
                for line in fh:
                    m = pat.match(line)
                    if m and not line.rstrip().endswith(";"):
                        defs.setdefault(m.group(1), os.path.relpath(path, src))
    return defs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--top", type=int, default=15)
    a = ap.parse_args()
    defs = find_defs(a.src)

    total = 0
    by_class = collections.Counter()
    charged = collections.Counter()
    inclusive = collections.Counter()
    leaves = collections.defaultdict(collections.Counter)
    for frames in samples(sys.stdin):
        if not frames:
            continue
        total += 1
        # An inlined frame belongs to the object of the next real frame out.
        classes = [None] * len(frames)
        nxt = "?"
        for i in range(len(frames) - 1, -1, -1):
            if frames[i][1] != "inlined":
                nxt = dso_class(frames[i][1], a.binary)
            classes[i] = nxt
        frames = [(sym, cls) for (sym, _), cls in zip(frames, classes)]
        leaf_sym, leaf_cls = frames[0]
        by_class[leaf_cls] += 1
        owner = None
        seen = set()
        for sym, cls in frames:
            if cls != "quiltd":
                continue
            if owner is None:
                owner = sym
            if sym not in seen:
                inclusive[sym] += 1
                seen.add(sym)
        owner = owner or "(outside quiltd: " + leaf_cls + ")"
        charged[owner] += 1
        leaf = leaf_sym if leaf_sym != "[unknown]" else f"[{leaf_cls} internal]"
        leaves[owner][f"{leaf} ({leaf_cls})"] += 1
    if not total:
        print("no samples", file=sys.stderr)
        return 1

    pct = lambda n: 100.0 * n / total
    print(f"{total} samples of quiltd")
    print("\nwhere the CPU time lands (leaf frame): "
          + ", ".join(f"{k} {pct(v):.1f}%" for k, v in by_class.most_common()))
    print("\nquiltd functions charged with their own time plus the library/kernel work"
          "\nthey call directly (not other quiltd functions):")
    print(f"  {'self+lib %':>10} {'incl %':>7}  function (file)")
    for fn, n in charged.most_common(a.top):
        where = defs.get(fn, "")
        print(f"  {pct(n):>9.1f}% {pct(inclusive.get(fn, 0)):>6.1f}%  {fn}"
              + (f" ({where})" if where else ""))
        for leaf, ln in leaves[fn].most_common(4):
            print(f"  {'':>10} {'':>7}     {pct(ln):4.1f}% {leaf}")
    print("\ninclusive share of quiltd's entry points and hot paths:")
    for fn, n in inclusive.most_common(a.top):
        print(f"  {pct(n):>6.1f}%  {fn}" + (f" ({defs[fn]})" if fn in defs else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

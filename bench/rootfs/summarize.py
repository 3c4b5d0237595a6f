#!/usr/bin/env python3
"""Turns one bench/rootfs/run's raw times into JSON and a table.

Usage: summarize.py GLOBAL_ENV RAW_FILE OUT_JSON [--strict=0|1]

RAW_FILE (written by rootfs_bench) has one line per iteration,
"mode iter mkdir_ns prepare_ns mount_ns umount_ns release_ns rmdir_ns
total_ns", and "# key=value" notes. Exit 3 under --strict=1 when the
target (overlay rootfs_prepare p50 under 1 ms) is missed.
"""
import os
import json
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchlib import pct, read_env  # noqa: E402

STEPS = ["mkdir", "prepare", "mount", "umount", "release", "rmdir"]
TARGET_US = 1000.0  # issue 4: preparing a container's rootfs, p50


def stats(vals_us):
    s = sorted(vals_us)
    return {
        "n": len(s),
        "p50_us": round(pct(s, 50), 1),
        "p90_us": round(pct(s, 90), 1),
        "p99_us": round(pct(s, 99), 1),
        "mean_us": round(sum(s) / len(s), 1),
        "min_us": round(s[0], 1),
        "max_us": round(s[-1], 1),
    }


def read_raw(path):
    rows, notes = {}, {}
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                k, _, v = line[1:].strip().partition("=")
                notes[k] = int(v) if v.isdigit() else v
                continue
            parts = line.split()
            ns = [int(x) for x in parts[2:]]
            rows.setdefault(parts[0], []).append(ns)
    return rows, notes


def summarize(rows):
    out = {}
    for i, step in enumerate(STEPS + ["total"]):
        out[step] = stats([r[i] / 1000.0 for r in rows])
    # From nothing to a mounted root: what a container start waits for.
    out["ready"] = stats([(r[0] + r[1] + r[2]) / 1000.0 for r in rows])
    return out


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    genv, raw, out = sys.argv[1:4]
    strict = "--strict=1" in sys.argv[4:]
    env = read_env(genv)
    rows, notes = read_raw(raw)
    series = {mode: summarize(r) for mode, r in rows.items()}
    target = None
    if "overlay" in series:
        p50 = series["overlay"]["prepare"]["p50_us"]
        target = {"what": "overlay rootfs_prepare p50 under 1 ms", "limit_us": TARGET_US,
                  "p50_us": p50, "met": p50 < TARGET_US}
    doc = {"bench": "rootfs", "env": env, "image": notes, "series": series, "target": target}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")

    print(f"rootfs preparation, image {env.get('image')} ({notes.get('image_files', '?')} files, "
          f"{notes.get('image_symlinks', '?')} symlinks, {notes.get('image_dirs', '?')} dirs), "
          f"containers on {env.get('work_fs', '?').split()[0]}; copy driver: "
          f"{notes.get('copy_driver', '-')}")
    cols = STEPS + ["total", "ready"]
    print(f"{'mode':8} {'pct':4} " + " ".join(f"{c:>9}" for c in cols) + "   (us)")
    for mode, s in series.items():
        for p in ("p50", "p90", "p99"):
            print(f"{mode:8} {p:4} " + " ".join(f"{s[c][p + '_us']:9.1f}" for c in cols))
    if target:
        print(f"target: overlay rootfs_prepare p50 {target['p50_us']:.1f} us "
              f"(< {TARGET_US:.0f} us): {'met' if target['met'] else 'MISSED'}")
    print(f"wrote {out}")
    if strict and target and not target["met"]:
        sys.exit(3)


if __name__ == "__main__":
    main()

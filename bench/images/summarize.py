#!/usr/bin/env python3
"""Summarizes bench/images/run: per format, quilt import vs tar + sync."""
import os
import json
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchlib import read_env  # noqa: E402

TARGET_RATIO = 1.2
TARGET_CACHED_S = 0.010


def main():
    env_path, raw, out, kind, plain_bytes = sys.argv[1:6]
    rootfs_json = sys.argv[6] if len(sys.argv) > 6 else ""
    env = read_env(env_path)
    rows = {}
    with open(raw) as f:
        for line in f:
            fmt, _n, q, t, c = line.split()
            r = rows.setdefault(fmt, {"quilt_s": [], "tar_sync_s": [], "cached_s": []})
            r["quilt_s"].append(float(q))
            r["tar_sync_s"].append(float(t))
            r["cached_s"].append(float(c))
    result = {
        "benchmark": "images",
        "what": "ImportImage RPC (quilt-cli import FILE into a fresh quiltd) vs "
                "`tar -x -f FILE && sync`, interleaved; then the cached re-import",
        "date": env.get("date"), "host": env.get("host"),
        "machine": {"nproc": env.get("nproc"), "kernel": env.get("kernel"),
                    "cpu_model": env.get("cpu_model")},
        "git": {"commit": env.get("git_commit"), "dirty": env.get("git_dirty") == "true"},
        "image": {"kind": kind, "tar_bytes": int(plain_bytes)},
        "formats": {},
        "targets": {"import_over_tar_at_most": TARGET_RATIO,
                    "cached_reimport_s_below": TARGET_CACHED_S},
    }
    print()
    print(f"  image import, {kind} rootfs ({int(plain_bytes) / 2**20:.0f} MiB tar), medians")
    print(f"  {'format':<7} {'quilt':>9} {'tar+sync':>9} {'ratio':>6} {'cached':>9}")
    ok = True
    for fmt, r in sorted(rows.items()):
        q = statistics.median(r["quilt_s"])
        t = statistics.median(r["tar_sync_s"])
        c = statistics.median(r["cached_s"])
        ratio = q / t if t else float("inf")
        met = ratio <= TARGET_RATIO
        ok &= met
        result["formats"][fmt] = dict(r, quilt_median_s=q, tar_sync_median_s=t,
                                      cached_median_s=c, ratio=round(ratio, 3),
                                      import_target_met=met,
                                      cached_target_met=c < TARGET_CACHED_S)
        print(f"  {fmt:<7} {q:>8.2f}s {t:>8.2f}s {ratio:>6.2f} {c * 1000:>7.1f}ms"
              f"  import {'met' if met else 'MISSED'}, cached "
              f"{'met' if c < TARGET_CACHED_S else 'MISSED (CLI process included)'}")
    if rootfs_json:
        with open(rootfs_json) as f:
            rj = json.load(f)
        series = rj.get("series", {}).get("overlay", {})
        result["rootfs_preparation"] = {"json": rj, "overlay": series}
        prep = series.get("prepare", {}).get("p50_us")
        if prep is not None:
            print(f"  rootfs preparation (overlay) p50 {prep:.0f} us  target < 1000 us: "
                  f"{'met' if prep < 1000 else 'MISSED'}")
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"\n  JSON: {out}")


if __name__ == "__main__":
    main()

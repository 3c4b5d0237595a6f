#!/usr/bin/env python3
"""Summarizes bench/setup/run: per series percentiles of the whole run
(create + wait), the cached/plain ratio and the target; writes the JSON.

usage: summarize.py GLOBAL_ENV RAW_DIR OUT_JSON [--strict=0|1]
Exit: 0, or 3 when --strict=1 and the target is missed."""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import pct, read_env  # noqa: E402

TARGET = 1.10  # cached p50 <= 1.10 x plain p50


def load(raw, series):
    """Totals (us) and create/wait parts of every measured run of a series."""
    total, create, wait = [], [], []
    for path in sorted(glob.glob(os.path.join(raw, series + "-*.txt"))):
        with open(path) as f:
            for line in f:
                p = line.split()
                create.append(float(p[1]))
                wait.append(float(p[2]))
                total.append(float(p[4]))
    return sorted(total), sorted(create), sorted(wait)


def stats(vals):
    return {"n": len(vals), **{"p%d" % q: pct(vals, q) for q in (50, 90, 99)},
            "mean": sum(vals) / len(vals) if vals else None}


def blocks(raw):
    out = []
    with open(os.path.join(raw, "blocks.txt")) as f:
        for line in f:
            out.append(dict(kv.split("=", 1) for kv in line.split()))
    return out


def main():
    env_path, raw, out_path = sys.argv[1:4]
    strict = "--strict=1" in sys.argv[4:]
    env = read_env(env_path)
    result = {"benchmark": "setup", "env": env, "series": {}, "blocks": blocks(raw)}
    for s in ("plain", "cached"):
        total, create, wait = load(raw, s)
        result["series"][s] = {"total_us": stats(total), "create_us": stats(create),
                               "wait_us": stats(wait)}
    p_plain = result["series"]["plain"]["total_us"]["p50"]
    p_cached = result["series"]["cached"]["total_us"]["p50"]
    ratio = p_cached / p_plain
    hits = {s: sum(int(b["pool_hits"]) for b in result["blocks"] if b["series"] == s)
            for s in ("plain", "cached")}
    result["ratio_p50"] = ratio
    result["target"] = {"ratio_p50_max": TARGET, "met": ratio <= TARGET}
    result["pool_hits"] = hits
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    print("\n  %-8s %10s %10s %10s   %s" % ("series", "p50", "p90", "p99", "(create + wait of /bin/true)"))
    for s in ("plain", "cached"):
        t = result["series"][s]["total_us"]
        print("  %-8s %8.2fms %8.2fms %8.2fms   pool hits %d"
              % (s, t["p50"] / 1e3, t["p90"] / 1e3, t["p99"] / 1e3, hits[s]))
    print("\n  first run of the setup step (cold, builds the layer): %.1f ms"
          % (float(env.get("first_setup_us", 0)) / 1e3))
    print("  cached/plain: p50 %.3f   target <= %.2f: %s"
          % (ratio, TARGET, "met" if ratio <= TARGET else "MISSED"))
    print("\n  JSON: %s" % out_path)
    return 3 if strict and ratio > TARGET else 0


if __name__ == "__main__":
    sys.exit(main())

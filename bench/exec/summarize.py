#!/usr/bin/env python3
"""Summarizes bench/exec/run: per tool percentiles of one exec round trip,
the ratios to the peers and the target (quilt p50 < 2 ms); writes the JSON.

usage: summarize.py GLOBAL_ENV RAW_DIR OUT_JSON [--strict=0|1]
Exit: 0, or 3 when --strict=1 and the target is missed."""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import pct, read_env  # noqa: E402

TARGET_US = 2000.0
TOOLS = ("quilt", "crun", "docker")


def load(raw, tool):
    vals = []
    for path in sorted(glob.glob(os.path.join(raw, tool + "-*.txt"))):
        with open(path) as f:
            vals += [float(line.split()[1]) for line in f if line.strip()]
    return sorted(vals)


def main():
    env_path, raw, out_path = sys.argv[1:4]
    strict = "--strict=1" in sys.argv[4:]
    result = {"benchmark": "exec", "env": read_env(env_path), "series": {}}
    for t in TOOLS:
        v = load(raw, t)
        if v:
            result["series"][t] = {"n": len(v), **{"p%d_us" % q: pct(v, q) for q in (50, 90, 99)}}
    q = result["series"]["quilt"]["p50_us"]
    result["ratios_p50"] = {t: q / s["p50_us"] for t, s in result["series"].items() if t != "quilt"}
    result["target"] = {"quilt_p50_us_max": TARGET_US, "met": q < TARGET_US}
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    print("\n  %-8s %10s %10s %10s" % ("tool", "p50", "p90", "p99"))
    for t, s in result["series"].items():
        print("  %-8s %8.2fms %8.2fms %8.2fms" % (t, s["p50_us"] / 1e3, s["p90_us"] / 1e3,
                                                s["p99_us"] / 1e3))
    for t, r in result["ratios_p50"].items():
        print("  quilt/%s p50: %.3f" % (t, r))
    print("  target quilt p50 < 2 ms: %s" % ("met" if q < TARGET_US else "MISSED"))
    print("\n  JSON: %s" % out_path)
    return 3 if strict and q >= TARGET_US else 0


if __name__ == "__main__":
    sys.exit(main())

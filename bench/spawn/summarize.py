#!/usr/bin/env python3
"""Turns one bench/spawn/run's raw times into JSON and a table.

Usage: summarize.py GLOBAL_ENV RAW_DIR OUT_JSON [--strict=0|1]

RAW_DIR holds blocks.txt (one line per series: tool, block, runs, load
before it, quiltd CPU ticks for quilt) and TOOL-BLOCK.txt files written by
spawn_client: for quilt "run create_us wait_us drain_us total_us exit id",
for crun/runc "run total_us cpu_us".
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchlib import pct, read_env  # noqa: E402

TARGET_RATIO = 0.25  # quilt p50 at most a quarter of crun's


def stats(vals):
    s = sorted(vals)
    return {
        "n": len(s),
        "p50_us": round(pct(s, 50), 1),
        "p90_us": round(pct(s, 90), 1),
        "p99_us": round(pct(s, 99), 1),
        "mean_us": round(sum(s) / len(s), 1),
        "min_us": round(s[0], 1),
        "max_us": round(s[-1], 1),
    }


def parse_blocks(path):
    blocks = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            up = ""
            if " uptime=" in line:
                line, up = line.split(" uptime=", 1)
            b = dict(kv.split("=", 1) for kv in line.split())
            b["uptime"] = up
            blocks.append(b)
    return blocks


def fmt_ms(us):
    return f"{us / 1000:.2f}ms"


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    genv, raw, out = sys.argv[1:4]
    strict = any(a == "--strict=1" for a in sys.argv[4:])
    g = read_env(genv)
    hz = int(g.get("clk_tck", "100"))
    blocks = parse_blocks(os.path.join(raw, "blocks.txt"))
    tools = []
    for b in blocks:
        if b["tool"] not in tools:
            tools.append(b["tool"])

    result = {
        "benchmark": "spawn",
        "what": "create + start + wait of /bin/true, pid+mnt+uts+ipc+net namespaces, busybox rootfs, sequential",
        "mode": g["mode"],
        "date": g["date"],
        "host": g["host"],
        "machine": {
            "nproc": int(g["nproc"]),
            "kernel": g["kernel"],
            "cpu_model": g["cpu_model"],
            "mem_total_kb": int(g["mem_total_kb"]),
            "cgroup_mode": g["cgroup_mode"],
        },
        "git": {"commit": g["git_commit"], "dirty": g["git_dirty"] == "true"},
        "build": {"buildtype": "release", "b_ndebug": True, "tests": False, "cc": g["cc"],
                  "dir": g["build_dir"]},
        "tools": {"crun": g["crun"], "runc": g["runc"]},
        "quiltd_root_fs": g["quiltd_root_fs"],
        "quilt_tmpfs_series": "a second quiltd with --root on a tmpfs (diagnostic: the state "
                              "directory's filesystem cost per container)",
        "quilt_cold_series": "a third quiltd with --warm-pool 0 (diagnostic: every sandbox "
                             "built on request, as before the warm pool)",
        "oci_bundle": {
            "config": "crun spec; process.args=[/bin/true], terminal=false",
            "namespaces": g["oci_namespaces"],
            "root_readonly": g["oci_root_readonly"],
            "hybrid_cgroup_adjustment": (
                "each crun/runc series runs under `unshare -m --propagation private` with "
                "/sys/fs/cgroup/unified unmounted (crun refuses hybrid hosts)"
                if g["hybrid_unmount"] == "1" else "none (not a hybrid cgroup host)"),
        },
        "quilt_client": "bench/spawn/spawn_client: CreateContainer(auto_remove) then WaitContainer "
                        "over the Unix socket, one connection, sequential",
        "oci_client": "bench/spawn/spawn_client exec: posix_spawnp(`crun|runc run --bundle B ID`) + wait4",
        "runs": int(g["runs"]),
        "warmup": int(g["warmup"]),
        "blocks": int(g["blocks"]),
        "series": blocks,
        "loadavg_at_end": g["loadavg_at_end"],
        "runtimes": {},
    }

    rows = []
    for t in tools:
        totals, creates, waits, cpus = [], [], [], []
        for b in blocks:
            if b["tool"] != t:
                continue
            with open(os.path.join(raw, f"{t}-{b['block']}.txt")) as f:
                for line in f:
                    p = line.split()
                    if t.startswith("quilt"):
                        creates.append(float(p[1]))
                        waits.append(float(p[2]))
                        totals.append(float(p[4]))
                    else:
                        totals.append(float(p[1]))
                        cpus.append(float(p[2]))
        r = {"total": stats(totals)}
        if t.startswith("quilt"):
            r["create_rpc"] = stats(creates)
            r["wait_rpc"] = stats(waits)
            qt = sum(int(b.get("quiltd_ticks", 0)) for b in blocks if b["tool"] == t)
            qc = sum(int(b.get("quiltd_child_ticks", 0)) for b in blocks if b["tool"] == t)
            n = sum(int(b["runs"]) + int(b["warmup"]) for b in blocks if b["tool"] == t)
            r["quiltd_cpu_us_per_run"] = round(qt / hz * 1e6 / n, 1)
            r["container_cpu_us_per_run"] = round(qc / hz * 1e6 / n, 1)
            r["cpu_us_per_run"] = round((qt + qc) / hz * 1e6 / n, 1)
        else:
            r["cpu_us_per_run"] = round(sum(cpus) / len(cpus), 1)
        result["runtimes"][t] = r
        rows.append((t, r))

    q = result["runtimes"].get("quilt")
    c = result["runtimes"].get("crun")
    for diag in ("quilt-tmpfs", "quilt-cold"):
        qd = result["runtimes"].get(diag)
        if qd and c:
            result[diag.replace("-", "_") + "_over_crun"] = {
                "p50": round(qd["total"]["p50_us"] / c["total"]["p50_us"], 3),
                "p99": round(qd["total"]["p99_us"] / c["total"]["p99_us"], 3)}
    if q and c:
        ratio50 = q["total"]["p50_us"] / c["total"]["p50_us"]
        ratio99 = q["total"]["p99_us"] / c["total"]["p99_us"]
        result["quilt_over_crun"] = {"p50": round(ratio50, 3), "p99": round(ratio99, 3)}
        result["target"] = {"quilt_p50_over_crun_p50_at_most": TARGET_RATIO,
                            "met": ratio50 <= TARGET_RATIO}
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")

    print()
    print(f"  spawn latency, {result['runs']} runs per runtime in {result['blocks']} block(s)"
          f"  ({g['nproc']} CPUs, {g['kernel']}, {g['git_commit']}{' dirty' if g['git_dirty'] == 'true' else ''})")
    print(f"  {'runtime':<22} {'p50':>9} {'p90':>9} {'p99':>9} {'mean':>9} {'min':>9} {'max':>9} {'CPU/run':>9}")
    for t, r in rows:
        s = r["total"]
        print(f"  {t:<22} {fmt_ms(s['p50_us']):>9} {fmt_ms(s['p90_us']):>9} {fmt_ms(s['p99_us']):>9}"
              f" {fmt_ms(s['mean_us']):>9} {fmt_ms(s['min_us']):>9} {fmt_ms(s['max_us']):>9}"
              f" {fmt_ms(r['cpu_us_per_run']):>9}")
        if t.startswith("quilt"):
            for k, label in (("create_rpc", "  CreateContainer"), ("wait_rpc", "  WaitContainer")):
                s = r[k]
                print(f"  {label:<22} {fmt_ms(s['p50_us']):>9} {fmt_ms(s['p90_us']):>9}"
                      f" {fmt_ms(s['p99_us']):>9} {fmt_ms(s['mean_us']):>9} {fmt_ms(s['min_us']):>9}"
                      f" {fmt_ms(s['max_us']):>9}")
            print(f"  {'  (CPU: quiltd ' + fmt_ms(r['quiltd_cpu_us_per_run']) + ', container ' + fmt_ms(r['container_cpu_us_per_run']) + ')':<22}")
    print()
    for b in blocks:
        print(f"  block {b['block']} {b['tool']:<11} {b['runs']:>5} runs {b['seconds']:>7}s  before: {b['busy_pct']:>3}% busy, {b['uptime']}")
    if "quilt_over_crun" in result:
        rr = result["quilt_over_crun"]
        met = result["target"]["met"]
        print()
        print(f"  quilt/crun: p50 {rr['p50']:.2f}, p99 {rr['p99']:.2f}"
              f"   target p50 <= {TARGET_RATIO:.2f}: {'met' if met else 'MISSED'}")
        for diag in ("quilt-tmpfs", "quilt-cold"):
            key = diag.replace("-", "_") + "_over_crun"
            if key in result:
                rt = result[key]
                print(f"  {diag}/crun: p50 {rt['p50']:.2f}, p99 {rt['p99']:.2f}  (diagnostic, not the target)")
    print(f"\n  JSON: {out}")
    if strict and "target" in result and not result["target"]["met"]:
        sys.exit(3)


if __name__ == "__main__":
    main()

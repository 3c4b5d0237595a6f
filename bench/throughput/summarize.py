#!/usr/bin/env python3
"""Turns one bench/throughput/run's raw measurements into JSON and a table.

Usage: summarize.py GLOBAL_ENV RAW_DIR OUT_JSON FLOOR_JSON|none [--strict=0|1]

RAW_DIR holds series.txt (one line per concurrency level: tp_client's
key=value summary, quiltd/children/machine CPU ticks, load before) and
lat-K.txt (tp_client --out: "create_us wait_us total_us" per counted
container). FLOOR_JSON is a bench/floor/run result, or "none".
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchlib import pct, read_env  # noqa: E402

TARGET_FRACTION = 0.8  # of the floor's parallel rate (two floor loops at once)
FLOOR_PARALLEL = 2


def stats(vals):
    s = sorted(vals)
    return {"n": len(s), "p50_us": round(pct(s, 50), 1), "p90_us": round(pct(s, 90), 1),
            "p99_us": round(pct(s, 99), 1), "mean_us": round(sum(s) / len(s), 1),
            "min_us": round(s[0], 1), "max_us": round(s[-1], 1)}


def floor_rate(path):
    """The floor's aggregate rate with FLOOR_PARALLEL loops at once: the
    overlay series if there is one (quiltd's rootfs is an overlay), else bind."""
    with open(path) as f:
        fj = json.load(f)
    best = None
    for s in fj.get("series", []):
        if int(s.get("parallel", 0)) != FLOOR_PARALLEL:
            continue
        rate = s.get("rate_containers_per_s")
        if rate is None:
            continue
        if best is None or (s.get("mode") == "overlay" and best["mode"] != "overlay"):
            best = {"mode": s.get("mode", "?"), "parallel": FLOOR_PARALLEL,
                    "rate_per_s": float(rate),
                    "p50_us": s.get("latency", {}).get("p50_us")}
    if best:
        best["floor_date"] = fj.get("date")
        best["floor_mode"] = fj.get("mode")
    return best


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    genv, raw, out, fpath = sys.argv[1:5]
    strict = any(a == "--strict=1" for a in sys.argv[5:])
    g = read_env(genv)
    hz = int(g.get("clk_tck", "100"))

    series = []
    with open(os.path.join(raw, "series.txt")) as f:
        for line in f:
            line = line.rstrip("\n")
            line, up = line.split(" uptime=", 1)
            kv = dict(x.split("=", 1) for x in line.split())
            k = int(kv["concurrency"])
            lat = []
            with open(os.path.join(raw, f"lat-{k}.txt")) as lf:
                for l in lf:
                    p = l.split()
                    lat.append((float(p[0]), float(p[1]), float(p[2])))
            finished = int(kv["finished"])
            elapsed = float(kv["elapsed_s"])
            q = int(kv["quiltd_ticks"]) / hz
            qc = int(kv["quiltd_child_ticks"]) / hz
            mb = int(kv["machine_busy_ticks"]) / hz
            series.append({
                "concurrency": k,
                "window_s": float(kv["window_s"]),
                "completed": int(kv["completed"]),
                "rate_per_s": float(kv["rate_per_s"]),
                "started": int(kv["started"]),
                "finished_incl_warmup_and_drain": finished,
                "elapsed_s": elapsed,
                "latency_total": stats([x[2] for x in lat]),
                "latency_create_rpc": stats([x[0] for x in lat]),
                "latency_wait_rpc": stats([x[1] for x in lat]),
                # CPU over the whole series (warm-up and drain included), per container.
                "quiltd_cpu_us_per_container": round(q * 1e6 / finished, 1),
                "container_cpu_us_per_container": round(qc * 1e6 / finished, 1),
                "client_cpu_us_per_container": round(float(kv["client_cpu_s"]) * 1e6 / finished, 1),
                "machine_busy_cores": round(mb / elapsed, 2),
                "busy_pct_before": int(kv["busy_pct_before"]),
                "uptime_before": up,
            })

    fl = floor_rate(fpath) if fpath != "none" and os.path.exists(fpath) else None
    best = max(series, key=lambda s: s["rate_per_s"])
    target = {"rule": f"best rate >= {TARGET_FRACTION:.0%} of the floor's rate with "
                      f"{FLOOR_PARALLEL} loops at once", "fraction_at_least": TARGET_FRACTION,
              "best_concurrency": best["concurrency"], "best_rate_per_s": best["rate_per_s"]}
    if fl:
        for s in series:
            s["over_floor"] = round(s["rate_per_s"] / fl["rate_per_s"], 3)
        target["floor_rate_per_s"] = fl["rate_per_s"]
        target["ratio"] = round(best["rate_per_s"] / fl["rate_per_s"], 3)
        target["met"] = target["ratio"] >= TARGET_FRACTION
    else:
        target["met"] = None
        target["note"] = "floor " + g.get("floor_note", "n/a")

    result = {
        "benchmark": "throughput",
        "what": "containers (/bin/true, auto_remove) completed per second with K "
                "CreateContainer+WaitContainer lifecycles in flight on one HTTP/2 connection",
        "mode": g["mode"],
        "date": g["date"],
        "host": g["host"],
        "machine": {"nproc": int(g["nproc"]), "kernel": g["kernel"], "cpu_model": g["cpu_model"],
                    "mem_total_kb": int(g["mem_total_kb"]), "cgroup_mode": g["cgroup_mode"]},
        "git": {"commit": g["git_commit"], "dirty": g["git_dirty"] == "true"},
        "build": {"quiltd": ("prebuilt " + g["prebuilt"]) if g.get("prebuilt") else
                  "release, -Db_ndebug=true, tests off", "dir": g["build_dir"], "cc": g["cc"]},
        "client": "bench/throughput/tp_client: nghttp2 + protobuf-c, one connection over the "
                  "Unix socket, K slots each looping CreateContainer(auto_remove) -> WaitContainer",
        "quiltd_root_fs": g["quiltd_root_fs"],
        "quiltd_vmhwm_kb": int(g["quiltd_vmhwm_kb"]),
        "seconds_per_level": float(g["seconds"]),
        "warmup_s_per_level": float(g["warmup"]),
        "correctness": "every CreateContainer and WaitContainer answered grpc-status OK, every "
                       "container exited 0, and quiltd lists no container afterwards",
        "series": series,
        "floor": fl if fl else {"note": g.get("floor_note", "n/a")},
        "floor_source": g.get("floor_note", ""),
        "target": target,
        "loadavg_at_end": g["loadavg_at_end"],
    }
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")

    ms = lambda us: f"{us / 1000:.2f}ms"
    print()
    print(f"  throughput: containers completed per second, one connection"
          f"  ({g['nproc']} CPUs, {g['kernel']}, {g['git_commit']}"
          f"{' dirty' if g['git_dirty'] == 'true' else ''})")
    print(f"  {'K':>4} {'rate/s':>8} {'done':>7} {'p50':>8} {'p90':>8} {'p99':>8} {'quiltd CPU':>11}"
          f" {'ctr CPU':>8} {'client':>7} {'cores':>6} {'/floor':>7}  before")
    for s in series:
        l = s["latency_total"]
        print(f"  {s['concurrency']:>4} {s['rate_per_s']:>8.1f} {s['completed']:>7} {ms(l['p50_us']):>8}"
              f" {ms(l['p90_us']):>8} {ms(l['p99_us']):>8} {ms(s['quiltd_cpu_us_per_container']):>11}"
              f" {ms(s['container_cpu_us_per_container']):>8} {ms(s['client_cpu_us_per_container']):>7}"
              f" {s['machine_busy_cores']:>6.2f} {(str(s['over_floor']) + 'x') if 'over_floor' in s else '-':>7}"
              f"  {s['busy_pct_before']}% busy")
    print()
    if fl:
        print(f"  floor ({fl['mode']}, {FLOOR_PARALLEL} loops at once): {fl['rate_per_s']:.0f} containers/s"
              f"  [{g.get('floor_note', '')}]")
        print(f"  quilt best: {best['rate_per_s']:.1f}/s at K={best['concurrency']} = {target['ratio']:.2f}x"
              f" the floor   target >= {TARGET_FRACTION:.2f}x: {'met' if target['met'] else 'MISSED'}")
    else:
        print(f"  floor: {g.get('floor_note', 'n/a')}")
        print(f"  quilt best: {best['rate_per_s']:.1f}/s at K={best['concurrency']}   target: n/a (no floor)")
    print(f"\n  JSON: {out}")
    if strict and target["met"] is False:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())

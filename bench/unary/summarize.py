#!/usr/bin/env python3
"""Turns one bench/unary/run's raw measurements into JSON and a table.

Usage: summarize.py GLOBAL_ENV RUNS_DIR OUT_JSON [--strict=0|1]

RUNS_DIR holds, per h2load invocation, NNN.out (h2load's stdout), NNN.env
(key=value lines written by the run script), NNN.stat0/NNN.stat1 (the cpu
lines of /proc/stat before and after), optionally NNN.time (GNU time:
elapsed user sys) and NNN.log (h2load --log-file, latency runs only).
"""
import glob
import json
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchlib import read_env  # noqa: E402

TARGET_RPS = 100_000          # unary RPCs/s over 64 concurrent streams
TARGET_RSS_KB = 16 * 1024     # daemon RSS under 16 MiB
TARGET_SCENARIO = "c1-m64"
UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6}


def to_us(tok):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", tok)
    if not m:
        raise ValueError(f"cannot read h2load time '{tok}'")
    return float(m.group(1)) * UNIT_US[m.group(2)]


def parse_h2load(path):
    """The figures h2load prints: duration, req/s, counts, request times."""
    r = {}
    with open(path) as f:
        text = f.read()
    m = re.search(r"^finished in ([0-9.]+(?:us|ms|s)), ([0-9.]+) req/s, ([0-9.]+)(\w+)/s",
                  text, re.M)
    if not m:
        raise ValueError(f"{path}: no 'finished in' line")
    r["duration_s"] = to_us(m.group(1)) / 1e6
    r["req_per_s"] = float(m.group(2))
    m = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text, re.M)
    keys = ["total", "started", "done", "succeeded", "failed", "errored", "timeout"]
    r["requests"] = dict(zip(keys, map(int, m.groups())))
    m = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    r["status_codes"] = dict(zip(["2xx", "3xx", "4xx", "5xx"], map(int, m.groups())))
    m = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    r["request_time_us"] = dict(zip(["min", "max", "mean", "sd"],
                                    (round(to_us(t), 1) for t in m.groups())))
    return r


def cpu_lines(path):
    cpus = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            cpus[parts[0]] = [int(x) for x in parts[1:9]]
    return cpus


def cpu_usage(stat0, stat1, cpu):
    """busy and steal percentages of one CPU (or all, cpu=-1) between snapshots."""
    key = "cpu" if cpu < 0 else f"cpu{cpu}"
    a, b = cpu_lines(stat0).get(key), cpu_lines(stat1).get(key)
    if not a or not b:
        return None
    d = [y - x for x, y in zip(a, b)]
    total = sum(d)  # user nice system idle iowait irq softirq steal
    if total <= 0:
        return None
    idle = d[3] + d[4]
    return {"busy_pct": round(100.0 * (total - idle - d[7]) / total, 1),
            "irq_softirq_pct": round(100.0 * (d[5] + d[6]) / total, 1),
            "steal_pct": round(100.0 * d[7] / total, 1)}


def percentiles(log_path):
    lat = []
    with open(log_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                lat.append(int(parts[2]))
    if not lat:
        return None
    lat.sort()

    def q(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))]
    return {"p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "p99_9": q(0.999),
            "max": lat[-1], "samples": len(lat)}


def one_run(base, glob_env):
    env = read_env(base + ".env")
    r = {"kind": env["kind"], "rep": int(env["rep"]), "n": int(env["n"])}
    r.update(parse_h2load(base + ".out"))
    clk = int(env["clk_tck"])
    qcpu = int(env["quiltd_ticks"]) / clk
    r["quiltd_cpu_s"] = round(qcpu, 3)
    r["quiltd_cpu_util_pct"] = round(100.0 * qcpu / r["duration_s"], 1)
    r["quiltd_cpu_us_per_rpc"] = round(qcpu * 1e6 / r["n"], 2)
    if os.path.exists(base + ".time"):
        with open(base + ".time") as f:
            last = f.read().strip().splitlines()[-1].split()
        el, us, sy = map(float, last)
        r["h2load_cpu_s"] = round(us + sy, 3)
        r["h2load_cpu_util_pct"] = round(100.0 * (us + sy) / max(el, 1e-9), 1)
    r["quiltd_rss_peak_kb"] = int(env["rss_peak_kb"])
    r["quiltd_vmhwm_kb"] = int(env["hwm_kb"])
    if "noise_pct" in env:
        # Same figure the run script used to decide on a retry.
        r["other_processes_pct_of_a_pinned_core"] = int(env["noise_pct"])
    if env.get("grpc_checked") == "1":
        r["grpc_status_ok"] = int(env["grpc_ok"])
    ccpu, scpu = int(env["client_cpu"]), int(env["server_cpu"])
    cpus = {}
    if ccpu >= 0:
        cpus["client_cpu"] = cpu_usage(base + ".stat0", base + ".stat1", ccpu)
        cpus["server_cpu"] = cpu_usage(base + ".stat0", base + ".stat1", scpu)
    else:
        cpus["all_cpus"] = cpu_usage(base + ".stat0", base + ".stat1", -1)
    # CPU time on the pinned cores used neither by quiltd, nor by h2load,
    # nor by interrupts (loopback TCP runs in softirq, charged to the CPU and
    # not to the task): other processes on a shared machine show up here.
    def other(u, used):
        return round(max(0.0, u["busy_pct"] - u["irq_softirq_pct"] - used), 1)
    if ccpu >= 0 and cpus["server_cpu"]:
        cpus["server_cpu"]["other_pct"] = other(cpus["server_cpu"], r["quiltd_cpu_util_pct"])
    if ccpu >= 0 and cpus["client_cpu"] and "h2load_cpu_util_pct" in r:
        cpus["client_cpu"]["other_pct"] = other(cpus["client_cpu"], r["h2load_cpu_util_pct"])
    r["cpu"] = cpus
    if os.path.exists(base + ".log"):
        r["latency_us"] = percentiles(base + ".log")
    return env["name"], int(env["c"]), int(env["m"]), r


def med(xs):
    return statistics.median(xs) if xs else None


def summarize(measured, latency_run):
    rps = [r["req_per_s"] for r in measured]
    s = {
        "req_per_s_median": round(med(rps), 1),
        "req_per_s_min": round(min(rps), 1),
        "req_per_s_max": round(max(rps), 1),
        "duration_s_min": round(min(r["duration_s"] for r in measured), 2),
        "request_time_mean_us_median": med([r["request_time_us"]["mean"] for r in measured]),
        "request_time_max_us": max(r["request_time_us"]["max"] for r in measured),
        "quiltd_cpu_util_pct_median": med([r["quiltd_cpu_util_pct"] for r in measured]),
        "quiltd_cpu_us_per_rpc_median": med([r["quiltd_cpu_us_per_rpc"] for r in measured]),
        "quiltd_rss_peak_kb": max(r["quiltd_rss_peak_kb"] for r in measured),
    }
    cpu_us = s["quiltd_cpu_us_per_rpc_median"]
    if cpu_us:
        # What one fully busy quiltd core would serve at this CPU cost per RPC.
        s["quiltd_one_core_capacity_rps_est"] = round(1e6 / cpu_us)
    h = [r["h2load_cpu_util_pct"] for r in measured if "h2load_cpu_util_pct" in r]
    if h:
        s["h2load_cpu_util_pct_median"] = med(h)
    st = [r["cpu"].get("server_cpu") or r["cpu"].get("all_cpus") for r in measured]
    st = [x["steal_pct"] for x in st if x]
    if st:
        s["steal_pct_max"] = max(st)
    other = [x.get("other_pct", 0) for r in measured for x in r["cpu"].values() if x]
    if other:
        s["other_cpu_pct_max"] = max(other)
    if latency_run and latency_run.get("latency_us"):
        s["latency_us"] = latency_run["latency_us"]
        s["latency_run_req_per_s"] = latency_run["req_per_s"]
    return s


def fmt_int(x):
    return f"{x:,.0f}" if x is not None else "-"


def fmt_n(n):
    return f"{n / 1e6:.2f}M" if n >= 1_000_000 else (f"{n / 1e3:.0f}k" if n >= 1000 else str(n))


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    glob_env = read_env(sys.argv[1])
    runs_dir, out_path = sys.argv[2], sys.argv[3]
    strict = "--strict=1" in sys.argv[4:]

    scen = {}
    order = []
    for env_path in sorted(glob.glob(os.path.join(runs_dir, "*.env"))):
        name, c, m, r = one_run(env_path[:-4], glob_env)
        if name not in scen:
            scen[name] = {"name": name, "connections": c, "streams_per_connection": m,
                          "concurrent_streams": c * m, "warmup": None, "runs": [],
                          "latency_run": None}
            order.append(name)
        if r["kind"] == "warmup":
            scen[name]["warmup"] = r
        elif r["kind"] == "latency":
            scen[name]["latency_run"] = r
        else:
            scen[name]["runs"].append(r)
    scenarios = []
    for name in order:
        s = scen[name]
        ns = sorted({r["n"] for r in s["runs"]})
        s["n"] = ns[-1] if len(ns) == 1 else ns
        s["summary"] = summarize(s["runs"], s["latency_run"])
        scenarios.append(s)

    g = glob_env
    rss_peak = max([int(g["rss_peak_kb"]), int(g["hwm_after_kb"])])
    target = next((s for s in scenarios if s["name"] == TARGET_SCENARIO), None)
    tput = target["summary"]["req_per_s_median"] if target else None
    result = {
        "benchmark": "unary",
        "rpc": g["rpc"],
        "request_body": "00 00 00 00 00 (empty GetSystemInfoRequest)",
        "mode": g["mode"],
        "date": g["date"],
        "host": g["host"],
        "machine": {"nproc": int(g["nproc"]), "kernel": g["kernel"],
                    "cpu_model": g["cpu_model"], "mem_total_kb": int(g["mem_total_kb"])},
        "git": {"commit": g["git_commit"], "dirty": g["git_dirty"] == "true"},
        "build": {"buildtype": "release", "b_ndebug": True, "tests": False,
                  "cc": g["cc"], "dir": g["build_dir"]},
        "tools": {"h2load": g["h2load"], "curl": g["curl"]},
        "pinning": ({"h2load_cpu": int(g["client_cpu"]), "quiltd_cpu": int(g["server_cpu"])}
                    if int(g["client_cpu"]) >= 0 else None),
        "reps": int(g["reps"]),
        "nice": int(g.get("nice", 0)),
        "discarded_noisy_runs": int(g.get("discarded_noisy_runs", 0)),
        "machine_busy_pct_before_scenario": {
            k: int(v) for k, v in (kv.split("=") for kv in g["background_busy_pct"].split(",") if kv)},
        "loadavg_at_end": g["loadavg"],
        "target_seconds_per_run": int(g["target_seconds"]),
        "correctness": {
            "curl_http2_prior_knowledge": "HTTP/2 200, one gRPC message, trailer grpc-status: 0",
            "response_bytes": int(g["response_bytes"]),
            "every_run": "h2load succeeded == N and 2xx == N"
                         + (", quiltd /metrics grpc-status OK delta == N"
                            if g["grpc_checked"] == "1" else ""),
        },
        "quiltd_rss_kb": {
            "before": {"VmRSS": int(g["rss_before_kb"]), "VmHWM": int(g["hwm_before_kb"])},
            "peak_sampled_VmRSS": int(g["rss_peak_kb"]),
            "after": {"VmRSS": int(g["rss_after_kb"]), "VmHWM": int(g["hwm_after_kb"])},
        },
        "targets": {
            "req_per_s_64_streams": TARGET_RPS,
            "rss_kb_below": TARGET_RSS_KB,
            "req_per_s_64_streams_met": tput is not None and tput >= TARGET_RPS,
            "rss_met": rss_peak < TARGET_RSS_KB,
        },
        "scenarios": scenarios,
    }
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")

    pin = result["pinning"]
    print()
    print(f"quiltd unary benchmark: {g['rpc']} ({g['mode']}, {g['reps']} rep(s) per scenario)")
    print(f"  {g['host']}, nproc {g['nproc']}, kernel {g['kernel']}, git {g['git_commit']}"
          f"{' (dirty)' if g['git_dirty'] == 'true' else ''}; "
          + (f"h2load on CPU {pin['h2load_cpu']}, quiltd on CPU {pin['quiltd_cpu']}"
             if pin else "no CPU pinning")
          + (f", nice {g['nice']}" if g.get("nice", "0") != "0" else ""))
    hdr = (f"  {'scenario':<8} {'conns':>5} {'str/conn':>8} {'N':>6}  {'req/s median':>12}"
           f"  {'[min .. max]':<22} {'mean lat':>9} {'p50':>7} {'p99':>7}"
           f"  {'quiltd CPU':>10} {'CPU us/RPC':>10}")
    print(hdr)
    for s in scenarios:
        sm = s["summary"]
        lat = sm.get("latency_us") or {}
        rng = f"[{fmt_int(sm['req_per_s_min'])} .. {fmt_int(sm['req_per_s_max'])}]"
        p50 = f"{lat['p50']}us" if lat else "-"
        p99 = f"{lat['p99']}us" if lat else "-"
        print(f"  {s['name']:<8} {s['connections']:>5} {s['streams_per_connection']:>8}"
              f" {fmt_n(max(s['n']) if isinstance(s['n'], list) else s['n']):>6}  {fmt_int(sm['req_per_s_median']):>12}  {rng:<22}"
              f" {sm['request_time_mean_us_median']:>7.0f}us {p50:>7} {p99:>7}"
              f"  {sm['quiltd_cpu_util_pct_median']:>9.0f}% {sm['quiltd_cpu_us_per_rpc_median']:>10.2f}")
    r = result["quiltd_rss_kb"]
    mib = lambda kb: f"{kb / 1024:.1f} MiB"
    print(f"  quiltd RSS: before {mib(r['before']['VmRSS'])}, peak sampled"
          f" {mib(r['peak_sampled_VmRSS'])}, after {mib(r['after']['VmRSS'])}"
          f" (VmHWM {mib(r['after']['VmHWM'])})")
    t = result["targets"]
    print(f"  target >= {TARGET_RPS:,} RPC/s over 64 streams ({TARGET_SCENARIO}): "
          f"{fmt_int(tput)} -> {'PASS' if t['req_per_s_64_streams_met'] else 'MISS'};"
          f" RSS < 16 MiB: {mib(rss_peak)} -> {'PASS' if t['rss_met'] else 'MISS'}")
    print(f"  all {sum(len(s['runs']) for s in scenarios)} measured runs: every response 2xx,"
          f" {'grpc-status OK counted by quiltd, ' if g['grpc_checked'] == '1' else ''}"
          f"succeeded == N")
    busy = {k: v for k, v in result["machine_busy_pct_before_scenario"].items() if v >= 10}
    other = {s["name"]: s["summary"].get("other_cpu_pct_max", 0) for s in scenarios}
    other = {k: v for k, v in other.items() if v >= 15}
    if busy or other:
        print(f"  WARNING: the machine was not idle (busy before: {busy or '-'}; other CPU use"
              f" on the pinned cores during runs: {other or '-'}): figures are low")
    if result["discarded_noisy_runs"]:
        print(f"  {result['discarded_noisy_runs']} run(s) discarded and re-done: other processes"
              f" took > 15% of a pinned core during them")
    print(f"  results: {out_path}")
    if strict and not (t["req_per_s_64_streams_met"] and t["rss_met"]):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Turns one bench/api/run's raw measurements into JSON and a table.

Usage: summarize.py GLOBAL_ENV RAW_DIR OUT_JSON [--strict=0|1]

RAW_DIR holds runs.txt (one line per h2load run: file, server, rpc, m, n,
kind, rep, server CPU ticks, RSS, busy share before the case) and the h2load
outputs it names.
"""
import json
import os
import statistics
import sys

import importlib.util  # noqa: E402

# h2load's output format is parsed once, in bench/unary/summarize.py.
_spec = importlib.util.spec_from_file_location(
    "unary_summarize",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unary", "summarize.py"))
_unary = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_unary)
parse_h2load, read_env = _unary.parse_h2load, _unary.read_env

SERVERS = {"quilt": "quiltd", "grpcpp": "gRPC C++ (libgrpc++)"}


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    genv, raw, out = sys.argv[1:4]
    strict = any(a == "--strict=1" for a in sys.argv[4:])
    g = read_env(genv)
    hz = int(g.get("clk_tck", "100"))

    runs = []
    with open(os.path.join(raw, "runs.txt")) as f:
        for line in f:
            kv = dict(x.split("=", 1) for x in line.split())
            r = {"server": kv["server"], "rpc": kv["rpc"], "streams": int(kv["m"]),
                 "n": int(kv["n"]), "kind": kv["kind"], "rep": int(kv["rep"]),
                 "busy_pct_before_case": int(kv["busy_pct"])}
            r.update(parse_h2load(os.path.join(raw, kv["file"])))
            cpu = int(kv["cpu_ticks"]) / hz
            r["server_cpu_s"] = round(cpu, 3)
            r["server_cpu_util_pct"] = round(100.0 * cpu / r["duration_s"], 1)
            r["server_cpu_us_per_rpc"] = round(cpu * 1e6 / r["n"], 2)
            r["server_rss_kb"] = int(kv["rss_kb"])
            runs.append(r)

    servers = [s for s in SERVERS if any(r["server"] == s for r in runs)]
    cases = []
    for r in runs:
        key = (r["rpc"], r["streams"])
        if key not in cases:
            cases.append(key)

    results = []
    for rpc, m in cases:
        case = {"rpc": rpc, "streams": m, "connections": 1}
        for s in servers:
            ms = [r for r in runs if r["server"] == s and r["rpc"] == rpc and r["streams"] == m
                  and r["kind"] == "measure"]
            if not ms:
                continue
            rps = [r["req_per_s"] for r in ms]
            case[s] = {
                "req_per_s_median": round(statistics.median(rps), 1),
                "req_per_s_min": round(min(rps), 1),
                "req_per_s_max": round(max(rps), 1),
                "cpu_us_per_rpc_median": round(statistics.median(r["server_cpu_us_per_rpc"] for r in ms), 2),
                "cpu_util_pct_median": round(statistics.median(r["server_cpu_util_pct"] for r in ms), 1),
                "request_time_mean_us_median": round(statistics.median(r["request_time_us"]["mean"] for r in ms), 1),
                "rss_kb_max": max(r["server_rss_kb"] for r in ms),
                "runs": len(ms),
                "n": ms[0]["n"],
            }
        if "quilt" in case and "grpcpp" in case:
            case["quilt_over_grpcpp"] = round(case["quilt"]["req_per_s_median"]
                                              / case["grpcpp"]["req_per_s_median"], 3)
            case["quilt_ahead"] = case["quilt_over_grpcpp"] > 1.0
        results.append(case)

    compared = [c for c in results if "quilt_over_grpcpp" in c]
    target = {"rule": "quiltd serves more calls per second than the gRPC C++ baseline in every case",
              "cases": len(compared)}
    if compared:
        target["ratio_min"] = min(c["quilt_over_grpcpp"] for c in compared)
        target["met"] = all(c["quilt_ahead"] for c in compared)
    else:
        target["met"] = None
        target["note"] = "no baseline: " + (g.get("grpcpp_note") or "not run")

    result = {
        "benchmark": "api",
        "what": "unary GetSystemInfo / GetContainer calls per second, h2load with one HTTP/2 "
                "connection and 1/16/256 concurrent streams, quiltd vs a gRPC C++ server built "
                "from the same proto",
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
        "build": {"quiltd": ("prebuilt " + g["prebuilt"]) if g.get("prebuilt") else
                  "release, -Db_ndebug=true, tests off", "dir": g["build_dir"], "cc": g["cc"],
                  "baseline": "bench/api/baseline_server.cc, g++ -O2, async API, 1 completion "
                              "queue polled by 1 thread" if g["grpcpp"] != "none" else "none",
                  "gxx": g.get("gxx", "")},
        "tools": {"h2load": g["h2load"], "curl": g["curl"], "grpcpp": g["grpcpp"]},
        "peers": {"grpcpp": g["grpcpp"] if g["grpcpp"] != "none" else (g.get("grpcpp_note") or "none")},
        "pinning": {"h2load_cpu": int(g["client_cpu"]), "server_cpu": int(g["server_cpu"])},
        "quiltd_flags": g["quiltd_flags"],
        "reps": int(g["reps"]),
        "messages": {"SystemInfo_bytes": int(g["sysinfo_bytes"]),
                     "Container_bytes": int(g["container_bytes"]),
                     "baseline_answers": "the bytes quiltd returned, replayed"},
        "correctness": {
            "curl": "each server, each RPC: HTTP/2 200, one gRPC message, trailer grpc-status: 0; "
                    "the baseline's bytes equal quiltd's",
            "decoded": g.get("decoded", ""),
            "every_run": "h2load succeeded == N and 2xx == N; quiltd /metrics grpc-status OK delta == N",
            "baseline_status_ok_counts": g.get("baseline_counts", ""),
        },
        "quiltd_rss_end_kb": int(g["quiltd_rss_end_kb"]),
        "loadavg_at_end": g["loadavg_at_end"],
        "results": results,
        "target": target,
        "runs": runs,
    }
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")

    print()
    print(f"  API: unary calls/s, one connection  ({g['nproc']} CPUs, {g['kernel']}, "
          f"{g['git_commit']}{' dirty' if g['git_dirty'] == 'true' else ''}; h2load on CPU "
          f"{g['client_cpu']}, servers on CPU {g['server_cpu']})")
    hdr = f"  {'rpc':<14} {'streams':>7} {'quilt req/s':>12}"
    if "grpcpp" in servers:
        hdr += f" {'grpc++ req/s':>13} {'quilt/grpc++':>13}"
    hdr += f" {'quilt us/RPC':>13}"
    if "grpcpp" in servers:
        hdr += f" {'grpc++ us/RPC':>14}"
    print(hdr)
    for c in results:
        q = c.get("quilt", {})
        line = f"  {c['rpc']:<14} {c['streams']:>7} {q.get('req_per_s_median', 0):>12,.0f}"
        if "grpcpp" in servers:
            b = c.get("grpcpp", {})
            ratio = c.get("quilt_over_grpcpp")
            line += f" {b.get('req_per_s_median', 0):>13,.0f} {(f'{ratio:.2f}x' if ratio else '-'):>13}"
        line += f" {q.get('cpu_us_per_rpc_median', 0):>13.2f}"
        if "grpcpp" in servers:
            line += f" {c.get('grpcpp', {}).get('cpu_us_per_rpc_median', 0):>14.2f}"
        print(line)
    print()
    if target["met"] is None:
        print(f"  target: Quilt ahead of the gRPC C++ baseline: n/a ({target['note']})")
    else:
        print(f"  target: Quilt ahead of the gRPC C++ baseline in every case: "
              f"{'met' if target['met'] else 'MISSED'} (lowest quilt/grpc++ {target['ratio_min']:.2f}x)")
    print(f"  JSON: {out}")
    if strict and target["met"] is False:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())

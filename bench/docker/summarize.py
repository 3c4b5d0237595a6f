#!/usr/bin/env python3
"""Turns one bench/docker/run's raw measurements into JSON and a table.

Usage: summarize.py GLOBAL_ENV RAW_DIR OUT_JSON

RAW_DIR may hold spawn.env + spawn.txt (spawn_client exec: "run total_us
cpu_us") and logs.txt (one key=value line per log run). GLOBAL_ENV with an
"unavailable" key means Docker could not run: the JSON says why.
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchlib import pct, read_env  # noqa: E402


def stats(vals):
    s = sorted(vals)
    return {"n": len(s), "p50_us": round(pct(s, 50), 1), "p90_us": round(pct(s, 90), 1),
            "p99_us": round(pct(s, 99), 1), "mean_us": round(sum(s) / len(s), 1),
            "min_us": round(s[0], 1), "max_us": round(s[-1], 1)}


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    genv, raw, out = sys.argv[1:4]
    g = read_env(genv)
    hz = int(g.get("clk_tck", "100"))
    result = {
        "benchmark": "docker",
        "what": "the Docker peer: `docker run --rm --network none IMAGE /bin/true` spawn latency, "
                "and a container's stdout into the json-file log driver",
        "mode": g["mode"],
        "date": g["date"],
        "host": g["host"],
        "machine": {"nproc": int(g["nproc"]), "kernel": g["kernel"], "cpu_model": g["cpu_model"],
                    "mem_total_kb": int(g["mem_total_kb"]), "cgroup_mode": g["cgroup_mode"]},
        "git": {"commit": g["git_commit"], "dirty": g["git_dirty"] == "true"},
    }
    if "unavailable" in g:
        result["unavailable"] = g["unavailable"]
        notes = os.path.join(raw, "notes.txt")
        if os.path.exists(notes):
            result["notes"] = open(notes).read().splitlines()
    else:
        result.update({
            "docker": g["docker_versions"],
            "daemon": g["docker_daemon"],
            "image": g["image"] + " (docker import of the build's busybox-rootfs.tar, the rootfs "
                                  "of quiltd's default image)",
            "adjustments": [
                "private dockerd: --bridge none --iptables=false --ip-masq=false, containers with "
                "--network none (own network namespace, loopback only, like quiltd's default)",
                "--exec-opt native.cgroupdriver=cgroupfs (no systemd; hybrid cgroups: v1 controllers)",
                "storage driver overlay2 on the data root's filesystem; default seccomp profile",
            ],
        })
        sp_env = os.path.join(raw, "spawn.env")
        if os.path.exists(sp_env):
            e = dict(kv.split("=", 1) for kv in open(sp_env).read().split())
            tot, cpu = [], []
            with open(os.path.join(raw, "spawn.txt")) as f:
                for line in f:
                    p = line.split()
                    tot.append(float(p[1]))
                    cpu.append(float(p[2]))
            runs = int(e["runs"])
            result["spawn"] = {
                "command": "docker run --rm --network none IMAGE /bin/true",
                "timer": "bench/spawn/spawn_client exec (posix_spawnp + wait4), sequential",
                "runs": runs, "warmup": int(e["warmup"]), "seconds": float(e["seconds"]),
                "busy_pct_before": int(e["busy_pct"]),
                "total": stats(tot),
                "docker_cli_cpu_us_per_run": round(sum(cpu) / len(cpu), 1),
                "dockerd_cpu_us_per_run": round(int(e["dockerd_ticks"]) / hz * 1e6
                                                / (runs + int(e["warmup"])), 1),
                "samples_us": sorted(round(x, 1) for x in tot),
            }
        lg = os.path.join(raw, "logs.txt")
        if os.path.exists(lg) and os.path.getsize(lg) > 0:
            reps = []
            with open(lg) as f:
                for line in f:
                    kv = dict(x.split("=", 1) for x in line.split())
                    reps.append(kv)
            size = int(g["size"])
            mib = size / 1048576
            rates = [mib / float(r["seconds"]) for r in reps]
            result["logs"] = {
                "generator": "lines",
                "command": g["generator"],
                "driver": "json-file (docker's default)",
                "size_bytes": size,
                "reps": len(reps),
                "seconds": [float(r["seconds"]) for r in reps],
                "wait_answer_seconds": [float(r["wait_seconds"]) for r in reps],
                "mib_per_s_median": round(statistics.median(rates), 1),
                "mib_per_s_best": round(max(rates), 1),
                "mib_per_s_worst": round(min(rates), 1),
                "log_file_bytes": int(reps[-1]["file_bytes"]),
                "log_entries": int(reps[-1]["entries"]),
                "payload_bytes_verified": all(int(r["payload"]) == size for r in reps),
                "dockerd_cpu_s": [round(int(r["dockerd_ticks"]) / hz, 2) for r in reps],
                "timing": "from `docker run -d` until `docker wait` answered and the json-file "
                          "log stopped growing; then every entry's payload is summed and must "
                          "equal the size",
            }
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")

    print()
    if "unavailable" in result:
        print(f"  docker: unavailable: {result['unavailable']}")
    else:
        print(f"  docker peer ({result['docker']})")
        if "spawn" in result:
            s = result["spawn"]["total"]
            ms = lambda us: f"{us / 1000:.1f}ms"
            print(f"  docker run --rm /bin/true, {s['n']} runs: p50 {ms(s['p50_us'])}  p90 {ms(s['p90_us'])}"
                  f"  p99 {ms(s['p99_us'])}  mean {ms(s['mean_us'])}")
        if "logs" in result:
            lo = result["logs"]
            print(f"  json-file log, {lo['size_bytes'] >> 20} MiB of 72-byte lines, {lo['reps']} rep(s):"
                  f" {lo['mib_per_s_median']:.0f} MiB/s [{lo['mib_per_s_worst']:.0f}..{lo['mib_per_s_best']:.0f}],"
                  f" log file {lo['log_file_bytes'] / lo['size_bytes']:.2f}x the payload")
    print(f"  JSON: {out}")


if __name__ == "__main__":
    main()

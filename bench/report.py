#!/usr/bin/python3
"""Combines the JSON results of one bench/run into one JSON object, a
Markdown table and PNG plots (gnuplot). Python 3 standard library only.

Usage:
  report.py --manifest FILE --json OUT.json --md OUT.md [--plots DIR]
            [--plot-prefix P] [--notes FILE] [--mode full|quick|smoke] [--gnuplot PATH]

The manifest has one tab-separated line per scenario, in run order:
  name  status  exit_code  seconds  json[,json...]  note
status is ok, failed or skipped; json lists the result files the scenario
wrote in this run (the docker peer's file is listed under spawn and logs).
--notes is a text file of lines to carry over (tools installed or missing,
peers skipped). Every figure in the output comes from those files; a peer
without a file is shown as "n/a" with the reason, never estimated.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys


# ------------------------------------------------------------------ helpers

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"_error": f"{path}: {e}"}


def get(d, *keys, default=None):
    for k in keys:
        if isinstance(d, dict) and k in d:
            d = d[k]
        elif isinstance(d, list) and isinstance(k, int) and -len(d) <= k < len(d):
            d = d[k]
        else:
            return default
    return d


def ms(us):
    if us is None:
        return "n/a"
    return f"{us / 1000:.2f} ms" if us < 100000 else f"{us / 1000:.0f} ms"


def num(x, unit=""):
    if x is None:
        return "n/a"
    if x >= 1000:
        return f"{x:,.0f}{unit}"
    return f"{x:.1f}{unit}" if x < 100 else f"{x:.0f}{unit}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def rx(r, what=""):
    return "n/a" if r is None else f"{r:.2f}x{(' ' + what) if what else ''}"


def verdict(met):
    return {True: "met", False: "**missed**", None: "n/a"}[met]


def kind_of(path, data):
    b = data.get("benchmark") if isinstance(data, dict) else None
    if b:
        return b
    base = os.path.basename(path)
    return base.split("-", 1)[0]


def git_info(src):
    def run(*a):
        try:
            return subprocess.run(["git", "-C", src, *a], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    commit = run("rev-parse", "--short", "HEAD") or "unknown"
    dirty = bool(run("status", "--porcelain", "--untracked-files=no"))
    return {"commit": commit, "dirty": dirty}


def machine_info():
    m = {"nproc": os.cpu_count(), "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    m["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    m["mem_total_kb"] = int(line.split()[1])
    except OSError:
        pass
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        m["cgroup_mode"] = "unified"
    elif os.path.ismount("/sys/fs/cgroup/unified"):
        m["cgroup_mode"] = "hybrid"
    else:
        m["cgroup_mode"] = "legacy"
    return m


# ------------------------------------------------------------------ rows
# Each row: scenario, quilt, peers (list of "name figure"), ratio, target, met.

def spawn_rows(sp, docker, floor):
    rows = []
    rt = get(sp, "runtimes", default={})
    q = get(rt, "quilt", "total")
    if not q:
        return rows
    peers, ratios = [], []
    crun = get(rt, "crun", "total")
    for name in ("quilt-tmpfs", "quilt-cold"):
        t = get(rt, name, "total")
        if t:
            peers.append(f"{name} (diagnostic) {ms(t['p50_us'])}")
    for name in ("crun", "runc"):
        t = get(rt, name, "total")
        peers.append(f"{name} {ms(t['p50_us'])}" if t else f"{name} n/a")
    dsp = get(docker, "spawn", "total")
    if dsp:
        peers.append(f"docker {ms(dsp['p50_us'])}")
    elif docker is not None:
        peers.append(f"docker n/a ({get(docker, 'unavailable', default='not run')})")
    fl = floor_series(floor, 1)
    if fl:
        peers.append(f"kernel floor ({fl.get('mode')}) {ms(get(fl, 'latency', 'p50_us'))}")
    r_crun = ratio(q["p50_us"], get(crun, "p50_us"))
    r_floor = ratio(q["p50_us"], get(fl, "latency", "p50_us"))
    ratios = [rx(r_crun, "crun")]
    if fl:
        ratios.append(rx(r_floor, "floor"))
    met = None
    if r_crun is not None:
        met = r_crun <= 0.25
        if r_floor is not None:
            met = met and r_floor <= 1.3
    rows.append({
        "scenario": f"spawn: create+start+wait `/bin/true`, p50 ({q['n']} runs)",
        "quilt": f"{ms(q['p50_us'])} (p99 {ms(q['p99_us'])})",
        "peers": peers, "ratio": ", ".join(ratios),
        "target": "p50 <= 0.25x crun and <= 1.3x floor", "met": met})
    return rows


def floor_series(floor, parallel, mode=None):
    if not floor:
        return None
    best = None
    for s in get(floor, "series", default=[]):
        if int(s.get("parallel", 0)) != parallel:
            continue
        if mode and s.get("mode") != mode:
            continue
        if best is None or s.get("mode") == "overlay":
            best = s
    return best


def throughput_rows(tp):
    series = get(tp, "series", default=[])
    if not series:
        return []
    t = get(tp, "target", default={})
    fl = get(tp, "floor", "rate_per_s")
    quilt = ", ".join(f"K={s['concurrency']}: {s['rate_per_s']:.0f}/s" for s in series)
    return [{
        "scenario": f"throughput: containers/s, K lifecycles on one connection "
                    f"({tp.get('seconds_per_level', '?'):g} s per K)",
        "quilt": quilt,
        "peers": [f"kernel floor, 2 loops at once: {fl:.0f}/s" if fl else
                  f"kernel floor: {get(tp, 'floor', 'note', default='n/a')}"],
        "ratio": rx(t.get("ratio"), "floor") + (f" (best, K={t.get('best_concurrency')})" if fl else ""),
        "target": ">= 0.80x floor (2 loops)", "met": t.get("met")}]


def density_rows(de):
    t = get(de, "targets", default={})
    if not t:
        return []
    n = de.get("count", "?")
    per = get(de, "running", "cgroup_memory", "per_container_usage_bytes", "mean")
    rows = [{
        "scenario": f"density: {n} containers running `sleep`, quiltd RSS (VmHWM)",
        "quilt": f"{t.get('quiltd_vmhwm_mib', 0):.1f} MiB"
                 + (f"; {per / 1048576:.2f} MiB cgroup memory per container" if per else ""),
        "peers": [], "ratio": "", "target": f"<= {t.get('quiltd_rss_mib_at_most')} MiB",
        "met": t.get("quiltd_rss_met")}, {
        "scenario": f"density: GetContainer p99 with {n} running",
        "quilt": f"{t.get('get_container_p99_ms', 0):.2f} ms",
        "peers": [], "ratio": "", "target": f"<= {t.get('get_container_p99_ms_at_most')} ms",
        "met": t.get("get_container_p99_met")}]
    return rows


def api_rows(api):
    rows = []
    res = get(api, "results", default=[])
    rpcs = []
    for c in res:
        if c["rpc"] not in rpcs:
            rpcs.append(c["rpc"])
    for rpc in rpcs:
        cs = [c for c in res if c["rpc"] == rpc]
        streams = "/".join(str(c["streams"]) for c in cs)
        q = "/".join(num(get(c, "quilt", "req_per_s_median")) for c in cs)
        have_b = any("grpcpp" in c for c in cs)
        b = "/".join(num(get(c, "grpcpp", "req_per_s_median")) for c in cs)
        rr = [c.get("quilt_over_grpcpp") for c in cs]
        met = None
        if have_b and all(r is not None for r in rr):
            met = all(r > 1 for r in rr)
        rows.append({
            "scenario": f"API: {rpc} RPC/s at {streams} streams, one connection",
            "quilt": q,
            "peers": [f"gRPC C++ {b}" if have_b else
                      f"gRPC C++ n/a ({get(api, 'peers', 'grpcpp', default='not run')})"],
            "ratio": "/".join(rx(r) for r in rr) if have_b else "n/a",
            "target": "Quilt ahead", "met": met})
    return rows


def unary_rows(un):
    sc = {s.get("name"): s for s in get(un, "scenarios", default=[])}
    s64 = sc.get("c1-m64")
    if not s64:
        return []
    t = get(un, "targets", default={})
    rps = get(s64, "summary", "req_per_s_median")
    rss = get(un, "quiltd_rss_kb", "peak_sampled_VmRSS")
    return [{
        "scenario": "unary: GetSystemInfo, 64 streams on one connection",
        "quilt": f"{num(rps)} RPC/s, RSS {rss / 1024:.1f} MiB" if rss else f"{num(rps)} RPC/s",
        "peers": [], "ratio": "",
        "target": ">= 100k RPC/s, RSS < 16 MiB",
        "met": (t.get("req_per_s_64_streams_met") and t.get("rss_met"))
        if t else None}]


def logs_rows(lg, docker):
    rows = []
    gens = get(lg, "generators", default={})
    size = lg.get("size_bytes", 0) if isinstance(lg, dict) else 0
    dl = get(docker, "logs")
    for g in ("zeros", "lines"):
        x = gens.get(g)
        if not x:
            continue
        q = get(x, "log", "mib_per_s_median")
        pipe = get(x, "pipe", "mib_per_s_median")
        peers = [f"pipe into a file {num(pipe)} MiB/s"]
        rat = [rx(ratio(q, pipe), "pipe")]
        if g == "lines":
            if dl:
                peers.append(f"docker json-file {num(dl['mib_per_s_median'])} MiB/s"
                             f" ({dl['size_bytes'] >> 20} MiB)")
                rat.append(rx(ratio(q, dl["mib_per_s_median"]), "docker"))
            elif docker is not None:
                peers.append(f"docker n/a ({get(docker, 'unavailable', default='not run')})")
        tgt = get(lg, "target", default={})
        judged = tgt.get("generator") == g
        rows.append({
            "scenario": f"logs: {size >> 20} MiB to stdout into the log, `{g}`"
                        + (" (binary)" if g == "zeros" else " (72-byte lines)"),
            "quilt": f"{num(q)} MiB/s",
            "peers": peers, "ratio": ", ".join(rat),
            "target": ">= 300 MiB/s" if judged else "(not judged)",
            "met": tgt.get("met") if judged else None})
    return rows


def setup_rows(st):
    pl = get(st, "series", "plain", "total_us", default={})
    ca = get(st, "series", "cached", "total_us", default={})
    return [{
        "scenario": f"setup: container on a cached setup layer vs no setup, p50 ({ca.get('n')} runs)",
        "quilt": ms(ca.get("p50")),
        "peers": [f"no setup {ms(pl.get('p50'))}"],
        "ratio": rx(st.get("ratio_p50"), "no setup"),
        "target": "<= 1.10x no setup",
        "met": get(st, "target", "met")}]


def exec_rows(ex):
    se = get(ex, "series", default={})
    q = se.get("quilt", {})
    peers = [f"{t} exec {ms(s.get('p50_us'))}" for t, s in se.items() if t != "quilt"]
    rat = ", ".join(rx(r, t) for t, r in get(ex, "ratios_p50", default={}).items())
    return [{
        "scenario": f"exec: `true` in a running container, p50 ({q.get('n')} runs)",
        "quilt": ms(q.get("p50_us")), "peers": peers, "ratio": rat,
        "target": "< 2 ms", "met": get(ex, "target", "met")}]


def floor_rows(fl):
    rows = []
    for s in get(fl, "series", default=[]):
        lat = s.get("latency", {})
        rows.append({
            "scenario": f"kernel floor: {s.get('mode')} x{s.get('parallel')} (no runtime)",
            "quilt": "—",
            "peers": [f"floor p50 {ms(lat.get('p50_us'))}, {s.get('rate_containers_per_s', 0):.0f}/s"],
            "ratio": "", "target": "(reference)", "met": None})
    return rows


def generic_rows(name, data):
    t = data.get("target") or data.get("targets") or {}
    met = t.get("met") if isinstance(t, dict) else None
    return [{"scenario": f"{name}", "quilt": "see JSON", "peers": [], "ratio": "",
             "target": json.dumps(t)[:80] if t else "", "met": met}]


# ------------------------------------------------------------------ plots

def write_plots(plots_dir, results, gnuplot, prefix=""):
    """Returns (list of png paths, note)."""
    if not gnuplot:
        return [], "plots skipped: gnuplot not installed (gnuplot-nox)"
    os.makedirs(plots_dir, exist_ok=True)
    pngs = []
    scripts = []
    dats = []  # data files for gnuplot, removed afterwards

    # Spawn latency CDF: samples where the JSON has them, else the
    # percentile points (min, p50, p90, p99, max) joined by lines.
    curves = []
    sp = results.get("spawn")
    if sp:
        for name, r in get(sp, "runtimes", default={}).items():
            t = r.get("total")
            if r.get("samples_us"):
                curves.append((name, r["samples_us"], True))
            elif t:
                curves.append((name, t, False))
    dk = results.get("docker")
    if dk and get(dk, "spawn"):
        s = dk["spawn"]
        curves.append(("docker", s.get("samples_us") or s["total"], bool(s.get("samples_us"))))
    fl = floor_series(results.get("floor"), 1)
    if fl and fl.get("latency"):
        curves.append((f"floor-{fl.get('mode')}", fl["latency"], False))
    if curves:
        plot_cmds = []
        for i, (name, data, is_samples) in enumerate(curves):
            dat = os.path.join(plots_dir, f"{prefix}spawn-cdf-{i}.dat")
            dats.append(dat)
            with open(dat, "w") as f:
                if is_samples:
                    s = sorted(data)
                    for j, v in enumerate(s):
                        f.write(f"{v / 1000:.4f} {(j + 1) / len(s):.5f}\n")
                else:
                    for k, p in (("min_us", 0.0), ("p50_us", 0.5), ("p90_us", 0.9),
                                 ("p99_us", 0.99), ("max_us", 1.0)):
                        if data.get(k) is not None:
                            f.write(f"{data[k] / 1000:.4f} {p}\n")
            style = "lines lw 2" if is_samples else "linespoints lw 2 pt 7 ps 0.6"
            label = name + ("" if is_samples else " (percentiles)")
            plot_cmds.append(f"'{dat}' using 1:2 with {style} title '{label}'")
        png = os.path.join(plots_dir, prefix + "spawn-latency-cdf.png")
        scripts.append(
            f"set terminal pngcairo size 900,560\nset output '{png}'\n"
            "set title 'Spawn latency: create+start+wait of /bin/true'\n"
            "set xlabel 'ms per container (log scale)'\nset ylabel 'fraction of runs'\n"
            "set logscale x\nset key bottom right\nset grid\nset yrange [0:1.02]\n"
            "plot " + ", \\\n  ".join(plot_cmds) + "\n")
        pngs.append(png)

    # API: calls per second against concurrent streams.
    api = results.get("api")
    if api and get(api, "results"):
        plot_cmds = []
        res = api["results"]
        rpcs = []
        for c in res:
            if c["rpc"] not in rpcs:
                rpcs.append(c["rpc"])
        for ci, rpc in enumerate(rpcs):
            for srv, label in (("quilt", "quiltd"), ("grpcpp", "gRPC C++")):
                pts = [(c["streams"], c[srv]["req_per_s_median"]) for c in res
                       if c["rpc"] == rpc and srv in c]
                if not pts:
                    continue
                dat = os.path.join(plots_dir, f"{prefix}api-{rpc}-{srv}.dat")
                dats.append(dat)
                with open(dat, "w") as f:
                    for m, r in sorted(pts):
                        f.write(f"{m} {r}\n")
                dash = "dt 1" if srv == "quilt" else "dt 2"
                plot_cmds.append(f"'{dat}' using 1:2 with linespoints lw 2 pt 7 lc {ci + 1} {dash} "
                                 f"title '{label} {rpc}'")
        if plot_cmds:
            png = os.path.join(plots_dir, prefix + "api-rps-vs-streams.png")
            scripts.append(
                f"set terminal pngcairo size 900,560\nset output '{png}'\n"
                "set title 'API: unary calls per second, one HTTP/2 connection'\n"
                "set xlabel 'concurrent streams (log scale)'\nset ylabel 'calls/s'\n"
                "set logscale x 2\nset key top left\nset grid\nset yrange [0:*]\n"
                "plot " + ", \\\n  ".join(plot_cmds) + "\n")
            pngs.append(png)

    # Throughput: containers per second against concurrency, with the floor.
    tp = results.get("throughput")
    if tp and get(tp, "series"):
        dat = os.path.join(plots_dir, prefix + "throughput.dat")
        dats.append(dat)
        with open(dat, "w") as f:
            for s in tp["series"]:
                f.write(f"{s['concurrency']} {s['rate_per_s']}\n")
        cmds = [f"'{dat}' using 1:2 with linespoints lw 2 pt 7 title 'quiltd'"]
        fr = get(tp, "floor", "rate_per_s")
        if fr:
            cmds.append(f"{fr} with lines dt 2 lw 2 title 'kernel floor, 2 loops ({fr:.0f}/s)'")
            cmds.append(f"{0.8 * fr} with lines dt 3 lw 2 title 'target: 80% of the floor'")
        png = os.path.join(plots_dir, prefix + "throughput-vs-concurrency.png")
        scripts.append(
            f"set terminal pngcairo size 900,560\nset output '{png}'\n"
            "set title 'Throughput: containers completed per second, one connection'\n"
            "set xlabel 'lifecycles in flight, K (log scale)'\nset ylabel 'containers/s'\n"
            "set logscale x 2\nset key bottom right\nset grid\nset yrange [0:*]\n"
            "plot " + ", \\\n  ".join(cmds) + "\n")
        pngs.append(png)

    if not scripts:
        return [], "no plots: no spawn, api or throughput results"
    gp = os.path.join(plots_dir, prefix + "plots.gp")
    with open(gp, "w") as f:
        f.write("\n".join(scripts))
    p = subprocess.run([gnuplot, gp], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        for d in dats + [gp]:
            os.unlink(d)
        return [], "gnuplot failed: " + p.stderr.strip()[-300:]
    for d in dats + [gp]:
        os.unlink(d)
    return [x for x in pngs if os.path.exists(x)], ""


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--plots", help="directory for the PNG plots")
    ap.add_argument("--plot-prefix", default="", help="file name prefix of the plots")
    ap.add_argument("--notes")
    ap.add_argument("--mode", default="full")
    ap.add_argument("--gnuplot", default=shutil.which("gnuplot"))
    a = ap.parse_args()

    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    entries = []
    with open(a.manifest) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            p = (line.split("\t") + [""] * 6)[:6]
            entries.append({"name": p[0], "status": p[1], "exit_code": int(p[2] or 0),
                            "seconds": float(p[3] or 0),
                            "json": [x for x in p[4].split(",") if x], "note": p[5]})
    notes = []
    if a.notes and os.path.exists(a.notes):
        notes = [l.rstrip("\n") for l in open(a.notes) if l.strip()]

    # Every result file, by its kind (spawn, docker, floor, ...).
    # The docker peer writes one file per series (spawn, logs): merge them.
    results = {}
    for e in entries:
        for path in e["json"]:
            d = load(path)
            k = kind_of(path, d)
            if k == "docker" and k in results:
                for key in ("spawn", "logs"):
                    if key in d:
                        results[k][key] = d[key]
                if "unavailable" in d and not any(x in results[k] for x in ("spawn", "logs")):
                    results[k]["unavailable"] = d["unavailable"]
            else:
                results.setdefault(k, d)

    scenarios = {}
    for e in entries:
        item = {"status": e["status"], "exit_code": e["exit_code"], "seconds": e["seconds"],
                "note": e["note"], "files": [os.path.relpath(p, src) if p.startswith(src) else p
                                             for p in e["json"]]}
        for path in e["json"]:
            d = load(path)
            k = kind_of(path, d)
            if k == e["name"]:
                item["result"] = d
            else:
                item.setdefault("peers", {})[k] = d
        scenarios[e["name"]] = item

    rows = []
    builders = {
        "spawn": lambda: spawn_rows(results.get("spawn", {}), results.get("docker"),
                                    results.get("floor")),
        "throughput": lambda: throughput_rows(results.get("throughput", {})),
        "density": lambda: density_rows(results.get("density", {})),
        "api": lambda: api_rows(results.get("api", {})),
        "unary": lambda: unary_rows(results.get("unary", {})),
        "logs": lambda: logs_rows(results.get("logs", {}), results.get("docker")),
        "setup": lambda: setup_rows(results.get("setup", {})),
        "exec": lambda: exec_rows(results.get("exec", {})),
        "floor": lambda: floor_rows(results.get("floor", {})),
    }
    for e in entries:
        name = e["name"]
        if e["status"] == "skipped" and e["note"] == "not selected":
            continue  # listed in the status table only
        if e["status"] != "ok":
            rows.append({"scenario": name, "quilt": e["status"] + (f" (exit {e['exit_code']})"
                                                                    if e["status"] == "failed" else ""),
                         "peers": [], "ratio": "", "target": e["note"], "met": None,
                         "status": e["status"]})
            continue
        try:
            r = builders[name]() if name in builders else generic_rows(name, results.get(name, {}))
        except Exception as ex:  # a format we do not know: say so, keep going
            r = [{"scenario": name, "quilt": f"unreadable result ({type(ex).__name__}: {ex})",
                  "peers": [], "ratio": "", "target": "", "met": None}]
        if not r:
            r = generic_rows(name, results.get(name, {}))
        rows.extend(r)

    plots, plot_note = ([], "plots skipped: --plots not given")
    if a.plots:
        try:
            plots, plot_note = write_plots(a.plots, results, a.gnuplot, a.plot_prefix)
        except Exception as ex:
            plots, plot_note = [], f"plots failed: {type(ex).__name__}: {ex}"
    if plot_note:
        notes.append(plot_note)

    machine = machine_info()
    git = git_info(src)
    now = datetime.datetime.now(datetime.timezone.utc)
    combined = {
        "benchmark": "all",
        "what": "bench/run: every scenario in sequence, Quilt against its peers on the same machine",
        "mode": a.mode,
        "date": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": platform.node(),
        "machine": machine,
        "kernel": machine.get("kernel"),
        "commit": git,
        "notes": notes,
        "summary": [{k: v for k, v in r.items()} for r in rows],
        "plots": [os.path.basename(p) for p in plots],
        "scenarios": scenarios,
    }
    with open(a.json, "w") as f:
        json.dump(combined, f, indent=2)
        f.write("\n")

    md = []
    md.append(f"# Benchmarks, {combined['date']} ({a.mode})\n")
    md.append(f"Machine: `{combined['host']}`, {machine.get('nproc')} CPUs "
              f"({machine.get('cpu_model', '?')}), {machine.get('mem_total_kb', 0) >> 20} GiB, "
              f"kernel `{machine.get('kernel')}`, cgroups {machine.get('cgroup_mode')}. "
              f"Commit `{git['commit']}`{' (with local changes)' if git['dirty'] else ''}.\n")
    md.append("| scenario | Quilt | peers | ratio | target | result |")
    md.append("| --- | --- | --- | --- | --- | --- |")
    esc = lambda s: str(s).replace("|", "\\|")
    for r in rows:
        res = verdict(r["met"]) if r.get("status") is None else r["status"]
        md.append(f"| {esc(r['scenario'])} | {esc(r['quilt'])} | {esc('; '.join(r['peers']) or '—')}"
                  f" | {esc(r['ratio'] or '—')} | {esc(r['target'] or '—')} | {res} |")
    md.append("")
    md.append("| scenario | status | seconds | files |")
    md.append("| --- | --- | ---: | --- |")
    for e in entries:
        files = ", ".join(f"`{os.path.basename(p)}`" for p in e["json"]) or "—"
        st = e["status"] + (f": {e['note']}" if e["note"] else "")
        md.append(f"| {e['name']} | {esc(st)} | {e['seconds']:.0f} | {files} |")
    if notes:
        md.append("\nNotes:\n")
        md.extend(f"* {esc(n)}" for n in notes)
    if plots:
        md.append("\nPlots:\n")
        md.extend(f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in plots)
    md.append("")
    with open(a.md, "w") as f:
        f.write("\n".join(md))

    # The same table on stdout, compactly.
    print()
    print(f"  bench/run summary ({a.mode}; {machine.get('nproc')} CPUs, {machine.get('kernel')},"
          f" {git['commit']}{' dirty' if git['dirty'] else ''})")
    for r in rows:
        res = verdict(r["met"]).replace("*", "") if r.get("status") is None else r["status"]
        print(f"  - {r['scenario']}: quilt {r['quilt']}")
        if r["peers"]:
            print(f"      peers: {'; '.join(r['peers'])}")
        if r["ratio"] or r["target"]:
            print(f"      ratio: {r['ratio'] or '-'}   target: {r['target'] or '-'} -> {res}")
    for n in notes:
        print(f"  note: {n}")
    print(f"\n  JSON: {a.json}\n  Markdown: {a.md}")
    for p in plots:
        print(f"  plot: {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Attribution reports for bench/spawn/profile.

  perf-report.py oncpu PERF_SCRIPT_TXT DAEMON_PID QUILTD_BINARY RUNS
      input: `perf script -F pid,tid,comm,ip,sym` of `perf record -e cpu-clock -g
      -p DAEMON_PID` (children inherited). Splits the samples into quiltd's own
      process and its children (container processes before and after exec),
      charges each daemon sample to the innermost quiltd function on its stack
      with the system call below it, and each child sample to the first
      recognised step (mounts, execve, exit teardown, ...).

  perf-report.py offcpu TIMEHIST_TXT FORKS_TXT DAEMON_PID RUNS
      input: `perf sched timehist` of `perf record -a -g -e sched:sched_switch,
      sched:sched_wakeup,sched:sched_process_fork`, and `perf script -F trace`
      of the same data (for the fork events). For the daemon and for its
      descendants (the container processes) sums the time spent off the CPU
      by the kernel stack it blocked in, per container.

Percentages of the on-CPU report are shares of all samples (daemon + children);
the off-CPU report is in milliseconds per container.
"""
import collections
import subprocess
import sys

CHILD_STEPS = [
    ("do_exit", "exit: mm, files and namespace teardown"),
    ("do_group_exit", "exit: mm, files and namespace teardown"),
    ("__x64_sys_execve", "execve"),
    ("make_dev", "spawn.c:make_dev (/dev tmpfs, mknod, symlinks, devpts, shm, mqueue)"),
    ("make_sys", "spawn.c:make_sys (sysfs)"),
    ("enter_root", "spawn.c:enter_root (pivot_root, umount old root)"),
    ("setup_mounts", "spawn.c:setup_mounts (overlay, proc, tmp)"),
    ("loopback_up", "spawn.c:loopback_up (lo up)"),
    ("reset_signals", "spawn.c:reset_signals"),
    ("child_main", "spawn.c:child_main (other)"),
]


def read_perf_script(path):
    samples, cur = [], None
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                if cur:
                    samples.append(cur)
                cur = None
                continue
            if not line[0].isspace():
                parts = line.split()
                cur = {"comm": parts[0], "pid": parts[1].split("/")[0], "stack": []}
                continue
            p = line.split(None, 1)
            if cur is not None:
                cur["stack"].append(p[1].strip() if len(p) > 1 else "?")
    if cur:
        samples.append(cur)
    return samples


def syscall_of(frames):
    k = [x for x in frames if x.startswith("__x64_sys_") or x.startswith("__do_sys_")]
    return k[-1].replace("__x64_sys_", "").replace("__do_sys_", "") if k else None


def oncpu(path, pid, binary, runs):
    syms = set()
    out = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True).stdout
    for line in out.splitlines():
        p = line.split()
        if len(p) == 3 and p[1] in "tTwW":
            syms.add(p[2])
    samples = read_perf_script(path)
    n = len(samples)
    if n == 0:
        print("no samples")
        return
    daemon = [s for s in samples if s["pid"] == pid]
    child = [s for s in samples if s["pid"] != pid]
    pre = sum(1 for s in child if s["comm"] == "quiltd")
    print(f"{n} samples: quiltd {100 * len(daemon) / n:.1f}%, container processes "
          f"{100 * len(child) / n:.1f}% (before exec {100 * pre / n:.1f}%, after {100 * (len(child) - pre) / n:.1f}%)")
    print()
    print("quiltd's own process, by innermost quiltd function (self + libraries + kernel below it):")
    own = collections.Counter()
    sub = collections.defaultdict(collections.Counter)
    for s in daemon:
        st = s["stack"]
        idx = next((i for i, f in enumerate(st) if f in syms), None)
        if idx is None:
            sc = syscall_of(st)
            f = f"(no quiltd frame: {sc or (st[0] if st else '?')})"
            own[f] += 1
            continue
        f = st[idx]
        own[f] += 1
        sub[f][syscall_of(st[:idx]) or ("user" if idx == 0 else st[0])] += 1
    for f, c in own.most_common(22):
        detail = ", ".join(f"{k} {100 * v / n:.1f}%" for k, v in sub[f].most_common(3))
        print(f"  {100 * c / n:5.1f}%  {f:<34} {detail}")
    print()
    print("container processes, by step:")
    steps = collections.Counter()
    for s in child:
        st = s["stack"]
        key = None
        for f in st:
            for name, label in CHILD_STEPS:
                if f == name:
                    key = label
                    break
            if key:
                break
        if key is None:
            key = "other: " + (syscall_of(st) or (st[0] if st else "?"))
        steps[key] += 1
    for k, v in steps.most_common(14):
        print(f"  {100 * v / n:5.1f}%  {k}")


def descendants(forks_path, pid):
    """pids descending from pid, from sched_process_fork trace lines."""
    children = collections.defaultdict(set)
    with open(forks_path, errors="replace") as f:
        for line in f:
            if "child_pid=" not in line:
                continue
            kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
            parent = kv.get("pid") or kv.get("parent_pid")
            if parent and "child_pid" in kv:
                children[parent].add(kv["child_pid"])
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, ()):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def offcpu(path, forks_path, pid, runs):
    kids = descendants(forks_path, pid)
    rows = []
    with open(path, errors="replace") as f:
        for line in f:
            p = line.split(None, 6)
            if len(p) < 6 or "[" not in p[2]:
                continue
            try:
                float(p[3]), float(p[5])
            except ValueError:
                continue
            rows.append(p)
    by_task = collections.defaultdict(list)
    for r in rows:
        by_task[r[2]].append(r)
    groups = {"quiltd (daemon)": collections.Counter(), "container processes": collections.Counter()}
    counts = {k: collections.Counter() for k in groups}
    oncpu_ms = collections.Counter()
    for task, rs in by_task.items():
        name, _, tid = task.rpartition("[")
        tid = tid.rstrip("]")
        if tid == pid:
            g = "quiltd (daemon)"
        elif tid in kids:
            g = "container processes"
        else:
            continue
        oncpu_ms[g] += sum(float(r[5]) for r in rs)
        # The wait printed on a line is the time off the CPU before that run;
        # the stack on the previous line is where the task blocked.
        for i in range(len(rs) - 1):
            stack = rs[i][6].strip() if len(rs[i]) > 6 else ""
            key = " <- ".join(stack.split(" <- ")[:5]) or "?"
            groups[g][key] += float(rs[i + 1][3])
            counts[g][key] += 1
    for g, c in groups.items():
        tot = sum(c.values())
        print(f"{g}: on CPU {oncpu_ms[g] / runs:.2f} ms, off CPU {tot / runs:.2f} ms per container; "
              f"blocked in (ms per container, times per container):")
        for k, v in c.most_common(10):
            print(f"  {v / runs:7.3f} ms  {counts[g][k] / runs:6.2f}x  {k}")
        print()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if sys.argv[1] == "oncpu" and len(sys.argv) == 6:
        oncpu(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif sys.argv[1] == "offcpu" and len(sys.argv) == 6:
        offcpu(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

"""Helpers shared by the bench scripts' summarize.py files (stdlib only)."""


def read_env(path):
    """KEY=VALUE lines, as the run scripts write them (bench_machine_env)."""
    env = {}
    with open(path) as f:
        for line in f:
            k, sep, v = line.rstrip("\n").partition("=")
            if sep:
                env[k] = v
    return env


def pct(sorted_vals, p):
    """Percentile p (0-100) with linear interpolation between closest ranks;
    None for no values."""
    if not sorted_vals:
        return None
    k = (len(sorted_vals) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)

#!/usr/bin/env python3
"""The sampler's own CPU cost per rate: `python3 tests/support/cpu_per_sample.py [--rates ...]`.

For each rate, starts tests/workloads/bench_depth.py (a CPU-bound target at a fixed depth),
attaches `tracer attach --rate R --format json`, and after a settling second measures the
tracer's CPU over a window of W seconds from /proc/TRACER/stat (utime + stime, in clock ticks)
and, finer, from /proc/TRACER/task/*/schedstat (ns on a CPU, summed over its threads). Samples
per second come from the JSON's stats.samples / stats.duration_s. Prints one row per rate:
% of a core and CPU µs per sample, by both measures, the late, missed and throttled ticks, and
the share of the time the sampler spun (stats.spin_s; absent from older tracers). Extra tracer options (e.g. --max-cpu 5)
go after `--`. See docs/benchmarks.md ("The sampler's CPU at a given rate").
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKLOAD = os.path.join(ROOT, "tests", "workloads", "bench_depth.py")
TICKS = os.sysconf("SC_CLK_TCK")


def stat_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command: state is field 3; utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / TICKS


def schedstat_cpu_s(pid):
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def default_python():
    found = sorted(glob.glob(os.path.expanduser(
        os.environ.get("PYENV_ROOT", "~/.pyenv") + "/versions/3.12.*/bin/python")))
    return found[-1] if found else "python3.12"


def measure(tracer, python, rate, window, depth, extra):
    target = subprocess.Popen([python, WORKLOAD, str(depth)], stdout=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True)
    try:
        for line in target.stdout:
            if line.strip() == "ready":
                break
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "r.json")
            settle = 1.0
            tracer_proc = subprocess.Popen(
                [tracer, "attach", "--pid", str(target.pid), "--rate", str(rate),
                 "--duration", str(window + settle + 0.5), "--format", "json", "-o", out]
                + extra,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(settle)
            t0, s0, w0 = stat_cpu_s(tracer_proc.pid), schedstat_cpu_s(tracer_proc.pid), time.monotonic()
            time.sleep(window)
            t1, s1, w1 = stat_cpu_s(tracer_proc.pid), schedstat_cpu_s(tracer_proc.pid), time.monotonic()
            if tracer_proc.wait(60) != 0:
                raise SystemExit(f"tracer failed at rate {rate}")
            with open(out) as f:
                stats = json.load(f)["stats"]
    finally:
        target.kill()
        target.wait()
    wall = w1 - w0
    per_s = stats["samples"] / stats["duration_s"]
    return {
        "rate": rate,
        "samples_per_s": per_s,
        "stat_pct": 100 * (t1 - t0) / wall,
        "stat_us": 1e6 * (t1 - t0) / (per_s * wall),
        "sched_pct": 100 * (s1 - s0) / wall,
        "sched_us": 1e6 * (s1 - s0) / (per_s * wall),
        "stats": stats,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracer", default=os.path.join(ROOT, "target", "release", "tracer"))
    parser.add_argument("--python", default=default_python())
    parser.add_argument("--rates", default="100,1000,10000,1000000")
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--depth", type=int, default=40)
    parser.add_argument("extra", nargs="*", help="more tracer options, after --")
    args = parser.parse_args()
    print(f"# load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores, window {args.window}s, "
          f"depth {args.depth}, {args.python}, extra {args.extra}")
    print(f"{'rate':>8} {'samples/s':>10} {'%core(stat)':>12} {'us/sample(stat)':>16} "
          f"{'%core(sched)':>13} {'us/sample(sched)':>17} {'late':>7} {'missed':>9} {'throttled':>10} "
          f"{'spin%':>6}")
    for rate in [float(r) for r in args.rates.split(",")]:
        r = measure(args.tracer, args.python, rate, args.window, args.depth, args.extra)
        s = r["stats"]
        print(f"{rate:>8.0f} {r['samples_per_s']:>10.0f} {r['stat_pct']:>12.2f} {r['stat_us']:>16.2f} "
              f"{r['sched_pct']:>13.2f} {r['sched_us']:>17.2f} {s.get('late', 0):>7} "
              f"{s.get('missed', 0):>9} {s.get('throttled', 0):>10} "
              f"{100 * s.get('spin_s', 0) / s['duration_s']:>6.1f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

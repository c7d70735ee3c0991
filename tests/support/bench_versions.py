"""`make bench`'s per-version section (bench.py --only versions): `tracer attach` on the
depth-40 workload (tests/workloads/bench_depth.py) under every CPython 3.8+ found, at 100 Hz,
1 kHz and 10 kHz: achieved samples/s, missed ticks, truncated stacks, threads left out and the
tracer's own CPU per sample. Issue 13's targets for the sampler's depth-40 stacks: at most 5 %
of samples truncated on every version, CPU ≤ 5 µs per sample at every rate.

Interpreters: pyenv's `$PYENV_ROOT/versions/3.*/bin/python` and the fetched
`target/pythons/*/bin/python3.*` (`make pythons-new`), one per minor version, pyenv's first;
`--versions-pythons` picks minors. See docs/benchmarks.md.
"""

import glob
import json
import os
import re
import statistics
import tempfile
import time

DEFAULT_RATES = "100,1000,10000"
DEPTH = 40


def find_pythons(root, wanted=None):
    """{minor: path} of the CPython 3.8+ interpreters found (free-threaded builds left out)."""
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = {}
    candidates = sorted(glob.glob(os.path.join(pyenv, "versions", "3.*", "bin", "python")))
    candidates += sorted(glob.glob(os.path.join(root, "target", "pythons", "*", "bin",
                                                "python3.*")))
    for path in candidates:
        match = re.search(r"/3\.(\d+)(\.\d+)?/bin/python", path) or \
            re.search(r"/python3\.(\d+)$", path)
        if not match or path.endswith("t") or "3.13t" in path:
            continue
        minor = int(match.group(1))
        if minor < 8 or minor in found or (wanted and minor not in wanted):
            continue
        found[minor] = path
    return dict(sorted(found.items()))


def measure(bench, tools, args, log):
    """{(minor, rate): row} medians over args.repeat runs, and the SKIP notes."""
    wanted = {int(v.split(".")[1]) for v in args.versions_pythons.split(",")} \
        if args.versions_pythons else None
    pythons = find_pythons(bench.ROOT, wanted)
    notes = []
    if wanted:
        notes += [f"SKIP: no CPython 3.{m} found" for m in sorted(wanted - set(pythons))]
    rates = [int(r) for r in args.versions_rates.split(",")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="tracer-bench-versions-") as work:
        for minor, python in pythons.items():
            log(f"versions: depth {DEPTH} on Python 3.{minor} ({python})")
            workload = bench.Workload(python, DEPTH)
            try:
                time.sleep(0.5)
                for rate in rates:
                    rows = []
                    for _ in range(args.repeat):
                        workload.check_alive()
                        rows.append(one_run(tools, workload.pid, rate, args.versions_duration,
                                            work, bench))
                    row = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
                    results[(minor, rate)] = row
                    log(f"  {rate:>6} Hz: {row['rate']:8,.0f} samples/s, missed "
                        f"{row['missed_pct']:5.1f} %, truncated {row['truncated_pct']:5.1f} %, "
                        f"left out {row['dropped_pct']:5.1f} %, {row['cpu_us']:6.1f} µs/sample "
                        f"({row['sampler_us']:.1f} sampling)")
            finally:
                workload.stop()
    return results, notes


def one_run(tools, pid, rate, seconds, work, bench):
    output = os.path.join(work, "tracer.json")
    argv = [tools.tracer, "attach", "--pid", str(pid), "--rate", str(rate),
            "--duration", str(seconds), "--format", "json", "-o", output, *tools.reader_args]
    run = bench.run_tool("tracer", argv, work, seconds)
    run.check()
    with open(output) as f:
        stats = json.load(f)["stats"]
    samples = stats["samples"]
    ticks = stats["ticks"] or 1
    dropped = sum(stats.get("threads_dropped", {}).values())
    return {
        "rate": samples / stats["duration_s"] if stats["duration_s"] else 0.0,
        "missed_pct": 100.0 * stats["missed"] / ticks,
        "truncated_pct": 100.0 * stats["truncated"] / samples if samples else 0.0,
        # One thread per sample in this workload: threads left out per sample taken.
        "dropped_pct": 100.0 * dropped / samples if samples else 0.0,
        # The tracer's own CPU (its rusage, attach included) per sample, and the sampling
        # threads' alone (`stats.cpu_s`: the steady cost, without attaching).
        "cpu_us": 1e6 * run.cpu / samples if samples else 0.0,
        "sampler_us": 1e6 * stats["cpu_s"] / samples if samples else 0.0,
    }


def table(results, notes, args):
    lines = ["", f"Depth {DEPTH} on every version: `tracer attach` {args.versions_duration} s "
                 f"per rate, median of {args.repeat}; truncated = samples whose innermost frames "
                 f"were cut off, left out = thread stacks not reported in a sample, µs/smp = the "
                 f"tracer's CPU per sample (attach included), sampling = its sampling threads' "
                 f"(stats.cpu_s)"]
    lines.append(f"  {'py':>5s} {'rate':>8s} {'samples/s':>10s} {'missed%':>8s} "
                 f"{'trunc%':>7s} {'left%':>6s} {'µs/smp':>7s} {'sampling':>9s}")
    for (minor, rate), row in results.items():
        lines.append(f"  {'3.' + str(minor):>5s} {rate:>6} Hz {row['rate']:10,.0f} "
                     f"{row['missed_pct']:8.1f} {row['truncated_pct']:7.1f} "
                     f"{row['dropped_pct']:6.1f} {row['cpu_us']:7.1f} {row['sampler_us']:9.1f}")
    worst_truncated = max((r["truncated_pct"] for r in results.values()), default=None)
    worst_cpu = max((r["sampler_us"] for r in results.values()), default=None)
    lines.append("  Issue 13 targets (informational)")
    if worst_truncated is not None:
        lines.append(f"    truncated ≤ 5 % on every version and rate: worst "
                     f"{worst_truncated:.1f} %  {'PASS' if worst_truncated <= 5 else 'MISS'}")
        lines.append(f"    sampling CPU ≤ 5 µs per sample at every rate: worst {worst_cpu:.1f} µs  "
                     f"{'PASS' if worst_cpu <= 5 else 'MISS'}")
    for note in notes:
        lines.append("  " + note)
    return lines

"""`make bench`'s real-code section (bench.py --only real): the pytest suites of the pinned
libraries of tests/support/real_suites.py under `tracer run`, `py-spy record` and `austin`,
each starting the suite as its own child, at 1 kHz, 10 kHz and the maximum rate, on Python
3.10, 3.12 and 3.13 (by default), against plain runs of the same suite. See docs/benchmarks.md.

Each tool's own CPU is read from /proc/PID/stat (utime + stime) when it has exited and before
it is reaped (real_suites.run_measured): wait4's rusage would add the suite's CPU, since each
tool reaps the suite it started.
"""

import json
import os
import re
import statistics

import real_suites

DEFAULT_PYTHONS = "3.10,3.12,3.13"


class RealBenchError(Exception):
    pass


def rate_label(rate, max_rate):
    if rate == "max":
        return f"max ({max_rate // 1000} kHz)"
    return f"{rate // 1000} kHz"


def tracer_cell(tracer, reader_args, venv, suite, rate, work):
    output = os.path.join(work, "tracer.json")
    argv, cwd, env = suite.command()
    run = real_suites.run_measured(
        [tracer, "run", "--rate", str(rate), "--format", "json", "-o", output, *reader_args,
         "--", venv.path, *argv], cwd=cwd, env_add=env)
    check(run, "tracer", os.path.exists(output))
    with open(output) as f:
        stats = json.load(f)["stats"]
    samples = stats["samples"]
    ticks = samples + stats["errors"] + stats["missed"]
    return run, {
        "samples": samples,
        "rate": samples / stats["duration_s"] if stats["duration_s"] else 0.0,
        "missed_pct": 100.0 * stats["missed"] / ticks if ticks else 0.0,
        "truncated_pct": 100.0 * stats["truncated"] / samples if samples else 0.0,
        "errors": stats["errors"],
    }


def py_spy_cell(py_spy, venv, suite, rate, work):
    """`py-spy record --nonblocking` (like tracer run, never pausing the target), raw
    (collapsed) output: one line per distinct stack ending in its count."""
    output = os.path.join(work, "py-spy.txt")
    if os.path.exists(output):
        os.unlink(output)
    argv, cwd, env = suite.command()
    run = real_suites.run_measured(
        [py_spy, "record", "--nonblocking", "--rate", str(rate), "-o", output, "-f", "raw",
         "--", venv.path, *argv], cwd=cwd, env_add=env)
    check(run, "py-spy", os.path.exists(output))
    samples = 0
    with open(output) as f:
        for line in f:
            # `stack;frames COUNT`; anything else (a message py-spy wrote there) is not a stack.
            count = line.rsplit(" ", 1)[-1].strip()
            if count.isdigit():
                samples += int(count)
    match = re.search(r"Errors: (\d+)", run.stdout + run.stderr)
    # Sampling spans the run (py-spy starts the suite and samples until it exits).
    return run, {"samples": samples, "rate": samples / run.wall,
                 "errors": int(match.group(1)) if match else 0}


def austin_cell(austin, venv, suite, interval_us, work):
    """`austin -i US -o FILE python ...`: one output line `P<pid>;T<tid>;frames… metric` per
    sample of one thread; `# duration: µs` is its sampling time."""
    output = os.path.join(work, "austin.txt")
    if os.path.exists(output):
        os.unlink(output)
    argv, cwd, env = suite.command()
    run = real_suites.run_measured(
        [austin, "-i", str(interval_us), "-o", output, venv.path, *argv], cwd=cwd, env_add=env)
    check(run, "austin", os.path.exists(output))
    samples = 0
    duration = run.wall
    with open(output, errors="replace") as f:
        for line in f:
            if line.startswith("P"):
                samples += 1
            elif line.startswith("# duration:"):
                duration = int(line.split(":")[1]) / 1e6
    plain = re.sub(r"\x1b\[[0-9;]*m", "", run.stderr)
    match = re.search(r"Error rate : (\d+)/\d+", plain)
    return run, {"samples": samples, "rate": samples / duration if duration else 0.0,
                 "errors": int(match.group(1)) if match else 0}


def check(run, name, have_output):
    if run.returncode not in (0, 1) or not have_output:
        raise RealBenchError(f"{name} exited {run.returncode}"
                             f"{'' if have_output else ', no output'}: {run.stderr_tail()}")


def finish(run, row, plain_wall):
    row["cpu_us"] = 1e6 * run.self_cpu / row["samples"] if row["samples"] else None
    row["cpu_s"] = run.self_cpu
    row["wall"] = run.wall
    row["slowdown"] = run.wall / plain_wall
    return row


def measure(tools, args, log):
    """{(suite, python, rate): {"plain": s, "tracer": row, "py-spy": row, "austin": row}}
    and the SKIP/FAIL notes."""
    minors = real_suites.parse_minors([args.real_pythons])
    names = real_suites.parse_suites([args.real_suites]) if args.real_suites else None
    setup = real_suites.setup(minors, names, log=log)
    rates = []
    for part in args.real_rates.split(","):
        part = part.strip()
        rates.append("max" if part == "max" else int(part))
    work = os.path.join(real_suites.BASE, "bench")
    os.makedirs(work, exist_ok=True)
    results = {}
    notes = []
    for suite in setup.suites.values():
        for minor, venv in setup.venvs.items():
            argv, cwd, env = suite.command()

            def plain():
                run = real_suites.run_measured([venv.path, *argv], cwd=cwd, env_add=env)
                check(run, "the plain suite", True)
                return run.wall

            log(f"real: {suite.name} {suite.version} on Python {venv.label}")
            plains = [plain()]
            cells = []
            for rate in rates:
                hz = args.rate if rate == "max" else rate
                interval = args.austin_interval if rate == "max" else max(1, 1_000_000 // rate)
                for _ in range(args.real_repeat):
                    cells.append((rate, "tracer", lambda hz=hz: tracer_cell(
                        tools.tracer, tools.reader_args, venv, suite, hz, work)))
                    cells.append((rate, "py-spy", lambda hz=hz: py_spy_cell(
                        tools.py_spy, venv, suite, hz, work)))
                    cells.append((rate, "austin", lambda i=interval: austin_cell(
                        tools.austin, venv, suite, i, work)))
            raw = {}
            for rate, tool, fn in cells:
                try:
                    run, row = fn()
                except RealBenchError as error:
                    note = f"FAIL: {suite.name} on {venv.label} at {rate}: {tool}: {error}"
                    log("  " + note)
                    notes.append(note)
                    continue
                row["run"] = run
                raw.setdefault((rate, tool), []).append(row)
                log(f"  {rate_label(rate, args.rate):13s} {tool:7s} {row['rate']:9,.0f} samples/s"
                    f" in {run.wall:6.1f} s, own CPU {run.self_cpu:6.2f} s"
                    + (f", missed {row['missed_pct']:.1f} %, truncated "
                       f"{row['truncated_pct']:.1f} %" if tool == "tracer" else ""))
            plains.append(plain())
            plain_wall = statistics.median(plains)
            log(f"  plain: {', '.join(f'{p:.1f}' for p in plains)} s")
            for (rate, tool), rows in raw.items():
                rows = [finish(r.pop("run"), r, plain_wall) for r in rows]
                keys = [k for k in rows[0] if rows[0][k] is not None]
                merged = {k: statistics.median([r[k] for r in rows]) for k in keys}
                key = (suite.name, venv.label, rate)
                results.setdefault(key, {"plain": plain_wall})[tool] = merged
    return results, notes, setup


def table(results, notes, args):
    lines = ["", f"Real code: pytest suites started by each tool (`tracer run`, "
             f"`py-spy record --nonblocking`, `austin`); {args.real_repeat} run(s) each, "
             f"slowdown = the tool's wall time ÷ the plain suite's (median of one plain run "
             f"before and one after)"]
    head = (f"  {'suite':15s}{'py':>5s} {'rate':>14s} {'plain s':>8s} |"
            f" {'tracer/s':>9s} {'miss%':>6s} {'trunc%':>6s} {'µs/smp':>7s} {'slow':>6s} |"
            f" {'py-spy/s':>9s} {'µs/smp':>7s} {'slow':>6s} |"
            f" {'austin/s':>9s} {'µs/smp':>7s} {'slow':>6s}")
    lines.append(head)

    def cell(row, key, fmt):
        if row is None or row.get(key) is None:
            return " " * (len(fmt.format(0)) - 3) + "n/a"
        return fmt.format(row[key])

    for (suite, py, rate), tools in results.items():
        t, p, a = tools.get("tracer"), tools.get("py-spy"), tools.get("austin")
        lines.append(
            f"  {suite:15s}{py:>5s} {rate_label(rate, args.rate):>14s} {tools['plain']:8.1f} |"
            f" {cell(t, 'rate', '{:9,.0f}')} {cell(t, 'missed_pct', '{:6.1f}')}"
            f" {cell(t, 'truncated_pct', '{:6.1f}')} {cell(t, 'cpu_us', '{:7.1f}')}"
            f" {cell(t, 'slowdown', '{:5.2f}×')} |"
            f" {cell(p, 'rate', '{:9,.0f}')} {cell(p, 'cpu_us', '{:7.1f}')}"
            f" {cell(p, 'slowdown', '{:5.2f}×')} |"
            f" {cell(a, 'rate', '{:9,.0f}')} {cell(a, 'cpu_us', '{:7.1f}')}"
            f" {cell(a, 'slowdown', '{:5.2f}×')}")
    for note in notes:
        lines.append("  " + note)
    return lines

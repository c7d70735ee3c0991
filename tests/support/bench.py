#!/usr/bin/env python3
"""`make bench`: tracer against py-spy and austin, side by side in one run.

Measures, on tests/workloads/bench_depth.py (a CPU-bound target spinning at a fixed stack
depth, run by CPython 3.12):

1. paused per-sample CPU, ours vs py-spy's get_stack_traces (by tests/it/bench_paused.rs, when it
   exists);
2. live sampling at the maximum rate: achieved samples/s and the sampler's CPU, for
   `tracer attach`, `py-spy record --nonblocking` and `austin -i 1`;
3. the target's slowdown under tracer at 1 kHz and at the maximum rate, and under py-spy at
   1 kHz (nonblocking and blocking) for comparison;
4. beside Tachyon, CPython 3.15's own sampler (bench_tachyon.py), on 3.15 at the same depths:
   samples/s, CPU per sample, and writes into the target counted with strace;
5. every version (bench_versions.py): `tracer attach` at depth 40 under each CPython 3.8+ found,
   at 100 Hz, 1 kHz and 10 kHz: missed ticks, truncated stacks, threads left out, CPU per sample;
6. real code (bench_real.py): the pytest suites of pinned more-itertools, toolz and packaging
   under `tracer run`, py-spy and austin at 1 kHz, 10 kHz and the maximum rate, on 3.10, 3.12
   and 3.13.

Sections 1-3 are the synthetic ones; `--only synthetic`, `--only versions`, `--only tachyon` or
`--only real` picks one.

Every measurement is repeated (3 times by default) and the median reported. One table goes to
stdout and to target/bench-results.txt. The issue's targets are shown next to the numbers as
PASS/MISS, for information only: the bench fails only when a tool fails.
See docs/benchmarks.md.
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import bench_real
import bench_tachyon
import bench_versions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKLOAD = os.path.join(ROOT, "tests", "workloads", "bench_depth.py")
PAUSED_TEST = os.path.join(ROOT, "tests", "it", "bench_paused.rs")

# How long a tool may overrun its duration before it counts as hung.
GRACE_SECONDS = 30.0
# The start of a sampler's run left out of the slowdown window: attaching (parsing the
# interpreter's binary for its symbols) is a one-time cost, not the steady state.
SETTLE_SECONDS = 0.5


class BenchError(Exception):
    """A tool failed: the bench stops and exits non-zero."""


# ---------------------------------------------------------------------------------------------
# The target


class Workload:
    """A running bench_depth.py. It prints `tick MONOTONIC COUNT` ten times a second; a thread
    keeps those ticks so that throughput over any past window can be computed."""

    def __init__(self, python, depth):
        self.depth = depth
        self.ticks = []  # (monotonic, count)
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [python, WORKLOAD, str(depth)],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.pid = self.proc.pid
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(30):
            self.stop()
            raise BenchError(f"the workload (depth {depth}) never printed 'ready'")

    def _read(self):
        for line in self.proc.stdout:
            fields = line.split()
            if fields == ["ready"]:
                self.ready.set()
            elif len(fields) == 3 and fields[0] == "tick":
                with self.lock:
                    self.ticks.append((float(fields[1]), int(fields[2])))

    def check_alive(self):
        if self.proc.poll() is not None:
            raise BenchError(f"the workload exited with status {self.proc.returncode}")

    def throughput(self, start, end):
        """Spin iterations per second between two time.monotonic() instants, from the ticks
        that fall inside the window."""
        with self.lock:
            inside = [tick for tick in self.ticks if start <= tick[0] <= end]
        if len(inside) < 2:
            raise BenchError("the workload printed too few ticks to measure its throughput")
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return (c1 - c0) / (t1 - t0)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


# ---------------------------------------------------------------------------------------------
# Running a tool and measuring its CPU


class ToolRun:
    """One finished tool process: its wall time, CPU time (user + system, from wait4's
    rusage) and output files."""

    def __init__(self, name, wall, cpu, returncode, stdout_path, stderr_path):
        self.name = name
        self.wall = wall
        self.cpu = cpu
        self.returncode = returncode
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path

    def stdout(self):
        with open(self.stdout_path, errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def check(self):
        if self.returncode != 0:
            tail = "\n".join(self.stderr().strip().splitlines()[-10:])
            raise BenchError(f"{self.name} exited with status {self.returncode}:\n{tail}")


def run_tool(name, argv, workdir, expected_seconds, interrupt_after=None):
    """Run argv to completion and return a ToolRun. With interrupt_after, send SIGINT after
    that many seconds (py-spy's --duration counts ticks, not seconds: see docs/benchmarks.md).
    """
    stdout_path = os.path.join(workdir, f"{name}.stdout")
    stderr_path = os.path.join(workdir, f"{name}.stderr")
    with open(stdout_path, "w") as out, open(stderr_path, "w") as err:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    interrupted = interrupt_after is None
    deadline = start + expected_seconds + GRACE_SECONDS
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        now = time.monotonic()
        if not interrupted and now - start >= interrupt_after:
            proc.send_signal(signal.SIGINT)
            interrupted = True
        if now > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise BenchError(f"{name} ran {GRACE_SECONDS:.0f} s past its duration: killed")
        time.sleep(0.01)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # so that Popen never waits again
    cpu = rusage.ru_utime + rusage.ru_stime
    return ToolRun(name, wall, cpu, proc.returncode, stdout_path, stderr_path)


class Tools:
    """The command lines of the three samplers, and how to read their sample counts."""

    def __init__(self, tracer, reader_args, venv, others=True):
        self.tracer = tracer
        self.reader_args = reader_args
        self.py_spy = os.path.join(venv, "bin", "py-spy")
        self.austin = os.path.join(venv, "bin", "austin")
        # The Tachyon section alone needs neither py-spy nor austin.
        for path in (tracer, self.py_spy, self.austin) if others else (tracer,):
            if not os.access(path, os.X_OK):
                raise BenchError(f"{path} is missing: run `make bench`, which installs it")

    def tracer_run(self, pid, rate, seconds, workdir):
        """`tracer attach`; returns (ToolRun, samples, sampling seconds, errors)."""
        output = os.path.join(workdir, "tracer.json")
        argv = [self.tracer, "attach", "--pid", str(pid), "--rate", str(rate),
                "--duration", str(seconds), "--format", "json", "-o", output]
        run = run_tool("tracer", argv + self.reader_args, workdir, seconds)
        run.check()
        with open(output) as f:
            stats = json.load(f)["stats"]
        return run, stats["samples"], stats["duration_s"], stats["errors"]

    def py_spy_run(self, pid, rate, seconds, workdir, blocking=False):
        """`py-spy record -f raw`, stopped by SIGINT after `seconds`; returns (ToolRun, samples,
        sampling seconds, errors). The raw (collapsed) format is one line per distinct stack,
        ending in its sample count."""
        output = os.path.join(workdir, "py-spy.txt")
        argv = [self.py_spy, "record", "--rate", str(rate), "--pid", str(pid),
                "-o", output, "-f", "raw"]
        if not blocking:
            argv.append("--nonblocking")
        run = run_tool("py-spy", argv, workdir, seconds, interrupt_after=seconds)
        run.check()
        samples = 0
        with open(output) as f:
            for line in f:
                if line.strip():
                    samples += int(line.rsplit(" ", 1)[1])
        match = re.search(r"Samples: \d+ Errors: (\d+)", run.stdout() + run.stderr())
        errors = int(match.group(1)) if match else 0
        # Sampling ran from about the start to the SIGINT (attaching takes milliseconds).
        return run, samples, min(run.wall, seconds), errors

    def austin_run(self, pid, interval_us, seconds, workdir):
        """`austin -i N -x SECONDS -p PID -o FILE`; returns (ToolRun, samples, sampling
        seconds, errors). Each sample of each thread is one line `P<pid>;T<tid>;frames… metric`;
        the header's `# duration: N` is the sampling time in µs."""
        output = os.path.join(workdir, "austin.txt")
        argv = [self.austin, "-i", str(interval_us), "-x", str(seconds), "-p", str(pid),
                "-o", output]
        run = run_tool("austin", argv, workdir, seconds)
        run.check()
        samples = 0
        duration = seconds
        with open(output, errors="replace") as f:
            for line in f:
                if line.startswith("P"):
                    samples += 1
                elif line.startswith("# duration:"):
                    duration = int(line.split(":")[1]) / 1e6
        plain = re.sub(r"\x1b\[[0-9;]*m", "", run.stderr())
        match = re.search(r"Error rate : (\d+)/\d+", plain)
        errors = int(match.group(1)) if match else 0
        return run, samples, duration, errors


def reader_args(tracer, reader):
    """`--reader READER` if this tracer has the option. A build without it reads through
    py-spy, which serves `auto` and `py-spy` alike; `direct` then cannot be measured."""
    help_text = subprocess.run([tracer, "attach", "--help"], capture_output=True,
                               text=True).stdout
    if "--reader" in help_text:
        return ["--reader", reader], reader
    if reader in ("auto", "py-spy"):
        return [], "py-spy (this build has no --reader option)"
    raise BenchError(f"this tracer has no --reader option, so --reader {reader} cannot run")


# ---------------------------------------------------------------------------------------------
# The measurements


def median(values):
    return statistics.median(values) if values else None


def measure_live(tools, python, depth, args, workdir, log):
    """Each tool at the maximum rate for args.duration seconds, args.repeat times, taking
    turns on one workload. Returns {tool: {"rate", "cpu_pct", "us_per_sample", "errors"}}
    with medians."""
    raw = {"tracer": [], "py-spy": [], "austin": []}
    workload = Workload(python, depth)
    try:
        time.sleep(0.5)
        for rep in range(args.repeat):
            for name in raw:
                workload.check_alive()
                if name == "tracer":
                    result = tools.tracer_run(workload.pid, args.rate, args.duration, workdir)
                elif name == "py-spy":
                    result = tools.py_spy_run(workload.pid, args.rate, args.duration, workdir)
                else:
                    result = tools.austin_run(workload.pid, args.austin_interval,
                                              args.duration, workdir)
                run, samples, seconds, errors = result
                if samples == 0:
                    raise BenchError(f"{name} took no samples at depth {depth}")
                row = {
                    "rate": samples / seconds,
                    "cpu_pct": 100.0 * run.cpu / run.wall,
                    "us_per_sample": 1e6 * run.cpu / samples,
                    "errors": errors,
                }
                raw[name].append(row)
                log(f"  depth {depth} run {rep + 1}/{args.repeat} {name:7s}: "
                    f"{row['rate']:10.0f} samples/s, CPU {row['cpu_pct']:5.1f} %, "
                    f"{row['us_per_sample']:8.1f} µs/sample, {errors} errors")
        workload.check_alive()
    finally:
        workload.stop()
    return {name: {key: median([row[key] for row in rows]) for key in rows[0]}
            for name, rows in raw.items()}


TRACER_1KHZ = "tracer 1 kHz"
TRACER_MAX = "tracer at the maximum rate"


def slowdown_configs(tools, rate):
    """(label, function(pid, seconds, workdir)) for each sampler the slowdown is measured
    under."""
    return [
        (TRACER_1KHZ, lambda pid, s, d: tools.tracer_run(pid, 1000, s, d)),
        ("py-spy 1 kHz --nonblocking", lambda pid, s, d: tools.py_spy_run(pid, 1000, s, d)),
        ("py-spy 1 kHz (blocking)",
         lambda pid, s, d: tools.py_spy_run(pid, 1000, s, d, blocking=True)),
        (TRACER_MAX, lambda pid, s, d: tools.tracer_run(pid, rate, s, d)),
    ]


def measure_slowdown(tools, python, args, workdir, log):
    """The workload's throughput alone and under each sampler, alternating on one process:
    alone, A, alone, B, alone, ... Each sampler's window is compared with the mean of the
    alone windows on either side, which cancels slow drift. Returns {label: (median %
    slowdown, median samples/s the sampler achieved meanwhile)}.
    """
    configs = slowdown_configs(tools, args.rate)
    slowdowns = {label: [] for label, _ in configs}
    achieved = {label: [] for label, _ in configs}
    for rep in range(args.repeat):
        workload = Workload(python, args.slowdown_depth)
        try:
            time.sleep(1.0)  # warm-up

            def alone():
                start = time.monotonic()
                time.sleep(args.duration)
                return workload.throughput(start, time.monotonic())

            before = alone()
            for label, sample in configs:
                start = time.monotonic()
                run, samples, seconds, _ = sample(workload.pid, args.duration, workdir)
                traced = workload.throughput(start + SETTLE_SECONDS, start + run.wall)
                after = alone()
                baseline = (before + after) / 2
                slowdown = 100.0 * (1.0 - traced / baseline)
                slowdowns[label].append(slowdown)
                achieved[label].append(samples / seconds)
                log(f"  slowdown run {rep + 1}/{args.repeat} {label:28s}: {slowdown:6.2f} % "
                    f"({traced:,.0f} vs {baseline:,.0f} iterations/s alone; "
                    f"{samples / seconds:,.0f} samples/s)")
                before = after
            workload.check_alive()
        finally:
            workload.stop()
    return {label: (median(slowdowns[label]), median(achieved[label])) for label in slowdowns}


# ---------------------------------------------------------------------------------------------
# The paused per-sample comparison: tests/it/bench_paused.rs, written with the direct reader.
#
# Contract: the test is `#[ignore]`d and run with
#     cargo test --release --test it -- --ignored --nocapture bench_paused::
# with TRACER_BENCH_PYTHON (the interpreter) and TRACER_BENCH_WORKLOAD (bench_depth.py) in its
# environment. For each depth it prints one line
#     paused depth=40 ours_us=3.1 pyspy_us=530.2
# (median CPU µs per sample on the same paused target). Other output is ignored.


def measure_paused(python, cargo, log):
    """Returns ({depth: (ours_us, pyspy_us)}, note)."""
    if not os.path.exists(PAUSED_TEST):
        note = "skipped: tests/it/bench_paused.rs does not exist yet"
        log(f"paused per-sample: {note}")
        return {}, note
    log("paused per-sample: cargo test --release --test it -- --ignored --nocapture bench_paused::")
    env = dict(os.environ, TRACER_BENCH_PYTHON=python, TRACER_BENCH_WORKLOAD=WORKLOAD)
    proc = subprocess.run(
        [cargo, "test", "--release", "--test", "it", "--", "--ignored", "--nocapture",
         "bench_paused::"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise BenchError(f"bench_paused failed (status {proc.returncode}):\n{tail}")
    results = {}
    for line in proc.stdout.splitlines():
        if not line.startswith("paused "):
            continue
        log("  " + line)
        fields = dict(field.split("=", 1) for field in line.split()[1:] if "=" in field)
        try:
            results[int(fields["depth"])] = (float(fields["ours_us"]), float(fields["pyspy_us"]))
        except (KeyError, ValueError):
            raise BenchError(f"bench_paused printed a line the driver cannot read: {line}")
    if not results:
        raise BenchError("bench_paused printed no `paused depth=… ours_us=… pyspy_us=…` line")
    return results, ""


# ---------------------------------------------------------------------------------------------
# The table


def ratio(ours, theirs):
    if ours is None or theirs is None or theirs == 0:
        return "n/a"
    return f"{ours / theirs:.2f}×"


def verdict(ok):
    if ok is None:
        return "n/a"
    return "PASS" if ok else "MISS"


def make_table(header, paused, paused_note, live, slowdown, args):
    lines = list(header)
    deep = max(args.depths)

    lines.append("")
    lines.append("Paused target, CPU µs per sample (ours vs py-spy get_stack_traces)")
    lines.append(f"  {'':24s}{'tracer':>12s}{'py-spy':>12s}{'tracer/py-spy':>16s}")
    if paused:
        for depth in sorted(paused):
            ours, theirs = paused[depth]
            lines.append(f"  {'depth ' + str(depth):24s}{ours:12.2f}{theirs:12.2f}"
                         f"{ratio(ours, theirs):>16s}")
    else:
        lines.append(f"  ({paused_note})")

    lines.append("")
    lines.append(f"Live, {args.duration} s each: tracer --rate {args.rate}, py-spy record "
                 f"--nonblocking --rate {args.rate}, austin -i {args.austin_interval}")
    lines.append(f"  {'':24s}{'tracer':>12s}{'py-spy':>12s}{'austin 3.7':>12s}"
                 f"{'tracer/py-spy':>16s}{'tracer/austin':>16s}")
    rows = [
        ("samples/s", "rate", "{:12,.0f}"),
        ("CPU % of one core", "cpu_pct", "{:12.1f}"),
        ("CPU µs per sample", "us_per_sample", "{:12.1f}"),
        ("errors", "errors", "{:12,.0f}"),
    ]
    for depth in args.depths:
        for label, key, fmt in rows:
            values = [live[depth][tool][key] for tool in ("tracer", "py-spy", "austin")]
            cells = "".join(fmt.format(v) for v in values)
            ratios = ""
            if key != "errors":
                ratios = f"{ratio(values[0], values[1]):>16s}{ratio(values[0], values[2]):>16s}"
            lines.append(f"  {'depth ' + str(depth) + ' ' + label:24s}{cells}{ratios}")

    lines.append("")
    lines.append(f"Target slowdown at depth {args.slowdown_depth} (its own iterations/s, "
                 f"{args.duration} s windows, vs alone)")
    lines.append(f"  {'':32s}{'slowdown':>10s}{'sampler achieved':>20s}")
    for label, (value, rate) in slowdown.items():
        if label == TRACER_MAX:
            label = f"tracer {args.rate} Hz (max)"
        lines.append(f"  {label:32s}{value:8.2f} %{rate:14,.0f} samples/s")

    lines.append("")
    lines.append("Issue 13 targets (informational: a MISS never fails the bench)")
    deep_live = live[deep]
    ours = deep_live["tracer"]
    paused_deep = paused.get(deep)
    targets = [
        (f"paused CPU per sample at depth {deep} ≤ 5 µs",
         f"{paused_deep[0]:.2f} µs" if paused_deep else "not measured",
         verdict(paused_deep[0] <= 5 if paused_deep else None)),
        (f"live ≥ 150,000 samples/s at depth {deep}, ≤ 1 core",
         f"{ours['rate']:,.0f}/s, {ours['cpu_pct']:.0f} %",
         verdict(ours["rate"] >= 150_000 and ours["cpu_pct"] <= 100)),
        ("live samples/s ≥ 50× py-spy", ratio(ours["rate"], deep_live["py-spy"]["rate"]),
         verdict(ours["rate"] >= 50 * deep_live["py-spy"]["rate"])),
        ("live samples/s ≥ 5× austin 3.7", ratio(ours["rate"], deep_live["austin"]["rate"]),
         verdict(ours["rate"] >= 5 * deep_live["austin"]["rate"])),
        ("live samples/s ≥ 1.8× austin 4.0", "not measured (needs glibc 2.38)", verdict(None)),
        ("target slowdown ≤ 1 % at 1 kHz", f"{slowdown[TRACER_1KHZ][0]:.2f} %",
         verdict(slowdown[TRACER_1KHZ][0] <= 1)),
        ("target slowdown ≤ 5 % at the maximum rate", f"{slowdown[TRACER_MAX][0]:.2f} %",
         verdict(slowdown[TRACER_MAX][0] <= 5)),
    ]
    for name, value, result in targets:
        lines.append(f"  {name:48s}{value:>34s}  {result}")
    return lines


# ---------------------------------------------------------------------------------------------


def find_python():
    found = sorted(glob.glob("/root/.pyenv/versions/3.12.*/bin/python"))
    if not found:
        found = [p for p in (shutil.which("python3.12"),) if p]
    return found[-1] if found else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", help="the target's interpreter (default: CPython 3.12 "
                                         "from pyenv, else python3.12 on PATH)")
    parser.add_argument("--reader", default="auto", help="tracer's --reader (default auto)")
    parser.add_argument("--tracer", default=os.path.join(ROOT, "target", "release", "tracer"))
    parser.add_argument("--venv", default=os.path.join(ROOT, "target", "bench-venv"),
                        help="where py-spy and austin are installed")
    parser.add_argument("--cargo", default=os.environ.get("CARGO", "cargo"))
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds per live run and per slowdown window (default 5)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--rate", type=int, default=200000,
                        help="tracer's and py-spy's maximum rate, Hz (default 200000)")
    parser.add_argument("--austin-interval", type=int, default=1,
                        help="austin's -i at its maximum rate, µs (default 1)")
    parser.add_argument("--depths", default="10,40", help="stack depths of the live runs")
    parser.add_argument("--slowdown-depth", type=int, default=40)
    parser.add_argument("--output", default=os.path.join(ROOT, "target", "bench-results.txt"))
    parser.add_argument("--only", choices=["synthetic", "versions", "real", "tachyon"],
                        help="run one section only (default: all four)")
    parser.add_argument("--versions-pythons", default="",
                        help="versions section: Python versions (default: every 3.8+ found)")
    parser.add_argument("--versions-rates", default=bench_versions.DEFAULT_RATES,
                        help=f"versions section: rates in Hz (default {bench_versions.DEFAULT_RATES})")
    parser.add_argument("--versions-duration", type=int, default=3,
                        help="versions section: seconds per run (default 3)")
    parser.add_argument("--real-suites", default="",
                        help="real section: suites, comma-separated (default: all three)")
    parser.add_argument("--real-pythons", default=bench_real.DEFAULT_PYTHONS,
                        help=f"real section: Python versions (default {bench_real.DEFAULT_PYTHONS})")
    parser.add_argument("--real-rates", default="1000,10000,max",
                        help="real section: rates in Hz, `max` = --rate for tracer and py-spy "
                             "and --austin-interval for austin (default 1000,10000,max)")
    parser.add_argument("--real-repeat", type=int, default=1,
                        help="real section: runs per tool and rate (median; default 1)")
    args = parser.parse_args()
    # The real suites run from their own source trees: a relative path would not be found there.
    args.tracer = os.path.abspath(args.tracer)
    args.venv = os.path.abspath(args.venv)
    args.depths = [int(d) for d in args.depths.split(",")]
    if args.duration != int(args.duration):
        parser.error("--duration must be whole seconds (austin's -x takes seconds)")
    args.duration = int(args.duration)

    def log(message):
        print(message, flush=True)

    try:
        python = args.python or find_python()
        if not python:
            raise BenchError("no CPython 3.12 found: pass --python")
        version = subprocess.run([python, "-c", "import platform; "
                                  "print(platform.python_version())"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        extra_args, reader_label = reader_args(args.tracer, args.reader)
        tools = Tools(args.tracer, extra_args, args.venv, others=args.only != "tachyon")
        load = os.getloadavg()[0]
        header = [
            "tracer bench: Tachyon section only" if args.only == "tachyon" else
            f"tracer bench: py-spy 0.4.3, austin 3.7.0; synthetic sections on CPython {version} "
            f"({python})" if args.only != "real" else
            "tracer bench: py-spy 0.4.3, austin 3.7.0; real-code section only",
            f"tracer reader: {reader_label}; median of {args.repeat} runs; "
            f"{os.cpu_count()} CPUs, load average {load:.1f} at start; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.uname().release}",
        ]
        log("\n".join(header))

        table = list(header)
        if args.only in (None, "synthetic"):
            paused, paused_note = measure_paused(python, args.cargo, log)
            live = {}
            with tempfile.TemporaryDirectory(prefix="tracer-bench-") as workdir:
                for depth in args.depths:
                    log(f"live sampling at depth {depth}")
                    live[depth] = measure_live(tools, python, depth, args, workdir, log)
                log(f"target slowdown at depth {args.slowdown_depth}")
                slowdown = measure_slowdown(tools, python, args, workdir, log)
            table = make_table(header, paused, paused_note, live, slowdown, args)
        if args.only in (None, "versions"):
            me = sys.modules[__name__]
            versions, version_notes = bench_versions.measure(me, tools, args, log)
            table += bench_versions.table(versions, version_notes, args)
        if args.only in (None, "tachyon"):
            me = sys.modules[__name__]
            results, writes, notes = bench_tachyon.measure(me, tools, args, log)
            table += bench_tachyon.table(me, results, writes, notes, args)
        real_notes = []
        if args.only in (None, "real"):
            real, real_notes, _ = bench_real.measure(tools, args, log)
            table += bench_real.table(real, real_notes, args)
    except BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 1

    text = "\n".join(table) + "\n"
    print()
    print(text, end="")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(text)
    print(f"(saved to {args.output})")
    return 1 if real_notes else 0


if __name__ == "__main__":
    sys.exit(main())

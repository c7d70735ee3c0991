"""`make bench`, Tachyon section: tracer beside CPython 3.15's own sampler on the same targets.

Tachyon is `python3.15 -m profiling.sampling attach`, built on the `_remote_debugging` module;
it reads only the minor version it belongs to, so this section runs on CPython 3.15
(target/pythons/3.15, from `make pythons-new`) whatever --python the synthetic section uses.

For each depth of --depths (10 and 40), on one tests/workloads/bench_depth.py target, taking
turns --repeat times (medians reported):
  - `tracer attach --rate RATE` and `python3.15 -m profiling.sampling attach -a -r RATE
    --collapsed` for --duration seconds each: samples per second (tracer: its own count over
    its sampling time; Tachyon: the samples in its collapsed output over the seconds of its
    "Captured N samples in S seconds" line, N counting failed reads too), and the sampler's
    CPU (user + system from wait4, start-up and writing the output included, as for the other
    tools) per sample. `-a`: every thread, as tracer reads them.
  - Writes into the target: each tool once more under `strace -f -e trace=process_vm_writev`
    for 2 s at the same rate, its process_vm_writev calls counted (tracer: none by design).
The target's own slowdown is not measured here (the synthetic section does it for tracer).
"""

import os
import re
import shutil
import subprocess
import tempfile

WRITES_SECONDS = 2

# bench.py passes itself as `bench` (its Workload, run_tool, BenchError...): importing it here
# would load a second copy of the module that runs as __main__, with its own BenchError.


def find_python315(root):
    path = os.path.join(root, "target", "pythons", "3.15", "bin", "python3.15")
    return path if os.access(path, os.X_OK) else None


def has_tachyon(python):
    return subprocess.run([python, "-c", "import profiling.sampling, _remote_debugging"],
                          capture_output=True).returncode == 0


def tachyon_argv(python, pid, rate, seconds, output):
    return [python, "-m", "profiling.sampling", "attach", "-a", "-r", str(rate), "-d",
            str(seconds), "--collapsed", "-o", output, str(pid)]


def tachyon_run(bench, python, pid, rate, seconds, workdir):
    """One Tachyon run; returns (ToolRun, samples, sampling seconds, error rate text)."""
    output = os.path.join(workdir, "tachyon.txt")
    run = bench.run_tool("tachyon", tachyon_argv(python, pid, rate, seconds, output), workdir,
                         seconds)
    run.check()
    text = run.stdout() + run.stderr()
    match = re.search(r"Captured (\d+) samples in ([\d.]+) seconds", text)
    if not match:
        raise bench.BenchError(f"Tachyon printed no sample count:\n{text[-2000:]}")
    errors = re.search(r"Error rate: ([\d.]+)", text)
    # "Captured N samples" counts failed reads too (its error rate is errors / N): the samples
    # are those in the collapsed output, one line per distinct stack ending in its count.
    samples = 0
    with open(output, errors="replace") as f:
        for line in f:
            if line.strip():
                samples += int(line.rsplit(" ", 1)[1])
    return run, samples, float(match.group(2)), errors.group(1) if errors else "?"


def count_writes(bench, argv, workdir, name):
    """process_vm_writev calls made by argv (and its threads and children), run under strace;
    None without strace."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    log = os.path.join(workdir, f"{name}.strace")
    subprocess.run([strace, "-f", "-qq", "-e", "trace=process_vm_writev", "-o", log] + argv,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=WRITES_SECONDS + bench.GRACE_SECONDS)
    with open(log, errors="replace") as f:
        return sum(1 for line in f if "process_vm_writev(" in line)


def measure(bench, tools, args, log):
    """{depth: {"tracer"|"tachyon": {...medians}}}, writes {tool: count}, notes; or None and a
    note when no 3.15 with Tachyon is installed."""
    python = find_python315(bench.ROOT)
    if python is None or not has_tachyon(python):
        return None, None, ["SKIP: no CPython 3.15 with profiling.sampling under target/pythons "
                            "(make pythons-new installs it): Tachyon not compared"]
    results, writes = {}, {}
    with tempfile.TemporaryDirectory(prefix="tracer-bench-tachyon-") as workdir:
        for depth in args.depths:
            log(f"tracer and Tachyon on CPython 3.15 at depth {depth}")
            raw = {"tracer": [], "tachyon": []}
            workload = bench.Workload(python, depth)
            try:
                for rep in range(args.repeat):
                    for name in raw:
                        workload.check_alive()
                        if name == "tracer":
                            run, samples, seconds, errors = tools.tracer_run(
                                workload.pid, args.rate, args.duration, workdir)
                        else:
                            run, samples, seconds, errors = tachyon_run(
                                bench, python, workload.pid, args.rate, args.duration, workdir)
                        if samples == 0:
                            raise bench.BenchError(f"{name} took no samples at depth {depth}")
                        row = {"rate": samples / seconds,
                               "us_per_sample": 1e6 * run.cpu / samples,
                               "errors": errors}
                        raw[name].append(row)
                        log(f"  depth {depth} run {rep + 1}/{args.repeat} {name:7s}: "
                            f"{row['rate']:10.0f} samples/s, {row['us_per_sample']:6.2f} "
                            f"µs CPU/sample, errors {errors}")
                if depth == args.depths[-1]:
                    tracer_argv = [tools.tracer, "attach", "--pid", str(workload.pid), "--rate",
                                   str(args.rate), "--duration", str(WRITES_SECONDS), "--format",
                                   "json", "-o", os.path.join(workdir, "w.json")]
                    writes["tracer"] = count_writes(bench, tracer_argv + tools.reader_args, workdir,
                                                    "tracer")
                    writes["tachyon"] = count_writes(
                        bench, tachyon_argv(python, workload.pid, args.rate, WRITES_SECONDS,
                                     os.path.join(workdir, "w.txt")), workdir, "tachyon")
                    log(f"  writes into the target in {WRITES_SECONDS} s: {writes}")
                workload.check_alive()
            finally:
                workload.stop()
            results[depth] = {
                name: {"rate": bench.median([r["rate"] for r in rows]),
                       "us_per_sample": bench.median([r["us_per_sample"] for r in rows]),
                       "errors": " / ".join(str(r["errors"]) for r in rows)}
                for name, rows in raw.items()}
    version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True).stdout.strip()
    return results, writes, [f"CPython {version} ({python})"]


def table(bench, results, writes, notes, args):
    lines = [""]
    if results is None:
        return lines + notes
    lines.append(f"Tachyon: {notes[0]}; live, {args.duration} s each: tracer attach --rate "
                 f"{args.rate}, python3.15 -m profiling.sampling attach -a -r {args.rate} "
                 "--collapsed")
    lines.append(f"  {'':28s}{'tracer':>12s}{'Tachyon':>12s}{'tracer/Tachyon':>16s}")
    for depth, tools in results.items():
        ours, theirs = tools["tracer"], tools["tachyon"]
        lines.append(f"  {f'depth {depth}: samples/s':28s}{ours['rate']:12.0f}"
                     f"{theirs['rate']:12.0f}{bench.ratio(ours['rate'], theirs['rate']):>16s}")
        lines.append(f"  {f'depth {depth}: CPU µs/sample':28s}{ours['us_per_sample']:12.2f}"
                     f"{theirs['us_per_sample']:12.2f}"
                     f"{bench.ratio(ours['us_per_sample'], theirs['us_per_sample']):>16s}")
        lines.append(f"  {f'depth {depth}: errors, per run':28s}tracer {ours['errors']} "
                     f"(errors); Tachyon {theirs['errors']} (error rate, %)")
    shown = {name: ("not measured (no strace)" if count is None else str(count))
             for name, count in writes.items()}
    lines.append(f"  writes into the target (process_vm_writev under strace -f, "
                 f"{WRITES_SECONDS} s at {args.rate} Hz, depth {args.depths[-1]}): "
                 f"tracer {shown['tracer']}, Tachyon {shown['tachyon']}")
    deep = results[max(results)]
    lines.append(f"  targets at depth {max(results)}: samples/s ahead of Tachyon "
                 f"{bench.verdict(deep['tracer']['rate'] > deep['tachyon']['rate'])}; "
                 f"CPU per sample below Tachyon's "
                 f"{bench.verdict(deep['tracer']['us_per_sample'] < deep['tachyon']['us_per_sample'])}"
                 f"; no write into the target "
                 f"{bench.verdict(None if writes['tracer'] is None else writes['tracer'] == 0)}")
    return lines

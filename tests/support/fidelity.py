#!/usr/bin/env python3
"""`make fidelity`: how true tracer's lines are on real code, against coverage.py.

For each pinned suite (tests/support/real_suites.py) and each Python 3.8+ found:

- truth: the suite under `coverage run` (coverage.py 7.6.10; 7.6.1 on 3.8), and coverage.py's
  raw measured lines of the library's own files (`CoverageData.lines(file)`: every line that
  produced a line event, continuation lines included);
- sampled: the suite under `tracer run --format json` at tracer's default rate (or --rate);
- on 3.11+, snapshot: the same run, held at pytest's session end by the holdwait plugin
  (tests/support/pytest_plugins/holdwait.py) while `tracer snapshot --pid PID --format json`
  reads it from outside; "snapshot" is that read alone, "snapshot+sampled" its union with the
  sampled lines of the run.

Prints precision = |ours ∩ truth| / |ours| and recall = |ours ∩ truth| / |truth| per suite ×
version × mode, recall apart for function bodies and for module-level lines (lines outside any
`def`, from the source with `ast`: module and class bodies, decorators, default values), and
every line reported that did not run (file:line). Precision must be 1.000: the driver exits 1
if it is not anywhere, or if a tool fails; a cell that cannot run prints a SKIP line.
The snapshot's `likely` lines (unsound by design, docs/snapshot.md) are counted apart and never
part of precision.

With --arcs, on 3.12+ the truth runs under `coverage run --branch` and one more row per cell
scores the arcs `tracer run --snapshot` proved (its JSON `arcs`, what --coverage-arcs writes)
against coverage.py's measured arcs of the library's files (`CoverageData.arcs(file)`):
precision (must be 1.000), recall, and the lines tracer reports that no proven arc names (lost
in an arc data file, where coverage.py reads executed lines from arcs).
"""

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import real_suites  # noqa: E402

ROOT = real_suites.ROOT
WORK = os.path.join(real_suites.BASE, "fidelity")
# A suite run longer than this is a hang.
RUN_TIMEOUT = 3600
# pytest's exit statuses that still mean the suite ran: 0 all passed, 1 some tests failed.
SUITE_RAN = (0, 1)


class Failure(Exception):
    """A tool failed where it should have worked: reported, and the driver exits 1."""


class Skip(Exception):
    """A cell that cannot be measured here (printed as SKIP)."""


# ---------------------------------------------------------------------------------------------
# Truth


def coverage_engine(venv):
    """coverage.py's measurement core in this venv: its C tracer where it is built, else
    sys.monitoring on 3.12+ (the pure-Python coverage.py of the fetched 3.14/3.15), else its
    Python tracer. The research (shared/research/real-suites) found all three agree."""
    if venv.run("-c", "import coverage.tracer").returncode == 0:
        return "ctrace"
    return "sysmon" if venv.minor >= 12 else "pytrace"


def run_truth(venv, suite, work, branch=False):
    """{real path: set(lines)} of the library's files under coverage.py, the Run, the engine
    and, with `branch`, {real path: set(arcs)} (else None)."""
    data_file = os.path.join(work, "truth.coverage")
    rcfile = os.path.join(work, "coveragerc")
    with open(rcfile, "w") as f:
        # Our own config, so that a project's [coverage:run] (toolz's setup.cfg omits files)
        # changes nothing.
        f.write("[run]\nsource =\n" +
                "".join(f"    {d}\n" for d in suite.package_dirs()))
    argv, cwd, env = suite.command()
    engine = coverage_engine(venv)
    env = dict(env, COVERAGE_CORE=engine)
    run = real_suites.run_measured(
        [venv.path, "-m", "coverage", "run", *(["--branch"] if branch else []),
         f"--rcfile={rcfile}", f"--data-file={data_file}", *argv],
        cwd=cwd, env_add=env, timeout=RUN_TIMEOUT)
    if run.returncode not in SUITE_RAN or not os.path.exists(data_file):
        raise Failure(f"coverage run exited {run.returncode}: {run.stderr_tail()}")
    dump = subprocess.run(
        [venv.path, "-c", "import coverage, json, sys\n"
         "d = coverage.CoverageData(sys.argv[1]); d.read()\n"
         "print(json.dumps({f: [sorted(d.lines(f) or []), sorted(d.arcs(f) or [])]\n"
         "                  for f in d.measured_files()}))",
         data_file], capture_output=True, text=True)
    if dump.returncode != 0:
        raise Failure(f"reading {data_file}: {real_suites.tail(dump.stderr)}")
    dumped = json.loads(dump.stdout)
    lines = library_lines(((f, v[0]) for f, v in dumped.items()), suite)
    arcs = library_arcs(((f, v[1]) for f, v in dumped.items()), suite) if branch else None
    return lines, run, engine, arcs


def library_arcs(pairs, suite):
    """{real path: set((from, to))} of (file, arcs) pairs, only the library's own files."""
    files = suite.library_files()
    arcs = {}
    for path, pairs_ in pairs:
        real = os.path.realpath(path)
        if real in files and pairs_:
            arcs.setdefault(real, set()).update(map(tuple, pairs_))
    return arcs


def library_lines(pairs, suite):
    """{real path: set(lines)} of (file, lines) pairs, only the library's own files."""
    files = suite.library_files()
    lines = {}
    for path, numbers in pairs:
        real = os.path.realpath(path)
        if real in files and numbers:
            lines.setdefault(real, set()).update(numbers)
    return lines


# ---------------------------------------------------------------------------------------------
# tracer


def json_lines(path, suite):
    """({file: lines}, {file: likely lines}, stats) of tracer's JSON results."""
    with open(path) as f:
        data = json.load(f)
    counts = {}
    for filename, line, hits, _self_hits in data["counts"]:
        if hits > 0:
            counts.setdefault(filename, []).append(line)
    likely = {}
    for filename, line in data.get("likely", []):
        likely.setdefault(filename, []).append(line)
    return (library_lines(counts.items(), suite), library_lines(likely.items(), suite),
            data.get("stats", {}))


def refused(run, minor):
    """A SKIP for a Python newer than tracer reads (refused by design), else None."""
    errors = [l for l in run.stderr.splitlines() if l.startswith("tracer: error:")]
    if minor > 14 and errors:
        return errors[0]
    return None


def run_sampled(tracer, venv, suite, work, rate):
    """The suite under `tracer run`: {"sampled": (lines, likely)}, stats and the Run."""
    output = os.path.join(work, "sampled.json")
    if os.path.exists(output):
        os.unlink(output)
    argv, cwd, env = suite.command()
    rate_args = ["--rate", str(rate)] if rate else []
    run = real_suites.run_measured(
        [tracer, "run", *rate_args, "--format", "json", "-o", output, "--", venv.path, *argv],
        cwd=cwd, env_add=env, timeout=RUN_TIMEOUT)
    check_tracer_run(run, output, venv)
    lines, likely, stats = json_lines(output, suite)
    return {"sampled": (lines, likely)}, stats, run


def check_tracer_run(run, output, venv):
    if os.path.exists(output) and run.returncode in SUITE_RAN:
        return
    why = refused(run, venv.minor)
    if why:
        raise Skip(why)
    raise Failure(f"tracer run exited {run.returncode}"
                  f"{'' if os.path.exists(output) else ', no results'}: {run.stderr_tail()}")


def run_held_snapshot(tracer, venv, suite, work, rate):
    """The suite under `tracer run`, held at pytest's session end (holdwait plugin) while
    `tracer snapshot --pid` reads it; the snapshot is then merged with the run's samples.
    Returns {"sampled", "snapshot", "snapshot+sampled": (lines, likely)}, stats, Run."""
    sampled_out = os.path.join(work, "sampled.json")
    snapshot_out = os.path.join(work, "snapshot.json")
    ready = os.path.join(work, "hold-ready")
    done = os.path.join(work, "hold-done")
    for path in (sampled_out, snapshot_out, ready, done):
        if os.path.exists(path):
            os.unlink(path)
    argv, cwd, env = suite.command(["-p", "holdwait"])
    env = dict(env, HOLD_READY=ready, HOLD_DONE=done, HOLD_SECONDS="300")
    rate_args = ["--rate", str(rate)] if rate else []
    snapshot = {}

    def take_snapshot(proc):
        # Runs in a thread beside run_measured's wait: waits for the held session, reads it.
        def work_():
            while not os.path.exists(ready):
                if proc.poll() is not None:
                    return
                time.sleep(0.05)
            with open(ready) as f:
                pid = f.read().strip()
            try:
                snapshot["run"] = real_suites.run_measured(
                    [tracer, "snapshot", "--pid", pid, "--format", "json", "-o", snapshot_out],
                    timeout=600)
            finally:
                with open(done, "w"):
                    pass
        thread = threading.Thread(target=work_, daemon=True)
        thread.start()
        snapshot["thread"] = thread

    run = real_suites.run_measured(
        [tracer, "run", *rate_args, "--format", "json", "-o", sampled_out, "--",
         venv.path, *argv], cwd=cwd, env_add=env, timeout=RUN_TIMEOUT, on_start=take_snapshot)
    snapshot["thread"].join(timeout=60)
    check_tracer_run(run, sampled_out, venv)
    snap = snapshot.get("run")
    if snap is None:
        raise Failure("the held pytest session never wrote its pid (holdwait plugin)")
    if snap.returncode != 0 or not os.path.exists(snapshot_out):
        raise Failure(f"tracer snapshot exited {snap.returncode}: {snap.stderr_tail()}")
    sampled, sampled_likely, stats = json_lines(sampled_out, suite)
    snap_lines, snap_likely, _ = json_lines(snapshot_out, suite)
    merged_out = os.path.join(work, "merged.json")
    merge = subprocess.run([tracer, "merge", "--format", "json", "-o", merged_out,
                            sampled_out, snapshot_out], capture_output=True, text=True)
    if merge.returncode != 0:
        raise Failure(f"tracer merge exited {merge.returncode}: {real_suites.tail(merge.stderr)}")
    merged, merged_likely, _ = json_lines(merged_out, suite)
    return ({"sampled": (sampled, sampled_likely), "snapshot": (snap_lines, snap_likely),
             "snapshot+sampled": (merged, merged_likely)}, stats, run)


# Seconds between the snapshots along the way in --snapshot mode.
SNAPSHOT_EVERY = 5


def run_snapshot_flag(tracer, venv, suite, work, rate):
    """The same three modes from one `tracer run --snapshot --snapshot-every`: its samples
    (counts without the lines only the snapshots found), its snapshots (`proven`), and both
    (the counts), from one results file."""
    output = os.path.join(work, "run-snapshot.json")
    if os.path.exists(output):
        os.unlink(output)
    argv, cwd, env = suite.command([])
    rate_args = ["--rate", str(rate)] if rate else []
    run = real_suites.run_measured(
        [tracer, "run", *rate_args, "--snapshot", "--snapshot-every", str(SNAPSHOT_EVERY),
         "--format", "json", "-o", output, "--", venv.path, *argv],
        cwd=cwd, env_add=env, timeout=RUN_TIMEOUT)
    check_tracer_run(run, output, venv)
    both, likely, stats = json_lines(output, suite)
    with open(output) as f:
        data = json.load(f)
    only = {(f, l) for f, l in data.get("proven_only", [])}
    sampled, proven = {}, {}
    for filename, line, hits, _self in data["counts"]:
        if hits > 0 and (filename, line) not in only:
            sampled.setdefault(filename, []).append(line)
    for filename, line in data.get("proven", []):
        proven.setdefault(filename, []).append(line)
    return ({"sampled": (library_lines(sampled.items(), suite), {}),
             "snapshot": (library_lines(proven.items(), suite), likely),
             "snapshot+sampled": (both, likely)}, stats, run)


# The first minor version `tracer snapshot` reads (src/snapshot/mod.rs, FIRST_VERSION).
SNAPSHOT_SINCE = 11
# 3.11+: `tracer run --snapshot` (run_held_snapshot, the suite held at its end while `tracer
# snapshot` reads it, is kept for comparison).
SNAPSHOT_RUN = run_snapshot_flag


# ---------------------------------------------------------------------------------------------
# Scoring


def function_body_lines(path):
    """Lines inside some `def` (from its first body statement to its end): the rest of a file
    is module-level (module and class bodies, decorators, `def` lines, default values)."""
    with open(path, "rb") as f:
        tree = ast.parse(f.read(), filename=path)
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(range(node.body[0].lineno, node.end_lineno + 1))
    return inside


def score(ours, truth, split):
    """Precision, recall and the lines reported that did not run, overall and split."""
    def pairs(lines):
        return {(f, n) for f, ns in lines.items() for n in ns}

    ours_p, truth_p = pairs(ours), pairs(truth)
    hit = ours_p & truth_p
    result = {
        "ours": len(ours_p), "truth": len(truth_p), "hit": len(hit),
        "precision": len(hit) / len(ours_p) if ours_p else None,
        "recall": len(hit) / len(truth_p) if truth_p else None,
        "wrong": sorted(f"{f}:{n}" for f, n in ours_p - truth_p),
    }
    for part in ("function", "module"):
        in_part = {(f, n) for f, n in truth_p if ((n in split[f]) == (part == "function"))}
        got = hit & in_part
        result[f"truth_{part}"] = len(in_part)
        result[f"recall_{part}"] = len(got) / len(in_part) if in_part else None
    return result


def fmt(value):
    return "  n/a" if value is None else f"{value:.3f}"


# ---------------------------------------------------------------------------------------------


def probe(tracer, venv, work):
    """Skip early (before minutes of coverage.py) a Python that tracer refuses to read."""
    output = os.path.join(work, "probe.json")
    run = real_suites.run_measured(
        [tracer, "run", "--format", "json", "-o", output, "--", venv.path, "-c",
         "import time; time.sleep(0.3)"], timeout=120)
    check_tracer_run(run, output, venv)


def score_arcs(output, suite, truth_arcs):
    """The proven arcs of `tracer run --snapshot`'s results against coverage.py's: the score,
    with the arcs that did not run as `wrong`, and the lines reported that no arc names."""
    with open(output) as f:
        data = json.load(f)
    ours = library_arcs(((f, [(a, b)]) for f, a, b in data.get("arcs", [])), suite)
    counted = library_lines(((f, [l]) for f, l, hits, _ in data["counts"] if hits > 0), suite)
    ours_p = {(f, a) for f, arcs in ours.items() for a in arcs}
    truth_p = {(f, a) for f, arcs in truth_arcs.items() for a in arcs}
    hit = ours_p & truth_p
    named = {(f, n) for f, (a, b) in ours_p for n in (a, b) if n > 0}
    lines = {(f, n) for f, ns in counted.items() for n in ns}
    return {
        "ours": len(ours_p), "truth": len(truth_p), "hit": len(hit),
        "precision": len(hit) / len(ours_p) if ours_p else None,
        "recall": len(hit) / len(truth_p) if truth_p else None,
        "wrong": sorted(f"{f}:{a}->{b}" for f, (a, b) in ours_p - truth_p),
        "lines": len(lines), "lost": len(lines - named),
    }


def measure_cell(tracer, venv, suite, rate, log, work_base=WORK, arcs=False):
    """All modes of one suite × version: {mode: score}, or raises Skip/Failure."""
    work = os.path.join(work_base, f"{suite.name}-{venv.label}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    probe(tracer, venv, work)
    arcs = arcs and venv.minor >= 12
    truth, truth_run, engine, truth_arcs = run_truth(venv, suite, work, branch=arcs)
    log(f"  truth: coverage.py ({engine}): {sum(map(len, truth.values()))} lines in "
        f"{len(truth)} files; {truth_run.wall:.1f} s; {real_suites.pytest_summary(truth_run.stdout)}")
    runner = SNAPSHOT_RUN if venv.minor >= SNAPSHOT_SINCE else run_sampled
    modes, stats, run = runner(tracer, venv, suite, work, rate)
    log(f"  tracer run: {run.wall:.1f} s; {stats.get('samples', 0)} samples, "
        f"{stats.get('missed', 0)} missed, {stats.get('errors', 0)} errors, "
        f"{stats.get('truncated', 0)} truncated; {real_suites.pytest_summary(run.stdout)}")
    split = {f: function_body_lines(f) for f in suite.library_files()}
    scores = {}
    for mode, (lines, likely) in modes.items():
        scores[mode] = score(lines, truth, split)
        if any(likely.values()):
            likely_score = score(likely, truth, split)
            scores[mode]["likely"] = likely_score["ours"]
            scores[mode]["likely_wrong"] = len(likely_score["wrong"])
            scores[mode]["likely_wrong_lines"] = likely_score["wrong"]
    if arcs:
        scores["_arcs"] = score_arcs(os.path.join(work, "run-snapshot.json"), suite, truth_arcs)
    scores["_stats"] = stats
    return scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracer", default=os.path.join(ROOT, "target", "release", "tracer"))
    parser.add_argument("--suite", action="append",
                        help=f"of {', '.join(real_suites.SUITES_BY_NAME)} (default: all)")
    parser.add_argument("--python", action="append",
                        help="minor versions, e.g. 3.12,3.13 (default: every 3.8+ found)")
    parser.add_argument("--rate", type=int, help="tracer run's --rate (default: tracer's)")
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--arcs", action="store_true",
                        help="also score the proven arcs (3.12+; truth under --branch)")
    parser.add_argument("--work", default=WORK, help="scratch directory (default %(default)s)")
    parser.add_argument("--output", default=os.path.join(ROOT, "target", "fidelity-results.txt"))
    args = parser.parse_args()
    if not os.access(args.tracer, os.X_OK):
        print(f"fidelity: error: {args.tracer} is not an executable (make build)", file=sys.stderr)
        return 2
    minors = real_suites.parse_minors(args.python)
    names = real_suites.parse_suites(args.suite)

    def log(message):
        print(message, flush=True)

    env = real_suites.setup(minors, names, log=log)
    for name in names or real_suites.SUITES_BY_NAME:
        if name not in env.suites:
            log(f"SKIP: {name}: not fetched (see above)")
    results = {}
    table = []
    failed = False
    for suite in env.suites.values():
        for minor, venv in env.venvs.items():
            cell = f"{suite.name} {suite.version} on Python {venv.label}"
            log(f"{cell}")
            try:
                scores = measure_cell(args.tracer, venv, suite, args.rate, log, args.work,
                                      arcs=args.arcs)
            except Skip as why:
                log(f"SKIP: {cell}: {why}")
                continue
            except (Failure, TimeoutError) as why:
                log(f"FAIL: {cell}: {why}")
                failed = True
                continue
            results.setdefault(suite.name, {})[venv.label] = scores
            if "_arcs" in scores:
                a = scores["_arcs"]
                row = (f"{suite.name:15s}{venv.label:>5s}  {'arcs':17s}{a['ours']:7d}{a['truth']:7d}"
                       f"  {fmt(a['precision'])}  {fmt(a['recall'])}  lines with no arc "
                       f"{a['lost']} of {a['lines']}")
                table.append(row)
                log("  " + row)
                if a["wrong"]:
                    failed = True
                    log(f"  PRECISION < 1: {len(a['wrong'])} arcs written that did not run:")
                    for arc in a["wrong"]:
                        log(f"    {arc}")
            for mode, s in scores.items():
                if mode.startswith("_"):
                    continue
                likely = ""
                if "likely" in s:
                    likely = f"  likely {s['likely']} ({s['likely_wrong']} did not run)"
                row = (f"{suite.name:15s}{venv.label:>5s}  {mode:17s}{s['ours']:7d}{s['truth']:7d}"
                       f"  {fmt(s['precision'])}  {fmt(s['recall'])}  "
                       f"{fmt(s['recall_function'])}  {fmt(s['recall_module'])}{likely}")
                table.append(row)
                log("  " + row)
                if s.get("likely_wrong_lines"):
                    log(f"  (likely, not counted: did not run: {', '.join(s['likely_wrong_lines'])})")
                if s["wrong"]:
                    failed = True
                    log(f"  PRECISION < 1: {len(s['wrong'])} lines reported that did not run:")
                    for line in s["wrong"]:
                        log(f"    {line}")
    header = (f"{'suite':15s}{'py':>5s}  {'mode':17s}{'ours':>7s}{'truth':>7s}  {'prec.':>5s}  "
              f"{'recall':>5s} {'rec.fn':>6s} {'rec.mod':>7s}")
    text = "\n".join([f"tracer fidelity on real suites ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
                      "recall.fn: lines in function bodies; recall.mod: module-level lines",
                      header, *table]) + "\n"
    print()
    print(text, end="")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if not results:
        print("fidelity: nothing was measured (see the SKIP lines)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

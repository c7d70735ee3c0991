"""`make soak`: the tracer's memory over a long run at a high rate against a workload that
keeps creating new functions (tests/workloads/churn.py: new code objects at new addresses
every round, from --templates distinct sources). Prints the tracer's RSS every --every
seconds and fails if its floor still grows after the warm-up: bounded memory means interned
strings and no per-sample growth.

The workload's distinct lines, functions, edges and stacks are bounded by --templates; with
the default (100) they are all seen within the warm-up, so any later growth is the tracer's
own. The floor of a window is its lowest RSS: snapshots (--flush-every) raise RSS for a moment
while the file is encoded, and those peaks are reported apart.

    python3 tests/support/soak.py --tracer target/release/tracer --seconds 600 --rate 10000
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracer", default="target/release/tracer")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--rate", type=float, default=10000)
    parser.add_argument("--every", type=float, default=10)
    parser.add_argument("--flush-every", type=float, default=60)
    parser.add_argument("--templates", type=int, default=100)
    parser.add_argument(
        "--allowed-growth-kib",
        type=int,
        default=1024,
        help="growth of the RSS floor allowed from just after the warm-up (the first fifth) "
        "to the last quarter",
    )
    args = parser.parse_args()
    workload = os.path.join(HERE, "..", "workloads", "churn.py")
    out_dir = tempfile.mkdtemp(prefix="tracer-soak-")
    env = dict(
        os.environ,
        WORKLOAD_SECONDS=str(args.seconds + 60),
        CHURN_TEMPLATES=str(args.templates),
    )
    target = subprocess.Popen([args.python, workload], stdout=subprocess.PIPE, env=env)
    assert target.stdout.readline().strip() == b"ready"
    tracer = subprocess.Popen(
        [args.tracer, "attach", "--pid", str(target.pid), "--rate", str(args.rate),
         "--duration", str(args.seconds), "--format", "json", "--flush-every", str(args.flush_every),
         "-o", os.path.join(out_dir, "soak.json")],
        stderr=subprocess.PIPE,
        text=True,
    )
    start = time.monotonic()
    rows = []
    print("   t(s)   tracer RSS (KiB)")
    while tracer.poll() is None:
        rss = rss_kib(tracer.pid)
        if rss is not None:
            t = time.monotonic() - start
            rows.append((t, rss))
            print("%7.0f   %8d" % (t, rss), flush=True)
        time.sleep(args.every)
    stderr = tracer.stderr.read()
    target.kill()
    target.wait()
    print(stderr.strip().splitlines()[-1] if stderr.strip() else "(no tracer output)")
    if tracer.returncode != 0 or len(rows) < 3:
        print("soak: the tracer failed or ran too briefly:\n" + stderr)
        return 1
    def floor(start, end):
        window = [r for t, r in rows if start <= t < end]
        return min(window) if window else None

    after_warmup = floor(args.seconds * 0.2, args.seconds * 0.45)
    at_end = floor(args.seconds * 0.75, args.seconds * 2)
    if after_warmup is None or at_end is None:
        print("soak: too few RSS readings: use a smaller --every")
        return 1
    peak = max(r for _, r in rows)
    growth = at_end - after_warmup
    print(
        "soak: RSS floor after warm-up %d KiB, in the last quarter %d KiB (growth %d KiB, "
        "%.1f KiB/min); peak %d KiB (while encoding a snapshot)"
        % (after_warmup, at_end, growth, growth / (args.seconds * 0.55 / 60), peak)
    )
    try:
        with open(os.path.join(out_dir, "soak.json")) as f:
            results = json.load(f)
        print(
            "soak: distinct data at the end: %d lines, %d functions, %d edges, %d stacks"
            % (
                len(results["counts"]),
                len(results["calledfuncs"]),
                len(results["callers"]),
                len(results["stacks"]["samples"]),
            )
        )
    except (OSError, ValueError, KeyError) as e:
        print("soak: results not readable: %s" % e)
        return 1
    if growth > args.allowed_growth_kib:
        print("soak: FAIL: the RSS floor grew by more than %d KiB after the warm-up"
              % args.allowed_growth_kib)
        return 1
    print("soak: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

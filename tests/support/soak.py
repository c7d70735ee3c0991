"""`make soak`: the tracer's memory over a long run at a high rate against a workload that
keeps creating new functions (tests/workloads/churn.py). Prints the tracer's RSS every
--every seconds and fails if it still grows after the warm-up: bounded memory means interned
strings and no per-sample growth.

    python3 tests/support/soak.py --tracer target/release/tracer --seconds 600 --rate 10000
"""
import argparse
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
    parser.add_argument(
        "--allowed-growth-kib",
        type=int,
        default=16 * 1024,
        help="RSS growth allowed between the end of the warm-up (first fifth) and the end",
    )
    args = parser.parse_args()
    workload = os.path.join(HERE, "..", "workloads", "churn.py")
    out_dir = tempfile.mkdtemp(prefix="tracer-soak-")
    env = dict(os.environ, WORKLOAD_SECONDS=str(args.seconds + 60))
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
    warm = [r for t, r in rows if t >= args.seconds / 5]
    if not warm:
        warm = [rows[-1][1]]
    growth = max(r for _, r in rows) - warm[0]
    print("soak: RSS after warm-up %d KiB, peak %d KiB, end %d KiB, growth after warm-up %d KiB"
          % (warm[0], max(r for _, r in rows), rows[-1][1], growth))
    if growth > args.allowed_growth_kib:
        print("soak: FAIL: memory still grows after the warm-up")
        return 1
    print("soak: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

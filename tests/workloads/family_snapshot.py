"""Test workload for `attach --snapshot --subprocesses`: workers that run code only they run,
once and quickly (sampling would not catch it), and then exit.

Usage: python family_snapshot.py DIR KIND...

The master forks one worker per KIND and prints "worker PID KIND" for each, then "ready". Each
worker waits until the file DIR/go exists (the test creates it once the tracer watches every
process), then runs its own function once and ends as KIND says:
  normal   sys.exit(0): its interpreter finalizes
  os_exit  os._exit(0), as multiprocessing's and pre-fork servers' workers do
  killed   writes DIR/killable and waits to be killed with SIGKILL (in the truth run, with
           FAMILY_TRUTH=1, it exits there instead)
  traced   traced by its parent already (PTRACE_TRACEME, at once), so that no other tracer
           may seize it; then as normal
The master waits for every worker, printing "exited PID CODE" or "signaled PID SIGNAL", runs
master_after() and exits normally. Lines marked "real run only" do not run under the stdlib's
trace (the truth run), where each worker ends with sys.exit so that trace writes its counts.
"""
import os
import sys
import time

TRUTH = os.environ.get("FAMILY_TRUTH") == "1"


def wait_for(path):
    # Bounded: a test never hangs on a worker.
    for _ in range(12000):
        time.sleep(0.01)
        if os.path.exists(path):
            return
    sys.exit(3)


def normal_work():
    total = 0
    for i in range(3):
        total += i * 7
    # A call: its adaptive cache proves the line (a bare `return NAME` leaves no record).
    return int(total)


def os_exit_work():
    parts = []
    for word in ("only", "in", "this", "worker"):
        parts.append(word.upper())
    return "-".join(parts)


def killed_work():
    seen = {}
    for i in range(4):
        seen[i] = i * i
    return len(seen)


def after_the_kill():
    never = [1, 2, 3]
    return sum(never)


def traced_work():
    return sorted({3, 1, 2})


def worker(directory, kind):
    if kind == "traced":
        import ctypes

        PTRACE_TRACEME = 0
        ctypes.CDLL(None).ptrace(PTRACE_TRACEME, 0, None, None)
    wait_for(os.path.join(directory, "go"))
    if kind == "traced":
        traced_work()
        sys.exit(0)
    if kind == "normal":
        normal_work()
        sys.exit(0)
    if kind == "os_exit":
        os_exit_work()
        if TRUTH:
            sys.exit(0)
        os._exit(0)  # real run only
    killed_work()
    open(os.path.join(directory, "killable"), "w").close()
    if TRUTH:
        sys.exit(0)
    for _ in range(1200):  # real run only
        time.sleep(0.1)  # real run only
    after_the_kill()
    sys.exit(4)


def master_after(ended):
    codes = sorted(ended)
    return len(codes)


def main():
    directory, kinds = sys.argv[1], sys.argv[2:]
    pids = []
    for kind in kinds:
        pid = os.fork()
        if pid == 0:
            worker(directory, kind)
        pids.append(pid)
        print("worker", pid, kind, flush=True)
    print("ready", flush=True)
    ended = []
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            print("signaled", pid, os.WTERMSIG(status), flush=True)  # real run only
        else:
            print("exited", pid, os.WEXITSTATUS(status), flush=True)
        ended.append(status)
    master_after(ended)


if __name__ == "__main__":
    main()

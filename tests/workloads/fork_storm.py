"""Test workload for --subprocesses under a fork storm: for WORKLOAD_SECONDS the master forks
a child every FORK_EVERY seconds, reaping the ones that ended; each child works for 0.1-0.4 s
(storm_child_work) and every fourth forks a grandchild of its own (storm_grandchild_work).
About fifty processes are alive at any moment, hundreds in all. Prints "ready" once started
and "forked N" at the end.

With STORM_TRUTH=DIR, every process records the lines it executes (sys.settrace, inherited
across fork) and writes them to DIR/PID.lines before it exits: the ground truth of what ran. A child's
set starts as its parent's at the fork, since the lines on its inherited stack ran there.
"""
import os
import sys
import time

TRUTH_DIR = os.environ.get("STORM_TRUTH")
executed = set()


def record_lines(frame, event, arg):
    if event == "line" and frame.f_code.co_filename == __file__:
        executed.add(frame.f_lineno)
    return record_lines


def save_truth():
    """Write this process's executed lines (the caller's line included); returns 0."""
    if TRUTH_DIR:
        sys.settrace(None)
        with open(os.path.join(TRUTH_DIR, "%d.lines" % os.getpid()), "w") as f:
            f.write("\n".join(str(line) for line in sorted(executed)))
    return 0


if TRUTH_DIR:
    # From here on, this module's frame included (its last line runs main()).
    sys.settrace(record_lines)
    sys._getframe().f_trace = record_lines


def busy(seconds, step):
    total = 0
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        for i in range(500):
            total += step(i)
    return total


def storm_grandchild_work(n):
    return busy(0.1 + (n % 3) * 0.1, lambda i: i * 7)


def storm_child_work(n):
    if n % 4 == 0:
        fork_and_forget(storm_grandchild_work, n)
    return busy(0.1 + (n % 4) * 0.1, lambda i: i * 3)


def fork_and_forget(work, n):
    pid = os.fork()
    if pid == 0:
        try:
            work(n)
        finally:
            os._exit(save_truth())
    return pid


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def master_storm(seconds, every):
    forked = 0
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        fork_and_forget(storm_child_work, forked)
        forked += 1
        reap()
        time.sleep(every)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
    return forked


def main():
    seconds = float(os.environ.get("WORKLOAD_SECONDS", "4"))
    every = float(os.environ.get("FORK_EVERY", "0.005"))
    print("ready", flush=True)
    forked = master_storm(seconds, every)
    print("forked %d" % forked, flush=True)
    save_truth()


if __name__ == "__main__":
    sys.exit(main())

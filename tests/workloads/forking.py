"""Test workload for --subprocesses: a pre-fork server in miniature. The master forks two
workers at once; after LATE_WORKER_DELAY seconds it forks a third; the first worker forks a
grandchild of its own. Each runs its own function (child_work, late_work, grandchild_work)
until WORKLOAD_SECONDS have passed; the master waits for them (master_wait). Prints "ready"
once the first workers exist.
"""
import os
import sys
import time


def spin(stop_at, step):
    total = 0
    while time.monotonic() < stop_at:
        for i in range(2000):
            total += step(i)
    return total


def child_work(stop_at):
    return spin(stop_at, lambda i: i * 2)


def late_work(stop_at):
    return spin(stop_at, lambda i: i * 3)


def grandchild_work(stop_at):
    return spin(stop_at, lambda i: i * 5)


def fork(work, stop_at, then=None):
    pid = os.fork()
    if pid == 0:
        try:
            if then is not None:
                then()
            work(stop_at)
        finally:
            os._exit(0)
    return pid


def master_wait(pids, stop_at):
    while time.monotonic() < stop_at:
        time.sleep(0.05)
    for pid in pids:
        os.waitpid(pid, 0)


def main():
    seconds = float(os.environ.get("WORKLOAD_SECONDS", "5"))
    late = float(os.environ.get("LATE_WORKER_DELAY", "1.5"))
    stop_at = time.monotonic() + seconds
    pids = [
        fork(child_work, stop_at, then=lambda: fork(grandchild_work, stop_at)),
        fork(child_work, stop_at),
    ]
    print("ready", flush=True)
    time.sleep(late)
    print("late worker", flush=True)
    pids.append(fork(late_work, stop_at))
    master_wait(pids, stop_at)


if __name__ == "__main__":
    sys.exit(main())

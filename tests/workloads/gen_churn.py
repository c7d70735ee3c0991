"""Test workload: generator and context-manager churn, as real code has it (issue 13).

Generator frames live outside the thread's data stack (in their generator objects) and are
created and freed all the time here, so a stack read often meets a `previous` that pointed to
a frame that is gone. Runs for WORKLOAD_SECONDS (default 3); prints "ready" once started.
"""
import contextlib
import os
import sys
import time


@contextlib.contextmanager
def cm(x):
    yield x


def gen(n):
    for i in range(n):
        yield str(i)


def work():
    with cm(1):
        return sum(len(s) for s in gen(20))


def main():
    stop_at = time.monotonic() + float(os.environ.get("WORKLOAD_SECONDS", "3"))
    print("ready", flush=True)
    total = 0
    while time.monotonic() < stop_at:
        total += work()
    return total


if __name__ == "__main__":
    main()
    sys.exit(0)

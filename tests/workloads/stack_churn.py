"""Test workload for precision under stress: stacks that change as fast as they can. Deep
recursion built and torn down, generators suspended and resumed, exceptions unwinding through
many frames, and threads started and dying, repeated until WORKLOAD_SECONDS have passed.

Every iteration runs the same lines whatever the duration (each branch every time), so a short
run under the stdlib's trace sees every line a long sampled run can. Prints "ready" once set up.
"""
import os
import threading
import time


def dive(depth):
    if depth == 0:
        return 0
    return dive(depth - 1) + 1


def raise_at(depth):
    if depth == 0:
        raise ValueError("bottom")
    return raise_at(depth - 1)


def unwind(depth):
    try:
        raise_at(depth)
    except ValueError:
        return depth


def numbers(limit):
    for i in range(limit):
        yield i
    return limit


def pipeline(limit):
    total = 0
    for value in numbers(limit):
        total += value
    return total


def short_thread():
    dive(30)


def iteration():
    dive(200)
    unwind(100)
    pipeline(50)
    threads = [threading.Thread(target=short_thread) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main():
    seconds = float(os.environ.get("WORKLOAD_SECONDS", "3"))
    iteration()
    print("ready", flush=True)
    deadline = time.time() + seconds
    while time.time() < deadline:
        iteration()


main()

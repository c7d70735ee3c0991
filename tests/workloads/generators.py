"""Test workload for precision with generators at a high rate (issue 19): loops over generators
that yield nothing and over ones that yield, `yield from` delegation, comprehensions (inlined
on 3.12+), generator expressions, and async generators driven without an event loop. Lines
marked "never runs" must never be reported.

Every iteration runs the same lines whatever the duration, so a short run under the stdlib's
trace sees every line a long sampled run can. Runs for WORKLOAD_SECONDS; prints "ready" once set
up.
"""
import os
import time


def nothing():
    return
    yield  # never runs


def count_to(n):
    for i in range(n):
        yield i


def empty_loop():
    total = 0
    for x in nothing():
        total += 1  # never runs
    return total


def full_loop():
    total = 0
    for x in count_to(3):
        total += x
    return total


def delegate():
    yield from nothing()
    yield from count_to(2)


def delegating_loop():
    total = 0
    for x in delegate():
        total += x
    return total


def comprehensions():
    squares = [i * i for i in count_to(4)]
    empty = [i for i in nothing()]
    mapping = {i: i for i in count_to(2)}
    return sum(squares) + len(empty) + len(mapping) + sum(i for i in count_to(3))


async def async_numbers(n):
    for i in range(n):
        yield i


async def async_nothing():
    return
    yield  # never runs


async def consume():
    total = 0
    async for value in async_numbers(3):
        total += value
    async for value in async_nothing():
        total += 100  # never runs
    return total


def drive(coroutine):
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the coroutine suspended")


def iteration():
    # The loop over an empty generator most: its phantom (3.12) needs many exits to show.
    total = 0
    for _ in range(20):
        total += empty_loop()
    return (
        total
        + full_loop()
        + delegating_loop()
        + comprehensions()
        + drive(consume())
    )


def main():
    stop_at = time.monotonic() + float(os.environ.get("WORKLOAD_SECONDS", "3"))
    print("ready", flush=True)
    total = iteration()
    while time.monotonic() < stop_at:
        total += iteration()
    return total


if __name__ == "__main__":
    main()

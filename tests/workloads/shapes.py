# -*- coding: utf-8 -*-
"""Test workload for the reader: stack shapes that are hard to read from outside.

Deep recursion (depth 500), generators feeding generators, coroutines on an event loop,
threads that start and end all the time, and non-ASCII names, all running at once until
WORKLOAD_SECONDS have passed. Prints "ready" once every shape is running.
"""
import asyncio
import os
import sys
import threading
import time

sys.setrecursionlimit(5000)


def deep(n, stop_at):
    if n == 0:
        spin_until_slice(stop_at)
        return 0
    return deep(n - 1, stop_at) + 1


def spin_until_slice(stop_at):
    total = 0
    for i in range(20000):
        total += i
    return total


def deep_forever(stop_at):
    while time.monotonic() < stop_at:
        deep(500, stop_at)


def numbers(limit):
    for i in range(limit):
        yield i


def squares(limit):
    for n in numbers(limit):
        yield n * n


def generators_forever(stop_at):
    while time.monotonic() < stop_at:
        sum(squares(5000))


async def leaf(n):
    await asyncio.sleep(0)
    return sum(range(n))


async def middle(n):
    return await leaf(n) + await leaf(n + 1)


async def coroutines(stop_at):
    while time.monotonic() < stop_at:
        await asyncio.gather(*(middle(200) for _ in range(20)))


def coroutines_forever(stop_at):
    asyncio.run(coroutines(stop_at))


def kurz_leben(n):
    return sum(i * i for i in range(n))


def churn_threads(stop_at):
    while time.monotonic() < stop_at:
        batch = [threading.Thread(target=kurz_leben, args=(3000,)) for _ in range(4)]
        for t in batch:
            t.start()
        for t in batch:
            t.join()


class Größe:
    def berechne(self, stop_at):
        while time.monotonic() < stop_at:
            self.schritt()

    def schritt(self):
        return sorted(range(2000), key=lambda x: -x)


def main():
    stop_at = time.monotonic() + float(os.environ.get("WORKLOAD_SECONDS", "5"))
    targets = [deep_forever, generators_forever, coroutines_forever, churn_threads, Größe().berechne]
    threads = [threading.Thread(target=t, args=(stop_at,), name=t.__name__) for t in targets]
    for t in threads:
        t.start()
    print("ready", flush=True)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()

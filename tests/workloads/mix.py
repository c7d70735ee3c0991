# -*- coding: utf-8 -*-
"""Test workload: nested calls, loops, a class with methods, a generator, two threads,
recursion and a non-ASCII function name, repeated until WORKLOAD_SECONDS have passed.

Every iteration runs the same lines whatever the duration, so a short run under the stdlib's
trace and a long sampled run execute the same set of lines. Prints "ready" once set up.
"""
import os
import sys
import threading
import time


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def squares(limit):
    for i in range(limit):
        yield i * i


def grüße(name):
    text = "Grüße, " + name
    return len(text)


class Accumulator:
    def __init__(self):
        self.total = 0

    def add_many(self, values):
        for value in values:
            self.add(value)
        return self.total

    def add(self, value):
        self.total += value


def inner_work(n):
    acc = Accumulator()
    acc.add_many(squares(n))
    return acc.total


def outer_work(n):
    result = 0
    for _ in range(3):
        result += inner_work(n)
    return result


def worker(stop_at, results):
    count = 0
    while True:
        count += sum(squares(2000))
        if time.monotonic() >= stop_at:
            break
    results.append(count)


def main():
    seconds = float(os.environ.get("WORKLOAD_SECONDS", "3"))
    stop_at = time.monotonic() + seconds
    results = []
    thread = threading.Thread(target=worker, args=(stop_at, results))
    thread.start()
    print("ready", flush=True)
    rounds = 0
    while True:
        fib(18)
        outer_work(3000)
        grüße("Welt")
        rounds += 1
        if time.monotonic() >= stop_at:
            break
    thread.join()
    return rounds


if __name__ == "__main__":
    sys.exit(0 if main() > 0 else 1)

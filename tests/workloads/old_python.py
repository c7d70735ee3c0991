# Test workload that runs on Python 2.7 as well: recursion and a method, for WORKLOAD_SECONDS.
import os
import time


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


class Runner(object):
    def run(self, seconds):
        stop_at = time.time() + seconds
        while time.time() < stop_at:
            fib(15)


Runner().run(float(os.environ.get("WORKLOAD_SECONDS", "2")))

"""Test workload for the frame walker: the main thread stands in a running generator.

`drive` loops over `waiting()`, whose body prints "ready" and then sleeps (a C call, no frame
of its own) until WORKLOAD_SECONDS have passed: the thread's innermost frame is the
generator's, linked to its caller `drive` only while it runs (`f_back` on 3.8-3.10,
`previous` on 3.11+), under `<module>`.
"""
import os
import time


def waiting():
    print("ready", flush=True)
    time.sleep(float(os.environ.get("WORKLOAD_SECONDS", "30")))
    yield 1


def drive():
    total = 0
    for value in waiting():
        total += value
    return total


drive()

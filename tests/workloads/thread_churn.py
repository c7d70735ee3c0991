"""Threads created and destroyed as fast as possible: THREADS of them in flight at a time,
each living a few milliseconds, for WORKLOAD_SECONDS. Prints "ready" once the first batch runs.
"""
import os
import threading
import time


def short_life(depth):
    if depth:
        return short_life(depth - 1)
    time.sleep(0.001)


def main():
    seconds = float(os.environ.get("WORKLOAD_SECONDS", "5"))
    total = int(os.environ.get("THREADS", "1000"))
    deadline = time.time() + seconds
    created = 0
    ready = False
    while time.time() < deadline:
        batch = [threading.Thread(target=short_life, args=(i % 20,)) for i in range(100)]
        for t in batch:
            t.start()
        created += len(batch)
        if not ready:
            print("ready", flush=True)
            ready = True
        for t in batch:
            t.join()
        if created >= total and seconds <= 0:
            break
    print("created", created, flush=True)


main()

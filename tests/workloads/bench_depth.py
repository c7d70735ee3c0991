"""CPU-bound benchmark target: `python bench_depth.py DEPTH [TICK_SECONDS]`.

Recurses until DEPTH frames are on the stack (counting <module>, main and spin), then spins in pure
Python forever. The spin loop calls two small functions, so the top one or two frames change
constantly, as they do in real code.

Output, one line each, flushed:
    ready                  once the stack is DEPTH frames deep and spinning starts
    tick MONOTONIC COUNT   every TICK_SECONDS (default 0.1): time.monotonic() and the number
                           of spin iterations so far, so that a reader can compute the
                           throughput over any window (time.monotonic is system-wide)
"""

import sys
import time

BATCH = 1000


def leaf(i):
    return i * 3 + 1


def middle(i):
    if i & 1:
        return leaf(i)
    return leaf(i + 1) - 1


def spin(tick_seconds):
    print("ready", flush=True)
    count = 0
    next_tick = time.monotonic() + tick_seconds
    while True:
        for i in range(BATCH):
            middle(i)
        count += BATCH
        now = time.monotonic()
        if now >= next_tick:
            print(f"tick {now:.6f} {count}", flush=True)
            next_tick = now + tick_seconds


def descend(levels, tick_seconds):
    if levels <= 1:
        spin(tick_seconds)
    else:
        descend(levels - 1, tick_seconds)


def main():
    depth = int(sys.argv[1])
    tick_seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 0.1
    if depth < 4:
        sys.exit("DEPTH must be at least 4")
    # <module> + main + (depth - 3) descend frames + spin = depth frames.
    descend(depth - 3, tick_seconds)


if __name__ == "__main__":
    main()

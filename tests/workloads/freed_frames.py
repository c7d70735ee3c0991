"""Test workload for the frame walker: frames freed and left on CPython's free list (3.8–3.10).

`gone(6)` recurses and returns: its seven frames are freed. The first becomes the code's zombie
frame (reused by the next call of `gone`); the six others go on the interpreter's free list,
linked through `f_back`, each keeping its stale `f_code` and `f_lasti`, with a reference count
of zero. Prints their addresses, outermost call first, then "ready", then waits inside
`gone(-1)` until WORKLOAD_SECONDS have passed. Only C functions run between the recursion and
the wait, so no Python frame is taken from the free list in between.
"""
import os
import sys
import time


def gone(depth):
    if depth < 0:
        print("ready", flush=True)
        time.sleep(float(os.environ.get("WORKLOAD_SECONDS", "30")))
        return []
    if depth == 0:
        return [id(sys._getframe())]
    return gone(depth - 1) + [id(sys._getframe())]


freed = gone(6)
freed.reverse()
print("freed", " ".join(map(hex, freed)), flush=True)
gone(-1)

"""Test workload: a class call whose __init__ calls a function that runs for WORKLOAD_SECONDS
(default 3), after enough calls for the interpreter to specialize the class call.

From 3.13 a specialized call of a class with a Python __init__ (CALL_ALLOC_AND_ENTER_INIT)
pushes a frame of the interpreter's own trampoline code (`_Py_InitCleanup`, no lines) between
the caller and __init__. Prints "ready" once it stands in `spin`.
"""
import os
import sys
import time


def spin(seconds):
    if seconds:
        print("ready", flush=True)
        stop_at = time.monotonic() + seconds
        while time.monotonic() < stop_at:
            pass


class Made:
    def __init__(self, seconds):
        spin(seconds)


def make(seconds):
    return Made(seconds)


def main():
    for _ in range(5000):
        make(0)
    make(float(os.environ.get("WORKLOAD_SECONDS", "3")))


if __name__ == "__main__":
    main()
    sys.exit(0)

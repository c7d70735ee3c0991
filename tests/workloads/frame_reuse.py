"""Test workload for the function view: `target` and `other` take turns in the same frame slot.

Each waits a moment in `time.sleep` (a stable instruction, as a sampler likes), then returns;
the next call's frame takes the place the last one left (the same address in the thread's data
stack on 3.11+). A sampler that walked the stack while `target` waited and read its locals
after it returned would find `other`'s argument in `target`'s first slot: `tag` must only ever
be seen holding "mine". Prints "ready", then alternates until WORKLOAD_SECONDS have passed.
"""
import os
import time


def target(tag):
    time.sleep(len(tag) * 0.00005)
    return tag


def other(value):
    time.sleep(len(value) * 0.00005)
    return value


def main():
    seconds = float(os.environ.get("WORKLOAD_SECONDS", "2"))
    print("ready", flush=True)
    deadline = time.time() + seconds
    while time.time() < deadline:
        target("mine")
        other("theirs")


main()

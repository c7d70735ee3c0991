"""Test workload for `tracer run`: busy for WORKLOAD_SECONDS, then exits with the status given
as its first argument."""
import os
import sys
import time


def spin(seconds):
    stop_at = time.monotonic() + seconds
    total = 0
    while time.monotonic() < stop_at:
        total += sum(range(1000))
    return total


if __name__ == "__main__":
    spin(float(os.environ.get("WORKLOAD_SECONDS", "1")))
    sys.exit(int(sys.argv[1]))

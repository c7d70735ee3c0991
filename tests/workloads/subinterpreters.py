"""A busy main interpreter beside live subinterpreters (3.12+): one idle, one running code in a
thread of its own; the newest interpreter (`interpreters.head`) is a subinterpreter throughout.
tests/it/readers.rs checks that the main interpreter's busy() and the subinterpreter's sub_spin()
are both recorded, and `tracer dump` lists the main interpreter's threads first."""
import os
import sys
import threading
import time

try:
    import _interpreters as interpreters
except ImportError:  # 3.12
    import _xxsubinterpreters as interpreters


def busy(seconds):
    end = time.monotonic() + seconds
    total = 0
    while time.monotonic() < end:
        for i in range(1000):
            total += i * i
    return total


SUBINTERPRETER_CODE = """
import time

def sub_spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.001)

sub_spin(%r)
"""


def run_in_subinterpreter(interp, seconds):
    interpreters.run_string(interp, SUBINTERPRETER_CODE % seconds)


seconds = float(os.environ.get("WORKLOAD_SECONDS", "3"))
idle = interpreters.create()
running = interpreters.create()
thread = threading.Thread(target=run_in_subinterpreter, args=(running, seconds + 1))
thread.start()
print("ready", flush=True)
busy(seconds)
thread.join()
interpreters.destroy(idle)
interpreters.destroy(running)

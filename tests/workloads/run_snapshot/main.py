"""`tracer run --snapshot`'s workload (tests/it/run_snapshot.rs): a module imported, run and
dropped (its code freed) before the end, which only a snapshot along the way can see; a
function that lives to the end, for the final snapshot; then an exit chosen by argv[2]:
`normal` (finalizes), `os_exit` (never finalizes) or a status code."""
import gc
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def kept(n):
    if n > 3:
        return n * 2
    return n


import dropped

dropped.used_then_dropped(10)
time.sleep(float(sys.argv[1]))
del sys.modules["dropped"], dropped
gc.collect()
kept(5)
how = sys.argv[2]
sys.stdout.flush()
if how == "os_exit":
    os._exit(0)
elif how != "normal":
    sys.exit(int(how))

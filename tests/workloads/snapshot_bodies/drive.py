"""Module and class bodies for tests/it/snapshot.rs (`module_bodies_*`): import the mb_* modules,
print "ready", wait for a line (or EOF) on stdin. Run once under trace (the truth), once
snapshotted while it waits.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mb_shapes  # noqa: E402
import mb_cycle_a  # noqa: E402
import mb_dispatch  # noqa: E402

try:
    import mb_broken  # noqa: F401  (raises half-way: removed from sys.modules)
except RuntimeError:
    pass

print("ready", flush=True)
sys.stdin.readline()

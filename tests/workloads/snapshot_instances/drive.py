"""Functions reachable only through objects, for tests/it/snapshot_instances.rs: import
held.py, print "ready", wait for a line (or EOF) on stdin. Run once under trace (the truth),
once snapshotted while it waits.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import held  # noqa: E402,F401

print("ready", flush=True)
sys.stdin.readline()

"""Executed three times: the last execution raises half-way."""
import sys

EARLY = ["a", "b", "c", "d"]
if getattr(sys, "_nsw_fail_reload", False):
    raise RuntimeError("this execution stops here")
LATE = ("e", "f", "g", "h")
TAIL = 1

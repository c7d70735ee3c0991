"""Module namespaces for tests/it/snapshot_namespaces.rs: import the nsw package (modules that
made no function), reload one, fail a reload, rebind names from outside, import a submodule
and a module that raises half-way; print "ready", wait for a line (or EOF) on stdin. Run once
under trace (the truth), once snapshotted while it waits.
"""
import importlib
import os
import sys
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nsw  # noqa: E402
import nsw.tables  # noqa: E402
import nsw.reloaded  # noqa: E402
import nsw.rebound  # noqa: E402
import nsw.other  # noqa: E402
import nsw.pkg.sub  # noqa: E402  (binds `sub` in nsw.pkg, whose own import of it never ran)

# Executed twice: the second time completes.
importlib.reload(nsw.reloaded)
# The second execution raises after EARLY: LATE is the first execution's.
sys._nsw_fail_reload = True
try:
    importlib.reload(nsw.reloaded)
except RuntimeError:
    pass

# Rebound from outside: none of these made by the module's own (never run) statements.
nsw.rebound.NEVER = ["other", "content"]
nsw.rebound.Ghost = nsw.other.Ghost
nsw.rebound.json = nsw.other.json
patcher = mock.patch.object(nsw.rebound, "PATCHED", ["p", "q", "r", "s"], create=False)
patcher.start()

try:
    import nsw.broken  # noqa: F401  (raises half-way: removed from sys.modules)
except ImportError:
    pass

print("ready", flush=True)
sys.stdin.readline()

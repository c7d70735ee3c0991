"""Names bound from outside; the module's own statements binding them never ran."""
import sys

PATCHED = ["a", "b", "c", "d"]
if sys.maxsize < 0:
    NEVER = ["not", "the", "display", "at all"]

    class Ghost:
        x = 1

    import json
KEPT = {"k1": 1, "k2": 2, "k3": 3, "k4": 4}

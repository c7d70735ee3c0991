"""The other half: a is in sys.modules but not done when this body runs."""
import mb_cycle_a

PARTIAL = hasattr(mb_cycle_a, "A_DONE")


def from_b():
    return 2

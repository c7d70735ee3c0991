"""Half of a circular import: b imports a while a is still running."""
import mb_cycle_b


def from_a():
    return mb_cycle_b.from_b()


A_DONE = True

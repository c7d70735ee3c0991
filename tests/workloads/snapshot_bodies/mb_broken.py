"""Raises half-way through its body: the import fails and is caught by the driver."""


def made_before_the_error():
    return 1


KEPT = made_before_the_error


def escaped():
    return 2


import mb_shapes  # noqa: E402
mb_shapes.escaped = escaped
raise RuntimeError("import fails here")


def never_made():
    return 3

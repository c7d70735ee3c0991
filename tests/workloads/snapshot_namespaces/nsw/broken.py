"""Raises half-way: removed from sys.modules, so nothing of it is read."""
BEFORE = ("p", "q", "r", "s")


class Made:
    y = 1


raise ImportError("half-way")
AFTER = ("t", "u", "v", "w")

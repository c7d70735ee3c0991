"""Imported from outside the package."""
SUB_TABLE = (1, 2, 3, 4)

"""A package of modules that made no function."""
import os
import json as _json
from .tables import COLORS
from . import tables
from .tables import License as _License

__all__ = ["COLORS", "tables", "os", "_json"]

"""Its submodule's name is bound by the import system, not by a statement here."""
import sys

if sys.maxsize < 0:
    from . import sub

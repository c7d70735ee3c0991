"""Print trace's own executable lines as JSON: {path: [lines]}.

Usage: python executable_lines.py PATH...      the given files
       python executable_lines.py --stdlib     every .py file of this Python's stdlib

Files this Python cannot compile are left out, as are lib2to3's test data and the test suite's
deliberately bad files. 3.13's findlinestarts also yields None (no line): not a line.
"""
import json
import os
import sys
import sysconfig
import trace
import warnings


def stdlib_files():
    root = sysconfig.get_paths()["stdlib"]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if "site-packages" in dirpath.split(os.sep):
            continue
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if "lib2to3" in rel and "data" in rel.split(os.sep):
                continue
            if "bad" in name and "test" in rel:
                continue
            yield os.path.join(dirpath, name)


def main():
    warnings.simplefilter("ignore")
    paths = list(stdlib_files()) if sys.argv[1:] == ["--stdlib"] else sys.argv[1:]
    out = {}
    for path in paths:
        try:
            with open(path, "rb") as f:
                compile(f.read(), path, "exec", dont_inherit=True)
            lines = trace._find_executable_linenos(path)
        except Exception:
            continue
        out[path] = sorted(line for line in lines if line is not None)
    json.dump(out, sys.stdout)


main()

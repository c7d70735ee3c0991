"""Compare tracer's coverage.py arc data file with coverage.py's own `run --branch` of the same
workload (tests/it/coverage_arcs.rs), with coverage.py's own API.

    python coverage_arcs_check.py OURS TRUTH DIR

For the files under DIR: every arc in OURS must be one coverage.py measured in TRUTH
(precision), and, folded onto statements as coverage.py's reports fold them
(`PythonParser.translate_arcs`), one its parser thinks possible (`PythonParser.arcs()`) or an
arc inside one statement (which its reports ignore). Prints one JSON object: the counts, the
arcs that fail either check, and the lines our file's arcs name (what coverage.py reports
executed).
"""

import json
import os
import sys

from coverage import CoverageData
from coverage.parser import PythonParser


def arcs_by_file(path, under):
    data = CoverageData(path)
    data.read()
    if not data.has_arcs():
        sys.exit(f"{path} holds no arcs")
    out = {}
    for name in data.measured_files():
        real = os.path.realpath(name)
        if real.startswith(under):
            out[real] = set(map(tuple, data.arcs(name) or []))
    return out


def main():
    ours_path, truth_path, under = sys.argv[1:4]
    under = os.path.realpath(under) + os.sep
    ours = arcs_by_file(ours_path, under)
    truth = arcs_by_file(truth_path, under)
    result = {"ours": 0, "measured": 0, "truth": 0, "impossible": [], "not_measured": [],
              "lines": {}}
    for name in sorted(set(ours) | set(truth)):
        mine, real = ours.get(name, set()), truth.get(name, set())
        result["ours"] += len(mine)
        result["truth"] += len(real)
        result["measured"] += len(mine & real)
        short = os.path.relpath(name, under)
        result["not_measured"] += [[short, a, b] for a, b in sorted(mine - real)]
        if mine:
            parser = PythonParser(filename=name)
            parser.parse_source()
            possible = parser.arcs()
            for arc in sorted(mine):
                (a, b), = parser.translate_arcs([arc])
                if a != b and (a, b) not in possible:
                    result["impossible"].append([short, arc[0], arc[1], a, b])
        result["lines"][short] = sorted({n for arc in mine for n in arc if n > 0})
    print(json.dumps(result))


main()

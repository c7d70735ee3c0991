"""Compare snapshots with the ground truth of trace, per statement kind (tests/it/snapshot.rs).

Usage: python snapshot_compare.py TRUTH.pickle FILE_SUFFIX SNAPSHOT.json [SNAPSHOT.json...]

TRUTH.pickle is trace's (counts, calledfuncs, callers) of a separate run of the same workload;
each SNAPSHOT.json is tracer's JSON. Only files whose path ends with one of the comma-separated
FILE_SUFFIX names are compared. Prints one JSON object per snapshot: false positives (lines
reported but not in the truth), and recall overall, in function bodies, at module or class
level, and per statement kind (the ast node type of the innermost statement starting on the
line, "(inside) T" for a continuation line of a T statement); and for the snapshot's "likely"
lines (unproven, reported apart): how many, which are wrong (not in the truth), and the recall
of proven and likely lines together.
"""
import ast
import json
import pickle
import sys


def line_kinds(path):
    """line -> (statement kind, in a function body)"""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    kinds = {}

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                start, end = child.lineno, child.end_lineno or child.lineno
                kinds[start] = (type(child).__name__, in_function)
                for line in range(start + 1, end + 1):
                    kinds.setdefault(line, ("(inside) " + type(child).__name__, in_function))
                inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                # A statement's own lines are overwritten by the statements nested in it.
                for line in range(start + 1, end + 1):
                    if kinds.get(line, ("",))[0].startswith("(inside)"):
                        kinds[line] = ("(inside) " + type(child).__name__, inner)
                visit(child, inner)
            elif isinstance(child, ast.Lambda):
                visit(child, True)
            else:
                visit(child, in_function)

    visit(tree, False)
    return kinds


def main():
    truth_path, suffixes, snapshots = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
    with open(truth_path, "rb") as f:
        counts = pickle.load(f)[0]
    wanted = lambda path: any(path.endswith(s) for s in suffixes)
    truth = {(p, l) for (p, l) in counts if wanted(p)}
    kinds = {p: line_kinds(p) for p in {p for p, _ in truth}}
    for snapshot_path in snapshots:
        with open(snapshot_path) as f:
            data = json.load(f)
        found = {(p, l) for p, l, *_ in data["counts"] if wanted(p)}
        false_positives = sorted(found - truth)
        likely = {(p, l) for p, l in data.get("likely", []) if wanted(p)}
        both = found | likely
        table, with_likely = {}, {}
        for key in truth:
            kind, in_function = kinds[key[0]].get(key[1], ("?", False))
            for row in ("all", "function bodies" if in_function else "module/class level",
                        kind):
                hit, total = table.get(row, (0, 0))
                table[row] = (hit + (key in found), total + 1)
                hit, total = with_likely.get(row, (0, 0))
                with_likely[row] = (hit + (key in both), total + 1)
        print(json.dumps({"snapshot": snapshot_path, "false_positives": false_positives,
                          "reported": len(found), "recall": table,
                          "likely": len(likely), "likely_wrong": sorted(likely - truth),
                          "likely_overlapping_counts": len(likely & found),
                          "recall_with_likely": with_likely}))


if __name__ == "__main__":
    main()

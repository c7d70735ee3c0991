"""Merge results pickles with the stdlib's own CoverageResults.update and print the result
as sorted JSON, to compare with `tracer merge`.

usage: trace_merge.py A.pickle B.pickle ...   (or --load M.pickle: print one file as JSON)
"""
import json
import pickle
import sys
import trace


def as_json(counts, calledfuncs, callers):
    return json.dumps({
        "counts": sorted([list(k), v] for k, v in counts.items()),
        "calledfuncs": sorted(list(k) for k in calledfuncs),
        "callers": sorted([list(a), list(b)] for a, b in callers),
    }, sort_keys=True)


if sys.argv[1] == "--load":
    with open(sys.argv[2], "rb") as f:
        print(as_json(*pickle.load(f)))
    sys.exit(0)
merged = trace.CoverageResults()
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        counts, calledfuncs, callers = pickle.load(f)
    merged.update(trace.CoverageResults(counts=counts, calledfuncs=calledfuncs,
                                        callers=callers))
print(as_json(merged.counts, merged.calledfuncs, merged.callers))

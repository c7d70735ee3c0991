"""Structural check of a speedscope file against speedscope's file-format schema
(https://www.speedscope.app/file-format-schema.json): the required fields and their types, a
sampled profile's samples and weights, frame indexes in range.

usage: speedscope_check.py FILE.speedscope.json
Prints one line per problem and exits 1 if there is any.
"""
import json
import sys

with open(sys.argv[1]) as f:
    doc = json.load(f)
problems = []


def need(cond, what):
    if not cond:
        problems.append(what)


need(doc.get("$schema") == "https://www.speedscope.app/file-format-schema.json", "$schema")
frames = doc.get("shared", {}).get("frames")
need(isinstance(frames, list), "shared.frames is a list")
for i, frame in enumerate(frames or []):
    need(isinstance(frame.get("name"), str), "frame %d has a string name" % i)
    need(isinstance(frame.get("file", ""), str), "frame %d file is a string" % i)
    need(isinstance(frame.get("line", 0), int), "frame %d line is an integer" % i)
profiles = doc.get("profiles")
need(isinstance(profiles, list) and profiles, "profiles is a non-empty list")
for p in profiles or []:
    need(p.get("type") in ("sampled", "evented"), "profile type")
    need(isinstance(p.get("name"), str), "profile name")
    need(p.get("unit") in ("none", "nanoseconds", "microseconds", "milliseconds", "seconds",
                           "bytes"), "profile unit")
    need(isinstance(p.get("startValue"), (int, float)), "startValue")
    need(isinstance(p.get("endValue"), (int, float)), "endValue")
    need(p.get("endValue", 0) >= p.get("startValue", 0), "endValue >= startValue")
    if p.get("type") == "sampled":
        samples, weights = p.get("samples", []), p.get("weights", [])
        need(len(samples) == len(weights), "as many weights as samples")
        need(all(isinstance(w, (int, float)) and w >= 0 for w in weights), "weights")
        for stack in samples:
            need(all(isinstance(i, int) and 0 <= i < len(frames) for i in stack),
                 "frame indexes in range")
        need(sum(weights) <= p["endValue"] - p["startValue"], "weights fit the span")
index = doc.get("activeProfileIndex", 0)
need(isinstance(index, int) and 0 <= index < len(profiles or [1]), "activeProfileIndex")
for problem in problems:
    print(problem)
sys.exit(1 if problems else 0)

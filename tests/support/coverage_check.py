"""Check what coverage.py makes of a data file tracer wrote, against tracer's own line sets.

usage: coverage_check.py DATA_FILE OURS.json COVERAGE.json COVERAGE.lcov

OURS.json maps each file to the lines tracer counted. Checked:
- coverage.py's CoverageData reads exactly those files and lines;
- `coverage json` (COVERAGE.json) shows as executed exactly coverage.py's own folding of our
  lines onto statements (`translate_lines`: a line inside a multi-line statement counts for
  its first line), and as missing the statements left;
- `coverage lcov` (COVERAGE.lcov) marks covered exactly those executed statements.
Prints one line per problem and exits 1 if there is any; prints a summary line otherwise.
"""
import json
import sys

import coverage
from coverage.python import PythonFileReporter

data_file, ours_file, json_file, lcov_file = sys.argv[1:]
with open(ours_file) as f:
    ours = {name: set(lines) for name, lines in json.load(f).items()}
problems = []

cov = coverage.Coverage(data_file=data_file)
cov.load()
data = cov.get_data()
measured = set(data.measured_files())
if measured != set(ours):
    problems.append("files differ: only coverage.py %s, only tracer %s"
                    % (sorted(measured - set(ours)), sorted(set(ours) - measured)))
for name in sorted(measured & set(ours)):
    if set(data.lines(name)) != ours[name]:
        problems.append("%s: coverage.py reads lines %s, tracer counted %s"
                        % (name, sorted(data.lines(name)), sorted(ours[name])))

with open(json_file) as f:
    report = json.load(f)["files"]
expected_covered = {}
for name in sorted(ours):
    reporter = PythonFileReporter(name, cov)
    statements = reporter.lines()
    executed = reporter.translate_lines(ours[name])
    entry = report.get(name)
    if entry is None:
        problems.append("%s: not in coverage json" % name)
        continue
    if set(entry["executed_lines"]) != executed:
        problems.append("%s: coverage json executed %s, expected %s"
                        % (name, entry["executed_lines"], sorted(executed)))
    if set(entry["missing_lines"]) != statements - executed:
        problems.append("%s: coverage json missing %s, expected %s"
                        % (name, entry["missing_lines"], sorted(statements - executed)))
    expected_covered[name] = statements & executed

lcov_covered = {}
current = None
with open(lcov_file) as f:
    for line in f:
        if line.startswith("SF:"):
            current = line[3:].strip()
            lcov_covered[current] = set()
        elif line.startswith("DA:"):
            number, hits = line[3:].split(",")[:2]
            if int(hits) > 0:
                lcov_covered[current].add(int(number))
for name, covered in expected_covered.items():
    if lcov_covered.get(name) != covered:
        problems.append("%s: lcov covers %s, expected %s"
                        % (name, sorted(lcov_covered.get(name, ())), sorted(covered)))

for problem in problems:
    print(problem)
if problems:
    sys.exit(1)
print("coverage.py %s agrees on %d files, %d lines"
      % (coverage.__version__, len(ours), sum(len(v) for v in ours.values())))

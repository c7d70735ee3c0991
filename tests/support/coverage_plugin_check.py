"""Check what coverage.py reports with the tracer_coverage plugin, against tracer's own lines.

usage: coverage_plugin_check.py EXECUTABLE.json EXECUTED.json COVERAGE.json REPORT.txt

EXECUTABLE.json maps each file to tracer's executable lines, EXECUTED.json to the lines tracer
counted; COVERAGE.json is `coverage json`'s output and REPORT.txt `coverage report -m`'s, both
made with the plugin enabled. Checked, for every file:
- `coverage json`: statements are our executable lines, executed_lines the lines we counted,
  missing_lines executable - executed, nothing excluded;
- `coverage report -m`: Stmts and Miss are those counts, the Missing column names exactly the
  missing lines (its ranges span statements only), and TOTAL sums them.
Prints one line per problem and exits 1 if there is any; prints a summary line otherwise.
"""
import json
import os
import sys

import coverage

executable_file, executed_file, json_file, report_file = sys.argv[1:]
with open(executable_file) as f:
    executable = {name: set(lines) for name, lines in json.load(f).items()}
with open(executed_file) as f:
    executed = {name: set(lines) for name, lines in json.load(f).items()}
with open(json_file) as f:
    report = json.load(f)["files"]
problems = []

if set(report) != set(executable):
    problems.append("coverage json files %s, tracer analysed %s" % (sorted(report), sorted(executable)))
for name in sorted(set(report) & set(executable)):
    entry, statements = report[name], executable[name]
    missing = statements - executed.get(name, set())
    if entry["summary"]["num_statements"] != len(statements):
        problems.append("%s: %d statements, tracer has %d executable lines"
                        % (name, entry["summary"]["num_statements"], len(statements)))
    if set(entry["executed_lines"]) != executed.get(name, set()):
        problems.append("%s: coverage json executed %s, tracer counted %s"
                        % (name, entry["executed_lines"], sorted(executed.get(name, ()))))
    if set(entry["missing_lines"]) != missing:
        problems.append("%s: coverage json missing %s, expected %s"
                        % (name, entry["missing_lines"], sorted(missing)))
    if entry["excluded_lines"]:
        problems.append("%s: excluded %s" % (name, entry["excluded_lines"]))


def expand(column, statements):
    """The statements a Missing column names: `a-b` spans the statements from a to b."""
    named = set()
    for part in filter(None, (p.strip() for p in column.split(","))):
        first, _, last = part.partition("-")
        first, last = int(first), int(last or first)
        named |= {line for line in statements if first <= line <= last}
    return named


cwd = os.getcwd() + os.sep
rows = {}
with open(report_file) as f:
    for line in f:
        fields = line.split(None, 4)
        if len(fields) >= 4 and fields[1].isdigit() and fields[2].isdigit():
            rows[fields[0]] = (int(fields[1]), int(fields[2]), fields[4] if len(fields) > 4 else "")
total_statements = total_missing = 0
for name, statements in sorted(executable.items()):
    missing = statements - executed.get(name, set())
    total_statements += len(statements)
    total_missing += len(missing)
    shown = name[len(cwd):] if name.startswith(cwd) else name
    if shown not in rows:
        problems.append("%s: no row in coverage report" % shown)
        continue
    stmts, miss, column = rows[shown]
    if (stmts, miss) != (len(statements), len(missing)):
        problems.append("%s: report shows %d statements %d missing, expected %d %d"
                        % (shown, stmts, miss, len(statements), len(missing)))
    if expand(column, statements) != missing:
        problems.append("%s: report's Missing %r, expected %s" % (shown, column.strip(), sorted(missing)))
if rows.get("TOTAL", (None, None))[:2] != (total_statements, total_missing):
    problems.append("TOTAL %s, expected %d statements %d missing"
                    % (rows.get("TOTAL"), total_statements, total_missing))

for problem in problems:
    print(problem)
if problems:
    sys.exit(1)
print("coverage.py %s with tracer_coverage: %d files, %d statements, %d missing, as tracer's"
      % (coverage.__version__, len(executable), total_statements, total_missing))

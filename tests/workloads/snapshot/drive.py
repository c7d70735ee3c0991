"""Run the tm_* modules' code once, print "ready", and wait for a line (or EOF) on stdin.

tests/it/snapshot.rs snapshots it while it waits, and runs it again under trace with stdin
closed (the ground truth): both runs execute the same lines.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tm_algo
import tm_config
import tm_inventory
import tm_textproc

SETTINGS = """# demo
[main]
name = demo
port = 8080
debug = yes

[db]
host = localhost
timeout = abc
"""
PROSE = ("The quick brown fox jumps over the lazy dog. It was a bright cold day in April! "
         "Clocks were striking thirteen and the fox kept running? Never mind the dog")
STOCK = [("A1", "widget", "2.50", "10", "tools|metal"), ("B2", "gadget", "12", "3"),
         ("C3", "doohickey", "0.99", "1", "misc"), ("A1", "widget", "2.50", "5")]


def exercise():
    inventory = tm_inventory.load_inventory(STOCK)
    inventory.remove("C3")
    inventory.try_remove("B2", 7)
    inventory.total_value()
    inventory.by_tag()
    inventory.report()

    counts = tm_textproc.word_counts(PROSE)
    tm_textproc.top_words(counts, 3)
    tm_textproc.summarize(PROSE)
    tm_textproc.title_case("the art of computer programming")
    tm_textproc.wrap(PROSE, 30)

    tm_algo.gcd(1071, 462)
    for n in (1, 2, 9, 97):
        tm_algo.is_prime(n)
    tm_algo.bsearch(list(range(0, 100, 3)), 42)
    tm_algo.fib_memo(20)
    tm_algo.safe_div(1, 4)
    tm_algo.safe_div(1, 0)
    for value in (-3, 7, [1, 2]):
        tm_algo.classify(value)
    tm_algo.stats([3.0, 1.0, 4.0, 1.5])

    sections = tm_config.load(SETTINGS)
    schema = {"main": {"port": (int, True), "debug": (bool, False), "user": (str, False)},
              "db": {"timeout": (int, True)}, "cache": {}}
    tm_config.validate(sections, schema)
    tm_config.to_json(sections)
    tm_config.merge({"a": {"x": 1}, "b": 2}, {"a": {"y": 2}, "c": 3})
    tm_config.nested_with(3)


exercise()
print("ready", flush=True)
sys.stdin.readline()

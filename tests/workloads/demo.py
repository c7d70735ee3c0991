"""Demo workload for `make demo`: a small program with the shapes of a real one (parsing,
a cache, recursion, a worker thread), busy for WORKLOAD_SECONDS (default 3)."""
import json
import os
import threading
import time
from collections import Counter

WORDS = "the quick brown fox jumps over the lazy dog while the cat sleeps".split()


def make_document(seed):
    words = [WORDS[(seed * 7 + i * 3) % len(WORDS)] for i in range(200)]
    return json.dumps({"id": seed, "text": " ".join(words)})


def word_counts(document):
    record = json.loads(document)
    return Counter(record["text"].split())


_cache = {}


def partitions(n, largest=None):
    """Ways to write n as a sum of parts no larger than `largest` (memoised recursion)."""
    if largest is None:
        largest = n
    if n == 0:
        return 1
    key = (n, largest)
    if key not in _cache:
        _cache[key] = sum(partitions(n - part, part) for part in range(1, min(n, largest) + 1))
    return _cache[key]


def background(stop_at, totals):
    while time.monotonic() < stop_at:
        totals.append(sum(i * i for i in range(5000)))
        time.sleep(0.001)


def main():
    stop_at = time.monotonic() + float(os.environ.get("WORKLOAD_SECONDS", "3"))
    totals = []
    worker = threading.Thread(target=background, args=(stop_at, totals), name="background")
    worker.start()
    seen = Counter()
    rounds = 0
    while time.monotonic() < stop_at:
        seen.update(word_counts(make_document(rounds)))
        _cache.clear()
        partitions(60)
        rounds += 1
    worker.join()
    print("demo: %d rounds, most common word %r" % (rounds, seen.most_common(1)[0][0]))


if __name__ == "__main__":
    main()

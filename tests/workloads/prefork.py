"""Test workload for the sidecar story: a pre-fork server in miniature, as gunicorn's sync
workers are. Usage: python prefork.py MARKER (MARKER only names the process for --name).

The master prints "master PID", forks PREFORK_WORKERS workers (default 2) with os.fork and
prints "worker PID" for each, then "ready". Each worker handles requests in a loop (parse, route, render) until
SIGTERM, or until it has handled PREFORK_REQUESTS requests (default: no limit). The master
waits for its workers: one that dies (kill -9, or done with its requests) is replaced by a
new one, at most PREFORK_RESPAWNS times (default: no limit). On SIGTERM the master stops its
workers (SIGTERM each, waits for them) and exits 0. A worker ends with sys.exit, so that
exit handlers run in it (tests/support/trace_truth.py writes a forked child's truth so).

PREFORK_STOP_AFTER_RESPAWNS=N makes the master send itself SIGTERM once it has replaced N
workers: the ground-truth run under trace, which must end on its own.
"""
import os
import signal
import sys


def limit(name):
    value = os.environ.get(name, "")
    return int(value) if value else None


class Worker:
    def __init__(self):
        self.stopping = False
        self.handled = 0

    def on_term(self, signum, frame):
        self.stopping = True

    def serve(self, max_requests):
        while not self.stopping:
            if max_requests is not None and self.handled >= max_requests:
                break
            handle_request(self.handled)
            self.handled += 1


def parse(n):
    fields = {}
    for i in range(40):
        fields["h%d" % (i % 7)] = n * i
    return fields


def route(fields):
    total = 0
    for key, value in sorted(fields.items()):
        total += len(key) + value % 13
    return total


def render(total):
    parts = [str(total + i) for i in range(30)]
    return ",".join(parts)


def handle_request(n):
    fields = parse(n)
    body = render(route(fields))
    return len(body)


class Master:
    def __init__(self, size):
        self.size = size
        self.workers = set()
        self.stopping = False
        self.respawned = 0

    def on_term(self, signum, frame):
        self.stop()

    def stop(self):
        self.stopping = True
        for pid in self.workers:
            os.kill(pid, signal.SIGTERM)

    def spawn(self, max_requests):
        # SIGTERM held until the new worker is known (to the master: stop() reaches it) and
        # has its own handler (in the worker: the master's is not run there).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        if self.stopping:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            return
        pid = os.fork()
        if pid == 0:
            worker = Worker()
            signal.signal(signal.SIGTERM, worker.on_term)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            worker.serve(max_requests)
            sys.exit(0)
        self.workers.add(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        print("worker", pid, flush=True)

    def run(self, max_requests, max_respawns, stop_after):
        signal.signal(signal.SIGTERM, self.on_term)
        print("master", os.getpid(), flush=True)
        for _ in range(self.size):
            self.spawn(max_requests)
        print("ready", flush=True)
        while self.workers:
            pid, _ = os.wait()
            self.workers.discard(pid)
            if self.stopping:
                continue
            if max_respawns is not None and self.respawned >= max_respawns:
                continue
            self.spawn(max_requests)
            self.respawned += 1
            if stop_after is not None and self.respawned >= stop_after:
                # As a real SIGTERM, so that the handler runs under trace too.
                os.kill(os.getpid(), signal.SIGTERM)


def main():
    master = Master(limit("PREFORK_WORKERS") or 2)
    master.run(
        limit("PREFORK_REQUESTS"),
        limit("PREFORK_RESPAWNS"),
        limit("PREFORK_STOP_AFTER_RESPAWNS"),
    )


if __name__ == "__main__":
    main()

"""Run a command (a tracer) as this process's child, with this process a child subreaper; when
the command's stderr shows TEXT, kill it with SIGKILL; then reap every process left, the
command's orphans included (they come to a subreaper), and print one JSON line per process:
{"pid", "comm", "killed": was it the command, "code" or "signal"}.

    python kill_tracer.py [--count N] TEXT COMMAND [ARG...]

With --count N, the kill waits for TEXT's Nth showing. Exits 2 if TEXT never showed as often
(the command's stderr is printed then).
"""
import ctypes
import json
import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36

def children_of(pid):
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == pid:
            found[int(entry)] = comm
    return found

def main():
    args = sys.argv[1:]
    count = 1
    if args[0] == "--count":
        count, args = int(args[1]), args[2:]
    until, command = args[0].encode(), args[1:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("kill_tracer: prctl(PR_SET_CHILD_SUBREAPER) failed")
    signal.alarm(120)  # never hang a test
    read_end, write_end = os.pipe()
    tracer = os.fork()
    if tracer == 0:
        os.dup2(write_end, 2)
        os.close(read_end)
        os.close(write_end)
        os.execvp(command[0], command)
    os.close(write_end)
    err = b""
    while err.count(until) < count:
        chunk = os.read(read_end, 4096)
        if not chunk:
            break
        err += chunk
    if err.count(until) < count:
        sys.stderr.write(err.decode(errors="replace"))
        os.kill(tracer, signal.SIGKILL)
        sys.exit(2)
    names = children_of(tracer)
    names[tracer] = "tracer"
    os.kill(tracer, signal.SIGKILL)
    while os.read(read_end, 4096):
        pass  # the orphans hold the pipe until they end
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        line = {"pid": pid, "comm": names.get(pid, "?"), "killed": pid == tracer}
        if os.WIFSIGNALED(status):
            line["signal"] = os.WTERMSIG(status)
        else:
            line["code"] = os.WEXITSTATUS(status)
        print(json.dumps(line), flush=True)

main()

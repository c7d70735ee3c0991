#!/usr/bin/env python3
"""Real test suites to measure tracer on: the pytest suites of three pinned libraries.

    python3 tests/support/real_suites.py setup [--python 3.12 ...] [--suite toolz ...]

fetches the sdists of more-itertools 10.5.0, toolz 1.0.0 and packaging 24.2 with pip (its own
configured index) into target/real-suites/sdist, unpacks them under target/real-suites/src, and
makes one venv per Python 3.8+ found (target/real-suites/venv-3.X) with the pinned
tests/support/real-suites-requirements.txt. Everything is cached: an sdist already there is not
fetched again, a venv whose stamp matches its inputs is kept. A missing interpreter or a failed
fetch or install prints a `SKIP:` line and leaves that cell out; nothing is skipped silently.

Interpreters: pyenv's `$PYENV_ROOT/versions/*/bin/python` (PYENV_ROOT defaults to ~/.pyenv),
then `target/pythons/*/bin/python3.*` (`make pythons-new`), one per minor version, pyenv's
first. The fetched 3.14 and 3.15 have neither ensurepip nor a working `ssl` module, so their
venvs are made `--without-pip` and filled by another interpreter's pip (`--target`, pure-Python
wheels for that version) and coverage.py's own source from its sdist (pure Python: coverage.py
then measures with sys.monitoring, which it is told to use there).

Imported by fidelity.py and bench.py, which run the suites.
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUPPORT = os.path.join(ROOT, "tests", "support")
BASE = os.path.join(ROOT, "target", "real-suites")
SDISTS = os.path.join(BASE, "sdist")
SOURCES = os.path.join(BASE, "src")
REQUIREMENTS = os.path.join(SUPPORT, "real-suites-requirements.txt")
# The pytest plugin that holds a session at its end (for `tracer snapshot --pid`).
PLUGINS = os.path.join(SUPPORT, "pytest_plugins")
# coverage.py's source for the interpreters without pip or ssl (see the docstring).
COVERAGE_SDIST = ("coverage", "7.6.10")

MIN_MINOR = 8
# Versions whose absence is reported (`make pythons-new` fetches 3.14 and 3.15).
EXPECTED_MINORS = range(8, 16)


class Suite:
    """One pinned library and how its tests run from its unpacked sdist."""

    def __init__(self, name, version, dist, packages, src_root, pytest_args):
        self.name = name
        self.version = version
        self.dist = dist  # the sdist's file and directory name stem
        self.packages = packages  # the import packages under src_root: the measured library
        self.src_root = src_root  # where those packages are, relative to the tree
        self.pytest_args = pytest_args

    @property
    def requirement(self):
        return f"{self.name}=={self.version}"

    @property
    def tree(self):
        return os.path.join(SOURCES, f"{self.dist}-{self.version}")

    def package_dirs(self):
        return [os.path.join(self.tree, self.src_root, p) for p in self.packages]

    def library_files(self):
        """The library's own .py files (real paths), its test modules left out: what is
        measured is the library, not its tests."""
        files = set()
        for top in self.package_dirs():
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames[:] = [d for d in dirnames if d not in ("tests", "__pycache__")]
                for name in filenames:
                    if name.endswith(".py"):
                        files.add(os.path.realpath(os.path.join(dirpath, name)))
        return files

    def command(self, extra_pytest_args=()):
        """(argv after the interpreter, cwd, environment additions) of one pytest run.
        Run with -p no:cacheprovider so that no run leaves state for the next, and a fixed
        hash seed so that every run of a suite executes the same lines."""
        argv = ["-m", "pytest", "-q", "-p", "no:cacheprovider", *extra_pytest_args,
                *self.pytest_args]
        paths = [PLUGINS]
        if self.src_root != ".":
            paths.insert(0, os.path.join(self.tree, self.src_root))
        env = {"PYTHONPATH": os.pathsep.join(paths), "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1"}
        return argv, self.tree, env


SUITES = [
    Suite("toolz", "1.0.0", "toolz", ["toolz", "tlz"], ".", ["toolz/tests"]),
    Suite("more-itertools", "10.5.0", "more-itertools", ["more_itertools"], ".", ["tests"]),
    Suite("packaging", "24.2", "packaging", ["packaging"], "src", ["tests"]),
]
SUITES_BY_NAME = {s.name: s for s in SUITES}


class Python:
    def __init__(self, path, version):
        self.path = path
        self.version = version  # (major, minor, micro)

    @property
    def minor(self):
        return self.version[1]

    @property
    def label(self):
        return f"{self.version[0]}.{self.version[1]}"

    def run(self, *args):
        return subprocess.run([self.path, *args], capture_output=True, text=True)


def version_of(path):
    try:
        out = subprocess.run([path, "-c", "import sys; print(*sys.version_info[:3])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    try:
        return tuple(int(x) for x in out.stdout.split())
    except ValueError:
        return None


def find_pythons():
    """{minor: Python} for every CPython 3.8+ found, the first found per minor winning."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates = sorted(glob.glob(os.path.join(root, "versions", "*", "bin", "python")))
    for d in sorted(glob.glob(os.path.join(ROOT, "target", "pythons", "*"))):
        exe = os.path.join(d, "bin", "python" + os.path.basename(d))
        if os.path.exists(exe):
            candidates.append(exe)
    found = {}
    for path in candidates:
        version = version_of(path)
        if version and version[0] == 3 and version[1] >= MIN_MINOR and version[1] not in found:
            found[version[1]] = Python(path, version)
    return dict(sorted(found.items()))


def has_pip_and_ssl(python):
    return python.run("-c", "import ssl, ensurepip").returncode == 0


def host_pip_python(pythons):
    """An interpreter whose pip can reach the index (has ssl and pip), newest first."""
    for python in [*reversed(list(pythons.values())), Python(sys.executable, sys.version_info)]:
        if python.run("-c", "import ssl; import pip").returncode == 0:
            return python
    return None


def tail(text, n=5):
    return " | ".join(text.strip().splitlines()[-n:])


def fetch_sdist(host, name, version, log):
    """The path of NAME-VERSION's sdist in SDISTS, fetched with pip if not there yet; None
    (after a SKIP line) if it cannot be."""
    os.makedirs(SDISTS, exist_ok=True)
    stem = "[-_.]".join(re.escape(part) for part in re.split(r"[-_.]", name))
    pattern = re.compile(rf"^{stem}-{re.escape(version)}\.(tar\.gz|zip)$", re.IGNORECASE)

    def present():
        for entry in sorted(os.listdir(SDISTS)):
            if pattern.match(entry):
                return os.path.join(SDISTS, entry)
        return None

    path = present()
    if path:
        return path
    if host is None:
        log(f"SKIP: {name} {version}: no interpreter with pip and ssl to fetch its sdist")
        return None
    log(f"fetching the sdist of {name}=={version} with pip")
    out = host.run("-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                   "--no-binary", ":all:", "--no-deps", "-d", SDISTS, f"{name}=={version}")
    path = present()
    if out.returncode != 0 or not path:
        log(f"SKIP: {name} {version}: pip download failed: {tail(out.stderr or out.stdout)}")
        return None
    return path


def unpack(sdist, dest, log):
    """Unpack sdist so that dest is its top directory (atomically: a half-unpacked tree is
    never left at dest)."""
    if os.path.isdir(dest):
        return True
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".unpack-", dir=parent)
    try:
        with tarfile.open(sdist) as tar:
            members = tar.getmembers()
            for member in members:
                if member.name.startswith("/") or ".." in member.name.split("/"):
                    log(f"SKIP: {sdist}: unsafe member {member.name!r}")
                    return False
            tar.extractall(tmp, members=members)
        tops = os.listdir(tmp)
        if len(tops) != 1:
            log(f"SKIP: {sdist}: expected one top directory, found {tops}")
            return False
        os.rename(os.path.join(tmp, tops[0]), dest)
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def venv_dir(python):
    return os.path.join(BASE, f"venv-{python.label}")


def venv_python(python):
    return os.path.join(venv_dir(python), "bin", "python")


def make_venv(python, host, log):
    """The venv's interpreter (a Python), made or reused; None after a SKIP line."""
    venv = venv_dir(python)
    stamp = os.path.join(venv, "installed-inputs.txt")
    with open(REQUIREMENTS) as f:
        wanted = f"{python.path} {'.'.join(map(str, python.version))}\n{f.read()}"
    try:
        with open(stamp) as f:
            if f.read() == wanted:
                return Python(venv_python(python), python.version)
    except OSError:
        pass
    log(f"making {os.path.relpath(venv, ROOT)} (Python {python.label})")
    shutil.rmtree(venv, ignore_errors=True)
    if has_pip_and_ssl(python):
        steps = [[python.path, "-m", "venv", venv],
                 [venv_python(python), "-m", "pip", "install", "--quiet",
                  "--disable-pip-version-check", "-r", REQUIREMENTS]]
        for argv in steps:
            out = subprocess.run(argv, capture_output=True, text=True)
            if out.returncode != 0:
                log(f"SKIP: Python {python.label}: {' '.join(argv[1:4])} failed: "
                    f"{tail(out.stderr or out.stdout)}")
                shutil.rmtree(venv, ignore_errors=True)
                return None
    elif not fill_venv_without_pip(python, host, venv, log):
        shutil.rmtree(venv, ignore_errors=True)
        return None
    with open(stamp, "w") as f:
        f.write(wanted)
    return Python(venv_python(python), python.version)


def fill_venv_without_pip(python, host, venv, log):
    if host is None:
        log(f"SKIP: Python {python.label}: no pip or ssl, and no other interpreter's pip")
        return False
    out = subprocess.run([python.path, "-m", "venv", "--without-pip", venv],
                         capture_output=True, text=True)
    if out.returncode != 0:
        log(f"SKIP: Python {python.label}: venv --without-pip failed: {tail(out.stderr)}")
        return False
    site = subprocess.run([venv_python(python), "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True).stdout.strip()
    with open(REQUIREMENTS) as f:
        pure = [line for line in f if not line.lstrip().startswith("coverage")]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.writelines(pure)
        pure_requirements = f.name
    try:
        out = host.run("-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                       "--no-deps", "--only-binary", ":all:", "--python-version",
                       f"{python.version[0]}.{python.version[1]}", "--target", site,
                       "-r", pure_requirements)
    finally:
        os.unlink(pure_requirements)
    if out.returncode != 0:
        log(f"SKIP: Python {python.label}: pip --target failed: {tail(out.stderr)}")
        return False
    sdist = fetch_sdist(host, *COVERAGE_SDIST, log)
    if sdist is None:
        return False
    tree = os.path.join(SOURCES, "-".join(COVERAGE_SDIST))
    if not unpack(sdist, tree, log):
        return False
    shutil.copytree(os.path.join(tree, "coverage"), os.path.join(site, "coverage"))
    check = subprocess.run([venv_python(python), "-c", "import coverage, pytest"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        log(f"SKIP: Python {python.label}: the venv does not import: {tail(check.stderr)}")
        return False
    return True


class Run:
    """One finished process: wall time, its own CPU (user + system) and exit status."""

    def __init__(self, argv, wall, self_cpu, returncode, stdout, stderr):
        self.argv = argv
        self.wall = wall
        self.self_cpu = self_cpu
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def stderr_tail(self, n=5):
        return tail(self.stderr, n)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def self_cpu_of_zombie(pid):
    """utime + stime (fields 14 and 15 of /proc/PID/stat) of an exited, not yet reaped
    process: its own CPU, without its children's (fields 16 and 17), which wait4's rusage
    would include once the process has reaped them (as `tracer run` reaps its command)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state), so field N is fields[N - 3].
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def run_measured(argv, cwd=None, env_add=None, timeout=3600, on_start=None):
    """Run argv to its exit and return a Run. The process's own CPU is read from /proc while
    it is a zombie (waitid with WNOWAIT waits for the exit without reaping), then it is reaped.
    on_start(proc) is called once it runs (for runs that must be driven from outside)."""
    env = dict(os.environ, **(env_add or {}))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL)
        try:
            if on_start:
                on_start(proc)
            while True:
                info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
                if info is not None and info.si_pid == proc.pid:
                    break
                if time.monotonic() - start > timeout:
                    proc.kill()
                    proc.wait()
                    raise TimeoutError(f"{argv[0]} ran past {timeout:.0f} s: killed")
                time.sleep(0.01)
            wall = time.monotonic() - start
            cpu = self_cpu_of_zombie(proc.pid)
            proc.wait()
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
        out.seek(0)
        err.seek(0)
        return Run(argv, wall, cpu, proc.returncode, out.read(), err.read())


def pytest_summary(text):
    """pytest -q's last line ("180 passed in 6.39s"), or ''."""
    for line in reversed(text.strip().splitlines()):
        if re.search(r"\b(passed|failed|error|no tests ran)\b", line):
            return line.strip("= ")
    return ""


class Setup:
    """What setup() made: {name: Suite} unpacked, {minor: Python} of the venvs' interpreters,
    {minor: Python} of the base interpreters."""

    def __init__(self, suites, venvs, bases):
        self.suites = suites
        self.venvs = venvs
        self.bases = bases


def setup(minors=None, suite_names=None, log=print):
    """Fetch, unpack and make venvs for the chosen minors (default: all found) and suites
    (default: all). Prints a SKIP line for each one that cannot be had."""
    pythons = find_pythons()
    wanted_minors = list(minors) if minors else list(EXPECTED_MINORS)
    for minor in wanted_minors:
        if minor < MIN_MINOR:
            log(f"SKIP: real suites on Python 3.{minor}: they need 3.{MIN_MINOR}+")
        elif minor not in pythons:
            hint = " (make pythons-new fetches it)" if minor >= 14 else ""
            log(f"SKIP: real suites on Python 3.{minor}: no interpreter found{hint}")
    pythons = {m: p for m, p in pythons.items() if m in wanted_minors}
    host = host_pip_python(find_pythons())
    suites = {}
    for suite in SUITES:
        if suite_names and suite.name not in suite_names:
            continue
        sdist = fetch_sdist(host, suite.name, suite.version, log)
        if sdist and unpack(sdist, suite.tree, log):
            suites[suite.name] = suite
    venvs = {}
    if suites:
        for minor, python in pythons.items():
            venv = make_venv(python, host, log)
            if venv:
                venvs[minor] = venv
    return Setup(suites, venvs, pythons)


def parse_minors(values):
    """["3.12", "13"] -> [12, 13]."""
    minors = []
    for value in values or []:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            match = re.fullmatch(r"(?:3\.)?(\d+)", part)
            if not match:
                raise SystemExit(f"real_suites: error: not a Python 3 version: {part!r}")
            minors.append(int(match.group(1)))
    return minors


def parse_suites(values):
    names = []
    for value in values or []:
        for part in value.split(","):
            part = part.strip()
            if part and part not in SUITES_BY_NAME:
                raise SystemExit(f"real_suites: error: unknown suite {part!r} "
                                 f"(known: {', '.join(SUITES_BY_NAME)})")
            if part:
                names.append(part)
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["setup"])
    parser.add_argument("--python", action="append", help="minor versions, e.g. 3.12 (default:"
                                                          " every 3.8+ found)")
    parser.add_argument("--suite", action="append", help=f"of {', '.join(SUITES_BY_NAME)}")
    args = parser.parse_args()
    done = setup(parse_minors(args.python), parse_suites(args.suite))
    print(json.dumps({"suites": {n: s.tree for n, s in done.suites.items()},
                      "venvs": {f"3.{m}": p.path for m, p in done.venvs.items()}}, indent=1))
    return 0 if done.suites and done.venvs else 1


if __name__ == "__main__":
    sys.exit(main())

"""coverage.py plugin: report tracer's executable lines as coverage.py's statements.

`tracer ... --format coverage --coverage-plugin` writes coverage.py's data file with two
additions: a table of its own, ``tracer_executable_lines`` (per file, the lines Lib/trace.py's
``_find_executable_linenos`` would give, docstrings excluded, as a numbits blob), and a row in
coverage.py's ``tracer`` table naming this plugin for each of those files. coverage.py asks the
plugin named there for the file's reporter; this plugin answers with those lines as the
statements, so coverage.py's statements, missing lines and percentages are tracer's.

Enable it in .coveragerc (or the [tool.coverage.run] table of pyproject.toml)::

    [run]
    plugins = tracer_coverage

Files the data file holds no executable lines for (after a plain ``coverage combine``, which
copies only coverage.py's own tables) are left to coverage.py's own parser, with a warning.
See docs/reports.md in tracer's repository.
"""

import os
import sqlite3
import sys
import tokenize

from coverage.plugin import CoveragePlugin, FileReporter

#: The table tracer writes (src/output/coverage_db.rs).
TABLE = "tracer_executable_lines"


def coverage_init(reg, options):
    """coverage.py's entry point. A configurer only: the plugin traces nothing, it is found by
    the name in the data file's ``tracer`` table, and configure() tells it the data file."""
    reg.add_configurer(TracerPlugin())


def numbits_to_lines(blob):
    """The line numbers of a numbits blob: bit n % 8 of byte n // 8 set for line n."""
    return {index * 8 + bit for index, byte in enumerate(blob) for bit in range(8) if byte >> bit & 1}


def read_executable_lines(data_file):
    """{path: set of lines} from tracer's table in `data_file`; {} when it has none."""
    if not data_file or not os.path.isfile(data_file):
        return {}
    try:
        db = sqlite3.connect(data_file)
        try:
            rows = db.execute(
                "select file.path, numbits from %s join file on file.id = %s.file_id"
                % (TABLE, TABLE)
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return {}
    return {path: numbits_to_lines(blob) for path, blob in rows}


class TracerPlugin(CoveragePlugin):
    """Reports the files tracer marked with tracer's executable lines."""

    def __init__(self):
        self.data_file = None
        self._lines = None
        self._warned = False

    def configure(self, config):
        self.data_file = config.get_option("run:data_file")

    def executable_lines(self):
        if self._lines is None:
            self._lines = read_executable_lines(self.data_file)
        return self._lines

    def file_reporter(self, filename):
        lines = self.executable_lines().get(filename)
        if lines is None:
            if not self._warned:
                self._warned = True
                sys.stderr.write(
                    "tracer_coverage: %s holds no executable lines from tracer for %s (a plain "
                    "`coverage combine` keeps only coverage.py's own tables); coverage.py's "
                    "parser reports such files\n" % (self.data_file, filename)
                )
            return "python"
        return TracerFileReporter(filename, lines)

    def sys_info(self):
        # Shown by `coverage report --debug=sys` (labels shorter than 30 characters).
        return [
            ("data_file", self.data_file),
            ("executable_lines_files", len(self.executable_lines())),
        ]


class TracerFileReporter(FileReporter):
    """A Python file whose statements are tracer's executable lines. Lines are reported as
    recorded (tracer records line-table lines, which trace counts as they are), and nothing is
    excluded: trace has no pragmas."""

    def __init__(self, filename, lines):
        super().__init__(filename)
        self._lines = lines

    def lines(self):
        return set(self._lines)

    def source(self):
        # Decoded as Python decodes it (PEP 263 cookie, BOM), not always as UTF-8.
        with tokenize.open(self.filename) as f:
            return f.read()

    def source_token_lines(self):
        # coverage.py's own Python tokens, for the colours of `coverage html`.
        try:
            from coverage.phystokens import source_token_lines
        except ImportError:
            return super().source_token_lines()
        return source_token_lines(self.source())

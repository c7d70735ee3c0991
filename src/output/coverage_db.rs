//! coverage.py's data file: the SQLite database `coverage report`, `html`, `json`, `lcov` and
//! `combine` read, schema version 7, with line data, or with `--coverage-arcs` arc data
//! (`has_arcs` 1: the arcs the snapshots proved, [`write`]).
//!
//! The schema is coverage.py's `SCHEMA` (coverage/sqldata.py) as of schema version 7; line
//! sets are stored as "numbits": a blob in which bit `n % 8` of byte `n / 8` is set for each
//! line `n` (coverage/numbits.py). Files named `<...>` (frozen modules, `<string>`) are left
//! out: coverage.py has no source to report them by and would stop with "No source for code".
//!
//! For the `tracer_coverage` coverage.py plugin (src/coverage_plugin, docs/reports.md), the
//! file can also carry our executable lines ([`ExecutableLines`]): a table of our own,
//! [`EXECUTABLE_LINES_TABLE`], which coverage.py never reads, and a row in coverage.py's
//! `tracer` table naming the plugin for each of those files, which makes coverage.py ask the
//! plugin for the file's statements. coverage.py stops with a `KeyError` on a file whose
//! `tracer` row names a plugin that is not configured, so this is opt-in (`--coverage-plugin`).

use crate::aggregate::model::CoverageResults;
use crate::reader::PyVersion;
use crate::source::{SourceText, Sources};
use anyhow::Context;
use rusqlite::{Connection, OptionalExtension};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The schema version coverage.py checks before reading anything else.
pub const SCHEMA_VERSION: i64 = 7;

/// coverage.py's schema, version 7.
const SCHEMA: &str = "
CREATE TABLE coverage_schema (
    version integer
);
CREATE TABLE meta (
    key text,
    value text,
    unique (key)
);
CREATE TABLE file (
    id integer primary key,
    path text,
    unique (path)
);
CREATE TABLE context (
    id integer primary key,
    context text,
    unique (context)
);
CREATE TABLE line_bits (
    file_id integer,
    context_id integer,
    numbits blob,
    foreign key (file_id) references file (id),
    foreign key (context_id) references context (id),
    unique (file_id, context_id)
);
CREATE TABLE arc (
    file_id integer,
    context_id integer,
    fromno integer,
    tono integer,
    foreign key (file_id) references file (id),
    foreign key (context_id) references context (id),
    unique (file_id, context_id, fromno, tono)
);
CREATE TABLE tracer (
    file_id integer primary key,
    tracer text,
    foreign key (file_id) references file (id)
);
";

/// Our table of executable lines, one numbits blob per file, for the `tracer_coverage` plugin.
pub const EXECUTABLE_LINES_TABLE: &str = "tracer_executable_lines";

/// The name coverage.py gives the plugin (`module.Class`), as its `tracer` table records it.
pub const PLUGIN_NAME: &str = "tracer_coverage.TracerPlugin";

/// The `meta` key recording the Python version whose compiler the executable lines model.
pub const PLUGIN_PYTHON_KEY: &str = "tracer_executable_lines_python";

const EXECUTABLE_LINES_SCHEMA: &str = "
CREATE TABLE tracer_executable_lines (
    file_id integer primary key,
    numbits blob,
    foreign key (file_id) references file (id)
);
";

/// Our executable lines (`trace._find_executable_linenos`, docstrings excluded) of the files
/// in a coverage.py data file, for the `tracer_coverage` plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutableLines {
    /// The Python whose compiler the analysis modelled, if known (else every file is skipped).
    pub python: Option<PyVersion>,
    /// Each analysed file's executable lines.
    pub by_file: BTreeMap<String, BTreeSet<u32>>,
    /// Files left to coverage.py's own parser, with why (unreadable source, not Python).
    pub skipped: Vec<String>,
}

impl ExecutableLines {
    /// Analyse every file of `results` that goes into the data file, reading its source
    /// through `sources` and with its Python version's rules.
    pub fn of(results: &CoverageResults, sources: &Sources) -> ExecutableLines {
        let mut lines = ExecutableLines {
            python: sources.analysed_version(),
            ..ExecutableLines::default()
        };
        for file in line_sets(results).into_keys() {
            let analysed = sources
                .read(file)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    sources
                        .checked_executable_lines(&SourceText::decode(&bytes))
                        .map_err(|e| e.to_string())
                });
            match analysed {
                Ok(mut set) => {
                    // Line 0 (3.11+'s module RESUME) is in trace's set but not a line of the
                    // file: coverage.py would count a statement no report can show.
                    set.remove(&0);
                    lines.by_file.insert(file.to_owned(), set);
                }
                Err(why) => lines.skipped.push(format!("{file}: {why}")),
            }
        }
        lines
    }
}

/// coverage.py's numbits: bit `n % 8` of byte `n / 8` set for each number `n`; empty for no
/// numbers.
pub fn numbits(lines: impl IntoIterator<Item = u32>) -> Vec<u8> {
    let mut bits: Vec<u8> = Vec::new();
    for line in lines {
        let byte = (line / 8) as usize;
        if bits.len() <= byte {
            bits.resize(byte + 1, 0);
        }
        bits[byte] |= 1 << (line % 8);
    }
    bits
}

/// The numbers of a numbits blob, ascending.
pub fn numbits_to_lines(bits: &[u8]) -> Vec<u32> {
    let mut lines = Vec::new();
    for (byte_index, byte) in bits.iter().enumerate() {
        for bit in 0..8 {
            if byte & (1 << bit) != 0 {
                // A blob longer than any line number can be (512 MiB) ends there.
                let Ok(line) = u32::try_from(byte_index * 8 + bit) else {
                    return lines;
                };
                lines.push(line);
            }
        }
    }
    lines
}

/// The line sets coverage.py would get: every counted line above 0, by file, files named
/// `<...>` left out.
pub fn line_sets(results: &CoverageResults) -> BTreeMap<&str, Vec<u32>> {
    let mut files: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (file, line) in results.counts.keys() {
        if (file.starts_with('<') && file.ends_with('>')) || *line == 0 {
            continue;
        }
        files.entry(file.as_str()).or_default().push(*line);
    }
    files
}

/// What an arc data file holds of the lines, for the one-line warning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArcsWritten {
    pub arcs: usize,
    /// Counted lines that no written arc names: coverage.py, which reads executed lines from
    /// the arcs in an arc file, does not see them.
    pub lines_without_arc: usize,
    pub lines: usize,
}

/// The arcs of `arcs` that go into the data file, by file: those of files with counted lines
/// (after filters), each of whose lines above 0 is a counted line of that file.
pub fn arc_sets<'a>(
    results: &'a CoverageResults,
    arcs: &'a [(String, i64, i64)],
) -> BTreeMap<&'a str, Vec<(i64, i64)>> {
    let files = line_sets(results);
    let counted = |file: &str, line: i64| {
        line <= 0
            || u32::try_from(line)
                .is_ok_and(|line| results.counts.contains_key(&(file.to_owned(), line)))
    };
    let mut by_file: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for (file, from, to) in arcs {
        let Some((&name, _)) = files.get_key_value(file.as_str()) else {
            continue;
        };
        if counted(file, *from) && counted(file, *to) && (*from > 0 || *to > 0) {
            by_file.entry(name).or_default().push((*from, *to));
        }
    }
    by_file
}

/// Write `results` as a coverage.py data file at `path`, atomically; with `plugin`, also our
/// executable lines of its files, marked for the `tracer_coverage` plugin. With `arcs`, the
/// file holds arc data instead of lines (`has_arcs` 1), the arcs of [`arc_sets`]: coverage.py
/// then reads a file's executed lines from its arcs, so counted lines no arc names are lost
/// (counted in the answer).
pub fn write(
    results: &CoverageResults,
    path: &Path,
    plugin: Option<&ExecutableLines>,
    arcs: Option<&[(String, i64, i64)]>,
) -> anyhow::Result<Option<ArcsWritten>> {
    let arc_files = arcs.map(|arcs| arc_sets(results, arcs));
    let written = arc_files.as_ref().map(|by_file| {
        let lines = line_sets(results);
        let mut written = ArcsWritten {
            lines: lines.values().map(Vec::len).sum(),
            ..ArcsWritten::default()
        };
        for (file, file_lines) in &lines {
            let named: BTreeSet<i64> = by_file
                .get(file)
                .into_iter()
                .flatten()
                .flat_map(|&(a, b)| [a, b])
                .collect();
            written.lines_without_arc += file_lines
                .iter()
                .filter(|&&l| !named.contains(&i64::from(l)))
                .count();
        }
        written.arcs = by_file.values().map(Vec::len).sum();
        written
    });
    super::write_atomically_via_path(path, |tmp| {
        let mut db = Connection::open(tmp)
            .with_context(|| format!("cannot create the database {}", tmp.display()))?;
        let tx = db.transaction()?;
        tx.execute_batch(SCHEMA)?;
        tx.execute(
            "insert into coverage_schema (version) values (?1)",
            [SCHEMA_VERSION],
        )?;
        let version = format!("tracer {}", env!("CARGO_PKG_VERSION"));
        tx.execute(
            "insert into meta (key, value) values ('version', ?1)",
            [&version],
        )?;
        let has_arcs = if arc_files.is_some() { "1" } else { "0" };
        tx.execute(
            "insert into meta (key, value) values ('has_arcs', ?1)",
            [has_arcs],
        )?;
        tx.execute("insert into context (id, context) values (1, '')", [])?;
        if let Some(by_file) = &arc_files {
            let mut add_file = tx.prepare("insert into file (id, path) values (?1, ?2)")?;
            let mut add_arc = tx.prepare(
                "insert into arc (file_id, context_id, fromno, tono) values (?1, 1, ?2, ?3)",
            )?;
            for (id, (file, arcs)) in by_file.iter().enumerate() {
                let id = id as i64 + 1;
                add_file.execute(rusqlite::params![id, file])?;
                for (from, to) in arcs {
                    add_arc.execute(rusqlite::params![id, from, to])?;
                }
            }
        } else {
            let mut add_file = tx.prepare("insert into file (id, path) values (?1, ?2)")?;
            let mut add_lines = tx.prepare(
                "insert into line_bits (file_id, context_id, numbits) values (?1, 1, ?2)",
            )?;
            for (id, (file, lines)) in line_sets(results).into_iter().enumerate() {
                let id = id as i64 + 1;
                add_file.execute(rusqlite::params![id, file])?;
                add_lines.execute(rusqlite::params![id, numbits(lines)])?;
            }
        }
        if let Some(plugin) = plugin {
            write_executable_lines(&tx, plugin)?;
        }
        tx.commit()?;
        db.close().map_err(|(_, e)| e)?;
        Ok(())
    })?;
    Ok(written)
}

/// Our table, its rows for the files already in the `file` table, and their `tracer` rows.
fn write_executable_lines(
    tx: &rusqlite::Transaction<'_>,
    plugin: &ExecutableLines,
) -> anyhow::Result<()> {
    tx.execute_batch(EXECUTABLE_LINES_SCHEMA)?;
    if let Some(python) = plugin.python {
        tx.execute(
            "insert into meta (key, value) values (?1, ?2)",
            [PLUGIN_PYTHON_KEY, &python.to_string()],
        )?;
    }
    let mut file_id = tx.prepare("select id from file where path = ?1")?;
    let mut add_lines =
        tx.prepare("insert into tracer_executable_lines (file_id, numbits) values (?1, ?2)")?;
    let mut add_tracer = tx.prepare("insert into tracer (file_id, tracer) values (?1, ?2)")?;
    for (file, lines) in &plugin.by_file {
        // A file with no counted line is not in the data file: nothing to mark.
        let Some(id) = file_id
            .query_row([file], |row| row.get::<_, i64>(0))
            .optional()?
        else {
            continue;
        };
        add_lines.execute(rusqlite::params![id, numbits(lines.iter().copied())])?;
        add_tracer.execute(rusqlite::params![id, PLUGIN_NAME])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbits_as_coverage_py_packs_them() {
        // nums_to_numbits([1, 2, 9, 17]) == b'\x06\x02\x02'
        assert_eq!(numbits([1, 2, 9, 17]), vec![0x06, 0x02, 0x02]);
        assert_eq!(numbits([]), Vec::<u8>::new());
        assert_eq!(numbits_to_lines(&[0x06, 0x02, 0x02]), vec![1, 2, 9, 17]);
    }
}

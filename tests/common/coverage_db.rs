//! Readers of coverage.py data files (ours or coverage.py's), for the tests: the tracer itself
//! only writes them (src/output/coverage_db.rs).

use anyhow::Context;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::Path;
use tracer::output::coverage_db::{self, SCHEMA_VERSION};

/// What a data file carries for coverage.py plugins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginData {
    /// Our executable lines, by file (empty when the file carries none).
    pub executable_lines: BTreeMap<String, Vec<u32>>,
    /// coverage.py's `tracer` rows: the plugin named for each file.
    pub tracers: BTreeMap<String, String>,
}

/// Read what a data file (ours or coverage.py's) carries for plugins.
pub fn read_plugin_data(path: &Path) -> anyhow::Result<PluginData> {
    let db = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut lines = BTreeMap::new();
    let has_table: bool = db.query_row(
        "select count(*) > 0 from sqlite_master where type = 'table' and name = ?1",
        [coverage_db::EXECUTABLE_LINES_TABLE],
        |row| row.get(0),
    )?;
    if has_table {
        let mut query = db.prepare(
            "select file.path, numbits from tracer_executable_lines \
             join file on file.id = tracer_executable_lines.file_id",
        )?;
        let rows = query.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
        })?;
        for row in rows {
            let (file, bits) = row?;
            lines.insert(file, coverage_db::numbits_to_lines(&bits));
        }
    }
    let mut query =
        db.prepare("select file.path, tracer from tracer join file on file.id = tracer.file_id")?;
    let tracers = query
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(PluginData {
        executable_lines: lines,
        tracers,
    })
}

/// Read the line sets of a coverage.py data file (ours or coverage.py's), by file.
pub fn read_line_sets(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<u32>>> {
    let db = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let version: i64 = db
        .query_row("select version from coverage_schema", [], |row| row.get(0))
        .with_context(|| format!("{} is not a coverage.py data file", path.display()))?;
    anyhow::ensure!(
        version == SCHEMA_VERSION,
        "{} has coverage.py schema {version}, not {SCHEMA_VERSION}",
        path.display()
    );
    let mut query = db.prepare(
        "select file.path, line_bits.numbits from line_bits join file on file.id = line_bits.file_id",
    )?;
    let mut files: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let rows = query.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
    })?;
    for row in rows {
        let (file, bits) = row?;
        let lines = files.entry(file).or_default();
        lines.extend(coverage_db::numbits_to_lines(&bits));
        lines.sort_unstable();
        lines.dedup();
    }
    Ok(files)
}

//! coverage.py's data file: the SQLite database `coverage report`, `html`, `json`, `lcov` and
//! `combine` read, schema version 7, with line data (we have no arcs).
//!
//! The schema is coverage.py's `SCHEMA` (coverage/sqldata.py) as of schema version 7; line
//! sets are stored as "numbits": a blob in which bit `n % 8` of byte `n / 8` is set for each
//! line `n` (coverage/numbits.py). Files named `<...>` (frozen modules, `<string>`) are left
//! out: coverage.py has no source to report them by and would stop with "No source for code".

use crate::model::CoverageResults;
use anyhow::Context;
use rusqlite::Connection;
use std::collections::BTreeMap;
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

/// Write `results` as a coverage.py data file at `path`, atomically.
pub fn write(results: &CoverageResults, path: &Path) -> anyhow::Result<()> {
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
        tx.execute("insert into meta (key, value) values ('has_arcs', '0')", [])?;
        tx.execute("insert into context (id, context) values (1, '')", [])?;
        {
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
        tx.commit()?;
        db.close().map_err(|(_, e)| e)?;
        Ok(())
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
        lines.extend(numbits_to_lines(&bits));
        lines.sort_unstable();
        lines.dedup();
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LineHits;

    #[test]
    fn numbits_as_coverage_py_packs_them() {
        // nums_to_numbits([1, 2, 9, 17]) == b'\x06\x02\x02'
        assert_eq!(numbits([1, 2, 9, 17]), vec![0x06, 0x02, 0x02]);
        assert_eq!(numbits([]), Vec::<u8>::new());
        assert_eq!(numbits_to_lines(&[0x06, 0x02, 0x02]), vec![1, 2, 9, 17]);
    }

    #[test]
    fn writes_and_reads_back_line_sets() {
        let dir = std::env::temp_dir().join(format!("tracer-covdb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("data.coverage");
        let mut r = CoverageResults::default();
        for (file, line) in [("/a.py", 3), ("/a.py", 100), ("/b.py", 1), ("<string>", 1)] {
            r.counts.insert((file.into(), line), LineHits::default());
        }
        write(&r, &path).unwrap();
        let back = read_line_sets(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back["/a.py"], vec![3, 100]);
        assert_eq!(back["/b.py"], vec![1]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

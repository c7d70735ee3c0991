//! Last step of the data path: writing results where users already look, and reading them
//! back for `report`.

pub mod cover;
pub mod json;
pub mod pickle;

use crate::attach::TargetInfo;
use crate::model::CoverageResults;
use crate::sampler::SamplerStats;
use anyhow::Context;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Output formats of `attach` and `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The trace module's `(counts, calledfuncs, callers)` pickle: `python -m trace --report --file`.
    Pickle,
    /// A directory of annotated `.cover` files, as `python -m trace --count --coverdir` writes.
    Cover,
    /// tracer's JSON (docs/json-format.md): counts with self hits, edges with hits, run stats.
    Json,
}

impl Format {
    /// The default output path in the current directory for a trace of `pid`.
    pub fn default_path(self, pid: i32) -> PathBuf {
        PathBuf::from(match self {
            Format::Pickle => format!("tracer-{pid}.pickle"),
            Format::Cover => format!("tracer-{pid}-cover"),
            Format::Json => format!("tracer-{pid}.json"),
        })
    }
}

/// What is known of the run besides the results, for formats that record it.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    pub target: TargetInfo,
    pub stats: SamplerStats,
    pub rate_requested: f64,
}

/// Write `path` so that readers see either the old file or the complete new one, never a torn
/// one: write a temporary file beside it (created fresh, so a pre-placed symlink is not
/// followed), flush it to disk, then rename it over `path`.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("output path {} names no file", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| {
            format!(
                "cannot create {} (is the directory writable?)",
                tmp.display()
            )
        })?;
    let mut out = BufWriter::new(file);
    let written = write(&mut out)
        .and_then(|()| out.flush().map_err(Into::into))
        .and_then(|()| out.get_ref().sync_all().map_err(Into::into));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e.context(format!("cannot write {}", path.display())));
    }
    fs::rename(&tmp, path).with_context(|| {
        let _ = fs::remove_file(&tmp);
        format!("cannot move {} into place", path.display())
    })
}

/// Read a results file written by us or by `python -m trace --file`: JSON or pickle, told
/// apart by their first byte.
pub fn load_results(path: &Path) -> anyhow::Result<(CoverageResults, Option<RunInfo>)> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    match first {
        None => anyhow::bail!("{} is empty: not a results file", path.display()),
        Some(b'{') => {
            let (results, info) = json::from_slice(&bytes)
                .with_context(|| format!("{} is not a tracer JSON results file", path.display()))?;
            Ok((results, Some(info)))
        }
        Some(_) => {
            let results = pickle::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not a trace pickle or tracer JSON file",
                    path.display()
                )
            })?;
            Ok((results, None))
        }
    }
}

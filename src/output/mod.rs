//! Last step of the data path: writing results where users already look, and reading them
//! back for `report`.

pub mod callgraph;
pub mod cover;
pub mod coverage_db;
pub mod flame;
pub mod html;
pub mod json;
pub mod pickle;
pub mod pprof;
pub mod trace_text;

use crate::aggregate::model::CoverageResults;
use crate::session::sampler::SamplerStats;
use crate::target::attach::TargetInfo;
use anyhow::Context;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Output formats (docs/reports.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The trace module's `(counts, calledfuncs, callers)` pickle: `python -m trace --report --file`.
    Pickle,
    /// A directory of annotated `.cover` files, as `python -m trace --count --coverdir` writes.
    Cover,
    /// tracer's JSON (docs/json-format.md): counts with self hits, edges with hits, stacks,
    /// run stats.
    Json,
    /// coverage.py's SQLite data file (schema 7, line data): `coverage report`, `html`,
    /// `combine`...
    Coverage,
    /// Folded stacks, one `frame;frame;... count` line per stack (flamegraph.pl, inferno).
    Collapsed,
    /// A flame graph as an SVG (drawn by inferno).
    Flamegraph,
    /// A speedscope profile (https://www.speedscope.app file format, sampled).
    Speedscope,
    /// The callers graph in Graphviz's dot language, edges weighted by hits.
    Dot,
    /// A gzipped pprof profile (profile.proto): `go tool pprof`, Pyroscope, Parca.
    Pprof,
    /// One self-contained HTML page: sources shaded by hits, missed lines, callers and
    /// callees, the summary.
    Html,
}

impl Format {
    /// The default output path in the current directory for a trace of `pid`.
    pub fn default_path(self, pid: i32) -> PathBuf {
        PathBuf::from(match self {
            Format::Cover => format!("tracer-{pid}-cover"),
            other => format!("tracer-{pid}.{}", other.extension()),
        })
    }

    /// The file name extension this format is written with by default.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Pickle => "pickle",
            Format::Cover => "cover",
            Format::Json => "json",
            Format::Coverage => "coverage",
            Format::Collapsed => "folded",
            Format::Flamegraph => "svg",
            Format::Speedscope => "speedscope.json",
            Format::Dot => "dot",
            Format::Pprof => "pb.gz",
            Format::Html => "html",
        }
    }

    /// The format a file name suggests, if any (`.speedscope.json` before `.json`).
    pub fn from_path(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_string_lossy().to_lowercase();
        let by_suffix = [
            (".speedscope.json", Format::Speedscope),
            (".json", Format::Json),
            (".pickle", Format::Pickle),
            (".pkl", Format::Pickle),
            (".coverage", Format::Coverage),
            (".folded", Format::Collapsed),
            (".collapsed", Format::Collapsed),
            (".svg", Format::Flamegraph),
            (".dot", Format::Dot),
            (".gv", Format::Dot),
            (".pb.gz", Format::Pprof),
            (".pprof", Format::Pprof),
            (".html", Format::Html),
            (".htm", Format::Html),
        ];
        if name == ".coverage" || name.starts_with(".coverage.") {
            return Some(Format::Coverage);
        }
        by_suffix
            .iter()
            .find(|(suffix, _)| name.ends_with(suffix))
            .map(|(_, format)| *format)
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Pickle => "pickle",
            Format::Cover => "cover",
            Format::Json => "json",
            Format::Coverage => "coverage",
            Format::Collapsed => "collapsed",
            Format::Flamegraph => "flamegraph",
            Format::Speedscope => "speedscope",
            Format::Dot => "dot",
            Format::Pprof => "pprof",
            Format::Html => "html",
        }
    }
}

/// What is known of the run besides the results, for formats that record it.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    pub target: TargetInfo,
    pub stats: SamplerStats,
    pub rate_requested: f64,
    /// The target's own standard-library and site-packages directories, found from its memory
    /// maps while it was attached (for `--ignore-stdlib` in later reports).
    pub library_dirs: Vec<String>,
    /// The target's standard-library directory (`PREFIX/lib/pythonX.Y`), what `$prefix` means
    /// in `--ignore-dir`.
    pub stdlib_dir: Option<String>,
    /// `tracer snapshot`: lines likely but not proven to have run, kept apart from the
    /// counts (docs/snapshot.md); sorted, no duplicates.
    pub likely: Vec<(String, u32)>,
    /// `--snapshot`: the lines the snapshots proved (sorted); `proven_only` those of them never
    /// sampled, whose count of 1 is the snapshots' (docs/snapshot.md).
    pub proven: Vec<(String, u32)>,
    pub proven_only: Vec<(String, u32)>,
    /// `--snapshot`: coverage.py arcs `(file, from, to)` the snapshots proved to have run
    /// (docs/snapshot.md, "Arcs"), for `--coverage-arcs`; sorted, no duplicates.
    pub arcs: Vec<(String, i64, i64)>,
    /// `--subprocesses`: every process met, traced or not, in the order met (empty otherwise).
    pub processes: Vec<ProcessRecord>,
}

/// One process met in a `--subprocesses` run: written in the JSON results and in the process
/// list beside any output (docs/sidecar.md).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProcessRecord {
    pub pid: i32,
    pub parent: Option<i32>,
    /// `--follow`'s generation the process belongs to, from 1.
    pub generation: u32,
    pub command_line: String,
    pub python_version: String,
    pub samples: u64,
    pub errors: u64,
    /// Wall time it was sampled.
    pub duration_s: f64,
    /// `target_exited`, `duration`, `signal`, `running`, the error that ended it, or why it
    /// was not traced.
    pub ended: String,
    /// With `--snapshot`: when its snapshot was taken (`finalizing`, `exit`, `end of
    /// sampling`), `watching` while it runs, or `none: WHY`; empty without `--snapshot`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub snapshot: String,
}

impl RunInfo {
    /// Fold another run's information into this one, for `merge`: the first target is kept,
    /// counters and durations are summed, library directories unioned.
    pub fn update(&mut self, other: &RunInfo) {
        let (a, b) = (&mut self.stats, &other.stats);
        a.samples += b.samples;
        a.errors += b.errors;
        a.errors_by_kind.merge(&b.errors_by_kind);
        a.threads_dropped.merge(&b.threads_dropped);
        a.late += b.late;
        a.missed += b.missed;
        a.throttled += b.throttled;
        a.ticks += b.ticks;
        a.truncated += b.truncated;
        a.duration_s += b.duration_s;
        a.cpu_s += b.cpu_s;
        a.batches += b.batches;
        a.spin_s += b.spin_s;
        a.process_seconds += b.process_seconds;
        for dir in &other.library_dirs {
            if !self.library_dirs.contains(dir) {
                self.library_dirs.push(dir.clone());
            }
        }
        if self.target.python_version.is_empty() {
            self.target = other.target.clone();
        }
        if self.stdlib_dir.is_none() {
            self.stdlib_dir = other.stdlib_dir.clone();
        }
        if !other.likely.is_empty() {
            self.likely.extend(other.likely.iter().cloned());
            self.likely.sort_unstable();
            self.likely.dedup();
        }
        if !other.arcs.is_empty() {
            self.arcs.extend(other.arcs.iter().cloned());
            self.arcs.sort_unstable();
            self.arcs.dedup();
        }
        self.processes.extend(other.processes.iter().cloned());
    }
}

/// How a format is written, beyond the format itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// [`Format::Coverage`]: also store our executable lines and mark the files for the
    /// `tracer_coverage` coverage.py plugin (docs/reports.md).
    pub coverage_plugin: bool,
    /// [`Format::Coverage`]: arc data from the proven arcs (`has_arcs` 1), for projects
    /// measured with `branch = true` (docs/reports.md).
    pub coverage_arcs: bool,
}

impl WriteOptions {
    /// Refuse options that do not apply to `format`.
    pub fn check(&self, format: Format) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.coverage_plugin || format == Format::Coverage,
            "--coverage-plugin marks a coverage.py data file: use it with --format coverage"
        );
        anyhow::ensure!(
            !self.coverage_arcs || format == Format::Coverage,
            "--coverage-arcs writes a coverage.py data file: use it with --format coverage"
        );
        anyhow::ensure!(
            !(self.coverage_arcs && self.coverage_plugin),
            "--coverage-arcs and --coverage-plugin cannot be used together (the plugin \
             reports statements, not branches)"
        );
        Ok(())
    }
}

/// Write `results` in `format` to `path` (a directory for [`Format::Cover`]). Stack formats
/// fail with one line when the results hold no stacks. Returns the `.cover` report for
/// [`Format::Cover`] (its summary and skipped files are the caller's to print).
pub fn write(
    results: &CoverageResults,
    info: &RunInfo,
    format: Format,
    path: &Path,
    sources: &crate::source::Sources,
    options: &WriteOptions,
) -> anyhow::Result<Option<cover::CoverReport>> {
    options.check(format)?;
    // The function view's source points become statements once, from the target's sources.
    let resolved;
    let results = match &results.function {
        Some(function) if function.needs_resolving() => {
            let mut copy = results.clone();
            if let Some(function) = &mut copy.function {
                function.resolve(&|filename| {
                    let bytes = sources.read(filename).ok()?;
                    Some(crate::source::SourceText::decode(&bytes).text)
                });
            }
            resolved = copy;
            &resolved
        }
        _ => results,
    };
    let bytes = match format {
        Format::Cover => {
            let options = cover::CoverOptions {
                coverdir: Some(path.to_path_buf()),
                show_missing: true,
            };
            let report = cover::write(results, &options, sources);
            if report.written.is_empty() && !report.skipped.is_empty() {
                for line in &report.skipped {
                    eprintln!("tracer: {line}");
                }
                anyhow::bail!("no .cover file could be written to {}", path.display());
            }
            return Ok(Some(report));
        }
        Format::Coverage => {
            let plugin = options
                .coverage_plugin
                .then(|| coverage_db::ExecutableLines::of(results, sources));
            if let Some(plugin) = &plugin {
                for why in &plugin.skipped {
                    eprintln!(
                        "tracer: warning: {why}: not marked for the coverage.py plugin \
                         (coverage.py's own parser reports it)"
                    );
                }
            }
            let arcs = options.coverage_arcs.then_some(info.arcs.as_slice());
            if let Some(written) = coverage_db::write(results, path, plugin.as_ref(), arcs)? {
                if let Some(line) = arcs_warning(&written) {
                    eprintln!("{line}");
                }
            }
            return Ok(None);
        }
        Format::Pickle => {
            // A version not known is taken to read them: only 3.8 and 3.9 cannot.
            let version = info.target.version();
            let with_callers = version.is_none_or(pickle::trace_reads_callers);
            if let Some(version) = version.filter(|_| !with_callers && !results.callers.is_empty())
            {
                eprintln!(
                    "tracer: warning: Python {version}'s trace module cannot read call edges from \
                     a results file (a bug fixed in 3.10), so the pickle leaves them out; \
                     --format json keeps them"
                );
            }
            pickle::to_vec(results, with_callers)?
        }
        Format::Json => json::to_vec(results, info)?,
        Format::Collapsed => flame::collapsed(flame::stacks_of(results, format)?).into_bytes(),
        Format::Flamegraph => {
            let title = match info.target.command_line.as_str() {
                "" => "tracer".to_owned(),
                command => format!("tracer: {command}"),
            };
            flame::flamegraph_svg(flame::stacks_of(results, format)?, &title)?
        }
        Format::Speedscope => {
            let name = match info.target.command_line.as_str() {
                "" => "tracer".to_owned(),
                command => command.to_owned(),
            };
            flame::speedscope(flame::stacks_of(results, format)?, &name)?
        }
        Format::Dot => callgraph::dot(results).into_bytes(),
        Format::Html => html::page(results, info, sources).into_bytes(),
        Format::Pprof => pprof::to_vec(results, flame::stacks_of(results, format)?, info)?,
    };
    write_atomically(path, |w| Ok(w.write_all(&bytes)?))?;
    Ok(None)
}

/// The one line `--coverage-arcs` prints when lines are left out of the arc data file.
pub fn arcs_warning(written: &coverage_db::ArcsWritten) -> Option<String> {
    if written.lines_without_arc == 0 {
        return None;
    }
    Some(if written.arcs == 0 {
        format!(
            "tracer: warning: --coverage-arcs: none of {} lines is in the data file: no arc was \
             proven (sampling proves none; --snapshot on Python 3.12+ does), and coverage.py \
             reads executed lines from arcs",
            written.lines
        )
    } else {
        format!(
            "tracer: warning: --coverage-arcs: {} of {} lines are not in the data file ({} arcs \
             written): they ran, but no arc of theirs is proven, and coverage.py reads executed \
             lines from arcs",
            written.lines_without_arc, written.lines, written.arcs
        )
    })
}

/// Like [`write_atomically`], for writers that need a path (SQLite): `write` fills a fresh
/// temporary path beside `path`, which is then renamed into place.
pub fn write_atomically_via_path(
    path: &Path,
    write: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let tmp = temporary_beside(path)?;
    let _ = fs::remove_file(&tmp);
    if let Err(e) = write(&tmp) {
        let _ = fs::remove_file(&tmp);
        return Err(e.context(format!("cannot write {}", path.display())));
    }
    fs::rename(&tmp, path).with_context(|| {
        let _ = fs::remove_file(&tmp);
        format!("cannot move {} into place", path.display())
    })?;
    sync_directory_of(path);
    Ok(())
}

/// Flush the directory entry of a file just renamed into place, so that the rename itself
/// survives a crash of the machine. Best effort: some filesystems refuse to sync a directory.
fn sync_directory_of(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}

fn temporary_beside(path: &Path) -> anyhow::Result<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("output path {} names no file", path.display()))?;
    Ok(dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Write `path` so that readers see either the old file or the complete new one, never a torn
/// one: write a temporary file beside it (created fresh, so a pre-placed symlink is not
/// followed), flush it to disk, then rename it over `path`.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let tmp = temporary_beside(path)?;
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
    })?;
    sync_directory_of(path);
    Ok(())
}

/// Read a results file written by us or by `python -m trace --file`: JSON or pickle, told
/// apart by their first byte.
pub fn load_results(path: &Path) -> anyhow::Result<(CoverageResults, Option<RunInfo>)> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    match first {
        None => anyhow::bail!("{} is empty: not a results file", path.display()),
        Some(_) if bytes.starts_with(b"SQLite format 3\0") => anyhow::bail!(
            "{} is a SQLite database (a coverage.py data file?): tracer reads trace pickles \
             and tracer JSON; use coverage.py to combine coverage.py files",
            path.display()
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Symlinks pre-placed at the output path or at its temporary name are replaced, and the
    /// files they point to are left alone.
    #[test]
    fn pre_placed_symlinks_are_never_followed() {
        let dir = std::env::temp_dir().join(format!("tracer-symlinks-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, "keep").unwrap();
        for (i, via_path) in [false, true].into_iter().enumerate() {
            let path = dir.join(format!("out{i}"));
            let tmp = temporary_beside(&path).unwrap();
            std::os::unix::fs::symlink(&victim, &path).unwrap();
            std::os::unix::fs::symlink(&victim, &tmp).unwrap();
            if via_path {
                write_atomically_via_path(&path, |p| Ok(fs::write(p, "new")?)).unwrap();
            } else {
                write_atomically(&path, |w| Ok(w.write_all(b"new")?)).unwrap();
            }
            assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
            assert!(fs::symlink_metadata(&path).unwrap().file_type().is_file());
            assert_eq!(fs::read_to_string(&path).unwrap(), "new");
            assert!(!tmp.exists());
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}

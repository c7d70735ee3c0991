//! `tracer snapshot`: what a running process has run since it started, read once from its
//! interpreter's own evidence (see [`crate::snapshot`]).

use crate::cli::FilterArgs;
use crate::output::{self, Format, RunInfo, WriteOptions};
use crate::session;
use crate::snapshot;
use crate::source::Sources;
use std::path::PathBuf;

/// `tracer snapshot`: read once what `pid` has run and write it in `format`.
pub fn snapshot_command(
    pid: i32,
    output: Option<&PathBuf>,
    (format, write_options): (Format, WriteOptions),
    options: snapshot::SnapshotOptions,
    filters: &FilterArgs,
) -> anyhow::Result<i32> {
    let path = session::output_path(output, format, pid);
    session::check_output_writable(&path, format)?;
    write_options.check(format)?;
    let taken = snapshot::take(pid, options)?;
    let version = taken
        .stats
        .walk_version()
        .ok_or_else(|| anyhow::anyhow!("the snapshot names no Python version"))?;
    let (library_dirs, stdlib_dir) = crate::target::library_dirs::of_process(pid, version);
    let filter = filters.filter(&library_dirs, stdlib_dir.as_deref())?;
    let mut results = taken.results;
    let mut likely = taken.likely;
    if !filter.is_empty() {
        results.remove_counts_where(|file| filter.ignores(file));
        likely.retain(|(file, _)| !filter.ignores(file));
    }
    let mut arcs = taken.arcs;
    arcs.retain(|(file, _, _)| !filter.ignores(file));
    let likely_lines = likely.len();
    let info = RunInfo {
        target: crate::target::attach::TargetInfo {
            pid,
            python_version: taken.stats.python_version.clone(),
            executable: crate::target::process::executable(pid)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            command_line: crate::target::process::command_line(pid).unwrap_or_default(),
            reader: "snapshot".to_owned(),
            free_threaded: false,
        },
        library_dirs,
        stdlib_dir,
        likely: likely.into_iter().collect(),
        arcs: arcs.into_iter().collect(),
        ..RunInfo::default()
    };
    let sources = Sources::of_process(pid, version);
    if let Some(report) = output::write(&results, &info, format, &path, &sources, &write_options)? {
        for line in &report.skipped {
            eprintln!("tracer: {line}");
        }
        print!("{}", report.summary_text());
    }
    let s = &taken.stats;
    println!(
        "tracer: wrote snapshot to {} ({} lines in {} files, {} functions; {} code objects \
         read, {} analysed, {} skipped, {} unstable; {} lines from evidence alone, {} with \
         inference; {} more lines likely, not proven, kept apart{})",
        path.display(),
        results.counts.len(),
        results.files().len(),
        results.calledfuncs.len(),
        s.walk.code_objects,
        s.analysed,
        s.skipped,
        s.walk.unstable_codes,
        s.evidence_lines,
        s.proven_lines,
        likely_lines,
        if format == Format::Json {
            " in \"likely\""
        } else {
            ": --format json lists them"
        }
    );
    Ok(0)
}

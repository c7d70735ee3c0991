//! `tracer report`: a results file shown as trace does (`.cover` files, `--summary`,
//! `--listfuncs`, `--trackcalls`), or converted to another format.

use crate::aggregate::filter::PathMap;
use crate::aggregate::model::CoverageResults;
use crate::cli::{FilterArgs, ReportArgs};
use crate::output::{self, cover, Format, RunInfo};
use crate::source::Sources;
use anyhow::Context;
use std::path::Path;

/// Load a results file, rewrite its paths and filter its line counts as asked.
fn load_for_report(
    file: &Path,
    filters: &FilterArgs,
    path_map: &[PathMap],
) -> anyhow::Result<(CoverageResults, Option<RunInfo>)> {
    let (results, info) = output::load_results(file)?;
    let (results, info) = remap(results, info, path_map);
    let results = apply_filters(results, info.as_ref(), filters, &[file])?;
    Ok((results, info))
}

pub(super) fn remap(
    results: CoverageResults,
    info: Option<RunInfo>,
    path_map: &[PathMap],
) -> (CoverageResults, Option<RunInfo>) {
    if path_map.is_empty() {
        return (results, info);
    }
    let map = |path: &str| PathMap::apply(path_map, path);
    let info = info.map(|mut info| {
        info.library_dirs = info.library_dirs.iter().map(|d| map(d)).collect();
        info.stdlib_dir = info.stdlib_dir.as_deref().map(map);
        info.arcs = std::mem::take(&mut info.arcs)
            .into_iter()
            .map(|(file, from, to)| (map(&file), from, to))
            .collect();
        info.arcs.sort_unstable();
        info.arcs.dedup();
        info
    });
    (results.map_paths(map), info)
}

pub(super) fn apply_filters(
    mut results: CoverageResults,
    info: Option<&RunInfo>,
    filters: &FilterArgs,
    files: &[&Path],
) -> anyhow::Result<CoverageResults> {
    let library_dirs = info.map(|i| i.library_dirs.clone()).unwrap_or_default();
    if filters.ignore_stdlib && library_dirs.is_empty() {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        anyhow::bail!(
            "--ignore-stdlib needs the target's library directories, which {} does not record \
             (only tracer JSON does): use --ignore-dir",
            names.join(", ")
        );
    }
    let stdlib = info.and_then(|i| i.stdlib_dir.as_deref());
    let filter = filters.filter(&library_dirs, stdlib)?;
    if !filter.is_empty() {
        results.remove_counts_where(|file| filter.ignores(file));
    }
    Ok(results)
}

/// `tracer report`: what `request` asks, printed or written; the exit status.
pub fn report_command(request: &ReportArgs) -> anyhow::Result<i32> {
    let (results, info) =
        load_for_report(&request.file, &request.filters, &request.paths.path_map)?;
    let version = request
        .python_version
        .or_else(|| info.as_ref().and_then(|i| i.target.version()));
    let sources = Sources::local(version);
    if request.listfuncs {
        print!("{}", output::trace_text::functions_called(&results));
    }
    if request.trackcalls {
        print!("{}", output::trace_text::calling_relationships(&results));
    }
    if request.function {
        let Some(function) = &results.function else {
            anyhow::bail!(
                "{} holds no function view: trace with --function QUALNAME --format json",
                request.file.display()
            );
        };
        // Into a pipe that closes early (`| head`), stop quietly as other tools do.
        let text = crate::function_view::render_text(function);
        let mut stdout = std::io::stdout().lock();
        match std::io::Write::write_all(&mut stdout, text.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(e).context("cannot print the function view");
            }
            _ => {}
        }
        if request.format.is_none() && request.output.is_none() && request.coverdir.is_none() {
            return Ok(0);
        }
    }
    // -o without --format: the format the name tells.
    let format = match (request.format, &request.output) {
        (Some(format), _) => Some(format),
        (None, Some(path)) => Some(Format::from_path(path).with_context(|| {
            format!(
                "cannot tell the format of {} from its name: give --format",
                path.display()
            )
        })?),
        (None, None) => None,
    };
    let write_options = request.plugin.write_options();
    write_options.check(format.unwrap_or(Format::Cover))?;
    if let Some(format) = format.filter(|f| *f != Format::Cover || request.output.is_some()) {
        let path = request
            .output
            .as_ref()
            .with_context(|| format!("--format {} needs -o PATH to write to", format.name()))?;
        let info = info.unwrap_or_default();
        if let Some(report) =
            output::write(&results, &info, format, path, &sources, &write_options)?
        {
            for line in &report.skipped {
                eprintln!("tracer: {line}");
            }
            if request.summary {
                print!("{}", report.summary_text());
            }
        }
        eprintln!(
            "tracer: wrote {} as {} to {}",
            request.file.display(),
            format.name(),
            path.display()
        );
        return Ok(0);
    }
    if results.counts.is_empty() {
        eprintln!(
            "tracer: {} holds no line counts: nothing to report",
            request.file.display()
        );
    }
    let options = cover::CoverOptions {
        coverdir: request.coverdir.clone(),
        show_missing: request.missing,
    };
    let report = cover::write(&results, &options, &sources);
    for line in &report.skipped {
        eprintln!("tracer: {line}");
    }
    if request.summary {
        print!("{}", report.summary_text());
    }
    Ok(0)
}

//! `tracer merge`: several results files (processes, pods, runs) into one.

use super::report::{apply_filters, remap};
use crate::aggregate::filter::PathMap;
use crate::aggregate::model::CoverageResults;
use crate::cli::FilterArgs;
use crate::output::{self, Format, RunInfo, WriteOptions};
use crate::source::Sources;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// `tracer merge`: `inputs` merged as `CoverageResults.update` does, written to `output_path`.
pub fn merge_command(
    inputs: &[PathBuf],
    output_path: &Path,
    (format, write_options): (Option<Format>, WriteOptions),
    filters: &FilterArgs,
    path_map: &[PathMap],
) -> anyhow::Result<i32> {
    let format = format
        .or_else(|| Format::from_path(output_path))
        .unwrap_or(Format::Pickle);
    write_options.check(format)?;
    let mut merged: Option<(CoverageResults, RunInfo)> = None;
    let mut without_stacks = Vec::new();
    let mut merged_files = 0;
    for input in inputs {
        if is_process_list(input) {
            // `results/*.json` meets the lists written beside `--subprocesses` results.
            eprintln!(
                "tracer: {} left out: a --subprocesses process list, not results",
                input.display()
            );
            continue;
        }
        merged_files += 1;
        let (results, info) = output::load_results(input)?;
        if results.stacks.is_none() {
            without_stacks.push(input.display().to_string());
        }
        let info = info.unwrap_or_default();
        match &mut merged {
            None => merged = Some((results, info)),
            Some((all, all_info)) => {
                all.update(&results);
                all_info.update(&info);
            }
        }
    }
    let (results, info) = merged.context("no input files")?;
    if !without_stacks.is_empty() && without_stacks.len() < merged_files {
        eprintln!(
            "tracer: warning: the merged results hold no stacks (for flame graphs): {} held none",
            without_stacks.join(", ")
        );
    }
    let (results, info) = remap(results, Some(info), path_map);
    let info = info.unwrap_or_default();
    let file_refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let results = apply_filters(results, Some(&info), filters, &file_refs)?;
    let version = info.target.version();
    if let Some(report) = output::write(
        &results,
        &info,
        format,
        output_path,
        &Sources::local(version),
        &write_options,
    )? {
        for line in &report.skipped {
            eprintln!("tracer: {line}");
        }
    }
    eprintln!(
        "tracer: merged {} files into {} ({}: {} lines in {} files, {} functions, {} call edges)",
        merged_files,
        output_path.display(),
        format.name(),
        results.counts.len(),
        results.files().len(),
        results.calledfuncs.len(),
        results.callers.len()
    );
    Ok(0)
}

/// Whether `path` is a process list written beside `--subprocesses` results
/// (`tracer-processes-NAME.json`, a JSON array of processes).
fn is_process_list(path: &Path) -> bool {
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("tracer-processes-") && n.ends_with(".json"));
    named
        && std::fs::read(path)
            .is_ok_and(|bytes| serde_json::from_slice::<Vec<output::ProcessRecord>>(&bytes).is_ok())
}

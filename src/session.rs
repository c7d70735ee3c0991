//! One tracing session: an attached target, a sampler thread and an aggregator thread joined
//! by a channel, and the results written at the end whatever ended the session.

use crate::aggregate::Aggregator;
use crate::attach::Attached;
use crate::filter::Filter;
use crate::model::CoverageResults;
use crate::output::{self, Format, RunInfo};
use crate::sampler::{self, SamplerConfig, StopReason};
use crate::source::Sources;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Samples buffered between sampler and aggregator: a full channel blocks the sampler, which
/// then shows up as late and missed ticks rather than lost samples.
const CHANNEL_CAPACITY: usize = 4096;

/// What a session does with its target.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub rate_hz: f64,
    pub duration: Option<Duration>,
    pub filter: Filter,
}

/// What a session gathered.
pub struct SessionResult {
    pub results: CoverageResults,
    pub info: RunInfo,
    pub stop_reason: StopReason,
    pub first_error: Option<String>,
}

/// Sample `attached` until the duration passes, `stop` is set, or the target exits.
pub fn sample(
    attached: Attached,
    options: &SessionOptions,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<SessionResult> {
    let Attached {
        mut reader,
        info: target,
        pending_codes,
    } = attached;
    let pid = target.pid;
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
    let aggregator = std::thread::Builder::new()
        .name("tracer-aggregator".into())
        .spawn(move || Aggregator::new().run(rx))
        .context("cannot start the aggregator thread")?;
    let config = SamplerConfig {
        rate_hz: options.rate_hz,
        duration: options.duration,
    };
    let sampler = std::thread::Builder::new()
        .name("tracer-sampler".into())
        .spawn(move || {
            let is_alive = move || crate::process::is_alive(pid);
            // `tx` moves in and drops when sampling ends, which closes the channel and lets
            // the aggregator finish.
            sampler::run(
                reader.as_mut(),
                pending_codes,
                &config,
                &stop,
                &is_alive,
                &tx,
            )
        })
        .context("cannot start the sampler thread")?;
    // A sampler that failed still leaves what it sent; an aggregator that failed leaves nothing.
    let stats = sampler.join().unwrap_or_else(|_| {
        eprintln!("tracer: warning: the sampler thread failed; writing what it gathered");
        Default::default()
    });
    let aggregator = aggregator
        .join()
        .map_err(|_| anyhow::anyhow!("the aggregator thread failed: no results to write"))?;
    let results = aggregator.results(&options.filter);
    Ok(SessionResult {
        results,
        stop_reason: stats.stop_reason.unwrap_or(StopReason::Signal),
        first_error: stats.first_error.clone(),
        info: RunInfo {
            target,
            stats,
            rate_requested: options.rate_hz,
            ..RunInfo::default()
        },
    })
}

/// Write `result` in `format` to `path`, and return a one-line description of what was
/// written plus, for `.cover` output, trace's summary.
pub fn write_results(
    result: &SessionResult,
    format: Format,
    path: &Path,
    sources: &Sources,
) -> anyhow::Result<String> {
    match output::write(&result.results, &result.info, format, path, sources)? {
        Some(report) => {
            for line in &report.skipped {
                eprintln!("tracer: {line}");
            }
            Ok(format!(
                "{}{}",
                report.summary_text(),
                describe(result, path, Some(report.written.len()))
            ))
        }
        None => Ok(describe(result, path, None)),
    }
}

fn describe(result: &SessionResult, path: &Path, cover_files: Option<usize>) -> String {
    let r = &result.results;
    let s = &result.info.stats;
    let what = match cover_files {
        Some(n) => format!("{n} .cover files"),
        None => "results".to_owned(),
    };
    format!(
        "tracer: wrote {what} to {} ({} lines in {} files, {} functions, {} call edges; \
         {} samples in {:.1}s, {} errors, {} late, {} missed, {} truncated stacks)",
        path.display(),
        r.counts.len(),
        r.files().len(),
        r.calledfuncs.len(),
        r.callers.len(),
        s.samples,
        s.duration_s,
        s.errors,
        s.late,
        s.missed,
        s.truncated
    )
}

/// The output path: the one asked for, or the format's default in the current directory.
pub fn output_path(requested: Option<&PathBuf>, format: Format, pid: i32) -> PathBuf {
    requested
        .cloned()
        .unwrap_or_else(|| format.default_path(pid))
}

/// Check before sampling that the output can be written, so that a long session does not end
/// in an unwritable path.
pub fn check_output_writable(path: &Path, format: Format) -> anyhow::Result<()> {
    let dir = match format {
        Format::Cover => {
            std::fs::create_dir_all(path)
                .with_context(|| format!("cannot create output directory {}", path.display()))?;
            path.to_path_buf()
        }
        _ => match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        },
    };
    let probe = dir.join(format!(".tracer-probe-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .with_context(|| {
            format!(
                "cannot write to {}: choose another path with -o",
                dir.display()
            )
        })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

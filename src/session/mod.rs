//! One tracing session: an attached target, a sampler thread and an aggregator thread joined
//! by a channel, and the results written at the end whatever ended the session.

pub mod family;
pub mod flush;
pub mod sampler;
pub mod status;

use crate::aggregate::filter::Filter;
use crate::aggregate::model::CoverageResults;
use crate::aggregate::Aggregator;
use crate::output::{self, Format, RunInfo};
use crate::reader::FunctionFilter;
use crate::source::Sources;
use crate::target::attach::Attached;
use anyhow::Context;
use sampler::{SamplerConfig, StopReason};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Samples buffered between sampler and aggregator: a full channel blocks the sampler, which
/// then shows up as late and missed ticks rather than lost samples.
const CHANNEL_CAPACITY: usize = 4096;

/// What a session does with its target.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub rate_hz: f64,
    pub duration: Option<Duration>,
    pub filter: Filter,
    /// Hand a complete snapshot of the results to the caller this often while sampling goes
    /// on (`--flush-every`); `None` only at the end.
    pub flush_every: Option<Duration>,
    /// The function view's function (`--function`, `--locals`).
    pub function: Option<FunctionFilter>,
}

/// What a session gathered.
pub struct SessionResult {
    pub results: CoverageResults,
    pub info: RunInfo,
    pub stop_reason: StopReason,
    pub first_error: Option<String>,
}

impl SessionResult {
    /// Add a later session's results to these (`--follow`, `--subprocesses`): counts summed,
    /// functions and edges unioned as `CoverageResults.update` does; the target described
    /// stays this session's, the stop reason becomes the later one's.
    pub fn absorb(&mut self, later: &SessionResult) {
        self.results.update(&later.results);
        self.info.update(&later.info);
        self.stop_reason = later.stop_reason;
        if self.first_error.is_none() {
            self.first_error = later.first_error.clone();
        }
    }

    /// A copy of these results (snapshots merge copies; the originals go on).
    pub fn copy(&self) -> SessionResult {
        SessionResult {
            results: self.results.clone(),
            info: self.info.clone(),
            stop_reason: self.stop_reason,
            first_error: self.first_error.clone(),
        }
    }
}

/// Counters the sampler updates as it goes, for the status line and snapshots.
pub type LiveCounters = sampler::LiveCounters;

/// A request to the aggregator thread for a snapshot of its results so far.
type FlushRequest = crossbeam_channel::Sender<CoverageResults>;

/// Sample `attached` until the duration passes, `stop` is set, or the target exits.
pub fn sample(
    attached: Attached,
    options: &SessionOptions,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<SessionResult> {
    sample_with_flushes(
        attached,
        options,
        stop,
        &Arc::new(LiveCounters::default()),
        &mut |_| {},
        &mut |_| {},
    )
}

/// Asks a running session for its results so far, from any thread: how a family
/// (`--subprocesses`) takes every process's results at the moment of its one flush.
#[derive(Clone)]
pub struct Snapshots {
    requests: crossbeam_channel::Sender<FlushRequest>,
    target: crate::target::attach::TargetInfo,
    rate_hz: f64,
    started: Instant,
    live: Arc<LiveCounters>,
    /// Written into every snapshot (the session itself does not know them).
    pub library_dirs: Vec<String>,
    pub stdlib_dir: Option<String>,
}

impl Snapshots {
    /// The session's results so far, their stats partial (samples, errors, missed and time
    /// so far); `None` once the session has ended.
    pub fn take(&self) -> Option<SessionResult> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.requests.send(reply_tx).ok()?;
        let results = reply_rx.recv().ok()?;
        Some(SessionResult {
            results,
            stop_reason: StopReason::Signal,
            first_error: None,
            info: RunInfo {
                target: self.target.clone(),
                stats: self.live.stats_so_far(self.started.elapsed()),
                rate_requested: self.rate_hz,
                library_dirs: self.library_dirs.clone(),
                stdlib_dir: self.stdlib_dir.clone(),
                ..RunInfo::default()
            },
        })
    }
}

/// Like [`sample`], and every [`SessionOptions::flush_every`] hand `on_flush` the
/// results gathered so far (their stats partial: samples, errors and time so far) while
/// sampling goes on. `live` is kept up to date by the sampler. `on_start` is handed, once
/// sampling has begun, a handle that takes snapshots on demand.
pub fn sample_with_flushes(
    attached: Attached,
    options: &SessionOptions,
    stop: Arc<AtomicBool>,
    live: &Arc<LiveCounters>,
    on_start: &mut dyn FnMut(Snapshots),
    on_flush: &mut dyn FnMut(SessionResult),
) -> anyhow::Result<SessionResult> {
    let Attached {
        mut reader,
        info: target,
        pending_codes,
    } = attached;
    let pid = target.pid;
    if let Some(function) = &options.function {
        reader
            .follow_function(function.clone())
            .map_err(|e| anyhow::anyhow!("cannot follow --function {}: {e}", function.qualname))?;
    }
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
    let (flush_tx, flush_rx) = crossbeam_channel::bounded::<FlushRequest>(1);
    let filter = options.filter.clone();
    let mut aggregator = Aggregator::new();
    if let Some(function) = &options.function {
        aggregator = aggregator.with_function(&function.qualname, function.locals);
    }
    let aggregator = std::thread::Builder::new()
        .name("tracer-aggregator".into())
        .spawn(move || aggregate_until_closed(aggregator, rx, flush_rx, &filter))
        .context("cannot start the aggregator thread")?;
    let config = SamplerConfig {
        rate_hz: options.rate_hz,
        duration: options.duration,
    };
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let sampler_live = live.clone();
    let snapshots = Snapshots {
        requests: flush_tx,
        target: target.clone(),
        rate_hz: options.rate_hz,
        started: Instant::now(),
        live: live.clone(),
        library_dirs: Vec::new(),
        stdlib_dir: None,
    };
    let sampler = std::thread::Builder::new()
        .name("tracer-sampler".into())
        .spawn(move || {
            let is_alive = move || crate::target::process::is_alive(pid);
            // `tx` moves in and drops when sampling ends, which closes the channel and lets
            // the aggregator finish.
            let stats = sampler::run_observed(
                reader.as_mut(),
                pending_codes,
                &config,
                &stop,
                &is_alive,
                &tx,
                Some(&sampler_live),
            );
            let _ = done_tx.send(());
            stats
        })
        .context("cannot start the sampler thread")?;
    on_start(snapshots.clone());
    if let Some(every) = options.flush_every {
        let mut next = snapshots.started + every;
        // Ends when the sampler says it is done, or its thread failed (the sender dropped).
        while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = done_rx.recv_deadline(next) {
            next += every;
            let Some(snapshot) = snapshots.take() else {
                break;
            };
            on_flush(snapshot);
            // A slow write must not queue up flushes: the next one is a period after this.
            next = next.max(Instant::now() + every / 2);
        }
    }
    drop(snapshots);
    // A sampler that failed still leaves what it sent; an aggregator that failed leaves nothing.
    let stats = sampler.join().unwrap_or_else(|_| {
        eprintln!("tracer: warning: the sampler thread failed; writing what it gathered");
        Default::default()
    });
    let results = aggregator
        .join()
        .map_err(|_| anyhow::anyhow!("the aggregator thread failed: no results to write"))?;
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

/// The aggregator thread: fold in every sample until the sampler closes the channel, answering
/// snapshot requests in between, and return the final results.
fn aggregate_until_closed(
    mut aggregator: Aggregator,
    samples: crossbeam_channel::Receiver<crate::reader::sample::Message>,
    snapshot_requests: crossbeam_channel::Receiver<FlushRequest>,
    filter: &Filter,
) -> CoverageResults {
    let mut requests = snapshot_requests;
    loop {
        crossbeam_channel::select! {
            recv(samples) -> message => match message {
                Ok(message) => aggregator.handle(message),
                Err(_) => break,
            },
            recv(requests) -> request => match request {
                Ok(reply) => {
                    let _ = reply.send(aggregator.results(filter));
                }
                // No more requests will come: wait on samples alone.
                Err(_) => requests = crossbeam_channel::never(),
            },
        }
    }
    aggregator.results(filter)
}

/// Write `result` in `format` to `path`, and return a one-line description of what was
/// written plus, for `.cover` output, trace's summary.
pub fn write_results(
    result: &SessionResult,
    format: Format,
    path: &Path,
    sources: &Sources,
    options: &output::WriteOptions,
) -> anyhow::Result<String> {
    match output::write(
        &result.results,
        &result.info,
        format,
        path,
        sources,
        options,
    )? {
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
         {} samples in {:.1}s, {} errors, {} late, {} missed, {} truncated stacks, {} thread \
         stacks left out)",
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
        s.truncated,
        s.threads_dropped.total()
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

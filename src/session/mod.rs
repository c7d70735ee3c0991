//! One tracing session: an attached target, a sampler thread and an aggregator thread joined
//! by a channel, and the results written at the end whatever ended the session. [`trace_one`]
//! starts one for `attach`, `run` and each process of `--subprocesses`: the target's library
//! and stdlib directories, the filters, the function view, and with [`Flushing`] the status
//! line and the flush writer around them.

pub mod family;
pub mod flush;
pub mod pacing;
pub mod sampler;
pub mod status;

use crate::aggregate::filter::Filter;
use crate::aggregate::model::CoverageResults;
use crate::aggregate::Aggregator;
use crate::cli::TraceArgs;
use crate::output::{self, Format, RunInfo};
use crate::reader::sample::Message;
use crate::reader::FollowedFunction;
use crate::source::Sources;
use crate::target::attach::Attached;
use anyhow::Context;
use flush::FlushWriter;
use sampler::{FlushRequest, SamplerConfig, StopReason};
use status::{StatusCounters, StatusReporter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Batches buffered between sampler and aggregator (each up to 256 messages): a full channel
/// blocks the sampler, which then shows up as late and missed ticks rather than lost samples.
const CHANNEL_CAPACITY: usize = 16;

/// What a session does with its target.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub rate_hz: f64,
    pub duration: Option<Duration>,
    pub filter: Filter,
    /// Hand the complete results so far to the caller this often while sampling goes
    /// on (`--flush-every`); `None` only at the end.
    pub flush_every: Option<Duration>,
    /// The function view's function (`--function`, `--locals`).
    pub function: Option<FollowedFunction>,
    /// `--max-cpu`: the tracer's CPU budget in percent of one core.
    pub max_cpu_percent: Option<f64>,
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

    /// A copy of these results (flushes merge copies; the originals go on).
    pub fn copy(&self) -> SessionResult {
        SessionResult {
            results: self.results.clone(),
            info: self.info.clone(),
            stop_reason: self.stop_reason,
            first_error: self.first_error.clone(),
        }
    }
}

/// Counters the sampler updates as it goes, for the status line.
pub type LiveCounters = sampler::LiveCounters;

/// Asks a running session for its results so far, from any thread: how a family
/// (`--subprocesses`) takes every process's results at the moment of its one flush.
#[derive(Clone)]
pub struct FlushHandle {
    requests: crossbeam_channel::Sender<FlushRequest>,
    target: crate::target::attach::TargetInfo,
    rate_hz: f64,
    started: Instant,
    /// Written into every flush (the session itself does not know them).
    pub library_dirs: Vec<String>,
    pub stdlib_dir: Option<String>,
}

impl FlushHandle {
    /// The session's results so far, with the stats of exactly the samples they hold; `None`
    /// once the session has ended. The request travels in the sample stream, behind the
    /// samples taken before it; the sampler answers what it finds waiting when it stops, and a
    /// request that came later still is given up after a moment.
    pub fn take(&self) -> Option<SessionResult> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.requests.send(reply_tx).ok()?;
        let (results, stats) = reply_rx.recv_timeout(Duration::from_secs(2)).ok()?;
        Some(SessionResult {
            results,
            stop_reason: StopReason::Signal,
            first_error: None,
            info: RunInfo {
                target: self.target.clone(),
                stats,
                rate_requested: self.rate_hz,
                library_dirs: self.library_dirs.clone(),
                stdlib_dir: self.stdlib_dir.clone(),
                ..RunInfo::default()
            },
        })
    }
}

/// Sample `attached` until the duration passes, `stop` is set, or the target exits; every
/// [`SessionOptions::flush_every`] hand `on_flush` the results gathered so far, with the stats
/// of exactly the samples they hold, while sampling goes on. `live` is kept up to date by the sampler. `on_start` is handed, once
/// sampling has begun, a handle that takes its results so far on demand.
pub fn sample_with_flushes(
    attached: Attached,
    options: &SessionOptions,
    stop: Arc<AtomicBool>,
    live: &Arc<LiveCounters>,
    on_start: &mut dyn FnMut(FlushHandle),
    on_flush: &mut dyn FnMut(SessionResult),
) -> anyhow::Result<SessionResult> {
    let Attached {
        mut reader,
        version: _,
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
    // Always answered: a family (`--subprocesses`) asks for results at its own flushes.
    let flush_rx = Some(flush_rx);
    let filter = options.filter.clone();
    let mut aggregator = Aggregator::new().of_process(pid);
    if let Some(function) = &options.function {
        aggregator = aggregator.with_function(&function.qualname, function.locals);
    }
    let aggregator = std::thread::Builder::new()
        .name("tracer-aggregator".into())
        .spawn(move || aggregate_until_closed(aggregator, rx, &filter))
        .context("cannot start the aggregator thread")?;
    let config = SamplerConfig {
        rate_hz: options.rate_hz,
        duration: options.duration,
        max_cpu_percent: options.max_cpu_percent,
    };
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let sampler_live = live.clone();
    let flushes = FlushHandle {
        requests: flush_tx,
        target: target.clone(),
        rate_hz: options.rate_hz,
        started: Instant::now(),
        library_dirs: Vec::new(),
        stdlib_dir: None,
    };
    let sampler = std::thread::Builder::new()
        .name("tracer-sampler".into())
        .spawn(move || {
            let is_alive = move || crate::target::process::is_alive(pid);
            // `tx` moves in and drops when sampling ends, which closes the channel and lets
            // the aggregator finish.
            let outlet = sampler::Outlet {
                tx: &tx,
                flush_requests: flush_rx.as_ref(),
                live: Some(&sampler_live),
            };
            let stats = sampler::run_observed(
                reader.as_mut(),
                pending_codes,
                &config,
                &stop,
                &is_alive,
                &outlet,
            );
            let _ = done_tx.send(());
            stats
        })
        .context("cannot start the sampler thread")?;
    on_start(flushes.clone());
    if let Some(every) = options.flush_every {
        let mut next = flushes.started + every;
        // Ends when the sampler says it is done, or its thread failed (the sender dropped).
        while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = done_rx.recv_deadline(next) {
            next += every;
            let Some(so_far) = flushes.take() else {
                break;
            };
            on_flush(so_far);
            // A slow write must not queue up flushes: the next one is a period after this.
            next = next.max(Instant::now() + every / 2);
        }
    }
    drop(flushes);
    // A sampler that failed still leaves what it sent; an aggregator that failed leaves nothing.
    let stats = sampler.join().unwrap_or_else(|_| {
        eprintln!("tracer: warning: the sampler thread failed; writing what it gathered");
        Default::default()
    });
    let (results, aggregated) = aggregator
        .join()
        .map_err(|_| anyhow::anyhow!("the aggregator thread failed: no results to write"))?;
    let mut stats = stats;
    aggregated.account(&mut stats);
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

/// What the aggregator thread adds to the sampler's stats.
struct Aggregated {
    /// The thread's CPU time so far, in seconds.
    cpu_s: f64,
    /// Samples the sampler sent but the aggregator refused: they named a code whose strings
    /// never came (see [`Aggregator::unknown_codes`]).
    refused: u64,
}

impl Aggregated {
    /// Fold into `stats`: the CPU time, and each refused sample moved from `samples` to the
    /// dropped ones (implausible), so that the counts say what the results hold.
    fn account(&self, stats: &mut sampler::SamplerStats) {
        stats.cpu_s += self.cpu_s;
        let refused = self.refused.min(stats.samples);
        stats.samples -= refused;
        stats.errors += refused;
        stats.errors_by_kind.implausible += refused;
    }
}

/// The aggregator thread: fold in every batch until the sampler closes the channel, answering
/// flush requests where they come in the stream, and return the final results and what the
/// thread adds to the stats.
fn aggregate_until_closed(
    mut aggregator: Aggregator,
    batches: crossbeam_channel::Receiver<Vec<crate::reader::sample::Message>>,
    filter: &Filter,
) -> (CoverageResults, Aggregated) {
    let cpu_start = pacing::thread_cpu_ns();
    let aggregated = |aggregator: &Aggregator| Aggregated {
        cpu_s: pacing::thread_cpu_ns().saturating_sub(cpu_start) as f64 / 1e9,
        refused: aggregator.unknown_codes(),
    };
    for batch in batches {
        for message in batch {
            match message {
                Message::Flush(reply, stats) => {
                    let mut stats = *stats;
                    aggregated(&aggregator).account(&mut stats);
                    let _ = reply.send((aggregator.results(filter), stats));
                }
                message => aggregator.handle(message),
            }
        }
    }
    let results = aggregator.results(filter);
    (results, aggregated(&aggregator))
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
         {} samples in {:.1}s, {} errors, {} late, {} missed, {}{} truncated stacks, {} thread \
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
        if s.throttled > 0 {
            format!("{} throttled (--max-cpu), ", s.throttled)
        } else {
            String::new()
        },
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

// The session builder of `attach`, `run` and `--subprocesses`: the target's library and stdlib
// directories, the filters, the function view, the status line and the flush writer.

impl TraceArgs {
    /// How often a status line is logged when stderr is not a terminal.
    pub(crate) fn status_every(&self) -> Duration {
        Duration::from_secs_f64(self.status_every)
    }

    pub(crate) fn session_options(
        &self,
        library_dirs: &[String],
        stdlib: Option<&str>,
    ) -> anyhow::Result<SessionOptions> {
        Ok(SessionOptions {
            rate_hz: self.rate,
            duration: self.duration.map(Duration::from_secs_f64),
            filter: self.filters.filter(library_dirs, stdlib)?,
            flush_every: self.flush_every.map(Duration::from_secs_f64),
            max_cpu_percent: self.max_cpu,
            function: self
                .function
                .as_ref()
                .inspect(|_| {
                    if self.format != Format::Json {
                        eprintln!(
                            "tracer: warning: the function view is written with --format json \
                             only; {} leaves it out",
                            self.format.name()
                        );
                    }
                })
                .map(|qualname| crate::reader::FollowedFunction {
                    qualname: qualname.clone(),
                    locals: self.locals,
                }),
        })
    }
}

/// How a traced process's results so far are taken while it runs.
pub(crate) enum Flushes<'a> {
    /// Every `--flush-every`, the session hands its results so far to the callback.
    Timed(&'a mut dyn FnMut(SessionResult)),
    /// No timer of its own: the callback gets a handle that takes the results so far on demand
    /// (a family's one flush timer).
    OnDemand(&'a mut dyn FnMut(FlushHandle)),
}

/// Trace one process until it exits, the duration passes or a signal comes, its flushes
/// (library directories filled in) taken as `flushes` says.
pub(crate) fn trace_one(
    mut attached: crate::target::attach::Attached,
    args: &TraceArgs,
    duration: Option<Duration>,
    signals: &StopSignals,
    live: &Arc<sampler::LiveCounters>,
    flushes: Flushes,
) -> anyhow::Result<SessionResult> {
    let pid = attached.info.pid;
    let version = attached.version;
    let (library_dirs, stdlib_dir) = crate::target::library_dirs::of_process(pid, version);
    let mut options = args.session_options(&library_dirs, stdlib_dir.as_deref())?;
    options.duration = duration;
    let (mut no_start, mut no_flush) = (|_: FlushHandle| {}, |_: SessionResult| {});
    let (on_start, on_flush): (&mut dyn FnMut(FlushHandle), &mut dyn FnMut(SessionResult)) =
        match flushes {
            Flushes::Timed(on_flush) => (&mut no_start, on_flush),
            Flushes::OnDemand(on_start) => {
                options.flush_every = None;
                (on_start, &mut no_flush)
            }
        };
    // Refused before anything is announced (the session asks again, harmlessly).
    if let Some(function) = &options.function {
        attached
            .reader
            .follow_function(function.clone())
            .map_err(|e| anyhow::anyhow!("cannot follow --function {}: {e}", function.qualname))?;
    }
    eprintln!(
        "tracer: tracing pid {pid} (Python {}) at {} Hz{}; Ctrl-C to stop",
        attached.info.python_version,
        args.rate,
        if args.blocking {
            ", pausing it for each sample"
        } else {
            ""
        }
    );
    let mut result = sample_with_flushes(
        attached,
        &options,
        signals.stop.clone(),
        live,
        &mut |mut flushes| {
            flushes.library_dirs = library_dirs.clone();
            flushes.stdlib_dir = stdlib_dir.clone();
            on_start(flushes)
        },
        &mut |mut so_far| {
            so_far.info.library_dirs = library_dirs.clone();
            so_far.info.stdlib_dir = stdlib_dir.clone();
            on_flush(so_far)
        },
    )?;
    // Extension modules loaded while sampling show more library directories.
    let mut library_dirs = library_dirs;
    if crate::target::process::is_alive(pid) {
        for dir in crate::target::library_dirs::of_process(pid, version).0 {
            if !library_dirs.contains(&dir) {
                library_dirs.push(dir);
            }
        }
        if args.filters.ignore_stdlib {
            let filter = args.filters.filter(&library_dirs, stdlib_dir.as_deref())?;
            result
                .results
                .remove_counts_where(|file| filter.ignores(file));
        }
    }
    result.info.library_dirs = library_dirs;
    result.info.stdlib_dir = stdlib_dir;
    Ok(result)
}

/// Around the sessions of one `attach` or `run`: the status line and its counters, and the
/// writer of `--flush-every`'s files.
pub(crate) struct Flushing {
    pub(crate) counters: Arc<StatusCounters>,
    pub(crate) status: StatusReporter,
    pub(crate) writer: FlushWriter,
}

impl Flushing {
    /// Start the status line; flushes go to `path`, reading the target's sources through
    /// `sources` (taken at attach time: the target may be gone at the last flush).
    pub(crate) fn start(args: &TraceArgs, path: PathBuf, sources: Sources) -> Flushing {
        let counters = Arc::new(StatusCounters::default());
        let status = StatusReporter::start(counters.clone(), Some(args.status_every()));
        let mut writer = FlushWriter::new(path, args.format, args.plugin.write_options(), sources);
        writer.log_each = !status.on_terminal;
        Flushing {
            counters,
            status,
            writer,
        }
    }

    /// Write one flush and count it on the status line.
    pub(crate) fn write(&mut self, results: SessionResult) {
        self.writer.write(results);
        self.counters
            .flushes
            .store(self.writer.written, Ordering::Relaxed);
    }
}

/// Say why sampling ended (and, if nothing was read, the first error).
pub(crate) fn report_stop(result: &SessionResult) {
    let why = match result.stop_reason {
        sampler::StopReason::Duration => "duration reached",
        sampler::StopReason::Signal => "stopped by signal",
        sampler::StopReason::TargetExited => "target exited",
    };
    eprintln!("tracer: sampling ended: {why}");
    if result.info.stats.samples == 0 {
        if let Some(e) = &result.first_error {
            eprintln!("tracer: no stack could be read; first error: {e}");
        }
    }
}

/// Signals that end sampling: the flag to stop, and whether SIGTERM (to forward to a child).
pub(crate) struct StopSignals {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) terminated: Arc<AtomicBool>,
}

impl StopSignals {
    /// Install the handlers of SIGINT and SIGTERM (a second SIGINT exits at once, 130).
    pub(crate) fn install() -> anyhow::Result<StopSignals> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let stop = Arc::new(AtomicBool::new(false));
        let terminated = Arc::new(AtomicBool::new(false));
        // A second Ctrl-C while results are being written ends the tracer at once.
        signal_hook::flag::register_conditional_shutdown(SIGINT, 130, stop.clone())?;
        signal_hook::flag::register(SIGINT, stop.clone())?;
        signal_hook::flag::register(SIGTERM, stop.clone())?;
        signal_hook::flag::register(SIGTERM, terminated.clone())?;
        Ok(StopSignals { stop, terminated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_samples_are_counted_as_dropped_not_as_samples() {
        let mut stats = sampler::SamplerStats {
            samples: 10,
            errors: 1,
            cpu_s: 0.5,
            ..Default::default()
        };
        Aggregated {
            cpu_s: 0.25,
            refused: 3,
        }
        .account(&mut stats);
        assert_eq!((stats.samples, stats.errors), (7, 4));
        assert_eq!(stats.errors_by_kind.implausible, 3);
        assert_eq!(stats.cpu_s, 0.75);
    }
}

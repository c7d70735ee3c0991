//! What `attach` and `run` share: one session per traced process (the target's library and
//! stdlib directories, filters, the function view), and around them the status line and the
//! flush writer.

use super::StopSignals;
use crate::cli::TraceArgs;
use crate::output::Format;
use crate::session::flush::FlushWriter;
use crate::session::sampler;
use crate::session::status::{StatusCounters, StatusReporter};
use crate::session::{self, SessionOptions, SessionResult};
use crate::snapshot;
use crate::source::Sources;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

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
                .map(|qualname| crate::reader::FunctionFilter {
                    qualname: qualname.clone(),
                    locals: self.locals,
                }),
        })
    }
}

/// How a traced process's results so far are taken while it runs.
pub(crate) enum Flushes<'a> {
    /// Every `--flush-every`, the session hands its snapshot to the callback.
    Timed(&'a mut dyn FnMut(SessionResult)),
    /// No timer of its own: the callback gets a handle that takes snapshots on demand
    /// (a family's one flush timer).
    OnDemand(&'a mut dyn FnMut(session::Snapshots)),
}

/// Trace one process until it exits, the duration passes or a signal comes, its snapshots
/// (library directories filled in) taken as `flushes` says.
pub(crate) fn trace_one(
    mut attached: crate::target::attach::Attached,
    args: &TraceArgs,
    duration: Option<Duration>,
    signals: &StopSignals,
    live: &Arc<crate::session::sampler::LiveCounters>,
    flushes: Flushes,
) -> anyhow::Result<SessionResult> {
    let pid = attached.info.pid;
    let version = attached.info.version_tuple().unwrap_or((3, 12));
    let (library_dirs, stdlib_dir) = crate::target::library_dirs::of_process(pid, version);
    let mut options = args.session_options(&library_dirs, stdlib_dir.as_deref())?;
    options.duration = duration;
    let (mut no_start, mut no_flush) = (|_: session::Snapshots| {}, |_: SessionResult| {});
    let (on_start, on_flush): (
        &mut dyn FnMut(session::Snapshots),
        &mut dyn FnMut(SessionResult),
    ) = match flushes {
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
    let mut result = session::sample_with_flushes(
        attached,
        &options,
        signals.stop.clone(),
        live,
        &mut |mut snapshots| {
            snapshots.library_dirs = library_dirs.clone();
            snapshots.stdlib_dir = stdlib_dir.clone();
            on_start(snapshots)
        },
        &mut |mut snapshot| {
            snapshot.info.library_dirs = library_dirs.clone();
            snapshot.info.stdlib_dir = stdlib_dir.clone();
            on_flush(snapshot)
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
pub(crate) fn report_stop(result: &session::SessionResult) {
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

/// `--snapshot`'s snapshots of one process (3.12+): every `--snapshot-every` in a thread of
/// their own while it runs, and any taken at a moment of the caller's (the final one); joined
/// into the sampled results at the end as a union ([`snapshot::union`]).
pub(crate) struct Snapshotting {
    pid: i32,
    proven: Arc<std::sync::Mutex<snapshot::union::Proven>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    periodic: Option<std::thread::JoinHandle<()>>,
}

impl Snapshotting {
    /// Start for `pid` running Python `version`; `None` (with a one-line note) when its
    /// interpreter keeps no record of what ran.
    pub(crate) fn start(
        pid: i32,
        version: (u8, u8),
        every: Option<Duration>,
    ) -> Option<Snapshotting> {
        if version < snapshot::FIRST_VERSION {
            eprintln!(
                "tracer: note: --snapshot adds nothing on Python {}.{} (its interpreter keeps no \
                 record of what ran; 3.12+ does): sampling only",
                version.0, version.1
            );
            return None;
        }
        let proven = Arc::new(std::sync::Mutex::new(snapshot::union::Proven::default()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let periodic = every.map(|every| {
            let (proven, stop) = (proven.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut next = std::time::Instant::now() + every;
                let mut warned = false;
                while !stop.load(Ordering::Relaxed) && crate::target::process::is_alive(pid) {
                    if std::time::Instant::now() < next {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    match snapshot::take(pid, snapshot::SnapshotOptions::default()) {
                        Ok(taken) => lock(&proven).add(&taken),
                        Err(e) if !warned && crate::target::process::is_alive(pid) => {
                            eprintln!("tracer: warning: a snapshot of pid {pid} failed: {e:#}");
                            warned = true;
                        }
                        Err(_) => {}
                    }
                    next = std::time::Instant::now() + every;
                }
            })
        });
        Some(Snapshotting {
            pid,
            proven,
            stop,
            periodic,
        })
    }

    /// Take one snapshot now (the target stopped or not), from any thread.
    pub(crate) fn taker(&self) -> impl FnOnce() + Send + 'static {
        let (pid, proven) = (self.pid, self.proven.clone());
        move || match snapshot::take(pid, snapshot::SnapshotOptions::default()) {
            Ok(taken) => lock(&proven).add(&taken),
            Err(e) => eprintln!("tracer: warning: no final snapshot of pid {pid}: {e:#}"),
        }
    }

    /// Stop the periodic snapshots and join everything taken into `result`, through the same
    /// filters as the sampled lines.
    pub(crate) fn finish(self, result: &mut SessionResult, filters: &crate::cli::FilterArgs) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.periodic {
            let _ = thread.join();
        }
        let mut proven = lock(&self.proven).clone();
        if proven.snapshots == 0 {
            eprintln!("tracer: warning: no snapshot of pid {} was taken", self.pid);
            return;
        }
        let info = &result.info;
        match filters.filter(&info.library_dirs, info.stdlib_dir.as_deref()) {
            Ok(filter) => proven.retain_files(|file| !filter.ignores(file)),
            Err(e) => eprintln!("tracer: warning: snapshot lines not filtered: {e:#}"),
        }
        if let Some(warning) = proven.instrumented_warning() {
            eprintln!("{warning}");
        }
        eprintln!("{}", proven.summary(self.pid));
        proven.join_into(&mut result.results, &mut result.info);
    }
}

/// The proven lines so far, whatever a panicking snapshot left.
fn lock(
    proven: &std::sync::Mutex<snapshot::union::Proven>,
) -> std::sync::MutexGuard<'_, snapshot::union::Proven> {
    proven.lock().unwrap_or_else(|e| e.into_inner())
}

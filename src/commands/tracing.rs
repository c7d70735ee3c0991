//! `--snapshot`'s part of `attach` and `run`: periodic snapshots of one process, joined into
//! the sampled results at the end. The session itself, with its status line and flushes, is
//! [`crate::session::trace_one`].

use crate::cli::FilterArgs;
use crate::reader::PyVersion;
use crate::session::SessionResult;
use crate::snapshot;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// `--snapshot`'s snapshots of one process (3.11+): every `--snapshot-every` in a thread of
/// their own while it runs, and any taken at a moment of the caller's (the final one); joined
/// into the sampled results at the end as a union ([`snapshot::union`]).
pub(crate) struct Snapshotting {
    pid: i32,
    proven: Arc<std::sync::Mutex<snapshot::union::Proven>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    periodic: Option<std::thread::JoinHandle<()>>,
}

impl Snapshotting {
    /// Start for `pid` running Python `version` (free-threaded or not); `None` (with a one-line note) when its
    /// interpreter keeps no record of what ran.
    pub(crate) fn start(
        pid: i32,
        version: PyVersion,
        free_threaded: bool,
        every: Option<Duration>,
    ) -> Option<Snapshotting> {
        if free_threaded {
            eprintln!(
                "tracer: note: --snapshot adds nothing on a free-threaded Python {}.{} (its \
                 bytecode keeps no record snapshot reads; builds with the GIL do): sampling only",
                version.major, version.minor
            );
            return None;
        }
        if version < snapshot::FIRST_VERSION {
            eprintln!(
                "tracer: note: --snapshot adds nothing on Python {}.{} (its interpreter's record \
                 of what ran is not read yet; 3.11+'s is): sampling only",
                version.major, version.minor
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
    pub(crate) fn finish(self, result: &mut SessionResult, filters: &FilterArgs) {
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

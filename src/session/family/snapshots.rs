//! `--snapshot` under `--subprocesses`: every traced process of 3.11+ gets its final snapshot
//! when its interpreter starts finalizing, or at its exit if it never does (`os._exit`, a
//! worker killed), through an exit watch armed in it as it is found
//! ([`crate::target::exit_watch`]); one that outlives sampling is snapshotted when its session
//! ends, and its watch released. Every snapshot is added to the family's proven lines, which
//! are joined into every flush and into the final results, as the samples are.
//!
//! A process that cannot be watched (ptrace refused: Yama's `ptrace_scope`, another tracer, no
//! keeper) is said once, in one line, and is still sampled, and snapshotted if alive when its
//! session ends. A snapshot taken while the process runs holds the process's own lock: a watch
//! that fires meanwhile waits for it with the process stopped at its finalization's first step,
//! so that nothing is freed under the read.

use crate::cli::FilterArgs;
use crate::reader::{discover, PyVersion};
use crate::session::SessionResult;
use crate::snapshot::{self, union::Proven};
use crate::target::exit_watch::keeper::Keeper;
use crate::target::exit_watch::{ExitWatch, Moment};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The family's snapshots: the keeper of its watches, and what every snapshot proved.
pub struct Snapshots {
    /// `None` if the keeper could not start: then no process is watched (a watch left armed
    /// by a killed tracer would kill its process at its finalization).
    keeper: Option<Keeper>,
    filters: FilterArgs,
    shared: Arc<Mutex<Shared>>,
}

#[derive(Default)]
struct Shared {
    proven: Proven,
    /// How each process's snapshot went, by pid, from its session's start to its record.
    outcomes: HashMap<i32, String>,
    /// Whether a process that could not be watched was said.
    warned: bool,
    /// Processes snapshotted.
    processes: usize,
}

/// One process's snapshots: its watch, and the lock its snapshots are taken under.
pub struct ProcessSnapshots {
    pid: i32,
    watch: Option<ExitWatch>,
    /// Held while a snapshot of this process is read; set once one was taken.
    taken: Arc<Mutex<Option<&'static str>>>,
    shared: Arc<Mutex<Shared>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a moment is called in the process list.
fn moment_name(moment: Moment) -> &'static str {
    match moment {
        Moment::Finalizing => "finalizing",
        Moment::ExitWithoutFinalizing => "exit",
    }
}

/// Take one snapshot of `pid` into `shared`; false (with a warning) if it failed.
fn take_into(pid: i32, shared: &Mutex<Shared>, when: &str) -> bool {
    let started = std::time::Instant::now();
    match snapshot::take(pid, snapshot::SnapshotOptions::default()) {
        Ok(taken) => {
            let mut shared = lock(shared);
            let before = shared.proven.lines.len();
            shared.proven.add(&taken);
            shared.processes += 1;
            eprintln!(
                "tracer: snapshot of pid {pid} added ({when}, {:.0} ms): {} proven lines ({} new)",
                started.elapsed().as_secs_f64() * 1e3,
                taken.results.counts.len(),
                shared.proven.lines.len() - before
            );
            true
        }
        Err(e) => {
            eprintln!("tracer: warning: no snapshot of pid {pid} ({when}): {e:#}");
            false
        }
    }
}

impl Snapshots {
    /// The family's snapshots, their lines filtered by `filters` as the samples are.
    pub fn start(filters: &FilterArgs) -> Snapshots {
        let keeper = match Keeper::start() {
            Ok(keeper) => Some(keeper),
            Err(e) => {
                eprintln!(
                    "tracer: warning: --snapshot: no process will be watched for its final \
                     snapshot ({e:#}); each is snapshotted when its session ends, if alive"
                );
                None
            }
        };
        Snapshots {
            keeper,
            filters: filters.clone(),
            shared: Arc::default(),
        }
    }

    /// Begin `pid`'s snapshots (its session about to sample): arm its watch. `None` when its
    /// Python (`version`, free-threaded or not) keeps no record of what ran.
    pub fn begin(
        &self,
        pid: i32,
        version: PyVersion,
        free_threaded: bool,
    ) -> Option<ProcessSnapshots> {
        if free_threaded {
            let why = format!(
                "none: a free-threaded Python {}.{}'s bytecode keeps no record snapshot reads",
                version.major, version.minor
            );
            lock(&self.shared).outcomes.insert(pid, why);
            return None;
        }
        if version < snapshot::FIRST_VERSION {
            let why = format!(
                "none: Python {}.{}'s record of what ran is not read yet",
                version.major, version.minor
            );
            lock(&self.shared).outcomes.insert(pid, why);
            return None;
        }
        let taken: Arc<Mutex<Option<&'static str>>> = Arc::default();
        let watch = self.keeper.as_ref().and_then(|keeper| {
            match self.arm(pid, keeper.clone(), taken.clone()) {
                Ok(watch) => Some(watch),
                Err(e) => {
                    let mut shared = lock(&self.shared);
                    if !shared.warned {
                        shared.warned = true;
                        eprintln!(
                            "tracer: warning: --snapshot: pid {pid} cannot be watched for its \
                             final snapshot ({e:#}{}); it is still sampled, and snapshotted when \
                             its session ends if alive (said once; the process list says which)",
                            ptrace_scope_note()
                        );
                    }
                    shared.outcomes.insert(pid, format!("not watched: {e:#}"));
                    None
                }
            }
        });
        if watch.is_some() {
            lock(&self.shared)
                .outcomes
                .insert(pid, "watching".to_owned());
        }
        Some(ProcessSnapshots {
            pid,
            watch,
            taken,
            shared: self.shared.clone(),
        })
    }

    fn arm(
        &self,
        pid: i32,
        keeper: Keeper,
        taken: Arc<Mutex<Option<&'static str>>>,
    ) -> anyhow::Result<ExitWatch> {
        let finalizing = discover::find_target(pid)?
            .finalizing
            .ok_or_else(|| anyhow::anyhow!("the interpreter's runtime was not found"))?;
        let shared = self.shared.clone();
        ExitWatch::start(
            pid,
            finalizing,
            keeper,
            Box::new(move |moment| {
                let mut taken = lock(&taken);
                let name = moment_name(moment);
                if take_into(pid, &shared, name) {
                    *taken = Some(name);
                }
            }),
        )
    }

    /// How `pid`'s snapshot went, for its record once its session has ended (taken out).
    pub fn outcome(&self, pid: i32) -> String {
        lock(&self.shared).outcomes.remove(&pid).unwrap_or_default()
    }

    /// How `pid`'s snapshot stands now (a running process's record in a flush).
    pub fn status(&self, pid: i32) -> String {
        lock(&self.shared)
            .outcomes
            .get(&pid)
            .cloned()
            .unwrap_or_default()
    }

    /// Join every snapshot so far into `merged`, through the same filters as its samples.
    pub fn join_into(&self, merged: &mut SessionResult) {
        let mut proven = lock(&self.shared).proven.clone();
        if proven.snapshots == 0 {
            return;
        }
        let info = &merged.info;
        match self
            .filters
            .filter(&info.library_dirs, info.stdlib_dir.as_deref())
        {
            Ok(filter) => proven.retain_files(|file| !filter.ignores(file)),
            Err(e) => eprintln!("tracer: warning: snapshot lines not filtered: {e:#}"),
        }
        proven.join_into(&mut merged.results, &mut merged.info);
    }

    /// The closing lines: what the snapshots added, and code they could not read.
    pub fn summary(&self) -> String {
        let shared = lock(&self.shared);
        let mut summary = format!(
            "tracer: --snapshot: {} snapshots of {} processes: {} proven lines, {} functions",
            shared.proven.snapshots,
            shared.processes,
            shared.proven.lines.len(),
            shared.proven.functions.len()
        );
        if let Some(warning) = shared.proven.instrumented_warning() {
            summary = format!("{warning}\n{summary}");
        }
        summary
    }
}

impl ProcessSnapshots {
    /// The process's session has ended: if it lives on (sampling ended by `--duration` or a
    /// signal) and no final snapshot was taken, snapshot it now and release its watch;
    /// otherwise wait for its watch to see its end. Records how it went.
    pub fn end(self) {
        let pid = self.pid;
        {
            let mut taken = lock(&self.taken);
            if taken.is_none()
                && crate::target::process::is_alive(pid)
                && take_into(pid, &self.shared, "end of sampling")
            {
                *taken = Some("end of sampling");
            }
        }
        let missed = match self.watch.map(ExitWatch::release) {
            Some(Ok(ended)) => ended.missed,
            Some(Err(e)) => Some(format!("{e:#}")),
            None => None,
        };
        let outcome = match *lock(&self.taken) {
            Some(when) => when.to_owned(),
            None => {
                let previous = lock(&self.shared).outcomes.remove(&pid);
                let why = missed
                    .or(previous.filter(|p| p != "watching"))
                    .unwrap_or_else(|| "not read (the tracer's log says why)".to_owned());
                format!("none: {why}")
            }
        };
        lock(&self.shared).outcomes.insert(pid, outcome);
    }
}

/// Yama's `ptrace_scope`, when it is set and restricts ptrace, as a note for a refused watch.
fn ptrace_scope_note() -> String {
    match std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope") {
        Ok(scope) if scope.trim() != "0" => format!(
            "; Yama's ptrace_scope is {}: run the tracer as root or with CAP_SYS_PTRACE, or as \
             the service's parent",
            scope.trim()
        ),
        _ => String::new(),
    }
}

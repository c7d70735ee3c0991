//! `--subprocesses`: trace a process and every Python descendant (children, grandchildren,
//! workers forked later, as gunicorn and multiprocessing make them), and with `--follow` every
//! later generation of them, into one set of results.
//!
//! Each process gets its own session (reader, sampler, aggregator) on a scoped thread, so code
//! ids never mix. The main thread polls the root's descendants, attaches to a new one once it
//! has been seen twice unchanged (a fork about to exec would be read as its parent's copy),
//! and keeps the family's one flush timer: each flush asks every running session for its
//! results at that moment and merges them with every finished process's, so a flush is the
//! results so far, and its stats add up (samples are the processes' samples summed).
//!
//! A family can be hostile too: a fork storm must not make the tracer spawn a thread per
//! process or keep every process's results. So at most [`FamilyOptions::max_processes`]
//! processes are traced at once (others are listed as not traced); a finished process's results
//! are folded into the family's at once, keeping memory to the distinct lines and functions
//! seen; and the pids remembered are only those still alive, so a reused pid is a new process.
//!
//! With `--snapshot`, each process's snapshots ([`snapshots`]) are joined into every flush and
//! into the final results, and its record says when its snapshot was taken.

mod snapshots;
pub use snapshots::{ProcessSnapshots, Snapshots};

use crate::output::{self, ProcessRecord};
use crate::session::flush::FlushWriter;
use crate::session::sampler::StopReason;
use crate::session::status::StatusCounters;
use crate::session::{FlushHandle, SessionResult};
use crate::target::attach::{Attached, TargetInfo};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the root's descendants are looked for.
const POLL: Duration = Duration::from_millis(100);

/// The most processes listed; later ones are counted, not listed.
pub const MAX_PROCESS_RECORDS: usize = 10_000;

/// How a family is traced.
pub struct FamilyOptions {
    /// The most processes traced at once (the root included).
    pub max_processes: usize,
    /// Write a merged flush this often.
    pub flush_every: Option<Duration>,
    /// When sampling of every process ends (`--duration`).
    pub deadline: Option<Instant>,
    /// `--snapshot`: the snapshots of every process, joined into the results.
    pub snapshots: Option<Arc<Snapshots>>,
}

/// Traces one process of the family: attaches first when given no [`Attached`] (a new
/// descendant), samples for at most the duration, hands the callback a handle on its
/// results so far once sampling has begun, and returns the results when the process exits, the
/// duration passes or a signal stops it.
pub type TraceOne<'a> = dyn Fn(
        i32,
        Option<Attached>,
        Option<Duration>,
        &mut dyn FnMut(FlushHandle),
    ) -> anyhow::Result<SessionResult>
    + Sync
    + 'a;

fn record_of(
    pid: i32,
    parent: Option<i32>,
    generation: u32,
    r: &SessionResult,
    ended: String,
) -> ProcessRecord {
    ProcessRecord {
        pid,
        parent,
        generation,
        command_line: r.info.target.command_line.clone(),
        python_version: r.info.target.python_version.clone(),
        samples: r.info.stats.samples,
        errors: r.info.stats.errors,
        duration_s: r.info.stats.duration_s,
        ended,
        snapshot: String::new(),
    }
}

fn untraced(pid: i32, parent: Option<i32>, generation: u32, why: String) -> ProcessRecord {
    ProcessRecord {
        pid,
        parent,
        generation,
        command_line: crate::target::process::command_line(pid).unwrap_or_default(),
        ended: why,
        ..ProcessRecord::default()
    }
}

/// A process being traced.
struct Running {
    pid: i32,
    parent: Option<i32>,
    generation: u32,
    /// Set once its session has begun sampling.
    flushes: Option<FlushHandle>,
}

/// What the family's sessions share.
#[derive(Default)]
struct FamilyState {
    /// By session number: a pid may come back as another process.
    running: BTreeMap<u64, Running>,
    sessions_started: u64,
    /// Every finished process's results, of every generation, added up as each ends.
    finished: Option<SessionResult>,
    finished_count: usize,
    /// The current generation's root session, and once it ended, how.
    root_session: u64,
    root_outcome: Option<anyhow::Result<StopReason>>,
    /// Every process finished or not traced (running ones are listed as they are met).
    records: Vec<ProcessRecord>,
    records_dropped: u64,
    not_traced: u64,
    /// `--snapshot`'s, for what each record says of its process's snapshot.
    snapshots: Option<Arc<Snapshots>>,
}

impl FamilyState {
    fn record(&mut self, record: ProcessRecord) {
        if self.records.len() < MAX_PROCESS_RECORDS {
            self.records.push(record);
        } else {
            self.records_dropped += 1;
        }
    }

    fn finish(&mut self, session: u64, result: anyhow::Result<SessionResult>) {
        let Some(running) = self.running.remove(&session) else {
            return;
        };
        let (pid, parent, generation) = (running.pid, running.parent, running.generation);
        let is_root = session == self.root_session;
        match result {
            Ok(result) => {
                let ended = serde_json::to_value(result.stop_reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let mut record = record_of(pid, parent, generation, &result, ended);
                if let Some(snapshots) = &self.snapshots {
                    record.snapshot = snapshots.outcome(pid);
                }
                self.record(record);
                if is_root {
                    self.root_outcome = Some(Ok(result.stop_reason));
                }
                self.finished_count += 1;
                match &mut self.finished {
                    Some(all) => all.absorb(&result),
                    None => self.finished = Some(result),
                }
            }
            Err(e) => {
                let mut record = untraced(pid, parent, generation, format!("{e:#}"));
                if let Some(snapshots) = &self.snapshots {
                    record.snapshot = snapshots.outcome(pid);
                }
                self.record(record);
                if is_root {
                    self.root_outcome = Some(Err(e));
                } else {
                    eprintln!("tracer: warning: pid {pid} could not be traced: {e:#}");
                }
            }
        }
    }

    /// The records of every process met, finished, untraced or running (these with their
    /// results taken now, if any), by generation and pid.
    fn all_records(&self, taken: &HashMap<u64, SessionResult>) -> Vec<ProcessRecord> {
        let mut records = self.records.clone();
        for (session, r) in &self.running {
            if records.len() >= MAX_PROCESS_RECORDS {
                break;
            }
            let mut record = match taken.get(session) {
                Some(so_far) => {
                    record_of(r.pid, r.parent, r.generation, so_far, "running".to_owned())
                }
                None => ProcessRecord {
                    pid: r.pid,
                    parent: r.parent,
                    generation: r.generation,
                    command_line: crate::target::process::command_line(r.pid).unwrap_or_default(),
                    ended: "attaching".to_owned(),
                    ..ProcessRecord::default()
                },
            };
            if let Some(snapshots) = &self.snapshots {
                record.snapshot = snapshots.status(r.pid);
            }
            records.push(record);
        }
        records.sort_by_key(|r| (r.generation, r.pid));
        records
    }
}

/// A traced family, across `--follow`'s generations: every process's results, and the
/// family's one flush timer.
pub struct Family {
    options: FamilyOptions,
    path: PathBuf,
    started: Instant,
    generation: u32,
    /// The first root's description: what the merged results say they are of.
    target: Option<TargetInfo>,
    state: Mutex<FamilyState>,
    next_flush: Option<Instant>,
    last_stop: StopReason,
}

impl Family {
    /// A family whose results and flushes go to `path`, the process list beside it.
    pub fn new(options: FamilyOptions, path: PathBuf) -> Family {
        let next_flush = options.flush_every.map(|every| Instant::now() + every);
        let state = FamilyState {
            snapshots: options.snapshots.clone(),
            ..FamilyState::default()
        };
        Family {
            options,
            path,
            started: Instant::now(),
            generation: 0,
            target: None,
            state: Mutex::new(state),
            next_flush,
            last_stop: StopReason::Signal,
        }
    }

    /// Trace `root` and its Python descendants, one more generation, until every session has
    /// ended (each ends on its process's exit, the deadline or `stop`), writing merged flushes
    /// of the whole family so far to `flushes`. Returns how the root's session ended; fails
    /// only if it failed.
    pub fn trace_generation(
        &mut self,
        root: Attached,
        stop: &AtomicBool,
        counters: &StatusCounters,
        flushes: &mut FlushWriter,
        trace: &TraceOne,
    ) -> anyhow::Result<StopReason> {
        self.generation += 1;
        let generation = self.generation;
        if self.target.is_none() {
            self.target = Some(root.info.clone());
        }
        let root_pid = root.info.pid;
        let sessions = AtomicUsize::new(0);
        let mut next_flush = self.next_flush;
        let family = &*self;
        let remaining = || {
            family
                .options
                .deadline
                .map(|d| d.saturating_duration_since(Instant::now()))
        };
        std::thread::scope(|scope| {
            let start_session = |pid: i32, attached: Option<Attached>| {
                let (state, sessions) = (&family.state, &sessions);
                let session = {
                    let mut state = state.lock().unwrap();
                    state.sessions_started += 1;
                    let session = state.sessions_started;
                    if pid == root_pid {
                        state.root_session = session;
                        state.root_outcome = None;
                    }
                    state.running.insert(
                        session,
                        Running {
                            pid,
                            parent: crate::target::process::parent(pid),
                            generation,
                            flushes: None,
                        },
                    );
                    session
                };
                sessions.fetch_add(1, Ordering::SeqCst);
                counters.processes.fetch_add(1, Ordering::SeqCst);
                let duration = remaining();
                scope.spawn(move || {
                    let result = trace(pid, attached, duration, &mut |flushes| {
                        if let Some(running) = state.lock().unwrap().running.get_mut(&session) {
                            running.flushes = Some(flushes);
                        }
                    });
                    state.lock().unwrap().finish(session, result);
                    counters.processes.fetch_sub(1, Ordering::SeqCst);
                    sessions.fetch_sub(1, Ordering::SeqCst);
                });
            };
            start_session(root_pid, Some(root));
            let mut known: HashSet<i32> = HashSet::new();
            let mut first_seen: HashMap<i32, (String, String)> = HashMap::new();
            let mut warned_limit = false;
            // Bounded: ends when every session has ended.
            while sessions.load(Ordering::SeqCst) > 0 {
                let sampling = !stop.load(Ordering::Relaxed)
                    && family.options.deadline.is_none_or(|d| Instant::now() < d);
                if sampling {
                    let descendants: HashSet<i32> = crate::target::process::descendants(root_pid)
                        .into_iter()
                        .collect();
                    // Only live descendants are remembered: a pid the kernel hands out again
                    // is a new process.
                    known.retain(|pid| descendants.contains(pid));
                    first_seen.retain(|pid, _| descendants.contains(pid));
                    for &pid in &descendants {
                        if known.contains(&pid) {
                            continue;
                        }
                        let identity = (
                            crate::target::process::executable(pid)
                                .map(|p| p.to_string_lossy().into_owned())
                                .unwrap_or_default(),
                            crate::target::process::command_line(pid).unwrap_or_default(),
                        );
                        if first_seen.get(&pid) != Some(&identity) {
                            first_seen.insert(pid, identity);
                            continue;
                        }
                        first_seen.remove(&pid);
                        known.insert(pid);
                        if !crate::target::process::python_mappings(pid)
                            .is_ok_and(|m| !m.is_empty())
                        {
                            continue;
                        }
                        let max = family.options.max_processes;
                        if sessions.load(Ordering::SeqCst) >= max {
                            if !warned_limit {
                                warned_limit = true;
                                eprintln!(
                                    "tracer: warning: --subprocesses: {max} processes traced at \
                                     once, the --max-processes limit; further ones are listed \
                                     in {} as not traced (raise --max-processes to trace them)",
                                    processes_path(&family.path).display()
                                );
                            }
                            let mut state = family.state.lock().unwrap();
                            state.not_traced += 1;
                            state.record(untraced(
                                pid,
                                crate::target::process::parent(pid),
                                generation,
                                format!("not traced: --max-processes {max} reached"),
                            ));
                            continue;
                        }
                        eprintln!(
                            "tracer: --subprocesses: pid {pid} ({})",
                            crate::target::process::command_line(pid).unwrap_or_default()
                        );
                        start_session(pid, None);
                    }
                }
                if let (Some(every), Some(due)) = (family.options.flush_every, next_flush) {
                    if Instant::now() >= due {
                        next_flush = Some(Instant::now() + every);
                        family.flush(flushes, counters);
                    }
                }
                std::thread::sleep(POLL);
            }
        });
        self.next_flush = next_flush;
        let outcome = self
            .state
            .lock()
            .unwrap()
            .root_outcome
            .take()
            .unwrap_or_else(|| Err(anyhow::anyhow!("the root process's session did not end")));
        if let Ok(reason) = &outcome {
            self.last_stop = *reason;
        }
        // What is left when the tracer is killed while waiting for the next generation is
        // everything so far, not the last timed flush.
        if self.options.flush_every.is_some() {
            self.flush(flushes, counters);
        }
        outcome
    }

    /// Write the family's results so far and the process list.
    fn flush(&self, flushes: &mut FlushWriter, counters: &StatusCounters) {
        if let Some(merged) = self.so_far() {
            write_records(&self.path, &merged.info.processes);
            flushes.write(merged);
            counters.flushes.store(flushes.written, Ordering::Relaxed);
        }
    }

    /// Every process's results so far, merged: the finished ones' and each running one's at
    /// this moment; `None` before any process has results.
    fn so_far(&self) -> Option<SessionResult> {
        let handles: Vec<(u64, FlushHandle)> = self
            .state
            .lock()
            .unwrap()
            .running
            .iter()
            .filter_map(|(session, r)| Some((*session, r.flushes.clone()?)))
            .collect();
        // Taken without the lock, so that sessions ending meanwhile are not held up.
        let taken: Vec<(u64, SessionResult)> = handles
            .into_iter()
            .filter_map(|(session, h)| Some((session, h.take()?)))
            .collect();
        let state = self.state.lock().unwrap();
        // A session that ended since its results were taken is in `finished` now, whole.
        let taken: HashMap<u64, SessionResult> = taken
            .into_iter()
            .filter(|(session, _)| state.running.contains_key(session))
            .collect();
        let records = state.all_records(&taken);
        let mut parts = state.finished.iter().chain(taken.values());
        let mut merged = parts.next()?.copy();
        for part in parts {
            merged.absorb(part);
        }
        drop(state);
        self.describe(&mut merged, records);
        merged.stop_reason = StopReason::Signal;
        Some(merged)
    }

    /// The merged results say they are of the first root, over the family's wall time, and
    /// list the processes they add up.
    fn describe(&self, merged: &mut SessionResult, records: Vec<ProcessRecord>) {
        if let Some(target) = &self.target {
            merged.info.target = target.clone();
        }
        merged.info.stats.duration_s = self.started.elapsed().as_secs_f64();
        merged.info.processes = records;
        if let Some(snapshots) = &self.options.snapshots {
            snapshots.join_into(merged);
        }
    }

    /// Every process's results merged, once every generation has ended (the process list
    /// written beside them); `None` if no process was traced.
    pub fn results(self) -> Option<SessionResult> {
        let started = self.started;
        let state = self.state.into_inner().unwrap();
        let records = state.all_records(&HashMap::new());
        write_records(&self.path, &records);
        let mut note = format!(
            "tracer: --subprocesses: results of {} processes merged{}; each listed in {}",
            state.finished_count,
            if self.generation > 1 {
                format!(" ({} generations)", self.generation)
            } else {
                String::new()
            },
            processes_path(&self.path).display()
        );
        if state.not_traced > 0 {
            note += &format!(
                "; {} not traced (--max-processes {})",
                state.not_traced, self.options.max_processes
            );
        }
        if state.records_dropped > 0 {
            note += &format!(
                "; {} processes past the first {MAX_PROCESS_RECORDS} not listed",
                state.records_dropped
            );
        }
        eprintln!("{note}");
        if let Some(snapshots) = &self.options.snapshots {
            eprintln!("{}", snapshots.summary());
        }
        let mut merged = state.finished?;
        if let Some(target) = &self.target {
            merged.info.target = target.clone();
        }
        merged.info.stats.duration_s = started.elapsed().as_secs_f64();
        merged.info.processes = records;
        merged.stop_reason = self.last_stop;
        if let Some(snapshots) = &self.options.snapshots {
            snapshots.join_into(&mut merged);
        }
        Some(merged)
    }
}

/// Write the process list beside `path`; a failure is a warning (the results are written
/// all the same, and list the processes too in JSON).
fn write_records(path: &Path, records: &[ProcessRecord]) {
    let written = serde_json::to_vec_pretty(records)
        .map_err(anyhow::Error::from)
        .and_then(|json| {
            output::write_atomically(&processes_path(path), |w| {
                Ok(std::io::Write::write_all(w, &json)?)
            })
        });
    if let Err(e) = written {
        eprintln!("tracer: warning: process list not written ({e:#})");
    }
}

/// Where `--subprocesses` lists the processes it met: `tracer-processes-STEM.json` beside the
/// output `STEM.EXT` (`tracer-processes-.coverage.json` beside `.coverage`), a name no
/// coverage.py data pattern (`.coverage.*`) matches.
pub fn processes_path(path: &Path) -> PathBuf {
    let name = path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tracer".to_owned());
    path.with_file_name(format!("tracer-processes-{name}.json"))
}

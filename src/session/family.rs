//! `--subprocesses`: trace a process and every Python descendant (children, grandchildren,
//! workers forked later, as gunicorn and multiprocessing make them).
//!
//! Each process gets its own session (reader, sampler, aggregator) on a scoped thread, so code
//! ids never mix. The main thread polls the root's descendants, attaches to a new one once it
//! has been seen twice unchanged (a fork about to exec would be read as its parent's copy),
//! writes merged flushes, and keeps `OUTPUT.processes.json` listing every process met.
//!
//! A family can be hostile too: a fork storm must not make the tracer spawn a thread per
//! process or keep every process's results. So at most [`FamilyOptions::max_processes`]
//! processes are traced at once (others are listed as not traced); a finished process's results
//! are folded into the family's at once, keeping memory to the distinct lines and functions
//! seen; and the pids remembered are only those still alive, so a reused pid is a new process.

use crate::output;
use crate::session::flush::FlushWriter;
use crate::session::status::StatusCounters;
use crate::session::SessionResult;
use crate::target::attach::Attached;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the root's descendants are looked for.
const POLL: Duration = Duration::from_millis(100);

/// The most processes listed in `OUTPUT.processes.json`; later ones are counted, not listed.
pub const MAX_PROCESS_RECORDS: usize = 10_000;

/// How a family is traced.
pub struct FamilyOptions {
    /// The most processes traced at once (the root included).
    pub max_processes: usize,
    /// Write a merged flush this often.
    pub flush_every: Option<Duration>,
    /// When sampling of every process ends (`--duration`).
    pub deadline: Option<Instant>,
}

/// Traces one process of the family: attaches first when given no [`Attached`] (a new
/// descendant), samples for at most the duration, hands each snapshot to the callback, and
/// returns the results when the process exits, the duration passes or a signal stops it.
pub type TraceOne<'a> = dyn Fn(
        i32,
        Option<Attached>,
        Option<Duration>,
        &mut dyn FnMut(SessionResult),
    ) -> anyhow::Result<SessionResult>
    + Sync
    + 'a;

/// One process met in a `--subprocesses` run, as listed beside the results.
#[derive(Debug, serde::Serialize)]
struct ProcessRecord {
    pid: i32,
    parent: Option<i32>,
    command_line: String,
    python_version: String,
    samples: u64,
    errors: u64,
    duration_s: f64,
    /// `target_exited`, `duration`, `signal`, `running`, the error that ended it, or why it
    /// was not traced.
    ended: String,
}

impl ProcessRecord {
    fn of_result(pid: i32, parent: Option<i32>, r: &SessionResult, ended: String) -> ProcessRecord {
        ProcessRecord {
            pid,
            parent,
            command_line: r.info.target.command_line.clone(),
            python_version: r.info.target.python_version.clone(),
            samples: r.info.stats.samples,
            errors: r.info.stats.errors,
            duration_s: r.info.stats.duration_s,
            ended,
        }
    }

    fn untraced(pid: i32, parent: Option<i32>, why: String) -> ProcessRecord {
        ProcessRecord {
            pid,
            parent,
            command_line: crate::target::process::command_line(pid).unwrap_or_default(),
            python_version: String::new(),
            samples: 0,
            errors: 0,
            duration_s: 0.0,
            ended: why,
        }
    }

    fn of(pid: i32, parent: Option<i32>, result: &anyhow::Result<SessionResult>) -> ProcessRecord {
        match result {
            Ok(r) => {
                let ended = serde_json::to_value(r.stop_reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                ProcessRecord::of_result(pid, parent, r, ended)
            }
            Err(e) => ProcessRecord::untraced(pid, parent, format!("{e:#}")),
        }
    }
}

/// A process being traced.
struct Running {
    parent: Option<i32>,
    /// Its latest snapshot, for merged snapshots of the family.
    latest: Option<SessionResult>,
}

/// What the family's sessions share.
#[derive(Default)]
struct FamilyState {
    running: BTreeMap<i32, Running>,
    /// The root's results once it ended.
    root: Option<anyhow::Result<SessionResult>>,
    /// Every other finished process's results, added up as each ends.
    descendants: Option<SessionResult>,
    descendants_merged: usize,
    records: Vec<ProcessRecord>,
    records_dropped: u64,
    not_traced: u64,
}

impl FamilyState {
    fn record(&mut self, record: ProcessRecord) {
        if self.records.len() < MAX_PROCESS_RECORDS {
            self.records.push(record);
        } else {
            self.records_dropped += 1;
        }
    }

    fn finish(&mut self, pid: i32, root_pid: i32, result: anyhow::Result<SessionResult>) {
        let parent = self.running.remove(&pid).and_then(|r| r.parent);
        self.record(ProcessRecord::of(pid, parent, &result));
        if pid == root_pid {
            self.root = Some(result);
            return;
        }
        match result {
            Ok(result) => {
                self.descendants_merged += 1;
                match &mut self.descendants {
                    Some(all) => all.absorb(&result),
                    None => self.descendants = Some(result),
                }
            }
            Err(e) => eprintln!("tracer: warning: pid {pid} could not be traced: {e:#}"),
        }
    }

    /// Everything so far, merged: the root first (its target describes the results), then
    /// the finished descendants, then the running ones' latest snapshots.
    fn merged(&self, root_pid: i32) -> Option<SessionResult> {
        let root_finished = self.root.as_ref().and_then(|r| r.as_ref().ok());
        let root_running = self.running.get(&root_pid).and_then(|r| r.latest.as_ref());
        let others = self
            .running
            .iter()
            .filter(|(pid, _)| **pid != root_pid)
            .filter_map(|(_, r)| r.latest.as_ref());
        let mut parts = root_finished
            .into_iter()
            .chain(root_running)
            .chain(self.descendants.as_ref())
            .chain(others);
        let mut merged = parts.next()?.copy();
        for part in parts {
            merged.absorb(part);
        }
        Some(merged)
    }

    /// Every process met, finished or running, by pid.
    fn write_records(&self, path: &Path) {
        let mut records: Vec<&ProcessRecord> = self.records.iter().collect();
        let running: Vec<ProcessRecord> = self
            .running
            .iter()
            .filter_map(|(pid, r)| {
                let latest = r.latest.as_ref()?;
                Some(ProcessRecord::of_result(
                    *pid,
                    r.parent,
                    latest,
                    "running".to_owned(),
                ))
            })
            .collect();
        records.extend(&running);
        records.sort_by_key(|r| r.pid);
        let written = serde_json::to_vec_pretty(&records)
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
}

/// Where `--subprocesses` lists the processes it met: `PATH.processes.json`.
pub fn processes_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tracer".to_owned());
    path.with_file_name(format!("{name}.processes.json"))
}

/// Trace `root` and its Python descendants until every session has ended (each ends on its
/// process's exit, the deadline or `stop`), writing merged flushes to `flushes` and the
/// process list beside `path`. Returns all the results merged; fails only if the root's
/// session failed.
pub fn trace_family(
    root: Attached,
    options: &FamilyOptions,
    path: &Path,
    stop: &AtomicBool,
    counters: &StatusCounters,
    flushes: &mut FlushWriter,
    trace: &TraceOne,
) -> anyhow::Result<SessionResult> {
    let root_pid = root.info.pid;
    let state = Mutex::new(FamilyState::default());
    let sessions = AtomicUsize::new(0);
    let remaining = || {
        options
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    };
    std::thread::scope(|scope| {
        let start_session = |pid: i32, attached: Option<Attached>| {
            let (state, sessions) = (&state, &sessions);
            let parent = crate::target::process::parent(pid);
            state.lock().unwrap().running.insert(
                pid,
                Running {
                    parent,
                    latest: None,
                },
            );
            sessions.fetch_add(1, Ordering::SeqCst);
            counters.processes.fetch_add(1, Ordering::SeqCst);
            let duration = remaining();
            scope.spawn(move || {
                let result = trace(pid, attached, duration, &mut |snapshot| {
                    if let Some(running) = state.lock().unwrap().running.get_mut(&pid) {
                        running.latest = Some(snapshot);
                    }
                });
                state.lock().unwrap().finish(pid, root_pid, result);
                counters.processes.fetch_sub(1, Ordering::SeqCst);
                sessions.fetch_sub(1, Ordering::SeqCst);
            });
        };
        start_session(root_pid, Some(root));
        let mut known: HashSet<i32> = HashSet::new();
        let mut first_seen: HashMap<i32, (String, String)> = HashMap::new();
        let mut warned_limit = false;
        let mut next_flush = options.flush_every.map(|every| Instant::now() + every);
        // Bounded: ends when every session has ended.
        while sessions.load(Ordering::SeqCst) > 0 {
            let sampling = !stop.load(Ordering::Relaxed)
                && options.deadline.is_none_or(|d| Instant::now() < d);
            if sampling {
                let descendants: HashSet<i32> = crate::target::process::descendants(root_pid)
                    .into_iter()
                    .collect();
                // Only live descendants are remembered: a pid the kernel hands out again is
                // a new process.
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
                    if !crate::target::process::python_mappings(pid).is_ok_and(|m| !m.is_empty()) {
                        continue;
                    }
                    if sessions.load(Ordering::SeqCst) >= options.max_processes {
                        if !warned_limit {
                            warned_limit = true;
                            eprintln!(
                                "tracer: warning: --subprocesses: {} processes traced at once, \
                                 the --max-processes limit; further ones are listed in {} as not \
                                 traced (raise --max-processes to trace them)",
                                options.max_processes,
                                processes_path(path).display()
                            );
                        }
                        let mut state = state.lock().unwrap();
                        state.not_traced += 1;
                        state.record(ProcessRecord::untraced(
                            pid,
                            crate::target::process::parent(pid),
                            format!(
                                "not traced: --max-processes {} reached",
                                options.max_processes
                            ),
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
            if let (Some(every), Some(due)) = (options.flush_every, next_flush) {
                if Instant::now() >= due {
                    next_flush = Some(Instant::now() + every);
                    let merged = state.lock().unwrap().merged(root_pid);
                    if let Some(merged) = merged {
                        flushes.write(merged);
                        counters.flushes.store(flushes.written, Ordering::Relaxed);
                    }
                    state.lock().unwrap().write_records(path);
                }
            }
            std::thread::sleep(POLL);
        }
    });
    let mut state = state.into_inner().unwrap();
    state.write_records(path);
    let root = state
        .root
        .take()
        .unwrap_or_else(|| Err(anyhow::anyhow!("the root process's session did not end")))?;
    let mut merged = root;
    if let Some(descendants) = &state.descendants {
        // The root's stop reason is the run's.
        let stop_reason = merged.stop_reason;
        merged.absorb(descendants);
        merged.stop_reason = stop_reason;
    }
    let mut note = format!(
        "tracer: --subprocesses: results of {} processes merged (pid {root_pid} and {} \
         descendants); each listed in {}",
        1 + state.descendants_merged,
        state.descendants_merged,
        processes_path(path).display()
    );
    if state.not_traced > 0 {
        note += &format!(
            "; {} not traced (--max-processes {})",
            state.not_traced, options.max_processes
        );
    }
    if state.records_dropped > 0 {
        note += &format!(
            "; {} processes past the first {MAX_PROCESS_RECORDS} not listed",
            state.records_dropped
        );
    }
    eprintln!("{note}");
    Ok(merged)
}

//! `tracer attach`: trace a running process (found by pid or by name) until a duration, a
//! signal or its exit; with `--follow`, the next process of the same name after it; with
//! `--subprocesses`, its whole family.

use super::tracing::Snapshotting;
use crate::cli::{FilterArgs, TargetArgs, TraceArgs};
use crate::session::family;
use crate::session::sampler::{self, LiveCounters};
use crate::session::{self, report_stop, trace_one, Flushes, Flushing, SessionResult, StopSignals};
use crate::snapshot;
use crate::source::Sources;
use crate::target::{attach, process};
use anyhow::Context;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl TargetArgs {
    /// The pid to trace: --pid, or the Python process --name finds (waiting up to --wait, or
    /// until `stop` is set).
    pub(crate) fn select(&self, stop: &AtomicBool) -> anyhow::Result<i32> {
        if self.wait.is_some() && self.name.is_none() {
            anyhow::bail!("--wait waits for a process matching --name PATTERN: give --name");
        }
        if let Some(pid) = self.pid {
            return Ok(pid);
        }
        let pattern = self.name.as_deref().unwrap_or_default();
        if pattern.is_empty() {
            anyhow::bail!("--name needs a non-empty pattern to look for in command lines");
        }
        let wait = Duration::from_secs_f64(self.wait.unwrap_or(0.0));
        let mut search = Search::new(pattern);
        let Some(pid) = search.wait_for_match(wait, stop) else {
            let waited = if self.wait.is_some() {
                format!(" after waiting {}s", wait.as_secs_f64())
            } else {
                String::new()
            };
            if search.passed_over.is_empty() {
                anyhow::bail!(
                    "no process's command line contains {pattern:?}{waited}: check with \
                     `pgrep -af {pattern:?}`, or wait for it with --wait SECS"
                );
            }
            anyhow::bail!(
                "no Python process's command line contains {pattern:?}{waited}; {} that do \
                 are not Python (pids {}): make the pattern name the Python process, or wait \
                 for it with --wait SECS",
                search.passed_over.len(),
                search
                    .passed_over
                    .iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        Ok(pid)
    }
}

/// A search by command line for a Python process: matches that are not Python (a shell
/// wrapper, a supervisor, an entry script's `bash -c`) are passed over, each said once.
struct Search<'a> {
    pattern: &'a str,
    /// Matches passed over as not Python, in the order met.
    passed_over: Vec<i32>,
    /// How many of `passed_over` were said.
    announced: usize,
}

impl<'a> Search<'a> {
    fn new(pattern: &'a str) -> Search<'a> {
        Search {
            pattern,
            passed_over: Vec::new(),
            announced: 0,
        }
    }

    /// The Python processes matching now, oldest first, `excluded` left out.
    fn python_matches(&mut self, excluded: &[i32]) -> Vec<i32> {
        let (python, others): (Vec<i32>, Vec<i32>) =
            crate::target::process::find_by_command_line(self.pattern)
                .into_iter()
                .filter(|pid| !excluded.contains(pid))
                .partition(|&pid| may_be_python(pid));
        for pid in others {
            if !self.passed_over.contains(&pid) {
                self.passed_over.push(pid);
            }
        }
        python
    }

    /// Say, in one line, the matches passed over since the last time.
    fn announce_passed_over(&mut self) {
        let new = &self.passed_over[self.announced..];
        if new.is_empty() {
            return;
        }
        let described: Vec<String> = new
            .iter()
            .map(|&pid| {
                format!(
                    "pid {pid} ({})",
                    crate::target::process::command_line(pid).unwrap_or_default()
                )
            })
            .collect();
        eprintln!(
            "tracer: passing over {}: {} {:?} but not Python",
            described.join(", "),
            if new.len() == 1 { "matches" } else { "match" },
            self.pattern
        );
        self.announced = self.passed_over.len();
    }

    /// The oldest Python process matching, polled until `wait` passes or `stop` is set.
    /// Several matches (a pre-fork server's workers) pick the oldest, the master.
    fn wait_for_match(&mut self, wait: Duration, stop: &AtomicBool) -> Option<i32> {
        let start = std::time::Instant::now();
        let mut announced = false;
        loop {
            let found = self.python_matches(&[]);
            if let Some(&pid) = found.first() {
                self.announce_passed_over();
                if found.len() > 1 {
                    eprintln!(
                        "tracer: {} Python processes match {:?}; tracing the oldest, pid {pid}",
                        found.len(),
                        self.pattern
                    );
                }
                return Some(pid);
            }
            // Not found: the error names what was passed over.
            if start.elapsed() >= wait || stop.load(Ordering::Relaxed) {
                return None;
            }
            if !announced {
                eprintln!(
                    "tracer: waiting up to {}s for a Python process matching {:?}",
                    wait.as_secs_f64(),
                    self.pattern
                );
                announced = true;
            }
            self.announce_passed_over();
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether `pid` maps a Python interpreter, or may (its maps cannot be read: attaching
/// says why, better than passing over it).
fn may_be_python(pid: i32) -> bool {
    match crate::target::process::python_mappings(pid) {
        Ok(mappings) => !mappings.is_empty(),
        Err(e) => e.kind() == std::io::ErrorKind::PermissionDenied,
    }
}

/// `tracer attach`: trace the process `target` names as `args` say; the exit status.
pub fn attach_command(target: &TargetArgs, args: &TraceArgs) -> anyhow::Result<i32> {
    let signals = StopSignals::install()?;
    if args.snapshot_every.is_some() && (target.subprocesses || target.follow) {
        anyhow::bail!(
            "--snapshot-every follows one process: leave out --subprocesses and --follow (with \
             --snapshot, a family's processes are each snapshotted once, as they end)"
        );
    }
    let pid = target.select(&signals.stop)?;
    let attached = if target.wait.is_some() {
        // Found by --name while waiting: it may have started a moment ago.
        attach::attach_when_ready(pid, args.blocking, args.reader, Duration::from_secs(10))?
    } else {
        attach::attach_with(pid, args.blocking, args.reader)?
    };
    let path = session::output_path(args.output.as_ref(), args.format, pid);
    session::check_output_writable(&path, args.format)?;
    args.plugin.write_options().check(args.format)?;
    // What --follow looks for once the target exits: --name's pattern, else the target's own
    // command line.
    let follow_pattern = target.follow.then(|| {
        target
            .name
            .clone()
            .unwrap_or_else(|| attached.info.command_line.clone())
    });
    let version = attached.version;
    let snapshotting = args.snapshot_every.and_then(|every| {
        Snapshotting::start(
            pid,
            version,
            attached.info.free_threaded,
            Some(Duration::from_secs_f64(every)),
        )
    });
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let mut flushing = Flushing::start(args, path.clone(), Sources::of_process(pid, version));
    let counters = flushing.counters.clone();
    // `--snapshot` of a family: each process's final snapshot, when it finalizes or exits, or
    // when its session ends if it lives on (src/session/family/snapshots.rs).
    let family_snapshots = (args.snapshot && target.subprocesses)
        .then(|| Arc::new(family::Snapshots::start(&args.filters)));
    let trace_in_family = |pid: i32,
                           attached: Option<attach::Attached>,
                           duration: Option<Duration>,
                           on_start: &mut dyn FnMut(session::FlushHandle)|
     -> anyhow::Result<SessionResult> {
        let attached = match attached {
            Some(attached) => attached,
            // Forked a moment ago: its interpreter is its parent's copy, readable at once;
            // one that exec'd needs a moment.
            None => {
                attach::attach_when_ready(pid, args.blocking, args.reader, Duration::from_secs(2))?
            }
        };
        let snapshots = family_snapshots
            .as_ref()
            .and_then(|s| s.begin(pid, attached.version, attached.info.free_threaded));
        // Its own counters, for its own flushes; the status line sees the family's sum.
        let live = Arc::new(LiveCounters::adding_to(counters.sampler.clone()));
        let traced = trace_one(
            attached,
            args,
            duration,
            &signals,
            &live,
            Flushes::OnDemand(on_start),
        );
        if let Some(snapshots) = snapshots {
            snapshots.end();
        }
        traced
    };
    let mut family = target.subprocesses.then(|| {
        family::Family::new(
            family::FamilyOptions {
                max_processes: usize::from(target.max_processes),
                flush_every: args.flush_every.map(Duration::from_secs_f64),
                deadline,
                snapshots: family_snapshots.clone(),
            },
            path.clone(),
        )
    });
    // Without --subprocesses: every generation's results so far.
    let mut gathered: Option<SessionResult> = None;
    let mut traced_pids = Vec::new();
    let mut next = Some(attached);
    let mut last_pid = pid;
    while let Some(attached) = next.take() {
        last_pid = attached.info.pid;
        traced_pids.push(last_pid);
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if remaining.is_some_and(|r| r.is_zero()) {
            break;
        }
        let traced = if let Some(family) = family.as_mut() {
            family.trace_generation(
                attached,
                &signals.stop,
                &counters,
                &mut flushing.writer,
                &trace_in_family,
            )
        } else {
            counters.processes.store(1, Ordering::Relaxed);
            let traced = trace_one(
                attached,
                args,
                remaining,
                &signals,
                &counters.sampler,
                Flushes::Timed(&mut |flush| match &gathered {
                    None => flushing.write(flush),
                    Some(earlier) => {
                        let mut merged = earlier.copy();
                        merged.absorb(&flush);
                        flushing.write(merged)
                    }
                }),
            );
            counters.processes.store(0, Ordering::Relaxed);
            traced.map(|result| {
                let reason = result.stop_reason;
                gathered = Some(match gathered.take() {
                    Some(mut all) => {
                        all.absorb(&result);
                        all
                    }
                    None => result,
                });
                reason
            })
        };
        let stop_reason = match traced {
            Ok(reason) => reason,
            Err(e) if traced_pids.len() > 1 => {
                eprintln!("tracer: warning: pid {last_pid} could not be traced: {e:#}");
                continue;
            }
            Err(e) => return Err(e),
        };
        let exited = stop_reason == sampler::StopReason::TargetExited;
        if let (true, Some(pattern)) = (exited, follow_pattern.as_deref()) {
            eprintln!(
                "tracer: pid {last_pid} exited; --follow: waiting for the next process matching \
                 {pattern:?} (Ctrl-C to stop)"
            );
            next = wait_to_follow(pattern, &traced_pids, args, &signals.stop, deadline);
        }
    }
    flushing.status.stop();
    // A family's snapshots are in its results already.
    let result = match family {
        Some(family) => family.results(),
        None => gathered,
    };
    let result = result.context("no process was traced")?;
    if traced_pids.len() > 1 {
        let pids: Vec<String> = traced_pids.iter().map(i32::to_string).collect();
        eprintln!(
            "tracer: results of pids {} merged into one",
            pids.join(", ")
        );
    }
    report_stop(&result);
    let mut result = result;
    if let Some(snapshotting) = snapshotting {
        if process::is_alive(pid) {
            (snapshotting.taker())();
        }
        snapshotting.finish(&mut result, &args.filters);
    } else if args.snapshot && !target.subprocesses {
        add_snapshots(&mut result, &[last_pid], &args.filters);
    }
    // The target's root and rights as taken at attach time: it may be gone by now.
    let sources = if last_pid == pid {
        flushing.writer.sources.clone()
    } else {
        match result.info.target.version() {
            Some(version) => Sources::of_process(last_pid, version),
            None => Sources::lost(),
        }
    };
    let message = session::write_results(
        &result,
        args.format,
        &path,
        &sources,
        &args.plugin.write_options(),
    )?;
    println!("{message}");
    Ok(0)
}

/// `attach --snapshot`: add what each of `pids` has run since it started to the sampled
/// results, as a union ([`crate::snapshot::union`]). A target gone or too old is a warning:
/// the sampled results are still written.
fn add_snapshots(result: &mut SessionResult, pids: &[i32], filters: &FilterArgs) {
    let mut proven = snapshot::union::Proven::default();
    for &pid in pids {
        match snapshot::take(pid, snapshot::SnapshotOptions::default()) {
            Ok(taken) => {
                let before = proven.lines.len();
                proven.add(&taken);
                eprintln!(
                    "tracer: snapshot of pid {pid} added: {} proven lines ({} new)",
                    taken.results.counts.len(),
                    proven.lines.len() - before
                );
            }
            Err(e) => eprintln!("tracer: warning: no snapshot of pid {pid}: {e:#}"),
        }
    }
    if proven.snapshots == 0 {
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
    proven.join_into(&mut result.results, &mut result.info);
}

/// Wait for the next Python process matching `pattern` that was not traced yet, and attach
/// to it; `None` once stopped by a signal or past `deadline`.
fn wait_to_follow(
    pattern: &str,
    traced: &[i32],
    args: &TraceArgs,
    stop: &AtomicBool,
    deadline: Option<Instant>,
) -> Option<attach::Attached> {
    let mut search = Search::new(pattern);
    let mut refused: Vec<i32> = traced.to_vec();
    // Bounded by the stop signal and the deadline; a sidecar waits as long as it runs.
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let found = search.python_matches(&refused);
        search.announce_passed_over();
        if let Some(&pid) = found.first() {
            // Just started: its interpreter may need a moment.
            match attach::attach_when_ready(
                pid,
                args.blocking,
                args.reader,
                Duration::from_secs(10),
            ) {
                Ok(attached) => {
                    eprintln!(
                        "tracer: following pid {pid} (Python {})",
                        attached.info.python_version
                    );
                    return Some(attached);
                }
                Err(e) => {
                    eprintln!("tracer: not following pid {pid}: {e}");
                    refused.push(pid);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

//! `tracer run -- COMMAND`: start a command and trace it from its start to its exit, ending
//! with the command's own exit status.

use super::tracing::Snapshotting;
use super::StopSignals;
use crate::aggregate::model::CoverageResults;
use crate::cli::TraceArgs;
use crate::output::RunInfo;
use crate::reader::discover;
use crate::session::sampler;
use crate::session::{self, SessionResult};
use crate::session::{report_stop, trace_one, Flushes, Flushing};
use crate::source::Sources;
use crate::target::attach::{self, AttachError};
use crate::target::exit_watch::keeper::Keeper;
use crate::target::exit_watch::{ExitWatch, Moment};
use anyhow::Context;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub fn run_command(args: &TraceArgs, command: &[String]) -> anyhow::Result<i32> {
    let signals = StopSignals::install()?;
    args.plugin.write_options().check(args.format)?;
    // The final snapshot's watch has a keeper, started first so that the child can name it as
    // a ptracer: it clears the watch if this process is killed (src/target/exit_watch/keeper.rs).
    let mut keeper = match args.snapshot.then(Keeper::start).transpose() {
        Ok(keeper) => keeper,
        Err(e) => {
            eprintln!(
                "tracer: warning: no final snapshot ({e:#}); the snapshots along the way are kept"
            );
            None
        }
    };
    let mut child = Command::new(&command[0]);
    child.args(&command[1..]);
    if let Some(keeper) = &keeper {
        let keeper_pid = keeper.pid() as libc::c_ulong;
        // SAFETY: one prctl, async-signal-safe, between fork and exec. Under Yama's ptrace
        // scope 1 it lets the keeper (not an ancestor of the child) seize it; elsewhere it is
        // not needed, and its failure is not an error.
        unsafe {
            child.pre_exec(move || {
                libc::prctl(libc::PR_SET_PTRACER, keeper_pid, 0, 0, 0);
                Ok(())
            });
        }
    }
    let mut child = child
        .spawn()
        .with_context(|| format!("cannot start {:?}", command[0]))?;
    let pid = child.id() as i32;
    let path = session::output_path(args.output.as_ref(), args.format, pid);
    if let Err(e) = session::check_output_writable(&path, args.format) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    // Check the filters before starting to sample (`$prefix` is checked once attached).
    if let Err(e) = args.filters.filter(&[], Some("")) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let mut watch: Option<ExitWatch> = None;
    let mut exit_status: Option<i32> = None;
    let result =
        match attach::attach_when_ready(pid, args.blocking, args.reader, Duration::from_secs(10)) {
            Ok(attached) => {
                let version = attached.version;
                let every = args.snapshot_every.map(Duration::from_secs_f64);
                let snapshotting = args
                    .snapshot
                    .then(|| Snapshotting::start(pid, version, attached.info.free_threaded, every))
                    .flatten();
                // The final snapshot, when the interpreter starts finalizing: the watch then
                // reaps the child and gives its status.
                if let (Some(snapshotting), Some(keeper)) = (&snapshotting, keeper.take()) {
                    match final_snapshot_watch(pid, snapshotting, keeper) {
                        Ok(started) => watch = Some(started),
                        Err(e) => eprintln!(
                            "tracer: warning: no final snapshot ({e:#}); the snapshots along \
                             the way are kept"
                        ),
                    }
                }
                // The target's root and rights, taken now: it may be gone when the results are
                // written.
                let sources = Sources::of_process(pid, version);
                let mut flushing = Flushing::start(args, path.clone(), sources.clone());
                flushing.counters.processes.store(1, Ordering::Relaxed);
                let live = flushing.counters.sampler.clone();
                let duration = args.duration.map(Duration::from_secs_f64);
                let traced = trace_one(
                    attached,
                    args,
                    duration,
                    &signals,
                    &live,
                    Flushes::Timed(&mut |flush| flushing.write(flush)),
                );
                flushing.status.stop();
                let mut result = match traced {
                    Ok(result) => result,
                    Err(e) => {
                        let _ = child.kill();
                        match watch.take() {
                            Some(watch) => drop(watch.wait()),
                            None => drop(child.wait()),
                        }
                        return Err(e);
                    }
                };
                if signals.terminated.load(Ordering::Relaxed) {
                    // SIGTERM was for the whole job: pass it on. (Ctrl-C already reached the child
                    // through the terminal's process group.)
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
                if let Some(snapshotting) = snapshotting {
                    // The final snapshot is taken when the child finalizes: wait for its end.
                    if let Some(started) = watch.take() {
                        let ended = started.wait()?;
                        if let Some(why) = &ended.missed {
                            eprintln!("tracer: warning: no final snapshot: {why}");
                        }
                        exit_status = ended.status;
                    }
                    snapshotting.finish(&mut result, &args.filters);
                }
                Some((result, sources, true))
            }
            // The command ran and exited before its interpreter could be read (`python -c
            // pass` takes a few milliseconds): its results are empty, and still written, so
            // that a script reading them finds a file whatever the command's speed.
            Err(e @ (AttachError::Exited(_) | AttachError::NoSuchProcess(_))) => {
                Some(exited_untraced(pid, command, args, &e))
            }
            Err(e) if !crate::target::process::is_alive(pid) => {
                Some(exited_untraced(pid, command, args, &e))
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e.into());
            }
        };
    let status = match exit_status {
        Some(status) => status,
        None => shell_status(child.wait().context("waiting for the traced command")?),
    };
    if let Some((result, sources, sampled)) = result {
        if sampled {
            report_stop(&result);
        }
        let message = session::write_results(
            &result,
            args.format,
            &path,
            &sources,
            &args.plugin.write_options(),
        )?;
        println!("{message}");
    }
    Ok(status)
}

/// The status as a shell gives it: the code, or 128 + the signal.
fn shell_status(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Arm the final snapshot of `pid` at its interpreter's finalization (or its exit, if it
/// never finalizes).
fn final_snapshot_watch(
    pid: i32,
    snapshotting: &Snapshotting,
    keeper: Keeper,
) -> anyhow::Result<ExitWatch> {
    let finalizing = discover::find_target(pid)?
        .finalizing
        .ok_or_else(|| anyhow::anyhow!("the interpreter's runtime was not found"))?;
    let take = snapshotting.taker();
    ExitWatch::start(
        pid,
        finalizing,
        keeper,
        Box::new(move |moment| {
            let started = std::time::Instant::now();
            take();
            eprintln!(
                "tracer: final snapshot taken {} ({:.0} ms paused)",
                match moment {
                    Moment::Finalizing => "as the interpreter began finalizing",
                    Moment::ExitWithoutFinalizing => "at the exit (no finalization)",
                },
                started.elapsed().as_secs_f64() * 1e3
            );
        }),
    )
}

/// The empty results of a command that exited before it could be traced, and a note saying so.
fn exited_untraced(
    pid: i32,
    command: &[String],
    args: &TraceArgs,
    why: &AttachError,
) -> (SessionResult, Sources, bool) {
    eprintln!(
        "tracer: {command:?} exited before it could be traced ({why}); writing empty results"
    );
    let target = attach::TargetInfo {
        pid,
        executable: command[0].clone(),
        command_line: command.join(" "),
        ..attach::TargetInfo::default()
    };
    let result = SessionResult {
        results: CoverageResults::default(),
        info: RunInfo {
            target,
            rate_requested: args.rate,
            ..RunInfo::default()
        },
        stop_reason: sampler::StopReason::TargetExited,
        first_error: None,
    };
    // The target is gone: no file of its is read as it saw it.
    (result, Sources::lost(), false)
}

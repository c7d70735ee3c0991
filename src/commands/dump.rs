//! `tracer dump`: one-shot stacks of every thread of a running Python, for incident response.
//! The target is not paused unless `--blocking` is given.
//!
//! Stacks come from py-spy's reader, which also knows thread names (`threading` names), the
//! native thread id (3.11+ keep it in the thread state; older versions: not shown), whether a
//! thread looks idle, and, with `--locals`, the local variables' reprs.

use crate::target::attach::{self, ReaderChoice};
use anyhow::Context;
use py_spy::config::{LineNo, LockingStrategy};
use py_spy::{Config, PythonSpy, StackTrace};
use serde::Serialize;

/// How many times an unpaused read is tried before giving up (a running thread may change its
/// stack while it is read).
const READ_ATTEMPTS: usize = 5;

/// How many unpaused reads are tried for two in a row that agree on the outer frames.
const AGREEING_ATTEMPTS: usize = 20;

/// Each thread's two outermost frames (function and file), by thread: what two reads of a
/// running process agree on unless one of them was torn.
fn outer_frames(traces: &[StackTrace]) -> Vec<(u64, Vec<(&str, &str)>)> {
    let mut out: Vec<(u64, Vec<(&str, &str)>)> = traces
        .iter()
        .map(|t| {
            let outer = t.frames.iter().rev().take(2);
            let frames = outer
                .map(|f| (f.name.as_str(), f.filename.as_str()))
                .collect();
            (t.thread_id, frames)
        })
        .collect();
    out.sort();
    out
}

/// One thread's stack, as dumped.
#[derive(Debug, Serialize)]
pub struct ThreadDump {
    /// Python's thread id (`threading.get_ident()`).
    pub thread_id: u64,
    /// The `threading.Thread` name, when the target has one for this thread.
    pub name: Option<String>,
    /// The kernel's thread id (as in `/proc/PID/task`), when known.
    pub native_tid: Option<u64>,
    /// `running` or `idle` (waiting on I/O, a lock or a sleep, as far as can be told).
    pub state: &'static str,
    /// Whether it held the GIL when read.
    pub owns_gil: bool,
    /// Innermost first.
    pub frames: Vec<FrameDump>,
}

/// One frame of a dumped stack.
#[derive(Debug, Serialize)]
pub struct FrameDump {
    pub function: String,
    pub filename: String,
    pub line: i32,
    /// With `--locals`: each local's name, whether it is an argument, and its repr.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locals: Option<Vec<LocalDump>>,
}

/// A local variable of a dumped frame.
#[derive(Debug, Serialize)]
pub struct LocalDump {
    pub name: String,
    pub arg: bool,
    pub repr: Option<String>,
}

/// The whole dump of a process.
#[derive(Debug, Serialize)]
pub struct ProcessDump {
    pub pid: i32,
    pub python_version: String,
    pub command_line: String,
    pub threads: Vec<ThreadDump>,
}

/// Read every thread's stack of `pid` once.
pub fn dump(pid: i32, locals: bool, blocking: bool) -> anyhow::Result<ProcessDump> {
    // The same checks, in the same order and with the same one-line errors, as `attach`.
    let attached = attach::attach_with(pid, blocking, ReaderChoice::Auto).map_err(|e| match e {
        // dump reads through py-spy and has no --reader: no hint to pick one.
        attach::AttachError::Unsupported {
            pid,
            version,
            direct,
            ..
        } => attach::AttachError::Unsupported {
            pid,
            version,
            direct,
            hint: String::new(),
        },
        other => other,
    })?;
    drop(attached.reader);
    let config = Config {
        blocking: if blocking {
            LockingStrategy::Lock
        } else {
            LockingStrategy::NonBlocking
        },
        dump_locals: u64::from(locals),
        include_idle: true,
        collect_thread_names: true,
        lineno: LineNo::LastInstruction,
        ..Config::default()
    };
    let mut spy = PythonSpy::new(pid, &config)
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .with_context(|| format!("cannot read the interpreter of process {pid}"))?;
    let mut last_error = None;
    // An unpaused read can be torn: a stack cut short, its outer frames missing. A read is kept
    // when the next one agrees with it on every thread's outermost frames, which a running
    // thread does not change; after the attempts, the last read that succeeded.
    let mut previous: Option<Vec<StackTrace>> = None;
    let attempts = if blocking { 1 } else { AGREEING_ATTEMPTS };
    for _ in 0..attempts.max(READ_ATTEMPTS) {
        match spy.get_stack_traces() {
            Ok(traces) => {
                let agreed = blocking
                    || previous
                        .as_ref()
                        .is_some_and(|p| outer_frames(p) == outer_frames(&traces));
                previous = Some(traces);
                if agreed {
                    break;
                }
            }
            Err(e) => last_error = Some(e),
        }
    }
    if let Some(traces) = previous {
        return Ok(ProcessDump {
            pid,
            python_version: attached.info.python_version,
            command_line: attached.info.command_line,
            threads: traces.iter().map(thread_dump).collect(),
        });
    }
    let e = last_error.map(|e| format!("{e:#}")).unwrap_or_default();
    anyhow::bail!(
        "cannot read the stacks of process {pid} ({e}); they changed during every read: try \
         again, or pause the target while reading with --blocking"
    )
}

fn thread_dump(trace: &StackTrace) -> ThreadDump {
    ThreadDump {
        thread_id: trace.thread_id,
        name: trace.thread_name.clone(),
        native_tid: trace.os_thread_id,
        state: if trace.active { "running" } else { "idle" },
        owns_gil: trace.owns_gil,
        frames: trace
            .frames
            .iter()
            .map(|frame| FrameDump {
                function: frame.name.clone(),
                filename: frame.filename.clone(),
                line: frame.line,
                locals: frame.locals.as_ref().map(|locals| {
                    locals
                        .iter()
                        .map(|l| LocalDump {
                            name: l.name.clone(),
                            arg: l.arg,
                            repr: l.repr.clone(),
                        })
                        .collect()
                }),
            })
            .collect(),
    }
}

/// The dump as text, py-spy's `dump` layout: a header, then each thread and its frames,
/// innermost first, locals indented under their frame.
pub fn to_text(dump: &ProcessDump) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "Process {}: {}", dump.pid, dump.command_line);
    let _ = writeln!(out, "Python v{}", dump.python_version);
    for thread in &dump.threads {
        let _ = writeln!(out);
        let name = thread
            .name
            .as_deref()
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default();
        let native = thread
            .native_tid
            .map(|t| format!("native tid {t}, "))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "Thread {:#x}{name} ({native}{}{})",
            thread.thread_id,
            thread.state,
            if thread.owns_gil {
                ", holds the GIL"
            } else {
                ""
            }
        );
        for frame in &thread.frames {
            let _ = writeln!(
                out,
                "    {} ({}:{})",
                frame.function, frame.filename, frame.line
            );
            for local in frame.locals.iter().flatten() {
                let _ = writeln!(
                    out,
                    "        {}{} = {}",
                    local.name,
                    if local.arg { " (arg)" } else { "" },
                    local.repr.as_deref().unwrap_or("?")
                );
            }
        }
    }
    out
}

//! `tracer dump`: one-shot stacks of every thread of a running Python, for incident response.
//! The target is not paused unless `--blocking` is given.
//!
//! Where tracer's own reader reads the version (3.8+), the stacks are its: each thread's stack
//! is read again (a bounded number of times) until it is read whole; a thread that changed during
//! every read is printed with the outer frames its reads agreed on, and a note. What the own
//! reader does not read comes from py-spy's: thread names (`threading` names), the native thread
//! id, whether a thread looks idle and which holds the GIL. On 2.7 and 3.6–3.7, and with
//! `--locals` (every frame's local variables), py-spy's reader reads the stacks too.

use crate::reader::sample::{CodeId, CodeInfo, Sample};
use crate::reader::StackReader;
use crate::target::attach::{self, ReaderChoice};
use anyhow::Context;
use py_spy::config::{LineNo, LockingStrategy};
use py_spy::{Config, PythonSpy, StackTrace};
use serde::Serialize;
use std::collections::HashMap;

/// How many times an unpaused read is tried before giving up (a running thread may change its
/// stack while it is read).
const READ_ATTEMPTS: usize = 5;

/// How many unpaused reads are tried for two in a row that agree on the outer frames.
const AGREEING_ATTEMPTS: usize = 20;

/// How many reads of the own reader are tried for every thread's stack to be read whole.
const WHOLE_STACK_ATTEMPTS: usize = 20;

/// The pause between two of those reads.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_micros(500);

/// How many times py-spy's reader is opened before giving up: on a busy process its opening
/// fails now and then (it checks the interpreter it found by reading its stacks, which a
/// running thread can tear: "Failed to find a python interpreter in the .data section").
const OPEN_ATTEMPTS: usize = 5;

/// How many times py-spy's reader is asked for the threads' facts.
const FACT_ATTEMPTS: usize = 5;

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
    /// `running` or `idle` (waiting on I/O, a lock or a sleep, as far as can be told);
    /// `unknown` when py-spy's reader could not tell.
    pub state: &'static str,
    /// Whether it held the GIL when read.
    pub owns_gil: bool,
    /// Innermost first.
    pub frames: Vec<FrameDump>,
    /// Why the stack shown is not the whole stack, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
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
    /// A free-threaded build (`--disable-gil`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub free_threaded: bool,
    pub command_line: String,
    /// The stack reader: `direct` (tracer's own) or `py-spy`.
    pub reader: &'static str,
    pub threads: Vec<ThreadDump>,
    /// What the dump could not show, when something is missing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Read every thread's stack of `pid` once.
pub fn dump(pid: i32, locals: bool, blocking: bool) -> anyhow::Result<ProcessDump> {
    // The same checks, in the same order and with the same one-line errors, as `attach`.
    let mut attached =
        attach::attach_with(pid, blocking, ReaderChoice::Auto).map_err(|e| match e {
            // dump has no --reader: no hint to pick one.
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
    let (reader, threads, notes) = if attached.info.reader == "direct" && !locals {
        let codes = std::mem::take(&mut attached.pending_codes);
        let (stacks, unread) = own_stacks(&mut *attached.reader, codes, pid)?;
        drop(attached.reader);
        let facts = if attached.info.free_threaded {
            Err("py-spy reads no free-threaded build".to_owned())
        } else {
            thread_facts(pid, blocking)
        };
        let (threads, notes) = with_facts(stacks, unread, facts);
        ("direct", threads, notes)
    } else {
        drop(attached.reader);
        ("py-spy", pyspy_threads(pid, locals, blocking)?, Vec::new())
    };
    Ok(ProcessDump {
        pid,
        python_version: attached.info.python_version,
        free_threaded: attached.info.free_threaded,
        command_line: attached.info.command_line,
        reader,
        threads,
        notes,
    })
}

/// One thread's stack as tracer's own reader read it.
struct OwnStack {
    thread_id: u64,
    frames: Vec<FrameDump>,
    /// Not truncated: the innermost frame is where the thread stood.
    whole: bool,
}

/// Every thread's stack through tracer's own reader, read again until every thread has been
/// read whole (at most [`WHOLE_STACK_ATTEMPTS`] reads): each thread's latest whole stack, or
/// the deepest of its truncated ones. Also how many threads the last read left out.
fn own_stacks(
    reader: &mut dyn StackReader,
    pending: Vec<(CodeId, CodeInfo)>,
    pid: i32,
) -> anyhow::Result<(Vec<OwnStack>, u64)> {
    let mut codes: HashMap<CodeId, CodeInfo> = pending.into_iter().collect();
    let mut sample = Sample::default();
    let mut new_codes = Vec::new();
    let mut stacks: Vec<OwnStack> = Vec::new();
    let mut unread = None;
    let mut last_error = None;
    for attempt in 0..WHOLE_STACK_ATTEMPTS {
        if attempt > 0 {
            // Reads a few microseconds apart catch a busy thread in the same phase of its
            // work (the same generator resumed, the same frames freed): let it move on.
            std::thread::sleep(RETRY_PAUSE);
        }
        let read = reader.read(&mut sample, &mut new_codes);
        codes.extend(new_codes.drain(..));
        if let Err(e) = read {
            last_error = Some(e);
            continue;
        }
        for (thread, frames) in sample.stacks() {
            let frames = frames
                .iter()
                .map(|frame| {
                    let code = codes.get(&frame.code);
                    FrameDump {
                        function: code.map(|c| c.funcname.clone()).unwrap_or_default(),
                        filename: code.map(|c| c.filename.clone()).unwrap_or_default(),
                        line: i32::try_from(frame.line).unwrap_or(i32::MAX),
                        locals: None,
                    }
                })
                .collect::<Vec<_>>();
            let read = OwnStack {
                thread_id: thread.thread_id,
                frames,
                whole: !thread.truncated,
            };
            match stacks.iter_mut().find(|s| s.thread_id == read.thread_id) {
                Some(kept)
                    if read.whole || (!kept.whole && read.frames.len() >= kept.frames.len()) =>
                {
                    *kept = read
                }
                Some(_) => {}
                None => stacks.push(read),
            }
        }
        let left_out = sample.threads_dropped.total();
        unread = Some(left_out);
        if left_out == 0 && stacks.iter().all(|s| s.whole) {
            break;
        }
    }
    match unread {
        Some(unread) => Ok((stacks, unread)),
        None => {
            let e = last_error.map(|e| e.to_string()).unwrap_or_default();
            anyhow::bail!(
                "cannot read the stacks of process {pid} ({e}): try again, or pause the target \
                 while reading with --blocking"
            )
        }
    }
}

/// What py-spy's reader tells of a thread besides its stack.
struct ThreadFacts {
    name: Option<String>,
    native_tid: Option<u64>,
    active: bool,
    owns_gil: bool,
}

/// Each thread's facts by thread id, from py-spy's reader (opened and asked a bounded number
/// of times); why not, when it could not read them.
fn thread_facts(pid: i32, blocking: bool) -> Result<HashMap<u64, ThreadFacts>, String> {
    let config = Config {
        blocking: if blocking {
            LockingStrategy::Lock
        } else {
            LockingStrategy::NonBlocking
        },
        include_idle: true,
        collect_thread_names: true,
        ..Config::default()
    };
    let mut spy = open_spy(pid, &config).map_err(|e| format!("{e:#}"))?;
    let mut last_error = String::new();
    for _ in 0..FACT_ATTEMPTS {
        match spy.get_stack_traces() {
            Ok(traces) => {
                return Ok(traces
                    .into_iter()
                    .map(|t| {
                        let facts = ThreadFacts {
                            name: t.thread_name,
                            native_tid: t.os_thread_id,
                            active: t.active,
                            owns_gil: t.owns_gil,
                        };
                        (t.thread_id, facts)
                    })
                    .collect())
            }
            Err(e) => last_error = format!("{e:#}"),
        }
    }
    Err(last_error)
}

/// py-spy's reader of `pid`, opened again (at most [`OPEN_ATTEMPTS`] times) while its opening
/// fails.
fn open_spy(pid: i32, config: &Config) -> anyhow::Result<PythonSpy> {
    let mut last_error = None;
    for _ in 0..OPEN_ATTEMPTS {
        match PythonSpy::new(pid, config) {
            Ok(spy) => return Ok(spy),
            Err(e) => last_error = Some(e),
        }
    }
    let e = last_error.map(|e| format!("{e:#}")).unwrap_or_default();
    Err(anyhow::anyhow!(e)).with_context(|| format!("cannot read the interpreter of process {pid}"))
}

/// The own reader's stacks with py-spy's facts of each thread; a thread py-spy saw that no own
/// read read is listed without frames. Notes for what is missing.
fn with_facts(
    stacks: Vec<OwnStack>,
    unread: u64,
    facts: Result<HashMap<u64, ThreadFacts>, String>,
) -> (Vec<ThreadDump>, Vec<String>) {
    let mut notes = Vec::new();
    let mut facts = facts.unwrap_or_else(|e| {
        notes.push(format!(
            "thread names, native ids, states and the GIL holder are unknown: py-spy's reader \
             could not read them ({e})"
        ));
        HashMap::new()
    });
    let mut threads: Vec<ThreadDump> = stacks
        .into_iter()
        .map(|stack| {
            let known = facts.remove(&stack.thread_id);
            let note = (!stack.whole).then(|| {
                "the innermost frames changed during every read: shown are the outer frames \
                 the reads agreed on"
                    .to_owned()
            });
            thread_with(stack.thread_id, known, stack.frames, note)
        })
        .collect();
    let mut unlisted: Vec<(u64, ThreadFacts)> = facts.into_iter().collect();
    unlisted.sort_by_key(|(id, _)| *id);
    let listed = unlisted.len() as u64;
    for (thread_id, known) in unlisted {
        let note = "its stack changed during every read: not shown".to_owned();
        threads.push(thread_with(thread_id, Some(known), Vec::new(), Some(note)));
    }
    if unread > listed {
        notes.push(format!(
            "{} thread(s) not shown: their stacks changed during every read",
            unread - listed
        ));
    }
    (threads, notes)
}

fn thread_with(
    thread_id: u64,
    facts: Option<ThreadFacts>,
    frames: Vec<FrameDump>,
    note: Option<String>,
) -> ThreadDump {
    let (name, native_tid, state, owns_gil) = match facts {
        Some(f) => (
            f.name,
            f.native_tid,
            if f.active { "running" } else { "idle" },
            f.owns_gil,
        ),
        None => (None, None, "unknown", false),
    };
    ThreadDump {
        thread_id,
        name,
        native_tid,
        state,
        owns_gil,
        frames,
        note,
    }
}

/// Every thread through py-spy's reader, stacks and locals included.
fn pyspy_threads(pid: i32, locals: bool, blocking: bool) -> anyhow::Result<Vec<ThreadDump>> {
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
    let mut spy = open_spy(pid, &config)?;
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
        return Ok(traces.iter().map(thread_dump).collect());
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
        note: None,
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
    let build = if dump.free_threaded {
        " (free-threaded)"
    } else {
        ""
    };
    let _ = writeln!(out, "Python v{}{build}", dump.python_version);
    for note in &dump.notes {
        let _ = writeln!(out, "Note: {note}");
    }
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
        if let Some(note) = &thread.note {
            let _ = writeln!(out, "    ({note})");
        }
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

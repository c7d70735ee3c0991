//! A [`StackReader`] over py-spy's stack reader (`py_spy::PythonSpy`): works for every Python
//! py-spy knows (2.7, 3.3–3.15) and serves as the reference our own reader is tested against.

use super::{CodeInterner, ReadError, ReadErrorKind, StackReader};
use crate::reader::sample::{CodeId, CodeInfo, FrameRef, Sample};
use crate::reader::PyVersion;
use crate::source::{SourceText, Sources};
use py_spy::config::{LineNo, LockingStrategy};
use py_spy::{Config, PythonSpy, StackTrace};
use std::collections::HashMap;

/// Stacks through `py_spy::PythonSpy::get_stack_traces`.
pub struct PySpyReader {
    spy: PythonSpy,
    interner: CodeInterner,
    blocking: bool,
    def_lines: DefLines,
}

impl PySpyReader {
    /// Attach py-spy to `pid`. With `blocking`, the target is paused for each read.
    pub fn new(pid: i32, blocking: bool) -> anyhow::Result<PySpyReader> {
        let config = Config {
            blocking: if blocking {
                LockingStrategy::Lock
            } else {
                LockingStrategy::NonBlocking
            },
            lineno: LineNo::LastInstruction,
            // Thread names cost a read of the threading module's dict; we key on thread ids.
            collect_thread_names: false,
            ..Config::default()
        };
        let spy = PythonSpy::new(pid, &config)?;
        let version = python_version(&spy)?;
        Ok(PySpyReader {
            spy,
            interner: CodeInterner::default(),
            blocking,
            def_lines: DefLines::new(Sources::of_process(pid, version)),
        })
    }

    /// The target's Python version, as `3.12.1`.
    pub fn python_version(&self) -> String {
        let v = &self.spy.version;
        format!("{}.{}.{}", v.major, v.minor, v.patch)
    }

    /// The target's Python version.
    pub fn version(&self) -> PyVersion {
        python_version(&self.spy).expect("checked when the reader was made")
    }
}

/// The version py-spy found, refused when it does not fit a version number.
fn python_version(spy: &PythonSpy) -> anyhow::Result<PyVersion> {
    let v = &spy.version;
    match (u8::try_from(v.major), u8::try_from(v.minor)) {
        (Ok(major), Ok(minor)) => Ok(PyVersion::new(major, minor)),
        _ => anyhow::bail!(
            "py-spy read an implausible Python version {}.{}",
            v.major,
            v.minor
        ),
    }
}

/// Reads per sample at most, in nonblocking mode, looking for two consecutive reads that agree.
const MAX_READS: usize = 3;

/// How many outermost frames two reads of one thread agree on, comparing (file, function, line)
/// from the bottom of the stack up.
fn common_outer_frames(a: &StackTrace, b: &StackTrace) -> usize {
    a.frames
        .iter()
        .rev()
        .zip(b.frames.iter().rev())
        .take_while(|(x, y)| x.line == y.line && x.name == y.name && x.filename == y.filename)
        .count()
}

/// A thread's stack we trust, possibly without its innermost frames.
struct SettledStack {
    trace: StackTrace,
    /// Innermost frames dropped because the reads disagreed on them.
    dropped: usize,
}

impl PySpyReader {
    fn traces(&mut self) -> Result<Vec<StackTrace>, ReadError> {
        self.spy
            .get_stack_traces()
            .map_err(|e| ReadError::Transient(ReadErrorKind::Unreadable, format!("{e:#}")))
    }

    /// Stacks we can trust. Paused, one read is exact. Running, the target may change its
    /// frames while py-spy walks them from the innermost out, giving a stack that never existed
    /// (a phantom caller, a skipped frame). What a torn walk reads last, the outer frames, comes
    /// from a real stack, so of each thread we keep the outer frames on which two consecutive
    /// reads agree. A thread whose whole stack agrees is complete; otherwise, after
    /// [`MAX_READS`] reads, its agreed outer part is kept and marked truncated.
    fn settled_stacks(&mut self) -> Result<Vec<SettledStack>, ReadError> {
        let mut previous = self.traces()?;
        if self.blocking {
            return Ok(previous
                .into_iter()
                .map(|trace| SettledStack { trace, dropped: 0 })
                .collect());
        }
        let mut settled: Vec<SettledStack> = Vec::with_capacity(previous.len());
        let mut partial: HashMap<u64, SettledStack> = HashMap::new();
        for _ in 1..MAX_READS {
            let current = self.traces()?;
            let mut pending = false;
            for trace in current.iter() {
                if settled.iter().any(|s| s.trace.thread_id == trace.thread_id) {
                    continue;
                }
                let Some(before) = previous.iter().find(|p| p.thread_id == trace.thread_id) else {
                    pending = true;
                    continue;
                };
                let agreed = common_outer_frames(before, trace);
                if agreed == trace.frames.len() && agreed == before.frames.len() {
                    partial.remove(&trace.thread_id);
                    settled.push(SettledStack {
                        trace: trace.clone(),
                        dropped: 0,
                    });
                    continue;
                }
                pending = true;
                let best = partial
                    .get(&trace.thread_id)
                    .map_or(0, |p| p.trace.frames.len());
                if agreed > best {
                    let mut outer = trace.clone();
                    let dropped = outer.frames.len() - agreed;
                    outer.frames.drain(..dropped);
                    partial.insert(
                        trace.thread_id,
                        SettledStack {
                            trace: outer,
                            dropped,
                        },
                    );
                }
            }
            if !pending {
                break;
            }
            previous = current;
        }
        settled.extend(partial.into_values());
        Ok(settled)
    }
}

impl StackReader for PySpyReader {
    fn read(
        &mut self,
        sample: &mut Sample,
        new_codes: &mut Vec<(CodeId, CodeInfo)>,
    ) -> Result<(), ReadError> {
        sample.clear();
        for stack in self.settled_stacks()? {
            let trace = &stack.trace;
            let mut frames = &trace.frames[..];
            let mut truncated = stack.dropped > 0;
            if let Some((top, rest)) = frames.split_first() {
                if !truncated
                    && self
                        .def_lines
                        .is_prologue(&top.filename, &top.name, top.line)
                {
                    frames = rest;
                    truncated = true;
                }
            }
            for frame in frames {
                // py-spy reports line 0 when it could not decode the line: a torn read. Drop
                // the whole sample rather than report a line that never ran.
                if frame.line <= 0 {
                    sample.clear();
                    return Err(ReadError::Transient(
                        ReadErrorKind::Torn,
                        format!("no line number for a frame of {}", frame.name),
                    ));
                }
                let code = self
                    .interner
                    .intern(&frame.filename, &frame.name, 0, new_codes);
                sample.frames.push(FrameRef {
                    code,
                    line: frame.line as u32,
                });
            }
            sample.end_thread(trace.thread_id, truncated);
        }
        Ok(())
    }
}

/// Which lines of a source file are `def` lines, and of which function: to recognise a frame
/// that was called but has not started (3.11+ stands it on its `def` line while it runs its
/// prologue or, for a generator, `RETURN_GENERATOR`; 3.10 and older report its first line).
/// Such a frame is left out: a generator created but never iterated never ran, and trace
/// records no call for it.
struct DefLines {
    sources: Sources,
    by_file: HashMap<String, HashMap<u32, String>>,
}

impl DefLines {
    fn new(sources: Sources) -> DefLines {
        DefLines {
            sources,
            by_file: HashMap::new(),
        }
    }

    /// True if a frame of `funcname` on `line` of `filename` stands on its own `def` line.
    fn is_prologue(&mut self, filename: &str, funcname: &str, line: i32) -> bool {
        let short_name = funcname.rsplit('.').next().unwrap_or(funcname);
        if short_name.starts_with('<') {
            return false; // <module>, <lambda>, <genexpr>: no def line of their own
        }
        if !self.by_file.contains_key(filename) {
            let defs = self
                .sources
                .read(filename)
                .map(|bytes| def_lines(&SourceText::decode(&bytes).text))
                .unwrap_or_default();
            self.by_file.insert(filename.to_owned(), defs);
        }
        self.by_file
            .get(filename)
            .and_then(|defs| defs.get(&(line as u32)))
            .is_some_and(|name| name == short_name)
    }
}

/// Lines that begin a `def` or `async def`, with the name defined.
fn def_lines(text: &str) -> HashMap<u32, String> {
    let mut defs = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let rest = line.trim_start();
        let rest = rest.strip_prefix("async").map_or(rest, |r| r.trim_start());
        let Some(rest) = rest.strip_prefix("def") else {
            continue;
        };
        if !rest.starts_with(char::is_whitespace) {
            continue;
        }
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            defs.insert(index as u32 + 1, name);
        }
    }
    defs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_def_lines() {
        let defs = def_lines(
            "def f(x):\n    pass\nclass K:\n    async def grüße(self):\n        define = 1\n",
        );
        assert_eq!(defs.get(&1).map(String::as_str), Some("f"));
        assert_eq!(defs.get(&4).map(String::as_str), Some("grüße"));
        assert_eq!(defs.len(), 2);
    }
}

//! The function view (`--function QUALNAME [--locals]`): per call of one function, its call
//! stack and, per statement, the samples that found the call there and the values its local
//! variables held, like `tracefunc`'s per-call traces but read from outside (docs/function-view.md).
//!
//! Three steps, following the data:
//! 1. the reader lists the followed function's frames in each sample ([`FollowedFrame`]: frame
//!    address, source point, locals);
//! 2. [`FunctionTracker`], inside the aggregator, tells calls apart and counts per call and
//!    source point;
//! 3. [`FunctionTraces::resolve`], when results are written, turns source points into
//!    statements found in the function's source ([`statements`]).
//!
//! A call is one frame of the function seen in consecutive samples of its thread, at the
//! same address under the same callers (their code and lines). While a call runs its callers
//! cannot move, and its frame cannot move; so a frame that was absent from a complete sample
//! of its thread, or whose callers changed, is a new call, and recursive or concurrent calls
//! (other addresses, other threads) stay apart. Two calls from the same call site with no
//! sample between them cannot be told apart from memory and count as one.

pub mod statements;

use crate::reader::sample::{CodeId, FollowedFrame, FrameRef, Sample, SourcePoint};
use rustc_hash::FxHashMap as HashMap;
use statements::Statement;
use std::collections::BTreeMap;

/// Calls recorded at most; later ones are counted in [`FunctionTraces::dropped_calls`].
pub const MAX_CALLS: usize = 10_000;
/// Distinct values kept per variable and source point or statement (tracefunc keeps 10
/// samples per variable and line).
pub const MAX_VALUES: usize = 10;

/// Values kept in all, over every call and point: past it, further values are counted in
/// [`FunctionTraces::dropped_values`] (memory stays bounded on any workload: about 20 MB).
pub const MAX_KEPT_VALUES: usize = 200_000;

/// Values of one variable: `(type name, repr)`, distinct, in the order first seen.
pub type Values = Vec<(String, String)>;

/// Everything the function view gathered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionTraces {
    /// The function followed (`--function`).
    pub qualname: String,
    /// Whether locals were read (`--locals`).
    pub locals: bool,
    /// Calls in the order first sampled.
    pub calls: Vec<CallTrace>,
    /// Calls met after [`MAX_CALLS`] were recorded.
    pub dropped_calls: u64,
    /// Values seen after [`MAX_KEPT_VALUES`] were kept.
    pub dropped_values: u64,
}

/// One call of the followed function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallTrace {
    /// Python's thread id of the thread running it.
    pub thread_id: u64,
    /// The frame's address in the target.
    pub frame_address: u64,
    /// `co_filename` and function name of the code.
    pub filename: String,
    pub funcname: String,
    /// `co_firstlineno`.
    pub first_line: u32,
    /// Its callers, outermost first: (function, file, line).
    pub callers: Vec<(String, String, u32)>,
    /// Samples that found the call.
    pub samples: u64,
    /// Source points as sampled, until [`FunctionTraces::resolve`] turns them into
    /// `statements`.
    pub points: Vec<PointTrace>,
    /// Per statement, in source order: filled by [`FunctionTraces::resolve`].
    pub statements: Vec<StatementTrace>,
    /// Samples whose point fell in no statement of the source (e.g. the function's entry).
    pub unplaced: u64,
}

/// Samples at one source point of a call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PointTrace {
    pub point: SourcePoint,
    pub hits: u64,
    /// Every bound local's values seen there.
    pub locals: BTreeMap<String, Values>,
}

/// Samples at one statement of a call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatementTrace {
    /// The statement's source text, as tracefunc keys it; before 3.11, the source line's.
    pub snippet: String,
    /// The line it starts on.
    pub line: u32,
    /// Samples that found the call's frame on it.
    pub hits: u64,
    /// Values of the local variables the statement uses.
    pub vars: BTreeMap<String, Values>,
}

/// A call being followed by the aggregator.
#[derive(Debug)]
struct LiveCall {
    thread_id: u64,
    address: u64,
    code: CodeId,
    first_line: u32,
    /// Callers, innermost first, as in the sample.
    callers: Vec<FrameRef>,
    samples: u64,
    points: HashMap<SourcePoint, (u64, BTreeMap<String, Values>)>,
    /// The last sample that found it.
    last_sample: u64,
}

/// Tells calls apart and counts them, sample by sample (inside the aggregator).
#[derive(Debug, Default)]
pub struct FunctionTracker {
    qualname: String,
    locals: bool,
    calls: Vec<LiveCall>,
    /// Calls whose frame was in the latest sample of their thread: (thread, address) → call.
    active: HashMap<(u64, u64), usize>,
    dropped_calls: u64,
    kept_values: usize,
    dropped_values: u64,
    samples: u64,
}

impl FunctionTracker {
    pub fn new(qualname: &str, locals: bool) -> FunctionTracker {
        FunctionTracker {
            qualname: qualname.to_owned(),
            locals,
            ..FunctionTracker::default()
        }
    }

    /// Fold in one sample's followed frames.
    pub fn add_sample(&mut self, sample: &Sample) {
        self.samples += 1;
        let stamp = self.samples;
        let mut start = 0usize;
        for (thread, frames) in sample.stacks() {
            let end = start + frames.len();
            for followed in sample
                .followed
                .iter()
                .filter(|t| (start..end).contains(&(t.frame_index as usize)))
            {
                self.add_frame(thread.thread_id, followed, &sample.frames[..end], stamp);
            }
            if !thread.truncated {
                // A complete stack without the frame: that call has returned.
                let calls = &self.calls;
                self.active.retain(|&(thread_id, _), &mut call| {
                    thread_id != thread.thread_id || calls[call].last_sample == stamp
                });
            }
            start = end;
        }
    }

    fn add_frame(
        &mut self,
        thread_id: u64,
        followed: &FollowedFrame,
        frames: &[FrameRef],
        stamp: u64,
    ) {
        let index = followed.frame_index as usize;
        let Some(frame) = frames.get(index) else {
            return;
        };
        let callers = &frames[index + 1..];
        let key = (thread_id, followed.address);
        // Still active (not missed by a complete sample of its thread) and under the same
        // callers: the same call.
        let known = self.active.get(&key).copied().filter(|&call| {
            let call = &self.calls[call];
            call.code == frame.code && call.callers == callers
        });
        let call = match known {
            Some(call) => call,
            None => {
                if self.calls.len() >= MAX_CALLS {
                    self.dropped_calls += 1;
                    self.active.remove(&key);
                    return;
                }
                self.calls.push(LiveCall {
                    thread_id,
                    address: followed.address,
                    code: frame.code,
                    first_line: followed.first_line,
                    callers: callers.to_vec(),
                    samples: 0,
                    points: HashMap::default(),
                    last_sample: 0,
                });
                self.active.insert(key, self.calls.len() - 1);
                self.calls.len() - 1
            }
        };
        let call = &mut self.calls[call];
        call.samples += 1;
        call.last_sample = stamp;
        let (hits, locals) = call.points.entry(followed.point).or_default();
        *hits += 1;
        for local in &followed.locals {
            let values = locals.entry(local.name.clone()).or_default();
            let known = values
                .iter()
                .any(|(t, r)| *t == local.type_name && *r == local.repr);
            if known || values.len() >= MAX_VALUES {
                continue;
            }
            if self.kept_values >= MAX_KEPT_VALUES {
                self.dropped_values += 1;
                continue;
            }
            self.kept_values += 1;
            values.push((local.type_name.clone(), local.repr.clone()));
        }
    }

    /// The calls so far, with strings for code ids (`names` gives a code's file and function).
    pub fn results(&self, names: impl Fn(CodeId) -> Option<(String, String)>) -> FunctionTraces {
        let mut calls = Vec::with_capacity(self.calls.len());
        for live in &self.calls {
            let Some((filename, funcname)) = names(live.code) else {
                continue;
            };
            let callers = live
                .callers
                .iter()
                .rev()
                .filter_map(|f| names(f.code).map(|(file, func)| (func, file, f.line)))
                .collect();
            let mut points: Vec<PointTrace> = live
                .points
                .iter()
                .map(|(point, (hits, locals))| PointTrace {
                    point: *point,
                    hits: *hits,
                    locals: locals.clone(),
                })
                .collect();
            points.sort_by_key(|p| p.point);
            calls.push(CallTrace {
                thread_id: live.thread_id,
                frame_address: live.address,
                filename,
                funcname,
                first_line: live.first_line,
                callers,
                samples: live.samples,
                points,
                statements: Vec::new(),
                unplaced: 0,
            });
        }
        FunctionTraces {
            qualname: self.qualname.clone(),
            locals: self.locals,
            calls,
            dropped_calls: self.dropped_calls,
            dropped_values: self.dropped_values,
        }
    }
}

fn add_value(values: &mut Values, (type_name, repr): (&str, &str)) {
    if values.len() < MAX_VALUES && !values.iter().any(|(t, r)| t == type_name && r == repr) {
        values.push((type_name.to_owned(), repr.to_owned()));
    }
}

impl FunctionTraces {
    /// Whether some call still holds source points not turned into statements.
    pub fn needs_resolving(&self) -> bool {
        self.calls.iter().any(|c| !c.points.is_empty())
    }

    /// Turn every call's source points into statements, reading each function's source once
    /// with `read_source` (file name → text). A point with a column (3.11+) goes to the
    /// smallest statement holding it; one without (3.8–3.10) to its source line, keyed by
    /// the line's text. Points of a source that cannot be read or parsed are keyed
    /// `<line N>` and carry no variables (which ones a statement uses is unknown).
    pub fn resolve(&mut self, read_source: &dyn Fn(&str) -> Option<String>) {
        /// A function's statements and its file's lines, by (file, first line, name).
        type Parsed = Option<(Vec<Statement>, Vec<String>)>;
        let mut parsed: HashMap<(String, u32, String), Parsed> = HashMap::default();
        for call in &mut self.calls {
            if call.points.is_empty() {
                continue;
            }
            let short_name = call.funcname.rsplit('.').next().unwrap_or("").to_owned();
            let key = (call.filename.clone(), call.first_line, short_name.clone());
            let source = parsed.entry(key).or_insert_with(|| {
                let text = read_source(&call.filename)?;
                let statements =
                    statements::function_statements(&text, call.first_line, &short_name)?;
                Some((statements, text.split('\n').map(str::to_owned).collect()))
            });
            let points = std::mem::take(&mut call.points);
            // Statement index (or line, for line keys) → trace, in source order.
            let mut by_key: BTreeMap<(u32, usize), StatementTrace> = BTreeMap::new();
            for point in points {
                let placed = match source {
                    Some((statements, lines)) => place(statements, lines, point.point),
                    None => Some(Placed {
                        order: (point.point.line, 0),
                        snippet: format!("<line {}>", point.point.line),
                        line: point.point.line,
                        names: Vec::new(),
                    }),
                };
                let Some(placed) = placed else {
                    call.unplaced += point.hits;
                    continue;
                };
                let trace = by_key
                    .entry(placed.order)
                    .or_insert_with(|| StatementTrace {
                        snippet: placed.snippet.clone(),
                        line: placed.line,
                        ..StatementTrace::default()
                    });
                trace.hits += point.hits;
                for name in &placed.names {
                    if let Some(values) = point.locals.get(name) {
                        let into = trace.vars.entry(name.clone()).or_default();
                        for (t, r) in values {
                            add_value(into, (t, r));
                        }
                    }
                }
            }
            call.statements = by_key.into_values().collect();
        }
    }
}

/// Where a source point is reported.
struct Placed {
    /// Source order: (line, statement index + 1), or (line, 0) for a line key.
    order: (u32, usize),
    snippet: String,
    line: u32,
    names: Vec<String>,
}

fn place(statements: &[Statement], lines: &[String], point: SourcePoint) -> Option<Placed> {
    match point.column {
        Some(column) => {
            let index = statements::statement_at(statements, point.line, column)?;
            let statement = &statements[index];
            Some(Placed {
                order: (statement.start.0, index + 1),
                snippet: statement.snippet.clone(),
                line: statement.start.0,
                names: statement.names.clone(),
            })
        }
        None => {
            // Line granularity: the line's text; the names of the statements starting on it,
            // else of the smallest statement spanning it.
            let text = lines.get(point.line.checked_sub(1)? as usize)?.trim();
            if text.is_empty() {
                return None;
            }
            let starting: Vec<&Statement> = statements
                .iter()
                .filter(|s| s.start.0 == point.line)
                .collect();
            let covering: Vec<&Statement> = if starting.is_empty() {
                statements
                    .iter()
                    .filter(|s| s.start.0 <= point.line && point.line <= s.end.0)
                    .min_by_key(|s| s.end.0 - s.start.0)
                    .into_iter()
                    .collect()
            } else {
                starting
            };
            if covering.is_empty() {
                return None;
            }
            let mut names: Vec<String> = covering.iter().flat_map(|s| s.names.clone()).collect();
            names.sort();
            names.dedup();
            Some(Placed {
                order: (point.line, 0),
                snippet: text.to_owned(),
                line: point.line,
                names,
            })
        }
    }
}

impl CallTrace {
    /// tracefunc's stack string: one `function (path:line)` per frame, outermost first,
    /// ending with the call itself at its `def` line; paths under the function's own directory
    /// relative to it.
    pub fn stack_string(&self) -> String {
        let base = std::path::Path::new(&self.filename)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let shorten = |path: &str| -> String {
            if !base.is_empty() {
                if let Some(rest) = path.strip_prefix(&format!("{base}/")) {
                    return rest.to_owned();
                }
            }
            path.to_owned()
        };
        let mut lines: Vec<String> = self
            .callers
            .iter()
            .map(|(func, file, line)| format!("{func} ({}:{line})", shorten(file)))
            .collect();
        lines.push(format!(
            "{} ({}:{})",
            self.funcname,
            shorten(&self.filename),
            self.first_line
        ));
        lines.join("\n")
    }
}

/// The text view `tracer report --function` prints: per call, its stack, then per statement
/// `- 'snippet' hits` and the values of its variables, as tracefunc's README shows them.
pub fn render_text(traces: &FunctionTraces) -> String {
    let mut out = String::new();
    let locals = if traces.locals { " with locals" } else { "" };
    out.push_str(&format!(
        "function {}: {} calls sampled{locals}",
        traces.qualname,
        traces.calls.len()
    ));
    if traces.dropped_calls > 0 {
        out.push_str(&format!(" ({} more not recorded)", traces.dropped_calls));
    }
    if traces.dropped_values > 0 {
        out.push_str(&format!(
            " ({} values not kept past the limit)",
            traces.dropped_values
        ));
    }
    out.push('\n');
    for (n, call) in traces.calls.iter().enumerate() {
        out.push_str(&format!(
            "\ncall {} (thread {:#x}, frame {:#x}, {} samples)\n",
            n + 1,
            call.thread_id,
            call.frame_address,
            call.samples
        ));
        out.push_str(&call.stack_string());
        out.push('\n');
        if call.unplaced > 0 {
            out.push_str(&format!(
                "({} samples at the function's entry or in no statement)\n",
                call.unplaced
            ));
        }
        for statement in &call.statements {
            out.push_str(&format!(
                "- {} {}\n",
                python_str(&statement.snippet),
                statement.hits
            ));
            if traces.locals {
                let vars: Vec<String> = statement
                    .vars
                    .iter()
                    .map(|(name, values)| {
                        let values: Vec<String> = values
                            .iter()
                            .map(|(t, r)| format!("({}, {})", python_str(t), python_str(r)))
                            .collect();
                        format!("{}: [{}]", python_str(name), values.join(", "))
                    })
                    .collect();
                out.push_str(&format!("{{{}}}\n", vars.join(", ")));
            }
        }
    }
    out
}

/// A string as Python's `repr` shows it (non-printable characters we cannot classify are
/// shown with a `\u` escape).
fn python_str(s: &str) -> String {
    crate::reader::values::str_repr(s).unwrap_or_else(|| {
        let escaped: String = s
            .chars()
            .map(|c| match c {
                '\'' => "\\'".to_owned(),
                '\\' => "\\\\".to_owned(),
                c if c.is_ascii() && !c.is_ascii_control() => c.to_string(),
                c if c.is_alphanumeric() => c.to_string(),
                c if (c as u32) <= 0xff => format!("\\x{:02x}", c as u32),
                c if (c as u32) <= 0xffff => format!("\\u{:04x}", c as u32),
                c => format!("\\U{:08x}", c as u32),
            })
            .collect();
        format!("'{escaped}'")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::sample::LocalSample;

    fn frame(code: CodeId, line: u32) -> FrameRef {
        FrameRef { code, line }
    }

    fn followed(address: u64, index: u32, line: u32, value: &str) -> FollowedFrame {
        FollowedFrame {
            address,
            frame_index: index,
            first_line: 1,
            point: SourcePoint {
                line,
                column: Some(4),
            },
            locals: vec![LocalSample {
                name: "x".into(),
                type_name: "int".into(),
                repr: value.into(),
            }],
        }
    }

    /// One thread: the followed function (code 1) called from code 0 at `caller_line`.
    fn sample(address: u64, caller_line: u32, line: u32, value: &str) -> Sample {
        let mut s = Sample::default();
        s.frames.push(frame(1, line));
        s.frames.push(frame(0, caller_line));
        s.end_thread(7, false);
        s.followed.push(followed(address, 0, line, value));
        s
    }

    fn names(code: CodeId) -> Option<(String, String)> {
        Some(("/w/app.py".into(), ["main", "f"][code as usize].into()))
    }

    #[test]
    fn calls_split_on_absence_caller_moves_and_addresses() {
        let mut t = FunctionTracker::new("f", true);
        t.add_sample(&sample(0x100, 10, 2, "1"));
        t.add_sample(&sample(0x100, 10, 3, "2")); // same call
        let mut gap = Sample::default(); // the thread without the frame: the call returned
        gap.frames.push(frame(0, 11));
        gap.end_thread(7, false);
        t.add_sample(&gap);
        t.add_sample(&sample(0x100, 10, 2, "3")); // a new call at the same address
        t.add_sample(&sample(0x100, 12, 2, "4")); // the caller moved: another call
        let mut recursion = sample(0x100, 12, 2, "4");
        recursion.frames.insert(0, frame(1, 2)); // an inner call at another address
        recursion.threads[0].end = 3;
        recursion.followed[0].frame_index = 1;
        recursion.followed.push(followed(0x200, 0, 2, "5"));
        t.add_sample(&recursion);
        let results = t.results(names);
        let samples: Vec<u64> = results.calls.iter().map(|c| c.samples).collect();
        assert_eq!(samples, vec![2, 1, 2, 1]);
        assert_eq!(results.calls[3].frame_address, 0x200);
        assert_eq!(results.calls[3].callers.len(), 2);
        assert_eq!(
            results.calls[0].stack_string(),
            "main (app.py:10)\nf (app.py:1)"
        );
    }

    #[test]
    fn points_resolve_to_statements_with_their_variables() {
        let mut t = FunctionTracker::new("f", true);
        t.add_sample(&sample(0x100, 10, 2, "1"));
        t.add_sample(&sample(0x100, 10, 2, "1"));
        let mut traces = t.results(names);
        assert!(traces.needs_resolving());
        let source = "def f(x):\n    y = x; z = 2\n";
        traces.resolve(&|_| Some(source.to_owned()));
        let call = &traces.calls[0];
        assert_eq!(call.statements.len(), 1);
        assert_eq!(call.statements[0].snippet, "y = x");
        assert_eq!(call.statements[0].hits, 2);
        assert_eq!(
            call.statements[0].vars["x"],
            vec![("int".to_owned(), "1".to_owned())]
        );
        let text = render_text(&traces);
        assert!(
            text.contains("- 'y = x' 2\n{'x': [('int', '1')]}"),
            "{text}"
        );
    }
}

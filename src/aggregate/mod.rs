//! The aggregator: folds compact samples into hit counts keyed by small integers, and turns
//! them into a [`CoverageResults`] (strings, trace's keys) once at the end.
//!
//! Counting rules, per sample (one instant of every thread):
//! - a line's `hits` grows by one if any frame of any thread stands on it (a recursive
//!   function's line counts once per sample, not once per frame);
//! - its `self_hits` grows by one if it is the innermost frame of some thread;
//! - every frame's function is a called function;
//! - each adjacent pair of frames (caller below, callee above) is an edge, counted once per
//!   sample.
//! - each thread's whole stack (outermost first, as `(function, line)`) counts one thread
//!   sample, for flame graphs; truncated stacks are left out, as they earn no self hit. At
//!   most [`MAX_DISTINCT_STACKS`] distinct stacks are kept; samples of further new stacks are
//!   counted as dropped.

pub mod filter;
pub mod model;
use crate::aggregate::filter::Filter;
use crate::aggregate::model::{CoverageResults, FuncKey, LineHits, StackFrame, StackKey, Stacks};
use crate::function_view::FunctionTracker;
use crate::reader::sample::{CodeId, CodeInfo, Message, Sample};
use rustc_hash::FxHashMap as HashMap;

/// The most distinct whole stacks kept for flame graphs (about 30 MB at a depth of 50).
pub const MAX_DISTINCT_STACKS: usize = 65_536;

type FileIdx = u32;
type FuncIdx = u32;

/// A counter that also remembers the last sample that touched it, so that each sample adds at
/// most one.
#[derive(Debug, Default, Clone, Copy)]
struct StampedCount {
    count: u64,
    last_sample: u64,
}

impl StampedCount {
    fn hit(&mut self, sample_no: u64) {
        if self.last_sample != sample_no {
            self.last_sample = sample_no;
            self.count += 1;
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct LineCounts {
    hits: StampedCount,
    self_hits: StampedCount,
}

/// Hit counts keyed by interned ids.
#[derive(Debug, Default)]
pub struct Aggregator {
    /// code id → (file, function) indexes.
    codes: Vec<Option<(FileIdx, FuncIdx)>>,
    files: Interned<String>,
    funcs: Interned<(FileIdx, String)>,
    lines: HashMap<(FileIdx, u32), LineCounts>,
    edges: HashMap<(FuncIdx, FuncIdx), StampedCount>,
    called: Vec<bool>,
    /// Per thread id, whole stacks, outermost first, as `(function, line)` → thread samples.
    stacks: HashMap<u64, HashMap<Vec<(FuncIdx, u32)>, u64>>,
    /// Distinct stacks kept, over all threads.
    distinct_stacks: usize,
    /// The pid the stacks are of; 0 when not known.
    process: u32,
    /// Per function, the lowest `co_firstlineno` of its codes (0: not known).
    first_lines: Vec<u32>,
    /// Thread samples of new stacks met after [`MAX_DISTINCT_STACKS`] were kept.
    stacks_dropped: u64,
    /// Reused buffer for the stack being looked up.
    stack_scratch: Vec<(FuncIdx, u32)>,
    /// Samples folded in so far; also the stamp of the current sample.
    samples: u64,
    /// Frames naming a code id never announced: a reader bug, counted rather than trusted.
    unknown_codes: u64,
    /// The function view's per-call tracking, with `--function`.
    function: Option<FunctionTracker>,
}

impl Aggregator {
    pub fn new() -> Aggregator {
        Aggregator::default()
    }

    /// Name `pid` as the process of every stack (for profiles' process label).
    pub fn of_process(mut self, pid: i32) -> Aggregator {
        self.process = u32::try_from(pid).unwrap_or(0);
        self
    }

    /// Also follow calls of the function the reader lists in [`Sample::followed`]
    /// (`--function`).
    pub fn with_function(mut self, qualname: &str, locals: bool) -> Aggregator {
        self.function = Some(FunctionTracker::new(qualname, locals));
        self
    }

    pub fn handle(&mut self, message: Message) {
        match message {
            Message::Code(id, info) => self.add_code(id, info),
            Message::Sample(sample) => self.add_sample(&sample),
            // Answered by the session's aggregator thread, which knows the filter; dropping
            // the request tells the requester no flush comes.
            Message::Flush(..) => {}
        }
    }

    fn add_code(&mut self, id: CodeId, info: CodeInfo) {
        let file = self.files.intern(info.filename);
        let func = self.funcs.intern((file, info.funcname));
        let slot = id as usize;
        if self.codes.len() <= slot {
            self.codes.resize(slot + 1, None);
        }
        self.codes[slot] = Some((file, func));
        if self.called.len() < self.funcs.len() {
            self.called.resize(self.funcs.len(), false);
            self.first_lines.resize(self.funcs.len(), 0);
        }
        let first = &mut self.first_lines[func as usize];
        if *first == 0 || (info.first_line != 0 && info.first_line < *first) {
            *first = info.first_line;
        }
    }

    fn resolve(&self, code: CodeId) -> Option<(FileIdx, FuncIdx)> {
        self.codes.get(code as usize).copied().flatten()
    }

    pub fn add_sample(&mut self, sample: &Sample) {
        // A sample naming an unknown code would be half-counted: check before counting.
        if sample.frames.iter().any(|f| self.resolve(f.code).is_none()) {
            self.unknown_codes += 1;
            return;
        }
        self.samples += 1;
        let stamp = self.samples;
        for (thread, frames) in sample.stacks() {
            let mut callee: Option<FuncIdx> = None;
            for (depth, frame) in frames.iter().enumerate() {
                let Some((file, func)) = self.resolve(frame.code) else {
                    continue;
                };
                let line = self.lines.entry((file, frame.line)).or_default();
                line.hits.hit(stamp);
                if depth == 0 && !thread.truncated {
                    line.self_hits.hit(stamp);
                }
                self.called[func as usize] = true;
                if let Some(callee) = callee {
                    self.edges.entry((func, callee)).or_default().hit(stamp);
                }
                callee = Some(func);
            }
            if !thread.truncated && !frames.is_empty() {
                self.count_stack(thread.thread_id, frames);
            }
        }
        if let Some(function) = &mut self.function {
            function.add_sample(sample);
        }
    }

    fn count_stack(&mut self, thread: u64, frames: &[crate::reader::sample::FrameRef]) {
        let mut key = std::mem::take(&mut self.stack_scratch);
        key.clear();
        key.extend(
            frames
                .iter()
                .rev()
                .filter_map(|frame| self.resolve(frame.code).map(|(_, func)| (func, frame.line))),
        );
        let stacks = self.stacks.entry(thread).or_default();
        if let Some(count) = stacks.get_mut(key.as_slice()) {
            *count += 1;
        } else if self.distinct_stacks < MAX_DISTINCT_STACKS {
            stacks.insert(key.clone(), 1);
            self.distinct_stacks += 1;
        } else {
            self.stacks_dropped += 1;
        }
        self.stack_scratch = key;
    }

    /// Samples folded in.
    #[cfg(test)]
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Samples refused because they named a code id never announced.
    pub fn unknown_codes(&self) -> u64 {
        self.unknown_codes
    }

    /// The results with strings, lines of files the filter ignores left out of `counts`
    /// (as trace does: its filters apply to line counts only).
    pub fn results(&self, filter: &Filter) -> CoverageResults {
        let keys: Vec<FuncKey> = self
            .funcs
            .values
            .iter()
            .map(|(file, name)| FuncKey::new(&self.files.values[*file as usize], name))
            .collect();
        let ignored: Vec<bool> = self
            .files
            .values
            .iter()
            .map(|file| filter.ignores(file))
            .collect();
        let mut results = CoverageResults::default();
        for (&(file, line), counts) in &self.lines {
            if ignored[file as usize] {
                continue;
            }
            results.counts.insert(
                (self.files.values[file as usize].clone(), line),
                LineHits {
                    hits: counts.hits.count,
                    self_hits: counts.self_hits.count,
                },
            );
        }
        for (func, _) in self.called.iter().enumerate().filter(|(_, c)| **c) {
            results.calledfuncs.insert(keys[func].clone());
            if self.first_lines[func] != 0 {
                results
                    .first_lines
                    .insert(keys[func].clone(), self.first_lines[func]);
            }
        }
        for (&(caller, callee), hits) in &self.edges {
            results.callers.insert(
                (keys[caller as usize].clone(), keys[callee as usize].clone()),
                hits.count,
            );
        }
        let mut stacks = Stacks {
            dropped: self.stacks_dropped,
            ..Stacks::default()
        };
        for (&thread, thread_stacks) in &self.stacks {
            for (stack, count) in thread_stacks {
                let frames = stack
                    .iter()
                    .map(|&(func, line)| StackFrame {
                        func: keys[func as usize].clone(),
                        line,
                    })
                    .collect();
                let key = StackKey {
                    process: self.process,
                    thread,
                    frames,
                };
                stacks.samples.insert(key, *count);
            }
        }
        results.stacks = Some(stacks);
        results.function = self.function.as_ref().map(|f| {
            f.results(|code| {
                let (file, func) = self.resolve(code)?;
                Some((
                    self.files.values[file as usize].clone(),
                    self.funcs.values[func as usize].1.clone(),
                ))
            })
        });
        results
    }
}

/// Values numbered in order of first appearance.
#[derive(Debug)]
struct Interned<T: std::hash::Hash + Eq + Clone> {
    values: Vec<T>,
    index: HashMap<T, u32>,
}

impl<T: std::hash::Hash + Eq + Clone> Default for Interned<T> {
    fn default() -> Self {
        Interned {
            values: Vec::new(),
            index: HashMap::default(),
        }
    }
}

impl<T: std::hash::Hash + Eq + Clone> Interned<T> {
    fn intern(&mut self, value: T) -> u32 {
        if let Some(i) = self.index.get(&value) {
            return *i;
        }
        let i = self.values.len() as u32;
        self.index.insert(value.clone(), i);
        self.values.push(value);
        i
    }

    fn len(&self) -> usize {
        self.values.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::sample::FrameRef;

    fn code(filename: &str, funcname: &str) -> CodeInfo {
        CodeInfo {
            filename: filename.into(),
            funcname: funcname.into(),
            first_line: 1,
        }
    }

    fn sample(threads: &[&[(CodeId, u32)]]) -> Sample {
        let mut s = Sample::default();
        for (i, frames) in threads.iter().enumerate() {
            for &(code, line) in frames.iter() {
                s.frames.push(FrameRef { code, line });
            }
            s.end_thread(i as u64, false);
        }
        s
    }

    #[test]
    fn counts_each_line_and_edge_once_per_sample() {
        let mut agg = Aggregator::new();
        agg.handle(Message::Code(0, code("/w.py", "<module>")));
        agg.handle(Message::Code(1, code("/w.py", "fib")));
        // fib recursing: line 3 of fib three times on one stack, and a second thread in fib.
        agg.add_sample(&sample(&[
            &[(1, 3), (1, 3), (1, 3), (0, 10)],
            &[(1, 2), (0, 12)],
        ]));
        agg.add_sample(&sample(&[&[(1, 2), (0, 10)]]));
        let r = agg.results(&Filter::default());
        let hits = |line: u32| r.counts[&("/w.py".to_owned(), line)];
        assert_eq!(
            hits(3),
            LineHits {
                hits: 1,
                self_hits: 1
            }
        );
        assert_eq!(
            hits(2),
            LineHits {
                hits: 2,
                self_hits: 2
            }
        );
        assert_eq!(hits(10).hits, 2);
        assert_eq!(
            hits(12),
            LineHits {
                hits: 1,
                self_hits: 0
            }
        );
        let module = FuncKey::new("/w.py", "<module>");
        let fib = FuncKey::new("/w.py", "fib");
        assert_eq!(r.callers[&(module.clone(), fib.clone())], 2);
        assert_eq!(r.callers[&(fib.clone(), fib.clone())], 1);
        assert_eq!(r.callers.len(), 2);
        assert_eq!(r.calledfuncs.len(), 2);
        assert_eq!(fib.modulename, "w");
    }

    #[test]
    fn whole_stacks_are_counted_per_thread_sample() {
        let mut agg = Aggregator::new();
        agg.handle(Message::Code(0, code("/w.py", "<module>")));
        agg.handle(Message::Code(1, code("/w.py", "f")));
        agg.add_sample(&sample(&[&[(1, 3), (0, 10)], &[(1, 3), (0, 10)]]));
        agg.add_sample(&sample(&[&[(1, 4), (0, 10)], &[]]));
        let stacks = agg.results(&Filter::default()).stacks.unwrap();
        let module = FuncKey::new("/w.py", "<module>");
        let f = FuncKey::new("/w.py", "f");
        let stack = |line| {
            vec![
                StackFrame {
                    func: module.clone(),
                    line: 10,
                },
                StackFrame {
                    func: f.clone(),
                    line,
                },
            ]
        };
        let key = |thread, frames| StackKey {
            process: 0,
            thread,
            frames,
        };
        // Each thread's stack apart; summed over threads for flame graphs.
        assert_eq!(stacks.samples[&key(0, stack(3))], 1);
        assert_eq!(stacks.samples[&key(1, stack(3))], 1);
        assert_eq!(stacks.samples[&key(0, stack(4))], 1);
        assert_eq!(stacks.samples.len(), 3);
        assert_eq!(stacks.by_frames()[stack(3).as_slice()], 2);
        assert_eq!(stacks.by_frames().len(), 2);
        assert_eq!(stacks.dropped, 0);
    }

    #[test]
    fn distinct_stacks_are_bounded() {
        let mut agg = Aggregator::new();
        agg.handle(Message::Code(0, code("/w.py", "f")));
        for line in 0..(MAX_DISTINCT_STACKS as u32 + 5) {
            agg.add_sample(&sample(&[&[(0, line)]]));
        }
        agg.add_sample(&sample(&[&[(0, 0)]]));
        let stacks = agg.results(&Filter::default()).stacks.unwrap();
        assert_eq!(stacks.samples.len(), MAX_DISTINCT_STACKS);
        assert_eq!(stacks.dropped, 5);
        assert_eq!(
            stacks.samples.values().sum::<u64>(),
            MAX_DISTINCT_STACKS as u64 + 1
        );
    }

    #[test]
    fn truncated_stacks_earn_no_self_hits() {
        let mut agg = Aggregator::new();
        agg.handle(Message::Code(0, code("/w.py", "f")));
        let mut s = Sample::default();
        s.frames.push(FrameRef { code: 0, line: 4 });
        s.end_thread(1, true);
        agg.add_sample(&s);
        let r = agg.results(&Filter::default());
        assert_eq!(
            r.counts[&("/w.py".to_owned(), 4)],
            LineHits {
                hits: 1,
                self_hits: 0
            }
        );
    }

    #[test]
    fn refuses_samples_with_unknown_codes() {
        let mut agg = Aggregator::new();
        agg.handle(Message::Code(0, code("/w.py", "f")));
        agg.add_sample(&sample(&[&[(0, 1), (5, 2)]]));
        assert_eq!(agg.samples(), 0);
        assert_eq!(agg.unknown_codes(), 1);
        assert!(agg.results(&Filter::default()).is_empty());
    }

    #[test]
    fn filters_apply_to_counts_only() {
        let mut agg = Aggregator::new();
        agg.handle(Message::Code(0, code("/lib/os.py", "f")));
        agg.add_sample(&sample(&[&[(0, 1)]]));
        let filter = Filter::new(&["os".to_owned()], &[]);
        let r = agg.results(&filter);
        assert!(r.counts.is_empty());
        assert_eq!(r.calledfuncs.len(), 1);
    }
}

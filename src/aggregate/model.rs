//! The results model: Python's `trace.CoverageResults`, plus the per-line "self" hits and
//! per-edge hits that sampling gives us for free.
//!
//! Keys are the ones Lib/trace.py uses, so the stdlib can read what we write:
//! - `counts`: `(filename, lineno) → hits`
//! - `calledfuncs`: `(filename, modulename, funcname)`
//! - `callers`: `((caller file, mod, func), (callee file, mod, func))`

use std::collections::{BTreeMap, BTreeSet};

/// A function as trace names it: `(filename, modulename, funcname)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FuncKey {
    pub filename: String,
    pub modulename: String,
    pub funcname: String,
}

impl FuncKey {
    /// A function key with trace's module name derived from the file name.
    pub fn new(filename: &str, funcname: &str) -> FuncKey {
        FuncKey {
            filename: filename.to_owned(),
            modulename: module_name(filename),
            funcname: funcname.to_owned(),
        }
    }
}

/// Hits of one line: `hits` counts samples in which any frame stood on it, `self_hits` the
/// samples in which it was the innermost frame of some thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineHits {
    pub hits: u64,
    pub self_hits: u64,
}

/// One frame of a recorded stack: the function and the line it stood on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StackFrame {
    pub func: FuncKey,
    pub line: u32,
}

/// One whole stack of one thread of one process: what [`Stacks`] counts samples of.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StackKey {
    /// The process's pid; 0 when not known (results read from a file without it).
    pub process: u32,
    /// Python's thread id (`threading.get_ident()`); 0 when not known.
    pub thread: u64,
    /// Outermost frame first.
    pub frames: Vec<StackFrame>,
}

#[cfg(test)]
impl StackKey {
    /// A stack of an unknown process and thread.
    pub fn of_frames(frames: Vec<StackFrame>) -> StackKey {
        StackKey {
            process: 0,
            thread: 0,
            frames,
        }
    }
}

/// Whole stacks with the number of thread samples that showed each, per thread and process,
/// for flame graphs and profiles. Bounded: once [`Stacks::samples`] holds the aggregator's
/// maximum of distinct stacks, samples of new stacks are only counted in [`Stacks::dropped`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stacks {
    /// Stack → thread samples that stood exactly on it.
    pub samples: BTreeMap<StackKey, u64>,
    /// Thread samples whose stack was new when the maximum of distinct stacks was reached.
    pub dropped: u64,
}

impl Stacks {
    /// Sum the samples of `other` into `self`.
    pub fn update(&mut self, other: &Stacks) {
        for (stack, count) in &other.samples {
            let total = self.samples.entry(stack.clone()).or_default();
            *total = total.saturating_add(*count);
        }
        self.dropped = self.dropped.saturating_add(other.dropped);
    }

    /// The samples of each stack summed over threads and processes (for flame graphs).
    pub fn by_frames(&self) -> BTreeMap<&[StackFrame], u64> {
        let mut out: BTreeMap<&[StackFrame], u64> = BTreeMap::new();
        for (key, count) in &self.samples {
            let total = out.entry(key.frames.as_slice()).or_default();
            *total = total.saturating_add(*count);
        }
        out
    }
}

/// `trace.CoverageResults`: what ran, how often, who called whom.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoverageResults {
    /// `(filename, lineno) → hits`.
    pub counts: BTreeMap<(String, u32), LineHits>,
    /// Every function seen running.
    pub calledfuncs: BTreeSet<FuncKey>,
    /// `(caller, callee) → samples in which the edge was on a stack` (trace itself stores 1).
    pub callers: BTreeMap<(FuncKey, FuncKey), u64>,
    /// The first line (`co_firstlineno`) of called functions, where the reader knew it: for
    /// profiles' function records. Not trace's: its pickle has no place for it.
    pub first_lines: BTreeMap<FuncKey, u32>,
    /// Whole stacks, for flame graphs; `None` when the results came from a format that cannot
    /// hold them (trace's pickle).
    pub stacks: Option<Stacks>,
    /// The function view (`--function`): per call of one function, statements, hits and
    /// values of its locals; `None` without `--function`.
    pub function: Option<crate::function_view::FunctionTraces>,
}

impl CoverageResults {
    /// Merge `other` into `self` as `CoverageResults.update` does: counts are summed, functions
    /// and edges unioned. Self hits and edge hits, which trace does not have, are summed too.
    pub fn update(&mut self, other: &CoverageResults) {
        for (key, hits) in &other.counts {
            let entry = self.counts.entry(key.clone()).or_default();
            // Saturating: counts read back from a file may be anything.
            entry.hits = entry.hits.saturating_add(hits.hits);
            entry.self_hits = entry.self_hits.saturating_add(hits.self_hits);
        }
        self.calledfuncs.extend(other.calledfuncs.iter().cloned());
        for (edge, hits) in &other.callers {
            let total = self.callers.entry(edge.clone()).or_default();
            *total = total.saturating_add(*hits);
        }
        for (func, line) in &other.first_lines {
            let mine = self.first_lines.entry(func.clone()).or_insert(*line);
            *mine = (*mine).min(*line);
        }
        // Stacks survive a merge only if both sides have them: a partial flame graph would
        // look complete.
        match (&mut self.stacks, &other.stacks) {
            (Some(mine), Some(theirs)) => mine.update(theirs),
            _ => self.stacks = None,
        }
        // Calls of the followed function are each their own: a merge lists both sides' calls.
        match (&mut self.function, &other.function) {
            (Some(mine), Some(theirs)) if mine.qualname == theirs.qualname => {
                mine.calls.extend(theirs.calls.iter().cloned());
                mine.dropped_calls = mine.dropped_calls.saturating_add(theirs.dropped_calls);
                mine.dropped_values = mine.dropped_values.saturating_add(theirs.dropped_values);
            }
            (None, Some(theirs)) => self.function = Some(theirs.clone()),
            _ => {}
        }
    }

    /// The same results with every file name passed through `map` (for `--path-map`). Keys
    /// that become equal are merged as [`CoverageResults::update`] merges.
    pub fn map_paths(&self, map: impl Fn(&str) -> String) -> CoverageResults {
        let func = |f: &FuncKey| FuncKey {
            filename: map(&f.filename),
            modulename: f.modulename.clone(),
            funcname: f.funcname.clone(),
        };
        let mut out = CoverageResults {
            stacks: self.stacks.as_ref().map(|_| Stacks::default()),
            function: self.function.as_ref().map(|f| {
                let mut f = f.clone();
                for call in &mut f.calls {
                    call.filename = map(&call.filename);
                    for caller in &mut call.callers {
                        caller.1 = map(&caller.1);
                    }
                }
                f
            }),
            ..CoverageResults::default()
        };
        for ((file, line), hits) in &self.counts {
            let entry = out.counts.entry((map(file), *line)).or_default();
            // Saturating: counts read back from a file may be anything.
            entry.hits = entry.hits.saturating_add(hits.hits);
            entry.self_hits = entry.self_hits.saturating_add(hits.self_hits);
        }
        out.calledfuncs = self.calledfuncs.iter().map(func).collect();
        for (f, line) in &self.first_lines {
            let mine = out.first_lines.entry(func(f)).or_insert(*line);
            *mine = (*mine).min(*line);
        }
        for ((a, b), hits) in &self.callers {
            let total = out.callers.entry((func(a), func(b))).or_default();
            *total = total.saturating_add(*hits);
        }
        if let (Some(theirs), Some(mine)) = (&self.stacks, &mut out.stacks) {
            mine.dropped = theirs.dropped;
            for (stack, count) in &theirs.samples {
                let mapped = StackKey {
                    frames: stack
                        .frames
                        .iter()
                        .map(|frame| StackFrame {
                            func: func(&frame.func),
                            line: frame.line,
                        })
                        .collect(),
                    ..*stack
                };
                let total = mine.samples.entry(mapped).or_default();
                *total = total.saturating_add(*count);
            }
        }
        out
    }

    /// Leave out the line counts of files for which `ignored` is true (trace's filters apply
    /// to line counts only).
    pub fn remove_counts_where(&mut self, ignored: impl Fn(&str) -> bool) {
        self.counts.retain(|(file, _), _| !ignored(file));
    }

    /// The distinct files with at least one counted line.
    pub fn files(&self) -> BTreeSet<&str> {
        self.counts.keys().map(|(file, _)| file.as_str()).collect()
    }

    /// Lines hit in `filename`, with their hits.
    pub fn lines_of<'a>(&'a self, filename: &'a str) -> impl Iterator<Item = (u32, LineHits)> + 'a {
        self.counts
            .range((filename.to_owned(), 0)..=(filename.to_owned(), u32::MAX))
            .map(|((_, line), hits)| (*line, *hits))
    }

    /// True when nothing at all was recorded (stacks follow from functions, so they are not
    /// looked at).
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.calledfuncs.is_empty() && self.callers.is_empty()
    }
}

/// trace's `_modname`: the file's base name without its extension.
pub fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    // os.path.splitext: the extension starts at the last dot, unless the name is all
    // leading dots before it (".bashrc" has no extension).
    match base.rfind('.') {
        Some(dot) if base[..dot].chars().any(|c| c != '.') => base[..dot].to_owned(),
        _ => base.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_name_follows_splitext() {
        assert_eq!(module_name("/a/b/spam.py"), "spam");
        assert_eq!(module_name("spam.tar.gz"), "spam.tar");
        assert_eq!(module_name("/a/.hidden"), ".hidden");
        assert_eq!(module_name("/a/..x.py"), "..x");
        assert_eq!(
            module_name("<frozen importlib._bootstrap>"),
            "<frozen importlib"
        );
        assert_eq!(module_name("noext"), "noext");
    }

    #[test]
    fn update_sums_counts_and_unions_the_rest() {
        let f = FuncKey::new("/x/a.py", "f");
        let g = FuncKey::new("/x/a.py", "g");
        let mut a = CoverageResults::default();
        a.counts.insert(
            ("/x/a.py".into(), 3),
            LineHits {
                hits: 2,
                self_hits: 1,
            },
        );
        a.calledfuncs.insert(f.clone());
        a.callers.insert((f.clone(), g.clone()), 2);
        let mut b = CoverageResults::default();
        b.counts.insert(
            ("/x/a.py".into(), 3),
            LineHits {
                hits: 5,
                self_hits: 0,
            },
        );
        b.counts.insert(
            ("/x/a.py".into(), 4),
            LineHits {
                hits: 1,
                self_hits: 1,
            },
        );
        b.calledfuncs.insert(f.clone());
        b.calledfuncs.insert(g.clone());
        b.callers.insert((f.clone(), g.clone()), 3);
        a.update(&b);
        assert_eq!(
            a.counts[&("/x/a.py".to_owned(), 3)],
            LineHits {
                hits: 7,
                self_hits: 1
            }
        );
        assert_eq!(a.counts[&("/x/a.py".to_owned(), 4)].hits, 1);
        assert_eq!(a.calledfuncs.len(), 2);
        assert_eq!(a.callers[&(f, g)], 5);
    }
}

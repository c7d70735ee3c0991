//! What `tracer top` shows, computed from whole stacks: per line and per function, the thread
//! samples that stood on it innermost (self) and anywhere on the stack (total), over one thread
//! or all, since the start or over the last refresh.

use crate::aggregate::model::{StackKey, Stacks};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// How rows are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    SelfHits,
    Total,
    Name,
}

impl SortKey {
    /// The next key, for the sort key.
    pub fn next(self) -> SortKey {
        match self {
            SortKey::SelfHits => SortKey::Total,
            SortKey::Total => SortKey::Name,
            SortKey::Name => SortKey::SelfHits,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SortKey::SelfHits => "self",
            SortKey::Total => "total",
            SortKey::Name => "name",
        }
    }
}

/// One row: a line (`file`, `line`) or a function (`file`, `name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub file: String,
    /// The line, for line rows; the function's first line seen, for function rows.
    pub line: u32,
    /// The function's name (function rows; empty for line rows).
    pub function: String,
    pub self_samples: u64,
    pub total_samples: u64,
}

/// The tables for one refresh.
#[derive(Debug, Default)]
pub struct Tables {
    /// Thread samples counted (the 100% of every percentage).
    pub samples: u64,
    pub lines: Vec<Row>,
    pub functions: Vec<Row>,
}

/// The thread samples gained by each stack since `before` (a stack absent before counts whole).
pub fn since(now: &Stacks, before: &Stacks) -> Stacks {
    let mut out = Stacks::default();
    for (key, &count) in &now.samples {
        let gained = count.saturating_sub(before.samples.get(key).copied().unwrap_or(0));
        if gained > 0 {
            out.samples.insert(key.clone(), gained);
        }
    }
    out
}

/// The threads the stacks are of, as (pid, thread id).
pub fn threads(stacks: &Stacks) -> Vec<(u32, u64)> {
    let set: BTreeSet<(u32, u64)> = stacks
        .samples
        .keys()
        .map(|k| (k.process, k.thread))
        .collect();
    set.into_iter().collect()
}

/// The tables of `stacks`, of `thread` only if given, sorted by `sort`.
pub fn tables(stacks: &Stacks, thread: Option<(u32, u64)>, sort: SortKey) -> Tables {
    let wanted = |key: &StackKey| thread.is_none_or(|t| (key.process, key.thread) == t);
    let mut samples = 0u64;
    let mut lines: HashMap<(&str, u32), (u64, u64)> = HashMap::new();
    let mut functions: BTreeMap<(&str, &str), (u32, u64, u64)> = BTreeMap::new();
    let mut seen_lines = HashSet::new();
    let mut seen_functions = HashSet::new();
    for (key, &count) in stacks.samples.iter().filter(|(k, _)| wanted(k)) {
        samples += count;
        seen_lines.clear();
        seen_functions.clear();
        // Innermost last: the leaf earns the self samples.
        for (depth, frame) in key.frames.iter().rev().enumerate() {
            let file = frame.func.filename.as_str();
            let entry = lines.entry((file, frame.line)).or_default();
            if depth == 0 {
                entry.0 += count;
            }
            // A recursive stack counts a line or function once in its total.
            if seen_lines.insert((file, frame.line)) {
                entry.1 += count;
            }
            let name = frame.func.funcname.as_str();
            let entry = functions.entry((file, name)).or_insert((frame.line, 0, 0));
            entry.0 = entry.0.min(frame.line);
            if depth == 0 {
                entry.1 += count;
            }
            if seen_functions.insert((file, name)) {
                entry.2 += count;
            }
        }
    }
    let mut line_rows: Vec<Row> = lines
        .into_iter()
        .map(|((file, line), (self_samples, total_samples))| Row {
            file: file.to_owned(),
            line,
            function: String::new(),
            self_samples,
            total_samples,
        })
        .collect();
    let mut function_rows: Vec<Row> = functions
        .into_iter()
        .map(|((file, name), (line, self_samples, total_samples))| Row {
            file: file.to_owned(),
            line,
            function: name.to_owned(),
            self_samples,
            total_samples,
        })
        .collect();
    sort_rows(&mut line_rows, sort);
    sort_rows(&mut function_rows, sort);
    Tables {
        samples,
        lines: line_rows,
        functions: function_rows,
    }
}

fn sort_rows(rows: &mut [Row], sort: SortKey) {
    let by_name =
        |a: &Row, b: &Row| (&a.file, a.line, &a.function).cmp(&(&b.file, b.line, &b.function));
    match sort {
        SortKey::SelfHits => rows.sort_by(|a, b| {
            (b.self_samples, b.total_samples)
                .cmp(&(a.self_samples, a.total_samples))
                .then_with(|| by_name(a, b))
        }),
        SortKey::Total => rows.sort_by(|a, b| {
            (b.total_samples, b.self_samples)
                .cmp(&(a.total_samples, a.self_samples))
                .then_with(|| by_name(a, b))
        }),
        SortKey::Name => rows.sort_by(by_name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::model::{FuncKey, StackFrame};

    fn stacks() -> Stacks {
        let main = FuncKey::new("/app/m.py", "<module>");
        let fib = FuncKey::new("/app/m.py", "fib");
        let frame = |func: &FuncKey, line| StackFrame {
            func: func.clone(),
            line,
        };
        let key = |thread, frames| StackKey {
            process: 1,
            thread,
            frames,
        };
        let mut s = Stacks::default();
        // fib recursing on thread 7: line 3 twice on one stack.
        s.samples.insert(
            key(7, vec![frame(&main, 10), frame(&fib, 3), frame(&fib, 3)]),
            4,
        );
        s.samples.insert(key(8, vec![frame(&main, 11)]), 1);
        s
    }

    #[test]
    fn self_and_total_count_each_stack_once_per_line_and_function() {
        let t = tables(&stacks(), None, SortKey::SelfHits);
        assert_eq!(t.samples, 5);
        let top = &t.lines[0];
        assert_eq!((top.line, top.self_samples, top.total_samples), (3, 4, 4));
        let fib = t.functions.iter().find(|r| r.function == "fib").unwrap();
        assert_eq!((fib.self_samples, fib.total_samples), (4, 4));
        let module = t
            .functions
            .iter()
            .find(|r| r.function == "<module>")
            .unwrap();
        assert_eq!(
            (module.self_samples, module.total_samples, module.line),
            (1, 5, 10)
        );
    }

    #[test]
    fn a_thread_filter_and_an_interval_narrow_the_tables() {
        let t = tables(&stacks(), Some((1, 8)), SortKey::Total);
        assert_eq!(t.samples, 1);
        assert_eq!(t.lines.len(), 1);
        assert_eq!(threads(&stacks()), vec![(1, 7), (1, 8)]);
        let mut later = stacks();
        for count in later.samples.values_mut() {
            *count += 2;
        }
        let gained = since(&later, &stacks());
        assert_eq!(gained.samples.values().sum::<u64>(), 4);
        assert!(since(&stacks(), &stacks()).samples.is_empty());
    }
}

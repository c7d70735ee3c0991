//! coverage.py's arcs that a snapshot proves: pairs of lines `(from, to)` that coverage.py's
//! tracer would have recorded, each because a transition between two instructions is proven
//! to have happened (docs/snapshot.md, "Arcs").
//!
//! coverage.py (`coverage run --branch`, its settrace-based tracers) keeps, per frame, the
//! line of its last line event (`-co_firstlineno` at a call), and records `(last, line)` at
//! each line event and `(last, -co_firstlineno)` at a return. CPython 3.12+ fires a line event
//! at an instruction that starts a line (its line differs from the previous instruction's in
//! code order, or it is a jump target or a handler) when the instruction run before it in the
//! frame has another line. `END_FOR`, `END_SEND`, `END_ASYNC_FOR` and `RESUME` are skipped
//! when lines are assigned, and a frame resumed after `YIELD_VALUE` restarts from its line:
//! the walks below stop at them.
//!
//! A transition `p → q` is proven when `q` ran and `p` is the only instruction that can run
//! right before it in the graph, or, in code with no frame live, when rule E or F proves that
//! `q` started right after `p`; or, entered from several places, every one of them would record
//! the same arc. The tracer's last line once `p` ran is known when every way into the
//! instructions of `p`'s line that reach `p` without an event fires one (or, for an instruction
//! with no line, when its predecessors all agree), back to the entry `RESUME` at most; only then
//! is an arc written.

use super::cfg::Cfg;
use super::evidence::Instruction;
use super::opcodes::flags::RESUME;
use super::opcodes::Opcodes;
use crate::reader::PyVersion;
use std::collections::BTreeSet;

/// The first version whose arcs are written: the model of line events above (the instructions
/// skipped when lines are assigned, the entry `RESUME`) is 3.12's and later's, checked against
/// coverage.py there; 3.11's snapshot proves lines but no arc.
pub const FIRST_VERSION: PyVersion = PyVersion::new(3, 12);

/// What the arcs of one code object are computed from.
pub struct CodeArcs<'a> {
    pub instrs: &'a [Instruction],
    /// Proven instructions (evidence and sound inference).
    pub ran: &'a [bool],
    pub graph: &'a Cfg,
    /// No frame of this code was live when the walk ended: rules E and F hold.
    pub settled: bool,
    /// Each instruction's line; `None` for none, and for the prologue up to the entry RESUME.
    pub lines: &'a [Option<u32>],
    /// The `RESUME` whose execution is the call (the first at or after `_co_firsttraceable`).
    pub entry: Option<usize>,
    /// `co_firstlineno`: coverage.py's entry and exit arcs use its negation.
    pub first_line: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An instruction like any other for line events.
    Plain,
    /// A `RETURN_VALUE` or `RETURN_CONST`: the frame returns (an exit arc).
    Return,
    /// The entry `RESUME`: the tracer's last line is `-co_firstlineno`.
    Entry,
    /// Skipped when lines are assigned, or a resumption point: nothing is known across it.
    Opaque,
}

fn kinds(c: &CodeArcs, ops: &Opcodes) -> Vec<Kind> {
    c.instrs
        .iter()
        .enumerate()
        .map(|(k, ins)| {
            if Some(k) == c.entry {
                return Kind::Entry;
            }
            if ins.flags & RESUME != 0 {
                return Kind::Opaque;
            }
            match ops.get(ins.base).map(|op| op.name) {
                Some("END_FOR" | "END_SEND" | "END_ASYNC_FOR" | "YIELD_VALUE") | None => {
                    Kind::Opaque
                }
                Some("RETURN_VALUE" | "RETURN_CONST") => Kind::Return,
                Some(_) => Kind::Plain,
            }
        })
        .collect()
}

struct Walker<'a, 'b> {
    c: &'a CodeArcs<'b>,
    kinds: Vec<Kind>,
}

impl Walker<'_, '_> {
    fn line(&self, k: usize) -> Option<u32> {
        self.c.lines.get(k).copied().flatten()
    }

    /// An instruction with an ordinary role for line events.
    fn plain(&self, k: usize) -> bool {
        matches!(self.kinds[k], Kind::Plain | Kind::Return)
    }

    /// Whether `q`, of line `line`, fires a line event when `p` ran right before it.
    fn fires_after(&self, p: usize, q: usize, line: u32) -> bool {
        if !self.plain(q) || self.line(q) != Some(line) {
            return false;
        }
        match self.kinds[p] {
            // The entry RESUME never hides the next line event.
            Kind::Entry => q == p + 1,
            Kind::Opaque => false,
            // A fall-through starts a line only if the line changed in code order; a jump's
            // target and a handler always do. Either way the line must differ from p's.
            Kind::Plain | Kind::Return => self.line(p) != Some(line),
        }
    }

    /// coverage.py's last line in the frame once `k` has run (a negative number after the
    /// entry), whatever path led to `k`, if that can be told.
    fn last_line_after(&self, k: usize) -> Option<i64> {
        self.last_line_within(k, MAX_NO_LINE_DEPTH)
    }

    fn last_line_within(&self, k: usize, depth: usize) -> Option<i64> {
        match self.kinds[k] {
            Kind::Entry => return Some(-i64::from(self.c.first_line)),
            Kind::Opaque => return None,
            Kind::Plain | Kind::Return => {}
        }
        if let Some(line) = self.line(k) {
            return self.holds_line(k, line).then_some(i64::from(line));
        }
        // No line, no event: what it was after each predecessor, if they all agree. Not
        // across an exception edge: the next event would record an arc into a handler.
        let preds = self.c.graph.preds(k);
        if depth == 0 || preds.is_empty() || self.c.graph.entered_by_exception(k) {
            return None;
        }
        let mut value = None;
        for &p in preds {
            let v = self.last_line_within(p, depth - 1)?;
            if value.is_some_and(|known| known != v) {
                return None;
            }
            value = Some(v);
        }
        value
    }

    /// Whether the tracer's line is `line` whenever `k` (of that line) has run: every way into
    /// the instructions of that line from which `k` is reached without a line event fires one.
    /// (By induction on the execution: the first time one of them ran with another line, the
    /// instruction before it either fired the event or was one of them.)
    fn holds_line(&self, k: usize, line: u32) -> bool {
        let mut seen = vec![false; self.c.instrs.len()];
        let mut stack = vec![k];
        seen[k] = true;
        // Each instruction is pushed once at most.
        while let Some(j) = stack.pop() {
            let preds = self.c.graph.preds(j);
            if preds.is_empty() {
                return false;
            }
            for &p in preds {
                if self.fires_after(p, j, line) {
                    continue;
                }
                if !(self.plain(p) && self.line(p) == Some(line)) {
                    return false;
                }
                if !seen[p] {
                    seen[p] = true;
                    stack.push(p);
                }
            }
        }
        true
    }
}

/// Instructions with no line followed back at most, from one instruction.
const MAX_NO_LINE_DEPTH: usize = 4;

/// The arcs `(from, to)` proven in one code object, in coverage.py's numbering (negative:
/// `-co_firstlineno`, entering or leaving the code).
pub fn proven_arcs(c: &CodeArcs, ops: &Opcodes) -> BTreeSet<(i64, i64)> {
    let n = c.instrs.len();
    let mut arcs = BTreeSet::new();
    if c.ran.len() != n || c.lines.len() != n {
        return arcs;
    }
    let w = Walker {
        c,
        kinds: kinds(c, ops),
    };
    let mut transitions: BTreeSet<(usize, usize)> = BTreeSet::new();
    // coverage.py's parser models no arc into an exception handler: none is written.
    for q in (0..n).filter(|&q| c.ran[q] && !c.graph.entered_by_exception(q)) {
        match c.graph.preds(q) {
            [p] => {
                transitions.insert((*p, q));
            }
            // Entered from one of several places: proven if every way in records one arc.
            [first, ..] => {
                let Some(to) = w.line(q) else { continue };
                let arc_from = |p: usize| {
                    w.fires_after(p, q, to)
                        .then(|| w.last_line_after(p))
                        .flatten()
                };
                let from = arc_from(*first);
                if from.is_some_and(|f| f != i64::from(to))
                    && c.graph.preds(q).iter().all(|&p| arc_from(p) == from)
                {
                    arcs.insert((from.unwrap_or_default(), i64::from(to)));
                }
            }
            [] => {}
        }
        if c.settled {
            transitions.extend(
                c.graph
                    .forward(q)
                    .filter(|&s| !c.graph.entered_by_exception(s))
                    .map(|s| (q, s)),
            );
        }
    }
    for (p, q) in transitions {
        let Some(to) = w.line(q) else { continue };
        if !w.fires_after(p, q, to) {
            continue;
        }
        if let Some(from) = w.last_line_after(p).filter(|&from| from != i64::from(to)) {
            arcs.insert((from, i64::from(to)));
        }
    }
    let exit = -i64::from(c.first_line);
    for r in (0..n).filter(|&r| c.ran[r] && w.kinds[r] == Kind::Return) {
        if let Some(from) = w.last_line_after(r).filter(|&from| from > 0) {
            arcs.insert((from, exit));
        }
    }
    arcs
}

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
//! `q` started right after `p`. The tracer's last line once `p` ran is known when a walk back
//! through single predecessors reaches the entry `RESUME` or an instruction whose line event
//! fires whenever it runs; only then is an arc written.

use super::cfg::Cfg;
use super::evidence::Instruction;
use super::opcodes::flags::RESUME;
use super::opcodes::Opcodes;
use std::collections::BTreeSet;

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

    /// Whether `j` fires its line event whenever it runs.
    fn always_fires(&self, j: usize) -> bool {
        let Some(line) = self.line(j) else {
            return false;
        };
        let preds = self.c.graph.preds(j);
        !preds.is_empty() && preds.iter().all(|&p| self.fires_after(p, j, line))
    }

    /// coverage.py's last line in the frame once `k` has run (a negative number after the
    /// entry), if the walk can tell.
    fn last_line_after(&self, mut k: usize) -> Option<i64> {
        // Each step goes to a single predecessor: bounded by the instruction count.
        for _ in 0..self.c.instrs.len() {
            match self.kinds[k] {
                Kind::Entry => return Some(-i64::from(self.c.first_line)),
                Kind::Opaque => return None,
                Kind::Plain | Kind::Return => {}
            }
            match self.line(k) {
                Some(line) if self.always_fires(k) => return Some(i64::from(line)),
                // No event here when the single predecessor has the same line: the tracer's
                // line is what it was after that predecessor.
                Some(line) => match self.c.graph.preds(k) {
                    [p] if self.line(*p) == Some(line) => k = *p,
                    _ => return None,
                },
                None => match self.c.graph.preds(k) {
                    [p] => k = *p,
                    _ => return None,
                },
            }
        }
        None
    }
}

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
    for q in (0..n).filter(|&q| c.ran[q]) {
        if let [p] = c.graph.preds(q) {
            transitions.insert((*p, q));
        }
        if c.settled {
            transitions.extend(c.graph.forward(q).map(|s| (q, s)));
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

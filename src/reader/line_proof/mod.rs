//! Which line a CPython 3.8–3.9 frame's position proves ran.
//!
//! Before PEP 626 (3.10), `co_lnotab` gives every instruction a line, and an instruction the
//! compiler emitted without a line of its own inherits the one before it. Some of those run
//! without that line having run: a `with` block's cleanup (`WITH_CLEANUP_START` on 3.8,
//! `WITH_EXCEPT_START` on 3.9), entered when the body raised, stands on the body's *last* line;
//! `END_ASYNC_FOR`, entered when the async iterator is exhausted, on the async loop's last body
//! line. A frame sampled there (a context manager's `__exit__` running, say) would report a line
//! that never ran, one the stdlib's `trace` never sees: it reports a line when execution reaches
//! the *start* of its run of code in `co_lnotab`, and a jump into the middle of a line is no
//! line event.
//!
//! So a frame at instruction `i` is reported on the line of the nearest *dominator* of `i`
//! (itself included) that starts a line: every path from the code's entry to `i` went through
//! that start, so the line ran before the frame stood at `i`. Where `i` is its line's start or
//! reached only through it, that is `i`'s own line, as `f_lineno` says. The control-flow graph
//! is built from each version's own opcode metadata ([`generated`], from
//! `src/reader/line_proof/generate.py`): jumps, returns and raises; an exception handler is
//! entered from the instruction that set it up (which runs before anything in the block it
//! protects, so the dominators found are a subset of the true ones: sound); 3.8's `END_FINALLY`
//! may return to after any `CALL_FINALLY`. Unreachable instructions get no line.

mod generated;

use super::linetable::LineRange;
use crate::reader::PyVersion;

/// Bits of [`FlowOp::flags`].
pub mod flags {
    /// The argument is a forward jump from the next instruction.
    pub const REL_JUMP: u16 = 1 << 0;
    /// The argument is an absolute jump target, in bytes.
    pub const ABS_JUMP: u16 = 1 << 1;
    /// Never continues with the next instruction.
    pub const NO_FALLTHROUGH: u16 = 1 << 2;
    /// Sets up an exception handler at its (relative) target.
    pub const HANDLER: u16 = 1 << 3;
    /// 3.8: calls a `finally` block, which returns to the next instruction.
    pub const CALL_FINALLY: u16 = 1 << 4;
    /// 3.8: may go on, re-raise, or return to after any `CALL_FINALLY`.
    pub const END_FINALLY: u16 = 1 << 5;
    /// A prefix extending the next instruction's argument.
    pub const EXTENDED_ARG: u16 = 1 << 6;
}

/// One opcode of one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowOp {
    pub code: u8,
    pub name: &'static str,
    /// [`flags`] bits.
    pub flags: u16,
}

/// The opcodes of one version.
#[derive(Debug)]
pub struct FlowTable {
    pub version: PyVersion,
    /// Opcodes below this take no argument.
    pub have_argument: u8,
    pub ops: &'static [FlowOp],
}

/// Code units analysed at most (2 MiB of bytecode); larger code gets no lines.
const MAX_UNITS: usize = 1 << 20;

/// Whether frames of `version` need their lines proven this way (3.8, 3.9).
pub fn applies_to(version: PyVersion) -> bool {
    table_for(version).is_some()
}

/// The generated table of `version`, if any.
pub fn table_for(version: PyVersion) -> Option<&'static FlowTable> {
    generated::TABLES
        .iter()
        .copied()
        .find(|t| t.version == version)
}

/// `lines` (the code's `co_lnotab` runs) rewritten so that each instruction of `code` stands on
/// the line its position proves ran (module docs). `None` for a version without a table or
/// code over [`MAX_UNITS`].
pub fn proven_lines(
    version: PyVersion,
    code: &[u8],
    lines: &[LineRange],
) -> Option<Vec<LineRange>> {
    let table = table_for(version)?;
    let units = code.len() / 2;
    if units > MAX_UNITS {
        return None;
    }
    let mut flags = [0u16; 256];
    let mut known = [false; 256];
    for op in table.ops {
        flags[usize::from(op.code)] = op.flags;
        known[usize::from(op.code)] = true;
    }
    // The line each unit has in `co_lnotab`, and whether it starts a line there.
    let mut line_of = vec![None; units];
    let mut starts = vec![false; units];
    let mut previous_line = None;
    for range in lines {
        let (start, end) = ((range.start / 2) as usize, (range.end / 2) as usize);
        for slot in line_of.iter_mut().take(end.min(units)).skip(start) {
            *slot = range.line;
        }
        if start < units && range.line.is_some() && range.line != previous_line {
            starts[start] = true;
        }
        previous_line = range.line;
    }
    // Successors of every unit.
    let mut successors: Vec<Vec<u32>> = vec![Vec::new(); units];
    let mut finally_returns = Vec::new();
    let mut end_finallies = Vec::new();
    let mut extended: u32 = 0;
    for unit in 0..units {
        let (opcode, arg) = (code[unit * 2], code[unit * 2 + 1]);
        let f = flags[usize::from(opcode)];
        let oparg = if opcode >= table.have_argument {
            extended | u32::from(arg)
        } else {
            0
        };
        extended = if f & flags::EXTENDED_ARG != 0 {
            oparg << 8
        } else {
            0
        };
        let next = unit as u32 + 1;
        let out = &mut successors[unit];
        if !known[usize::from(opcode)] {
            continue; // not an opcode of this version: garbage, nothing follows
        }
        if f & flags::NO_FALLTHROUGH == 0 && (next as usize) < units {
            out.push(next);
        }
        let target = if f & flags::REL_JUMP != 0 {
            Some(u64::from(next) + u64::from(oparg) / 2)
        } else if f & flags::ABS_JUMP != 0 {
            Some(u64::from(oparg) / 2)
        } else {
            None
        };
        if let Some(target) = target.filter(|t| (*t as usize) < units) {
            out.push(target as u32);
        }
        if f & flags::CALL_FINALLY != 0 && (next as usize) < units {
            finally_returns.push(next);
        }
        if f & flags::END_FINALLY != 0 {
            end_finallies.push(unit);
        }
    }
    for unit in end_finallies {
        successors[unit].extend(&finally_returns);
    }
    let dominators = immediate_dominators(&successors)?;
    // Each reachable unit's proven line, in reverse postorder (a dominator before what it
    // dominates).
    let mut proven: Vec<Option<u32>> = vec![None; units];
    for &unit in &dominators.order {
        let unit = unit as usize;
        proven[unit] = if starts[unit] {
            line_of[unit]
        } else {
            match dominators.idom[unit] {
                Some(parent) if parent as usize != unit => proven[parent as usize],
                _ => None,
            }
        };
    }
    let mut out: Vec<LineRange> = Vec::new();
    for (unit, line) in proven.into_iter().enumerate() {
        let (start, end) = (unit as u32 * 2, unit as u32 * 2 + 2);
        match out.last_mut() {
            Some(last) if last.line == line && last.end == start => last.end = end,
            _ => out.push(LineRange { start, end, line }),
        }
    }
    Some(out)
}

/// Immediate dominators of a graph whose entry is node 0, and its reachable nodes in reverse
/// postorder.
struct Dominators {
    idom: Vec<Option<u32>>,
    order: Vec<u32>,
}

/// Cooper, Harvey and Kennedy's iterative algorithm ("A Simple, Fast Dominance Algorithm").
fn immediate_dominators(successors: &[Vec<u32>]) -> Option<Dominators> {
    let n = successors.len();
    if n == 0 {
        return Some(Dominators {
            idom: Vec::new(),
            order: Vec::new(),
        });
    }
    // Postorder by an explicit stack: (node, next successor to visit).
    let mut postorder = Vec::with_capacity(n);
    let mut visited = vec![false; n];
    let mut stack = vec![(0u32, 0usize)];
    visited[0] = true;
    while let Some((node, next)) = stack.last_mut() {
        let here = *node as usize;
        if let Some(&succ) = successors[here].get(*next) {
            *next += 1;
            if !visited[succ as usize] {
                visited[succ as usize] = true;
                stack.push((succ, 0));
            }
        } else {
            postorder.push(*node);
            stack.pop();
        }
    }
    let mut rank = vec![usize::MAX; n];
    for (i, &node) in postorder.iter().enumerate() {
        rank[node as usize] = i;
    }
    let mut predecessors: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (node, succs) in successors.iter().enumerate() {
        if rank[node] == usize::MAX {
            continue;
        }
        for &succ in succs {
            predecessors[succ as usize].push(node as u32);
        }
    }
    let order: Vec<u32> = postorder.iter().rev().copied().collect();
    let mut idom: Vec<Option<u32>> = vec![None; n];
    idom[0] = Some(0);
    let intersect = |idom: &[Option<u32>], mut a: u32, mut b: u32| -> u32 {
        while a != b {
            while rank[a as usize] < rank[b as usize] {
                a = idom[a as usize].unwrap_or(0);
            }
            while rank[b as usize] < rank[a as usize] {
                b = idom[b as usize].unwrap_or(0);
            }
        }
        a
    };
    // Each round either changes an entry or ends; entries only move up the dominator tree, so
    // rounds are bounded by the nodes, and more than that is a bug: give up.
    for _round in 0..=n {
        let mut changed = false;
        for &node in order.iter().skip(1) {
            let mut new_idom: Option<u32> = None;
            for &pred in &predecessors[node as usize] {
                if idom[pred as usize].is_none() {
                    continue;
                }
                new_idom = Some(match new_idom {
                    None => pred,
                    Some(current) => intersect(&idom, pred, current),
                });
            }
            if new_idom.is_some() && idom[node as usize] != new_idom {
                idom[node as usize] = new_idom;
                changed = true;
            }
        }
        if !changed {
            return Some(Dominators { idom, order });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominators_of_a_diamond_and_a_loop() {
        // 0 -> 1, 2; 1 -> 3; 2 -> 3; 3 -> 4, 1 (a back edge); 5 unreachable.
        let successors = vec![vec![1, 2], vec![3], vec![3], vec![4, 1], vec![], vec![4]];
        let d = immediate_dominators(&successors).unwrap();
        assert_eq!(d.idom[1], Some(0));
        assert_eq!(d.idom[2], Some(0));
        assert_eq!(d.idom[3], Some(0));
        assert_eq!(d.idom[4], Some(3));
        assert_eq!(d.idom[5], None);
        assert_eq!(d.order[0], 0);
        assert!(!d.order.contains(&5));
    }

    #[test]
    fn every_supported_version_before_3_10_has_a_table() {
        assert!(applies_to(PyVersion::new(3, 8)) && applies_to(PyVersion::new(3, 9)));
        assert!(!applies_to(PyVersion::new(3, 10)) && !applies_to(PyVersion::new(3, 12)));
    }
}

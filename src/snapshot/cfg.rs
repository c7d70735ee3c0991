//! Sound inference over the evidence: the control-flow graph of a code object, its basic
//! blocks and their dominators.
//!
//! The graph has an edge for every way control can move inside a frame: falling through to
//! the next instruction, every relative jump (FOR_ITER and SEND also one and two instructions
//! past their target), and an edge from every instruction covered by an exception-table
//! entry to its handler. Extra edges only make the inference prove less, never more.
//!
//! Rules, each sound on its own (an instruction "ran" when it started executing):
//! - **A, block prefix**: a block is entered only at its first instruction, so every
//!   instruction of a block before one that ran, ran.
//! - **B, dominators**: every path from the entry to a block that ran went through each of
//!   its dominators. A dominator was entered at its start and left either by its last
//!   instruction or by an exception of one of its instructions covered by the exception
//!   table, so its instructions up to the first such one (all of them if none) ran.
//!
//! - **E, branch history** (3.13+): a conditional jump's branch history says which ways it
//!   surely went (`evidence::branch_outcomes`). It cannot raise or check the eval breaker, so
//!   each such successor started, unless the frame is still between the two right now.
//! - **F, forward**: a `NON_RAISING` instruction (no error exit, no eval-breaker check, no
//!   suspension, per the version's own metadata) with a single successor that started also
//!   completed, so its successor started, unless the frame is still at it right now.
//!
//! E and F hold only for code with no frame live right now: the caller applies them
//! ([`Cfg::infer_forward`]) only to code objects that no thread's stack held when the walk
//! ended (a suspended generator stands at `YIELD_VALUE`, which F never crosses).
//!
//! Apart from those, **C, likely** ([`Cfg::infer_likely`]): assuming no exception, every
//! block post-dominating a block that ran also ran, and so did the rest of that block. It is
//! unsound by design: its lines are only ever reported apart from the proven ones.
//!
//! If evidence lies in a block the graph cannot reach, the graph is wrong about this code and
//! nothing is inferred for it (only the evidence itself is kept).

use super::evidence::Instruction;
use super::opcodes::flags::{
    BACKWARD, BRANCH_HISTORY, JUMP, MULTI_TARGET, NON_RAISING, NO_FALLTHROUGH,
};

/// Entries read from one exception table at most.
const MAX_EXCEPTION_ENTRIES: usize = 1 << 16;
/// Code units the exception-table entries of one code object may cover in all.
const MAX_HANDLER_UNITS: usize = 16 << 20;

/// One exception-table entry, in bytes: instructions in `start..end` go to `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExceptionEntry {
    pub start: u32,
    pub end: u32,
    pub target: u32,
}

/// Parse `co_exceptiontable` (3.11+): entries of four varints (start, length, target in code
/// units, then depth and lasti), each varint in 6-bit groups, most significant first, bit 6
/// set on every group but the last; an entry's first byte also has bit 7 set.
pub fn parse_exception_table(bytes: &[u8]) -> Option<Vec<ExceptionEntry>> {
    let mut at = 0usize;
    let varint = |at: &mut usize| -> Option<u32> {
        let mut value: u32 = 0;
        loop {
            let byte = *bytes.get(*at)?;
            *at += 1;
            value = value.checked_mul(64)? | u32::from(byte & 63);
            if byte & 64 == 0 {
                return Some(value);
            }
        }
    };
    let mut entries = Vec::new();
    while at < bytes.len() {
        if entries.len() >= MAX_EXCEPTION_ENTRIES || bytes[at] & 0x80 == 0 {
            return None;
        }
        let start = varint(&mut at)?;
        let length = varint(&mut at)?;
        let target = varint(&mut at)?;
        let _depth_lasti = varint(&mut at)?;
        entries.push(ExceptionEntry {
            start: start.checked_mul(2)?,
            end: start.checked_add(length)?.checked_mul(2)?,
            target: target.checked_mul(2)?,
        });
    }
    Some(entries)
}

#[derive(Debug, Clone)]
struct Block {
    start: usize,
    /// One past the last instruction.
    end: usize,
    /// The last instruction that surely ran once the block was entered: the first with an
    /// exception edge, else the last.
    sure_end: usize,
    succ: Vec<usize>,
}

/// The control-flow graph of one code object.
#[derive(Debug)]
pub struct Cfg {
    blocks: Vec<Block>,
    block_of: Vec<usize>,
    /// Immediate dominator of each block (the entry's is itself); `None` if unreachable.
    idom: Vec<Option<usize>>,
    /// Per instruction, those that surely started after it once it started, if the frame is
    /// not live (rules E and F).
    forward: Vec<[Option<usize>; 2]>,
    /// Immediate post-dominator of each block in the graph without exception edges; `None`
    /// for none (only the exit post-dominates it, or it cannot reach the exit).
    ipdom: Vec<Option<usize>>,
    /// Per instruction, every instruction that can run right before it in its frame
    /// (fall-through, jumps, exception edges), sorted.
    preds: Vec<Vec<usize>>,
    /// Per instruction, whether some instruction reaches it only by an exception edge.
    entered_by_exception: Vec<bool>,
}

/// Why no graph could be built: the bytes are not well-formed code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed code: a jump or handler does not land on an instruction")]
pub struct MalformedCode;

impl Cfg {
    /// Build the graph of `instrs` with the handlers of `exceptions`.
    pub fn build(
        instrs: &[Instruction],
        exceptions: &[ExceptionEntry],
    ) -> Result<Cfg, MalformedCode> {
        let n = instrs.len();
        if n == 0 {
            return Err(MalformedCode);
        }
        let code_units = instrs[n - 1].next_offset() as usize / 2;
        let mut index_at = vec![usize::MAX; code_units + 1];
        for (k, ins) in instrs.iter().enumerate() {
            index_at[ins.offset as usize / 2] = k;
        }
        let index_of = |offset: u32| -> Result<usize, MalformedCode> {
            match index_at.get(offset as usize / 2) {
                Some(&k) if k != usize::MAX && offset.is_multiple_of(2) => Ok(k),
                _ => Err(MalformedCode),
            }
        };
        // Normal successors other than fall-through, and the handler of each instruction.
        let mut targets: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut handler: Vec<Option<usize>> = vec![None; n];
        for (k, ins) in instrs.iter().enumerate() {
            if ins.flags & JUMP != 0 {
                let next = ins.next_offset();
                let delta = ins.arg.checked_mul(2).ok_or(MalformedCode)?;
                let target = if ins.flags & BACKWARD != 0 {
                    next.checked_sub(delta)
                } else {
                    next.checked_add(delta)
                }
                .ok_or(MalformedCode)?;
                let t = index_of(target)?;
                targets[k].push(t);
                if ins.flags & MULTI_TARGET != 0 {
                    targets[k].extend((t + 1..=t + 2).filter(|&j| j < n));
                }
            }
        }
        // Real tables cover each code unit once at most; hostile ones could overlap without
        // end, so the units visited are bounded.
        let mut budget = MAX_HANDLER_UNITS;
        for entry in exceptions {
            let h = index_of(entry.target)?;
            let start = (entry.start / 2) as usize;
            let end = ((entry.end / 2) as usize).min(code_units);
            let units = end.saturating_sub(start);
            budget = budget.checked_sub(units).ok_or(MalformedCode)?;
            for unit in start..end {
                if let Some(&k) = index_at.get(unit).filter(|&&k| k != usize::MAX) {
                    handler[k] = Some(h);
                }
            }
        }
        let mut leader = vec![false; n];
        leader[0] = true;
        for k in 0..n {
            for &t in &targets[k] {
                leader[t] = true;
            }
            if let Some(h) = handler[k] {
                leader[h] = true;
            }
            if instrs[k].flags & (JUMP | NO_FALLTHROUGH) != 0 && k + 1 < n {
                leader[k + 1] = true;
            }
        }
        let mut blocks: Vec<Block> = Vec::new();
        let mut block_of = vec![0usize; n];
        for k in 0..n {
            if leader[k] {
                blocks.push(Block {
                    start: k,
                    end: k + 1,
                    sure_end: k,
                    succ: Vec::new(),
                });
            }
            let b = blocks.len() - 1;
            blocks[b].end = k + 1;
            block_of[k] = b;
        }
        for block in &mut blocks {
            let last = block.end - 1;
            block.sure_end = (block.start..block.end)
                .find(|&k| handler[k].is_some())
                .unwrap_or(last);
            let mut succ: Vec<usize> = Vec::new();
            if instrs[last].flags & NO_FALLTHROUGH == 0 && last + 1 < n {
                succ.push(block_of[last + 1]);
            }
            succ.extend(targets[last].iter().map(|&t| block_of[t]));
            succ.extend((block.start..block.end).filter_map(|k| handler[k].map(|h| block_of[h])));
            succ.sort_unstable();
            succ.dedup();
            block.succ = succ;
        }
        let successors: Vec<Vec<usize>> = blocks.iter().map(|b| b.succ.clone()).collect();
        let idom = dominators(&successors, 0);
        let forward = (0..n)
            .map(|k| {
                let ins = &instrs[k];
                let falls = ins.flags & NO_FALLTHROUGH == 0 && k + 1 < n;
                if ins.flags & BRANCH_HISTORY != 0 && falls {
                    let [target] = targets[k].as_slice() else {
                        return [None, None];
                    };
                    return [
                        ins.jumped.then_some(*target),
                        ins.fell_through.then_some(k + 1),
                    ];
                }
                if ins.flags & NON_RAISING == 0 {
                    return [None, None];
                }
                match (falls, targets[k].as_slice()) {
                    (true, []) => [Some(k + 1), None],
                    (false, [target]) => [Some(*target), None],
                    _ => [None, None],
                }
            })
            .collect();
        let ipdom = post_dominators(&blocks, instrs, &targets, &block_of);
        let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut entered_by_exception = vec![false; n];
        for k in 0..n {
            let falls = instrs[k].flags & NO_FALLTHROUGH == 0 && k + 1 < n;
            if falls {
                preds[k + 1].push(k);
            }
            for &t in &targets[k] {
                preds[t].push(k);
            }
            if let Some(h) = handler[k] {
                preds[h].push(k);
                let normal = (falls && h == k + 1) || targets[k].contains(&h);
                if !normal {
                    entered_by_exception[h] = true;
                }
            }
        }
        for list in &mut preds {
            list.sort_unstable();
            list.dedup();
        }
        Ok(Cfg {
            blocks,
            block_of,
            idom,
            forward,
            ipdom,
            preds,
            entered_by_exception,
        })
    }

    /// The instructions that can run right before instruction `k` in its frame.
    pub fn preds(&self, k: usize) -> &[usize] {
        self.preds.get(k).map_or(&[], Vec::as_slice)
    }

    /// Whether instruction `k` is a handler that some instruction reaches only by raising.
    pub fn entered_by_exception(&self, k: usize) -> bool {
        self.entered_by_exception.get(k).copied().unwrap_or(false)
    }

    /// The instructions that surely started right after instruction `k` once it started, in
    /// code with no frame live (rules E and F).
    pub fn forward(&self, k: usize) -> impl Iterator<Item = usize> + '_ {
        self.forward.get(k).into_iter().flatten().flatten().copied()
    }

    /// Add to `ran` (one flag per instruction) what rules A and B prove from it. Returns false,
    /// leaving `ran` as it was, if some instruction that ran is unreachable in the graph.
    pub fn infer(&self, ran: &mut [bool]) -> bool {
        let mut last_ran: Vec<Option<usize>> = vec![None; self.blocks.len()];
        for (k, &r) in ran.iter().enumerate() {
            if r {
                let b = self.block_of[k];
                if self.idom[b].is_none() {
                    return false;
                }
                last_ran[b] = Some(k);
            }
        }
        for (b, last) in last_ran.iter().enumerate() {
            let Some(last) = *last else { continue };
            ran[self.blocks[b].start..=last].fill(true);
            let mut d = b;
            // The chain of immediate dominators ends at the entry, its own dominator.
            for _ in 0..self.blocks.len() {
                let Some(up) = self.idom[d] else { break };
                if up == d {
                    break;
                }
                d = up;
                let block = &self.blocks[d];
                ran[block.start..=block.sure_end].fill(true);
            }
        }
        true
    }

    /// Add to `ran` what rules E and F prove from it; true if anything was added. Only for
    /// code with no frame live right now (see the module's documentation).
    pub fn infer_forward(&self, ran: &mut [bool]) -> bool {
        let mut stack: Vec<usize> = (0..ran.len()).filter(|&k| ran[k]).collect();
        let mut added = false;
        // Each instruction is pushed once at most after the first: bounded by their count.
        while let Some(k) = stack.pop() {
            for next in self.forward[k].into_iter().flatten() {
                if !ran[next] {
                    ran[next] = true;
                    added = true;
                    stack.push(next);
                }
            }
        }
        added
    }

    /// Add to `likely` what rule C suggests (unsound): the rest of every block in which an
    /// instruction ran, and every block post-dominating it, assuming no exception.
    pub fn infer_likely(&self, likely: &mut [bool]) {
        let mut first_ran: Vec<Option<usize>> = vec![None; self.blocks.len()];
        for (k, &r) in likely.iter().enumerate().rev() {
            if r {
                first_ran[self.block_of[k]] = Some(k);
            }
        }
        let mut done = vec![false; self.blocks.len()];
        for (b, first) in first_ran.iter().enumerate() {
            let Some(first) = *first else { continue };
            likely[first..self.blocks[b].end].fill(true);
            let mut p = b;
            // The chain of post-dominators visits each block once at most.
            for _ in 0..self.blocks.len() {
                let Some(up) = self.ipdom[p] else { break };
                if done[up] || up == p {
                    break;
                }
                done[up] = true;
                let block = &self.blocks[up];
                likely[block.start..block.end].fill(true);
                p = up;
            }
        }
    }
}

/// Immediate post-dominators of the blocks, in the graph without exception edges, with one
/// virtual exit fed by every block that leaves the frame (returns, raises).
fn post_dominators(
    blocks: &[Block],
    instrs: &[Instruction],
    targets: &[Vec<usize>],
    block_of: &[usize],
) -> Vec<Option<usize>> {
    let n = blocks.len();
    let exit = n;
    // The reversed graph: the exit first, then an edge s -> b for every normal edge b -> s.
    let mut reversed: Vec<Vec<usize>> = vec![Vec::new(); n + 1];
    for (b, block) in blocks.iter().enumerate() {
        let last = block.end - 1;
        let mut normal: Vec<usize> = targets[last].iter().map(|&t| block_of[t]).collect();
        if instrs[last].flags & NO_FALLTHROUGH == 0 && last + 1 < instrs.len() {
            normal.push(block_of[last + 1]);
        }
        if normal.is_empty() {
            reversed[exit].push(b);
        }
        for s in normal {
            reversed[s].push(b);
        }
    }
    // A block with no normal path to the exit (a `while True` left only by an exception) is
    // given an edge to it: otherwise the other arm of a branch before the loop (a `raise`)
    // would post-dominate the branch, and be taken to have run (measured wrong on
    // more-itertools' `sample`).
    let mut reaches = vec![false; n + 1];
    let mut stack = vec![exit];
    reaches[exit] = true;
    while let Some(b) = stack.pop() {
        for &p in &reversed[b] {
            if !reaches[p] {
                reaches[p] = true;
                stack.push(p);
            }
        }
    }
    for (b, reached) in reaches.iter().enumerate().take(n) {
        if !reached {
            reversed[exit].push(b);
        }
    }
    for list in &mut reversed {
        list.sort_unstable();
        list.dedup();
    }
    // Number the exit 0 for `dominators`: node i + 1 is block i.
    let mut renumbered: Vec<Vec<usize>> = Vec::with_capacity(n + 1);
    renumbered.push(reversed[exit].iter().map(|&b| b + 1).collect());
    for list in reversed.iter().take(n) {
        renumbered.push(list.iter().map(|&b| b + 1).collect());
    }
    let idom = dominators(&renumbered, 0);
    (0..n)
        .map(|b| match idom[b + 1] {
            Some(d) if d > 0 => Some(d - 1),
            _ => None,
        })
        .collect()
}

/// Immediate dominators of the nodes of a graph given by its successor lists (Cooper, Harvey
/// and Kennedy's iterative algorithm over reverse postorder); the entry's is itself.
fn dominators(succ: &[Vec<usize>], entry: usize) -> Vec<Option<usize>> {
    let n = succ.len();
    // Reverse postorder by an explicit-stack depth-first search.
    let mut order = Vec::with_capacity(n);
    let mut seen = vec![false; n];
    let mut stack: Vec<(usize, usize)> = vec![(entry, 0)];
    seen[entry] = true;
    while let Some((b, i)) = stack.pop() {
        if let Some(&s) = succ[b].get(i) {
            stack.push((b, i + 1));
            if !seen[s] {
                seen[s] = true;
                stack.push((s, 0));
            }
        } else {
            order.push(b);
        }
    }
    order.reverse();
    let mut rpo_index = vec![usize::MAX; n];
    for (i, &b) in order.iter().enumerate() {
        rpo_index[b] = i;
    }
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (b, list) in succ.iter().enumerate() {
        if seen[b] {
            for &s in list {
                preds[s].push(b);
            }
        }
    }
    let mut idom: Vec<Option<usize>> = vec![None; n];
    idom[entry] = Some(entry);
    let intersect = |idom: &[Option<usize>], mut a: usize, mut b: usize| -> usize {
        while a != b {
            while rpo_index[a] > rpo_index[b] {
                a = idom[a].unwrap_or(entry);
            }
            while rpo_index[b] > rpo_index[a] {
                b = idom[b].unwrap_or(entry);
            }
        }
        a
    };
    let mut changed = true;
    while changed {
        changed = false;
        for &b in order.iter().skip(1) {
            let mut new: Option<usize> = None;
            for &p in &preds[b] {
                if idom[p].is_some() {
                    new = Some(match new {
                        None => p,
                        Some(current) => intersect(&idom, p, current),
                    });
                }
            }
            if new.is_some() && idom[b] != new {
                idom[b] = new;
                changed = true;
            }
        }
    }
    idom
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(offset: u32, flags: u16, arg: u32) -> Instruction {
        Instruction {
            offset,
            op: 0,
            base: 0,
            flags,
            arg,
            units: 1,
            jumped: false,
            fell_through: false,
            evidence: false,
        }
    }

    #[test]
    fn exception_table_round_trip() {
        // start 2, length 3, target 10, depth/lasti 1; then start 70 (two groups).
        let bytes = [0x80 | 2, 3, 10, 1, 0x80 | 64 | 1, 6, 1, 10, 0];
        let entries = parse_exception_table(&bytes).unwrap();
        assert_eq!(
            entries,
            vec![
                ExceptionEntry {
                    start: 4,
                    end: 10,
                    target: 20
                },
                ExceptionEntry {
                    start: 140,
                    end: 142,
                    target: 20
                },
            ]
        );
        assert!(parse_exception_table(&[0x80 | 64]).is_none());
        assert!(parse_exception_table(&[1, 2, 3, 4]).is_none());
    }

    #[test]
    fn if_else_proves_the_condition_not_the_other_arm() {
        // 0: cond jump to 4 | 1: then | 2: jump to 5 | 3: (dead) | 4: else | 5: join
        let code = [
            ins(0, JUMP, 3),
            ins(2, 0, 0),
            ins(4, JUMP | NO_FALLTHROUGH, 2),
            ins(6, 0, 0),
            ins(8, 0, 0),
            ins(10, 0, 0),
        ];
        let cfg = Cfg::build(&code, &[]).unwrap();
        let mut ran = vec![false; 6];
        ran[4] = true;
        assert!(cfg.infer(&mut ran));
        assert_eq!(ran, [true, false, false, false, true, false]);
        let mut ran = vec![false; 6];
        ran[5] = true;
        assert!(cfg.infer(&mut ran));
        assert_eq!(ran, [true, false, false, false, false, true]);
        // Evidence where the graph says nothing can run: nothing inferred.
        let mut ran = vec![false; 6];
        ran[3] = true;
        assert!(!cfg.infer(&mut ran));
    }

    #[test]
    fn forward_crosses_non_raising_instructions_and_sure_branches_only() {
        // 0, 1: non-raising | 2: may raise | 3: non-raising | 4: cond jump to 6 | 5 | 6
        let mut jump = ins(8, JUMP | BRANCH_HISTORY, 1);
        let code = |jump: Instruction| {
            [
                ins(0, NON_RAISING, 0),
                ins(2, NON_RAISING, 0),
                ins(4, 0, 0),
                ins(6, NON_RAISING, 0),
                jump,
                ins(10, NO_FALLTHROUGH, 0),
                ins(12, NO_FALLTHROUGH, 0),
            ]
        };
        let cfg = Cfg::build(&code(jump), &[]).unwrap();
        let mut ran = vec![true, false, false, false, false, false, false];
        assert!(cfg.infer_forward(&mut ran));
        assert_eq!(ran, [true, true, true, false, false, false, false]);
        // A jump with no sure direction proves neither successor.
        let mut ran = vec![false, false, false, true, false, false, false];
        cfg.infer_forward(&mut ran);
        assert_eq!(ran, [false, false, false, true, true, false, false]);
        jump.evidence = true;
        jump.jumped = true;
        let cfg = Cfg::build(&code(jump), &[]).unwrap();
        let mut ran = vec![false, false, false, false, true, false, false];
        cfg.infer_forward(&mut ran);
        assert_eq!(ran, [false, false, false, false, true, false, true]);
        jump.fell_through = true;
        let cfg = Cfg::build(&code(jump), &[]).unwrap();
        let mut ran = vec![false, false, false, false, true, false, false];
        cfg.infer_forward(&mut ran);
        assert_eq!(ran, [false, false, false, false, true, true, true]);
    }

    #[test]
    fn likely_lines_follow_post_dominators_not_branch_arms() {
        // 0: cond jump to 4 | 1: then (may raise) | 2: jump to 5 | 3: (dead) | 4: else | 5:
        // join, returns.
        let code = [
            ins(0, JUMP, 3),
            ins(2, 0, 0),
            ins(4, JUMP | NO_FALLTHROUGH, 2),
            ins(6, 0, 0),
            ins(8, 0, 0),
            ins(10, NO_FALLTHROUGH, 0),
        ];
        let cfg = Cfg::build(&code, &[]).unwrap();
        let mut likely = vec![true, false, false, false, false, false];
        cfg.infer_likely(&mut likely);
        assert_eq!(likely, [true, false, false, false, false, true]);
        let mut likely = vec![false, true, false, false, false, false];
        cfg.infer_likely(&mut likely);
        assert_eq!(likely, [false, true, true, false, false, true]);
    }

    #[test]
    fn a_dominator_left_by_an_exception_is_proven_only_up_to_that_instruction() {
        // 0, 1 (raises into handler 3), 2, then 3 (handler) ran.
        let code = [
            ins(0, 0, 0),
            ins(2, 0, 0),
            ins(4, NO_FALLTHROUGH, 0),
            ins(6, 0, 0),
        ];
        let cfg = Cfg::build(
            &code,
            &[ExceptionEntry {
                start: 2,
                end: 4,
                target: 6,
            }],
        )
        .unwrap();
        let mut ran = vec![false; 4];
        ran[3] = true;
        assert!(cfg.infer(&mut ran));
        assert_eq!(ran, [true, true, false, true]);
    }
}

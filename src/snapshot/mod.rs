//! `tracer snapshot`: what has run in a process since it started, read once from the
//! adaptive interpreter's bytecode (CPython 3.12+), without sampling.
//!
//! The data path: find the interpreter ([`crate::reader::discover`]) → walk every live code
//! object from `sys.modules` and the thread stacks ([`walk`]) → decode each code object's
//! adaptive bytes and flag the instructions that prove they ran ([`evidence`], with the
//! per-version tables of [`opcodes`]) → add what sound inference proves ([`cfg`]: block
//! prefixes, dominators; and a nested code object that ran proves its parent's `LOAD_CONST`)
//! → map instructions to lines with the line table → `CoverageResults` with a count of 1 per
//! proven line and the code objects proven to have run as `calledfuncs`.
//!
//! Nothing is written to the target; only the read-only [`MemoryReader`] is used. See
//! docs/snapshot.md for the rule, the inference and the recall measured.
//!
//! [`MemoryReader`]: crate::reader::memory::MemoryReader

pub mod cfg;
pub mod evidence;
pub mod opcodes;
pub mod walk;

use crate::model::{CoverageResults, FuncKey, LineHits};
use crate::reader::discover;
use crate::reader::linetable::{LineTable, LineTableFormat};
use anyhow::{anyhow, bail};
use opcodes::flags::LOAD_CONST;
use opcodes::Opcodes;
use rustc_hash::FxHashMap as HashMap;
use walk::{CodeObject, WalkStats, Walker};

/// The first version whose adaptive bytecode records a single execution.
pub const FIRST_VERSION: (u8, u8) = (3, 12);

/// What a snapshot found.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Counts of 1 per proven line; `calledfuncs` the code objects proven to have run.
    pub results: CoverageResults,
    pub stats: SnapshotStats,
}

/// How the snapshot went, for the report and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotStats {
    pub python_version: String,
    pub walk: WalkStats,
    /// Code objects analysed, and left out (instrumented, malformed).
    pub analysed: usize,
    pub skipped: usize,
    /// Code objects with evidence where their own graph says no code can run: only the
    /// evidence is kept for them.
    pub graph_disagreements: usize,
    /// Instructions with evidence of their own, and proven with inference.
    pub evidence_instructions: usize,
    pub proven_instructions: usize,
    /// Lines proven from evidence alone, and with inference.
    pub evidence_lines: usize,
    pub proven_lines: usize,
}

impl SnapshotStats {
    /// `(major, minor)` of the target, from [`SnapshotStats::python_version`].
    pub fn walk_version(&self) -> Option<(u8, u8)> {
        let mut parts = self.python_version.split('.');
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    }
}

/// Options of a snapshot.
#[derive(Debug, Clone, Copy, Default)]
pub struct SnapshotOptions {
    /// Report the evidence only, without inference (to measure the rule on its own).
    pub evidence_only: bool,
}

/// Take a snapshot of process `pid`.
pub fn take(pid: i32, options: SnapshotOptions) -> anyhow::Result<Snapshot> {
    crate::attach::check_target(pid)?;
    let discovered = discover::find_target(pid)?;
    if discovered.version < FIRST_VERSION {
        bail!(
            "process {pid} runs Python {}, not supported: snapshot needs 3.12+ (older \
             interpreters leave no record of code run once); sample it with `tracer attach`",
            discovered.version_text
        );
    }
    let Some((mut target, _)) = discovered.target else {
        bail!(
            "cannot read Python {}'s interpreter",
            discovered.version_text
        );
    };
    let table = opcodes::table_for(discovered.version).ok_or_else(|| {
        anyhow!(
            "no opcode table for Python {}: regenerate src/snapshot/opcodes/generated.rs \
             with that version installed",
            discovered.version_text
        )
    })?;
    let (codes, walk_stats) = Walker::new(&mut target)
        .walk()
        .map_err(|e| anyhow!("cannot read sys.modules of process {pid}: {e}"))?;
    let mut snapshot = analyse(&codes, discovered.version, &Opcodes::new(table), options);
    snapshot.stats.walk = walk_stats;
    snapshot.stats.python_version = discovered.version_text;
    Ok(snapshot)
}

/// One code object, decoded.
struct Analysed<'a> {
    code: &'a CodeObject,
    instrs: Vec<evidence::Instruction>,
    graph: Option<cfg::Cfg>,
    ran: Vec<bool>,
}

/// Evidence, inference and lines of `codes` (read from a `version` interpreter).
pub fn analyse(
    codes: &[CodeObject],
    version: (u8, u8),
    ops: &Opcodes,
    options: SnapshotOptions,
) -> Snapshot {
    let mut stats = SnapshotStats::default();
    let mut analysed: Vec<Analysed> = Vec::new();
    for code in codes {
        let Ok(instrs) = evidence::decode(&code.code, ops) else {
            stats.skipped += 1;
            continue;
        };
        let graph = cfg::parse_exception_table(&code.exception_table)
            .and_then(|table| cfg::Cfg::build(&instrs, &table).ok());
        let ran: Vec<bool> = instrs.iter().map(|i| i.evidence).collect();
        stats.evidence_instructions += ran.iter().filter(|&&r| r).count();
        analysed.push(Analysed {
            code,
            instrs,
            graph,
            ran,
        });
    }
    stats.analysed = analysed.len();
    let evidence: Vec<Vec<bool>> = analysed.iter().map(|a| a.ran.clone()).collect();
    if !options.evidence_only {
        infer_all(&mut analysed, &mut stats);
    }
    let format = LineTableFormat::for_version(version);
    let mut results = CoverageResults::default();
    let mut evidence_lines = std::collections::BTreeSet::new();
    for (a, seeds) in analysed.iter().zip(&evidence) {
        if !a.ran.iter().any(|&r| r) {
            continue;
        }
        stats.proven_instructions += a.ran.iter().filter(|&&r| r).count();
        results
            .calledfuncs
            .insert(FuncKey::new(&a.code.filename, &a.code.qualname));
        let Some(format) = format else { continue };
        let code_len = a.instrs.last().map_or(0, |i| i.next_offset());
        let ranges: Vec<_> = LineTable::new(format, &a.code.line_table, a.code.first_line)
            .ranges(code_len)
            .collect();
        // The prologue up to the first RESUME runs on every call but is no line of the body.
        let first_body = 2 * (a.code.first_traceable + 1);
        for (k, ins) in a.instrs.iter().enumerate() {
            if !a.ran[k] || ins.offset < first_body {
                continue;
            }
            let at = ranges.partition_point(|r| r.end <= ins.offset);
            let Some(line) = ranges
                .get(at)
                .filter(|r| r.start <= ins.offset)
                .and_then(|r| r.line)
            else {
                continue;
            };
            let key = (a.code.filename.clone(), line);
            if seeds[k] {
                evidence_lines.insert(key.clone());
            }
            results.counts.insert(
                key,
                LineHits {
                    hits: 1,
                    self_hits: 0,
                },
            );
        }
    }
    stats.evidence_lines = evidence_lines.len();
    stats.proven_lines = results.counts.len();
    Snapshot { results, stats }
}

/// Rules A and B in every code object, and D across them (a nested code object that ran
/// proves its parent's `LOAD_CONST` of it), to a fixed point.
fn infer_all(analysed: &mut [Analysed], stats: &mut SnapshotStats) {
    // Child code address → (parent, LOAD_CONST instruction), when that is unambiguous: one
    // parent holding it, loading it with one LOAD_CONST.
    let mut loads: HashMap<usize, Vec<(usize, usize)>> = HashMap::default();
    for (p, a) in analysed.iter().enumerate() {
        for (k, ins) in a.instrs.iter().enumerate() {
            if ins.flags & LOAD_CONST == 0 {
                continue;
            }
            if let Some(&child) = a.code.const_codes.get(ins.arg as usize) {
                if child != 0 {
                    loads.entry(child).or_default().push((p, k));
                }
            }
        }
    }
    let index_of: HashMap<usize, usize> = analysed
        .iter()
        .enumerate()
        .map(|(i, a)| (a.code.address, i))
        .collect();
    let mut disagreeing = vec![false; analysed.len()];
    // Each round adds at least one instruction or stops: bounded by the instruction count.
    loop {
        for (i, a) in analysed.iter_mut().enumerate() {
            if disagreeing[i] {
                continue;
            }
            if let Some(graph) = &a.graph {
                if !graph.infer(&mut a.ran) {
                    disagreeing[i] = true;
                }
            }
        }
        let mut changed = false;
        for (child, parents) in &loads {
            let [(p, k)] = parents.as_slice() else {
                continue;
            };
            let Some(&c) = index_of.get(child) else {
                continue;
            };
            if analysed[c].ran.iter().any(|&r| r) && !analysed[*p].ran[*k] && !disagreeing[*p] {
                analysed[*p].ran[*k] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    stats.graph_disagreements = disagreeing.iter().filter(|&&d| d).count();
}

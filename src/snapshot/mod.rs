//! `tracer snapshot`: what has run in a process since it started, read once from the
//! adaptive interpreter's bytecode (CPython 3.11+), without sampling.
//!
//! The data path: find the interpreter ([`crate::reader::discover`]) → walk every live code
//! object from `sys.modules` and the thread stacks ([`walk`]) → decode each code object's
//! adaptive bytes and flag the instructions that prove they ran ([`evidence`], with the
//! per-version tables of [`opcodes`]) → add what sound inference proves ([`cfg`]: block
//! prefixes, dominators, branch histories and non-raising instructions in code with no live
//! frame) → map instructions to lines with the line table → `CoverageResults` with a count of
//! 1 per proven line and the code objects proven to have run as `calledfuncs`; and apart,
//! the likely lines (post-dominance assuming no exception, nested code proving its parent's
//! `LOAD_CONST`), never counted.
//!
//! Nothing is written to the target; only the read-only [`MemoryReader`] is used. See
//! docs/snapshot.md for the rule, the inference and the recall measured.
//!
//! [`MemoryReader`]: crate::reader::memory::MemoryReader

pub mod arcs;
pub mod bodies;
pub mod cfg;
pub mod evidence;
pub mod opcodes;
pub mod union;
pub mod walk;

use crate::aggregate::model::{CoverageResults, FuncKey, LineHits};
use crate::reader::discover;
use crate::reader::linetable::{LineTable, LineTableFormat};
use crate::reader::PyVersion;
use anyhow::{anyhow, bail};
use opcodes::flags::LOAD_CONST;
use opcodes::Opcodes;
use rustc_hash::FxHashMap as HashMap;
use rustc_hash::FxHashSet as HashSet;
use std::collections::BTreeSet;
use walk::{CodeObject, Walker};

/// The first version whose code objects keep a record of what ran: 3.11's warmup counter and
/// quickened bytecode (code run fewer than 8 times keeps only the counter), 3.12+'s adaptive
/// bytecode (a single execution).
pub const FIRST_VERSION: PyVersion = PyVersion::new(3, 11);

/// What a snapshot found.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Counts of 1 per proven line; `calledfuncs` the code objects proven to have run.
    pub results: CoverageResults,
    /// Lines likely but not proven to have run (unsound by design): never in `results`.
    pub likely: BTreeSet<(String, u32)>,
    /// coverage.py arcs proven to have run, `(file, from, to)` (see [`arcs`]).
    pub arcs: BTreeSet<(String, i64, i64)>,
    pub stats: SnapshotStats,
}

/// How the snapshot went, for the report and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotStats {
    pub python_version: String,
    pub walk: walk::WalkStats,
    /// Code objects analysed, and left out (instrumented, malformed).
    pub analysed: usize,
    pub skipped: usize,
    /// Of the skipped, those instrumented by another tool (`INSTRUMENTED_*` instructions:
    /// coverage.py's sys.monitoring, a debugger): their bytecode holds no record of what ran.
    pub instrumented: usize,
    /// Code objects with evidence where their own graph says no code can run: only the
    /// evidence is kept for them.
    pub graph_disagreements: usize,
    /// Instructions with evidence of their own, and proven with inference.
    pub evidence_instructions: usize,
    pub proven_instructions: usize,
    /// Lines proven from evidence alone, and with inference.
    pub evidence_lines: usize,
    pub proven_lines: usize,
    /// Lines likely but not proven (reported apart).
    pub likely_lines: usize,
    /// coverage.py arcs proven (docs/snapshot.md, "Arcs").
    pub arcs: usize,
    /// Lines of module and class bodies proven from the functions they made ([`bodies`]),
    /// not otherwise proven; and the files whose source no longer matches what ran.
    pub body_lines: usize,
    pub body_files_changed: usize,
}

impl SnapshotStats {
    /// The target's version, from [`SnapshotStats::python_version`].
    pub fn walk_version(&self) -> Option<PyVersion> {
        PyVersion::from_release(&self.python_version)
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
    crate::target::attach::check_target(pid)?;
    let discovered = discover::find_target(pid)?;
    if discovered.version < FIRST_VERSION {
        bail!(
            "process {pid} runs Python {}, not supported: snapshot needs 3.11+ (older \
             interpreters' record of what ran is not read yet); sample it with `tracer attach`",
            discovered.version_text
        );
    }
    let Some((mut target, _)) = discovered.target else {
        bail!(
            "cannot read Python {}'s interpreter",
            discovered.version_text
        );
    };
    if target.layout.free_threaded {
        // 3.13t never specializes, so its bytecode holds no record of what ran; 3.14t+ keep
        // one copy of the bytecode per thread, which this walk does not read.
        bail!(
            "process {pid} runs a free-threaded Python {}: snapshot reads the adaptive \
             bytecode of builds with the GIL only; sample it with `tracer attach`",
            discovered.version_text
        );
    }
    let table = opcodes::table_for(discovered.version).ok_or_else(|| {
        anyhow!(
            "no opcode table for Python {}: regenerate src/snapshot/opcodes/generated.rs \
             with that version installed",
            discovered.version_text
        )
    })?;
    let walked = Walker::new(&mut target)
        .walk()
        .map_err(|e| anyhow!("cannot read sys.modules of process {pid}: {e}"))?;
    let mut snapshot = analyse(
        &walked.codes,
        walked.live.as_ref(),
        discovered.version,
        &Opcodes::new(table),
        options,
    );
    if !options.evidence_only {
        let sources = crate::source::Sources::of_process(pid, discovered.version);
        let namespaces = walk::namespaces::read(&mut target);
        let mut types = crate::reader::values::TypeCache::default();
        let mut values = walk::namespaces::Values::new(&mut target, &mut types);
        add_bodies(
            &mut snapshot,
            &walked.codes,
            &walked.function_codes,
            (&namespaces, &mut |address| values.bound(address)),
            &sources,
        );
    }
    if discovered.version < arcs::FIRST_VERSION {
        // The line-event model the arcs rest on is CPython 3.12's and later's.
        snapshot.arcs.clear();
        snapshot.stats.arcs = 0;
    }
    snapshot.stats.walk = walked.stats;
    snapshot.stats.python_version = discovered.version_text;
    Ok(snapshot)
}

/// The namespace of a file two modules ran: none.
static NO_NAMESPACE: walk::namespaces::Namespace = walk::namespaces::Namespace {
    name: String::new(),
    file: String::new(),
    entries: Vec::new(),
};

/// Files read at most for module and class bodies.
const MAX_BODY_FILES: usize = 1 << 16;

/// Add the lines of module and class bodies proven by the functions they made (see
/// [`bodies`]): code read as a function's `__code__`, with a qualname of a module or class
/// body (no `<locals>`, `<lambda>`, `<module>`).
pub fn add_bodies(
    snapshot: &mut Snapshot,
    codes: &[CodeObject],
    function_codes: &HashSet<usize>,
    (namespaces, resolve): (&[walk::namespaces::Namespace], bodies::namespaces::Resolve),
    sources: &crate::source::Sources,
) {
    let mut by_file: std::collections::BTreeMap<&str, std::collections::HashSet<bodies::Made>> =
        Default::default();
    for code in codes {
        if !function_codes.contains(&code.address)
            || code.qualname.contains('<')
            || code.qualname.is_empty()
            || code.first_line == 0
        {
            continue;
        }
        if by_file.len() >= MAX_BODY_FILES && !by_file.contains_key(code.filename.as_str()) {
            continue;
        }
        by_file
            .entry(code.filename.as_str())
            .or_default()
            .insert((code.qualname.clone(), code.first_line));
    }
    // Modules that made no function are followed through their namespaces.
    let mut own: std::collections::BTreeMap<&str, &walk::namespaces::Namespace> =
        Default::default();
    for namespace in namespaces.iter().take(MAX_BODY_FILES) {
        by_file.entry(namespace.file.as_str()).or_default();
        // Two modules of one file (a script run as `__main__` and imported): neither is used.
        if own.insert(namespace.file.as_str(), namespace).is_some() {
            own.insert(namespace.file.as_str(), &NO_NAMESPACE);
        }
    }
    for (file, made) in by_file {
        let Ok(bytes) = sources.read(file) else {
            continue;
        };
        let text = crate::source::SourceText::decode(&bytes);
        let namespace = own.get(file).copied();
        let Some(inferred) = bodies::infer_with(&text.text, &made, namespace, &mut *resolve) else {
            snapshot.stats.body_files_changed += 1;
            continue;
        };
        let executable = sources.executable_lines(&text);
        for line in inferred.lines.intersection(&executable) {
            let key = (file.to_string(), *line);
            if snapshot.results.counts.contains_key(&key) {
                continue;
            }
            snapshot.likely.remove(&key);
            snapshot.results.counts.insert(
                key,
                LineHits {
                    hits: 1,
                    self_hits: 0,
                },
            );
            snapshot.stats.body_lines += 1;
        }
        for (from, to) in inferred.arcs {
            if executable.contains(&from) && executable.contains(&to) {
                snapshot
                    .arcs
                    .insert((file.to_string(), i64::from(from), i64::from(to)));
            }
        }
    }
    snapshot.stats.proven_lines = snapshot.results.counts.len();
    snapshot.stats.likely_lines = snapshot.likely.len();
    snapshot.stats.arcs = snapshot.arcs.len();
}

/// One code object, decoded.
struct Analysed<'a> {
    code: &'a CodeObject,
    instrs: Vec<evidence::Instruction>,
    graph: Option<cfg::Cfg>,
    /// No frame of this code was live when the walk ended: rules E and F apply.
    settled: bool,
    ran: Vec<bool>,
    /// The graph disagreed with the evidence: nothing is inferred.
    disagrees: bool,
}

/// Evidence, inference and lines of `codes` (read from a `version` interpreter); `live` is
/// the code objects with a frame on a stack at the end of the walk (`None`: unknown, any).
pub fn analyse(
    codes: &[CodeObject],
    live: Option<&HashSet<usize>>,
    version: PyVersion,
    ops: &Opcodes,
    options: SnapshotOptions,
) -> Snapshot {
    let mut stats = SnapshotStats::default();
    let mut analysed: Vec<Analysed> = Vec::new();
    for code in codes {
        let instrs = match evidence::decode(&code.code, ops) {
            Ok(instrs) => instrs,
            Err(e) => {
                stats.skipped += 1;
                if matches!(e, evidence::DecodeError::Unreadable(name, _) if name.starts_with("INSTRUMENTED_"))
                {
                    stats.instrumented += 1;
                }
                continue;
            }
        };
        let graph = cfg::parse_exception_table(&code.exception_table)
            .and_then(|table| cfg::Cfg::build(&instrs, &table).ok());
        let mut ran: Vec<bool> = instrs.iter().map(|i| i.evidence).collect();
        if code.warmed {
            // 3.11: a RESUME or JUMP_BACKWARD of it ran, so its frame was entered, and a frame
            // starts at its first instruction: the first RESUME ran.
            let entry = 2 * code.first_traceable;
            if let Some(k) = instrs
                .iter()
                .position(|i| i.offset == entry && i.flags & opcodes::flags::RESUME != 0)
            {
                ran[k] = true;
            }
        }
        stats.evidence_instructions += ran.iter().filter(|&&r| r).count();
        analysed.push(Analysed {
            code,
            settled: live.is_some_and(|live| !live.contains(&code.address)),
            instrs,
            graph,
            ran,
            disagrees: false,
        });
    }
    stats.analysed = analysed.len();
    let evidence: Vec<Vec<bool>> = analysed.iter().map(|a| a.ran.clone()).collect();
    let mut likely: Vec<Vec<bool>> = Vec::new();
    if !options.evidence_only {
        for a in &mut analysed {
            infer_proven(a);
        }
        stats.graph_disagreements = analysed.iter().filter(|a| a.disagrees).count();
        likely = infer_likely(&analysed);
    }
    let format = LineTableFormat::for_version(version);
    let mut results = CoverageResults::default();
    let mut evidence_lines = BTreeSet::new();
    let mut likely_lines = BTreeSet::new();
    let mut arcs = BTreeSet::new();
    for (i, a) in analysed.iter().enumerate() {
        let proven = lines_of(a, &a.ran, format);
        for (from, to) in arcs_of(a, ops, format) {
            arcs.insert((a.code.filename.clone(), from, to));
        }
        if a.ran.iter().any(|&r| r) {
            stats.proven_instructions += a.ran.iter().filter(|&&r| r).count();
            results
                .calledfuncs
                .insert(FuncKey::new(&a.code.filename, &a.code.qualname));
        }
        evidence_lines.extend(lines_of(a, &evidence[i], format));
        if let Some(likely) = likely.get(i) {
            likely_lines.extend(lines_of(a, likely, format));
        }
        for key in proven {
            results.counts.insert(
                key,
                LineHits {
                    hits: 1,
                    self_hits: 0,
                },
            );
        }
    }
    // A line with one proven instruction is proven.
    likely_lines.retain(|key| !results.counts.contains_key(key));
    stats.evidence_lines = evidence_lines.len();
    stats.proven_lines = results.counts.len();
    stats.likely_lines = likely_lines.len();
    stats.arcs = arcs.len();
    Snapshot {
        results,
        likely: likely_lines,
        arcs,
        stats,
    }
}

/// The coverage.py arcs proven in one code object ([`arcs`]).
fn arcs_of(a: &Analysed, ops: &Opcodes, format: Option<LineTableFormat>) -> BTreeSet<(i64, i64)> {
    let Some(graph) = a.graph.as_ref().filter(|_| !a.disagrees) else {
        return BTreeSet::new();
    };
    if !a.ran.iter().any(|&r| r) {
        return BTreeSet::new();
    }
    let Some(lines) = instruction_lines(a, format) else {
        return BTreeSet::new();
    };
    let traceable = 2 * a.code.first_traceable;
    let entry = a
        .instrs
        .iter()
        .position(|ins| ins.offset >= traceable && ins.flags & opcodes::flags::RESUME != 0);
    arcs::proven_arcs(
        &arcs::CodeArcs {
            instrs: &a.instrs,
            ran: &a.ran,
            graph,
            settled: a.settled,
            lines: &lines,
            entry,
            first_line: a.code.first_line,
        },
        ops,
    )
}

/// Each instruction's line from the line table; `None` for none and for the prologue up to
/// and including the first RESUME (it runs on every call but is no line of the body).
fn instruction_lines(a: &Analysed, format: Option<LineTableFormat>) -> Option<Vec<Option<u32>>> {
    let format = format?;
    let code_len = a.instrs.last().map_or(0, |i| i.next_offset());
    let ranges: Vec<_> = LineTable::new(format, &a.code.line_table, a.code.first_line)
        .ranges(code_len)
        .collect();
    let first_body = 2 * (a.code.first_traceable + 1);
    Some(
        a.instrs
            .iter()
            .map(|ins| {
                if ins.offset < first_body {
                    return None;
                }
                let at = ranges.partition_point(|r| r.end <= ins.offset);
                ranges
                    .get(at)
                    .filter(|r| r.start <= ins.offset)
                    .and_then(|r| r.line)
            })
            .collect(),
    )
}

/// The lines of the instructions flagged in `flags`. The prologue up to the first RESUME runs
/// on every call but is no line of the body.
fn lines_of(
    a: &Analysed,
    flags: &[bool],
    format: Option<LineTableFormat>,
) -> BTreeSet<(String, u32)> {
    let mut lines = BTreeSet::new();
    if !flags.iter().any(|&f| f) {
        return lines;
    }
    let Some(by_instruction) = instruction_lines(a, format) else {
        return lines;
    };
    for (k, line) in by_instruction.into_iter().enumerate() {
        if let Some(line) = line.filter(|_| flags[k]) {
            lines.insert((a.code.filename.clone(), line));
        }
    }
    lines
}

/// Rules A and B in one code object and, if no frame of it is live, E and F, to a fixed
/// point. Each round adds at least one instruction or stops: bounded by their count.
fn infer_proven(a: &mut Analysed) {
    let Some(graph) = &a.graph else { return };
    loop {
        if !graph.infer(&mut a.ran) {
            a.disagrees = true;
            return;
        }
        if !a.settled || !graph.infer_forward(&mut a.ran) {
            return;
        }
    }
}

/// The likely instructions of every code object (a superset of the proven ones): rule C, and
/// rule D (a nested code object that ran suggests its parent's `LOAD_CONST` of it ran, when
/// one parent holds it and loads it once), with A, B, E and F over them, to a fixed point.
///
/// D is not proof: the nested code may have run without its parent, made into a function
/// from `co_consts` (`types.FunctionType(code, ...)`, `exec(code)`).
fn infer_likely(analysed: &[Analysed]) -> Vec<Vec<bool>> {
    // Child code address → (parent, LOAD_CONST instruction).
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
    let mut likely: Vec<Vec<bool>> = analysed.iter().map(|a| a.ran.clone()).collect();
    // Each round adds at least one instruction or stops: bounded by the instruction count.
    loop {
        for (a, flags) in analysed.iter().zip(likely.iter_mut()) {
            let Some(graph) = a.graph.as_ref().filter(|_| !a.disagrees) else {
                continue;
            };
            let count = |flags: &[bool]| flags.iter().filter(|&&f| f).count();
            let mut before = count(flags);
            // Each pass adds instructions or ends the loop.
            loop {
                graph.infer_likely(flags);
                let _ = graph.infer(flags);
                graph.infer_forward(flags);
                let now = count(flags);
                if now == before {
                    break;
                }
                before = now;
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
            if likely[c].iter().any(|&r| r) && !likely[*p][*k] && !analysed[*p].disagrees {
                likely[*p][*k] = true;
                changed = true;
            }
        }
        if !changed {
            return likely;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::opcodes::table_for;

    fn opcode(name: &str) -> u8 {
        let table = table_for(PyVersion::new(3, 13)).unwrap();
        table.ops.iter().find(|o| o.name == name).unwrap().code
    }

    /// RESUME_CHECK; LOAD_FAST; POP_JUMP_IF_FALSE (fell through once) to 12; LOAD_CONST;
    /// RETURN_VALUE; 12: LOAD_CONST; RETURN_VALUE.
    fn code() -> CodeObject {
        let history = (0x5555u16 << 1).to_ne_bytes();
        CodeObject {
            address: 0x1000,
            filename: "/a.py".into(),
            qualname: "f".into(),
            first_line: 1,
            code: vec![
                opcode("RESUME_CHECK"),
                0,
                opcode("LOAD_FAST"),
                0,
                opcode("POP_JUMP_IF_FALSE"),
                2,
                history[0],
                history[1],
                opcode("LOAD_CONST"),
                0,
                opcode("RETURN_VALUE"),
                0,
                opcode("LOAD_CONST"),
                0,
                opcode("RETURN_VALUE"),
                0,
            ],
            line_table: Vec::new(),
            exception_table: Vec::new(),
            first_traceable: 0,
            const_codes: Vec::new(),
            warmed: false,
        }
    }

    /// 3.11: RESUME; LOAD_FAST; RETURN_VALUE, unquickened (no cache moved).
    fn code_3_11(warmed: bool) -> CodeObject {
        let op = |name: &str| {
            let table = table_for(PyVersion::new(3, 11)).unwrap();
            table.ops.iter().find(|o| o.name == name).unwrap().code
        };
        CodeObject {
            code: vec![op("RESUME"), 0, op("LOAD_FAST"), 0, op("RETURN_VALUE"), 0],
            warmed,
            ..code()
        }
    }

    #[test]
    fn warmup_counter_proves_the_entry_and_no_line() {
        let v = PyVersion::new(3, 11);
        let ops = Opcodes::new(table_for(v).unwrap());
        let none = HashSet::default();
        let take = |warmed: bool| {
            analyse(
                &[code_3_11(warmed)],
                Some(&none),
                v,
                &ops,
                SnapshotOptions::default(),
            )
        };
        let cold = take(false);
        assert_eq!(cold.stats.proven_instructions, 0);
        assert!(cold.results.calledfuncs.is_empty());
        let warm = take(true);
        // The RESUME alone: called, but its eval-breaker check may raise before the next.
        assert_eq!(warm.stats.proven_instructions, 1);
        assert_eq!(warm.results.calledfuncs.len(), 1);
        assert!(warm.results.counts.is_empty());
    }

    #[test]
    fn branch_history_and_forward_rules_only_for_code_with_no_live_frame() {
        let ops = Opcodes::new(table_for(PyVersion::new(3, 13)).unwrap());
        let codes = [code()];
        let proven = |live: Option<&HashSet<usize>>| {
            analyse(
                &codes,
                live,
                PyVersion::new(3, 13),
                &ops,
                SnapshotOptions::default(),
            )
            .stats
            .proven_instructions
        };
        let none = HashSet::default();
        let with_it: HashSet<usize> = [0x1000].into_iter().collect();
        // Settled: the arm it fell into, to its return.
        assert_eq!(proven(Some(&none)), 5);
        // A frame of it live now, or the stacks unknown: the jump itself, no further.
        assert_eq!(proven(Some(&with_it)), 3);
        assert_eq!(proven(None), 3);
    }
}

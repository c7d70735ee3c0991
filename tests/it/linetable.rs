//! The line-table decoder (src/reader/linetable/) against each Python's own answers.
//!
//! tests/support/dump_linetables.py compiles the test workloads, a fixed list of stdlib modules
//! and generated edge cases under every Python 3.8–3.13 found, and dumps each code object's
//! line table with `PyCode_Addr2Line` at every code unit (the function `f_lineno` uses),
//! `co_lines()` and `co_positions()`. Our decoder must agree on every code object and offset.

use crate::common::*;
use serde::Deserialize;
use std::process::Command;
use tracer::reader::linetable::{
    lookup_offset, InstructionOffset, LineTable, LineTableFormat, RawFramePosition,
};
use tracer::reader::PyVersion;

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Record {
    Code(CodeRecord),
    Frame(FrameRecord),
}

#[derive(Deserialize)]
struct CodeRecord {
    #[serde(rename = "where")]
    location: String,
    table: String,
    first_line: u32,
    code_len: u32,
    /// `PyCode_Addr2Line` at offsets 0, 2, 4, …
    addr2line: Vec<Option<u32>>,
    before_start: u32,
    lines: Option<Vec<(u32, u32, Option<u32>)>>,
    positions: Option<Vec<Position>>,
}

type Position = (Option<u32>, Option<u32>, Option<u32>, Option<u32>);

#[derive(Deserialize)]
struct FrameRecord {
    #[serde(rename = "where")]
    location: String,
    table: String,
    first_line: u32,
    f_lasti: i32,
    f_lineno: Option<u32>,
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Adjacent ranges with the same line as one (3.10's `co_lines()` splits them).
fn merged(
    ranges: impl IntoIterator<Item = (u32, u32, Option<u32>)>,
) -> Vec<(u32, u32, Option<u32>)> {
    let mut out: Vec<(u32, u32, Option<u32>)> = Vec::new();
    for (start, end, line) in ranges {
        match out.last_mut() {
            Some(last) if last.2 == line && last.1 == start => last.1 = end,
            _ => out.push((start, end, line)),
        }
    }
    out
}

#[derive(Default, Debug)]
struct Counts {
    code_objects: usize,
    offsets: usize,
    no_line_offsets: usize,
    ranges: usize,
    positions: usize,
    frames: usize,
}

fn check_code(format: LineTableFormat, record: &CodeRecord, counts: &mut Counts) {
    let bytes = unhex(&record.table);
    let table = LineTable::new(format, &bytes, record.first_line);
    let here = &record.location;
    assert_eq!(
        record.addr2line.len() as u32,
        record.code_len.div_ceil(2),
        "{here}"
    );

    for (index, expected) in record.addr2line.iter().enumerate() {
        let offset = index as u32 * 2;
        assert_eq!(
            table.line_for_offset(offset),
            *expected,
            "{here}: offset {offset}, table {}",
            record.table
        );
        counts.offsets += 1;
        counts.no_line_offsets += usize::from(expected.is_none());
    }
    assert_eq!(
        table.line_at(InstructionOffset::BeforeStart),
        Some(record.before_start),
        "{here}"
    );

    let ranges: Vec<_> = table
        .ranges(record.code_len)
        .map(|r| (r.start, r.end, r.line))
        .collect();
    counts.ranges += ranges.len();
    // The ranges cover the code exactly and agree with the per-offset truth.
    let mut covered = 0;
    for &(start, end, line) in &ranges {
        assert_eq!(start, covered, "{here}: {ranges:?}");
        covered = end;
        for offset in (start..end).step_by(2) {
            assert_eq!(
                line,
                record.addr2line[offset as usize / 2],
                "{here}: {offset}"
            );
        }
    }
    assert_eq!(covered, record.code_len, "{here}: {ranges:?}");
    if let Some(co_lines) = &record.lines {
        assert_eq!(ranges, merged(co_lines.iter().copied()), "{here}");
    }

    let known: Vec<u32> = record.addr2line.iter().flatten().copied().collect();
    let expected_span = known
        .iter()
        .min()
        .map(|low| (*low, *known.iter().max().unwrap()));
    assert_eq!(table.line_range(record.code_len), expected_span, "{here}");

    match (&record.positions, table.positions()) {
        (Some(co_positions), Some(ours)) => {
            let mut per_unit: Vec<Position> = Vec::new();
            for p in ours {
                for _ in (p.start..p.end).step_by(2) {
                    per_unit.push((p.line, p.end_line, p.column, p.end_column));
                }
            }
            assert_eq!(&per_unit, co_positions, "{here}");
            counts.positions += per_unit.len();
        }
        (None, None) => {}
        _ => panic!("{here}: positions only on 3.11+"),
    }
    counts.code_objects += 1;
}

/// What a frame stores, rebuilt from the `f_lasti` Python shows (bytes, or -1), so that the
/// frame-offset conventions are checked against real `f_lineno`s: unstarted generators and
/// coroutines, suspended ones, callers standing on a call.
fn raw_position(version: PyVersion, f_lasti: i32) -> RawFramePosition {
    const CODE_START: u64 = 0x7f00_0000_1000;
    match version.minor {
        8 | 9 => RawFramePosition::Lasti(f_lasti),
        10 => RawFramePosition::Lasti(if f_lasti < 0 { -1 } else { f_lasti / 2 }),
        _ => RawFramePosition::InstructionPointer {
            pointer: CODE_START.wrapping_add_signed(if f_lasti < 0 { -2 } else { f_lasti.into() }),
            code_start: CODE_START,
        },
    }
}

fn check_frame(version: PyVersion, format: LineTableFormat, frame: &FrameRecord) {
    let bytes = unhex(&frame.table);
    let table = LineTable::new(format, &bytes, frame.first_line);
    let offset = lookup_offset(version, raw_position(version, frame.f_lasti))
        .unwrap_or_else(|| panic!("{}: f_lasti {} refused", frame.location, frame.f_lasti));
    assert_eq!(
        table.line_at(offset),
        frame.f_lineno,
        "{}: f_lasti {}",
        frame.location,
        frame.f_lasti
    );
}

per_python!(
    /// Our decoder against what each interpreter says of the workloads' code objects and live
    /// frames (tests/support/dump_linetables.py).
    decoder_agrees_with_every_python,
    |python| {
        let workloads: Vec<String> = ["mix.py", "demo.py", "exit_with.py"]
            .iter()
            .map(|name| workload(name).display().to_string())
            .collect();
        let format = LineTableFormat::for_version(python.version).unwrap();
        let out = Command::new(&python.path)
            .arg(support("dump_linetables.py"))
            .args(&workloads)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            python.label(),
            printed(&out)
        );
        let mut counts = Counts::default();
        for line in out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Record>(line).unwrap() {
                Record::Code(record) => check_code(format, &record, &mut counts),
                Record::Frame(frame) => {
                    check_frame(python.version, format, &frame);
                    counts.frames += 1;
                }
            }
        }
        println!(
            "{}: {format:?}: {} code objects, {} offsets ({} without a line), {} ranges, \
             {} positions, {} live frames: all agree",
            python.label(),
            counts.code_objects,
            counts.offsets,
            counts.no_line_offsets,
            counts.ranges,
            counts.positions,
            counts.frames
        );
        assert!(
            counts.code_objects > 1000 && counts.frames > 5,
            "{counts:?}"
        );
        Ok(())
    }
);

#[derive(Deserialize)]
struct ObservedCode {
    name: String,
    code: String,
    lnotab: String,
    first_line: u32,
    /// (offset a frame stood on, lines that had a line event in that frame by then).
    observations: Vec<(u32, Vec<u32>)>,
}

/// 3.8–3.9 (src/reader/line_proof): a frame at any instruction is reported only on a line
/// that had a line event in that frame before it stood there. The truth is the interpreter's
/// own per-opcode trace (tests/support/line_proof_check.py) over tests/workloads/constructs.py:
/// a `with` body raising before its last line, `async for`, try/finally, break and continue,
/// nested handlers. `co_lnotab`'s own lines fail this (3.8: the `with` cleanup stands on the
/// body's last line, which never ran; 3.8 and 3.9: a handler's cleanup on its last line), and
/// the test checks that they do.
#[test]
fn lines_before_3_10_are_proven_by_the_frame_position() {
    let mut tested = 0;
    for python in pythons_under_test() {
        if !tracer::reader::line_proof::applies_to(python.version) {
            continue;
        }
        let out = Command::new(&python.path)
            .arg(support("line_proof_check.py"))
            .arg(workload("constructs.py"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            python.label(),
            printed(&out)
        );
        let codes: Vec<ObservedCode> = serde_json::from_slice(&out.stdout).unwrap();
        let (mut observations, mut moved, mut lnotab_wrong) = (0, 0, Vec::new());
        for code in &codes {
            let bytes = unhex(&code.code);
            let table = unhex(&code.lnotab);
            let lines: Vec<_> = LineTable::new(LineTableFormat::Lnotab, &table, code.first_line)
                .ranges(bytes.len() as u32)
                .collect();
            let proven =
                tracer::reader::line_proof::proven_lines(python.version, &bytes, &lines).unwrap();
            let line_in = |ranges: &[tracer::reader::linetable::LineRange], offset: u32| {
                ranges
                    .iter()
                    .find(|r| r.start <= offset && offset < r.end)
                    .and_then(|r| r.line)
            };
            for (offset, seen) in &code.observations {
                observations += 1;
                let ours = line_in(&proven, *offset);
                let lnotab = line_in(&lines, *offset);
                if let Some(line) = ours {
                    assert!(
                        seen.contains(&line),
                        "{}: {} at offset {offset}: reported on line {line}, which had not run \
                         (lines run: {seen:?})",
                        python.label(),
                        code.name
                    );
                }
                if ours != lnotab {
                    moved += 1;
                }
                if lnotab.is_some_and(|l| !seen.contains(&l)) {
                    lnotab_wrong.push(format!("{}@{offset}", code.name));
                }
            }
        }
        println!(
            "{}: {observations} positions of {} code objects, every proven line had run; {moved} \
             moved off co_lnotab's line, which was wrong at {lnotab_wrong:?}",
            python.label(),
            codes.len()
        );
        assert!(
            !lnotab_wrong.is_empty(),
            "{}: co_lnotab's lines should be wrong somewhere here (a handler's cleanup)",
            python.label()
        );
        tested += 1;
    }
    if tested == 0 {
        println!("SKIP: no Python 3.8 or 3.9 found");
    }
}

/// 3.12 (`may_stand_on_an_unrun_loop_jump`): after a generator that a `for` loop drives inline
/// returns, the caller stands on the loop's `JUMP_BACKWARD` (the body's last line) until
/// `END_FOR` starts. tests/workloads/generators.py's `empty_loop` loops over a generator that
/// yields nothing: its body never runs, and a frame on that jump is reported on the `for` line.
/// The jump is found in the interpreter's own bytecode of the function, and its line in the
/// line table is the body's, which is what was reported before (1–13 false hits in 8 s at
/// 10–20 kHz on 3.12).
#[test]
fn a_loop_exit_jump_stands_on_the_for_line_on_3_12() {
    const PROBE: &str = r#"
import dis, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("generators", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
code = module.empty_loop.__code__
ins = list(dis.get_instructions(code))
jump = next(i for i, n in zip(ins, ins[1:]) if n.opname == "END_FOR" and "JUMP" in i.opname)
target = next(i for i in ins if i.offset == jump.argval)
print(json.dumps(dict(code=code.co_code.hex(), table=code.co_linetable.hex(),
    first_line=code.co_firstlineno, jump=jump.offset,
    body_line=jump.positions.lineno, for_line=target.positions.lineno)))
"#;
    #[derive(Deserialize)]
    struct Probe {
        code: String,
        table: String,
        first_line: u32,
        jump: u32,
        body_line: u32,
        for_line: u32,
    }
    let mut tested = 0;
    for python in pythons_under_test() {
        let expected = python.version == PyVersion::new(3, 12);
        assert_eq!(
            tracer::reader::linetable::may_stand_on_an_unrun_loop_jump(python.version),
            expected,
            "{}",
            python.label()
        );
        if python.version < PyVersion::new(3, 12) {
            continue; // no END_FOR
        }
        let out = Command::new(&python.path)
            .args(["-c", PROBE])
            .arg(workload("generators.py"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            python.label(),
            printed(&out)
        );
        let probe: Probe = serde_json::from_slice(&out.stdout).unwrap();
        let code = unhex(&probe.code);
        let table = unhex(&probe.table);
        let lines: Vec<_> = LineTable::new(LineTableFormat::Locations, &table, probe.first_line)
            .ranges(code.len() as u32)
            .collect();
        let own_line = lines
            .iter()
            .find(|r| r.start <= probe.jump && probe.jump < r.end)
            .and_then(|r| r.line);
        assert_eq!(own_line, Some(probe.body_line), "{}", python.label());
        assert_ne!(probe.body_line, probe.for_line);
        let jumps = tracer::reader::linetable::loop_exit_jumps(python.version, &code, &lines);
        if expected {
            assert!(
                jumps.contains(&(probe.jump, Some(probe.for_line))),
                "{}: the jump at {} should stand on line {}: {jumps:?}",
                python.label(),
                probe.jump,
                probe.for_line
            );
        }
        println!(
            "{}: empty_loop's exit jump at byte {} (line {}) {}",
            python.label(),
            probe.jump,
            probe.body_line,
            if expected {
                format!("is reported on the for line {}", probe.for_line)
            } else {
                "keeps its line (the caller stands on FOR_ITER_GEN until END_FOR starts)".into()
            }
        );
        tested += 1;
    }
    if tested == 0 {
        println!("SKIP: no Python 3.12+ found");
    }
}

/// src/reader/line_proof/generated.rs is what its generator measures from 3.8 and 3.9 now.
#[test]
fn line_proof_tables_match_their_generator() {
    let found = |minor| {
        all_pythons()
            .iter()
            .any(|p| p.version == PyVersion::new(3, minor))
    };
    if !found(8) || !found(9) {
        println!("SKIP: the line_proof tables need both 3.8 and 3.9 to regenerate");
        return;
    }
    let (committed, fresh) = regenerate("src/reader/line_proof", "line_proof");
    assert!(
        committed == fresh,
        "src/reader/line_proof/generated.rs differs from what generate.py measures now: \
         regenerate with python3 src/reader/line_proof/generate.py"
    );
}

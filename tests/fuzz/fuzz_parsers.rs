//! Fuzzing every parser of bytes that come from outside: line tables of every format, the
//! debug offsets of 3.13+, the values of local variables (`--locals`, reader/values.rs), the executable-line analysis of Python sources, and the results files
//! `report` and `merge` read back (trace's pickle, our JSON, coverage.py's SQLite database).
//!
//! Each target runs `TRACER_FUZZ_CASES` cases (2,000 by default; `make fuzz` runs 1,000,000):
//! random bytes, and real inputs mutated (bytes replaced, inserted, deleted, truncated). A
//! case passes if the parser returns, with a value or an error: no panic, and no case runs
//! longer than the watchdog's limit (tests/common/fuzz.rs).

use crate::common::fuzz::{fuzz_cases, CaseCounter};

use crate::common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::sync::OnceLock;
use tracer::aggregate::model::{CoverageResults, FuncKey, LineHits, StackFrame, StackKey, Stacks};
use tracer::reader::linetable::{lookup_offset, LineTable, LineTableFormat, RawFramePosition};

/// One edit of a seed input.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Set(at, b)),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        1 => (any::<usize>(), 1usize..32).prop_map(|(at, n)| Edit::Delete(at, n)),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(edit, 1..8)
}

fn apply(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for edit in edits {
        let len = bytes.len();
        match edit {
            Edit::Set(at, b) if len > 0 => bytes[at % len] = *b,
            Edit::Insert(at, more) => {
                let at = at % (len + 1);
                bytes.splice(at..at, more.iter().copied());
            }
            Edit::Delete(at, n) if len > 0 => {
                let at = at % len;
                bytes.drain(at..(at + n).min(len));
            }
            Edit::Truncate(at) => bytes.truncate(at % (len + 1)),
            _ => {}
        }
    }
    bytes
}

/// Random bytes, or one of `seeds` (chosen by index) edited.
fn inputs(seeds: Vec<Vec<u8>>, max_random: usize) -> BoxedStrategy<Vec<u8>> {
    let random = prop::collection::vec(any::<u8>(), 0..max_random);
    if seeds.is_empty() {
        return random.boxed();
    }
    let count = seeds.len();
    let mutated = (0..count, edits()).prop_map(move |(i, e)| apply(&seeds[i], &e));
    prop_oneof![1 => random, 3 => mutated].boxed()
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: fuzz_cases(),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    })
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect()
}

/// A real line table: its format, bytes, first line and code length in bytes.
type SeedTable = (LineTableFormat, Vec<u8>, u32, u32);

/// Real line tables (hex, first line, code length) of each Python found, by format: every
/// code object of mix.py and a few stdlib modules.
fn real_line_tables() -> &'static Vec<SeedTable> {
    static TABLES: OnceLock<Vec<SeedTable>> = OnceLock::new();
    TABLES.get_or_init(|| {
        const DUMP: &str = r#"
import sys, types, json, dis, argparse, difflib
def walk(code):
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from walk(c)
sources = [sys.argv[1], json.__file__, dis.__file__, argparse.__file__, difflib.__file__]
for path in sources:
    code = compile(open(path, encoding="utf-8").read(), path, "exec")
    for c in walk(code):
        table = c.co_linetable if sys.version_info >= (3, 10) else c.co_lnotab
        print(table.hex(), c.co_firstlineno, len(c.co_code))
"#;
        let mut tables = Vec::new();
        for python in pythons_under_test() {
            let Some(format) = LineTableFormat::for_version(python.version) else {
                continue;
            };
            let mix = workload("mix.py");
            let out = run_python(
                &python,
                &["-c", DUMP, mix.to_str().unwrap()],
                &repo_root(),
                60.0,
            );
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let fields: Vec<&str> = line.split(' ').collect();
                if let [table, first, len] = fields[..] {
                    tables.push((
                        format,
                        unhex(table),
                        first.parse().unwrap_or(1),
                        len.parse().unwrap_or(0),
                    ));
                }
            }
        }
        println!("fuzz seeds: {} real line tables", tables.len());
        tables
    })
}

/// Every query of the decoder on one table: nothing may panic, and the ranges stay in order,
/// non-empty and within the code.
fn exercise_line_table(format: LineTableFormat, bytes: &[u8], first_line: u32, code_len: u32) {
    let table = LineTable::new(format, bytes, first_line);
    let mut previous_end = 0;
    for range in table.ranges(code_len).take(1 << 20) {
        assert!(range.start < range.end, "{range:?}");
        assert!(
            range.start >= previous_end && range.end <= code_len,
            "{range:?}"
        );
        previous_end = range.end;
    }
    let _ = table.line_range(code_len);
    for offset in [
        0,
        2,
        code_len / 2,
        code_len.saturating_sub(2),
        code_len,
        u32::MAX,
    ] {
        let _ = table.line_for_offset(offset);
    }
    if let Some(positions) = table.positions() {
        for _ in positions.take(1 << 20) {}
    }
    for (major, minor) in [(3, 8), (3, 10), (3, 11), (3, 12), (3, 13), (3, 14), (2, 7)] {
        let version = PyVersion::new(major, minor);
        for raw in [
            RawFramePosition::Lasti(first_line as i32),
            RawFramePosition::Lasti(-(code_len as i32)),
            RawFramePosition::InstructionPointer {
                pointer: u64::from(code_len),
                code_start: u64::from(first_line),
            },
        ] {
            if let Some(at) = lookup_offset(version, raw) {
                let _ = table.line_at(at);
            }
        }
    }
}

#[test]
fn fuzz_line_tables_of_every_format() {
    static COUNT: CaseCounter = CaseCounter::new("line tables");
    let seeds = real_line_tables();
    for format in [
        LineTableFormat::Lnotab,
        LineTableFormat::Linetable310,
        LineTableFormat::Locations,
    ] {
        let of_format: Vec<&SeedTable> = seeds.iter().filter(|s| s.0 == format).collect();
        let seed_bytes: Vec<Vec<u8>> = of_format.iter().map(|s| s.1.clone()).collect();
        let strategy = (
            inputs(seed_bytes, 512),
            any::<u32>(),
            prop_oneof![any::<u32>(), 0u32..4096],
        );
        runner()
            .run(&strategy, |(bytes, first_line, code_len)| {
                COUNT.case();
                exercise_line_table(format, &bytes, first_line, code_len);
                exercise_line_table(format, &bytes, first_line % 100_000, code_len % 65_536);
                Ok(())
            })
            .unwrap();
    }
    COUNT.report();
}

#[test]
fn fuzz_debug_offsets() {
    use tracer::reader::layout::debug_offsets::{bytes_to_read, layout_from_debug_offsets};
    static COUNT: CaseCounter = CaseCounter::new("debug offsets");
    let size = bytes_to_read();
    // A real one when a 3.13 runs here; a cookie and a 3.13 version otherwise.
    let mut seed = vec![0u8; size];
    seed[..8].copy_from_slice(b"xdebugpy");
    seed[8..16].copy_from_slice(&0x030d_00f0u64.to_le_bytes());
    let mut seeds = vec![seed];
    for minor in [13, 14] {
        seeds.extend(real_debug_offsets(minor));
    }
    runner()
        .run(&inputs(seeds, size + 64), |bytes| {
            COUNT.case();
            if let Ok(layout) = layout_from_debug_offsets(&bytes) {
                assert!(layout.check_plausible().is_ok());
            }
            Ok(())
        })
        .unwrap();
    COUNT.report();
}

/// The start of `_PyRuntime` of a live 3.`minor`, if one is found.
fn real_debug_offsets(minor: u8) -> Option<Vec<u8>> {
    use tracer::reader::discover::scan_for_cookie;
    use tracer::reader::layout::debug_offsets::bytes_to_read;
    use tracer::reader::memory::TargetMemory;
    let python = pythons_under_test()
        .into_iter()
        .find(|p| p.version == PyVersion::new(3, minor))?;
    let target = Workload::start(&python, &workload("mix.py"), 20.0);
    let mut memory = TargetMemory::open(target.pid()).ok()?;
    let address = scan_for_cookie(target.pid(), &mut memory).ok()??;
    let mut bytes = vec![0u8; bytes_to_read()];
    memory.read(address, &mut bytes).ok()?;
    println!("fuzz seeds: the debug offsets of {}", python.label());
    Some(bytes)
}

#[test]
fn fuzz_executable_lines_of_python_sources() {
    use tracer::source::executable_lines::executable_lines;
    static COUNT: CaseCounter = CaseCounter::new("executable lines");
    let seeds: Vec<Vec<u8>> = ["mix.py", "shapes.py", "demo.py"]
        .iter()
        .filter_map(|w| std::fs::read(workload(w)).ok())
        .chain([
            b"def f(\n    x):\n    return [y\n for y in x if y]\n".to_vec(),
            b"class C:\n    '''doc'''\n    @d\n    def m(self): pass\n".to_vec(),
            b"x = f'{a!r:>{w}}' \\\n  'b'\nmatch x:\n  case [1, *_]: pass\n".to_vec(),
            "(".repeat(300).into_bytes(),
        ])
        .collect();
    let versions = prop::sample::select(vec![
        PyVersion::new(3, 8),
        PyVersion::new(3, 9),
        PyVersion::new(3, 10),
        PyVersion::new(3, 11),
        PyVersion::new(3, 12),
        PyVersion::new(3, 13),
        PyVersion::new(3, 14),
    ]);
    runner()
        .run(&(inputs(seeds, 256), versions), |(bytes, version)| {
            COUNT.case();
            let text = String::from_utf8_lossy(&bytes);
            let _ = executable_lines(&text, version);
            let _ = tracer::source::SourceText::decode(&bytes).lines();
            Ok(())
        })
        .unwrap();
    COUNT.report();
}

/// Results with every kind of entry: counts, functions, edges, stacks, odd names.
fn sample_results() -> CoverageResults {
    let mut r = CoverageResults::default();
    let f = FuncKey::new("/srv/app/mod.py", "work");
    let g = FuncKey::new("/srv/app/é.py", "<lambda>");
    for (file, line) in [
        ("/srv/app/mod.py", 3),
        ("/srv/app/é.py", 70000),
        ("<string>", 1),
    ] {
        r.counts.insert(
            (file.into(), line),
            LineHits {
                hits: 7,
                self_hits: 2,
            },
        );
    }
    r.calledfuncs.insert(f.clone());
    r.calledfuncs.insert(g.clone());
    r.callers.insert((f.clone(), g.clone()), 5);
    let mut stacks = Stacks::default();
    stacks.samples.insert(
        StackKey {
            process: 4242,
            thread: u64::MAX,
            frames: vec![
                StackFrame { func: f, line: 3 },
                StackFrame {
                    func: g,
                    line: 70000,
                },
            ],
        },
        4,
    );
    r.stacks = Some(stacks);
    r
}

/// What `merge` and `report` do with results read back: merge them, map paths, render every
/// output that needs no source file.
fn exercise_results(results: &CoverageResults) {
    use tracer::output::{callgraph, flame, trace_text};
    let mut merged = results.clone();
    merged.update(results);
    merged.update(&sample_results());
    let _ = merged.map_paths(|p| p.replacen("/srv", "/home", 1));
    let _ = trace_text::functions_called(&merged);
    let _ = trace_text::calling_relationships(&merged);
    let _ = callgraph::dot(&merged);
    if let Some(stacks) = &results.stacks {
        let _ = flame::collapsed(stacks);
    }
}

#[test]
fn fuzz_pickle_results() {
    use tracer::output::pickle;
    static COUNT: CaseCounter = CaseCounter::new("pickle results");
    let results = sample_results();
    let seeds = vec![
        pickle::to_vec(&results, true).unwrap(),
        pickle::to_vec(&results, false).unwrap(),
    ];
    runner()
        .run(&inputs(seeds, 256), |bytes| {
            COUNT.case();
            if let Ok(results) = pickle::from_slice(&bytes) {
                exercise_results(&results);
            }
            Ok(())
        })
        .unwrap();
    COUNT.report();
}

#[test]
fn fuzz_json_results() {
    use tracer::output::{json, RunInfo};
    static COUNT: CaseCounter = CaseCounter::new("json results");
    let results = sample_results();
    let seeds = vec![json::to_vec(&results, &RunInfo::default()).unwrap()];
    runner()
        .run(&inputs(seeds, 256), |bytes| {
            COUNT.case();
            if let Ok((results, _)) = json::from_slice(&bytes) {
                exercise_results(&results);
            }
            Ok(())
        })
        .unwrap();
    COUNT.report();
}

#[test]
fn fuzz_coverage_databases() {
    use tracer::output::coverage_db;
    static COUNT: CaseCounter = CaseCounter::new("coverage.py databases");
    let dir = scratch("fuzz-coverage-db");
    let seed_path = dir.join("seed.coverage");
    // A seed with the plugin's table and `tracer` rows too.
    let results = sample_results();
    let plugin = coverage_db::ExecutableLines {
        python: Some(PyVersion::new(3, 12)),
        by_file: coverage_db::line_sets(&results)
            .into_iter()
            .map(|(file, lines)| (file.to_owned(), lines.into_iter().collect()))
            .collect(),
        skipped: Vec::new(),
    };
    coverage_db::write(&results, &seed_path, Some(&plugin), None).unwrap();
    let seeds = vec![std::fs::read(&seed_path).unwrap()];
    let case_path = dir.join("case.coverage");
    runner()
        .run(&inputs(seeds, 256), |bytes| {
            COUNT.case();
            std::fs::write(&case_path, &bytes).unwrap();
            let _ = crate::common::coverage_db::read_line_sets(&case_path);
            let _ = crate::common::coverage_db::read_plugin_data(&case_path);
            let _ = tracer::output::load_results(&case_path);
            Ok(())
        })
        .unwrap();
    COUNT.report();
}

#[test]
fn fuzz_numbits() {
    use tracer::output::coverage_db::numbits_to_lines;
    static COUNT: CaseCounter = CaseCounter::new("numbits");
    runner()
        .run(&prop::collection::vec(any::<u8>(), 0..4096), |bits| {
            COUNT.case();
            let _ = numbits_to_lines(&bits);
            Ok(())
        })
        .unwrap();
    COUNT.report();
}

#[test]
fn fuzz_snapshot_bytecode_and_exception_tables() {
    use tracer::snapshot::cfg::{parse_exception_table, Cfg};
    use tracer::snapshot::evidence::decode;
    use tracer::snapshot::opcodes::{Opcodes, TABLES};
    static COUNT: CaseCounter = CaseCounter::new("snapshot bytecode");
    let tables: Vec<Opcodes> = TABLES.iter().map(|t| Opcodes::new(t)).collect();
    // A code of RESUME, a conditional jump, a loop back, a return; one handler entry.
    let seed = vec![
        149,
        0,
        97,
        2,
        0x55,
        0x55,
        1,
        0,
        77,
        3,
        4,
        1,
        36,
        0,
        0x80 | 1,
        3,
        6,
        1,
    ];
    runner()
        .run(&inputs(vec![seed], 256), |bytes| {
            COUNT.case();
            let split = (bytes.len() / 2) & !1;
            let (code, table) = bytes.split_at(split);
            let exceptions = parse_exception_table(table).unwrap_or_default();
            for ops in &tables {
                if let Ok(instrs) = decode(code, ops) {
                    if let Ok(graph) = Cfg::build(&instrs, &exceptions) {
                        let mut ran = vec![true; instrs.len()];
                        graph.infer(&mut ran);
                        graph.infer_forward(&mut ran);
                        graph.infer_likely(&mut ran);
                        let mut ran: Vec<bool> = instrs.iter().map(|i| i.evidence).collect();
                        graph.infer(&mut ran);
                        graph.infer_forward(&mut ran);
                        graph.infer_likely(&mut ran);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    COUNT.report();
}

/// Where the fuzzed value images live.
const VALUE_IMAGE_BASE: usize = 0x10_0000;

/// An image of objects for the value decoder: type objects named as the built-in types it
/// decodes, and objects of those types (plus cells) whose fields are random words, pointers
/// into the image, or small numbers; the decoder must return for any of them. Most dicts get a
/// key table of their own shaped as the layout describes (3.8–3.10's `dk_size` or 3.11+'s log2
/// sizes and kind), with fields and entries as random as the rest, so that the table walk is
/// reached on every layout.
fn value_image(layout: &tracer::reader::layout::Layout, words: &[u64]) -> (Vec<u8>, Vec<usize>) {
    const NAMES: [&str; 10] = [
        "int", "bool", "float", "NoneType", "str", "bytes", "tuple", "list", "dict", "cell",
    ];
    const DICT: usize = 8;
    const TYPE_SPAN: usize = 512;
    const OBJECT_SPAN: usize = 256;
    const KEYS_SPAN: usize = 512;
    let objects = 24;
    let first_keys = NAMES.len() * TYPE_SPAN + objects * OBJECT_SPAN;
    let size = first_keys + objects * KEYS_SPAN + 4096;
    let mut image = vec![0u8; size];
    let mut next = 0usize;
    let mut word = || {
        next += 1;
        words.get(next % words.len().max(1)).copied().unwrap_or(0)
    };
    let put = |image: &mut Vec<u8>, at: usize, value: u64| {
        if let Some(slot) = image.get_mut(at..at + 8) {
            slot.copy_from_slice(&value.to_le_bytes());
        }
    };
    // Type objects, each with its name after it.
    for (i, name) in NAMES.iter().enumerate() {
        let at = i * TYPE_SPAN;
        let name_at = at + TYPE_SPAN - 32;
        image[name_at..name_at + name.len()].copy_from_slice(name.as_bytes());
        put(
            &mut image,
            at + layout.type_name,
            (VALUE_IMAGE_BASE + name_at) as u64,
        );
        put(&mut image, at + layout.type_flags, 0);
    }
    let first_object = NAMES.len() * TYPE_SPAN;
    let object_addresses: Vec<usize> = (0..objects)
        .map(|i| VALUE_IMAGE_BASE + first_object + i * OBJECT_SPAN)
        .collect();
    for (i, &address) in object_addresses.iter().enumerate() {
        let at = address - VALUE_IMAGE_BASE;
        // Fields: random words, pointers to other objects, small counts.
        for field in (0..OBJECT_SPAN).step_by(8) {
            let w = word();
            let value = match w % 4 {
                0 => w,
                1 => object_addresses[(w >> 8) as usize % objects] as u64,
                2 => (w >> 8) % 70,
                _ => (VALUE_IMAGE_BASE as u64).wrapping_add((w >> 8) % size as u64),
            };
            put(&mut image, at + field, value);
        }
        let type_index = (word() as usize + i) % NAMES.len();
        put(
            &mut image,
            at + layout.object_type,
            (VALUE_IMAGE_BASE + type_index * TYPE_SPAN) as u64,
        );
        if type_index == DICT && word() % 4 != 0 {
            let keys_at = first_keys + i * KEYS_SPAN;
            let block = &mut image[keys_at..keys_at + KEYS_SPAN];
            let used = shaped_key_table(layout, block, &object_addresses, &mut word);
            put(
                &mut image,
                at + layout.dict_keys,
                (VALUE_IMAGE_BASE + keys_at) as u64,
            );
            let values = if word() % 8 == 0 { word() } else { 0 };
            put(&mut image, at + layout.dict_values, values);
            let used = if word() % 8 == 0 { word() % 20 } else { used };
            put(&mut image, at + layout.dict_used, used);
        }
    }
    (image, object_addresses)
}

/// Fill `block` with a dict key table of the layout's shape: a small power-of-two size (or,
/// now and then, a wrong one), `dk_nentries` up to the size, random index bytes, then entries
/// whose keys and values are objects, random words or NULL (a deleted entry). Returns the
/// number of entries with a value, the `ma_used` that matches.
fn shaped_key_table(
    layout: &tracer::reader::layout::Layout,
    block: &mut [u8],
    objects: &[usize],
    word: &mut dyn FnMut() -> u64,
) -> u64 {
    use tracer::reader::layout::DictKeyTable;
    let put = |block: &mut [u8], at: usize, bytes: &[u8]| {
        if let Some(slot) = block.get_mut(at..at + bytes.len()) {
            slot.copy_from_slice(bytes);
        }
    };
    let choice = word() as usize;
    let log2_size = [0usize, 1, 2, 3, 3, 3, 4, 4][choice % 8];
    let size = 1usize << log2_size;
    let nentries = (word() as usize) % (size + 1);
    let general = !choice.is_multiple_of(3);
    let (nentries_at, indices_at, index_bytes, (entry_size, key_at, value_at)) =
        match layout.dict_key_table {
            DictKeyTable::Sized {
                dict_keys_size,
                dict_keys_nentries,
                dict_keys_indices,
                dict_entry_size,
                dict_entry_key,
                dict_entry_value,
            } => {
                // A wrong size now and then: not a power of two, or huge.
                let stored = match choice % 16 {
                    0 => 3,
                    1 => u64::MAX,
                    _ => size as u64,
                };
                put(block, dict_keys_size, &stored.to_le_bytes());
                (
                    dict_keys_nentries,
                    dict_keys_indices,
                    size,
                    (dict_entry_size, dict_entry_key, dict_entry_value),
                )
            }
            DictKeyTable::Log2 {
                dict_keys_log2_size,
                dict_keys_log2_index_bytes,
                dict_keys_kind,
                dict_keys_nentries,
                dict_keys_indices,
                dict_entry_size,
                dict_entry_key,
                dict_entry_value,
                dict_unicode_entry_size,
                dict_unicode_entry_key,
                dict_unicode_entry_value,
                dict_kind_general,
            } => {
                put(block, dict_keys_log2_size, &[log2_size as u8]);
                let log2_index_bytes = log2_size.max(3);
                put(block, dict_keys_log2_index_bytes, &[log2_index_bytes as u8]);
                let kind = if general { dict_kind_general as u8 } else { 1 };
                put(block, dict_keys_kind, &[kind]);
                let entry = if general {
                    (dict_entry_size, dict_entry_key, dict_entry_value)
                } else {
                    (
                        dict_unicode_entry_size,
                        dict_unicode_entry_key,
                        dict_unicode_entry_value,
                    )
                };
                (
                    dict_keys_nentries,
                    dict_keys_indices,
                    1 << log2_index_bytes,
                    entry,
                )
            }
        };
    put(block, nentries_at, &(nentries as u64).to_le_bytes());
    for i in 0..index_bytes {
        let byte = word() as u8;
        put(block, indices_at + i, &[byte]);
    }
    let mut used = 0;
    for entry in 0..nentries {
        let at = indices_at + index_bytes + entry * entry_size;
        let mut pointer = || {
            let w = word();
            match w % 8 {
                0 => w,
                1 | 2 => 0,
                _ => objects[(w >> 8) as usize % objects.len()] as u64,
            }
        };
        let key = pointer();
        let value = pointer();
        put(block, at + key_at, &key.to_le_bytes());
        put(block, at + value_at, &value.to_le_bytes());
        used += u64::from(value != 0);
    }
    used
}

#[test]
fn fuzz_value_decoder() {
    use tracer::reader::layout::LAYOUTS;
    use tracer::reader::memory::ImageMemory;
    use tracer::reader::values::{TypeCache, ValueReader, MAX_REPR_CHARS};
    static COUNT: CaseCounter = CaseCounter::new("values");
    // Values decoded (not shown as `<type at 0x…>`): the images must reach the decoders.
    static DECODED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // Non-empty dicts decoded, under 3.8-3.10's key table (dk_size) and 3.11+'s.
    static DICTS_BY_SIZE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static DICTS_BY_LOG2: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let strategy = (
        0..LAYOUTS.len(),
        prop::collection::vec(any::<u64>(), 1..64),
        any::<bool>(),
    );
    runner()
        .run(&strategy, |(layout_index, words, prefetch)| {
            COUNT.case();
            let layout = &LAYOUTS[layout_index];
            let (image, objects) = value_image(layout, &words);
            let mut memory = ImageMemory::new([(VALUE_IMAGE_BASE, image)]);
            let mut types = TypeCache::default();
            let mut reader = ValueReader::new(&mut memory, layout, &mut types);
            if prefetch {
                reader.prefetch(&objects);
            }
            for &object in &objects {
                for deref in [false, true] {
                    if let Ok(Some(value)) = reader.describe(object, deref) {
                        let opaque = value.repr.starts_with('<') && value.repr.contains(" at 0x");
                        prop_assert!(
                            opaque || value.repr.chars().count() <= MAX_REPR_CHARS,
                            "{value:?}"
                        );
                        if !opaque {
                            DECODED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if value.type_name == "dict" && value.repr != "{}" {
                                let counter = if matches!(
                                    layout.dict_key_table,
                                    tracer::reader::layout::DictKeyTable::Sized { .. }
                                ) {
                                    &DICTS_BY_SIZE
                                } else {
                                    &DICTS_BY_LOG2
                                };
                                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    let decoded = DECODED.load(std::sync::atomic::Ordering::Relaxed);
    let by_size = DICTS_BY_SIZE.load(std::sync::atomic::Ordering::Relaxed);
    let by_log2 = DICTS_BY_LOG2.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "values: {decoded} decoded (not opaque), of which non-empty dicts: {by_size} with \
         3.8-3.10's key table, {by_log2} with 3.11+'s"
    );
    assert!(decoded > 0, "no fuzzed value reached a decoder");
    // About one case in 25 decodes a non-empty dict of each kind: with fewer cases than
    // this, missing one proves nothing.
    if fuzz_cases() >= 1000 {
        assert!(
            by_size > 0 && by_log2 > 0,
            "the fuzzed dicts did not reach both key-table walks"
        );
    }
    COUNT.report();
}

//! Each snapshot rule on the cases it must hold for, per version (3.11+): a function called
//! once, never, many times; calls that raised once and many times; generators resumed a few and
//! many times; a `for` and a `while` loop (tests/workloads/snapshot_rules/rules.py). The truth is
//! the same script under the stdlib's `trace` in a separate process: every line and function
//! the snapshot reports must be in it, the function never called must not be, and each case
//! must be found as far as the version's record shows it (docs/snapshot.md).

use crate::common::{
    printed, pythons_under_test, run_tracer, scratch, support, workload, PyVersion, Python,
};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;
use tracer::aggregate::model::CoverageResults;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Every case: (function, proven on 3.11 beyond its entry: the first line of its body).
/// 3.11 quickens a code object at its 8th RESUME or JUMP_BACKWARD; before that only the warmup
/// counter shows it was entered. `while_loop`'s loop jumps back with POP_JUMP_BACKWARD_IF_TRUE,
/// which does not count: it stays unquickened, entered only.
const CASES: &[(&str, bool)] = &[
    ("called_once", false),
    ("called_many", true),
    ("raised_once", false),
    ("raised_many", true),
    ("few_yields", false),
    ("many_yields", true),
    ("for_loop", true),
    ("while_loop", false),
];

/// The first line of `name`'s body in `source` (the line after its `def`).
fn first_body_line(source: &str, name: &str) -> u32 {
    let def = format!("def {name}(");
    source
        .lines()
        .position(|l| l.trim_start().starts_with(&def))
        .unwrap_or_else(|| panic!("no def {name}")) as u32
        + 2
}

fn lines_of(results: &CoverageResults, file: &str) -> BTreeSet<u32> {
    results
        .counts
        .keys()
        .filter(|(f, _)| f == file)
        .map(|(_, l)| *l)
        .collect()
}

fn functions_of(results: &CoverageResults, file: &str) -> BTreeSet<String> {
    results
        .calledfuncs
        .iter()
        .filter(|k| k.filename == file)
        .map(|k| k.funcname.clone())
        .collect()
}

fn check(python: &Python) -> Result<(), String> {
    let dir = scratch(&format!("snapshot-rules-{}", python.label()));
    let script = workload("snapshot_rules/rules.py");
    let file = script.to_str().unwrap().to_owned();
    let source = std::fs::read_to_string(&script).unwrap();
    let truth_path = dir.join("truth.pickle");
    let out = Command::new(&python.path)
        .arg(support("trace_truth.py"))
        .arg(&truth_path)
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(format!("truth run: {}", printed(&out)));
    }
    let (truth, _) = tracer::output::load_results(&truth_path).unwrap();

    let mut child = Command::new(&python.path)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    if !matches!(lines.next(), Some(Ok(l)) if l.trim() == "ready") {
        let _ = child.kill();
        let _ = child.wait();
        return Err("the workload did not get ready".into());
    }
    let path = dir.join("snapshot.json");
    let pid = child.id().to_string();
    let out = run_tracer(
        &["snapshot", "--pid", &pid, "--format", "json", "-o"]
            .into_iter()
            .chain([path.to_str().unwrap()])
            .collect::<Vec<_>>(),
        &dir,
        TIMEOUT,
    );
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"\n");
    }
    let _ = child.wait();
    if !out.status.success() {
        return Err(format!("snapshot: {}", printed(&out)));
    }
    let (snapshot, _) = tracer::output::load_results(&path).unwrap();

    let (reported, ran) = (lines_of(&snapshot, &file), lines_of(&truth, &file));
    let wrong: Vec<_> = reported.difference(&ran).collect();
    if !wrong.is_empty() {
        return Err(format!(
            "lines reported that trace never saw run: {wrong:?}"
        ));
    }
    let (called, truly_called) = (functions_of(&snapshot, &file), functions_of(&truth, &file));
    let wrong: Vec<_> = called.difference(&truly_called).collect();
    if !wrong.is_empty() {
        return Err(format!("functions reported that never ran: {wrong:?}"));
    }
    let never = first_body_line(&source, "never_called");
    if called.contains("never_called") || reported.contains(&never) {
        return Err("never_called reported".into());
    }
    let v311 = python.version == PyVersion::new(3, 11);
    for &(name, proven_on_311) in CASES {
        if !called.contains(name) {
            return Err(format!("{name} not proven called: {called:?}"));
        }
        let line = first_body_line(&source, name);
        let expected = !v311 || proven_on_311;
        // A `for` loop's first body line is `total = 0`, proven by dominance of the loop's.
        if expected && !reported.contains(&line) {
            return Err(format!("{name}: line {line} not proven: {reported:?}"));
        }
    }
    println!(
        "{}: snapshot rules: {} of {} lines, {} of {} functions; none wrong",
        python.label(),
        reported.len(),
        ran.len(),
        called.len(),
        truly_called.len()
    );
    Ok(())
}

fn check_supported(python: &Python) -> Result<(), String> {
    if python.version < tracer::snapshot::FIRST_VERSION || python.free_threaded {
        println!("SKIP {}: snapshot refuses it", python.label());
        return Ok(());
    }
    check(python)
}

#[test]
fn snapshot_rules_hold_on_each_case_per_version() {
    let mut failures = Vec::new();
    for python in pythons_under_test() {
        if let Err(e) = check_supported(&python) {
            failures.push(format!("{}: {e}", python.label()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! The function view (`--function target --locals`) against ground truth.
//!
//! 3.12 and 3.13: tests/workloads/function_view.py runs once in-process under tracefunc (pinned
//! in tests/support/function-view-requirements.txt, installed into a venv per version under
//! target/), and once under `tracer run --function target --locals`. Every call we report must
//! match one of tracefunc's calls: its stack ends with tracefunc's stack, and each snippet and
//! each (variable, type, repr) we report appears in tracefunc's trace of that call for that
//! snippet (precision 1.000). Opaque values (`<type at 0x…>`) are compared by type. Recall is
//! printed.
//!
//! 3.8–3.11, 3.14 and 3.15 (no tracefunc): every statement we report starts on a line the
//! stdlib's `trace` saw executing (precision), with line granularity before 3.11; and every
//! `dict` and `str` value we report is one that the same local held in a separate run of the
//! workload under
//! tests/support/settrace_locals.py (a `sys.settrace` recorder of repr cut as tracefunc cuts).
//!
//! On every version, the workload's dicts (with a deleted key, nested, past 255 slots, empty)
//! and strings beyond Latin-1 must be decoded, not left opaque, and the string holding a
//! character printable in newer versions only must be opaque.

use crate::common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tracer::function_view::{CallTrace, FunctionTraces};

const WORKLOAD: &str = "function_view.py";

per_python!(function_view_against_tracefunc_and_trace, gil, |python| {
    let started = std::time::Instant::now();
    match (python.version.major, python.version.minor) {
        (3, 12) | (3, 13) => match tracefunc_venv(python) {
            Some(venv_python) => against_tracefunc(python, &venv_python),
            None => return Ok(()),
        },
        // 3.14, 3.15: no tracefunc build here; the same checks as before 3.12.
        (3, 8..=11) | (3, 14..=15) => against_trace(python),
        _ => {
            println!("SKIP: {}: no function-view ground truth", python.label());
            return Ok(());
        }
    }
    println!(
        "{}: function view checked in {:.1}s",
        python.label(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
});

/// `tracer run --function target --locals` over `script` at `rate`: the function view it wrote.
fn run_function_view(
    python: &Python,
    dir: &Path,
    script: &str,
    rate: &str,
) -> (PathBuf, FunctionTraces) {
    let out_path = dir.join(format!("{script}.json"));
    let out = run_tracer(
        &[
            "run",
            "--rate",
            rate,
            "--function",
            "target",
            "--locals",
            "--format",
            "json",
            "-o",
            out_path.to_str().unwrap(),
            "--",
            python.path.to_str().unwrap(),
            workload(script).to_str().unwrap(),
        ],
        dir,
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}: {}",
        python.label(),
        printed(&out)
    );
    let (results, _) = tracer::output::load_results(&out_path).unwrap();
    let function = results.function.expect("the JSON has a function section");
    (out_path, function)
}

/// Sample the workload under the tracer with `--function target --locals`.
fn traced(python: &Python, dir: &Path) -> FunctionTraces {
    let (out_path, function) = run_function_view(python, dir, WORKLOAD, "2000");
    // The text view reads the same file.
    let report = run_tracer(
        &["report", "--file", out_path.to_str().unwrap(), "--function"],
        dir,
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(report.status.success(), "{}", printed(&report));
    assert!(
        text.contains("- 'return wait(tag)' "),
        "{}: report --function:\n{text}",
        python.label()
    );
    function
}

per_python!(
    /// Locals are read after the stack walk: a frame that returned in between, its place taken by
    /// another call's, must not lend its successor's values. `target` and `other` alternate in the
    /// same slot (tests/workloads/frame_reuse.py); every value of `target`'s `tag` must be "mine".
    /// Before the reader checked that the frame still held the walked code and instruction, 3.12
    /// showed `'theirs'` there (found by function_view.py under CI: `wait`'s argument read as
    /// `target`'s `tag`).
    locals_never_come_from_the_frame_that_replaced_the_call,
    gil,
    |python| {
        if python.version >= PyVersion::new(3, 15) {
            return Ok(());
        }
        let dir = scratch(&format!(
            "frame-reuse-{}.{}",
            python.version.major, python.version.minor
        ));
        let (_, function) = run_function_view(python, &dir, "frame_reuse.py", "10000");
        let mut seen = BTreeMap::<String, usize>::new();
        for call in &function.calls {
            for statement in &call.statements {
                for (type_name, repr) in statement.vars.get("tag").into_iter().flatten() {
                    *seen.entry(format!("{type_name} {repr}")).or_default() += 1;
                }
            }
        }
        println!(
            "{}: {} calls of target sampled; tag seen as {seen:?}",
            python.label(),
            function.calls.len()
        );
        assert!(
            seen.keys().all(|value| value == "str 'mine'"),
            "{}: target's tag read from another frame: {seen:?}",
            python.label()
        );
        assert!(
            !seen.is_empty(),
            "{}: tag was never read: the check above proved nothing",
            python.label()
        );
        Ok(())
    }
);

/// One call of tracefunc's output: its stack string and `snippet → (hits, var → values)`.
struct TruthCall {
    stack: String,
    trace: serde_json::Map<String, Value>,
}

fn against_tracefunc(python: &Python, venv_python: &Path) {
    let dir = scratch(&format!(
        "function-view-{}.{}",
        python.version.major, python.version.minor
    ));
    let truth_path = dir.join("tracefunc.json");
    let out = Command::new(venv_python)
        .arg(workload(WORKLOAD))
        .arg("--truth")
        .arg(&truth_path)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "tracefunc run: {}", printed(&out));
    let truth: Vec<TruthCall> =
        serde_json::from_slice::<Vec<Value>>(&std::fs::read(&truth_path).unwrap())
            .unwrap()
            .into_iter()
            .map(|call| TruthCall {
                stack: call["stack"].as_str().unwrap().to_owned(),
                trace: call["trace"].as_object().unwrap().clone(),
            })
            .collect();
    assert_eq!(truth.len(), 6, "tracefunc saw six calls of target");

    let ours = traced(python, &dir);
    assert!(
        !ours.calls.is_empty(),
        "{}: no call sampled",
        python.label()
    );
    let mut matched_truth = BTreeSet::new();
    let (mut snippets, mut values) = (0usize, 0usize);
    for call in &ours.calls {
        let candidates: Vec<usize> = (0..truth.len())
            .filter(|&i| precision_failure(call, &truth[i]).is_none())
            .collect();
        if candidates.is_empty() {
            let why: Vec<String> = truth
                .iter()
                .map(|t| precision_failure(call, t).unwrap_or_default())
                .collect();
            panic!(
                "{}: a call we report matches none of tracefunc's:\n{}\n{:#?}\nwhy not, per \
                 tracefunc call: {why:#?}",
                python.label(),
                call.stack_string(),
                call.statements
            );
        }
        matched_truth.extend(candidates.iter().copied());
        snippets += call.statements.len();
        values += call
            .statements
            .iter()
            .map(|s| s.vars.values().map(Vec::len).sum::<usize>())
            .sum::<usize>();
    }
    // The two statements of `a = wait(1); b = wait(2)` are reported apart.
    let all: BTreeSet<&str> = ours
        .calls
        .iter()
        .flat_map(|c| c.statements.iter().map(|s| s.snippet.as_str()))
        .collect();
    assert!(
        all.contains("a = wait(1)") && all.contains("b = wait(2)"),
        "{}: {all:?}",
        python.label()
    );
    // Values of every decoded type were read (and, above, found in tracefunc's output).
    let types: BTreeSet<&str> = ours
        .calls
        .iter()
        .flat_map(|c| c.statements.iter())
        .flat_map(|s| s.vars.values().flatten())
        .map(|(t, _)| t.as_str())
        .collect();
    for wanted in [
        "int", "float", "bool", "NoneType", "str", "bytes", "tuple", "list", "dict", "Opaque",
    ] {
        assert!(
            types.contains(wanted),
            "{}: no {wanted} value read: {types:?}",
            python.label()
        );
    }
    let decoded = check_dicts_and_strings_decoded(python, &ours);
    let (recall_snippets, recall_values) = recall(&ours, &truth);
    println!(
        "{}: {} calls of {} matched tracefunc's ({} distinct), {snippets} snippets and {values} \
         values, all in tracefunc's output (precision 1.000); recall: snippets {recall_snippets:.3}, \
         local values {recall_values:.3}; dict and str values: {decoded}",
        python.label(),
        ours.calls.len(),
        truth.len(),
        matched_truth.len()
    );
}

/// Locals of the workload whose values must be decoded on every version (none opaque).
const MUST_DECODE: &[&str] = &[
    "mapping",
    "names",
    "deleted",
    "nested",
    "empty",
    "big",
    "wide",
    "zero",
    "snake",
    "unassigned",
];

/// The workload's string holding U+1FAE8, printable from 3.12 on only: always opaque.
const MUST_STAY_OPAQUE: &str = "newer";

fn is_opaque(repr: &str) -> bool {
    repr.starts_with('<') && repr.contains(" at 0x")
}

/// Every value of the [`MUST_DECODE`] locals we report is decoded, and each was seen; every
/// value of [`MUST_STAY_OPAQUE`] is opaque. Returns how many `dict` and `str` values were
/// reported, decoded and opaque, for the log.
fn check_dicts_and_strings_decoded(python: &Python, ours: &FunctionTraces) -> String {
    let values: Vec<(&String, &(String, String))> = ours
        .calls
        .iter()
        .flat_map(|c| c.statements.iter())
        .flat_map(|s| s.vars.iter())
        .flat_map(|(name, values)| values.iter().map(move |v| (name, v)))
        .collect();
    for name in MUST_DECODE {
        let reported: Vec<&(String, String)> = values
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .collect();
        assert!(
            !reported.is_empty(),
            "{}: no value of {name} read",
            python.label()
        );
        assert!(
            reported.iter().all(|(_, repr)| !is_opaque(repr)),
            "{}: {name} left opaque: {reported:?}",
            python.label()
        );
    }
    for (name, (type_name, repr)) in &values {
        if name.as_str() == MUST_STAY_OPAQUE {
            assert!(
                type_name == "str" && is_opaque(repr),
                "{}: {name} = {repr} was decoded, but its character is printable in some \
                 versions only",
                python.label()
            );
        }
    }
    let count = |wanted: &str| {
        let of_type: Vec<&str> = values
            .iter()
            .filter(|(_, (t, _))| t == wanted)
            .map(|(_, (_, r))| r.as_str())
            .collect();
        let opaque = of_type.iter().filter(|r| is_opaque(r)).count();
        format!(
            "{wanted} {} decoded, {opaque} opaque",
            of_type.len() - opaque
        )
    };
    format!("{}, {}", count("dict"), count("str"))
}

/// Why `call` is not a subset of tracefunc's `truth` call, or `None` if it is.
fn precision_failure(call: &CallTrace, truth: &TruthCall) -> Option<String> {
    let stack = call.stack_string();
    if !(stack == truth.stack || stack.ends_with(&format!("\n{}", truth.stack))) {
        return Some(format!("stack differs: {:?}", truth.stack));
    }
    for statement in &call.statements {
        let Some(entry) = truth.trace.get(&statement.snippet) else {
            return Some(format!("no snippet {:?}", statement.snippet));
        };
        let vars = entry[1].as_object().unwrap();
        for (name, ours) in &statement.vars {
            let Some(theirs) = vars.get(name).and_then(Value::as_array) else {
                return Some(format!("{:?}: no variable {name}", statement.snippet));
            };
            for (type_name, repr) in ours {
                let opaque = repr.starts_with('<') && repr.contains(" at 0x");
                let found = theirs.iter().any(|v| {
                    v[0].as_str() == Some(type_name)
                        && (opaque || v[1].as_str() == Some(repr.as_str()))
                });
                if !found {
                    return Some(format!(
                        "{:?}: {name} = ({type_name}, {repr}) not among {theirs:?}",
                        statement.snippet
                    ));
                }
            }
        }
    }
    None
}

/// Names the workload's `target` reads that are not its locals (tracefunc shows them from the
/// globals and builtins; we read locals only).
const NOT_LOCALS: &[&str] = &["wait", "range", "bytes", "dict", "Opaque", "target"];

/// Of tracefunc's snippets and local values, the share we reported, over the calls we found
/// (each matched to the tracefunc call with the same stack that holds the most of ours).
fn recall(ours: &FunctionTraces, truth: &[TruthCall]) -> (f64, f64) {
    let (mut snippets_found, mut snippets_all) = (0usize, 0usize);
    let (mut values_found, mut values_all) = (0usize, 0usize);
    let mut used = BTreeSet::new();
    for call in &ours.calls {
        let Some(index) = (0..truth.len())
            .find(|&i| !used.contains(&i) && precision_failure(call, &truth[i]).is_none())
        else {
            continue;
        };
        used.insert(index);
        for (snippet, entry) in &truth[index].trace {
            snippets_all += 1;
            let statement = call.statements.iter().find(|s| &s.snippet == snippet);
            snippets_found += usize::from(statement.is_some());
            for (name, values) in entry[1].as_object().unwrap() {
                if NOT_LOCALS.contains(&name.as_str()) {
                    continue;
                }
                let distinct: BTreeSet<(String, String)> = values
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| (v[0].as_str().unwrap().into(), v[1].as_str().unwrap().into()))
                    .collect();
                for (type_name, repr) in distinct {
                    values_all += 1;
                    let ours = statement.and_then(|s| s.vars.get(name));
                    let found = ours.is_some_and(|vals| {
                        vals.iter().any(|(t, r)| {
                            *t == type_name
                                && (*r == repr || r.starts_with('<') && r.contains(" at 0x"))
                        })
                    });
                    values_found += usize::from(found);
                }
            }
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    (
        ratio(snippets_found, snippets_all),
        ratio(values_found, values_all),
    )
}

/// 3.8–3.11, 3.14 and 3.15: every statement we report starts on a line trace saw running in the
/// workload, and every dict and str value is one settrace saw the local hold.
fn against_trace(python: &Python) {
    let dir = scratch(&format!(
        "function-view-{}.{}",
        python.version.major, python.version.minor
    ));
    let truth_path = dir.join("truth.pickle");
    run_python(
        python,
        &[
            support("trace_truth.py").to_str().unwrap(),
            truth_path.to_str().unwrap(),
            workload(WORKLOAD).to_str().unwrap(),
        ],
        &dir,
        0.0,
    );
    let (truth, _) = tracer::output::load_results(&truth_path).unwrap();
    let script = workload(WORKLOAD).canonicalize().unwrap();
    let ran: BTreeSet<u32> = truth
        .counts
        .keys()
        .filter(|(file, _)| Path::new(file).canonicalize().ok().as_ref() == Some(&script))
        .map(|(_, line)| *line)
        .collect();
    assert!(!ran.is_empty(), "trace saw the workload run");
    let ours = traced(python, &dir);
    assert!(
        !ours.calls.is_empty(),
        "{}: no call sampled",
        python.label()
    );
    let mut statements = 0;
    for call in &ours.calls {
        for statement in &call.statements {
            assert!(
                ran.contains(&statement.line),
                "{}: {:?} at line {} never ran under trace",
                python.label(),
                statement.snippet,
                statement.line
            );
            statements += 1;
        }
    }
    let compared = against_settrace(python, &dir, &ours);
    let decoded = check_dicts_and_strings_decoded(python, &ours);
    println!(
        "{}: {} calls, {statements} statements, every one on a line trace saw run \
         (precision 1.000); {compared} dict and str values compared with settrace's, all \
         found; {decoded}",
        python.label(),
        ours.calls.len()
    );
}

/// Every decoded `dict` and `str` value we report for a local is one that local held in a
/// run of the workload under tests/support/settrace_locals.py. Returns how many were compared.
fn against_settrace(python: &Python, dir: &Path, ours: &FunctionTraces) -> usize {
    let truth_path = dir.join("settrace.json");
    run_python(
        python,
        &[
            support("settrace_locals.py").to_str().unwrap(),
            truth_path.to_str().unwrap(),
            "target",
            workload(WORKLOAD).to_str().unwrap(),
        ],
        dir,
        0.0,
    );
    let truth: Value = serde_json::from_slice(&std::fs::read(&truth_path).unwrap()).unwrap();
    // Per local, every (type, repr) it held on any line of any call.
    let mut held: std::collections::BTreeMap<String, BTreeSet<(String, String)>> =
        Default::default();
    for per_line in truth["lines"].as_object().unwrap().values() {
        for (name, values) in per_line.as_object().unwrap() {
            for value in values.as_array().unwrap() {
                held.entry(name.clone()).or_default().insert((
                    value[0].as_str().unwrap().to_owned(),
                    value[1].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    assert!(
        held.contains_key("nested") && held.contains_key("wide"),
        "{}: settrace recorded the workload's locals: {:?}",
        python.label(),
        held.keys()
    );
    let mut compared = 0;
    for call in &ours.calls {
        for statement in &call.statements {
            for (name, values) in &statement.vars {
                for (type_name, repr) in values {
                    if !matches!(type_name.as_str(), "dict" | "str") || is_opaque(repr) {
                        continue;
                    }
                    let known = held
                        .get(name)
                        .is_some_and(|set| set.contains(&(type_name.clone(), repr.clone())));
                    assert!(
                        known,
                        "{}: {:?}: {name} = ({type_name}, {repr}) never held under settrace; \
                         it held {:?}",
                        python.label(),
                        statement.snippet,
                        held.get(name)
                    );
                    compared += 1;
                }
            }
        }
    }
    assert!(
        compared > 0,
        "{}: no dict or str value compared",
        python.label()
    );
    compared
}

/// The venv with tracefunc for `python`'s version (target/tracefunc-venv-3.X, as `make
/// tracefunc-venvs` makes it), created here if missing or stale; `None` (with a SKIP line) if
/// it cannot be installed.
fn tracefunc_venv(python: &Python) -> Option<PathBuf> {
    let PyVersion { major, minor } = python.version;
    let venv = repo_root().join(format!("target/tracefunc-venv-{major}.{minor}"));
    let requirements = support("function-view-requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    let stamp = venv.join("installed-requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let _ = std::fs::remove_dir_all(&venv);
        let created = Command::new(&python.path)
            .args(["-m", "venv"])
            .arg(&venv)
            .output()
            .unwrap();
        let installed = created.status.success()
            && Command::new(venv.join("bin/python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements)
                .status()
                .is_ok_and(|s| s.success());
        if !installed {
            println!(
                "SKIP: {}: tracefunc could not be installed into {} (make tracefunc-venvs)",
                python.label(),
                venv.display()
            );
            return None;
        }
        std::fs::write(&stamp, wanted).unwrap();
    }
    Some(venv.join("bin/python"))
}

/// Bad uses of the function view: one-line errors that name the fix.
#[test]
fn function_view_bad_input() {
    let dir = scratch("function-view-errors");
    // A results file traced without --function.
    let plain = dir.join("plain.json");
    std::fs::write(
        &plain,
        r#"{"format":"tracer-coverage","version":1,"counts":[],"calledfuncs":[],"callers":[]}"#,
    )
    .unwrap();
    let out = run_tracer(
        &["report", "--file", plain.to_str().unwrap(), "--function"],
        &dir,
        Duration::from_secs(30),
    );
    assert_one_line_error(&out, &["holds no function view", "--function QUALNAME"]);
    // --locals needs --function: a usage error.
    let out = run_tracer(
        &["run", "--locals", "--", "python3", "-c", "pass"],
        &dir,
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2), "{}", printed(&out));
    // py-spy's reader cannot follow a function.
    let python = pythons_under_test().pop().unwrap();
    let mut workload = Workload::start(&python, &workload("mix.py"), 30.0);
    let pid = workload.pid().to_string();
    let out = run_tracer(
        &[
            "attach",
            "--pid",
            &pid,
            "--reader",
            "py-spy",
            "--function",
            "fib",
            "--format",
            "json",
            "-o",
            dir.join("x.json").to_str().unwrap(),
        ],
        &dir,
        Duration::from_secs(60),
    );
    assert_one_line_error(&out, &["--function", "tracer's own reader"]);
    let _ = workload.child.kill();
}

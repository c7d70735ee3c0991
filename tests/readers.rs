//! Which reader serves which Python: tracer's own for 3.8+, py-spy's for 2.7, 3.6 and 3.7,
//! each giving real results end to end.

mod common;

use common::*;
use std::process::Command;

fn trace_run(python: &Python, dir: &std::path::Path) -> (tracer::model::CoverageResults, String) {
    let out = Command::new(tracer_bin())
        .args(["run", "--format", "json", "-o", "r.json", "--"])
        .arg(&python.path)
        .arg(workload("old_python.py"))
        .env("WORKLOAD_SECONDS", "1.5")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        python.label(),
        printed(&out)
    );
    let (results, info) = tracer::output::load_results(&dir.join("r.json")).unwrap();
    (results, info.unwrap().target.reader)
}

#[test]
fn old_pythons_work_through_the_py_spy_reader() {
    let all = all_pythons();
    for (major, minor) in [(2, 7), (3, 6), (3, 7)] {
        let Some(python) = all.iter().find(|p| p.version == (major, minor)) else {
            println!("SKIP: no Python {major}.{minor} found");
            continue;
        };
        let dir = scratch(&format!("old-{major}.{minor}"));
        let (results, reader) = trace_run(python, &dir);
        assert_eq!(reader, "py-spy", "{}", python.label());
        let script = workload("old_python.py");
        let lines: Vec<u32> = results
            .lines_of(script.to_str().unwrap())
            .map(|(l, _)| l)
            .collect();
        assert!(
            lines.contains(&9),
            "{}: fib's recursive line 9 in {lines:?}",
            python.label()
        );
        assert!(
            results.calledfuncs.iter().any(|f| f.funcname == "fib"),
            "{}",
            python.label()
        );
        println!(
            "{}: {} lines through the py-spy reader",
            python.label(),
            results.counts.len()
        );
    }
}

#[test]
fn new_pythons_get_our_own_reader() {
    for python in pythons_under_test() {
        let dir = scratch(&format!("auto-{}.{}", python.version.0, python.version.1));
        let (results, reader) = trace_run(&python, &dir);
        assert_eq!(reader, "direct", "{}", python.label());
        assert!(!results.counts.is_empty(), "{}", python.label());
    }
}

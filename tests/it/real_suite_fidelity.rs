//! Real code as the measure: toolz 1.0.0's pytest suite (the smallest of the three pinned
//! suites of tests/support/real_suites.py, ~180 tests) under coverage.py and under tracer, on
//! one Python 3.12+, through the `make fidelity` driver (tests/support/fidelity.py). Every line
//! tracer reports, sampled or snapshot, must have run (precision 1.000), and so must every arc
//! `--coverage-arcs` would write (against `coverage run --branch`); recall is printed.
//! The sdist and the venv are made once under target/real-suites; without them (no pip, no
//! index) or without a Python 3.12+ the test prints SKIP.

use crate::common::*;
use std::process::Command;

const SUITE: &str = "toolz";

#[test]
fn toolz_suite_precision_is_one() {
    let Some(python) = all_pythons()
        .into_iter()
        .find(|p| p.version.major == 3 && (12..=14).contains(&p.version.minor))
    else {
        println!("SKIP: real-suite fidelity: no Python 3.12-3.14 found");
        return;
    };
    let version = format!("{}.{}", python.version.major, python.version.minor);
    let dir = scratch("real_suite_fidelity");
    let json = dir.join("fidelity.json");
    let out = Command::new("python3")
        .arg(support("fidelity.py"))
        .args([
            "--tracer",
            &tracer_bin(),
            "--suite",
            SUITE,
            "--python",
            &version,
            "--arcs",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--output")
        .arg(dir.join("fidelity.txt"))
        .arg("--work")
        .arg(dir.join("work"))
        .output()
        .expect("running python3 (needed to run tests/support/fidelity.py)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    let results: serde_json::Value = std::fs::read_to_string(&json)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(serde_json::Value::Null);
    let cell = &results[SUITE][&version];
    if cell.is_null() {
        let skips: Vec<&str> = stdout.lines().filter(|l| l.starts_with("SKIP:")).collect();
        assert!(
            out.status.success() && !skips.is_empty(),
            "the driver measured nothing and said no SKIP\n{}",
            printed(&out)
        );
        println!(
            "SKIP: real-suite fidelity on Python {version}: {}",
            skips.join("; ")
        );
        return;
    }
    assert!(out.status.success(), "{}", printed(&out));
    let mut modes = vec!["sampled"];
    if python.version >= tracer::snapshot::FIRST_VERSION {
        modes.extend(["snapshot", "snapshot+sampled"]);
    }
    for mode in modes {
        let score = &cell[mode];
        let ours = score["ours"].as_u64().unwrap_or(0);
        let truth = score["truth"].as_u64().unwrap_or(0);
        // A run whose lines matched no file (paths told apart wrongly) would prove nothing.
        assert!(ours > 0 && truth > 0, "{mode}: {score}");
        let wrong: Vec<&str> = score["wrong"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        assert!(
            wrong.is_empty(),
            "{mode}: lines reported that did not run: {wrong:?}"
        );
        assert_eq!(score["precision"].as_f64(), Some(1.0), "{mode}: {score}");
        println!(
            "real-suite fidelity {SUITE} Python {version} {mode}: precision 1.000, recall {:.3} \
             (function bodies {:.3}, module level {:.3}; {ours} of {truth} lines)",
            score["recall"].as_f64().unwrap_or(0.0),
            score["recall_function"].as_f64().unwrap_or(0.0),
            score["recall_module"].as_f64().unwrap_or(0.0),
        );
    }
    // The proven arcs (--coverage-arcs) against coverage.py's `--branch` arcs.
    let arcs = &cell["_arcs"];
    let ours = arcs["ours"].as_u64().unwrap_or(0);
    assert!(
        ours > 0 && arcs["truth"].as_u64().unwrap_or(0) > 0,
        "arcs: {arcs}"
    );
    assert!(
        arcs["wrong"].as_array().is_some_and(|w| w.is_empty()),
        "arcs written that did not run: {}",
        arcs["wrong"]
    );
    println!(
        "real-suite fidelity {SUITE} Python {version} arcs: precision 1.000, recall {:.3} ({ours} \
         of {} arcs); {} of {} lines with no arc",
        arcs["recall"].as_f64().unwrap_or(0.0),
        arcs["truth"],
        arcs["lost"],
        arcs["lines"]
    );
}

//! `--coverage-arcs`: coverage.py arc data from the arcs a snapshot proves, against coverage.py
//! itself. The truth is the snapshot workload under `coverage run --branch` in a separate
//! process (the pinned coverage.py of the report venv, its C tracer on the venv's own Python,
//! its Python tracer on the others); ours is `tracer run --snapshot --format coverage
//! --coverage-arcs` of the same driver. Every arc we write must be one coverage.py measured and
//! one its parser thinks possible (precision 1.000, asserted); recall and the lines left out
//! are printed. `coverage combine` with a `branch = true` data file, `report` and `json` must
//! read the file. Before 3.12 (and on 3.13t) no arc is proven: the file holds none, and one
//! line says so.

use crate::common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn driver() -> PathBuf {
    workload("snapshot/drive.py")
}

/// The report venv's site-packages, where its coverage.py is (put on PYTHONPATH to run it on
/// other interpreters: pure Python there).
fn coverage_site_packages(tools: &ReportTools) -> PathBuf {
    let lib = tools.venv.join("lib");
    std::fs::read_dir(&lib)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.join("coverage").is_dir())
        .expect("coverage.py in the report venv")
}

/// `tracer run ARGS -- python drive.py`, its stdin held open for half a second (the driver
/// waits for a line or end of file).
fn tracer_run(args: &[&str], python: &Python, dir: &Path) -> Output {
    let mut child = Command::new(tracer_bin())
        .args(args)
        .arg("--")
        .arg(&python.path)
        .arg(driver())
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let _ = child.stdin.take().unwrap().write_all(b"\n");
    child.wait_with_output().unwrap()
}

/// `tracer run ARGS -- python mix.py`.
fn run_mix(args: &[&str], python: &Python, dir: &Path) -> Output {
    Command::new(tracer_bin())
        .args(args)
        .arg("--")
        .arg(&python.path)
        .arg(workload("mix.py"))
        .current_dir(dir)
        .output()
        .unwrap()
}

/// `meta.has_arcs` and the number of arcs of a data file.
fn arc_data(path: &Path) -> (String, i64) {
    let db = rusqlite::Connection::open(path).unwrap();
    let has_arcs: String = db
        .query_row("select value from meta where key = 'has_arcs'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let arcs: i64 = db
        .query_row("select count(*) from arc", [], |r| r.get(0))
        .unwrap();
    (has_arcs, arcs)
}

/// tests/support/coverage_arcs_check.py of `ours` against `truth.coverage`, in `dir`: its
/// answer once every arc of ours is measured and possible.
fn compare(tools: &ReportTools, ours: &str, dir: &Path) -> Result<serde_json::Value, String> {
    let out = Command::new(tools.python())
        .arg(support("coverage_arcs_check.py"))
        .args([ours, "truth.coverage"])
        .arg(driver().parent().unwrap())
        .current_dir(dir)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(format!("coverage_arcs_check.py: {}", printed(&out)));
    }
    let checked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let count = |key: &str| checked[key].as_u64().unwrap();
    if count("measured") != count("ours") || count("ours") == 0 {
        return Err(format!(
            "{ours}: {} of our {} arcs measured by coverage.py; not measured: {}",
            count("measured"),
            count("ours"),
            checked["not_measured"]
        ));
    }
    if checked["impossible"]
        .as_array()
        .is_none_or(|a| !a.is_empty())
    {
        return Err(format!(
            "{ours}: arcs coverage.py's parser thinks impossible: {}",
            checked["impossible"]
        ));
    }
    Ok(checked)
}

/// The arcs of a data file, sorted.
fn arcs_of(path: &Path) -> Vec<(String, i64, i64)> {
    let db = rusqlite::Connection::open(path).unwrap();
    let mut query = db
        .prepare("select path, fromno, tono from arc join file on file.id = arc.file_id")
        .unwrap();
    let mut arcs: Vec<(String, i64, i64)> = query
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    arcs.sort();
    arcs
}

fn check(python: &Python) -> Result<(), String> {
    let dir = scratch(&format!("coverage-arcs-{}", python.label()));
    let tools = report_tools();
    let args = [
        "run",
        "--snapshot",
        "--format",
        "coverage",
        "--coverage-arcs",
        "-o",
        "ours.coverage",
    ];
    if python.version < tracer::snapshot::arcs::FIRST_VERSION || python.free_threaded {
        // Sampling alone (3.8-3.10, 3.13t), or 3.11's snapshot, proves no arc: a file with
        // none, and one line that says so. drive.py needs 3.10+ (`match`): mix.py before.
        let out = if python.version < PyVersion::new(3, 10) {
            run_mix(&args, python, &dir)
        } else {
            tracer_run(&args, python, &dir)
        };
        let err = String::from_utf8_lossy(&out.stderr);
        let notes = err.matches("--coverage-arcs: none of").count();
        if !out.status.success() || notes != 1 {
            return Err(format!("no one-line warning:\n{}", printed(&out)));
        }
        let (has_arcs, arcs) = arc_data(&dir.join("ours.coverage"));
        if has_arcs != "1" || arcs != 0 {
            return Err(format!("has_arcs {has_arcs}, {arcs} arcs"));
        }
        return Ok(());
    }

    // The truth, in a process of its own.
    let mut truth = Command::new(&python.path);
    truth
        .args([
            "-m",
            "coverage",
            "run",
            "--branch",
            "--data-file=truth.coverage",
        ])
        .arg(driver())
        .env("PYTHONPATH", coverage_site_packages(tools))
        .current_dir(&dir)
        .stdin(Stdio::null());
    if version_of(&tools.python()) != Some(python.version) {
        // The venv's C tracer is built for its own Python only.
        truth.env("COVERAGE_CORE", "pytrace");
    }
    let out = truth.output().unwrap();
    if !out.status.success() {
        return Err(format!("coverage run --branch: {}", printed(&out)));
    }

    let out = tracer_run(&args, python, &dir);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() || !err.contains("snapshot of pid") {
        return Err(format!("tracer run:\n{}", printed(&out)));
    }
    let (has_arcs, _) = arc_data(&dir.join("ours.coverage"));
    if has_arcs != "1" {
        return Err(format!("has_arcs {has_arcs}"));
    }
    let checked = compare(tools, "ours.coverage", &dir)?;
    let count = |key: &str| checked[key].as_u64().unwrap();
    let (ours, measured, truth) = (count("ours"), count("measured"), count("truth"));
    // The same from JSON results: `report` converts them, `merge` unions them.
    let json_args = ["run", "--snapshot", "--format", "json", "-o", "ours.json"];
    let out = tracer_run(&json_args, python, &dir);
    if !out.status.success() {
        return Err(format!("tracer run --format json:\n{}", printed(&out)));
    }
    let to_coverage = ["--format", "coverage", "--coverage-arcs", "-o"];
    for args in [
        &["report", "--file", "ours.json"][..],
        &["merge", "ours.json", "ours.json"],
    ] {
        let output = format!("{}.coverage", args[0]);
        let mut command: Vec<&str> = args.to_vec();
        command.extend(to_coverage);
        command.push(&output);
        let out = Command::new(tracer_bin())
            .args(&command)
            .current_dir(&dir)
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(format!("tracer {command:?}:\n{}", printed(&out)));
        }
        compare(tools, &output, &dir)?;
    }
    if arcs_of(&dir.join("report.coverage")) != arcs_of(&dir.join("merge.coverage")) {
        return Err("merging a results file with itself changed its arcs".into());
    }

    let lost = err
        .lines()
        .find(|l| l.contains("--coverage-arcs:"))
        .unwrap_or("tracer: no line left out");
    println!(
        "{}: --coverage-arcs: {ours} workload arcs, all measured by coverage.py (precision \
         1.000), recall {:.3} of its {truth}; {lost}",
        python.label(),
        measured as f64 / truth as f64
    );

    // coverage.py's own tools read it, combined with a branch = true run of its own.
    std::fs::write(dir.join(".coveragerc"), "[run]\nbranch = true\n").unwrap();
    std::fs::write(
        dir.join("small.py"),
        "def f(x):\n    if x:\n        return 1\n    return 2\n\n\nf(1)\n",
    )
    .unwrap();
    let coverage = tools.coverage();
    // Reported on the workload's files (the target's own standard library may be newer than
    // the Python coverage.py parses with).
    let include = format!("--include={}/*", driver().parent().unwrap().display());
    for step in [
        &["run", "--data-file=.coverage.real", "small.py"][..],
        &[
            "combine",
            "--keep",
            "--data-file=.coverage",
            "ours.coverage",
            ".coverage.real",
        ],
        &["report", "-m", &include],
        &["json", "-o", "coverage.json", &include],
    ] {
        let out = Command::new(&coverage)
            .args(step)
            .current_dir(&dir)
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(format!("coverage {step:?}: {}", printed(&out)));
        }
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("coverage.json")).unwrap()).unwrap();
    let totals = &report["totals"];
    if totals["covered_branches"].as_u64().unwrap_or(0) == 0 {
        return Err(format!("coverage.py counts no branch covered: {totals}"));
    }
    println!(
        "{}: coverage json of the combined file: {} of {} branches, {} of {} statements",
        python.label(),
        totals["covered_branches"],
        totals["num_branches"],
        totals["covered_lines"],
        totals["num_statements"]
    );
    Ok(())
}

crate::per_python!(arcs_are_measured_by_coverage_py_and_combine, check);

//! The executable-line analysis (src/source/executable_lines/) against each Python's own
//! `trace._find_executable_linenos`, on that Python's standard library.
//!
//! `make test` checks the test workloads exactly and a fixed sample of stdlib files; the whole
//! stdlib is measured by `make exec-lines-accuracy` (an ignored test), which prints the
//! per-version table quoted in docs/cover-format.md.

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use tracer::source::executable_lines::executable_lines;
use tracer::source::SourceText;

/// trace's answer for `paths` (or the whole stdlib with `--stdlib`), from `python` itself.
fn expected(python: &Python, args: &[&str]) -> BTreeMap<String, BTreeSet<u32>> {
    let out = Command::new(&python.path)
        .arg(support("executable_lines.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", printed(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Files whose line sets differ, out of those compared.
fn compare(python: &Python, expected: &BTreeMap<String, BTreeSet<u32>>) -> (usize, Vec<String>) {
    let mut differing = Vec::new();
    for (path, lines) in expected {
        let source = SourceText::decode(&std::fs::read(path).unwrap());
        let ours = executable_lines(&source.text, python.version);
        match ours {
            Ok(ours) if ours == *lines => {}
            Ok(ours) => {
                let extra: Vec<_> = ours.difference(lines).take(5).collect();
                let missing: Vec<_> = lines.difference(&ours).take(5).collect();
                differing.push(format!("{path}: extra {extra:?} missing {missing:?}"));
            }
            Err(e) => differing.push(format!("{path}: {e}")),
        }
    }
    (expected.len(), differing)
}

per_python!(
    workloads_exactly_and_a_stdlib_sample_nearly_always,
    gil,
    |python| {
        let mut failures = Vec::new();
        let workloads: Vec<String> = ["mix.py", "demo.py", "exit_with.py"]
            .iter()
            .map(|w| workload(w).to_string_lossy().into_owned())
            .collect();
        let args: Vec<&str> = workloads.iter().map(String::as_str).collect();
        let (_, differing) = compare(python, &expected(python, &args));
        if !differing.is_empty() {
            failures.push(format!(
                "{}: workloads differ: {differing:?}",
                python.label()
            ));
        }

        // Every 15th stdlib file, by sorted path: about 110 files per version (more often in
        // a smaller stdlib such as Debian's, split across packages: at least 60 files).
        let stdlib = stdlib_dir(python);
        let mut files: Vec<String> = walk_py(&stdlib);
        files.sort();
        let step = (files.len() / 60).clamp(1, 15);
        let sample: Vec<&str> = files.iter().step_by(step).map(String::as_str).collect();
        let expected = expected(python, &sample);
        let (compared, differing) = compare(python, &expected);
        let identical = compared - differing.len();
        println!(
            "{}: stdlib sample {identical}/{compared} files identical",
            python.label()
        );
        if compared < 50 || (identical as f64) < 0.97 * compared as f64 {
            failures.push(format!(
                "{}: sample {identical}/{compared}: {differing:?}",
                python.label()
            ));
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
        Ok(())
    }
);

/// `make exec-lines-accuracy`: every stdlib file of every Python 3.8–3.15, ≥ 99% identical.
#[test]
#[ignore]
fn whole_stdlib_accuracy() {
    let mut failures = Vec::new();
    println!("| version | files compared | identical | % identical |");
    println!("|---|---|---|---|");
    for python in pythons_under_test() {
        let expected = expected(&python, &["--stdlib"]);
        let (compared, differing) = compare(&python, &expected);
        let identical = compared - differing.len();
        let percent = 100.0 * identical as f64 / compared.max(1) as f64;
        println!(
            "| {}.{} | {compared} | {identical} | {percent:.2}% |",
            python.version.major, python.version.minor
        );
        for d in &differing {
            eprintln!("  {}.{} {d}", python.version.major, python.version.minor);
        }
        if percent < 99.0 {
            failures.push(format!("{}: {percent:.2}%", python.label()));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

fn stdlib_dir(python: &Python) -> std::path::PathBuf {
    let out = Command::new(&python.path)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ])
        .output()
        .unwrap();
    std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn walk_py(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "site-packages" && name != "__pycache__" {
                    pending.push(path);
                }
            } else if name.ends_with(".py") {
                found.push(path.to_string_lossy().into_owned());
            }
        }
    }
    found
}

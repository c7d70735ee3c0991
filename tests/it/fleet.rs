//! docs/fleet.md's coverage recipe, run as written: two "pods" run the same app from two
//! install paths under `tracer run --format coverage`, and the document's `.coveragerc` and
//! `coverage combine`/`report` commands, extracted from it, combine them onto the local copy.

use crate::common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The fenced block right after the marker `<!-- fleet.rs: NAME -->` in docs/fleet.md.
fn block(name: &str) -> String {
    let doc = std::fs::read_to_string(repo_root().join("docs/fleet.md")).unwrap();
    let marker = format!("<!-- fleet.rs: {name} -->");
    let after = &doc[doc.find(&marker).unwrap_or_else(|| panic!("no {marker}")) + marker.len()..];
    let body = after.split_once("```").unwrap().1;
    let body = body.split_once('\n').unwrap().1;
    body.split_once("```").unwrap().0.to_owned()
}

/// The lines of `file` in a coverage.py data file, read by coverage.py itself.
fn lines_in(data: &Path, file_suffix: &str) -> BTreeSet<u32> {
    let out = Command::new(report_tools().python())
        .args([
            "-c",
            "import sys, coverage\n\
             d = coverage.CoverageData(sys.argv[1]); d.read()\n\
             for f in d.measured_files():\n\
             \x20   if f.endswith(sys.argv[2]): print(*sorted(d.lines(f)))",
        ])
        .arg(data)
        .arg(file_suffix)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", printed(&out));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

#[test]
fn the_documented_combine_of_two_pods_holds_the_union_of_their_lines() {
    let python = newest_python();
    let dir = scratch("fleet");
    let mut pods = Vec::new();
    for (pod, seconds) in [("pod-a", "0.5"), ("pod-b", "1.5")] {
        let app = dir.join(pod).join("srv/app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::copy(workload("mix.py"), app.join("mix.py")).unwrap();
        let data = format!(".coverage.{pod}");
        let out = run_workload(
            &python.path,
            app.join("mix.py"),
            &["--rate", "2000", "--format", "coverage", "-o", &data],
            seconds,
            &dir,
        );
        assert!(out.status.success(), "{}", printed(&out));
        pods.push(lines_in(&dir.join(&data), "/srv/app/mix.py"));
    }
    let union: BTreeSet<u32> = pods.iter().flatten().copied().collect();
    assert!(
        pods.iter().all(|lines| !lines.is_empty()),
        "each pod's file holds lines"
    );

    // The combining host: its own copy under src/, the document's .coveragerc and commands.
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::copy(workload("mix.py"), dir.join("src/mix.py")).unwrap();
    std::fs::write(dir.join(".coveragerc"), block("coveragerc")).unwrap();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &block("combine")])
        .env(
            "PATH",
            format!(
                "{}:{}",
                report_tools().venv.join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the documented commands: {}",
        printed(&out)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("src/mix.py"),
        "coverage report names src/mix.py:\n{report}"
    );
    assert_eq!(lines_in(&dir.join(".coverage"), "src/mix.py"), union);
}

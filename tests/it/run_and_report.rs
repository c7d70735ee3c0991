//! `tracer run`, the JSON and .cover formats, and `tracer report` against the stdlib's own
//! `python -m trace --report` on the same results: identical .cover files, byte for byte.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn run_traces_the_child_and_exits_with_its_status() {
    let python = newest_python();
    let dir = scratch("run-status");
    let script = workload("exit_with.py");
    let out = Command::new(tracer_bin())
        .args(["run", "-o", "out.json", "--format", "json", "--"])
        .arg(&python.path)
        .arg(&script)
        .arg("3")
        .env("WORKLOAD_SECONDS", "1.5")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", printed(&out));
    let (results, info) = tracer::output::load_results(&dir.join("out.json")).unwrap();
    let info = info.expect("JSON carries run info");
    assert_eq!(info.target.pid, info.target.pid.abs());
    assert!(info.target.python_version.starts_with(&format!(
        "{}.{}.",
        python.version.major, python.version.minor
    )));
    assert!(info.target.command_line.contains("exit_with.py"));
    assert!(info.stats.samples > 100, "{:?}", info.stats);
    let script = script.to_str().unwrap();
    let spin_lines: Vec<u32> = results.lines_of(script).map(|(l, _)| l).collect();
    assert!(
        spin_lines.contains(&12),
        "the busy loop line 12 is found: {spin_lines:?}"
    );
    assert!(results
        .calledfuncs
        .iter()
        .any(|f| f.funcname == "spin" && f.modulename == "exit_with"));
}

/// A command that exits before it can be traced (`python -c pass` takes milliseconds, about
/// what attaching takes) still gets its results file, empty or not, 10 times out of 10, and
/// tracer exits with its status.
#[test]
fn run_of_a_command_that_exits_at_once_writes_results_every_time() {
    let python = newest_python();
    let dir = scratch("run-quick");
    let run = |code: &str| {
        let _ = std::fs::remove_file(dir.join("out.json"));
        let out = Command::new(tracer_bin())
            .args(["run", "--format", "json", "-o", "out.json", "--"])
            .arg(&python.path)
            .args(["-c", code])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{}",
            printed(&out)
        );
        let loaded = tracer::output::load_results(&dir.join("out.json"));
        (out, loaded)
    };
    let mut untraced = 0;
    for i in 0..10 {
        let (out, loaded) = run("pass");
        assert_eq!(out.status.code(), Some(0), "run {i}: {}", printed(&out));
        let (_, info) =
            loaded.unwrap_or_else(|e| panic!("run {i}: no results ({e}): {}", printed(&out)));
        let info = info.expect("JSON carries run info");
        assert!(info.target.command_line.contains("-c pass"), "{info:?}");
        if String::from_utf8_lossy(&out.stderr).contains("exited before it could be traced") {
            untraced += 1;
        }
    }
    println!(
        "{}: 10/10 results written, {untraced} of them for a command gone before it was read",
        python.label()
    );
    let (out, loaded) = run("raise SystemExit(3)");
    assert_eq!(out.status.code(), Some(3), "{}", printed(&out));
    assert!(loaded.is_ok(), "no results: {}", printed(&out));
}

#[test]
fn json_format_matches_its_documented_shape() {
    let python = newest_python();
    let dir = scratch("json-shape");
    let mut target = Workload::start(&python, &workload("mix.py"), 2.0);
    let pid = target.pid().to_string();
    let out = run_tracer(
        &[
            "attach",
            "--pid",
            &pid,
            "--format",
            "json",
            "-o",
            "r.json",
            "--duration",
            "1",
        ],
        &dir,
        TIMEOUT,
    );
    target.wait(TIMEOUT);
    assert!(out.status.success(), "{}", printed(&out));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("r.json")).unwrap()).unwrap();
    assert_eq!(v["format"], "tracer-coverage");
    assert_eq!(v["version"], 1);
    for key in ["pid", "python_version", "executable", "command_line"] {
        assert!(!v["target"][key].is_null(), "target.{key}");
    }
    for key in ["samples", "duration_s", "rate_requested", "errors", "late"] {
        assert!(v["stats"][key].is_number(), "stats.{key}");
    }
    assert_eq!(v["stats"]["rate_requested"], 1000.0);
    let counts = v["counts"].as_array().unwrap();
    assert!(!counts.is_empty());
    for row in counts {
        let row = row.as_array().unwrap();
        assert_eq!(row.len(), 4);
        assert!(row[0].is_string() && row[1].is_u64() && row[2].is_u64() && row[3].is_u64());
        assert!(
            row[3].as_u64() <= row[2].as_u64(),
            "self hits never exceed hits: {row:?}"
        );
    }
    for row in v["calledfuncs"].as_array().unwrap() {
        assert_eq!(row.as_array().unwrap().len(), 3);
    }
    for row in v["callers"].as_array().unwrap() {
        let row = row.as_array().unwrap();
        assert_eq!(row.len(), 3);
        assert!(row[2].as_u64().unwrap() >= 1);
    }
    // Samples of at most ~1 s at 1 kHz: no line can have more hits than samples.
    let samples = v["stats"]["samples"].as_u64().unwrap();
    assert!(counts.iter().all(|r| r[2].as_u64().unwrap() <= samples));
}

/// The .cover files tracer writes, by name, and trace's from the same pickle.
fn cover_files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".cover"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

per_python!(report_writes_what_trace_report_writes, gil, |python| {
    let mut marker_differences = Vec::new();
    let label = python.label();
    let dir = scratch(&format!(
        "report-{}.{}",
        python.version.major, python.version.minor
    ));
    let mut target = Workload::start(python, &workload("mix.py"), 2.0);
    let pid = target.pid().to_string();
    let out = run_tracer(&["attach", "--pid", &pid, "-o", "r.pickle"], &dir, TIMEOUT);
    target.wait(TIMEOUT);
    assert!(out.status.success(), "{label}: {}", printed(&out));

    let theirs = Command::new(&python.path)
        .args([
            "-m",
            "trace",
            "--report",
            "--file",
            "r.pickle",
            "--coverdir",
            "theirs",
            "--missing",
            "--summary",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(theirs.status.success(), "{label}: {}", printed(&theirs));
    let version = format!("{}.{}", python.version.major, python.version.minor);
    let ours = run_tracer(
        &[
            "report",
            "--file",
            "r.pickle",
            "--coverdir",
            "ours",
            "--missing",
            "--summary",
            "--python-version",
            &version,
        ],
        &dir,
        TIMEOUT,
    );
    assert!(ours.status.success(), "{label}: {}", printed(&ours));

    let (theirs_files, ours_files) = (
        cover_files(&dir.join("theirs")),
        cover_files(&dir.join("ours")),
    );
    assert_eq!(
        theirs_files.keys().collect::<Vec<_>>(),
        ours_files.keys().collect::<Vec<_>>(),
        "{label}: the same .cover files"
    );
    for (name, their_text) in &theirs_files {
        let our_text = &ours_files[name];
        let (theirs_lines, ours_lines): (Vec<&str>, Vec<&str>) = (
            their_text.split_inclusive('\n').collect(),
            our_text.split_inclusive('\n').collect(),
        );
        assert_eq!(
            theirs_lines.len(),
            ours_lines.len(),
            "{label}: {name} line count"
        );
        for (n, (t, o)) in theirs_lines.iter().zip(&ours_lines).enumerate() {
            if t == o {
                continue;
            }
            // Only the executable-line analysis may differ: ">>>>>> " against blank.
            let unmark = |s: &str| s.replacen(">>>>>> ", "       ", 1);
            assert_eq!(unmark(t), unmark(o), "{label}: {name} line {}", n + 1);
            marker_differences.push(format!(
                "{version} {name}:{}: trace {:?} ours {:?}",
                n + 1,
                &t[..7],
                &o[..7]
            ));
        }
    }
    // The summary rows agree on module names and paths (percentages follow the markers).
    let rows = |out: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(out)
            .lines()
            .skip_while(|l| !l.starts_with("lines   cov%"))
            .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(
        rows(&theirs.stdout),
        rows(&ours.stdout),
        "{label}: summary modules"
    );
    println!(
        "executable-line marker differences against trace: {}",
        marker_differences.len()
    );
    for d in &marker_differences {
        println!("  {d}");
    }
    Ok(())
});

#[test]
fn cover_format_writes_annotated_files_and_the_summary() {
    let python = newest_python();
    let dir = scratch("cover-format");
    let mut target = Workload::start(&python, &workload("mix.py"), 2.0);
    let pid = target.pid().to_string();
    let out = run_tracer(
        &["attach", "--pid", &pid, "--format", "cover", "-o", "cov"],
        &dir,
        TIMEOUT,
    );
    target.wait(TIMEOUT);
    assert!(out.status.success(), "{}", printed(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("lines   cov%   module   (path)"),
        "{stdout}"
    );
    assert!(stdout.contains("mix.py)"), "{stdout}");
    let files = cover_files(&dir.join("cov"));
    let (_, mix) = files
        .iter()
        .find(|(n, _)| n.ends_with("mix.cover"))
        .expect("mix .cover");
    let fib_return = mix
        .lines()
        .find(|l| l.ends_with("return fib(n - 1) + fib(n - 2)"))
        .unwrap();
    assert!(
        fib_return
            .trim_start()
            .split(':')
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0,
        "{fib_return}"
    );
    assert!(mix.lines().all(|l| l.len() >= 7));
}

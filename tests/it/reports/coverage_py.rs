//! coverage.py's data file: read by coverage.py itself, combined with a real coverage run, and
//! with the `tracer_coverage` plugin's executable lines.

use super::*;

#[test]
fn coverage_py_reads_our_data_file() {
    let tools = report_tools();
    let dir = workdir("reports-coverage");
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "coverage",
            "-o",
            ".coverage",
        ],
        &dir,
    );
    let ours = our_line_sets(&dir.join("mix.json"));
    assert!(ours.keys().any(|f| f.ends_with("/mix.py")), "{ours:?}");
    std::fs::write(dir.join("ours.json"), serde_json::to_vec(&ours).unwrap()).unwrap();
    let coverage = tools.coverage();
    let report = run_ok(&coverage, &["report", "-m"], &dir);
    let report = String::from_utf8_lossy(&report.stdout);
    assert!(
        report.contains("mix.py") && report.contains("TOTAL"),
        "{report}"
    );
    run_ok(&coverage, &["html", "-d", "html"], &dir);
    assert!(dir.join("html/index.html").is_file());
    run_ok(&coverage, &["json", "-o", "coverage.json"], &dir);
    run_ok(&coverage, &["lcov", "-o", "coverage.lcov"], &dir);
    let check = run_ok(
        &tools.python(),
        &[
            support("coverage_check.py").to_str().unwrap(),
            ".coverage",
            "ours.json",
            "coverage.json",
            "coverage.lcov",
        ],
        &dir,
    );
    println!("{}", String::from_utf8_lossy(&check.stdout).trim());
}

#[test]
fn coverage_combine_joins_our_file_with_a_real_coverage_run() {
    let tools = report_tools();
    let dir = workdir("reports-combine");
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "coverage",
            "-o",
            ".coverage.tracer",
        ],
        &dir,
    );
    // A real coverage.py run of a small script, in its own data file.
    std::fs::write(
        dir.join("small.py"),
        "def f(x):\n    return x + 1\n\n\nif f(1) > 5:\n    print('never')\nprint('done')\n",
    )
    .unwrap();
    run_ok(
        &tools.coverage(),
        &["run", "--data-file=.coverage.real", "small.py"],
        &dir,
    );
    run_ok(
        &tools.coverage(),
        &[
            "combine",
            "--keep",
            "--data-file=.coverage",
            ".coverage.tracer",
            ".coverage.real",
        ],
        &dir,
    );
    let combined = crate::common::coverage_db::read_line_sets(&dir.join(".coverage")).unwrap();
    let mut expected = our_line_sets(&dir.join("mix.json"));
    let small = dir.join("small.py").canonicalize().unwrap();
    expected.insert(small.to_string_lossy().into_owned(), vec![1, 2, 5, 7]);
    assert_eq!(
        combined, expected,
        "the combined file holds both runs' lines"
    );
    run_ok(&tools.coverage(), &["report", "-m"], &dir);
}

/// The `[run] plugins = tracer_coverage` configuration, in `dir`.
fn enable_coverage_plugin(dir: &Path) {
    std::fs::write(
        dir.join(".coveragerc"),
        "[run]\nplugins = tracer_coverage\n",
    )
    .unwrap();
}

/// What `tracer_coverage` reads from a data file: our executable lines, by file, after checking
/// that coverage.py's `tracer` table names the plugin for exactly those files.
fn plugin_lines(data_file: &Path) -> BTreeMap<String, Vec<u32>> {
    let crate::common::coverage_db::PluginData {
        executable_lines: lines,
        tracers,
    } = crate::common::coverage_db::read_plugin_data(data_file).unwrap();
    let marked: BTreeSet<&String> = tracers
        .iter()
        .filter(|(_, t)| *t == tracer::output::coverage_db::PLUGIN_NAME)
        .map(|(f, _)| f)
        .collect();
    assert_eq!(marked, lines.keys().collect(), "{tracers:?}");
    lines
}

/// The stdlib's `trace._find_executable_linenos` of each file, run by `python` (line 0, which
/// no report shows, and 3.13's `None` left out).
fn trace_executable_lines(
    python: &Path,
    files: &[&String],
    dir: &Path,
) -> BTreeMap<String, Vec<u32>> {
    std::fs::write(dir.join("files.json"), serde_json::to_vec(files).unwrap()).unwrap();
    let out = run_ok(
        python,
        &[
            "-c",
            "import json, sys, trace\n\
             files = json.load(open(sys.argv[1]))\n\
             print(json.dumps({f: sorted(n for n in trace._find_executable_linenos(f) if n)\n\
                               for f in files}))",
            "files.json",
        ],
        dir,
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn coverage_py_plugin_reports_our_executable_lines() {
    let t = traced();
    let tools = report_tools();
    let dir = workdir("reports-coverage-plugin");
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "coverage",
            "--coverage-plugin",
            "-o",
            ".coverage",
        ],
        &dir,
    );
    let executed = our_line_sets(&dir.join("mix.json"));
    let executable = plugin_lines(&dir.join(".coverage"));
    assert_eq!(
        executable.keys().collect::<Vec<_>>(),
        executed.keys().collect::<Vec<_>>(),
        "every file of the data file analysed"
    );
    // Our executable lines are the stdlib trace's, by the traced Python itself.
    let files: Vec<&String> = executable.keys().collect();
    assert_eq!(
        trace_executable_lines(&t.python.path, &files, &dir),
        executable,
        "tracer's executable lines = trace._find_executable_linenos"
    );
    std::fs::write(
        dir.join("executable.json"),
        serde_json::to_vec(&executable).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("executed.json"),
        serde_json::to_vec(&executed).unwrap(),
    )
    .unwrap();

    // Without the plugin configured coverage.py cannot read a marked file (it looks the
    // plugin up by name and stops with a KeyError): why --coverage-plugin is opt-in.
    let coverage = tools.coverage();
    let out = Command::new(&coverage)
        .args(["report", "-m"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("tracer_coverage"),
        "{}",
        printed(&out)
    );

    enable_coverage_plugin(&dir);
    let report = run_ok(&coverage, &["report", "-m"], &dir);
    std::fs::write(dir.join("report.txt"), &report.stdout).unwrap();
    let debug = run_ok(&coverage, &["report", "--debug=sys"], &dir);
    let debug = String::from_utf8_lossy(&debug.stderr);
    assert!(
        debug.contains("sys: tracer_coverage.TracerPlugin")
            && debug.contains(&format!("executable_lines_files: {}", executable.len())),
        "{debug}"
    );
    run_ok(&coverage, &["json", "-o", "coverage.json"], &dir);
    run_ok(&coverage, &["html", "-d", "html"], &dir);
    assert!(dir.join("html/index.html").is_file());
    run_ok(&coverage, &["lcov", "-o", "coverage.lcov"], &dir);
    run_ok(&coverage, &["xml", "-o", "coverage.xml"], &dir);
    let check = run_ok(
        &tools.python(),
        &[
            support("coverage_plugin_check.py").to_str().unwrap(),
            "executable.json",
            "executed.json",
            "coverage.json",
            "report.txt",
        ],
        &dir,
    );
    println!("{}", String::from_utf8_lossy(&check.stdout).trim());

    // A file written without --coverage-plugin reads as before, plugin configured or not.
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "coverage",
            "-o",
            "plain.coverage",
        ],
        &dir,
    );
    assert_eq!(
        crate::common::coverage_db::read_plugin_data(&dir.join("plain.coverage")).unwrap(),
        Default::default()
    );
    std::fs::write(
        dir.join("ours.json"),
        serde_json::to_vec(&executed).unwrap(),
    )
    .unwrap();
    run_ok(
        &coverage,
        &["json", "--data-file=plain.coverage", "-o", "plain.json"],
        &dir,
    );
    run_ok(
        &coverage,
        &["lcov", "--data-file=plain.coverage", "-o", "plain.lcov"],
        &dir,
    );
    run_ok(
        &tools.python(),
        &[
            support("coverage_check.py").to_str().unwrap(),
            "plain.coverage",
            "ours.json",
            "plain.json",
            "plain.lcov",
        ],
        &dir,
    );

    // A file whose source cannot be read is left to coverage.py's parser, with a warning.
    let workloads = workload("");
    let map = format!(
        "{}=/nonexistent",
        workloads.to_str().unwrap().trim_end_matches('/')
    );
    let out = tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "coverage",
            "--coverage-plugin",
            "--path-map",
            &map,
            "-o",
            "moved.coverage",
        ],
        &dir,
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("/nonexistent/mix.py: No such file or directory (os error 2): not marked"),
        "{}",
        printed(&out)
    );
    let moved = plugin_lines(&dir.join("moved.coverage"));
    let mix = workload("mix.py").to_string_lossy().into_owned();
    let mut expected = executable.clone();
    expected.remove(&mix);
    assert_eq!(moved, expected);
}

#[test]
fn coverage_combine_and_the_plugin_lines() {
    let tools = report_tools();
    let dir = workdir("reports-combine-plugin");
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "coverage",
            "--coverage-plugin",
            "-o",
            ".coverage.tracer",
        ],
        &dir,
    );
    let executable = plugin_lines(&dir.join(".coverage.tracer"));
    let mix = workload("mix.py").to_string_lossy().into_owned();
    std::fs::write(
        dir.join("small.py"),
        "def f(x):\n    return x + 1\n\n\nif f(1) > 5:\n    print('never')\nprint('done')\n",
    )
    .unwrap();
    let coverage = tools.coverage();
    run_ok(
        &coverage,
        &["run", "--data-file=.coverage.real", "small.py"],
        &dir,
    );
    enable_coverage_plugin(&dir);
    // coverage.py's statements of a file, with the plugin configured: `coverage json`.
    let statements = |data_file: &str| -> BTreeMap<String, u64> {
        run_ok(
            &coverage,
            &["json", &format!("--data-file={data_file}"), "-o", "c.json"],
            &dir,
        );
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("c.json")).unwrap()).unwrap();
        doc["files"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(f, e)| (f.clone(), e["summary"]["num_statements"].as_u64().unwrap()))
            .collect()
    };
    let coverage_own = statements(".coverage.real")["small.py"];

    // Appending a real run to our file keeps our table: our statements, and coverage.py's
    // own for the real run's file.
    std::fs::copy(dir.join(".coverage.tracer"), dir.join("appended")).unwrap();
    run_ok(
        &coverage,
        &[
            "combine",
            "--append",
            "--keep",
            "--data-file=appended",
            ".coverage.real",
        ],
        &dir,
    );
    assert_eq!(plugin_lines(&dir.join("appended")), executable);
    let appended = statements("appended");
    assert_eq!(appended[&mix], executable[&mix].len() as u64);
    assert_eq!(appended["small.py"], coverage_own);

    // A plain combine copies coverage.py's own tables only: the files stay marked for the
    // plugin, which then hands them to coverage.py's parser, with a warning.
    run_ok(
        &coverage,
        &[
            "combine",
            "--keep",
            "--data-file=combined",
            ".coverage.tracer",
            ".coverage.real",
        ],
        &dir,
    );
    let combined = crate::common::coverage_db::read_plugin_data(&dir.join("combined")).unwrap();
    assert!(combined.executable_lines.is_empty());
    let marked: Vec<&String> = combined
        .tracers
        .iter()
        .filter(|(_, t)| *t == tracer::output::coverage_db::PLUGIN_NAME)
        .map(|(f, _)| f)
        .collect();
    assert_eq!(marked, executable.keys().collect::<Vec<_>>());
    let out = run_ok(&coverage, &["report", "--data-file=combined"], &dir);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds no executable lines from tracer"),
        "{}",
        printed(&out)
    );
    // coverage.py's own statements: as for a file written without --coverage-plugin.
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "coverage",
            "-o",
            "plain.coverage",
        ],
        &dir,
    );
    let combined = statements("combined");
    let parser = statements("plain.coverage");
    assert_eq!(combined[&mix], parser[&mix]);
    assert_eq!(combined["small.py"], coverage_own);
}

/// Our data file read back as written, with and without the plugin's lines (was a unit test of
/// src/output/coverage_db.rs; the readers are the tests' own, tests/common/coverage_db.rs).
#[test]
fn writes_and_reads_back_line_sets() {
    use crate::common::coverage_db::{read_line_sets, read_plugin_data, PluginData};
    use rusqlite::Connection;
    use tracer::aggregate::model::{CoverageResults, LineHits};
    use tracer::output::coverage_db::{write, ExecutableLines, PLUGIN_NAME, PLUGIN_PYTHON_KEY};
    let dir = std::env::temp_dir().join(format!("tracer-covdb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("data.coverage");
    let mut r = CoverageResults::default();
    for (file, line) in [("/a.py", 3), ("/a.py", 100), ("/b.py", 1), ("<string>", 1)] {
        r.counts.insert((file.into(), line), LineHits::default());
    }
    write(&r, &path, None, None).unwrap();
    let back = read_line_sets(&path).unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back["/a.py"], vec![3, 100]);
    assert_eq!(back["/b.py"], vec![1]);
    assert_eq!(read_plugin_data(&path).unwrap(), PluginData::default());

    // With the plugin's lines: our table and coverage.py's `tracer` rows, for the
    // analysed files only.
    let plugin = ExecutableLines {
        python: Some(tracer::reader::PyVersion::new(3, 12)),
        by_file: [
            ("/a.py".to_owned(), BTreeSet::from([1, 3, 100])),
            ("/never-counted.py".to_owned(), BTreeSet::from([1])),
        ]
        .into(),
        skipped: vec!["/b.py: no such file".to_owned()],
    };
    write(&r, &path, Some(&plugin), None).unwrap();
    assert_eq!(read_line_sets(&path).unwrap(), back);
    let data = read_plugin_data(&path).unwrap();
    assert_eq!(
        data.executable_lines,
        [("/a.py".to_owned(), vec![1, 3, 100])].into()
    );
    assert_eq!(
        data.tracers,
        [("/a.py".to_owned(), PLUGIN_NAME.to_owned())].into()
    );
    let python: String = Connection::open(&path)
        .unwrap()
        .query_row(
            "select value from meta where key = ?1",
            [PLUGIN_PYTHON_KEY],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(python, "3.12");
    std::fs::remove_dir_all(&dir).unwrap();
}

//! The report formats against their real consumers: coverage.py (report, html, json, lcov,
//! combine), the stdlib's trace (--report text, CoverageResults.update), Python's XML parser
//! (the flame graph SVG), a structural check of speedscope's schema, pydot (dot); plus merge,
//! conversions, filters, path maps and bad input.
//!
//! One traced run of tests/workloads/mix.py (JSON, with stacks) is shared by the tests.

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

/// The shared run: mix.py traced from start to exit by `tracer run --format json`.
struct Traced {
    python: Python,
    json: PathBuf,
}

fn traced() -> &'static Traced {
    static TRACED: OnceLock<Traced> = OnceLock::new();
    TRACED.get_or_init(|| {
        let python = newest_python();
        let dir = scratch("reports");
        let out = Command::new(tracer_bin())
            .args(["run", "--format", "json", "-o", "mix.json", "--"])
            .arg(&python.path)
            .arg(workload("mix.py"))
            .env("WORKLOAD_SECONDS", "1.5")
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", printed(&out));
        Traced {
            python,
            json: dir.join("mix.json"),
        }
    })
}

/// A fresh directory for one test, holding a copy of the shared JSON as `mix.json`.
fn workdir(name: &str) -> PathBuf {
    let t = traced();
    let dir = scratch(name);
    std::fs::copy(&t.json, dir.join("mix.json")).unwrap();
    dir
}

fn tracer_ok(args: &[&str], dir: &Path) -> Output {
    let out = run_tracer(args, dir, TIMEOUT);
    assert!(out.status.success(), "tracer {args:?}: {}", printed(&out));
    out
}

fn run_ok(program: &Path, args: &[&str], dir: &Path) -> Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        printed(&out)
    );
    out
}

/// The lines we counted, by file, as coverage.py should see them.
fn our_line_sets(json: &Path) -> BTreeMap<String, Vec<u32>> {
    let (results, _) = tracer::output::load_results(json).unwrap();
    tracer::output::coverage_db::line_sets(&results)
        .into_iter()
        .map(|(f, l)| (f.to_owned(), l))
        .collect()
}

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
    let combined = tracer::output::coverage_db::read_line_sets(&dir.join(".coverage")).unwrap();
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
    let tracer::output::coverage_db::PluginData {
        executable_lines: lines,
        tracers,
    } = tracer::output::coverage_db::read_plugin_data(data_file).unwrap();
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
        tracer::output::coverage_db::read_plugin_data(&dir.join("plain.coverage")).unwrap(),
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
    let combined = tracer::output::coverage_db::read_plugin_data(&dir.join("combined")).unwrap();
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

#[test]
fn merge_follows_coverage_results_update() {
    let t = traced();
    let dir = workdir("reports-merge");
    // A real trace run of the workload, with line counts and call edges.
    let python = &t.python;
    let out = Command::new(&python.path)
        .args([
            "-m",
            "trace",
            "--count",
            "--trackcalls",
            "-C",
            "trace-cover",
        ])
        .args(["--file", "trace.pickle"])
        .arg(workload("mix.py"))
        .env("WORKLOAD_SECONDS", "0.2")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", printed(&out));
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "pickle",
            "-o",
            "ours.pickle",
        ],
        &dir,
    );
    // Pickle and JSON in one merge, written as pickle: equal to trace's own update.
    tracer_ok(
        &["merge", "trace.pickle", "mix.json", "-o", "merged.pickle"],
        &dir,
    );
    let merger = support("trace_merge.py");
    let merger = merger.to_str().unwrap();
    let theirs = run_ok(&python.path, &[merger, "trace.pickle", "ours.pickle"], &dir);
    let ours = run_ok(&python.path, &[merger, "--load", "merged.pickle"], &dir);
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&theirs.stdout),
        "tracer merge = CoverageResults.update"
    );

    // JSON + JSON keeps stacks and self hits, sums them; report reads the merged file.
    tracer_ok(&["merge", "mix.json", "mix.json", "-o", "twice.json"], &dir);
    let (once, _) = tracer::output::load_results(&dir.join("mix.json")).unwrap();
    let (twice, info) = tracer::output::load_results(&dir.join("twice.json")).unwrap();
    let mut expected = once.clone();
    expected.update(&once);
    assert_eq!(twice, expected);
    let stacks = twice.stacks.as_ref().expect("stacks survive a JSON merge");
    let total: u64 = stacks.samples.values().sum();
    assert_eq!(
        total,
        2 * once.stacks.as_ref().unwrap().samples.values().sum::<u64>()
    );
    assert_eq!(
        info.unwrap().stats.samples,
        2 * tracer::output::load_results(&dir.join("mix.json"))
            .unwrap()
            .1
            .unwrap()
            .stats
            .samples
    );
    tracer_ok(
        &["report", "--file", "twice.json", "-C", "cover", "-s"],
        &dir,
    );
    assert!(dir.join("cover/mix.cover").is_file() || has_cover_named(&dir.join("cover"), "mix"));

    // A pickle in the mix: merged, but without stacks, and flame formats then refuse.
    let out = tracer_ok(
        &["merge", "mix.json", "trace.pickle", "-o", "mixed.json"],
        &dir,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no stacks"));
    let (mixed, _) = tracer::output::load_results(&dir.join("mixed.json")).unwrap();
    assert!(mixed.stacks.is_none());
    let out = run_tracer(
        &[
            "report",
            "--file",
            "mixed.json",
            "--format",
            "flamegraph",
            "-o",
            "x.svg",
        ],
        &dir,
        TIMEOUT,
    );
    assert_one_line_error(&out, &["needs whole stacks"]);

    // Conversions between our formats: JSON → pickle → JSON keeps what a pickle holds.
    tracer_ok(
        &[
            "report",
            "--file",
            "ours.pickle",
            "--format",
            "json",
            "-o",
            "back.json",
        ],
        &dir,
    );
    let (back, _) = tracer::output::load_results(&dir.join("back.json")).unwrap();
    assert_eq!(
        back.counts.keys().collect::<Vec<_>>(),
        once.counts.keys().collect::<Vec<_>>()
    );
    assert_eq!(back.calledfuncs, once.calledfuncs);
    assert_eq!(
        back.callers.keys().collect::<Vec<_>>(),
        once.callers.keys().collect::<Vec<_>>()
    );
}

fn has_cover_named(dir: &Path, module: &str) -> bool {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()).any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .ends_with(&format!("{module}.cover"))
            })
        })
        .unwrap_or(false)
}

#[test]
fn flame_formats_open_in_their_consumers() {
    let t = traced();
    let dir = workdir("reports-flame");
    let (results, _) = tracer::output::load_results(&dir.join("mix.json")).unwrap();
    let stacks = results.stacks.expect("JSON from a trace holds stacks");
    let total: u64 = stacks.samples.values().sum();
    assert!(total > 100, "thread samples: {total}");

    // Folded stacks: `frame;frame count`, frames `func (file:line)`.
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "collapsed",
            "-o",
            "mix.folded",
        ],
        &dir,
    );
    let folded = std::fs::read_to_string(dir.join("mix.folded")).unwrap();
    let mut folded_total = 0u64;
    for line in folded.lines() {
        let (stack, count) = line.rsplit_once(' ').expect("stack and count");
        folded_total += count.parse::<u64>().expect("a count");
        for frame in stack.split(';') {
            let (func, place) = frame.split_once(" (").expect("func (file:line)");
            assert!(!func.is_empty() && place.ends_with(')'), "{frame}");
            let (_, line_no) = place.trim_end_matches(')').rsplit_once(':').unwrap();
            line_no.parse::<u32>().expect("a line number");
        }
    }
    assert_eq!(folded_total, total);
    let mix = workload("mix.py");
    assert!(
        folded.contains(&format!("fib ({}:", mix.display())),
        "fib appears in the folded stacks"
    );

    // The SVG parses as XML (Python's xml.etree) and has a frame per stack node.
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "flamegraph",
            "-o",
            "mix.svg",
        ],
        &dir,
    );
    let out = run_ok(
        &t.python.path,
        &[
            "-c",
            "import sys, xml.etree.ElementTree as ET\n\
             root = ET.parse(sys.argv[1]).getroot()\n\
             assert root.tag.endswith('svg'), root.tag\n\
             titles = [e.text for e in root.iter() if e.tag.endswith('title')]\n\
             assert any('fib (' in (t or '') for t in titles), titles[:5]\n\
             print(len(titles))",
            "mix.svg",
        ],
        &dir,
    );
    let frames: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(frames > 5, "{frames} frames drawn");

    // speedscope: the schema's structure, and the same weights.
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "speedscope",
            "-o",
            "mix.speedscope.json",
        ],
        &dir,
    );
    run_ok(
        &t.python.path,
        &[
            support("speedscope_check.py").to_str().unwrap(),
            "mix.speedscope.json",
        ],
        &dir,
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("mix.speedscope.json")).unwrap()).unwrap();
    let weights: u64 = doc["profiles"][0]["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_u64().unwrap())
        .sum();
    assert_eq!(weights, total);

    // A pickle cannot hold stacks: a one-line error, no file.
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "pickle",
            "-o",
            "mix.pickle",
        ],
        &dir,
    );
    for format in ["collapsed", "flamegraph", "speedscope"] {
        let out = run_tracer(
            &[
                "report",
                "--file",
                "mix.pickle",
                "--format",
                format,
                "-o",
                "out",
            ],
            &dir,
            TIMEOUT,
        );
        assert_one_line_error(&out, &["needs whole stacks"]);
        assert!(!dir.join("out").exists());
    }
}

#[test]
fn dot_graph_parses_with_pydot() {
    let tools = report_tools();
    let dir = workdir("reports-dot");
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "dot",
            "-o",
            "callers.dot",
        ],
        &dir,
    );
    let (results, _) = tracer::output::load_results(&dir.join("mix.json")).unwrap();
    let out = run_ok(
        &tools.python(),
        &[
            "-c",
            "import sys, pydot\n\
             (g,) = pydot.graph_from_dot_file(sys.argv[1])\n\
             edges = g.get_edges()\n\
             assert all(int(e.get('weight')) >= 1 for e in edges)\n\
             print(len([n for n in g.get_nodes() if n.get_name().startswith('f')]), len(edges))",
            "callers.dot",
        ],
        &dir,
    );
    let counts: Vec<usize> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(
        counts,
        vec![results.calledfuncs.len(), results.callers.len()]
    );
}

#[test]
fn listfuncs_and_trackcalls_print_what_trace_prints() {
    let t = traced();
    let dir = workdir("reports-text");
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "pickle",
            "-o",
            "mix.pickle",
        ],
        &dir,
    );
    let version = format!("{}.{}", t.python.version.0, t.python.version.1);
    let ours = tracer_ok(
        &[
            "report",
            "--file",
            "mix.pickle",
            "--listfuncs",
            "--trackcalls",
            "--summary",
            "--missing",
            "-C",
            "ours",
            "--python-version",
            &version,
        ],
        &dir,
    );
    let theirs = run_ok(
        &t.python.path,
        &[
            "-m",
            "trace",
            "--report",
            "--file",
            "mix.pickle",
            "--summary",
            "--missing",
            "-C",
            "theirs",
        ],
        &dir,
    );
    let (ours, theirs) = (
        String::from_utf8_lossy(&ours.stdout).into_owned(),
        String::from_utf8_lossy(&theirs.stdout).into_owned(),
    );
    assert!(theirs.contains("functions called:") && theirs.contains("calling relationships:"));
    assert_eq!(ours, theirs, "byte for byte");

    // `tracer report --listfuncs | head`: the reader goes away (here almost always before
    // anything is written); tracer ends silently, as other Unix tools do (it used to panic in
    // print!).
    let mut child = std::process::Command::new(tracer_bin())
        .args([
            "report",
            "--file",
            "mix.pickle",
            "--listfuncs",
            "--trackcalls",
            "-C",
            "piped",
        ])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Ended by SIGPIPE; or, if it wrote everything into the pipe's buffer before the reader
    // went away, a plain success.
    assert!(
        out.status.success()
            || std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
}

#[test]
fn filters_and_path_maps() {
    let t = traced();
    let dir = workdir("reports-filters");
    let (results, info) = tracer::output::load_results(&dir.join("mix.json")).unwrap();
    let info = info.unwrap();

    // The target's stdlib, found from its maps, is recorded.
    let stdlib = run_ok(
        &t.python.path,
        &[
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ],
        &dir,
    );
    let stdlib = String::from_utf8_lossy(&stdlib.stdout).trim().to_owned();
    assert!(
        info.library_dirs.contains(&stdlib),
        "{stdlib} in {:?}",
        info.library_dirs
    );
    assert!(results
        .files()
        .iter()
        .any(|f| f.starts_with(&format!("{stdlib}/"))));
    assert_eq!(info.stdlib_dir.as_deref(), Some(stdlib.as_str()));

    // trace's `--ignore-dir '$prefix'`: the target's stdlib.
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--ignore-dir",
            "$prefix",
            "--format",
            "json",
            "-o",
            "noprefix.json",
        ],
        &dir,
    );
    let (noprefix, _) = tracer::output::load_results(&dir.join("noprefix.json")).unwrap();
    let files = noprefix.files();
    assert!(!files.is_empty());
    assert!(
        files.iter().all(|f| !f.starts_with(&format!("{stdlib}/"))),
        "{files:?}"
    );

    // --ignore-stdlib drops those line counts (not the functions), --include keeps matches.
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--ignore-stdlib",
            "--format",
            "json",
            "-o",
            "app.json",
        ],
        &dir,
    );
    let (app, _) = tracer::output::load_results(&dir.join("app.json")).unwrap();
    let files: BTreeSet<&str> = app.files();
    assert!(
        files.iter().all(|f| !f.starts_with(&format!("{stdlib}/"))),
        "{files:?}"
    );
    assert!(files.iter().any(|f| f.ends_with("/mix.py")), "{files:?}");
    assert_eq!(app.calledfuncs, results.calledfuncs);
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--include",
            "*/workloads/*",
            "--format",
            "json",
            "-o",
            "inc.json",
        ],
        &dir,
    );
    let (inc, _) = tracer::output::load_results(&dir.join("inc.json")).unwrap();
    assert_eq!(
        inc.files().into_iter().collect::<Vec<_>>(),
        vec![workload("mix.py").to_str().unwrap()]
    );

    // --path-map: the report reads the sources where they are now.
    let moved = dir.join("elsewhere");
    std::fs::create_dir_all(&moved).unwrap();
    std::fs::copy(workload("mix.py"), moved.join("mix.py")).unwrap();
    let from = workload("");
    let map = format!(
        "{}={}",
        from.to_str().unwrap().trim_end_matches('/'),
        moved.display()
    );
    let out = tracer_ok(
        &[
            "report",
            "--file",
            "inc.json",
            "--path-map",
            &map,
            "-C",
            "cover",
            "--summary",
        ],
        &dir,
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(&format!("({})", moved.join("mix.py").display())),
        "{summary}"
    );
    assert!(has_cover_named(&dir.join("cover"), "mix"));
    tracer_ok(
        &["merge", "inc.json", "--path-map", &map, "-o", "moved.json"],
        &dir,
    );
    let (moved_results, _) = tracer::output::load_results(&dir.join("moved.json")).unwrap();
    assert!(moved_results
        .calledfuncs
        .iter()
        .any(|f| f.filename == moved.join("mix.py").to_str().unwrap()));
}

#[test]
fn attach_writes_every_format_directly() {
    let python = newest_python();
    let dir = scratch("reports-direct");
    for (format, file, filter) in [
        ("coverage", "run.coverage", "--coverage-plugin"),
        ("flamegraph", "run.svg", "--ignore-module=nothing"),
        ("json", "ignored.json", "--ignore-stdlib"),
    ] {
        let out = Command::new(tracer_bin())
            .args(["run", "--format", format, "-o", file, filter, "--"])
            .arg(&python.path)
            .arg(workload("exit_with.py"))
            .arg("0")
            .env("WORKLOAD_SECONDS", "0.5")
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", printed(&out));
        assert!(dir.join(file).is_file(), "{file}");
    }
    let lines = tracer::output::coverage_db::read_line_sets(&dir.join("run.coverage")).unwrap();
    let script = workload("exit_with.py");
    assert!(lines[script.to_str().unwrap()].contains(&12), "{lines:?}");
    // --coverage-plugin while tracing: the target's sources analysed for the plugin.
    let executable = tracer::output::coverage_db::read_plugin_data(&dir.join("run.coverage"))
        .unwrap()
        .executable_lines;
    assert_eq!(
        executable.keys().collect::<Vec<_>>(),
        lines.keys().collect::<Vec<_>>()
    );
    assert!(executable[script.to_str().unwrap()].contains(&12));
    // --ignore-stdlib while tracing: the target's library dirs, from its maps, are dropped.
    let (results, info) = tracer::output::load_results(&dir.join("ignored.json")).unwrap();
    let dirs = info.unwrap().library_dirs;
    assert!(!dirs.is_empty());
    let files = results.files();
    assert!(files.contains(script.to_str().unwrap()), "{files:?}");
    for file in files {
        assert!(
            !dirs.iter().any(|d| file.starts_with(&format!("{d}/"))),
            "{file} is under {dirs:?}"
        );
    }
}

#[test]
fn bad_report_input_gets_one_line() {
    let dir = workdir("reports-errors");
    std::fs::write(
        dir.join("corrupt.json"),
        b"{\"format\": \"tracer-coverage\", \"vers",
    )
    .unwrap();
    let out = run_tracer(
        &["merge", "mix.json", "corrupt.json", "-o", "m.json"],
        &dir,
        TIMEOUT,
    );
    assert_one_line_error(&out, &["corrupt.json"]);
    assert!(!dir.join("m.json").exists());
    let out = run_tracer(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "coverage",
            "-o",
            "no/such/dir/x",
        ],
        &dir,
        TIMEOUT,
    );
    assert_one_line_error(&out, &["no/such/dir"]);
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "coverage",
            "-o",
            "c.coverage",
        ],
        &dir,
    );
    let out = run_tracer(&["report", "--file", "c.coverage"], &dir, TIMEOUT);
    assert_one_line_error(&out, &["coverage.py data file"]);
    let out = run_tracer(
        &["report", "--file", "mix.json", "--format", "dot"],
        &dir,
        TIMEOUT,
    );
    assert_one_line_error(&out, &["needs -o"]);
    for args in [
        &[
            "report",
            "--file",
            "mix.json",
            "--coverage-plugin",
            "-o",
            "x.json",
        ][..],
        &["merge", "mix.json", "--coverage-plugin", "-o", "m.pickle"],
    ] {
        let out = run_tracer(args, &dir, TIMEOUT);
        assert_one_line_error(&out, &["--coverage-plugin", "--format coverage"]);
    }
    tracer_ok(
        &[
            "report", "--file", "mix.json", "--format", "pickle", "-o", "p.pickle",
        ],
        &dir,
    );
    let out = run_tracer(
        &["report", "--file", "p.pickle", "--ignore-stdlib", "-C", "c"],
        &dir,
        TIMEOUT,
    );
    assert_one_line_error(&out, &["--ignore-stdlib"]);
}

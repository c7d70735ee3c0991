//! The stdlib trace's side: `merge` as `CoverageResults.update`, its pickle, and the text
//! reports (`--report`, `--listfuncs`, `--trackcalls`).

use super::*;

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
    let version = format!("{}.{}", t.python.version.major, t.python.version.minor);
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

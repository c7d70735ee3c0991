//! Filters and path maps, every format written by `attach` directly, and bad input.

use super::*;

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
    let lines = crate::common::coverage_db::read_line_sets(&dir.join("run.coverage")).unwrap();
    let script = workload("exit_with.py");
    assert!(lines[script.to_str().unwrap()].contains(&12), "{lines:?}");
    // --coverage-plugin while tracing: the target's sources analysed for the plugin.
    let executable = crate::common::coverage_db::read_plugin_data(&dir.join("run.coverage"))
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

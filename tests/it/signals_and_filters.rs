//! Ending a session by signal writes the results; `run` passes SIGTERM on to its child;
//! `--blocking` and the filters work end to end.

use crate::common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Start the tracer with `args` in `dir` and wait until it says it is tracing.
fn start_tracer(args: &[&str], dir: &std::path::Path) -> (Child, std::thread::JoinHandle<String>) {
    let mut tracer = Command::new(tracer_bin())
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = tracer.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("tracing pid") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(TIMEOUT).expect("tracer started tracing");
    (tracer, reader)
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..600 {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("tracer did not exit after the signal");
}

#[test]
fn sigint_and_sigterm_stop_sampling_and_write_results() {
    let python = newest_python();
    for (signal, name) in [(libc::SIGINT, "sigint"), (libc::SIGTERM, "sigterm")] {
        let dir = scratch(&format!("signal-{name}"));
        let target = Workload::start(&python, &workload("mix.py"), 30.0);
        let pid = target.pid().to_string();
        let (mut tracer, stderr) = start_tracer(&["attach", "--pid", &pid, "-o", "r.pickle"], &dir);
        std::thread::sleep(Duration::from_millis(800));
        unsafe { libc::kill(tracer.id() as i32, signal) };
        let status = wait_exit(&mut tracer);
        let stderr = stderr.join().unwrap();
        assert!(status.success(), "{name}: {status:?}\n{stderr}");
        assert!(stderr.contains("stopped by signal"), "{name}: {stderr}");
        let (results, _) = tracer::output::load_results(&dir.join("r.pickle")).unwrap();
        assert!(!results.counts.is_empty(), "{name}: results written");
        // The target was never touched: still running after the tracer left.
        assert!(
            tracer::target::process::is_alive(target.pid()),
            "{name}: target still alive"
        );
    }
}

#[test]
fn run_passes_sigterm_to_its_child_and_exits_with_its_status() {
    let python = newest_python();
    let dir = scratch("run-sigterm");
    let script = workload("mix.py");
    let mut tracer = Command::new(tracer_bin())
        .args(["run", "-o", "r.json", "--format", "json", "--"])
        .arg(&python.path)
        .arg(&script)
        .env("WORKLOAD_SECONDS", "30")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child's "ready" comes through the tracer's stdout, which the child inherits.
    let stdout = tracer.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    std::thread::sleep(Duration::from_millis(800));
    unsafe { libc::kill(tracer.id() as i32, libc::SIGTERM) };
    let status = wait_exit(&mut tracer);
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGTERM),
        "child killed by SIGTERM: {status:?}"
    );
    let (results, info) = tracer::output::load_results(&dir.join("r.json")).unwrap();
    assert!(!results.counts.is_empty());
    assert!(info.unwrap().stats.samples > 0);
}

#[test]
fn blocking_mode_reads_exact_stacks() {
    let python = newest_python();
    let dir = scratch("blocking");
    let mut target = Workload::start(&python, &workload("mix.py"), 2.0);
    let traced = attach_and_load(target.pid(), &["--blocking"], &dir, TIMEOUT);
    target.wait(TIMEOUT);
    assert!(String::from_utf8_lossy(&traced.out.stderr).contains("pausing it for each sample"));
    let (results, stats) = (traced.results, traced.info.stats);
    // Paused, every read succeeds; truncation comes only from frames not yet started.
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert!(
        stats.samples > 0 && stats.truncated < stats.samples,
        "{stats:?}"
    );
    let mix = workload("mix.py");
    let fib_lines: Vec<u32> = results
        .lines_of(mix.to_str().unwrap())
        .map(|(l, _)| l)
        .collect();
    assert!(
        fib_lines.contains(&17),
        "fib's recursive line: {fib_lines:?}"
    );
}

#[test]
fn ignore_dir_and_ignore_module_drop_line_counts_only() {
    let python = newest_python();
    let dir = scratch("filters");
    let stdlib = python.path.parent().unwrap().parent().unwrap().join("lib");
    let stdlib = stdlib.to_str().unwrap();
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
            "--ignore-dir",
            stdlib,
            "--ignore-module",
            "mix",
        ],
        &dir,
        TIMEOUT,
    );
    target.wait(TIMEOUT);
    assert!(out.status.success(), "{}", printed(&out));
    let (results, _) = tracer::output::load_results(&dir.join("r.json")).unwrap();
    assert!(
        results
            .counts
            .keys()
            .all(|(f, _)| !f.starts_with(stdlib) && !f.ends_with("/mix.py")),
        "no stdlib or mix.py lines: {:?}",
        results.counts.keys().collect::<Vec<_>>()
    );
    // As in trace, the filters leave functions and edges alone.
    assert!(results.calledfuncs.iter().any(|f| f.modulename == "mix"));
    assert!(results
        .calledfuncs
        .iter()
        .any(|f| f.filename.starts_with(stdlib)));
}

//! A pre-fork server traced as a family (`--subprocesses`), as a sidecar does it: every flush
//! the results so far of every process (live and finished, of every `--follow` generation)
//! with stats that add up, a kill -9 of the tracer after a flush, workers killed and
//! respawned, a graceful stop, and precision against the stdlib's trace run on the same code.

use super::{Background, Printing};
use crate::common::*;
use crate::trace_compat::{bootstrap_exemptions, check_precision, load};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tracer::aggregate::model::CoverageResults;
use tracer::output::{ProcessRecord, RunInfo};

/// tests/workloads/prefork.py running, its stdout ("master PID", "worker PID", "ready")
/// collected line by line; killed with its workers when dropped.
struct Server(Printing);

impl Server {
    /// Start the server under `python`, named by `marker`; `wrapped` starts it from a
    /// `bash -c` that stays its parent (a shell-form container command), whose own command
    /// line contains the marker too.
    fn start(python: &Python, marker: &str, wrapped: bool) -> Server {
        let script = workload("prefork.py");
        let mut command = if wrapped {
            let mut c = Command::new("bash");
            c.arg("-c")
                .arg(format!("\"$0\" \"$1\" {marker}; echo server exited $? >&2",))
                .arg(&python.path)
                .arg(&script);
            c
        } else {
            let mut c = Command::new(&python.path);
            c.arg(&script).arg(marker);
            c
        };
        let server = Server(Printing::spawn(
            command.env("PREFORK_WORKERS", "2"),
            "server",
        ));
        server.wait_for(|lines| lines.iter().any(|l| l == "ready"));
        server
    }

    fn wait_for(&self, done: impl Fn(&[String]) -> bool) {
        self.0.wait_for(done)
    }

    fn pids(&self, kind: &str) -> Vec<i32> {
        self.0
            .lines()
            .iter()
            .filter_map(|l| l.strip_prefix(kind)?.trim().parse().ok())
            .collect()
    }

    fn master(&self) -> i32 {
        self.pids("master ")[0]
    }

    fn workers(&self) -> Vec<i32> {
        self.pids("worker ")
    }

    /// Wait (bounded) until the server has started `n` workers in all.
    fn wait_for_workers(&self, n: usize) -> Vec<i32> {
        self.wait_for(|lines| lines.iter().filter(|l| l.starts_with("worker ")).count() >= n);
        self.workers()
    }

    /// SIGTERM the master, and wait (bounded) for the server to exit.
    fn stop(&mut self) {
        unsafe { libc::kill(self.master(), libc::SIGTERM) };
        for _ in 0..600 {
            if tracer::target::process::is_alive(self.master()) {
                std::thread::sleep(Duration::from_millis(50));
            } else {
                let _ = self.0.child.wait();
                return;
            }
        }
        panic!("the server did not stop on SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for pid in self.workers().into_iter().chain(self.pids("master ")) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
    }
}

/// Wait (bounded) until the tracer traces `pid` as a descendant, then for the end of a flush
/// begun after that; returns the index of its line.
fn wait_traced_and_flushed(tracer: &Background, pid: i32, after: usize) -> usize {
    let attached = tracer.wait_for_line(&format!("--subprocesses: pid {pid} "), after);
    // A flush already under way may have been taken before the attach: wait for two.
    let first = tracer.wait_for_line("flush written", attached);
    tracer.wait_for_line("flush written", first + 1)
}

/// A flushed or final results file, and its run information.
fn load_flush(path: &Path) -> (CoverageResults, RunInfo) {
    let (results, info) = tracer::output::load_results(path)
        .unwrap_or_else(|e| panic!("{}: not whole results: {e:#}", path.display()));
    (results, info.expect("JSON keeps its run information"))
}

/// The stats of merged results add up over the processes they list: samples, errors and
/// process-seconds are the processes' sums, and the family's wall time is no more than its
/// process-seconds.
fn assert_stats_add_up(info: &RunInfo, context: &str) {
    let records = &info.processes;
    assert!(!records.is_empty(), "{context}: no process listed");
    let samples: u64 = records.iter().map(|r| r.samples).sum();
    let errors: u64 = records.iter().map(|r| r.errors).sum();
    let seconds: f64 = records.iter().map(|r| r.duration_s).sum();
    let s = &info.stats;
    assert_eq!(s.samples, samples, "{context}: {records:#?}");
    assert_eq!(s.errors, errors, "{context}: {records:#?}");
    assert!(
        (s.process_seconds - seconds).abs() < 1e-6,
        "{context}: process-seconds {} != {seconds}",
        s.process_seconds
    );
    assert!(
        s.duration_s <= s.process_seconds + 1e-6 || records.len() == 1,
        "{context}: wall time {} over process-seconds {}",
        s.duration_s,
        s.process_seconds
    );
    let distinct: BTreeSet<(u32, i32)> = records.iter().map(|r| (r.generation, r.pid)).collect();
    assert_eq!(
        distinct.len(),
        records.len(),
        "{context}: a process listed twice"
    );
}

fn listed(records: &[ProcessRecord], pid: i32) -> &ProcessRecord {
    records
        .iter()
        .find(|r| r.pid == pid)
        .unwrap_or_else(|| panic!("pid {pid} not listed: {records:#?}"))
}

fn has_function(results: &CoverageResults, name: &str) -> bool {
    results.calledfuncs.iter().any(|f| f.funcname == name)
}

/// Every line's hits in `earlier` are at most its hits in `later`: `later` holds `earlier`.
fn assert_holds(later: &CoverageResults, earlier: &CoverageResults, context: &str) {
    for (key, hits) in &earlier.counts {
        let now = later.counts.get(key).map_or(0, |h| h.hits);
        assert!(
            now >= hits.hits,
            "{context}: {key:?} {} then {now}",
            hits.hits
        );
    }
    for f in &earlier.calledfuncs {
        assert!(later.calledfuncs.contains(f), "{context}: {f:?} lost");
    }
}

#[test]
fn a_flush_holds_every_process_so_far_and_survives_kill_9() {
    let python = newest_python();
    let dir = scratch("sidecar-family-kill9");
    let server = Server::start(
        &python,
        &format!("family-kill9-{}", std::process::id()),
        false,
    );
    let master = server.master().to_string();
    let tracer = Background::start(
        &[
            "attach",
            "--pid",
            &master,
            "--subprocesses",
            "--flush-every",
            "0.5",
            "--format",
            "json",
            "-o",
            "r.json",
        ],
        &dir,
        &[],
    );
    let workers = server.workers();
    let mut seen = 0;
    for &worker in &workers {
        seen = seen.max(wait_traced_and_flushed(&tracer, worker, 0));
    }
    tracer.signal(libc::SIGKILL);
    let mut tracer = tracer;
    let status = tracer.wait();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "{}",
        tracer.text()
    );
    let (results, info) = load_flush(&dir.join("r.json"));
    assert_stats_add_up(&info, "the flush left by kill -9");
    assert_eq!(info.processes.len(), 3, "{:#?}", info.processes);
    for &worker in &workers {
        let record = listed(&info.processes, worker);
        assert!(record.samples > 0, "{record:?}");
        assert_eq!(record.ended, "running");
    }
    assert!(
        has_function(&results, "handle_request"),
        "the workers' lines: {:?}",
        results.calledfuncs
    );
    assert_eq!(
        info.target.pid,
        server.master(),
        "described as the master's"
    );
    // The list beside it, under a name no coverage.py pattern matches.
    assert!(!dir.join("r.json.processes.json").exists());
    let beside: Vec<ProcessRecord> =
        serde_json::from_slice(&std::fs::read(dir.join("tracer-processes-r.json")).unwrap())
            .unwrap();
    let pids = |r: &[ProcessRecord]| r.iter().map(|r| r.pid).collect::<BTreeSet<_>>();
    assert_eq!(pids(&beside), pids(&info.processes));
    // `merge results/*.json` meets the list: left out, said so.
    let out = run_tracer(
        &[
            "merge",
            "r.json",
            "tracer-processes-r.json",
            "-o",
            "all.json",
        ],
        &dir,
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", printed(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("tracer-processes-r.json left out"),
        "{}",
        printed(&out)
    );
    let (_, merged) = load_flush(&dir.join("all.json"));
    assert_eq!(merged.processes, info.processes);
    let _ = seen;
}

#[test]
fn follow_flushes_keep_every_generation() {
    let python = newest_python();
    let dir = scratch("sidecar-family-follow");
    let marker = format!("family-follow-{}", std::process::id());
    let mut first = Server::start(&python, &marker, false);
    let tracer = Background::start(
        &[
            "attach",
            "--name",
            &marker,
            "--follow",
            "--subprocesses",
            "--flush-every",
            "0.5",
            "--format",
            "json",
            "-o",
            "r.json",
        ],
        &dir,
        &[],
    );
    let mut seen = 0;
    for worker in first.workers() {
        seen = seen.max(wait_traced_and_flushed(&tracer, worker, 0));
    }
    first.stop();
    let waiting = tracer.wait_for_line("--follow: waiting for the next process", seen);
    let second = Server::start(&python, &marker, false);
    let following = tracer.wait_for_line(&format!("following pid {}", second.master()), waiting);
    for worker in second.workers() {
        wait_traced_and_flushed(&tracer, worker, following);
    }
    tracer.signal(libc::SIGKILL);
    let mut tracer = tracer;
    tracer.wait();
    let (results, info) = load_flush(&dir.join("r.json"));
    assert_stats_add_up(&info, "the flush left by kill -9");
    let generation = |g: u32| {
        info.processes
            .iter()
            .filter(|r| r.generation == g)
            .map(|r| r.pid)
            .collect::<BTreeSet<_>>()
    };
    let all = |s: &Server| {
        s.workers()
            .into_iter()
            .chain([s.master()])
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(generation(1), all(&first), "{:#?}", info.processes);
    assert_eq!(generation(2), all(&second), "{:#?}", info.processes);
    for pid in all(&first) {
        let record = listed(&info.processes, pid);
        assert!(
            record.samples > 0 && record.ended == "target_exited",
            "{record:?}"
        );
    }
    assert!(has_function(&results, "handle_request"));
    assert_eq!(
        info.target.pid,
        first.master(),
        "described as the first root's"
    );
}

#[test]
fn a_prefork_server_by_name_through_worker_deaths_and_a_graceful_stop() {
    let python = newest_python();
    let dir = scratch("sidecar-family-prefork");
    let script = workload("prefork.py");

    // Ground truth: the same server under the stdlib's trace, each forked worker writing its
    // own counts (tests/support/trace_truth.py), its workers ending after a number of
    // requests and replaced twice, then the master's SIGTERM to itself.
    let out = Command::new(&python.path)
        .arg(support("trace_truth.py"))
        .arg("truth.pickle")
        .arg(&script)
        .arg("truth")
        .env("PREFORK_WORKERS", "2")
        .env("PREFORK_REQUESTS", "200")
        .env("PREFORK_STOP_AFTER_RESPAWNS", "2")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", printed(&out));
    let mut truth = CoverageResults::default();
    let mut truth_files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("truth.pickle")
        {
            truth.update(&load(&path).unwrap());
            truth_files += 1;
        }
    }
    assert_eq!(truth_files, 5, "the master's and 4 workers' truths");

    // The server from a shell wrapper whose command line names it too. The tracer starts
    // once the master has imported what it needs: trace_truth.py imported some of that
    // (enum, for one) before trace began, so trace could not see it run.
    let marker = format!("family-prefork-{}", std::process::id());
    let mut server = Server::start(&python, &marker, true);
    let master = server.master();
    let mut tracer = Background::start(
        &[
            "attach",
            "--name",
            &marker,
            "--wait",
            "60",
            "--subprocesses",
            "--flush-every",
            "1",
            "--format",
            "json",
            "-o",
            "r.json",
        ],
        &dir,
        &[],
    );
    tracer.wait_for_line(&format!("tracing pid {master} "), 0);
    let path = dir.join("r.json");
    let mut flushes: Vec<CoverageResults> = Vec::new();
    let mut read_flush = |context: &str| {
        let (results, info) = load_flush(&path);
        assert_stats_add_up(&info, context);
        assert_eq!(info.target.pid, master, "{context}");
        if let Some(earlier) = flushes.last() {
            assert_holds(&results, earlier, context);
        }
        flushes.push(results);
        info
    };
    // Two workers, then each killed -9 in turn and replaced: every flush read while the
    // server runs.
    let mut seen = 0;
    for round in 0..3 {
        if round > 0 {
            let victim = server.workers()[round - 1];
            unsafe { libc::kill(victim, libc::SIGKILL) };
        }
        // Those killed are the first `round`; the two after them are alive.
        let workers = server.wait_for_workers(2 + round);
        let (killed, alive) = workers.split_at(round);
        for &worker in alive {
            seen = seen.max(wait_traced_and_flushed(&tracer, worker, 0));
        }
        let info = read_flush(&format!("round {round}"));
        for &worker in alive {
            let record = listed(&info.processes, worker);
            assert!(record.samples > 0, "{record:?}");
        }
        for &worker in killed {
            let record = listed(&info.processes, worker);
            assert_eq!(record.ended, "target_exited", "{record:?}");
            assert!(record.samples > 0, "{record:?}");
        }
    }
    server.stop();
    let status = tracer.wait();
    assert!(status.success(), "{status:?}\n{}", tracer.text());
    let text = tracer.text();
    let wrapper = format!("pid {} (bash -c", server.0.child.id());
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("passing over") && l.contains(&wrapper))
            .count(),
        1,
        "the wrapper passed over, said once:\n{text}"
    );
    let (results, info) = load_flush(&path);
    assert_stats_add_up(&info, "the final results");
    assert_holds(&results, flushes.last().unwrap(), "the final results");
    let expected: BTreeSet<i32> = server.workers().into_iter().chain([master]).collect();
    let listed_pids: BTreeSet<i32> = info.processes.iter().map(|r| r.pid).collect();
    assert_eq!(listed_pids, expected, "{:#?}", info.processes);
    assert!(
        info.processes.iter().all(|r| r.ended == "target_exited"),
        "{:#?}",
        info.processes
    );
    assert!(has_function(&results, "handle_request"));

    // Precision: every line, function and edge reported ran under trace too.
    let mut problems = Vec::new();
    let exempt = bootstrap_exemptions(&python);
    check_precision(&results, &truth, &exempt, &mut problems);
    let script_lines = results.lines_of(script.to_str().unwrap()).count();
    println!(
        "{}: prefork: {} lines ({script_lines} of the server), {} functions, {} edges in {} \
         flushes and the final results, all of them ran under trace",
        python.label(),
        results.counts.len(),
        results.calledfuncs.len(),
        results.callers.len(),
        flushes.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let _ = seen;
}

#[test]
fn snapshot_reads_every_traced_process_still_alive() {
    let Some(python) = pythons_under_test()
        .into_iter()
        .rev()
        .find(|p| p.version >= PyVersion::new(3, 12))
    else {
        println!("SKIP: no Python 3.12+ found: attach --snapshot --subprocesses not tested");
        return;
    };
    let dir = scratch("sidecar-family-snapshot");
    let server = Server::start(
        &python,
        &format!("family-snapshot-{}", std::process::id()),
        false,
    );
    let master = server.master().to_string();
    let out = run_tracer(
        &[
            "attach",
            "--pid",
            &master,
            "--subprocesses",
            "--snapshot",
            "--duration",
            "1.5",
            "--format",
            "json",
            "-o",
            "r.json",
        ],
        &dir,
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", printed(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for pid in server.workers().into_iter().chain([server.master()]) {
        assert!(
            stderr.contains(&format!("snapshot of pid {pid} added")),
            "pid {pid}:\n{stderr}"
        );
    }
    let (results, info) = load_flush(&dir.join("r.json"));
    assert_stats_add_up(&info, "the results");
    assert!(
        info.processes.iter().all(|r| r.ended == "duration"),
        "{:#?}",
        info.processes
    );
    assert!(has_function(&results, "handle_request"));
}

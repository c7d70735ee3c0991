//! `attach --snapshot --subprocesses`: every worker gets its final snapshot as it ends (its
//! interpreter finalizing, or its `os._exit`), so code that only a worker ran, once and quickly,
//! is in the results, proven; every line reported ran under the stdlib's trace (run apart on
//! the same code); a worker killed by SIGKILL leaves no wrong line; a worker that cannot be
//! watched is said and still sampled; and a tracer killed by SIGKILL leaves every worker to
//! exit as untraced (tests/workloads/family_snapshot.py).

use super::{Background, Printing};
use crate::common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SCRIPT: &str = "family_snapshot.py";

/// The workload's master and workers, its stdout collected line by line; killed when dropped.
struct Family(Printing);

impl Family {
    fn start(python: &Python, dir: &Path, kinds: &[&str]) -> Family {
        let family = Family(Printing::spawn(
            Command::new(&python.path)
                .arg(workload(SCRIPT))
                .arg(dir)
                .args(kinds),
            "family",
        ));
        family
            .0
            .wait_for(|lines| lines.iter().any(|l| l == "ready"));
        family
    }

    fn master(&self) -> i32 {
        self.0.child.id() as i32
    }

    /// The workers, (pid, kind), in the order forked.
    fn workers(&self) -> Vec<(i32, String)> {
        self.0
            .lines()
            .iter()
            .filter_map(|l| {
                let mut words = l.strip_prefix("worker ")?.split_whitespace();
                Some((words.next()?.parse().ok()?, words.next()?.to_owned()))
            })
            .collect()
    }

    /// Wait (bounded) for every worker's end and the master's exit; the workers' ends as the
    /// master printed them ("exited PID CODE", "signaled PID SIGNAL").
    fn wait_for_end(&mut self) -> Vec<String> {
        let workers = self.workers().len();
        self.0.wait_for(|lines| {
            lines
                .iter()
                .filter(|l| l.starts_with("exited ") || l.starts_with("signaled "))
                .count()
                >= workers
        });
        let status = self.0.child.wait().unwrap();
        assert!(status.success(), "the master failed: {status}");
        self.0
            .lines()
            .iter()
            .filter(|l| l.starts_with("exited ") || l.starts_with("signaled "))
            .cloned()
            .collect()
    }
}

impl Drop for Family {
    fn drop(&mut self) {
        for (pid, _) in self.workers() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
    }
}

/// Wait (bounded) for a file.
fn wait_for_file(path: &Path) {
    for _ in 0..1200 {
        if path.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} never appeared", path.display());
}

/// The lines of function `name`'s body in the workload (those after its `def`, to the first
/// blank line), comments left out.
fn body_lines(source: &str, name: &str) -> Vec<u32> {
    let def = format!("def {name}(");
    let lines: Vec<&str> = source.lines().collect();
    let start = lines.iter().position(|l| l.starts_with(&def)).unwrap();
    (start + 1..lines.len())
        .take_while(|&i| !lines[i].trim().is_empty())
        .filter(|&i| !lines[i].trim().starts_with('#'))
        .map(|i| i as u32 + 1)
        .collect()
}

/// The truth: the workload under the stdlib's trace, every process's counts (the master's and
/// each forked worker's pickle), its lines of the workload, plus the lines that run only
/// outside trace (marked "real run only").
fn truth_lines(python: &Python, dir: &Path, kinds: &[&str]) -> Result<BTreeSet<u32>, String> {
    let truth_dir = dir.join("truth");
    std::fs::create_dir_all(&truth_dir).unwrap();
    std::fs::write(truth_dir.join("go"), "").unwrap();
    let out = Command::new(&python.path)
        .arg(support("trace_truth.py"))
        .arg(truth_dir.join("truth.pickle"))
        .arg(workload(SCRIPT))
        .arg(&truth_dir)
        .args(kinds)
        .env("FAMILY_TRUTH", "1")
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(format!("truth run: {}", printed(&out)));
    }
    let script = workload(SCRIPT).to_str().unwrap().to_owned();
    let mut lines = BTreeSet::new();
    let mut pickles = 0;
    for entry in std::fs::read_dir(&truth_dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().contains("truth.pickle") {
            continue;
        }
        pickles += 1;
        let (truth, _) = tracer::output::load_results(&path).map_err(|e| format!("{e:#}"))?;
        lines.extend(
            truth
                .counts
                .keys()
                .filter(|(file, _)| *file == script)
                .map(|(_, line)| *line),
        );
    }
    if pickles != kinds.len() + 1 {
        return Err(format!(
            "{pickles} truth pickles for {} processes",
            kinds.len() + 1
        ));
    }
    let source = std::fs::read_to_string(&script).unwrap();
    lines.extend(
        source
            .lines()
            .enumerate()
            .filter(|(_, l)| l.ends_with("# real run only"))
            .map(|(i, _)| i as u32 + 1),
    );
    Ok(lines)
}

fn every_worker_snapshotted(python: &Python) -> Result<(), String> {
    if python.version < tracer::snapshot::FIRST_VERSION {
        println!("SKIP {}: no snapshots before 3.11", python.label());
        return Ok(());
    }
    let kinds = ["normal", "os_exit", "killed", "traced"];
    let dir = scratch(&format!("family-snapshot-{}", python.label()));
    let truth = truth_lines(python, &dir, &kinds)?;
    let mut family = Family::start(python, &dir, &kinds);
    let master = family.master();
    let workers = family.workers();
    let pid_of = |kind: &str| workers.iter().find(|(_, k)| k == kind).unwrap().0;
    let tracer = Background::start(
        &[
            "attach",
            "--pid",
            &master.to_string(),
            "--subprocesses",
            "--snapshot",
            "--format",
            "json",
            "-o",
            "r.json",
        ],
        &dir,
        &[("TRACER_DEBUG_WATCH", "1")],
    );
    let traced = pid_of("traced");
    if python.free_threaded {
        // No watch is armed (a free-threaded build's bytecode keeps no record to snapshot):
        // every process sampled before the workers run their code.
        for pid in [
            master,
            pid_of("normal"),
            pid_of("os_exit"),
            pid_of("killed"),
            traced,
        ] {
            tracer.wait_for_line(&format!("tracing pid {pid} "), 0);
        }
    } else {
        // Every process watched (the one already traced by its parent said so) before the
        // workers run their code.
        for pid in [
            master,
            pid_of("normal"),
            pid_of("os_exit"),
            pid_of("killed"),
        ] {
            tracer.wait_for_line(&format!(" in pid {pid},"), 0);
        }
        tracer.wait_for_line(&format!("pid {traced} cannot be watched"), 0);
        tracer.wait_for_line(&format!("--subprocesses: pid {traced} "), 0);
    }
    std::fs::write(dir.join("go"), "").unwrap();
    wait_for_file(&dir.join("killable"));
    unsafe { libc::kill(pid_of("killed"), libc::SIGKILL) };
    let ends = family.wait_for_end();
    let mut tracer = tracer;
    let status = tracer.wait();
    let log = tracer.text();
    if !status.success() || log.contains("panicked") {
        return Err(format!("tracer failed ({status}):\n{log}"));
    }
    let expected_ends = [
        format!("exited {} 0", pid_of("normal")),
        format!("exited {} 0", pid_of("os_exit")),
        format!("signaled {} 9", pid_of("killed")),
        format!("exited {} 0", traced),
    ];
    if expected_ends.iter().any(|e| !ends.contains(e)) {
        return Err(format!(
            "the workers ended as {ends:?}, not {expected_ends:?}"
        ));
    }
    let (results, info) = tracer::output::load_results(&dir.join("r.json")).unwrap();
    let info = info.unwrap();
    let script = workload(SCRIPT).to_str().unwrap().to_owned();
    let reported: BTreeSet<u32> = results
        .counts
        .keys()
        .filter(|(file, _)| *file == script)
        .map(|(_, line)| *line)
        .collect();
    let wrong: Vec<_> = reported.difference(&truth).collect();
    if !wrong.is_empty() {
        return Err(format!("lines that never ran: {wrong:?}\n{log}"));
    }
    let snapshot_of = |pid: i32| {
        info.processes
            .iter()
            .find(|r| r.pid == pid)
            .map(|r| r.snapshot.clone())
            .unwrap_or_default()
    };
    let traced_samples = info.processes.iter().find(|r| r.pid == traced).unwrap();
    if traced_samples.samples == 0 {
        return Err("the worker that could not be watched was not sampled".into());
    }
    if python.free_threaded {
        let all = [
            master,
            pid_of("normal"),
            pid_of("os_exit"),
            pid_of("killed"),
            traced,
        ];
        if let Some(pid) = all
            .into_iter()
            .find(|&pid| !snapshot_of(pid).starts_with("none: a free-threaded Python 3.13"))
        {
            return Err(format!(
                "pid {pid}'s snapshot is {:?}, not a free-threaded build's none",
                snapshot_of(pid)
            ));
        }
        println!(
            "{}: {} workload lines reported (sampled), all ran; no snapshot on a \
             free-threaded build, each process says so",
            python.label(),
            reported.len()
        );
        return Ok(());
    }
    let source = std::fs::read_to_string(&script).unwrap();
    let proven: BTreeSet<u32> = info
        .proven
        .iter()
        .filter(|(file, _)| *file == script)
        .map(|(_, line)| *line)
        .collect();
    for name in ["normal_work", "os_exit_work", "master_after"] {
        // 3.11 quickens only warm code: of a function run once, only that it was called.
        if python.version == PyVersion::new(3, 11) {
            if !results.calledfuncs.iter().any(|k| k.funcname == name) {
                return Err(format!(
                    "{name} not called: {:?}\n{log}",
                    results.calledfuncs
                ));
            }
            continue;
        }
        let body = body_lines(&source, name);
        if !body.iter().all(|line| proven.contains(line)) {
            return Err(format!(
                "{name}'s lines {body:?} not all proven: {proven:?}\n{log}"
            ));
        }
    }
    let expected = [
        (master, "finalizing"),
        (pid_of("normal"), "finalizing"),
        (pid_of("os_exit"), "exit"),
    ];
    for (pid, when) in expected {
        if snapshot_of(pid) != when {
            return Err(format!(
                "pid {pid}'s snapshot is {:?}, not {when:?}: {:#?}",
                snapshot_of(pid),
                info.processes
            ));
        }
    }
    if !snapshot_of(traced).starts_with("none: not watched") {
        return Err(format!("the traced worker: {:?}", snapshot_of(traced)));
    }
    println!(
        "{}: {} workload lines reported, all ran ({} proven); the killed worker's snapshot: {:?}",
        python.label(),
        reported.len(),
        proven.len(),
        snapshot_of(pid_of("killed"))
    );
    Ok(())
}

per_python!(
    snapshot_subprocesses_proves_what_each_worker_ran_at_its_end,
    every_worker_snapshotted
);

/// The tracer killed by SIGKILL while every process of the family is watched: the keeper
/// clears each watch, and the workers then finalize (or `os._exit`) and exit 0, as untraced.
/// A watch left armed would kill a finalizing worker with SIGTRAP (status 133).
fn workers_outlive_a_killed_tracer(python: &Python) -> Result<(), String> {
    if python.version < tracer::snapshot::FIRST_VERSION || python.free_threaded {
        println!(
            "SKIP {}: --snapshot arms no watch before 3.11 nor on a free-threaded build",
            python.label()
        );
        return Ok(());
    }
    let kinds = ["normal", "normal", "os_exit"];
    let dir = scratch(&format!("family-snapshot-killed-{}", python.label()));
    let _ = std::fs::remove_file(dir.join("go"));
    let mut family = Family::start(python, &dir, &kinds);
    let out = Command::new(&python.path)
        .arg(support("kill_tracer.py"))
        .args(["--count", &(kinds.len() + 1).to_string(), "watch: armed"])
        .arg(tracer_bin())
        .args(["attach", "--pid", &family.master().to_string()])
        .args([
            "--subprocesses",
            "--snapshot",
            "--format",
            "json",
            "-o",
            "k.json",
        ])
        .env("TRACER_DEBUG_WATCH", "1")
        .current_dir(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ended: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if !ended
        .iter()
        .any(|e| e["killed"] == true && e["signal"] == 9)
    {
        return Err(format!("the tracer was not killed:\n{}", printed(&out)));
    }
    // The keeper, reaped by the subreaper: it cleared every watch.
    if ended.iter().any(|e| e["killed"] == false && e["code"] != 0) {
        return Err(format!("the keeper failed:\n{}", printed(&out)));
    }
    std::fs::write(dir.join("go"), "").unwrap();
    let ends = family.wait_for_end();
    let bad: Vec<_> = ends.iter().filter(|e| !e.ends_with(" 0")).collect();
    if !bad.is_empty() || ends.iter().any(|e| e.starts_with("signaled")) {
        return Err(format!("workers did not exit as untraced: {ends:?}"));
    }
    Ok(())
}

per_python!(
    snapshot_subprocesses_workers_outlive_a_tracer_killed_by_sigkill,
    workers_outlive_a_killed_tracer
);

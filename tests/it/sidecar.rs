//! Running beside a service: periodic atomic snapshots (`--flush-every`), surviving a kill -9
//! of the tracer, failed writes retried, the target's SIGKILL, configuration from the
//! environment.

mod family;
mod family_snapshot;

use crate::common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

/// A workload child whose stdout is collected line by line (the pids and events it prints),
/// for the family tests; the owner kills what it started when dropped.
struct Printing {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    name: &'static str,
}

impl Printing {
    /// Spawn `command` with its stdout piped and collected; `name` labels a timeout's panic.
    fn spawn(command: &mut Command, name: &'static str) -> Printing {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = lines.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                collected.lock().unwrap().push(line);
            }
        });
        Printing { child, lines, name }
    }

    /// Wait (bounded: 60 s) until `done` holds of the lines printed so far.
    fn wait_for(&self, done: impl Fn(&[String]) -> bool) {
        for _ in 0..1200 {
            if done(&self.lines.lock().unwrap()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{}: {:?}", self.name, self.lines.lock().unwrap());
    }

    /// The lines printed so far.
    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// A tracer running in the background, its stderr collected line by line.
struct Background {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Background {
    fn start(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Background {
        let mut child = Command::new(tracer_bin())
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Background { child, stderr }
    }

    /// `tracer attach --pid PID ARGS… --format json -o r.json` in `dir`, in the background.
    fn attach_json(pid: &str, args: &[&str], dir: &Path) -> Background {
        let mut all = vec!["attach", "--pid", pid];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--format", "json", "-o", "r.json"]);
        Background::start(&all, dir, &[])
    }

    /// Wait (bounded) until a line after the first `after` lines contains `needle`; returns
    /// the index of that line.
    fn wait_for_line(&self, needle: &str, after: usize) -> usize {
        for _ in 0..1200 {
            if let Some(i) = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .skip(after)
                .position(|l| l.contains(needle))
            {
                return after + i;
            }
            if !tracer::target::process::is_alive(self.child.id() as i32) {
                std::thread::sleep(Duration::from_millis(100));
                panic!("tracer exited before printing {needle:?}:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no line containing {needle:?}:\n{}", self.text());
    }

    fn text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    fn signal(&self, signal: i32) {
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Wait (bounded) for the exit status.
    fn wait(&mut self) -> std::process::ExitStatus {
        for _ in 0..600 {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the stderr thread read the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("tracer did not exit:\n{}", self.text());
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn kill_9_leaves_the_last_complete_snapshot() {
    let python = newest_python();
    let dir = scratch("sidecar-kill9");
    let target = Workload::start(&python, &workload("mix.py"), 60.0);
    let pid = target.pid().to_string();
    let tracer = Background::attach_json(&pid, &["--flush-every", "0.05"], &dir);
    let path = dir.join("r.json");
    let mut seen = tracer.wait_for_line("flush written", 0);
    // Read the file while snapshots keep replacing it: every read is a whole results file.
    let mut samples_seen = Vec::new();
    for round in 0..20 {
        let (results, info) = tracer::output::load_results(&path)
            .unwrap_or_else(|e| panic!("round {round}: a torn snapshot: {e:#}"));
        assert!(!results.calledfuncs.is_empty(), "round {round}");
        samples_seen.push(info.unwrap().stats.samples);
        std::thread::sleep(Duration::from_millis(7 + 3 * round));
    }
    seen = tracer.wait_for_line("flush written", seen + 1);
    let _ = seen;
    tracer.signal(libc::SIGKILL);
    let mut tracer = tracer;
    let status = tracer.wait();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    let (results, info) = tracer::output::load_results(&path).expect("the last snapshot loads");
    let stats = info.unwrap().stats;
    assert!(stats.samples > 0 && !results.counts.is_empty(), "{stats:?}");
    assert!(
        samples_seen.windows(2).all(|w| w[0] <= w[1]),
        "snapshots only grow: {samples_seen:?}"
    );
    assert!(stats.samples >= *samples_seen.last().unwrap());
    assert!(
        tracer::target::process::is_alive(target.pid()),
        "target untouched"
    );
}

#[test]
fn a_failed_snapshot_is_reported_and_retried_and_sigterm_flushes() {
    let python = newest_python();
    let dir = scratch("sidecar-retry");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let target = Workload::start(&python, &workload("mix.py"), 60.0);
    let pid = target.pid().to_string();
    let mut tracer = Background::start(
        &[
            "attach",
            "--pid",
            &pid,
            "--flush-every",
            "0.1",
            "-o",
            "out/r.pickle",
        ],
        &dir,
        &[],
    );
    let first = tracer.wait_for_line("flush written", 0);
    // Make the output directory unwritable even for root: put a plain file in its place.
    let moved = dir.join("out.moved");
    std::fs::rename(&out, &moved).unwrap();
    std::fs::write(&out, b"not a directory").unwrap();
    let failed = tracer.wait_for_line("flush not written", first + 1);
    assert!(
        tracer.stderr.lock().unwrap()[failed].contains("next flush retries"),
        "{}",
        tracer.text()
    );
    std::fs::remove_file(&out).unwrap();
    std::fs::rename(&moved, &out).unwrap();
    tracer.wait_for_line("flush written", failed + 1);
    tracer.signal(libc::SIGTERM);
    let status = tracer.wait();
    assert!(status.success(), "{status:?}\n{}", tracer.text());
    assert!(
        tracer.text().contains("stopped by signal"),
        "{}",
        tracer.text()
    );
    let (results, _) = tracer::output::load_results(&out.join("r.pickle")).unwrap();
    assert!(!results.counts.is_empty());
    drop(target);
}

#[test]
fn the_target_killed_flushes_and_exits_0() {
    let python = newest_python();
    let dir = scratch("sidecar-target-killed");
    let mut target = Workload::start(&python, &workload("mix.py"), 60.0);
    let pid = target.pid().to_string();
    let mut tracer = Background::attach_json(&pid, &["--flush-every", "0.2"], &dir);
    tracer.wait_for_line("flush written", 0);
    target.child.kill().unwrap();
    let _ = target.child.wait();
    let status = tracer.wait();
    assert!(status.success(), "{status:?}\n{}", tracer.text());
    assert!(tracer.text().contains("target exited"), "{}", tracer.text());
    let (results, info) = tracer::output::load_results(&dir.join("r.json")).unwrap();
    assert!(!results.counts.is_empty());
    assert!(info.unwrap().stats.samples > 0);
}

/// Start `python mix.py MARKER` for `seconds` (the marker names it on its command line) and
/// wait until it prints "ready".
fn start_marked(python: &Python, marker: &str, seconds: f64) -> Workload {
    let mut child = Command::new(&python.path)
        .arg(workload("mix.py"))
        .arg(marker)
        .env("WORKLOAD_SECONDS", seconds.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    std::thread::spawn(move || for _ in lines {});
    Workload { child }
}

#[test]
fn name_waits_for_a_match_configured_from_the_environment_with_status_lines() {
    let python = newest_python();
    let dir = scratch("sidecar-name-env");
    let marker = format!("tracer-test-marker-{}", std::process::id());
    let mut tracer = Background::start(
        &["attach"],
        &dir,
        &[
            ("TRACER_NAME", marker.as_str()),
            ("TRACER_WAIT", "60"),
            ("TRACER_DURATION", "1.5"),
            ("TRACER_FORMAT", "json"),
            ("TRACER_OUTPUT", "env.json"),
            ("TRACER_STATUS_EVERY", "0.2"),
        ],
    );
    tracer.wait_for_line("waiting up to 60s", 0);
    let target = start_marked(&python, &marker, 30.0);
    let status_line = tracer.wait_for_line("tracer: status:", 0);
    assert!(
        tracer.stderr.lock().unwrap()[status_line].contains("1 process"),
        "{}",
        tracer.text()
    );
    let status = tracer.wait();
    assert!(status.success(), "{status:?}\n{}", tracer.text());
    assert!(
        tracer.text().contains("duration reached"),
        "{}",
        tracer.text()
    );
    let (results, info) = tracer::output::load_results(&dir.join("env.json")).unwrap();
    assert_eq!(info.unwrap().target.pid, target.pid());
    assert!(!results.counts.is_empty());
}

#[test]
fn follow_goes_on_into_the_next_matching_process() {
    let python = newest_python();
    let dir = scratch("sidecar-follow");
    let marker = format!("tracer-follow-marker-{}", std::process::id());
    let mut first = start_marked(&python, &marker, 3.0);
    let mut tracer = Background::start(
        &[
            "attach",
            "--name",
            &marker,
            "--follow",
            "--flush-every",
            "0.2",
            "--format",
            "json",
            "-o",
            "r.json",
        ],
        &dir,
        &[],
    );
    let waiting = tracer.wait_for_line("waiting for the next process", 0);
    first.wait(TIMEOUT);
    let mut second = start_marked(&python, &marker, 2.0);
    let following = tracer.wait_for_line(&format!("following pid {}", second.pid()), waiting);
    tracer.wait_for_line("waiting for the next process", following);
    second.wait(TIMEOUT);
    tracer.signal(libc::SIGTERM);
    let status = tracer.wait();
    assert!(status.success(), "{status:?}\n{}", tracer.text());
    let merged = format!("results of pids {}, {} merged", first.pid(), second.pid());
    assert!(tracer.text().contains(&merged), "{}", tracer.text());
    let (results, info) = tracer::output::load_results(&dir.join("r.json")).unwrap();
    assert!(!results.counts.is_empty());
    assert!(info.unwrap().stats.samples > 0);
}

#[test]
fn dump_prints_every_thread_once_as_text_and_json() {
    let python = newest_python();
    let dir = scratch("sidecar-dump");
    let target = Workload::start(&python, &workload("mix.py"), 30.0);
    let pid = target.pid().to_string();
    let out = run_tracer(&["dump", "--pid", &pid], &dir, TIMEOUT);
    assert!(out.status.success(), "{}", printed(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(&format!("Process {pid}: ")), "{text}");
    assert!(text.contains("Thread 0x"), "{text}");
    assert!(text.contains("mix.py:"), "{text}");
    assert!(text.contains("\"MainThread\""), "{text}");

    // dump reads once without pausing (py-spy's reader): a stack caught while it changes can
    // come back short, so read again (a few times at most) until main's frame is there.
    let mut dump = serde_json::Value::Null;
    for _ in 0..5 {
        let out = run_tracer(
            &["dump", "--pid", &pid, "--locals", "--json"],
            &dir,
            TIMEOUT,
        );
        assert!(out.status.success(), "{}", printed(&out));
        dump = serde_json::from_slice(&out.stdout).unwrap();
        let has_main = dump["threads"].as_array().is_some_and(|threads| {
            threads
                .iter()
                .flat_map(|t| t["frames"].as_array().into_iter().flatten())
                .any(|f| f["function"] == "main")
        });
        if has_main {
            break;
        }
    }
    assert_eq!(dump["pid"], target.pid());
    let threads = dump["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2, "main thread and worker: {dump:#}");
    for thread in threads {
        assert!(
            ["running", "idle"].contains(&thread["state"].as_str().unwrap()),
            "{thread:#}"
        );
        if python.version >= PyVersion::new(3, 11) {
            assert!(thread["native_tid"].as_u64().is_some(), "{thread:#}");
        }
    }
    let frames: Vec<&serde_json::Value> = threads
        .iter()
        .flat_map(|t| t["frames"].as_array().unwrap())
        .collect();
    assert!(frames
        .iter()
        .any(|f| f["filename"].as_str().unwrap().ends_with("mix.py")));
    // `main`'s locals include `seconds`, read from the environment.
    let main = frames
        .iter()
        .find(|f| f["function"] == "main")
        .expect("main's frame");
    let locals = main["locals"].as_array().expect("locals with --locals");
    assert!(locals.iter().any(|l| l["name"] == "seconds"), "{locals:?}");
    assert!(
        tracer::target::process::is_alive(target.pid()),
        "target untouched"
    );
}

#[test]
fn subprocesses_follows_children_grandchildren_and_later_workers() {
    let python = newest_python();
    let dir = scratch("sidecar-subprocesses");
    let mut master = Command::new(&python.path)
        .arg(workload("forking.py"))
        .env("WORKLOAD_SECONDS", "6")
        .env("LATE_WORKER_DELAY", "2")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = master.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    std::thread::spawn(move || for _ in lines {});
    let master = Workload { child: master };
    let pid = master.pid().to_string();
    let mut tracer =
        Background::attach_json(&pid, &["--subprocesses", "--flush-every", "0.5"], &dir);
    let status = tracer.wait();
    assert!(status.success(), "{status:?}\n{}", tracer.text());
    let (results, _) = tracer::output::load_results(&dir.join("r.json")).unwrap();
    let functions: Vec<&str> = results
        .calledfuncs
        .iter()
        .map(|f| f.funcname.as_str())
        .collect();
    for expected in ["master_wait", "child_work", "grandchild_work", "late_work"] {
        assert!(
            functions.contains(&expected),
            "{expected} missing: {functions:?}\n{}",
            tracer.text()
        );
    }
    let records: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("tracer-processes-r.json")).unwrap())
            .unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(
        records.len(),
        5,
        "master, 3 workers, 1 grandchild: {records:#?}"
    );
    assert!(records.iter().any(|r| r["pid"] == master.pid()));
    // The grandchild's parent is a traced worker, whose parent is the master.
    let parent_of = |pid: &serde_json::Value| {
        records
            .iter()
            .find(|r| &r["pid"] == pid)
            .map(|r| r["parent"].clone())
    };
    assert!(
        records
            .iter()
            .any(|r| parent_of(&r["parent"]) == Some(serde_json::json!(master.pid()))),
        "{records:#?}"
    );
    assert!(
        records.iter().all(|r| r["samples"].as_u64() > Some(0)),
        "{records:#?}"
    );
}

#[test]
fn on_a_terminal_the_status_line_is_redrawn_in_place() {
    if Command::new("script").arg("--version").output().is_err() {
        println!("SKIP: script(1) not found; cannot give the tracer a terminal");
        return;
    }
    let python = newest_python();
    let dir = scratch("sidecar-tty");
    let target = Workload::start(&python, &workload("mix.py"), 30.0);
    let command = format!(
        "{} attach --pid {} --duration 1.2 -o r.pickle",
        tracer_bin(),
        target.pid()
    );
    // script(1) runs the tracer on a pseudo-terminal and copies what it printed.
    let out = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", printed(&out));
    assert!(
        text.contains("\r\x1b[Ktracer: status: "),
        "a line redrawn in place:\n{text:?}"
    );
    assert!(text.contains("1 process"), "{text:?}");
    assert!(dir.join("r.pickle").exists());
}

/// `--name` over a shell wrapper whose command line holds the pattern (a shell-form container
/// command): the shell is passed over, said once however long it is waited past, and the
/// Python process it becomes is traced. With only a wrapper and no --wait: a one-line error.
#[test]
fn name_passes_over_a_shell_wrapper_and_waits_for_python() {
    let python = newest_python();
    let dir = scratch("sidecar-name-wrapper");
    let marker = format!("tracer-wrapper-marker-{}", std::process::id());
    let mut wrapper = Command::new("bash")
        .arg("-c")
        .arg(format!("sleep 1; exec \"$0\" \"$1\" {marker}"))
        .arg(&python.path)
        .arg(workload("mix.py"))
        .env("WORKLOAD_SECONDS", "3")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let wrapper_pid = wrapper.id() as i32;
    let out = run_tracer(
        &[
            "attach",
            "--name",
            &marker,
            "--wait",
            "30",
            "--duration",
            "1",
            "--format",
            "json",
            "-o",
            "r.json",
        ],
        &dir,
        TIMEOUT,
    );
    let _ = wrapper.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", printed(&out));
    // (A copy of the shell forked to run `sleep` may be met and passed over as well.)
    let wrapper_said = format!("pid {wrapper_pid} (bash -c");
    let passed = stderr
        .lines()
        .filter(|l| l.contains("passing over") && l.contains(&wrapper_said))
        .count();
    assert_eq!(passed, 1, "said once:\n{stderr}");
    let (_, info) = tracer::output::load_results(&dir.join("r.json")).unwrap();
    let info = info.unwrap();
    assert_eq!(
        info.target.pid, wrapper_pid,
        "the same pid, once it is Python"
    );
    assert!(info.target.command_line.contains("mix.py"), "{info:?}");
    assert!(info.stats.samples > 0);

    let sleeper_marker = format!("tracer-only-a-wrapper-{}", std::process::id());
    let mut sleeper = Command::new("bash")
        .arg("-c")
        .arg(format!("sleep 30; : {sleeper_marker}"))
        .spawn()
        .unwrap();
    // Until bash has its command line (exec'd), nothing matches at all.
    for _ in 0..200 {
        if !tracer::target::process::find_by_command_line(&sleeper_marker).is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = run_tracer(&["attach", "--name", &sleeper_marker], &dir, TIMEOUT);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_one_line_error(
        &out,
        &[
            "no Python process's command line contains",
            &format!("pids {}", sleeper.id()),
        ],
    );
}

//! The sampler's pacing against real CPython processes: `--max-cpu` throttles and accounts for
//! every tick, the child of `tracer run` is not charged to the tracer's budget, and samples
//! handed to the aggregator in batches still reach every snapshot and the final file exactly.
//! No assertion is on time: the checks are identities between counts.

use crate::common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

/// `bench_depth.py DEPTH`: one thread spinning in pure Python at a fixed depth, killed when
/// dropped.
struct Spinner(Child);

impl Spinner {
    fn start(python: &Python, depth: u32) -> Spinner {
        let mut child = Command::new(&python.path)
            .arg(workload("bench_depth.py"))
            .arg(depth.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting bench_depth.py");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(
            lines.next().and_then(Result::ok).as_deref(),
            Some("ready"),
            "{}: bench_depth.py did not get ready",
            python.label()
        );
        std::thread::spawn(move || for _ in lines {});
        Spinner(child)
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }

    fn id(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn json_stats(path: &Path) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["stats"].clone()
}

fn u(stats: &serde_json::Value, key: &str) -> u64 {
    stats[key]
        .as_u64()
        .unwrap_or_else(|| panic!("stats.{key} missing: {stats}"))
}

/// samples + errors + missed + throttled = the ticks due, and those are the rate × the time
/// sampled (`attach --duration` counts from the command's start, so sampling gets a little
/// less).
fn assert_every_tick_accounted(stats: &serde_json::Value, rate: f64, seconds: f64) {
    let ticks = u(stats, "ticks");
    let sum = u(stats, "samples") + u(stats, "errors") + u(stats, "missed") + u(stats, "throttled");
    assert_eq!(
        sum, ticks,
        "every tick is sampled, failed, missed or throttled: {stats}"
    );
    let due = rate * seconds;
    assert!(
        ticks as f64 <= due && ticks as f64 >= 0.9 * due,
        "{ticks} ticks, {due} due in {seconds}s: {stats}"
    );
}

#[test]
fn max_cpu_throttles_and_accounts_for_every_tick() {
    let python = newest_python();
    let dir = scratch("pacing-max-cpu");
    let target = Spinner::start(&python, 20);
    // 200 kHz needs most of a core; 2 % of one cannot pay for it on any machine.
    let run = ["--rate", "200000", "--max-cpu", "2", "--duration", "2"];
    let out = attach_and_load(target.id(), &run, &dir, TIMEOUT).out;
    let stats = json_stats(&dir.join("results.json"));
    assert!(u(&stats, "throttled") > 0, "{stats}");
    assert!(u(&stats, "samples") > 0, "{stats}");
    assert_every_tick_accounted(&stats, 200_000.0, 2.0);
    assert!(
        stats["cpu_s"].as_f64().is_some_and(|cpu| cpu > 0.0),
        "the tracer's CPU time is reported: {stats}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("throttled (--max-cpu)"),
        "{}",
        printed(&out)
    );
}

#[test]
fn without_a_cap_nothing_is_throttled() {
    let python = newest_python();
    let dir = scratch("pacing-no-cap");
    let target = Spinner::start(&python, 20);
    attach_and_load(
        target.id(),
        &["--rate", "500", "--duration", "1"],
        &dir,
        TIMEOUT,
    );
    let stats = json_stats(&dir.join("results.json"));
    assert_eq!(u(&stats, "throttled"), 0, "{stats}");
    assert_every_tick_accounted(&stats, 500.0, 1.0);
}

#[test]
fn run_does_not_charge_its_command_to_the_budget() {
    let python = newest_python();
    let dir = scratch("pacing-run");
    let python_path = python.path.to_str().unwrap();
    // The command spins a whole core for 3 s, then exits (`run` waits for it). Were its CPU
    // counted (RUSAGE_CHILDREN, or a budget over the process tree), 20 % could never be met
    // and the throttle would sit at its floor of one sample a second; counting the tracer's
    // own threads alone, 20 % of a core buys hundreds of samples a second.
    let spin = "import time\nend = time.monotonic() + 3\nwhile time.monotonic() < end: pass";
    let out = run_tracer(
        &[
            "run",
            "--rate",
            "200000",
            "--max-cpu",
            "20",
            "--duration",
            "2",
            "--format",
            "json",
            "-o",
            "r.json",
            "--",
            python_path,
            "-c",
            spin,
        ],
        &dir,
        TIMEOUT,
    );
    assert!(out.status.success(), "{}", printed(&out));
    let stats = json_stats(&dir.join("r.json"));
    assert!(u(&stats, "throttled") > 0, "{}\n{stats}", printed(&out));
    assert_every_tick_accounted(&stats, 200_000.0, 2.0);
    assert!(
        u(&stats, "samples") > 100,
        "the command's CPU was charged to the tracer: {stats}"
    );
}

/// In a snapshot or the final file of a one-thread target, every sample kept counts its stack
/// once, or is a truncated stack, or left its thread out; stacks past the cap are counted too.
fn assert_samples_match_counts(path: &Path, when: &str) -> u64 {
    let (results, info) = tracer::output::load_results(path)
        .unwrap_or_else(|e| panic!("{when}: {}: {e:#}", path.display()));
    let stats = info.unwrap().stats;
    let stacks = results.stacks.expect("json keeps stacks");
    let counted: u64 = stacks.samples.values().sum::<u64>()
        + stacks.dropped
        + stats.truncated
        + stats.threads_dropped.total();
    assert_eq!(
        counted, stats.samples,
        "{when}: the counts hold exactly the samples the stats count: {stats:?}"
    );
    stats.samples
}

#[test]
fn batched_samples_reach_every_snapshot_and_the_final_file_exactly() {
    let python = newest_python();
    let dir = scratch("pacing-batches");
    let target = Spinner::start(&python, 12);
    let pid = target.pid();
    let mut tracer = Command::new(tracer_bin())
        .args([
            "attach",
            "--pid",
            &pid,
            "--rate",
            "2000",
            "--duration",
            "3",
            "--flush-every",
            "0.1",
            "--format",
            "json",
            "-o",
            "r.json",
        ])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let path = dir.join("r.json");
    let mut seen = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < TIMEOUT {
        if let Ok(Some(_)) = tracer.try_wait() {
            break;
        }
        if path.exists() {
            seen.push(assert_samples_match_counts(&path, "a snapshot"));
        }
        std::thread::sleep(Duration::from_millis(37));
    }
    let out = tracer.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", printed(&out));
    assert!(!seen.is_empty(), "no snapshot was read");
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "snapshots only grow: {seen:?}"
    );
    let samples = assert_samples_match_counts(&path, "the final file");
    assert!(samples >= *seen.last().unwrap());
    let stats = json_stats(&path);
    assert_every_tick_accounted(&stats, 2000.0, 3.0);
    // One hand-off per batch (at most 256 samples, or 100 ms, or a snapshot), not per sample.
    let batches = u(&stats, "batches");
    assert!(
        batches > 0 && batches * 10 <= samples,
        "{batches} batches for {samples} samples: {stats}"
    );
}

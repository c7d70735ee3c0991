//! `make bench`, paused part: per-sample cost of our reader against py-spy's
//! `get_stack_traces` on the same paused targets at stack depth 10 and 40.
//! Ignored in `make test`: timings belong to the benchmark, not to tests.

use crate::common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;
use tracer::reader::discover::find_target;
use tracer::reader::sample::Sample;
use tracer::reader::{DirectReader, StackReader};

const OUR_READS: u32 = 20_000;
const PYSPY_READS: u32 = 500;

/// The Python `make bench` asks for (`TRACER_BENCH_PYTHON`), else 3.12.
fn bench_python() -> Python {
    if let Ok(path) = std::env::var("TRACER_BENCH_PYTHON") {
        let path = std::path::PathBuf::from(path);
        let (version, free_threaded) = build_of(&path).expect("TRACER_BENCH_PYTHON runs");
        return Python {
            path,
            version,
            free_threaded,
        };
    }
    all_pythons()
        .into_iter()
        .find(|p| p.version == PyVersion::new(3, 12))
        .or_else(|| Some(newest_python()))
        .expect("a Python to benchmark against")
}

#[test]
#[ignore]
fn paused_per_sample_cost() {
    let python = bench_python();
    let workload_path = std::env::var("TRACER_BENCH_WORKLOAD")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| workload("bench_depth.py"));
    for depth in [10, 40] {
        let mut child = Command::new(&python.path)
            .arg(&workload_path)
            .arg(depth.to_string())
            .env("WORKLOAD_SECONDS", "60")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap().trim(), "ready");
        std::thread::spawn(move || for _ in lines {});
        let pid = child.id() as i32;

        let (target, _) = find_target(pid)
            .unwrap()
            .target
            .expect("a layout for this version");
        let mut ours = DirectReader::new(target, None);
        let config = py_spy::Config {
            blocking: py_spy::config::LockingStrategy::NonBlocking,
            ..py_spy::Config::default()
        };
        let mut spy = py_spy::PythonSpy::new(pid, &config).unwrap();
        let process = remoteprocess::Process::new(pid).unwrap();

        let paused = process.lock().unwrap();
        let (mut sample, mut codes) = (Sample::default(), Vec::new());
        ours.read(&mut sample, &mut codes).unwrap(); // warm the code cache, as in steady state
        let frames = sample.frames.len();
        let calls_before = ours.calls();
        let start = Instant::now();
        for _ in 0..OUR_READS {
            ours.read(&mut sample, &mut codes).unwrap();
        }
        let ours_us = start.elapsed().as_secs_f64() * 1e6 / OUR_READS as f64;
        let calls = (ours.calls() - calls_before) as f64 / OUR_READS as f64;
        let start = Instant::now();
        for _ in 0..PYSPY_READS {
            spy.get_stack_traces().unwrap();
        }
        let pyspy_us = start.elapsed().as_secs_f64() * 1e6 / PYSPY_READS as f64;
        drop(paused);
        let _ = child.kill();
        let _ = child.wait();
        // The line `make bench` reads, then a human one.
        println!("paused depth={depth} ours_us={ours_us:.2} pyspy_us={pyspy_us:.1}");
        println!(
            "  ({frames} frames, Python {}.{}: {calls:.1} reads per sample by ours, \
             py-spy/ours {:.0}x)",
            python.version.major,
            python.version.minor,
            pyspy_us / ours_us
        );
    }
}

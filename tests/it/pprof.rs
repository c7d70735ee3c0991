//! `--format pprof` read by its real reader, `go tool pprof` (Debian's golang-go, installed by
//! `make test`'s setup): every sample's stack, counts and labels as `-raw` prints them equal
//! the stacks of our JSON of the same run, and `-top` names the workload's hot function.
//! Written by `report` (from JSON), `merge` and `run` itself.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

/// `go`, or `None` after printing a SKIP.
fn go() -> Option<PathBuf> {
    let found = ["/usr/bin/go", "/usr/lib/go/bin/go"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        eprintln!("SKIP: no go (Debian's golang-go; `make test` installs it): pprof not checked");
    }
    found
}

fn pprof(go: &Path, args: &[&str], file: &Path) -> String {
    let out = Command::new(go)
        .args(["tool", "pprof"])
        .args(args)
        .arg(file)
        .env("HOME", file.parent().unwrap())
        .output()
        .expect("go runs");
    assert!(
        out.status.success(),
        "go tool pprof {args:?}: {}",
        printed(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One sample: its frames leaf first as `name file:line`, its labels, its count.
type Stack = (Vec<String>, Vec<(String, u64)>);

/// The samples of `go tool pprof -raw`: stacks with their counts summed.
fn raw_samples(raw: &str) -> BTreeMap<Stack, u64> {
    let samples = raw
        .split("\nSamples:\n")
        .nth(1)
        .expect("a Samples section")
        .split("\nLocations\n")
        .next()
        .unwrap();
    let locations: BTreeMap<u64, String> = raw
        .split("\nLocations\n")
        .nth(1)
        .expect("a Locations section")
        .lines()
        .take_while(|l| !l.starts_with("Mappings"))
        .map(|line| {
            // `     1: 0x0 M=1 name /path/file.py:39 s=37`
            let (id, rest) = line.trim().split_once(": ").expect("id: location");
            let rest = rest.split_once(" M=1 ").expect("a mapping").1;
            let frame = rest.rsplit_once(" s=").map_or(rest, |(frame, _)| frame);
            (id.parse().unwrap(), frame.to_owned())
        })
        .collect();
    let mut out = BTreeMap::new();
    let mut lines = samples.lines().skip(1).peekable();
    while let Some(line) = lines.next() {
        // `   75   37500000: 1 2 3 4 ` then `   pid:[28961] thread_id:[1406...]`
        let (values, ids) = line.split_once(':').expect("values: locations");
        let count: u64 = values.split_whitespace().next().unwrap().parse().unwrap();
        let frames = ids
            .split_whitespace()
            .map(|id| locations[&id.parse::<u64>().unwrap()].clone())
            .collect();
        let mut labels = Vec::new();
        if let Some(next) = lines.peek() {
            if next.contains(":[") {
                for label in lines.next().unwrap().split_whitespace() {
                    let (key, value) = label.split_once(":[").unwrap();
                    labels.push((key.to_owned(), value.trim_end_matches(']').parse().unwrap()));
                }
            }
        }
        labels.sort();
        *out.entry((frames, labels)).or_default() += count;
    }
    out
}

/// The same from our JSON, named as the pprof writer names functions.
fn json_samples(json: &Path) -> BTreeMap<Stack, u64> {
    let (results, _) = tracer::output::load_results(json).unwrap();
    let mut out = BTreeMap::new();
    for (stack, count) in &results.stacks.expect("JSON keeps stacks").samples {
        let frames = stack
            .frames
            .iter()
            .rev()
            .map(|f| {
                let name = if f.func.funcname.starts_with('<') {
                    format!("{}.{}", f.func.modulename, f.func.funcname)
                } else {
                    f.func.funcname.clone()
                };
                format!("{name} {}:{}", f.func.filename, f.line)
            })
            .collect();
        let mut labels = vec![
            ("pid".to_owned(), u64::from(stack.process)),
            ("thread_id".to_owned(), stack.thread),
        ];
        labels.retain(|(_, v)| *v != 0);
        *out.entry((frames, labels)).or_default() += count;
    }
    out
}

#[test]
fn go_tool_pprof_reads_our_profiles_as_our_json_says() {
    let Some(go) = go() else { return };
    let python = newest_python();
    let dir = scratch("pprof");
    let out = run_workload(
        &python.path,
        workload("mix.py"),
        &["--rate", "2000", "--format", "json", "-o", "mix.json"],
        "1.5",
        &dir,
    );
    assert!(out.status.success(), "{}", printed(&out));
    let report = [
        "report",
        "-f",
        "mix.json",
        "--format",
        "pprof",
        "-o",
        "mix.pb.gz",
    ];
    let out = run_tracer(&report, &dir, TIMEOUT);
    assert!(out.status.success(), "{}", printed(&out));

    let ours = json_samples(&dir.join("mix.json"));
    let total: u64 = ours.values().sum();
    assert!(total > 100, "thread samples: {total}");
    let theirs = raw_samples(&pprof(&go, &["-raw"], &dir.join("mix.pb.gz")));
    assert_eq!(theirs, ours, "pprof -raw against our JSON's stacks");
    assert!(
        ours.keys()
            .all(|(_, labels)| labels.iter().any(|(k, _)| k == "pid")),
        "every stack names its process"
    );

    // -top: the hottest function by self samples is ours, and the wall time is counts × period.
    let top = pprof(
        &go,
        &["-top", "-sample_index=samples"],
        &dir.join("mix.pb.gz"),
    );
    let mut self_samples: BTreeMap<String, u64> = BTreeMap::new();
    for ((frames, _), count) in &ours {
        let name = frames[0].split(' ').next().unwrap().to_owned();
        *self_samples.entry(name).or_default() += count;
    }
    let count = *self_samples.values().max().unwrap();
    let hottest: Vec<&String> = self_samples
        .iter()
        .filter(|(_, c)| **c == count)
        .map(|(name, _)| name)
        .collect();
    let first_row = top
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .nth(1)
        .expect("a row under the header");
    assert!(
        first_row.trim_start().starts_with(&count.to_string())
            && hottest
                .iter()
                .any(|name| first_row.ends_with(name.as_str())),
        "top row {first_row:?}, expected one of {hottest:?} with {count}:\n{top}"
    );

    // merge and run write the same format: two copies merged hold twice the samples, and a
    // profile written by `run` itself reads.
    let merge = [
        "merge",
        "mix.json",
        "mix.json",
        "--format",
        "pprof",
        "-o",
        "twice.pb.gz",
    ];
    let out = run_tracer(&merge, &dir, TIMEOUT);
    assert!(out.status.success(), "{}", printed(&out));
    let twice = raw_samples(&pprof(&go, &["-raw"], &dir.join("twice.pb.gz")));
    assert_eq!(twice.values().sum::<u64>(), 2 * total);
    let out = run_workload(
        &python.path,
        workload("mix.py"),
        &["--format", "pprof", "-o", "run.pb.gz"],
        "1",
        &dir,
    );
    assert!(out.status.success(), "{}", printed(&out));
    let top = pprof(&go, &["-top"], &dir.join("run.pb.gz"));
    assert!(top.contains("Type: wall"), "{top}");
    assert!(
        top.contains("fib"),
        "mix.py's fib is in the profile:\n{top}"
    );
}

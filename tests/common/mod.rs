//! Shared by the integration tests: finding interpreters, starting workloads, ground truth.
#![allow(dead_code)]

pub mod coverage_db;
pub mod fuzz;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
pub use tracer::reader::PyVersion;

/// An interpreter to test against.
#[derive(Debug, Clone)]
pub struct Python {
    pub path: PathBuf,
    pub version: PyVersion,
    /// A free-threaded build (`--disable-gil`): `3.13t`.
    pub free_threaded: bool,
}

impl Python {
    pub fn label(&self) -> String {
        format!(
            "Python {}.{}{} ({})",
            self.version.major,
            self.version.minor,
            if self.free_threaded { "t" } else { "" },
            self.path.display()
        )
    }
}

/// The versions every CI run must exercise when present.
pub const REQUIRED_MINORS: std::ops::RangeInclusive<u8> = 8..=13;

/// Newer versions our reader supports, exercised too when present: `make pythons-new`
/// (tests/support/fetch-python.sh) installs them under target/pythons.
pub const NEW_MINORS: std::ops::RangeInclusive<u8> = 14..=15;

/// Interpreters from `TRACER_TEST_PYTHONS` (paths or `X.Y` versions, separated by `:`, `,` or
/// spaces; a version picks the discovered interpreter of that version), else those discovered:
/// pyenv's `$PYENV_ROOT/versions/*/bin/python`, then `target/pythons/*/bin/python3.*` (fetched by
/// `make pythons-new`) and Debian's `/usr/bin/python3.*`. One per version, the first found
/// winning; pyenv's come first. An entry that names no interpreter that runs fails the test: a
/// mistyped list must not turn every test into a skip.
pub fn all_pythons() -> Vec<Python> {
    // Found once per test binary: every per-version case asks, and each look runs every
    // interpreter on the machine.
    static FOUND: std::sync::OnceLock<Vec<Python>> = std::sync::OnceLock::new();
    FOUND.get_or_init(find_pythons).clone()
}

fn find_pythons() -> Vec<Python> {
    let candidates: Vec<PathBuf> = match std::env::var("TRACER_TEST_PYTHONS") {
        Ok(list) if !list.trim().is_empty() => list
            .split([':', ',', ' ', '\n'])
            .filter(|s| !s.is_empty())
            .map(|entry| match entry.parse::<PyVersion>() {
                Ok(version) => discovered_pythons()
                    .into_iter()
                    .find(|path| version_of(path) == Some(version))
                    .unwrap_or_else(|| {
                        panic!(
                            "TRACER_TEST_PYTHONS names {version}, and no Python {version} is found"
                        )
                    }),
                Err(_) => {
                    let path = PathBuf::from(entry);
                    assert!(
                        version_of(&path).is_some(),
                        "TRACER_TEST_PYTHONS names {entry}, which is not a Python that runs"
                    );
                    path
                }
            })
            .collect(),
        _ => discovered_pythons(),
    };
    let mut seen = BTreeSet::new();
    let mut pythons = Vec::new();
    for path in candidates {
        if let Some((version, free_threaded)) = build_of(&path) {
            if seen.insert((version, free_threaded)) {
                pythons.push(Python {
                    path,
                    version,
                    free_threaded,
                });
            }
        }
    }
    pythons.sort_by_key(|p| (p.version, p.free_threaded));
    pythons
}

/// The interpreters found on this machine, in order of preference (see [`all_pythons`]).
fn discovered_pythons() -> Vec<PathBuf> {
    let root = std::env::var("PYENV_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/root/.pyenv"));
    let mut found: Vec<PathBuf> = std::fs::read_dir(root.join("versions"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin/python"))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    let mut fetched: Vec<PathBuf> = std::fs::read_dir(repo_root().join("target/pythons"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let python = e.path().join(format!("bin/python{name}"));
                    python.exists().then_some(python)
                })
                .collect()
        })
        .unwrap_or_default();
    fetched.sort();
    found.extend(fetched);
    for minor in 6..=15 {
        let debian = PathBuf::from(format!("/usr/bin/python3.{minor}"));
        if debian.exists() {
            found.push(debian);
        }
    }
    found
}

/// The `(major, minor)` version of the interpreter at `python`, if it runs.
pub fn version_of(python: &Path) -> Option<PyVersion> {
    build_of(python).map(|(version, _)| version)
}

/// The version of the interpreter at `python` and whether it is a free-threaded build, if it
/// runs.
pub fn build_of(python: &Path) -> Option<(PyVersion, bool)> {
    let out = Command::new(python)
        .args([
            "-c",
            "import sys, sysconfig; print('%d %d %d' % (sys.version_info[0], \
             sys.version_info[1], bool(sysconfig.get_config_var('Py_GIL_DISABLED'))))",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut parts = text.split_whitespace();
    let version = PyVersion::new(parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    Some((version, parts.next()? == "1"))
}

/// Interpreters 3.8–3.15 built with the GIL, printing a SKIP line for each of those versions
/// not found. Free-threaded builds (3.13t) are tested by the `per_python!` cases (`py3_13t`).
pub fn pythons_under_test() -> Vec<Python> {
    let all = all_pythons();
    for minor in REQUIRED_MINORS {
        if !all.iter().any(|p| p.version == PyVersion::new(3, minor)) {
            println!("SKIP: no Python 3.{minor} found (set TRACER_TEST_PYTHONS or install it)");
        }
    }
    for minor in NEW_MINORS {
        if !all.iter().any(|p| p.version == PyVersion::new(3, minor)) {
            println!("SKIP: no Python 3.{minor} found (make pythons-new installs it)");
        }
    }
    let chosen: Vec<Python> = all
        .into_iter()
        .filter(|p| {
            p.version.major == 3
                && !p.free_threaded
                && (REQUIRED_MINORS.contains(&p.version.minor)
                    || NEW_MINORS.contains(&p.version.minor))
        })
        .collect();
    assert!(
        !chosen.is_empty(),
        "no Python 3.8-3.13 found at all: nothing to test against"
    );
    chosen
}

/// The newest of the interpreters 3.8–3.13: the one tests that need a single target run
/// against (a version the pinned report tools and every environment support).
pub fn newest_python() -> Python {
    pythons_under_test()
        .into_iter()
        .rfind(|p| REQUIRED_MINORS.contains(&p.version.minor))
        .expect("a Python 3.8-3.13")
}

/// Debian's statically linked interpreter, if present.
pub fn debian_python() -> Option<Python> {
    let path = PathBuf::from("/usr/bin/python3.11");
    let version = version_of(&path)?;
    Some(Python {
        path,
        version,
        free_threaded: false,
    })
}

/// The tracer to test: `TRACER_TEST_BIN` if set (e.g. arch/aarch64/tracer, the aarch64 build
/// under qemu), else the binary cargo built.
pub fn tracer_bin() -> String {
    std::env::var("TRACER_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tracer").to_owned())
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn workload(name: &str) -> PathBuf {
    repo_root().join("tests/workloads").join(name)
}

pub fn support(name: &str) -> PathBuf {
    repo_root().join("tests/support").join(name)
}

/// A fresh scratch directory under the target directory, removed first if present. In a
/// `per_python!` case its name carries the build's test name (`name-py3_13t`), so that the cases
/// of two builds of one version (`py3_13`, `py3_13t`) never remove each other's files.
pub fn scratch(name: &str) -> PathBuf {
    let build = std::thread::current()
        .name()
        .and_then(|test| test.rsplit("::").next())
        .filter(|last| last.starts_with("py3_"))
        .map(|last| format!("-{last}"))
        .unwrap_or_default();
    let dir = repo_root()
        .join("target/test-scratch")
        .join(format!("{}{build}", name.replace('/', "_")));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Spawn `command` (a workload under `python`) and wait until it prints "ready"; its stdout is
/// drained from then on, so that it never blocks on a full pipe.
fn start_ready(python: &Python, command: &mut Command) -> Child {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the workload");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    match lines.next() {
        Some(Ok(line)) if line.trim() == "ready" => {}
        other => panic!("{}: workload did not get ready: {other:?}", python.label()),
    }
    std::thread::spawn(move || for _ in lines {});
    child
}

/// A started workload process, killed when dropped.
pub struct Workload {
    pub child: Child,
}

impl Workload {
    /// Start `script` under `python` for `seconds` and wait until it prints "ready".
    pub fn start(python: &Python, script: &Path, seconds: f64) -> Workload {
        let mut command = Command::new(&python.path);
        command
            .arg(script)
            .env("WORKLOAD_SECONDS", seconds.to_string());
        Workload {
            child: start_ready(python, &mut command),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Wait for the workload to exit, at most `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tracer run ARGS… -- PYTHON SCRIPT` in `dir`, the workload's `WORKLOAD_SECONDS` set: the
/// step many tests start with (its output, to assert on).
pub fn run_workload(
    python: &Path,
    script: impl AsRef<std::ffi::OsStr>,
    args: &[&str],
    seconds: impl AsRef<std::ffi::OsStr>,
    dir: impl AsRef<Path>,
) -> Output {
    Command::new(tracer_bin())
        .arg("run")
        .args(args)
        .arg("--")
        .arg(python)
        .arg(script)
        .env("WORKLOAD_SECONDS", seconds)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// Run the tracer with `args`, killing it after `timeout` (a hang is a failure, not a wait).
pub fn run_tracer(args: &[&str], cwd: &Path, timeout: Duration) -> Output {
    let mut child = Command::new(tracer_bin())
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting tracer");
    let start = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "tracer {args:?} did not finish within {timeout:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run `python` with `args` in `cwd`, with the workload's duration set; panics on failure.
pub fn run_python(python: &Python, args: &[&str], cwd: &Path, seconds: f64) -> Output {
    let out = Command::new(&python.path)
        .args(args)
        .current_dir(cwd)
        .env("WORKLOAD_SECONDS", seconds.to_string())
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "{}: {args:?} failed: {}",
        python.label(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Show what a process printed, for failure messages.
pub fn printed(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The virtual environment holding the pinned consumers of our formats (coverage.py, pydot:
/// tests/support/report-requirements.txt) and our coverage.py plugin (src/coverage_plugin),
/// created under target/ when missing or stale. `make report-venv` does the same; both are
/// idempotent and fast once installed.
pub struct ReportTools {
    pub venv: PathBuf,
}

impl ReportTools {
    /// The venv's Python.
    pub fn python(&self) -> PathBuf {
        self.venv.join("bin/python")
    }

    /// The venv's `coverage` command.
    pub fn coverage(&self) -> PathBuf {
        self.venv.join("bin/coverage")
    }
}

/// Create (once per test process) and return the report-tools venv.
pub fn report_tools() -> &'static ReportTools {
    static TOOLS: std::sync::OnceLock<ReportTools> = std::sync::OnceLock::new();
    TOOLS.get_or_init(|| {
        let venv = repo_root().join("target/report-venv");
        let requirements = support("report-requirements.txt");
        let plugin = repo_root().join("src/coverage_plugin");
        // What the venv was built from, as the Makefile's REPORT_INPUTS.
        let wanted: String = [
            requirements.clone(),
            plugin.join("pyproject.toml"),
            plugin.join("tracer_coverage.py"),
        ]
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
        let stamp = venv.join("installed-inputs.txt");
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
            // The newest Python found that the pinned versions support (3.9+).
            let python = all_pythons()
                .into_iter()
                .rfind(|p| p.version.major == 3 && (9..=13).contains(&p.version.minor))
                .expect("a Python 3.9-3.13 to run coverage.py in");
            let _ = std::fs::remove_dir_all(&venv);
            let status = Command::new(&python.path)
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .unwrap();
            assert!(status.success(), "creating {}", venv.display());
            let out = Command::new(venv.join("bin/python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements)
                .arg(&plugin)
                .output()
                .unwrap();
            assert!(out.status.success(), "pip install: {}", printed(&out));
            std::fs::write(&stamp, wanted).unwrap();
        }
        ReportTools { venv }
    })
}

/// The error output is exactly one line starting `tracer: error:` and containing every one of
/// `needles`, the exit status is 1, and nothing panicked.
pub fn assert_one_line_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(out.status.code(), Some(1), "{}", printed(out));
    assert!(!stderr.contains("panicked"), "{}", printed(out));
    assert_eq!(lines.len(), 1, "expected one line\n{}", printed(out));
    assert!(lines[0].starts_with("tracer: error: "), "{}", printed(out));
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "missing {needle:?}\n{}",
            printed(out)
        );
    }
}

/// Run `DIR/generate.py --output` into the scratch directory `name` and return the committed
/// `DIR/generated.rs` and the fresh one, for tests that the committed table is what the
/// generator measures now. The generator's stderr (what it found) is printed.
pub fn regenerate(dir: &str, name: &str) -> (String, String) {
    let fresh_path = scratch(name).join("generated.rs");
    let out = Command::new("python3")
        .arg(repo_root().join(dir).join("generate.py"))
        .arg("--output")
        .arg(&fresh_path)
        .output()
        .expect("running python3 (needed to run the generator)");
    assert!(
        out.status.success(),
        "generate.py failed: {}",
        printed(&out)
    );
    print!("{}", String::from_utf8_lossy(&out.stderr));
    let committed = std::fs::read_to_string(repo_root().join(dir).join("generated.rs")).unwrap();
    let fresh = std::fs::read_to_string(&fresh_path).unwrap();
    (committed, fresh)
}

/// Run `check` on the Python 3.`minor` under test, panicking with its label and the error if it
/// fails; prints SKIP when that version is not found (as [`pythons_under_test`] does).
pub fn run_on_python(minor: u8, check: impl Fn(&Python) -> Result<(), String>) {
    run_on_build(minor, false, check)
}

/// [`run_on_python`] on the free-threaded build of 3.`minor` (3.13t:
/// tests/support/build-python-ft.sh, `make pythons-new`).
pub fn run_on_free_threaded(minor: u8, check: impl Fn(&Python) -> Result<(), String>) {
    run_on_build(minor, true, check)
}

fn run_on_build(minor: u8, free_threaded: bool, check: impl Fn(&Python) -> Result<(), String>) {
    let Some(python) = all_pythons()
        .into_iter()
        .find(|p| p.version == PyVersion::new(3, minor) && p.free_threaded == free_threaded)
    else {
        let (t, how) = if free_threaded {
            ("t", "make pythons-new builds it")
        } else {
            ("", "set TRACER_TEST_PYTHONS or install it")
        };
        println!("SKIP: no Python 3.{minor}{t} found ({how})");
        return;
    };
    if let Err(e) = check(&python) {
        panic!("{}: {e}", python.label());
    }
}

/// One test per Python version, `NAME::py3_X`, so that one version of one case can be run by
/// name (`cargo test --release --test it trace_compat::NAME::py3_12`); each prints SKIP when its
/// version is not found. `CHECK` is a `Fn(&Python) -> Result<(), String>`.
///
/// - `per_python!(NAME, CHECK)`: 3.8–3.15 and the free-threaded 3.13t (`py3_13t`);
/// - `per_python!(NAME, gil, CHECK)`: 3.8–3.15 with the GIL only;
/// - `per_python!(NAME, gil since 11 | 12 | 13, CHECK)`: those from 3.11, 3.12 or 3.13 on.
#[macro_export]
macro_rules! per_python {
    ($(#[$meta:meta])* $name:ident, gil since 11, $check:expr) => {
        $crate::per_python!(@cases [$(#[$meta])*] $name, $check,
            [py3_11 11, py3_12 12, py3_13 13, py3_14 14, py3_15 15]);
    };
    ($(#[$meta:meta])* $name:ident, gil since 12, $check:expr) => {
        $crate::per_python!(@cases [$(#[$meta])*] $name, $check,
            [py3_12 12, py3_13 13, py3_14 14, py3_15 15]);
    };
    ($(#[$meta:meta])* $name:ident, gil since 13, $check:expr) => {
        $crate::per_python!(@cases [$(#[$meta])*] $name, $check,
            [py3_13 13, py3_14 14, py3_15 15]);
    };
    ($(#[$meta:meta])* $name:ident, gil, $check:expr) => {
        $crate::per_python!(@cases [$(#[$meta])*] $name, $check,
            [py3_8 8, py3_9 9, py3_10 10, py3_11 11, py3_12 12, py3_13 13, py3_14 14, py3_15 15]);
    };
    ($(#[$meta:meta])* $name:ident, $check:expr) => {
        $crate::per_python!(@cases [$(#[$meta])*] $name, $check,
            [py3_8 8, py3_9 9, py3_10 10, py3_11 11, py3_12 12, py3_13 13, py3_14 14, py3_15 15],
            py3_13t 13);
    };
    (@cases [$($meta:tt)*] $name:ident, $check:expr, [$($case:ident $minor:literal),*]
        $(, $ft_case:ident $ft_minor:literal)?) => {
        $($meta)*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $case() {
                    $crate::common::run_on_python($minor, $check)
                }
            )*
            $(
                #[test]
                fn $ft_case() {
                    $crate::common::run_on_free_threaded($ft_minor, $check)
                }
            )?
        }
    };
}

/// The stdlib trace's truth of `python script` (tests/support/trace_truth.py, stdin closed so
/// that a waiting driver returns at once), written to `path`.
pub fn trace_truth(python: &Python, script: &str, path: &Path) {
    let out = Command::new(&python.path)
        .arg(support("trace_truth.py"))
        .arg(path)
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "truth run: {}", printed(&out));
}

/// tests/support/snapshot_compare.py of each snapshot in `snapshots` against `truth` over
/// `files` (comma-separated names): one row per snapshot (precision, recall, false positives).
pub fn snapshot_compare(
    python: &Python,
    truth: &Path,
    files: &str,
    snapshots: &[&Path],
) -> Vec<serde_json::Value> {
    let out = Command::new(&python.path)
        .arg(support("snapshot_compare.py"))
        .arg(truth)
        .arg(files)
        .args(snapshots)
        .output()
        .unwrap();
    assert!(out.status.success(), "compare: {}", printed(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A waiting workload's truth and snapshot: `driver` (under tests/workloads) run under the
/// stdlib's trace, then run again and `tracer snapshot --format json` taken while it waits, in
/// the scratch folder `name-3.X`; compared over `files` (snapshot_compare.py). The comparison's
/// row and the snapshot's JSON.
pub fn truth_and_snapshot(
    python: &Python,
    name: &str,
    driver: &str,
    files: &str,
) -> (serde_json::Value, serde_json::Value) {
    let dir = scratch(&format!(
        "{name}-{}.{}",
        python.version.major, python.version.minor
    ));
    let driver = workload(driver);
    let driver = driver.to_str().unwrap();
    let truth = dir.join("truth.pickle");
    trace_truth(python, driver, &truth);
    let target = Waiting::start(python, &[driver]);
    let path = dir.join("snapshot.json");
    let pid = target.pid().to_string();
    let out = run_tracer(
        &[
            "snapshot",
            "--pid",
            &pid,
            "--format",
            "json",
            "-o",
            path.to_str().unwrap(),
        ],
        &dir,
        Duration::from_secs(120),
    );
    drop(target);
    assert!(out.status.success(), "{}", printed(&out));
    let row = snapshot_compare(python, &truth, files, &[&path]).remove(0);
    let doc = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    (row, doc)
}

/// A Python running `args`, started once it printed "ready"; it exits when its stdin closes
/// (written a line, or dropped).
pub struct Waiting {
    child: Child,
}

impl Waiting {
    pub fn start(python: &Python, args: &[&str]) -> Waiting {
        let mut command = Command::new(&python.path);
        command.args(args).stdin(Stdio::piped());
        Waiting {
            child: start_ready(python, &mut command),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = std::io::Write::write_all(&mut stdin, b"\n");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one `tracer attach` wrote: its output, and the JSON results loaded back.
pub struct Attached {
    pub out: Output,
    pub results: tracer::aggregate::model::CoverageResults,
    pub info: tracer::output::RunInfo,
}

/// The steps most tests repeat: `tracer attach --pid PID --format json -o results.json ARGS…`
/// in `dir`, asserted to succeed (its output printed if not), and the results loaded.
pub fn attach_and_load(pid: i32, args: &[&str], dir: &Path, timeout: Duration) -> Attached {
    let pid = pid.to_string();
    let mut all = vec![
        "attach",
        "--pid",
        &pid,
        "--format",
        "json",
        "-o",
        "results.json",
    ];
    all.extend_from_slice(args);
    let out = run_tracer(&all, dir, timeout);
    assert!(out.status.success(), "tracer {all:?}: {}", printed(&out));
    let (results, info) = tracer::output::load_results(&dir.join("results.json"))
        .unwrap_or_else(|e| panic!("results of tracer {all:?}: {e:#}"));
    Attached {
        out,
        results,
        info: info.expect("JSON results carry their run info"),
    }
}

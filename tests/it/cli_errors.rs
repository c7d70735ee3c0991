//! Bad input: one clear line naming the cause, a non-zero exit, never a panic or a hang.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

fn free_pid() -> i32 {
    let max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    (300..max)
        .rev()
        .find(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        .expect("a free pid")
}

#[test]
fn no_such_pid() {
    let pid = free_pid().to_string();
    let out = run_tracer(&["attach", "--pid", &pid], &scratch("err-nopid"), TIMEOUT);
    assert_one_line_error(&out, &["no process with pid", &pid]);
}

#[test]
fn not_a_python_process() {
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = sleeper.id().to_string();
    let out = run_tracer(&["attach", "--pid", &pid], &scratch("err-notpy"), TIMEOUT);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_one_line_error(&out, &["not a Python process", &pid, "sleep"]);
}

#[test]
fn permission_denied_names_the_fix() {
    // As root, drop to nobody to attach to a root-owned Python; as anyone else, a root-owned
    // Python is out of reach already.
    let python = newest_python();
    let mut target = Workload::start(&python, &workload("mix.py"), 20.0);
    let pid = target.pid().to_string();
    let is_root = unsafe { libc::geteuid() } == 0;
    let out = if is_root {
        if Command::new("setpriv").arg("--version").output().is_err() {
            println!("SKIP: setpriv not found; cannot test attaching without permission");
            return;
        }
        // A copy nobody can reach, wherever the checkout lives.
        let copy_dir = std::env::temp_dir().join(format!("tracer-perm-{}", std::process::id()));
        std::fs::create_dir_all(&copy_dir).unwrap();
        let copy = copy_dir.join("tracer");
        std::fs::copy(tracer_bin(), &copy).unwrap();
        use std::os::unix::fs::PermissionsExt;
        for path in [&copy_dir, &copy] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&copy)
            .args(["attach", "--pid", &pid, "-o", "/tmp/never-written.pickle"])
            .current_dir(&copy_dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&copy_dir);
        out
    } else {
        println!("SKIP: not root; cannot start a process this user may not trace");
        return;
    };
    let _ = target.child.kill();
    assert_one_line_error(
        &out,
        &[
            "permission denied",
            &pid,
            "CAP_SYS_PTRACE",
            "root",
            "shareProcessNamespace: true",
            "kernel.yama.ptrace_scope",
        ],
    );
}

#[test]
fn name_without_a_match_says_how_to_wait() {
    let out = run_tracer(
        &["attach", "--name", "no-such-process-tracer-test"],
        &scratch("err-noname"),
        TIMEOUT,
    );
    assert_one_line_error(&out, &["no-such-process-tracer-test", "pgrep", "--wait"]);
    let out = run_tracer(
        &["attach", "--pid", "1", "--wait", "3"],
        &scratch("err-wait"),
        TIMEOUT,
    );
    assert_one_line_error(&out, &["--wait", "--name"]);
}

#[test]
fn dump_of_a_process_that_is_not_python() {
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = sleeper.id().to_string();
    let out = run_tracer(&["dump", "--pid", &pid], &scratch("err-dump"), TIMEOUT);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_one_line_error(&out, &["not a Python process", &pid]);
}

#[test]
fn unwritable_output_fails_before_sampling() {
    let python = newest_python();
    let target = Workload::start(&python, &workload("mix.py"), 20.0);
    let pid = target.pid().to_string();
    let out = run_tracer(
        &["attach", "--pid", &pid, "-o", "/nonexistent-dir/x.pickle"],
        &scratch("err-unwritable"),
        TIMEOUT,
    );
    drop(target);
    assert_one_line_error(&out, &["cannot write to /nonexistent-dir", "-o"]);
}

#[test]
fn usage_errors_are_refused_by_the_parser() {
    for args in [
        &["attach", "--pid", "1", "--rate", "0"][..],
        &["attach", "--pid", "1", "--duration", "-3"][..],
        &["attach", "--pid", "1", "--format", "xml"][..],
        &["attach"][..],
        &["attach", "--pid", "1", "--name", "x"][..],
        &["attach", "--pid", "1", "--flush-every", "0"][..],
        &["run"][..],
    ] {
        let out = run_tracer(args, &scratch("err-usage"), TIMEOUT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", printed(&out));
        assert!(!stderr.contains("panicked"), "{}", printed(&out));
    }
}

#[test]
fn a_cpu_cap_that_is_not_a_percent_names_the_fix() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let too_much = (100 * cpus + 1).to_string();
    for bad in ["0", "-5", "abc", "nan", "inf", too_much.as_str()] {
        let option = format!("--max-cpu={bad}");
        for args in [
            &["attach", "--pid", "1", &option][..],
            &["run", &option, "--", "true"][..],
        ] {
            let out = run_tracer(args, &scratch("err-max-cpu"), TIMEOUT);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", printed(&out));
            assert!(!stderr.contains("panicked"), "{}", printed(&out));
            let first = stderr.lines().next().unwrap_or_default();
            assert!(
                first.contains("--max-cpu") && first.contains("e.g. --max-cpu 5"),
                "{args:?}: the first line names the option and the fix\n{}",
                printed(&out)
            );
        }
    }
    // From the environment, as sidecars are configured: refused the same way.
    let out = std::process::Command::new(tracer_bin())
        .args(["attach", "--pid", "1"])
        .env("TRACER_MAX_CPU", "lots")
        .current_dir(scratch("err-max-cpu-env"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", printed(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("e.g. --max-cpu 5"));
}

#[test]
fn report_refuses_files_that_are_not_results() {
    let dir = scratch("err-report");
    let cases: [(&str, &[u8]); 4] = [
        ("empty.pickle", b""),
        ("garbage.pickle", b"\x80\x02garbage"),
        (
            "truncated.json",
            br#"{"format":"tracer-coverage","version":1,"counts":[["#,
        ),
        (
            "other.json",
            br#"{"format":"something-else","version":1,"counts":[],"calledfuncs":[],"callers":[]}"#,
        ),
    ];
    for (name, bytes) in cases {
        std::fs::write(dir.join(name), bytes).unwrap();
        let out = run_tracer(&["report", "--file", name], &dir, TIMEOUT);
        assert_one_line_error(&out, &[name]);
    }
    let out = run_tracer(&["report", "--file", "missing.pickle"], &dir, TIMEOUT);
    assert_one_line_error(&out, &["cannot read", "missing.pickle"]);
}

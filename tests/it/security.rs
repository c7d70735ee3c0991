//! The target is never written, and a hostile target cannot steer tracer's file access.
//!
//! By construction (source and binary scans): no `process_vm_writev`, no `PTRACE_POKE*` or
//! register writes but one exception, named and bounded: `run --snapshot`'s watchpoint, set in
//! its own child's debug registers (src/target/exit_watch/arch.rs, `debugreg(..)` and
//! `NT_ARM_HW_WATCH` only), `/proc/PID/mem` opened through `File::open` only (read-only; a unit test in
//! src/reader/memory.rs checks the descriptor's flags). At run time: a target whose code
//! objects name `../` paths, absolute paths, NUL bytes, 10,000-character names, a file it
//! cannot read and a symlink to it is traced to `.cover` files: nothing is written outside
//! the output directory, and the unreadable file's contents appear nowhere. Output paths that
//! are pre-placed symlinks are replaced, never followed.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_api_that_writes_to_another_process_by_construction() {
    let mut files = Vec::new();
    rust_sources(&repo_root().join("src"), &mut files);
    assert!(files.len() > 10);
    // Split so that this file does not match itself if scanned.
    let forbidden = [
        ["process_vm_", "writev"].concat(),
        ["PTRACE_", "POKE"].concat(),
        ["PTRACE_", "SETREGS"].concat(),
        ["PTRACE_", "SETFPREGS"].concat(),
        ["PTRACE_", "SETREGSET"].concat(),
        ["PTRACE_", "SETSIGINFO"].concat(),
    ];
    // The one allowed register write: debug registers (a watchpoint; no memory, no general
    // register), in the exit watch, each line naming which.
    let watch = repo_root().join("src/target/exit_watch/arch.rs");
    let debug_register_write = |file: &Path, line: &str| {
        file == watch
            && ((line.contains(&["PTRACE_", "POKEUSER"].concat()) && line.contains("debugreg("))
                || line.contains(&["PTRACE_", "SETREGSET"].concat()))
    };
    let watch_text = std::fs::read_to_string(&watch).unwrap();
    let regsets = watch_text
        .matches(&["PTRACE_", "SETREGSET"].concat())
        .count();
    assert!(
        regsets <= 1 && watch_text.contains("NT_ARM_HW_WATCH"),
        "the exit watch sets only the hardware watchpoint register set"
    );
    let mut proc_mem_opens = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue; // documentation may name what the code never does
            }
            if debug_register_write(file, line) {
                continue;
            }
            for word in &forbidden {
                assert!(
                    !line.contains(word.as_str()),
                    "{}:{}: {word}",
                    file.display(),
                    number + 1
                );
            }
            if line.contains("/mem\"") {
                proc_mem_opens.push(format!(
                    "{}:{}: {}",
                    file.display(),
                    number + 1,
                    line.trim()
                ));
                assert!(
                    line.contains("File::open(format!(\"/proc/{pid}/mem\"))"),
                    "{}:{}: /proc/PID/mem opened other than read-only: {line}",
                    file.display(),
                    number + 1
                );
            }
        }
    }
    assert_eq!(proc_mem_opens.len(), 1, "{proc_mem_opens:#?}");
    // The linked binary (dependencies included) imports no cross-process write.
    let nm = Command::new("nm").args(["-D", &tracer_bin()]).output();
    match nm {
        Ok(out) if out.status.success() => {
            let symbols = String::from_utf8_lossy(&out.stdout);
            assert!(
                symbols.contains("process_vm_readv"),
                "nm found no reads either"
            );
            assert!(!symbols.contains(&forbidden[0]));
        }
        _ => println!("SKIP: nm not found; the binary's imports are not checked"),
    }
}

/// Every path under `dir`, recursively.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(tree(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn hostile_file_names_never_escape_the_output_directory_nor_leak_files() {
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIP: not root: cannot run the target as another user");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        println!("SKIP: setpriv not found");
        return;
    }
    // A system Python nobody can run (pyenv's live under /root).
    let Some(python) = debian_python() else {
        println!("SKIP: no /usr/bin/python3.x for an unprivileged target");
        return;
    };
    use std::os::unix::fs::PermissionsExt;
    let base = std::env::temp_dir().join(format!("tracer-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let public = base.join("public");
    std::fs::create_dir_all(&public).unwrap();
    let secret = base.join("secret.py");
    let marker = "TOP_SECRET_MARKER_41f3";
    std::fs::write(&secret, format!("{marker} = 1\n").repeat(10)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    for dir in [&base, &public] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let script = public.join("hostile_names.py");
    std::fs::copy(workload("hostile_names.py"), &script).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = public.join("link.py");
    let mut child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&python.path)
        .arg("-c")
        .arg(format!(
            "import os, runpy; os.symlink({secret:?}, {link:?}); runpy.run_path({script:?}, run_name='__main__')",
            secret = secret.to_str().unwrap(),
            link = link.to_str().unwrap(),
            script = script.to_str().unwrap(),
        ))
        .env("SECRET", &secret)
        .env("LINK", &link)
        .env("WORKLOAD_SECONDS", "30")
        .current_dir(&public)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
    }
    // Output in a deep directory, so that `../../` from it lands in places we can check.
    let work = scratch("hostile-names");
    let out_dir = work.join("a/b/cover");
    std::fs::create_dir_all(work.join("a")).unwrap();
    let before: Vec<PathBuf> = tree(&work);
    let pid = child.id().to_string();
    let out = run_tracer(
        &[
            "attach",
            "--pid",
            &pid,
            "--duration",
            "2",
            "--format",
            "cover",
            "-o",
            out_dir.to_str().unwrap(),
        ],
        &work.join("a"),
        Duration::from_secs(60),
    );
    let _ = child.kill();
    let _ = child.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{}", printed(&out));
    assert!(!stderr.contains("panicked"), "{}", printed(&out));
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    // The unreadable file and the symlink to it were refused for the target's lack of rights.
    for refused in [secret.to_str().unwrap(), link.to_str().unwrap()] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(refused) && l.contains("could not read it")),
            "{refused} not refused as unreadable by the target\n{}",
            printed(&out)
        );
    }
    // Only files directly in the output directory are new under the work tree.
    for path in tree(&work) {
        if before.contains(&path) || path == work.join("a/b") || path == out_dir {
            continue;
        }
        assert_eq!(
            path.parent(),
            Some(out_dir.as_path()),
            "written outside: {path:?}"
        );
        assert!(path.is_file(), "{path:?}");
        let text = std::fs::read(&path).unwrap();
        assert!(
            !String::from_utf8_lossy(&text).contains(marker),
            "{path:?} holds the unreadable file's contents"
        );
    }
    for escaped in [
        "/tmp/escape.py.cover",
        "/tmp/evil_abs.cover",
        "/tmp/escape.cover",
    ] {
        assert!(!Path::new(escaped).exists(), "{escaped} written");
    }
    assert!(
        out_dir.join("hostile_names.cover").exists()
            || tree(&out_dir)
                .iter()
                .any(|p| p.to_string_lossy().ends_with("hostile_names.cover")),
        "the workload's own file was not reported: {:?}\n{}",
        tree(&out_dir),
        printed(&out)
    );
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn output_paths_that_are_symlinks_are_replaced_not_followed() {
    let python = newest_python();
    let work = scratch("symlink-output");
    let victim = work.join("victim.txt");
    std::fs::write(&victim, "keep me\n").unwrap();
    for format in ["json", "pickle", "coverage", "dot"] {
        let output = work.join(format!("out.{format}"));
        std::os::unix::fs::symlink(&victim, &output).unwrap();
        let mut target = Workload::start(&python, &workload("mix.py"), 20.0);
        let pid = target.pid().to_string();
        let out = run_tracer(
            &[
                "attach",
                "--pid",
                &pid,
                "--duration",
                "0.5",
                "--format",
                format,
                "-o",
                output.to_str().unwrap(),
            ],
            &work,
            Duration::from_secs(60),
        );
        let _ = target.child.kill();
        assert_eq!(out.status.code(), Some(0), "{format}: {}", printed(&out));
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "keep me\n",
            "{format}"
        );
        let meta = std::fs::symlink_metadata(&output).unwrap();
        assert!(
            meta.file_type().is_file(),
            "{format}: {output:?} is still a symlink"
        );
    }
}

//! A target in other pid and mount namespaces, as in a container: started under
//! `unshare --pid --mount --fork`, pivoted into its own root where its Python install is
//! bind-mounted at a path that does not exist outside (`/opt/py`), and its script at `/app`.
//! tracer reads its binaries and sources through `/proc/PID/root`, and records the pid it sees.

use crate::common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

/// The newest pyenv-style install (PREFIX/bin/python, PREFIX/lib/libpython*.so) found.
fn install_prefix() -> Option<(Python, std::path::PathBuf)> {
    let python = all_pythons()
        .into_iter()
        .filter(|p| p.version.major == 3 && p.version.minor >= 8)
        .rfind(|p| {
            p.path
                .parent()
                .and_then(|b| b.parent())
                .is_some_and(|prefix| {
                    prefix
                        .join(format!("lib/python{}.{}", p.version.major, p.version.minor))
                        .is_dir()
                        && !prefix.starts_with("/usr")
                })
        })?;
    let prefix = python.path.parent()?.parent()?.to_path_buf();
    Some((python, prefix))
}

#[test]
fn a_target_in_its_own_pid_and_mount_namespace_is_traced_through_proc_root() {
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIP: unshare --pid --mount needs root");
        return;
    }
    let Some((python, prefix)) = install_prefix() else {
        println!("SKIP: no Python install outside /usr to bind-mount");
        return;
    };
    let dir = scratch("containers");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::copy(workload("mix.py"), root.join("app/mix.py")).unwrap();
    // pivot_root, as container runtimes do (a chroot would leave the target's files reachable
    // from the host's root, and /proc/PID/maps would show host paths).
    let setup = format!(
        "set -e
         R={root}
         mkdir -p $R/usr $R/opt/py $R/proc $R/dev $R/oldroot
         ln -sfn usr/bin $R/bin; ln -sfn usr/lib $R/lib; ln -sfn usr/lib64 $R/lib64
         mount --make-rprivate /
         mount --bind $R $R
         mount --bind /usr $R/usr
         mount --bind {prefix} $R/opt/py
         mount --bind /dev $R/dev
         cd $R
         pivot_root . oldroot
         exec chroot . sh -c 'mount -t proc proc /proc && umount -l /oldroot && \
             exec env LD_LIBRARY_PATH=/opt/py/lib WORKLOAD_SECONDS=30 \
             /opt/py/bin/python{major}.{minor} /app/mix.py'",
        root = root.display(),
        prefix = prefix.display(),
        major = python.version.major,
        minor = python.version.minor,
    );
    let mut unshare = Command::new("unshare")
        .args(["--pid", "--mount", "--fork", "sh", "-c", &setup])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare");
    let unshare_pid = unshare.id() as i32;
    let stdout = unshare.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next();
    if !matches!(&first, Some(Ok(l)) if l.trim() == "ready") {
        let _ = unshare.kill();
        let out = unshare.wait_with_output().unwrap();
        panic!(
            "the namespaced target did not start: {first:?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::thread::spawn(move || for _ in lines {});
    // The python as this (the tracer's) pid namespace sees it.
    let pid = tracer::target::process::descendants(unshare_pid)
        .into_iter()
        .find(|p| {
            tracer::target::process::executable(*p)
                .is_ok_and(|e| e.to_string_lossy().contains("python"))
        })
        .expect("the namespaced python's pid");
    let ns = |p: i32, kind: &str| std::fs::read_link(format!("/proc/{p}/ns/{kind}")).unwrap();
    let me = std::process::id() as i32;
    assert_ne!(ns(pid, "pid"), ns(me, "pid"), "another pid namespace");
    assert_ne!(ns(pid, "mnt"), ns(me, "mnt"), "another mount namespace");
    assert!(
        !std::path::Path::new("/opt/py").exists() && !std::path::Path::new("/app/mix.py").exists(),
        "the target's paths must not exist outside its root"
    );

    let pid_text = pid.to_string();
    let out = run_tracer(
        &[
            "attach",
            "--pid",
            &pid_text,
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
    assert!(out.status.success(), "{}", printed(&out));
    let (results, info) = tracer::output::load_results(&dir.join("r.json")).unwrap();
    let info = info.unwrap();
    assert_eq!(info.target.pid, pid, "the pid this namespace sees");
    assert!(
        results.counts.keys().any(|(f, _)| f == "/app/mix.py"),
        "the container's own paths: {:?}",
        results.files()
    );
    // Sources are read through /proc/PID/root: annotated .cover files of /app/mix.py.
    let out = run_tracer(
        &[
            "attach",
            "--pid",
            &pid_text,
            "--duration",
            "1",
            "--format",
            "cover",
            "-o",
            "cover",
        ],
        &dir,
        TIMEOUT,
    );
    assert!(out.status.success(), "{}", printed(&out));
    let cover = std::fs::read_dir(dir.join("cover"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("mix.cover"))
        .expect("mix.cover written from the container's source");
    let text = std::fs::read_to_string(cover).unwrap();
    assert!(text.contains("def fib(n):"), "{text}");
    // The dump sees it too.
    let out = run_tracer(&["dump", "--pid", &pid_text], &dir, TIMEOUT);
    assert!(out.status.success(), "{}", printed(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("/app/mix.py"));

    let _ = unshare.kill();
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = unshare.wait();
}

//! `tracer top` in a real terminal: tmux runs it against a workload, and the captured pane
//! shows the workload's hot line with its source text; the keys change what it shows and `q`
//! ends it. Without a terminal it refuses in one line.

use crate::common::*;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// How long the pane may take to show what is waited for (a busy machine; no timing asserted).
const PATIENCE: Duration = Duration::from_secs(30);

fn tmux(socket: &Path, args: &[&str]) -> Output {
    Command::new("tmux")
        .arg("-S")
        .arg(socket)
        .args(args)
        .output()
        .expect("tmux runs")
}

fn pane(socket: &Path) -> String {
    String::from_utf8_lossy(&tmux(socket, &["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
}

/// Wait until the pane holds every one of `needles`; the pane's last text either way.
fn wait_for(socket: &Path, needles: &[&str]) -> Result<String, String> {
    let start = Instant::now();
    loop {
        let text = pane(socket);
        if needles.iter().all(|n| text.contains(n)) {
            return Ok(text);
        }
        if start.elapsed() > PATIENCE {
            return Err(text);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn top_shows_the_hot_line_in_a_real_terminal_and_answers_its_keys() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIP: no tmux (Debian's tmux; `make test` installs it): tracer top not run");
        return;
    }
    let python = newest_python();
    let dir = scratch("top");
    let mut workload = Command::new(&python.path)
        .arg(workload("mix.py"))
        .env("WORKLOAD_SECONDS", "60")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let socket = dir.join("tmux.sock");
    let command = format!("{} top --pid {}; sleep 30", tracer_bin(), workload.id());
    let started = tmux(
        &socket,
        &[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "160",
            "-y",
            "45",
            &command,
        ],
    );
    assert!(started.status.success(), "{}", printed(&started));
    let checked = (|| -> Result<(), String> {
        // mix.py's hottest line is squares()'s `yield i * i`: it comes to the top of the
        // lines, shown with its source text.
        wait_for(&socket, &["tracer top: pid", "squares"])?;
        let start = Instant::now();
        loop {
            let text = pane(&socket);
            let first_row = text
                .lines()
                .find(|l| l.contains("mix.py:") && l.contains('%'));
            if first_row.is_some_and(|row| row.contains("yield i * i")) {
                break;
            }
            if start.elapsed() > PATIENCE {
                return Err(format!("the hot line never came first:\n{text}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        tmux(&socket, &["send-keys", "-t", "top", "s"]);
        wait_for(&socket, &["sort: total"])?;
        tmux(&socket, &["send-keys", "-t", "top", "t"]);
        wait_for(&socket, &["thread: 0x"])?;
        tmux(&socket, &["send-keys", "-t", "top", "p"]);
        wait_for(&socket, &["[paused]"])?;
        tmux(&socket, &["send-keys", "-t", "top", "v"]);
        wait_for(&socket, &["view: last refresh"])?;
        tmux(&socket, &["send-keys", "-t", "top", "q"]);
        // The shell's `sleep` holds the pane: the view is gone, the terminal restored.
        let start = Instant::now();
        while pane(&socket).contains("tracer top: pid") {
            if start.elapsed() > PATIENCE {
                return Err(format!("q did not end tracer top:\n{}", pane(&socket)));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    })();
    tmux(&socket, &["kill-server"]);
    let _ = workload.kill();
    let _ = workload.wait();
    if let Err(text) = checked {
        panic!("tracer top's pane:\n{text}");
    }
}

#[test]
fn top_without_a_terminal_says_so_in_one_line() {
    let python = newest_python();
    let mut workload = Command::new(&python.path)
        .arg(workload("mix.py"))
        .env("WORKLOAD_SECONDS", "20")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = workload.id().to_string();
    let out = run_tracer(&["top", "--pid", &pid], &scratch("top-pipe"), PATIENCE);
    let _ = workload.kill();
    let _ = workload.wait();
    assert!(!out.status.success());
    assert_one_line_error(&out, &["terminal", "attach --format json"]);
}

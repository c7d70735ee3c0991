//! What `/proc` says about a process: whether it exists and lives, what it runs, and whether
//! it has a Python interpreter mapped. Read-only; used to give precise errors before attaching
//! and to tell a target that exited from a transient read failure.

use std::fs;
use std::io;
use std::path::PathBuf;

/// The scheduler state of a process, from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcState {
    /// Running, sleeping, stopped: anything but the below.
    Live,
    /// Exited, waiting to be reaped by its parent.
    Zombie,
    /// `X`: being torn down.
    Dead,
}

/// The state of `pid`, or `None` if there is no such process.
pub fn state(pid: i32) -> Option<ProcState> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain ") "; the state follows the
    // last closing parenthesis.
    let after = &stat[stat.rfind(')')? + 1..];
    let code = after.trim_start().chars().next()?;
    Some(match code {
        'Z' => ProcState::Zombie,
        'X' | 'x' => ProcState::Dead,
        _ => ProcState::Live,
    })
}

/// True if `pid` is a kernel thread (`PF_KTHREAD` in its flags): it has no user memory.
pub fn is_kernel_thread(pid: i32) -> bool {
    const PF_KTHREAD: u64 = 0x0020_0000;
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    // After the command: state, ppid, pgrp, session, tty_nr, tpgid, flags.
    stat[close + 1..]
        .split_whitespace()
        .nth(6)
        .and_then(|f| f.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
}

/// True while `pid` exists and has not exited.
pub fn is_alive(pid: i32) -> bool {
    state(pid) == Some(ProcState::Live)
}

/// The command line of `pid`, arguments joined by spaces (empty for kernel threads).
pub fn command_line(pid: i32) -> io::Result<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline"))?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Ok(args.join(" "))
}

/// The executable of `pid` (the target of `/proc/PID/exe`).
pub fn executable(pid: i32) -> io::Result<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe"))
}

/// The short command name of `pid` (`/proc/PID/comm`).
pub fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_owned())
        .unwrap_or_default()
}

/// The file-backed mappings of `pid` whose file looks like a Python interpreter or libpython.
/// An error means the maps could not be read (no such process, or no permission).
pub fn python_mappings(pid: i32) -> io::Result<Vec<String>> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let mut found: Vec<String> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| looks_like_python(path))
        .map(str::to_owned)
        .collect();
    found.dedup();
    Ok(found)
}

/// `python`, `python3.12`, `libpython3.12.so.1.0`, `python2.7d`: the interpreter's binary or
/// shared library by its file name.
fn looks_like_python(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let rest = name
        .strip_prefix("libpython")
        .or_else(|| name.strip_prefix("python"));
    match rest {
        Some(rest) => rest
            .chars()
            .next()
            .is_none_or(|c| c.is_ascii_digit() || c == '.'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_file_names() {
        assert!(looks_like_python("/usr/bin/python3.11"));
        assert!(looks_like_python("/x/lib/libpython3.12.so.1.0"));
        assert!(looks_like_python("/x/bin/python"));
        assert!(!looks_like_python(
            "/usr/lib/python3.11/lib-dynload/_ssl.so"
        ));
        assert!(!looks_like_python("/usr/bin/pythonista"));
        assert!(!looks_like_python("/usr/lib/libc.so.6"));
    }

    #[test]
    fn this_process_is_alive_and_not_python() {
        let me = std::process::id() as i32;
        assert!(is_alive(me));
        assert!(python_mappings(me).unwrap().is_empty());
        assert!(state(i32::MAX).is_none());
    }
}

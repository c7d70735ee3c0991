//! What `/proc` says about a process: whether it exists and lives, what it runs, and whether
//! it has a Python interpreter mapped. Read-only; used to give precise errors before attaching
//! and to tell a target that exited from a transient read failure.

use super::proc;
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
    Some(match proc::stat(pid)?.state()? {
        'Z' => ProcState::Zombie,
        'X' | 'x' => ProcState::Dead,
        _ => ProcState::Live,
    })
}

/// True if `pid` is a kernel thread (`PF_KTHREAD` in its flags): it has no user memory.
pub fn is_kernel_thread(pid: i32) -> bool {
    const PF_KTHREAD: u64 = 0x0020_0000;
    proc::stat(pid)
        .and_then(|stat| stat.flags())
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
}

/// True while `pid` exists and has not exited.
pub fn is_alive(pid: i32) -> bool {
    state(pid) == Some(ProcState::Live)
}

/// When `pid` started, in clock ticks since boot (orders processes by age).
pub fn start_time(pid: i32) -> Option<u64> {
    proc::stat(pid)?.start_time()
}

/// The parent of `pid`.
pub fn parent(pid: i32) -> Option<i32> {
    proc::stat(pid)?.ppid()
}

/// Every pid visible in `/proc` (in this pid namespace).
pub fn all_pids() -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Live processes whose command line contains `pattern`, oldest first, leaving out this
/// process and its ancestors (whose command lines may name the pattern too: `sh -c 'tracer
/// attach --name app'`).
pub fn find_by_command_line(pattern: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut ancestors = vec![me];
    let mut cursor = me;
    for _ in 0..64 {
        match parent(cursor) {
            Some(p) if p > 0 && !ancestors.contains(&p) => {
                ancestors.push(p);
                cursor = p;
            }
            _ => break,
        }
    }
    let mut found: Vec<(u64, i32)> = all_pids()
        .into_iter()
        .filter(|pid| !ancestors.contains(pid))
        .filter(|pid| is_alive(*pid))
        .filter(|pid| command_line(*pid).is_ok_and(|c| c.contains(pattern)))
        .map(|pid| (start_time(pid).unwrap_or(u64::MAX), pid))
        .collect();
    found.sort();
    found.into_iter().map(|(_, pid)| pid).collect()
}

/// The live descendants of `pid` (children, grandchildren...), found from every process's
/// parent in `/proc`.
pub fn descendants(pid: i32) -> Vec<i32> {
    let parents: Vec<(i32, i32)> = all_pids()
        .into_iter()
        .filter_map(|p| Some((p, parent(p)?)))
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let of = found[i];
        for &(child, parent) in &parents {
            if parent == of && !found.contains(&child) && is_alive(child) {
                found.push(child);
            }
        }
        i += 1;
    }
    found.remove(0);
    found
}

/// `kernel.yama.ptrace_scope` as this machine has it (`0`..`3`), or `not set` without Yama.
pub fn ptrace_scope() -> String {
    fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "not set".to_owned())
}

/// The command line of `pid`, arguments joined by spaces (empty for kernel threads).
pub fn command_line(pid: i32) -> io::Result<String> {
    Ok(proc::cmdline(pid)?.join(" "))
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
    let mut found: Vec<String> = proc::maps(pid)?
        .iter()
        .filter_map(proc::Mapping::file)
        .filter(|path| looks_like_python(path))
        .map(str::to_owned)
        .collect();
    found.dedup();
    Ok(found)
}

/// The word size and byte order of an ELF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfClass {
    Elf32,
    LittleEndian64,
    BigEndian64,
}

/// The ELF class of `path` as process `pid` sees it (through its root), from the file's
/// identification bytes; `None` if it cannot be read or is no ELF file.
pub fn elf_class(pid: i32, path: &str) -> Option<ElfClass> {
    use std::io::Read;
    let mut ident = [0u8; 6];
    fs::File::open(format!("/proc/{pid}/root{path}"))
        .ok()?
        .read_exact(&mut ident)
        .ok()?;
    if ident[..4] != *b"\x7fELF" {
        return None;
    }
    match (ident[4], ident[5]) {
        (1, _) => Some(ElfClass::Elf32),
        (2, 1) => Some(ElfClass::LittleEndian64),
        (2, 2) => Some(ElfClass::BigEndian64),
        _ => None,
    }
}

/// `python`, `python3.12`, `libpython3.12.so.1.0`, `python2.7d`: the interpreter's binary or
/// shared library by its file name (for attach's checks and the reader's own discovery).
pub fn looks_like_python(path: &str) -> bool {
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

    #[test]
    fn finds_children_and_command_lines_but_not_itself() {
        let mut child = std::process::Command::new("sleep")
            .arg("17.123")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // Until it has exec'd, the child's command line is still this test's.
        let mut found = Vec::new();
        for _ in 0..200 {
            found = find_by_command_line("sleep 17.123");
            if !found.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let descendants = descendants(std::process::id() as i32);
        let started = start_time(pid);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found, vec![pid]);
        assert!(descendants.contains(&pid), "{descendants:?}");
        assert!(find_by_command_line("finds_children_and_command_lines").is_empty());
        assert!(started.is_some());
    }
}

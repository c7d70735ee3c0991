//! `/proc/PID/maps`, `stat`, `status` and `cmdline`, parsed in one place.
//!
//! Written here rather than taken from proc-maps (already linked through py-spy): it joins a
//! path's words with single spaces and refuses a maps file that is not UTF-8, so a Python
//! installed under `/opt/my  app/` (two spaces) or a non-UTF-8 directory would be read as
//! another file. The rules the kernel follows (fs/proc/task_mmu.c, fs/proc/array.c):
//! - a maps line is five space-separated fields, padding to a column, then the path, which is
//!   the rest of the line, spaces and all (`" (deleted)"` appended to a file since unlinked);
//! - in `stat` the command name is in parentheses and may itself hold spaces and `)`: the
//!   fields start after the last `)`.

use std::fs;
use std::io;

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: usize,
    pub end: usize,
    /// `r-xp` and the like.
    pub perms: String,
    /// Offset in the mapped file.
    pub offset: usize,
    /// The mapped file, or `[heap]`, `[stack]`, …; `None` for anonymous memory. A path that is
    /// not UTF-8 is kept with its bad bytes replaced, so it names no file that could be opened.
    pub path: Option<String>,
}

impl Mapping {
    pub fn readable(&self) -> bool {
        self.perms.starts_with('r')
    }

    pub fn writable(&self) -> bool {
        self.perms.as_bytes().get(1) == Some(&b'w')
    }

    /// The path of a mapped file (absolute, not a `[pseudo]` name).
    pub fn file(&self) -> Option<&str> {
        self.path.as_deref().filter(|p| p.starts_with('/'))
    }
}

/// The memory maps of `pid`.
pub fn maps(pid: i32) -> io::Result<Vec<Mapping>> {
    Ok(parse_maps(&fs::read(format!("/proc/{pid}/maps"))?))
}

/// Parse a maps file's text; lines that do not parse are left out.
pub fn parse_maps(text: &[u8]) -> Vec<Mapping> {
    text.split(|&b| b == b'\n')
        .filter_map(parse_maps_line)
        .collect()
}

fn parse_maps_line(line: &[u8]) -> Option<Mapping> {
    let mut rest = line;
    let mut field = || -> Option<&[u8]> {
        let start = rest.iter().position(|&b| b != b' ')?;
        let len = rest[start..]
            .iter()
            .position(|&b| b == b' ')
            .unwrap_or(rest.len() - start);
        let word = &rest[start..start + len];
        rest = &rest[start + len..];
        Some(word)
    };
    let range = std::str::from_utf8(field()?).ok()?;
    let perms = std::str::from_utf8(field()?).ok()?.to_owned();
    let offset = std::str::from_utf8(field()?).ok()?;
    let _device = field()?;
    let _inode = field()?;
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let offset = usize::from_str_radix(offset, 16).ok()?;
    // The path begins after the padding; only the padding's spaces are not part of it.
    let path = rest
        .iter()
        .position(|&b| b != b' ')
        .map(|at| String::from_utf8_lossy(&rest[at..]).into_owned());
    Some(Mapping {
        start,
        end,
        perms,
        offset,
        path,
    })
}

/// The fields of `/proc/PID/stat` after the command name, numbered as in proc(5) minus 3:
/// [`Stat::field`]`(0)` is the state.
#[derive(Debug, Clone)]
pub struct Stat {
    fields: Vec<String>,
}

impl Stat {
    /// proc(5)'s field `n + 3` (0: state, 1: ppid, 6: flags, 19: start time).
    pub fn field(&self, n: usize) -> Option<&str> {
        self.fields.get(n).map(String::as_str)
    }

    /// The one-letter state (`R`, `S`, `Z`, …).
    pub fn state(&self) -> Option<char> {
        self.field(0)?.chars().next()
    }

    pub fn ppid(&self) -> Option<i32> {
        self.field(1)?.parse().ok()
    }

    /// The kernel's `PF_*` flags.
    pub fn flags(&self) -> Option<u64> {
        self.field(6)?.parse().ok()
    }

    /// When the process started, in clock ticks since boot.
    pub fn start_time(&self) -> Option<u64> {
        self.field(19)?.parse().ok()
    }
}

/// `/proc/PID/stat` of `pid`, `None` if there is no such process.
pub fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&fs::read(format!("/proc/{pid}/stat")).ok()?)
}

/// Parse a `stat` line (the command name may hold anything but a newline).
pub fn parse_stat(text: &[u8]) -> Option<Stat> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let after = std::str::from_utf8(&text[close + 1..]).ok()?;
    Some(Stat {
        fields: after.split_whitespace().map(str::to_owned).collect(),
    })
}

/// The arguments of `pid`'s command line (none for a kernel thread or a zombie).
pub fn cmdline(pid: i32) -> io::Result<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline"))?;
    Ok(raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect())
}

/// `/proc/PID/status`: `Name:\tvalue` lines.
#[derive(Debug, Clone)]
pub struct Status {
    text: String,
}

impl Status {
    /// The value of field `name` (without its colon), trimmed.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.text.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key == name).then(|| value.trim())
        })
    }

    /// A field of whitespace-separated numbers (`Uid`, `Gid`, `Groups`).
    pub fn numbers(&self, name: &str) -> Option<Vec<u64>> {
        let value = self.field(name)?;
        value.split_whitespace().map(|v| v.parse().ok()).collect()
    }
}

/// `/proc/PID/status` of `pid`.
pub fn status(pid: i32) -> io::Result<Status> {
    let bytes = fs::read(format!("/proc/{pid}/status"))?;
    Ok(Status {
        text: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_keeps_its_spaces_and_the_padding_goes() {
        let text = b"55d0a000-55d0b000 r--p 00000000 08:01 1234                       /opt/my  app/bin/python3.12\n\
7f00-7f10 rw-p 00001000 00:00 0 \n\
7f10-7f20 r-xp 00002000 08:01 99   /usr/lib/libpython3.12.so.1.0 (deleted)\n\
7ffd-7ffe rw-p 00000000 00:00 0                          [stack]\n";
        let maps = parse_maps(text);
        assert_eq!(maps.len(), 4);
        assert_eq!(maps[0].file(), Some("/opt/my  app/bin/python3.12"));
        assert_eq!((maps[0].start, maps[0].end), (0x55d0a000, 0x55d0b000));
        assert!(maps[0].readable() && !maps[0].writable());
        assert_eq!(maps[1].path, None);
        assert!(maps[1].writable());
        assert_eq!(maps[2].offset, 0x2000);
        assert_eq!(
            maps[2].file(),
            Some("/usr/lib/libpython3.12.so.1.0 (deleted)")
        );
        assert_eq!(maps[3].path.as_deref(), Some("[stack]"));
        assert_eq!(maps[3].file(), None);
    }

    #[test]
    fn a_path_that_is_not_utf8_does_not_lose_its_line() {
        let maps = parse_maps(b"1000-2000 r--p 00000000 08:01 1 /srv/caf\xe9/python3\n");
        assert_eq!(maps.len(), 1);
        assert!(maps[0].file().unwrap().starts_with("/srv/caf"));
        assert!(maps[0].file().unwrap().ends_with("/python3"));
    }

    #[test]
    fn stat_fields_start_after_the_last_parenthesis() {
        let stat = parse_stat(
            b"42 (a) b) c) S 7 42 42 0 -1 4194560 1 2 3 4 10 20 0 0 20 0 1 0 12345 0 0\n",
        )
        .unwrap();
        assert_eq!(stat.state(), Some('S'));
        assert_eq!(stat.ppid(), Some(7));
        assert_eq!(stat.flags(), Some(4194560));
        assert_eq!(stat.start_time(), Some(12345));
    }

    #[test]
    fn our_own_files_parse() {
        let pid = std::process::id() as i32;
        let maps = maps(pid).unwrap();
        assert!(maps.iter().any(|m| m.readable() && m.file().is_some()));
        assert!(stat(pid).unwrap().start_time().is_some());
        let status = status(pid).unwrap();
        assert_eq!(status.numbers("Uid").unwrap().len(), 4);
    }
}

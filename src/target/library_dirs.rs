//! The target's own standard-library and site-packages directories, for `--ignore-stdlib`.
//!
//! Found from what the target has mapped (`/proc/PID/maps`), never from our own Python:
//! - the interpreter binary or libpython (`PREFIX/bin/python3.12`,
//!   `PREFIX/lib/libpython3.12.so.1.0`, `/usr/lib/x86_64-linux-gnu/libpython3.11.so`) gives
//!   `PREFIX/lib/pythonX.Y` (the stdlib, holding `site-packages`), and for `/usr` Debian's
//!   `/usr/lib/python3/dist-packages` and `/usr/local/lib/pythonX.Y`;
//! - every mapped extension module under `…/lib/pythonX.Y/` or `…/site-packages/` /
//!   `…/dist-packages/` gives that directory (this finds virtual environments' packages);
//! - a virtual environment named by the command's first argument (`VENV/bin/python`, with a
//!   `VENV/pyvenv.cfg`) gives `VENV/lib/pythonX.Y`.

use super::proc::{self, Mapping};
use crate::aggregate::filter::normpath;
use crate::reader::PyVersion;
use std::collections::BTreeSet;
use std::path::Path;

/// The library directories of live process `pid`, whose Python is `version`, and its
/// standard-library directory (`PREFIX/lib/pythonX.Y` of its python binary or libpython;
/// libpython wins, as a binary may be a launcher elsewhere), from one read of its maps; empty
/// when they cannot be read.
pub fn of_process(pid: i32, version: PyVersion) -> (Vec<String>, Option<String>) {
    let maps = proc::maps(pid).unwrap_or_default();
    let mut dirs = from_maps(&maps, version);
    if let Some(venv) = venv_of_command(pid) {
        dirs.insert(format!("{venv}/lib/python{version}"));
    }
    (dirs.into_iter().collect(), stdlib_from_maps(&maps, version))
}

/// The standard-library directory the interpreter mapped in `maps` shows.
pub fn stdlib_from_maps(maps: &[Mapping], version: PyVersion) -> Option<String> {
    let mut found: Option<(bool, String)> = None;
    for path in maps.iter().filter_map(Mapping::file) {
        if let Some(prefix) = interpreter_prefix(path) {
            let version = PyVersion::from_file_name(path).unwrap_or(version);
            let is_lib = path
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with("libpython"));
            let dir = normpath(&format!("{prefix}/lib/python{version}"));
            if found.as_ref().is_none_or(|(lib, _)| is_lib && !lib) {
                found = Some((is_lib, dir));
            }
        }
    }
    found.map(|(_, dir)| dir)
}

/// The library directories that the mapped files in `maps` show.
pub fn from_maps(maps: &[Mapping], version: PyVersion) -> BTreeSet<String> {
    let mut dirs = BTreeSet::new();
    for path in maps.iter().filter_map(Mapping::file) {
        if let Some(dir) = versioned_lib_dir(path) {
            dirs.insert(dir);
        }
        for marker in ["/site-packages/", "/dist-packages/"] {
            if let Some(at) = path.find(marker) {
                dirs.insert(path[..at + marker.len() - 1].to_owned());
            }
        }
        if let Some(prefix) = interpreter_prefix(path) {
            let version = PyVersion::from_file_name(path).unwrap_or(version);
            dirs.insert(normpath(&format!("{prefix}/lib/python{version}")));
            if prefix == "/usr" {
                dirs.insert(format!("/usr/lib/python{}/dist-packages", version.major));
                dirs.insert(format!("/usr/local/lib/python{version}"));
            }
        }
    }
    dirs
}

/// `…/lib/pythonX.Y` when `path` lies inside such a directory.
fn versioned_lib_dir(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    for i in 1..parts.len().saturating_sub(1) {
        let is_versioned = parts[i].strip_prefix("python").is_some_and(|v| {
            v.split_once('.')
                .is_some_and(|(a, b)| is_number(a) && is_number(b))
        });
        if parts[i - 1] == "lib" && is_versioned {
            return Some(parts[..=i].join("/"));
        }
    }
    None
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The installation prefix of an interpreter binary (`PREFIX/bin/python…`) or libpython
/// (`PREFIX/lib/libpython…`, `PREFIX/lib/<multiarch>/libpython…`).
fn interpreter_prefix(path: &str) -> Option<String> {
    let file = Path::new(path);
    let name = file.file_name()?.to_str()?;
    let dir = file.parent()?;
    let is_binary = name
        .strip_prefix("python")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_digit()));
    if is_binary && dir.file_name()? == "bin" {
        return Some(dir.parent()?.to_str()?.to_owned());
    }
    if name.starts_with("libpython") {
        let lib = if dir.file_name()? == "lib" {
            dir
        } else {
            dir.parent()
                .filter(|d| d.file_name() == Some("lib".as_ref()))?
        };
        return Some(lib.parent()?.to_str()?.to_owned());
    }
    None
}

/// The virtual environment the command was started from (`VENV/bin/python …` with a
/// `VENV/pyvenv.cfg`), read through the target's root and working directory.
fn venv_of_command(pid: i32) -> Option<String> {
    let argv0 = proc::cmdline(pid).ok()?.into_iter().next()?;
    if !argv0.contains('/') {
        return None;
    }
    let absolute = if argv0.starts_with('/') {
        argv0
    } else {
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
        format!("{}/{argv0}", cwd.display())
    };
    let venv = Path::new(&normpath(&absolute))
        .parent()?
        .parent()?
        .to_owned();
    let venv = venv.to_str()?;
    let config = format!("/proc/{pid}/root{venv}/pyvenv.cfg");
    Path::new(&config).is_file().then(|| venv.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(maps: &str) -> Vec<Mapping> {
        proc::parse_maps(maps.as_bytes())
    }

    #[test]
    fn directories_from_maps() {
        let maps = "\
55d0-55d0f r--p 00000000 08:01 1 /root/.pyenv/versions/3.12.1/bin/python3.12
7f00-7f00f r-xp 00000000 08:01 2 /root/.pyenv/versions/3.12.1/lib/python3.12/lib-dynload/_json.cpython-312-x86_64-linux-gnu.so
7f01-7f01f r-xp 00000000 08:01 3 /home/me/.venv/lib/python3.12/site-packages/fast/_x.so
7f02-7f02f r-xp 00000000 08:01 4 /usr/lib/x86_64-linux-gnu/libc.so.6
7f03-7f03f rw-p 00000000 00:00 0 [heap]
";
        let dirs: Vec<String> = from_maps(&parse(maps), PyVersion::new(3, 12))
            .into_iter()
            .collect();
        assert_eq!(
            dirs,
            vec![
                "/home/me/.venv/lib/python3.12",
                "/home/me/.venv/lib/python3.12/site-packages",
                "/root/.pyenv/versions/3.12.1/lib/python3.12",
            ]
        );
    }

    #[test]
    fn debian_and_libpython_layouts() {
        let maps = "55d0-55d0f r--p 00000000 08:01 1 /usr/bin/python3.11\n\
                    7f00-7f00f r-xp 00000000 08:01 2 /opt/py/lib/libpython3.13.so.1.0\n";
        let dirs = from_maps(&parse(maps), PyVersion::new(3, 11));
        assert!(dirs.contains("/usr/lib/python3.11"));
        assert!(dirs.contains("/usr/lib/python3/dist-packages"));
        assert!(dirs.contains("/usr/local/lib/python3.11"));
        assert!(dirs.contains("/opt/py/lib/python3.13"));
        assert_eq!(
            PyVersion::from_file_name("/x/libpython3.13d.so"),
            Some(PyVersion::new(3, 13))
        );
        assert_eq!(
            stdlib_from_maps(&parse(maps), PyVersion::new(3, 11)).as_deref(),
            Some("/opt/py/lib/python3.13")
        );
        assert_eq!(
            stdlib_from_maps(
                &parse("1-2 r--p 0 0 1 /usr/bin/python3.11\n"),
                PyVersion::new(3, 11)
            )
            .as_deref(),
            Some("/usr/lib/python3.11")
        );
    }
}

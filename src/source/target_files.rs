//! Reading a file as the target process could: the target names the files (a code object's
//! `co_filename` is whatever it says), so a hostile one must not make tracer read what it could
//! not read itself.
//!
//! - Paths resolve inside the target's root (`/proc/PID/root`, held open from attach time so
//!   that it outlives the target) with `openat2(RESOLVE_IN_ROOT)`: `..` and absolute symlinks
//!   stay inside that root, as they would for the target. Magic links (`/proc/self/fd/*`,
//!   `/proc/*/root`) are refused.
//! - Only regular files are opened for reading: the path is first opened `O_PATH` (no open
//!   side effects, no blocking on a FIFO) and checked, then reopened read-only.
//! - The target's credentials (fs uid and gid, groups, `CAP_DAC_OVERRIDE` and
//!   `CAP_DAC_READ_SEARCH`), read while it is alive, must allow reading the file and searching
//!   every directory on the path as written; ACLs are not consulted, so a file readable only
//!   through an ACL is refused (never the other way round).
//! - At most [`super::MAX_SOURCE_BYTES`] are read.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Who the target is, for permission checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// `CAP_DAC_OVERRIDE` or `CAP_DAC_READ_SEARCH` in its effective set: reads anything.
    pub reads_anything: bool,
}

impl Credentials {
    /// The credentials of live process `pid`, from `/proc/PID/status` (fs uid and gid).
    pub fn of_process(pid: i32) -> io::Result<Credentials> {
        let status = crate::target::proc::status(pid)?;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc/PID/status");
        let uid = *status
            .numbers("Uid")
            .ok_or_else(bad)?
            .get(3)
            .ok_or_else(bad)? as u32;
        let gid = *status
            .numbers("Gid")
            .ok_or_else(bad)?
            .get(3)
            .ok_or_else(bad)? as u32;
        let groups = status
            .numbers("Groups")
            .unwrap_or_default()
            .into_iter()
            .map(|g| g as u32)
            .collect();
        let cap_eff = status
            .field("CapEff")
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .unwrap_or(0);
        // linux/capability.h: CAP_DAC_OVERRIDE is 1, CAP_DAC_READ_SEARCH 2.
        let dac_bits = (1 << 1) | (1 << 2);
        Ok(Credentials {
            uid,
            gid,
            groups,
            reads_anything: cap_eff & dac_bits != 0,
        })
    }

    /// True if these credentials grant `want` (a mask of `4` read, `1` search/execute) on a file
    /// with `mode`, owned by `uid`:`gid`.
    pub fn allows(&self, mode: u32, uid: u32, gid: u32, want: u32) -> bool {
        if self.reads_anything {
            // DAC_OVERRIDE still needs one execute bit to execute, but reading and searching
            // are granted.
            return true;
        }
        let class = if uid == self.uid {
            mode >> 6
        } else if gid == self.gid || self.groups.contains(&gid) {
            mode >> 3
        } else {
            mode
        };
        class & want == want
    }
}

/// The target's file system view, kept from attach time.
#[derive(Debug)]
pub struct TargetRoot {
    /// `O_PATH` descriptor of the target's root directory.
    root: OwnedFd,
    /// The target's working directory, inside its root.
    cwd: PathBuf,
    credentials: Credentials,
}

impl TargetRoot {
    /// The root, working directory and credentials of live process `pid`.
    pub fn of_process(pid: i32) -> io::Result<TargetRoot> {
        let credentials = Credentials::of_process(pid)?;
        let root = open_path(libc::AT_FDCWD, &format!("/proc/{pid}/root"), 0, true)?;
        // The working directory as the target sees it. When its root is ours this is the
        // path; in another root, readlink shows the path inside it as well.
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_else(|_| "/".into());
        Ok(TargetRoot {
            root,
            cwd,
            credentials,
        })
    }

    /// A root and credentials given directly (tests).
    pub fn new(root: &Path, cwd: &Path, credentials: Credentials) -> io::Result<TargetRoot> {
        Ok(TargetRoot {
            root: open_path(libc::AT_FDCWD, &root.to_string_lossy(), 0, true)?,
            cwd: cwd.to_path_buf(),
            credentials,
        })
    }

    /// The bytes of `filename` (absolute, or relative to the target's working directory) as
    /// the target could read them, at most `limit` bytes.
    pub fn read(&self, filename: &str, limit: u64) -> io::Result<Vec<u8>> {
        if filename.contains('\0') {
            return Err(refused("a file name with a NUL byte"));
        }
        let inside = if filename.starts_with('/') {
            PathBuf::from(filename)
        } else {
            self.cwd.join(filename)
        };
        let relative = inside.strip_prefix("/").unwrap_or(&inside);
        // Search permission on every directory on the way, as written.
        let mut prefix = PathBuf::new();
        let components: Vec<Component> = relative.components().collect();
        for component in components.iter().take(components.len().saturating_sub(1)) {
            prefix.push(component);
            self.check(&prefix, 1, true)?;
        }
        let file = self.check(relative, 4, false)?;
        let mut bytes = Vec::new();
        file.take(limit).read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// Open `path` inside the root as `O_PATH`, check it is a directory (`directory`) or a
    /// regular file the target may access with `want`; a regular file is returned reopened
    /// read-only.
    fn check(&self, path: &Path, want: u32, directory: bool) -> io::Result<File> {
        let text = if path.as_os_str().is_empty() {
            ".".to_owned()
        } else {
            path.to_string_lossy().into_owned()
        };
        let resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
        let fd = open_path(self.root.as_raw_fd(), &text, resolve, directory)?;
        let file = File::from(fd);
        let meta = file.metadata()?;
        if directory != meta.is_dir() || !(directory || meta.is_file()) {
            return Err(refused("not a regular file"));
        }
        if !self
            .credentials
            .allows(meta.mode(), meta.uid(), meta.gid(), want)
        {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the traced process could not read it",
            ));
        }
        if directory {
            return Ok(file);
        }
        if meta.len() > super::MAX_SOURCE_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "source file too large",
            ));
        }
        // Reopen the very inode for reading: a regular file, so no side effect, no blocking.
        File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))
    }
}

fn refused(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.to_owned())
}

/// `openat2(dir, path, O_PATH | O_CLOEXEC [| O_DIRECTORY], resolve)`.
fn open_path(dir: i32, path: &str, resolve: u64, directory: bool) -> io::Result<OwnedFd> {
    let c_path = std::ffi::CString::new(path).map_err(|_| refused("a NUL byte"))?;
    let mut flags = libc::O_PATH | libc::O_CLOEXEC;
    if directory {
        flags |= libc::O_DIRECTORY;
    }
    /// `struct open_how` of linux/openat2.h (libc's is non-exhaustive).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: flags as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: `c_path` is a valid NUL-terminated string and `how` a valid open_how of the size
    // passed; the returned descriptor is owned by us alone.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            c_path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        let err = io::Error::last_os_error();
        // openat2 is missing before Linux 5.6 and under qemu-user before 9.0: resolve the
        // path ourselves, with the same confinement.
        if err.raw_os_error() == Some(libc::ENOSYS) {
            return if resolve & libc::RESOLVE_IN_ROOT != 0 {
                resolve_in_root(dir, path, directory)
            } else {
                open_at(dir, &c_path, flags)
            };
        }
        return Err(err);
    }
    // SAFETY: a fresh descriptor returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Symbolic links followed in one path at most (the kernel's own limit).
const MAX_SYMLINKS: usize = 40;
/// Path components handled at most, symlink targets included.
const MAX_COMPONENTS: usize = 4096;

fn open_at(dir: i32, path: &std::ffi::CStr, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated; the returned descriptor is owned by us alone.
    let fd = unsafe { libc::openat(dir, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat2(root, path, O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` done by hand: one
/// component at a time with `O_NOFOLLOW`; a symlink's text is resolved again inside the root
/// (an absolute one from the root, `..` never above it), so nothing leads out of the root and
/// no kernel "magic" link is followed.
fn resolve_in_root(root: i32, path: &str, directory: bool) -> io::Result<OwnedFd> {
    use std::collections::VecDeque;
    let dot = std::ffi::CString::new(".").map_err(|_| refused("a NUL byte"))?;
    let mut dirs: Vec<OwnedFd> = vec![open_at(root, &dot, libc::O_PATH | libc::O_CLOEXEC)?];
    let mut pending: VecDeque<Vec<u8>> = path
        .as_bytes()
        .split(|b| *b == b'/')
        .map(<[u8]>::to_vec)
        .collect();
    let (mut links, mut handled) = (0usize, 0usize);
    let mut last: Option<OwnedFd> = None;
    while let Some(component) = pending.pop_front() {
        handled += 1;
        if handled > MAX_COMPONENTS {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        if let Some(fd) = last.take() {
            dirs.push(fd); // the previous component was a directory on the way
        }
        match component.as_slice() {
            b"" | b"." => continue,
            b".." => {
                if dirs.len() > 1 {
                    dirs.pop();
                }
                continue;
            }
            _ => {}
        }
        let name = std::ffi::CString::new(component.clone()).map_err(|_| refused("a NUL byte"))?;
        let current = dirs.last().map_or(root, |d| d.as_raw_fd());
        let fd = open_at(
            current,
            &name,
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )?;
        let meta = File::from(fd.try_clone()?).metadata()?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let mut target = vec![0u8; libc::PATH_MAX as usize];
            // SAFETY: `target` is a writable buffer of the length given.
            let n = unsafe {
                libc::readlinkat(
                    current,
                    name.as_ptr(),
                    target.as_mut_ptr().cast(),
                    target.len(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            target.truncate(n as usize);
            if target.starts_with(b"/") {
                dirs.truncate(1);
            }
            for part in target.split(|b| *b == b'/').rev() {
                pending.push_front(part.to_vec());
            }
            continue;
        }
        last = Some(fd);
    }
    let fd = match last {
        Some(fd) => fd,
        None => dirs.pop().ok_or_else(|| refused("an empty path"))?,
    };
    if directory && !File::from(fd.try_clone()?).metadata()?.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The fallback for kernels and emulators without openat2 keeps paths inside the root.
    #[test]
    fn resolving_by_hand_stays_in_the_root() {
        let base = std::env::temp_dir().join(format!("tracer-resolve-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("app/lib")).unwrap();
        std::fs::write(root.join("app/lib/m.py"), "x = 1\n").unwrap();
        std::fs::write(base.join("outside.txt"), "secret\n").unwrap();
        std::os::unix::fs::symlink("/app/lib", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../outside.txt", root.join("app/escape")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let root_fd = open_at(
            libc::AT_FDCWD,
            &std::ffi::CString::new(root.to_str().unwrap()).unwrap(),
            libc::O_PATH | libc::O_DIRECTORY,
        )
        .unwrap();
        let read = |path: &str| -> io::Result<String> {
            let fd = resolve_in_root(root_fd.as_raw_fd(), path, false)?;
            std::fs::read_to_string(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        };
        assert_eq!(read("app/lib/m.py").unwrap(), "x = 1\n");
        assert_eq!(read("abs/m.py").unwrap(), "x = 1\n"); // absolute link: from the root
        assert_eq!(read("../../app/lib/m.py").unwrap(), "x = 1\n"); // .. stops at the root
        assert!(
            read("app/escape").is_err(),
            "a link out of the root resolves inside it"
        );
        assert!(read("loop").is_err());
        assert!(resolve_in_root(root_fd.as_raw_fd(), "app", true).is_ok());
        assert!(resolve_in_root(root_fd.as_raw_fd(), "app/lib/m.py", true).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }

    fn nobody() -> Credentials {
        Credentials {
            uid: 65534,
            gid: 65534,
            groups: vec![],
            reads_anything: false,
        }
    }

    #[test]
    fn permission_classes() {
        let c = nobody();
        assert!(c.allows(0o604, 0, 0, 4));
        assert!(!c.allows(0o640, 0, 0, 4));
        assert!(c.allows(0o400, 65534, 0, 4));
        assert!(
            !c.allows(0o044, 65534, 0, 4),
            "owner class decides for the owner"
        );
        assert!(c.allows(0o040, 1, 65534, 4));
        assert!(!c.allows(0o600, 0, 0, 1));
    }

    #[test]
    fn stays_inside_the_root_and_within_rights() {
        let base = std::env::temp_dir().join(format!("tracer-root-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::fs::write(base.join("outside.py"), "secret = 1\n").unwrap();
        std::fs::write(root.join("app/main.py"), "x = 1\n").unwrap();
        std::fs::write(root.join("app/private.py"), "p = 1\n").unwrap();
        std::fs::set_permissions(
            root.join("app/private.py"),
            PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        for dir in [&base, &root, &root.join("app")] {
            std::fs::set_permissions(dir, PermissionsExt::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(root.join("app/main.py"), PermissionsExt::from_mode(0o644))
            .unwrap();
        let outside = base.join("outside.py");
        std::os::unix::fs::symlink(&outside, root.join("app/link.py")).unwrap();
        std::os::unix::fs::symlink("/proc/self/root/etc/passwd", root.join("app/magic.py"))
            .unwrap();
        let owner = std::fs::metadata(root.join("app/private.py"))
            .unwrap()
            .uid();
        let target = TargetRoot::new(&root, Path::new("/app"), nobody()).unwrap();
        let limit = 1 << 20;
        assert_eq!(target.read("/app/main.py", limit).unwrap(), b"x = 1\n");
        assert_eq!(target.read("main.py", limit).unwrap(), b"x = 1\n");
        assert_eq!(
            target.read("../../../app/main.py", limit).unwrap(),
            b"x = 1\n"
        );
        // `..` never leaves the root; an absolute symlink resolves inside it (no such file).
        assert!(target.read("../../outside.py", limit).is_err());
        assert!(target.read("/app/link.py", limit).is_err());
        assert!(target.read("/app/magic.py", limit).is_err());
        assert!(target.read("/app", limit).is_err(), "a directory");
        assert!(target.read("/app/main.py\0x", limit).is_err());
        assert!(target.read(&"a/".repeat(5000), limit).is_err());
        if owner != 65534 {
            assert!(target.read("/app/private.py", limit).is_err());
        }
        let as_owner = TargetRoot::new(
            &root,
            Path::new("/"),
            Credentials {
                uid: owner,
                ..nobody()
            },
        )
        .unwrap();
        assert_eq!(as_owner.read("/app/private.py", limit).unwrap(), b"p = 1\n");
        assert_eq!(as_owner.read("/app/main.py", 3).unwrap(), b"x =");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let base = std::env::temp_dir().join(format!("tracer-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let fifo = std::ffi::CString::new(base.join("f.py").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let target = TargetRoot::new(&base, Path::new("/"), nobody()).unwrap();
        assert!(target.read("/f.py", 100).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}

//! First step of the data path: from a pid to a [`StackReader`] on the interpreter inside it.
//!
//! Checks are made in the order a user would want them explained: does the process exist, can
//! we read it, does it run Python, can we find the interpreter. Every failure is one line that
//! names its cause and its fix.

use crate::reader::discover::{self, Discovered};
use crate::reader::layout;
use crate::reader::sample::{CodeId, CodeInfo, Sample};
use crate::reader::PyVersion;
use crate::reader::{DirectReader, PySpyReader, StackReader};
use crate::target::process::{self, ProcState};
use std::io;
use std::time::{Duration, Instant};

/// What we know of the traced process, recorded with the results.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TargetInfo {
    pub pid: i32,
    /// `3.12.1`.
    pub python_version: String,
    pub executable: String,
    pub command_line: String,
    /// The stack reader used: `direct` (tracer's own) or `py-spy`.
    pub reader: String,
    /// A free-threaded build (`--disable-gil`, `3.13t`).
    pub free_threaded: bool,
}

impl TargetInfo {
    /// The target's Python version, if [`TargetInfo::python_version`] names one (a results
    /// file may not).
    pub fn version(&self) -> Option<PyVersion> {
        PyVersion::from_release(&self.python_version)
    }
}

/// Why attaching failed. Each message is one line and names the fix.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("no process with pid {0}: check the pid (`ps -p {0}`), the process may have exited")]
    NoSuchProcess(i32),
    #[error("process {0} has exited (zombie) and cannot be traced")]
    Exited(i32),
    #[error(
        "permission denied reading process {pid}: run as root or with CAP_SYS_PTRACE \
         (docker: --cap-add SYS_PTRACE; a Kubernetes sidecar: securityContext.capabilities.add \
         [SYS_PTRACE] and shareProcessNamespace: true in the pod spec), or as the target's user \
         with kernel.yama.ptrace_scope=0 (sysctl kernel.yama.ptrace_scope; now {scope})"
    )]
    PermissionDenied { pid: i32, scope: String },
    #[error("process {pid} ({name}) is not a Python process: no python binary or libpython is mapped in it")]
    NotPython { pid: i32, name: String },
    #[error(
        "process {pid} runs a {kind} Python ({path}): tracer reads 64-bit little-endian \
         interpreters only; trace a 64-bit build of the program"
    )]
    UnsupportedBinary {
        pid: i32,
        path: String,
        kind: &'static str,
    },
    #[error("process {pid} ({name}) is a kernel thread, not a Python process")]
    KernelThread { pid: i32, name: String },
    #[error("cannot find the Python interpreter in process {pid}: {reason}")]
    NoInterpreter { pid: i32, reason: String },
    #[error(
        "process {pid} runs Python {version}, which this tracer does not support (its own reader \
         reads {direct}; py-spy's reader is used for older versions): upgrade tracer{hint}"
    )]
    Unsupported {
        pid: i32,
        version: String,
        /// The versions tracer's own reader reads, as `3.8–3.15`.
        direct: String,
        /// What else the user may try.
        hint: String,
    },
}

/// The versions tracer's own reader reads: those with a generated layout.
pub fn direct_versions() -> String {
    format!("{}–{}", layout::first_version(), newest_direct_version())
}

/// The newest version tracer's own reader reads.
fn newest_direct_version() -> PyVersion {
    layout::newest_version()
}

/// Whether `--reader auto` may use py-spy's reader on `version`: below our own reader's range
/// (2.7, 3.6, 3.7, tested in tests/it/readers.rs) or inside it (py-spy is compared with ours
/// there, tests/it/reader_differential.rs). Never above it: nothing here verifies py-spy's
/// bindings on a version newer than our newest table.
fn py_spy_known(version: PyVersion) -> bool {
    version <= newest_direct_version()
}

fn unsupported(pid: i32, version_text: &str, choice: ReaderChoice) -> AttachError {
    let hint = if choice == ReaderChoice::PySpy {
        String::new()
    } else {
        format!(
            ", or pass --reader py-spy to try py-spy {}'s reader, which tracer does not verify \
             on Python {version_text}",
            crate::reader::PY_SPY_VERSION
        )
    };
    AttachError::Unsupported {
        pid,
        version: version_text.to_owned(),
        direct: direct_versions(),
        hint,
    }
}

/// Which stack reader to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReaderChoice {
    /// Our own reader where the version has a layout (3.8–3.15), py-spy's for older versions;
    /// newer versions are refused.
    #[default]
    Auto,
    /// Our own reader, or an error.
    Direct,
    /// py-spy's reader (the reference).
    #[value(name = "py-spy")]
    PySpy,
}

/// An attached target: the reader of its stacks and what it is.
pub struct Attached {
    pub reader: Box<dyn StackReader>,
    /// The target's Python version (as [`TargetInfo::python_version`] spells it).
    pub version: PyVersion,
    pub info: TargetInfo,
    /// Codes the reader interned before sampling began (while probing readiness): the sampler
    /// sends them ahead of its first sample.
    pub pending_codes: Vec<(CodeId, CodeInfo)>,
}

/// Attach to `pid` with the chosen reader.
pub fn attach_with(
    pid: i32,
    blocking: bool,
    choice: ReaderChoice,
) -> Result<Attached, AttachError> {
    attach_inner(pid, blocking, choice, true)
}

/// The checks made before reading a process, in the order a user wants them explained: it
/// exists, it has not exited, it is no kernel thread, its maps can be read, it runs Python.
pub fn check_target(pid: i32) -> Result<(), AttachError> {
    if pid <= 0 {
        return Err(AttachError::NoSuchProcess(pid));
    }
    match process::state(pid) {
        None => return Err(AttachError::NoSuchProcess(pid)),
        Some(ProcState::Zombie) | Some(ProcState::Dead) => return Err(AttachError::Exited(pid)),
        Some(ProcState::Live) => {}
    }
    if process::is_kernel_thread(pid) {
        return Err(AttachError::KernelThread {
            pid,
            name: process::comm(pid),
        });
    }
    let mappings = match process::python_mappings(pid) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(AttachError::PermissionDenied {
                pid,
                scope: process::ptrace_scope(),
            })
        }
        Err(_) if process::state(pid).is_none() => return Err(AttachError::NoSuchProcess(pid)),
        Err(e) => {
            return Err(AttachError::NoInterpreter {
                pid,
                reason: format!("reading its memory maps failed: {e}"),
            })
        }
    };
    if mappings.is_empty() {
        return Err(AttachError::NotPython {
            pid,
            name: process::comm(pid),
        });
    }
    // Every layout is for LP64 little-endian: a 32-bit or big-endian interpreter would be
    // found, and then read as garbage. (Another 64-bit little-endian CPU under qemu-user is
    // fine: its memory is mapped 1:1 and its structures are laid out the same.)
    for path in &mappings {
        let kind = match process::elf_class(pid, path) {
            Some(process::ElfClass::Elf32) => "32-bit",
            Some(process::ElfClass::BigEndian64) => "big-endian",
            _ => continue,
        };
        return Err(AttachError::UnsupportedBinary {
            pid,
            path: path.clone(),
            kind,
        });
    }
    Ok(())
}

/// Attach; with `auto`, fall back to py-spy's reader when ours cannot read the interpreter only
/// if `fallback` (a starting interpreter is retried with ours first).
fn attach_inner(
    pid: i32,
    blocking: bool,
    choice: ReaderChoice,
    fallback: bool,
) -> Result<Attached, AttachError> {
    check_target(pid)?;
    let Opened {
        reader,
        version,
        version_text: python_version,
        reader_name,
        free_threaded,
    } = open_reader(pid, blocking, choice, fallback)?;
    let info = TargetInfo {
        pid,
        python_version,
        reader: reader_name.to_owned(),
        executable: process::executable(pid)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        command_line: process::command_line(pid).unwrap_or_default(),
        free_threaded,
    };
    Ok(Attached {
        reader,
        version,
        info,
        pending_codes: Vec::new(),
    })
}

/// A reader opened on the target, with the target's version.
struct Opened {
    reader: Box<dyn StackReader>,
    version: PyVersion,
    /// As `3.12.1`.
    version_text: String,
    /// `direct` or `py-spy`.
    reader_name: &'static str,
    /// A free-threaded build (py-spy's reader reads none).
    free_threaded: bool,
}

/// The reader `choice` asks for, and the target's version.
fn open_reader(
    pid: i32,
    blocking: bool,
    choice: ReaderChoice,
    fallback: bool,
) -> Result<Opened, AttachError> {
    if choice != ReaderChoice::PySpy {
        match discover::find_target(pid) {
            Ok(Discovered {
                version_text,
                version,
                target: Some((target, _)),
                ..
            }) => {
                let pause = if blocking {
                    Some(remoteprocess::Process::new(pid).map_err(|e| classify(pid, e.into()))?)
                } else {
                    None
                };
                let free_threaded = target.layout.free_threaded;
                return Ok(Opened {
                    free_threaded,
                    reader: Box::new(DirectReader::new(target, pause)),
                    version,
                    version_text,
                    reader_name: "direct",
                });
            }
            Ok(Discovered {
                version_text,
                version,
                ..
            }) if version > newest_direct_version() => {
                return Err(unsupported(pid, &version_text, choice));
            }
            Ok(Discovered { version_text, .. }) if choice == ReaderChoice::Direct => {
                return Err(AttachError::NoInterpreter {
                    pid,
                    reason: format!("tracer's own reader has no layout for Python {version_text}: use --reader py-spy"),
                })
            }
            Ok(_) => {}
            Err(e) if choice == ReaderChoice::Direct || !fallback => return Err(classify(pid, e)),
            Err(e) => {
                let err = classify(pid, e);
                if !matches!(err, AttachError::NoInterpreter { .. }) {
                    return Err(err);
                }
                // py-spy may still find what our discovery did not.
            }
        }
    }
    let reader = PySpyReader::new(pid, blocking).map_err(|e| classify(pid, e))?;
    let version_text = reader.python_version();
    let version = reader.version();
    // Our discovery may have failed before it knew the version: py-spy's answer decides.
    let known = py_spy_known(version);
    if !known && choice != ReaderChoice::PySpy {
        return Err(unsupported(pid, &version_text, choice));
    }
    if !known {
        eprintln!(
            "tracer: warning: reading Python {version_text} with py-spy {}'s reader, which \
             tracer does not verify on this version",
            crate::reader::PY_SPY_VERSION
        );
    }
    Ok(Opened {
        reader: Box::new(reader),
        version,
        version_text,
        reader_name: "py-spy",
        free_threaded: false,
    })
}

/// Attach to a process that is starting up: retry while it lives until its interpreter can be
/// read or `timeout` passes. A freshly started Python needs a few milliseconds before its
/// interpreter state exists.
pub fn attach_when_ready(
    pid: i32,
    blocking: bool,
    choice: ReaderChoice,
    timeout: Duration,
) -> Result<Attached, AttachError> {
    let start = Instant::now();
    loop {
        // Our reader gets the first half of the time to find a starting interpreter.
        let fallback = start.elapsed() >= timeout / 2;
        let err = match attach_inner(pid, blocking, choice, fallback) {
            Ok(mut attached) => {
                // A reader that cannot read yet is not ready either.
                let mut sample = Sample::default();
                let mut codes = Vec::new();
                let probe = attached.reader.read(&mut sample, &mut codes);
                attached.pending_codes.append(&mut codes);
                match probe {
                    Ok(()) => return Ok(attached),
                    Err(e) => AttachError::NoInterpreter {
                        pid,
                        reason: e.to_string(),
                    },
                }
            }
            Err(e) => e,
        };
        let retryable = matches!(
            err,
            AttachError::NotPython { .. } | AttachError::NoInterpreter { .. }
        );
        if !retryable || !process::is_alive(pid) || start.elapsed() >= timeout {
            return Err(err);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Turn py-spy's error chain into one of ours.
fn classify(pid: i32, err: anyhow::Error) -> AttachError {
    let permission = err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::PermissionDenied)
            || cause.to_string().contains("Operation not permitted")
            || cause.to_string().contains("Permission denied")
    });
    if permission {
        return AttachError::PermissionDenied {
            pid,
            scope: process::ptrace_scope(),
        };
    }
    match process::state(pid) {
        None => AttachError::NoSuchProcess(pid),
        Some(ProcState::Zombie) | Some(ProcState::Dead) => AttachError::Exited(pid),
        Some(ProcState::Live) => AttachError::NoInterpreter {
            pid,
            reason: format!("{err:#}").replace('\n', " "),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::layout::layout_for;

    /// The decision `open_reader` makes on a version newer than every table, without a target
    /// of that version (none exists yet): no layout for it, py-spy's reader not offered under
    /// `auto`, and the refusal one line that names the version, the versions read and the fix.
    /// The newest version itself is read (tests/it: trace_compat and the others on 3.15).
    #[test]
    fn a_version_newer_than_the_newest_table_is_refused_in_one_line() {
        let newest = newest_direct_version();
        let newer = PyVersion::new(newest.major, newest.minor + 1);
        assert!(layout_for(newest).is_some());
        assert!(layout_for(newer).is_none());
        assert!(py_spy_known(newest));
        assert!(!py_spy_known(newer));
        assert_eq!(
            PyVersion::from_release("3.16.0"),
            Some(PyVersion::new(3, 16))
        );
        let text = format!("{newer}.0");
        for choice in [
            ReaderChoice::Auto,
            ReaderChoice::Direct,
            ReaderChoice::PySpy,
        ] {
            let message = unsupported(4242, &text, choice).to_string();
            assert!(!message.contains('\n'), "{message}");
            for needle in [
                format!("Python {text},"),
                "process 4242".to_owned(),
                format!("reads 3.8–{}.{}", newest.major, newest.minor),
                "upgrade tracer".to_owned(),
            ] {
                assert!(message.contains(&needle), "{needle:?} not in {message}");
            }
            assert_eq!(
                message.contains("--reader py-spy"),
                choice != ReaderChoice::PySpy,
                "{message}"
            );
        }
    }
}

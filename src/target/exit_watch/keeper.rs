//! The keeper: a small process that outlives a tracer killed by SIGKILL and clears the
//! watchpoint it left armed in the child.
//!
//! The kernel detaches a dead tracer's tracees but leaves their debug registers as they were,
//! so a watch armed on `_PyRuntime._finalizing` would stop the child with a SIGTRAP no one
//! catches when it finalizes: it would die of it (status 133) instead of exiting as it would
//! have. `tracer run --snapshot` therefore starts this binary's hidden `keep-watch` command
//! before the child, and `attach --snapshot --subprocesses` before its first watch; one keeper
//! serves every watch of a run (each process of a family). The keeper ignores the terminal's signals, and reads from a pipe whose
//! only writer is the tracer:
//!
//! - `watch PID START`: the tracer is about to arm a watchpoint in thread `PID` (whose
//!   `/proc/PID/stat` start time is `START`, so that a reused pid is never touched);
//! - `release PID`: that watchpoint is cleared, or its thread is gone.
//!
//! At the end of the pipe, when the tracer is gone, the keeper seizes each thread still
//! watched (retrying while the dying tracer still holds it), stops it, clears the watchpoint,
//! and detaches: the child goes on as if never traced. A SIGTRAP of the watchpoint itself,
//! if it had fired, is suppressed; any other signal is delivered.

use super::{arch, ptrace};
use crate::target::process;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The hidden subcommand that runs the keeper.
pub const COMMAND: &str = "keep-watch";

/// How long the keeper waits for the dying tracer to let go of a thread, and then for the
/// thread to stop.
const PATIENCE: Duration = Duration::from_secs(5);

/// The tracer's side: the keeper process and the pipe to it, shared by every watch (clones
/// are handles on the same keeper; it ends when the last is dropped).
#[derive(Clone)]
pub struct Keeper {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    process: Child,
    pipe: Option<ChildStdin>,
}

impl Keeper {
    /// Start the keeper (this same binary, through `/proc/self/exe`).
    pub fn start() -> anyhow::Result<Keeper> {
        let mut command = Command::new("/proc/self/exe");
        command
            .arg(COMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        // SAFETY: only `signal`, async-signal-safe, between fork and exec. Ignored signals stay
        // ignored across exec, so a Ctrl-C at once cannot end the keeper before it runs.
        unsafe {
            command.pre_exec(|| {
                for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
                    libc::signal(signal, libc::SIG_IGN);
                }
                Ok(())
            });
        }
        let mut process = command
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start the watch's keeper: {e}"))?;
        let pipe = process.stdin.take();
        Ok(Keeper {
            inner: Arc::new(Mutex::new(Inner { process, pipe })),
        })
    }

    /// The keeper's pid, which the child names as its ptracer (Yama's `PR_SET_PTRACER`).
    pub fn pid(&self) -> i32 {
        self.lock().process.id() as i32
    }

    /// Tell the keeper that a watchpoint is about to be armed in `tid`. An error means the
    /// keeper is gone: the watchpoint must then not be armed.
    pub fn watch(&self, tid: i32) -> anyhow::Result<()> {
        let start =
            process::start_time(tid).ok_or_else(|| anyhow::anyhow!("the child {tid} is gone"))?;
        self.say(&format!("watch {tid} {start}"))
            .map_err(|e| anyhow::anyhow!("the watch's keeper is gone ({e})"))
    }

    /// Tell the keeper that `tid`'s watchpoint is cleared or that `tid` is gone.
    pub fn release(&self, tid: i32) {
        let _ = self.say(&format!("release {tid}"));
    }

    fn say(&self, line: &str) -> std::io::Result<()> {
        let mut inner = self.lock();
        let pipe = inner
            .pipe
            .as_mut()
            .ok_or_else(|| std::io::Error::other("closed"))?;
        pipe.write_all(format!("{line}\n").as_bytes())?;
        pipe.flush()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The end of the pipe ends the keeper; it has nothing left to clear if every watch
        // was released.
        drop(self.pipe.take());
        let _ = self.process.wait();
    }
}

/// The keeper's side (`tracer keep-watch`): read the pipe to its end, then clear what is
/// still watched. Returns the exit status.
pub fn keep() -> i32 {
    // SAFETY: naming this thread (so the process shows as what it is in ps and top).
    unsafe { libc::prctl(libc::PR_SET_NAME, c"tracer-keeper".as_ptr()) };
    let mut watched: BTreeMap<i32, u64> = BTreeMap::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["watch", tid, start] => {
                if let (Ok(tid), Ok(start)) = (tid.parse(), start.parse()) {
                    watched.insert(tid, start);
                }
            }
            ["release", tid] => {
                if let Ok(tid) = tid.parse::<i32>() {
                    watched.remove(&tid);
                }
            }
            _ => eprintln!("tracer keep-watch: ignored {line:?}"),
        }
    }
    let mut status = 0;
    for (tid, start) in watched {
        if let Err(e) = clear(tid, start) {
            eprintln!(
                "tracer: warning: the watchpoint left in process {tid} by a killed tracer could \
                 not be cleared ({e}); it will stop with SIGTRAP when its interpreter finalizes"
            );
            status = 1;
        }
    }
    status
}

/// Whether `tid` is the thread the watch was armed in and still running (not reused, not a
/// zombie).
fn same_live_thread(tid: i32, start: u64) -> bool {
    process::start_time(tid) == Some(start)
        && !matches!(
            crate::target::proc::stat(tid).and_then(|s| s.state()),
            Some('Z' | 'X' | 'x') | None
        )
}

/// Seize `tid`, stop it, clear its watchpoint, detach.
fn clear(tid: i32, start: u64) -> Result<(), String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if !same_live_thread(tid, start) {
            return Ok(());
        }
        match ptrace(libc::PTRACE_SEIZE, tid, 0, 0) {
            Ok(_) => break,
            // Still traced by the tracer, whose exit detaches it after its pipe closed.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
            Err(e) => return Err(format!("ptrace seize: {e}")),
        }
    }
    if !same_live_thread(tid, start) {
        // Reused between the check and the seize: leave it as it is.
        let _ = ptrace(libc::PTRACE_DETACH, tid, 0, 0);
        return Ok(());
    }
    ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0).map_err(|e| format!("ptrace interrupt: {e}"))?;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a pointer to a local.
        let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL | libc::WNOHANG) };
        if r == 0 {
            if Instant::now() > deadline {
                let _ = ptrace(libc::PTRACE_DETACH, tid, 0, 0);
                return Err("it did not stop".into());
            }
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        if r < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(()),
                _ => return Err(format!("waitpid: {e}")),
            }
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            return Ok(());
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let signal = libc::WSTOPSIG(status);
        let event_stop = status >> 16 == libc::PTRACE_EVENT_STOP;
        // In a signal-delivery-stop, the watchpoint's own trap is suppressed and any other
        // signal delivered.
        let deliver = if event_stop || (signal == libc::SIGTRAP && arch::fired(tid)) {
            0
        } else {
            signal
        };
        let cleared = arch::disarm(tid);
        let _ = ptrace(libc::PTRACE_DETACH, tid, 0, deliver as usize);
        return cleared.map_err(|e| format!("clearing the debug registers: {e}"));
    }
}

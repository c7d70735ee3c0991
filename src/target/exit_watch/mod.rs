//! The moment `tracer run --snapshot` takes its final snapshot, and each process's of `attach
//! --snapshot --subprocesses`: when the process's interpreter starts finalizing (atexit has
//! run, modules are not yet cleared), or, if it never does (`os._exit`, a fatal signal), when it
//! exits with its memory still mapped.
//!
//! `tracer run` is the child's parent, so it may trace it; `attach` may trace a family's
//! processes where ptrace allows it (Yama's `ptrace_scope`, or root). A dedicated thread seizes
//! the process's main thread with ptrace (`PTRACE_SEIZE`: no stop), interrupts it once to arm a
//! hardware write watchpoint on `_PyRuntime._finalizing` in its debug registers, and from then
//! on is its only waiter: `Py_FinalizeEx` writing that field traps (a SIGTRAP stop of the main
//! thread, which holds the GIL), the snapshot is taken, the watchpoint disarmed and the process
//! continued with the trap suppressed. `PTRACE_O_TRACEEXIT` stops it at its exit; if it was not
//! finalizing, its memory is as it ran and is snapshotted then; if it was, but the watchpoint
//! never fired, nothing is read (freed code would be read as live). Every other signal is
//! delivered unchanged and group-stops behave as untraced. A fork's child inherits no debug
//! registers (and is not traced: no `PTRACE_O_TRACEFORK`): each process is watched on its own.
//!
//! When the watchpoint fires, the trap's signal-delivery-stop is turned at once into an
//! interrupt's event-stop (disarm, `PTRACE_INTERRUPT`, continue with the trap suppressed), and
//! the snapshot is taken in that stop. ptrace(2) says a tracee restarted from a
//! signal-delivery-stop by its tracer's death gets the pending signal injected, which here
//! would be a SIGTRAP that kills the child; on Linux 6.18 that could not be observed (tracer
//! killed during a 500 ms pause in that stop: the child exited 0, 5 of 5), so the event-stop is
//! a guard for kernels that do as documented, at the cost of one more stop. A tracer killed
//! while the watch is armed leaves the watchpoint in the child's debug registers: the
//! [`keeper`] process, told of every watch, clears it.
//!
//! A process that outlives the tracer's sampling (`attach` ended by `--duration` or a signal)
//! is let go with [`ExitWatch::release`]: the thread, woken from its wait by a signal of its own
//! ([`wake_signal`]), interrupts the process, clears the watchpoint in that stop and detaches.
//!
//! Nothing is ever written to the child's memory: the watchpoint lives in the CPU's debug
//! registers of the traced thread, set through ptrace ([`arch`]).

mod arch;
pub mod keeper;

use keeper::Keeper;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// When the final snapshot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// `Py_FinalizeEx` set `_PyRuntime._finalizing`; the main thread is stopped there.
    Finalizing,
    /// The child is exiting without having finalized (its memory as it ran).
    ExitWithoutFinalizing,
}

/// How the watch ended, and what it saw.
#[derive(Debug)]
pub struct Ended {
    /// The exit status as a shell gives it (the code, or 128 + the signal); `None` if the
    /// process was released alive.
    pub status: Option<i32>,
    /// The moment the final snapshot was taken at, if it was.
    pub moment: Option<Moment>,
    /// Why no final snapshot was taken, when the process ended without one.
    pub missed: Option<String>,
}

/// The watching thread.
pub struct ExitWatch {
    thread: JoinHandle<anyhow::Result<Ended>>,
    /// The watching thread's kernel id, for [`wake_signal`].
    tid: i32,
    /// Set by [`ExitWatch::release`].
    release: Arc<AtomicBool>,
    /// Whether the thread is blocked in `waitpid` (the only place a wake-up is sent to).
    waiting: Arc<AtomicI32>,
}

/// The signal that wakes a watching thread from `waitpid` to release its process: a real-time
/// signal sent only to that thread (`tgkill`), its handler empty and without `SA_RESTART`.
pub fn wake_signal() -> i32 {
    libc::SIGRTMIN()
}

/// How long [`ExitWatch::release`] waits for the watching thread to let its process go.
const RELEASE_PATIENCE: Duration = Duration::from_secs(10);

impl ExitWatch {
    /// Watch `pid` (traceable by this process), calling `at_moment` once, with the process
    /// stopped, at the final snapshot's moment. `finalizing` is the address of
    /// `_PyRuntime._finalizing`; `keeper` is told of the watch before it is armed, and clears it
    /// if this process dies.
    pub fn start(
        pid: i32,
        finalizing: usize,
        keeper: Keeper,
        at_moment: Box<dyn FnOnce(Moment) + Send>,
    ) -> anyhow::Result<ExitWatch> {
        if !finalizing.is_multiple_of(8) {
            anyhow::bail!("_PyRuntime._finalizing at {finalizing:#x} is not 8-byte aligned");
        }
        install_wake_handler();
        let release = Arc::new(AtomicBool::new(false));
        let waiting = Arc::new(AtomicI32::new(0));
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let thread = {
            let flags = Flags {
                release: release.clone(),
                waiting: waiting.clone(),
            };
            std::thread::Builder::new()
                .name("tracer-exit-watch".into())
                .spawn(move || watch(pid, finalizing, keeper, at_moment, ready_tx, flags))?
        };
        match ready_rx.recv() {
            Ok(Ok(tid)) => Ok(ExitWatch {
                thread,
                tid,
                release,
                waiting,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => match thread.join() {
                Ok(Err(e)) => Err(e),
                _ => anyhow::bail!("the exit watch ended before it was armed"),
            },
        }
    }

    /// Wait for the child to end.
    pub fn wait(self) -> anyhow::Result<Ended> {
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the exit watch thread failed"))?
    }

    /// Let the process go on untraced, its watchpoint cleared (or, if it is ending, wait for
    /// its end and final snapshot). Bounded by [`RELEASE_PATIENCE`]: a thread that does not
    /// end by then is left to the keeper, which clears the watch when this process exits.
    pub fn release(self) -> anyhow::Result<Ended> {
        self.release.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + RELEASE_PATIENCE;
        while !self.thread.is_finished() {
            if Instant::now() > deadline {
                anyhow::bail!("the exit watch did not let its process go");
            }
            if self.waiting.load(Ordering::SeqCst) != 0 {
                // SAFETY: a signal to one thread of this process, whose handler does nothing.
                unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), self.tid, wake_signal()) };
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.wait()
    }
}

/// What the watching thread shares with its [`ExitWatch`].
struct Flags {
    release: Arc<AtomicBool>,
    waiting: Arc<AtomicI32>,
}

fn install_wake_handler() {
    static INSTALLED: Once = Once::new();
    extern "C" fn wake(_: libc::c_int) {}
    INSTALLED.call_once(|| {
        // SAFETY: an empty handler (async-signal-safe), no SA_RESTART so that a blocked
        // waitpid returns EINTR.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = wake as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = 0;
            libc::sigaction(wake_signal(), &action, std::ptr::null_mut());
        }
    });
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn ptrace(request: libc::c_uint, pid: i32, addr: usize, data: usize) -> std::io::Result<i64> {
    // SAFETY: ptrace requests on our own traced child; addr/data are integers or pointers to
    // live locals, as each request documents.
    let r = unsafe {
        libc::ptrace(
            request,
            pid,
            addr as *mut libc::c_void,
            data as *mut libc::c_void,
        )
    };
    if r == -1 {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// `waitpid` for the traced main thread, retried on EINTR.
fn wait_status(pid: i32) -> std::io::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid with a pointer to a local.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if r == pid {
            return Ok(status);
        }
        let e = errno();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// What the watching thread's wait returned.
enum Waited {
    Status(i32),
    /// [`ExitWatch::release`] asked for the process to be let go.
    Release,
}

/// `waitpid` for the traced main thread, interrupted by a release (once asked, the flag is
/// seen before blocking, or the wake signal ends the wait).
fn wait_or_release(pid: i32, flags: &Flags, releasing: bool) -> std::io::Result<Waited> {
    let mut status = 0;
    loop {
        if !releasing && flags.release.load(Ordering::SeqCst) {
            return Ok(Waited::Release);
        }
        flags.waiting.store(1, Ordering::SeqCst);
        // SAFETY: waitpid with a pointer to a local.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        flags.waiting.store(0, Ordering::SeqCst);
        if r == pid {
            return Ok(Waited::Status(status));
        }
        let e = errno();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

fn watch(
    pid: i32,
    finalizing: usize,
    keeper: Keeper,
    at_moment: Box<dyn FnOnce(Moment) + Send>,
    ready: crossbeam_channel::Sender<anyhow::Result<i32>>,
    flags: Flags,
) -> anyhow::Result<Ended> {
    let ended = follow(pid, finalizing, &keeper, at_moment, ready, &flags);
    // Disarmed, or the child is gone.
    keeper.release(pid);
    ended
}

fn follow(
    pid: i32,
    finalizing: usize,
    keeper: &Keeper,
    at_moment: Box<dyn FnOnce(Moment) + Send>,
    ready: crossbeam_channel::Sender<anyhow::Result<i32>>,
    flags: &Flags,
) -> anyhow::Result<Ended> {
    let armed = (|| -> anyhow::Result<()> {
        keeper.watch(pid)?;
        let options = libc::PTRACE_O_TRACEEXIT as usize;
        ptrace(libc::PTRACE_SEIZE, pid, 0, options)
            .map_err(|e| anyhow::anyhow!("cannot trace pid {pid} (ptrace seize): {e}"))?;
        ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0)?;
        // The interrupt's stop, or a group-stop that came first (either is a PTRACE_EVENT_STOP
        // in which the debug registers may be set). A signal that comes before is delivered
        // at once, unchanged: the interrupt stays pending and stops the child after it.
        let group_stopped = loop {
            let status = wait_status(pid)?;
            if !libc::WIFSTOPPED(status) {
                anyhow::bail!("pid {pid} ended before its final snapshot could be armed");
            }
            if status >> 16 == libc::PTRACE_EVENT_STOP {
                break is_group_stop(libc::WSTOPSIG(status));
            }
            ptrace(libc::PTRACE_CONT, pid, 0, libc::WSTOPSIG(status) as usize)?;
        };
        arch::arm(pid, finalizing)?;
        if std::env::var_os("TRACER_DEBUG_WATCH").is_some() {
            eprintln!(
                "watch: armed at {finalizing:#x} in pid {pid}, value {:?}",
                read_word(pid, finalizing)
            );
        }
        if group_stopped {
            // Stopped by SIGSTOP and the like: it stays stopped until a SIGCONT.
            ptrace(libc::PTRACE_LISTEN, pid, 0, 0)?;
        } else {
            ptrace(libc::PTRACE_CONT, pid, 0, 0)?;
        }
        Ok(())
    })();
    match armed {
        Ok(()) => {
            // SAFETY: gettid has no preconditions.
            let _ = ready.send(Ok(unsafe { libc::gettid() }));
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            // Seized but not armed: let the child go on untraced.
            let _ = ptrace(libc::PTRACE_DETACH, pid, 0, 0);
            anyhow::bail!("not armed");
        }
    }
    let mut at_moment = Some(at_moment);
    let mut missed: Option<String> = None;
    let mut moment: Option<Moment> = None;
    let ended = |status: i32, moment: Option<Moment>, missed: Option<String>, why: &str| Ended {
        status: Some(status),
        moment,
        missed: moment
            .is_none()
            .then(|| missed.unwrap_or_else(|| why.to_owned())),
    };
    // The watchpoint fired and the snapshot waits for the interrupt's stop.
    let mut fired = false;
    // A release was asked for: the next event-stop clears the watchpoint and detaches.
    let mut releasing = false;
    loop {
        let status = match wait_or_release(pid, flags, releasing)? {
            Waited::Status(status) => status,
            Waited::Release => {
                releasing = true;
                // Gone already (ESRCH): its end is waited for as usual.
                let _ = ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0);
                continue;
            }
        };
        if libc::WIFEXITED(status) {
            let why = "the child exited without a stop at its exit";
            return Ok(ended(libc::WEXITSTATUS(status), moment, missed, why));
        }
        if libc::WIFSIGNALED(status) {
            let why = "the child was killed without a stop at its exit";
            return Ok(ended(128 + libc::WTERMSIG(status), moment, missed, why));
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let signal = libc::WSTOPSIG(status);
        let event = status >> 16;
        let resume = |signal: i32| ptrace(libc::PTRACE_CONT, pid, 0, signal as usize);
        if event == libc::PTRACE_EVENT_EXIT {
            if fired {
                // Killed (SIGKILL) between the trap and its stop: finalization had begun.
                at_moment = None;
                missed = Some("the child was killed as it began finalizing".into());
            }
            if let Some(take) = at_moment.take() {
                match read_word(pid, finalizing) {
                    Some(0) => {
                        take(Moment::ExitWithoutFinalizing);
                        moment = Some(Moment::ExitWithoutFinalizing);
                    }
                    Some(_) => {
                        missed = Some(
                            "the child exited while finalizing, and the watch on \
                             _PyRuntime._finalizing never fired: its memory is partly freed"
                                .into(),
                        );
                    }
                    None => {
                        missed = Some("the child's memory could not be read at its exit".into())
                    }
                }
            }
            let _ = resume(0);
        } else if event == libc::PTRACE_EVENT_STOP {
            // The stop the trap was turned into (or a group-stop that came first: the child
            // is stopped there as well, with the same memory).
            if fired {
                fired = false;
                if let Some(take) = at_moment.take() {
                    if std::env::var_os("TRACER_DEBUG_WATCH").is_some() {
                        eprintln!("watch: fired, taking the snapshot in an event-stop");
                    }
                    take(Moment::Finalizing);
                    moment = Some(Moment::Finalizing);
                }
            }
            if releasing {
                // A group-stopped process detached stays stopped, as untraced.
                let _ = arch::disarm(pid);
                keeper.release(pid);
                let _ = ptrace(libc::PTRACE_DETACH, pid, 0, 0);
                if std::env::var_os("TRACER_DEBUG_WATCH").is_some() {
                    eprintln!("watch: released pid {pid}");
                }
                return Ok(Ended {
                    status: None,
                    moment,
                    missed: None,
                });
            }
            // A group-stop (SIGSTOP, SIGTSTP, ...): stay stopped as an untraced child would.
            if is_group_stop(signal) {
                let _ = ptrace(libc::PTRACE_LISTEN, pid, 0, 0);
            } else {
                let _ = resume(0);
            }
        } else if signal == libc::SIGTRAP && arch::fired(pid) {
            let _ = arch::disarm(pid);
            keeper.release(pid);
            // Leave the trap's signal-delivery-stop for an event-stop before the snapshot: ptrace(2)
            // says the pending SIGTRAP is injected if this process dies in that stop.
            if at_moment.is_some() && ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0).is_ok() {
                fired = true;
            } else if let Some(take) = at_moment.take() {
                take(Moment::Finalizing);
                moment = Some(Moment::Finalizing);
            }
            let _ = resume(0);
        } else {
            // A signal for the child: delivered unchanged.
            let _ = resume(signal);
        }
    }
}

/// Whether a `PTRACE_EVENT_STOP` with this stop signal is a group-stop (the child stopped by
/// SIGSTOP and the like), not the stop of a `PTRACE_INTERRUPT` (SIGTRAP).
fn is_group_stop(signal: i32) -> bool {
    matches!(
        signal,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
    )
}

/// One word of the child's memory.
fn read_word(pid: i32, address: usize) -> Option<u64> {
    let mut word = [0u8; 8];
    let local = libc::iovec {
        iov_base: word.as_mut_ptr().cast(),
        iov_len: 8,
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: 8,
    };
    // SAFETY: one read of 8 bytes into a local buffer.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    (n == 8).then(|| u64::from_ne_bytes(word))
}

//! The moment `tracer run --snapshot` takes its final snapshot: when the child's interpreter
//! starts finalizing (atexit has run, modules are not yet cleared), or, if it never does
//! (`os._exit`, a fatal signal), when the child exits with its memory still mapped.
//!
//! `tracer run` is the child's parent, so it may trace it. A dedicated thread seizes the
//! child's main thread with ptrace (`PTRACE_SEIZE`: no stop), interrupts it once to arm a
//! hardware write watchpoint on `_PyRuntime._finalizing` in its debug registers, and from then
//! on is the only waiter of the child: `Py_FinalizeEx` writing that field traps (a SIGTRAP
//! stop of the main thread, which holds the GIL), the snapshot is taken, the watchpoint
//! disarmed and the child continued with the trap suppressed. `PTRACE_O_TRACEEXIT` stops the
//! child at its exit; if it was not finalizing, its memory is as it ran and is snapshotted then;
//! if it was, but the watchpoint never fired, nothing is read (freed code would be read as
//! live). Every other signal is delivered unchanged and group-stops behave as untraced.
//!
//! Nothing is ever written to the child's memory: the watchpoint lives in the CPU's debug
//! registers of the traced thread, set through ptrace.

use std::thread::JoinHandle;

/// When the final snapshot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// `Py_FinalizeEx` set `_PyRuntime._finalizing`; the main thread is stopped there.
    Finalizing,
    /// The child is exiting without having finalized (its memory as it ran).
    ExitWithoutFinalizing,
}

/// How the child ended, and what the watch saw.
#[derive(Debug)]
pub struct Ended {
    /// The exit status as a shell gives it: the code, or 128 + the signal.
    pub status: i32,
    /// Why no final snapshot was taken, when none was.
    pub missed: Option<String>,
}

/// The watching thread.
pub struct ExitWatch {
    thread: JoinHandle<anyhow::Result<Ended>>,
}

impl ExitWatch {
    /// Watch `pid` (a child of this process), calling `at_moment` once, with the child stopped,
    /// at the final snapshot's moment. `finalizing` is the address of `_PyRuntime._finalizing`.
    pub fn start(
        pid: i32,
        finalizing: usize,
        at_moment: Box<dyn FnOnce(Moment) + Send>,
    ) -> anyhow::Result<ExitWatch> {
        if !finalizing.is_multiple_of(8) {
            anyhow::bail!("_PyRuntime._finalizing at {finalizing:#x} is not 8-byte aligned");
        }
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("tracer-exit-watch".into())
            .spawn(move || watch(pid, finalizing, at_moment, ready_tx))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(ExitWatch { thread }),
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

fn watch(
    pid: i32,
    finalizing: usize,
    at_moment: Box<dyn FnOnce(Moment) + Send>,
    ready: crossbeam_channel::Sender<anyhow::Result<()>>,
) -> anyhow::Result<Ended> {
    let armed = (|| -> anyhow::Result<()> {
        let options = libc::PTRACE_O_TRACEEXIT as usize;
        ptrace(libc::PTRACE_SEIZE, pid, 0, options)
            .map_err(|e| anyhow::anyhow!("cannot trace the child (ptrace seize): {e}"))?;
        ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0)?;
        // The interrupt's stop, or a group-stop that came first (either is a PTRACE_EVENT_STOP
        // in which the debug registers may be set). A signal that comes before is delivered
        // at once, unchanged: the interrupt stays pending and stops the child after it.
        let group_stopped = loop {
            let status = wait_status(pid)?;
            if !libc::WIFSTOPPED(status) {
                anyhow::bail!("the child ended before the final snapshot could be armed");
            }
            if status >> 16 == libc::PTRACE_EVENT_STOP {
                break is_group_stop(libc::WSTOPSIG(status));
            }
            ptrace(libc::PTRACE_CONT, pid, 0, libc::WSTOPSIG(status) as usize)?;
        };
        arch::arm(pid, finalizing)?;
        if std::env::var_os("TRACER_DEBUG_WATCH").is_some() {
            eprintln!(
                "watch: armed at {finalizing:#x}, value {:?}",
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
            let _ = ready.send(Ok(()));
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
    let ended = |status: i32, taken: bool, missed: Option<String>, why: &str| Ended {
        status,
        missed: (!taken).then(|| missed.unwrap_or_else(|| why.to_owned())),
    };
    let mut taken = false;
    loop {
        let status = wait_status(pid)?;
        if libc::WIFEXITED(status) {
            let why = "the child exited without a stop at its exit";
            return Ok(ended(libc::WEXITSTATUS(status), taken, missed, why));
        }
        if libc::WIFSIGNALED(status) {
            let why = "the child was killed without a stop at its exit";
            return Ok(ended(128 + libc::WTERMSIG(status), taken, missed, why));
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let signal = libc::WSTOPSIG(status);
        let event = status >> 16;
        let resume = |signal: i32| ptrace(libc::PTRACE_CONT, pid, 0, signal as usize);
        if event == libc::PTRACE_EVENT_EXIT {
            if let Some(take) = at_moment.take() {
                match read_word(pid, finalizing) {
                    Some(0) => {
                        take(Moment::ExitWithoutFinalizing);
                        taken = true;
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
            // A group-stop (SIGSTOP, SIGTSTP, ...): stay stopped as an untraced child would.
            if is_group_stop(signal) {
                let _ = ptrace(libc::PTRACE_LISTEN, pid, 0, 0);
            } else {
                let _ = resume(0);
            }
        } else if signal == libc::SIGTRAP && arch::fired(pid) {
            if let Some(take) = at_moment.take() {
                take(Moment::Finalizing);
                taken = true;
            }
            let _ = arch::disarm(pid);
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

/// Whether the last SIGTRAP stop was a hardware breakpoint (the watchpoint).
fn trapped_by_hardware(pid: i32) -> bool {
    // SAFETY: siginfo_t is plain data; PTRACE_GETSIGINFO fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    ptrace(
        libc::PTRACE_GETSIGINFO,
        pid,
        0,
        &mut info as *mut libc::siginfo_t as usize,
    )
    .is_ok()
        && info.si_code == TRAP_HWBKPT
}

/// `si_code` of a hardware breakpoint or watchpoint trap.
const TRAP_HWBKPT: i32 = 4;

#[cfg(target_arch = "x86_64")]
mod arch {
    use super::ptrace;

    /// Offset of `u_debugreg` in `struct user`, and DR7's bits for slot 0: enabled (L0),
    /// break on writes (R/W0 = 01), 8 bytes (LEN0 = 10).
    fn debugreg(n: usize) -> usize {
        std::mem::offset_of!(libc::user, u_debugreg) + 8 * n
    }
    const DR7_WRITE_8: usize = 1 | (0b01 << 16) | (0b10 << 18);

    pub fn arm(pid: i32, address: usize) -> anyhow::Result<()> {
        ptrace(libc::PTRACE_POKEUSER, pid, debugreg(0), address)
            .map_err(|e| anyhow::anyhow!("cannot set the watchpoint's address: {e}"))?;
        ptrace(libc::PTRACE_POKEUSER, pid, debugreg(7), DR7_WRITE_8)
            .map_err(|e| anyhow::anyhow!("cannot enable the watchpoint: {e}"))?;
        Ok(())
    }

    pub fn fired(pid: i32) -> bool {
        // DR6's B0: slot 0 hit.
        let dr6 = ptrace(libc::PTRACE_PEEKUSER, pid, debugreg(6), 0);
        super::trapped_by_hardware(pid) || dr6.is_ok_and(|v| v & 1 != 0)
    }

    pub fn disarm(pid: i32) -> anyhow::Result<()> {
        ptrace(libc::PTRACE_POKEUSER, pid, debugreg(7), 0)?;
        ptrace(libc::PTRACE_POKEUSER, pid, debugreg(6), 0)?;
        Ok(())
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    //! Untested here (x86_64 machine): the watchpoint through `NT_ARM_HW_WATCH`.
    use super::ptrace;

    const NT_ARM_HW_WATCH: usize = 0x403;

    #[repr(C)]
    struct HwDebugState {
        dbg_info: u32,
        pad: u32,
        addr: u64,
        ctrl: u32,
        pad2: u32,
    }

    fn set(pid: i32, address: usize, ctrl: u32) -> anyhow::Result<()> {
        let mut state = HwDebugState {
            dbg_info: 0,
            pad: 0,
            addr: address as u64,
            ctrl,
            pad2: 0,
        };
        let mut iov = libc::iovec {
            iov_base: (&mut state as *mut HwDebugState).cast(),
            iov_len: std::mem::size_of::<HwDebugState>(),
        };
        ptrace(
            libc::PTRACE_SETREGSET,
            pid,
            NT_ARM_HW_WATCH,
            &mut iov as *mut libc::iovec as usize,
        )?;
        Ok(())
    }

    /// Enabled, at EL0, on stores, for 8 bytes.
    const CTRL_WRITE_8: u32 = 1 | (0b10 << 1) | (0b10 << 3) | (0xff << 5);

    pub fn arm(pid: i32, address: usize) -> anyhow::Result<()> {
        set(pid, address, CTRL_WRITE_8)
    }

    pub fn fired(pid: i32) -> bool {
        super::trapped_by_hardware(pid)
    }

    pub fn disarm(pid: i32) -> anyhow::Result<()> {
        set(pid, 0, 0)
    }
}

//! The watchpoint itself: a hardware write watchpoint on one 8-byte word, set in a traced,
//! stopped thread's debug registers (x86_64: DR0/DR7 through `PTRACE_POKEUSER`; aarch64: the
//! `NT_ARM_HW_WATCH` register set). These are the only register writes tracer makes, and no
//! memory of the target is written (tests/it/security.rs holds that by construction).

use super::ptrace;
pub use regs::{arm, disarm, fired};

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
mod regs {
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
mod regs {
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

//! Reading the target's memory: many ranges per system call, never a write.
//!
//! `process_vm_readv` takes a list of remote ranges, so a whole batch (a thread's frame chunk,
//! a code object's fields and its strings) costs one call of ~1 µs instead of one each. Where
//! that call is refused (ENOSYS under qemu-user, EPERM under some seccomp profiles), reads fall
//! back to `pread` on `/proc/PID/mem`, opened read-only. Nothing here can write to the target:
//! no `process_vm_writev`, no `PTRACE_POKE*`, and the file is opened without write access.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Ranges per `process_vm_readv` call (the kernel takes up to 1024): the iovec arrays live on
/// the stack, so the hot path allocates nothing.
const MAX_IOVECS: usize = 64;

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// Some range is not mapped in the target (a stale or garbage pointer, or a torn read).
    #[error("address 0x{0:x} is not readable in the target")]
    Unmapped(usize),
    /// The target is gone.
    #[error("the target process has exited")]
    Gone,
    /// The kernel refused: permissions or a policy.
    #[error("reading the target's memory was refused: {0}")]
    Refused(io::Error),
}

/// One range to read: from `address` in the target into `buf`.
pub struct ReadRequest<'a> {
    pub address: usize,
    pub buf: &'a mut [u8],
}

/// How reads reach the target.
enum Channel {
    VmReadv,
    ProcMem(File),
}

/// Read-only access to one process's memory.
pub struct TargetMemory {
    pid: i32,
    channel: Channel,
    /// System calls made, for measurement.
    pub calls: u64,
}

impl TargetMemory {
    /// Memory of `pid`, read with `process_vm_readv`, or through `/proc/PID/mem` if the system
    /// call is refused here.
    pub fn open(pid: i32) -> Result<TargetMemory, MemoryError> {
        let mut memory = TargetMemory {
            pid,
            channel: Channel::VmReadv,
            calls: 0,
        };
        // Probe with a range that is always mapped: the vDSO or the stack of the target would
        // do, but any failure other than EFAULT tells us what we need to know.
        let mut probe = [0u8; 1];
        match memory.vm_readv(&mut [ReadRequest {
            address: first_readable_address(pid).unwrap_or(0),
            buf: &mut probe,
        }]) {
            Ok(()) | Err(MemoryError::Unmapped(_)) => Ok(memory),
            Err(MemoryError::Gone) => Err(MemoryError::Gone),
            Err(MemoryError::Refused(e))
                if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) =>
            {
                memory.channel = Channel::ProcMem(open_proc_mem(pid)?);
                Ok(memory)
            }
            Err(e) => Err(e),
        }
    }

    /// Memory of `pid` through `/proc/PID/mem` only (for tests of the fallback).
    pub fn open_proc_mem(pid: i32) -> Result<TargetMemory, MemoryError> {
        Ok(TargetMemory {
            pid,
            channel: Channel::ProcMem(open_proc_mem(pid)?),
            calls: 0,
        })
    }

    /// True if reads go through `/proc/PID/mem`.
    pub fn uses_proc_mem(&self) -> bool {
        matches!(self.channel, Channel::ProcMem(_))
    }

    /// Fill `buf` from `address`.
    pub fn read(&mut self, address: usize, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.read_many(&mut [ReadRequest { address, buf }])
    }

    /// Fill every request; all or nothing (an error names the first range that failed).
    pub fn read_many(&mut self, requests: &mut [ReadRequest]) -> Result<(), MemoryError> {
        match &self.channel {
            Channel::VmReadv => {
                for batch in requests.chunks_mut(MAX_IOVECS) {
                    self.vm_readv(batch)?;
                }
                Ok(())
            }
            Channel::ProcMem(file) => {
                for request in requests.iter_mut() {
                    self.calls += 1;
                    read_exact_at(file, request.address, request.buf)?;
                }
                Ok(())
            }
        }
    }

    /// Read a pointer-sized little-endian value.
    pub fn read_usize(&mut self, address: usize) -> Result<usize, MemoryError> {
        let mut bytes = [0u8; 8];
        self.read(address, &mut bytes)?;
        Ok(usize::from_le_bytes(bytes))
    }

    fn vm_readv(&mut self, batch: &mut [ReadRequest]) -> Result<(), MemoryError> {
        debug_assert!(batch.len() <= MAX_IOVECS);
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let mut local = [empty; MAX_IOVECS];
        let mut remote = [empty; MAX_IOVECS];
        let count = batch.len().min(MAX_IOVECS);
        for (i, r) in batch.iter_mut().take(count).enumerate() {
            local[i] = libc::iovec {
                iov_base: r.buf.as_mut_ptr().cast(),
                iov_len: r.buf.len(),
            };
            remote[i] = libc::iovec {
                iov_base: r.address as *mut libc::c_void,
                iov_len: r.buf.len(),
            };
        }
        let wanted: usize = batch.iter().map(|r| r.buf.len()).sum();
        self.calls += 1;
        // SAFETY: every local iovec points into a live, exclusively borrowed buffer of the given
        // length; the remote iovecs are only read by the kernel, in the other process.
        let got = unsafe {
            libc::process_vm_readv(
                self.pid,
                local.as_ptr(),
                count as libc::c_ulong,
                remote.as_ptr(),
                count as libc::c_ulong,
                0,
            )
        };
        if got < 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EFAULT) => MemoryError::Unmapped(batch.first().map_or(0, |r| r.address)),
                Some(libc::ESRCH) => MemoryError::Gone,
                _ => MemoryError::Refused(err),
            });
        }
        if got as usize != wanted {
            // Transfers stop at the first range that fails: name it.
            let mut done = got as usize;
            for r in batch.iter() {
                if done < r.buf.len() {
                    return Err(MemoryError::Unmapped(r.address + done));
                }
                done -= r.buf.len();
            }
            return Err(MemoryError::Unmapped(0));
        }
        Ok(())
    }
}

fn open_proc_mem(pid: i32) -> Result<File, MemoryError> {
    // Read-only: this file can never be used to write to the target.
    File::open(format!("/proc/{pid}/mem")).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => MemoryError::Gone,
        _ => MemoryError::Refused(e),
    })
}

fn read_exact_at(file: &File, address: usize, buf: &mut [u8]) -> Result<(), MemoryError> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], (address + done) as u64) {
            Ok(0) => return Err(MemoryError::Unmapped(address + done)),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(match e.raw_os_error() {
                    Some(libc::EIO) | Some(libc::EFAULT) => MemoryError::Unmapped(address + done),
                    Some(libc::ESRCH) => MemoryError::Gone,
                    _ => MemoryError::Refused(e),
                })
            }
        }
    }
    Ok(())
}

/// The start of the target's first readable mapping, to probe the read channel with.
fn first_readable_address(pid: i32) -> Option<usize> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let range = fields.next()?;
        let perms = fields.next()?;
        if !perms.starts_with('r') {
            return None;
        }
        usize::from_str_radix(range.split('-').next()?, 16).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our own process serves as the target: its memory is what we read.
    #[test]
    fn reads_many_ranges_in_one_call_and_through_proc_mem() {
        let me = std::process::id() as i32;
        let a = *b"first range.";
        let b = [7u8; 300];
        for mut memory in [
            TargetMemory::open(me).unwrap(),
            TargetMemory::open_proc_mem(me).unwrap(),
        ] {
            let (mut x, mut y) = ([0u8; 12], [0u8; 300]);
            memory
                .read_many(&mut [
                    ReadRequest {
                        address: a.as_ptr() as usize,
                        buf: &mut x,
                    },
                    ReadRequest {
                        address: b.as_ptr() as usize,
                        buf: &mut y,
                    },
                ])
                .unwrap();
            assert_eq!(x, a);
            assert_eq!(y, b);
            let value = 0x1122_3344_5566_7788usize;
            assert_eq!(
                memory.read_usize(&value as *const usize as usize).unwrap(),
                value
            );
        }
    }

    #[test]
    fn unmapped_ranges_are_errors_not_garbage() {
        let me = std::process::id() as i32;
        for mut memory in [
            TargetMemory::open(me).unwrap(),
            TargetMemory::open_proc_mem(me).unwrap(),
        ] {
            let mut buf = [0u8; 16];
            assert!(matches!(
                memory.read(8, &mut buf),
                Err(MemoryError::Unmapped(_))
            ));
            let good = [1u8; 4];
            let mut ok = [0u8; 4];
            let result = memory.read_many(&mut [
                ReadRequest {
                    address: good.as_ptr() as usize,
                    buf: &mut ok,
                },
                ReadRequest {
                    address: 16,
                    buf: &mut buf,
                },
            ]);
            assert!(
                matches!(result, Err(MemoryError::Unmapped(16))),
                "{result:?}"
            );
        }
    }
}

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

/// The most bytes between two requests read as one remote range (see `vm_readv`).
const MERGE_GAP: usize = 1024;

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
    /// Read, but not consistent with itself: the structure changed between the reads that
    /// make up one copy (a frame of the chunk neither copied nor below the live top).
    #[error("the structure at 0x{0:x} changed while it was read")]
    Torn(usize),
    /// Read whole, but not what it must be: a frame chain leading to something that is not a
    /// frame (wrong owner, no code object, an address already visited, a chunk frame above
    /// its callee). A garbage or stale pointer; the walk ends there.
    #[error("0x{0:x} is not a plausible frame")]
    Implausible(usize),
    /// The sample's budget of reads is spent ([`BudgetedMemory`]): it is dropped.
    #[error("the sample went over its read budget ({ranges} ranges, {bytes} bytes)")]
    OverBudget { ranges: u64, bytes: u64 },
}

/// One range to read: from `address` in the target into `buf`.
pub struct ReadRequest<'a> {
    pub address: usize,
    pub buf: &'a mut [u8],
}

/// Read access to a target's memory, as the stack reader uses it: [`TargetMemory`] for a live
/// process, [`ImageMemory`] for an in-memory image (tests and fuzzing drive the reader with
/// recorded, mutated or random memory through it). Nothing here can write.
pub trait MemoryReader: Send {
    /// Fill every request; all or nothing (an error names the first range that failed).
    fn read_many(&mut self, requests: &mut [ReadRequest]) -> Result<(), MemoryError>;

    /// System calls (or, for an image, batches) made so far.
    fn calls(&self) -> u64;

    /// Fill `buf` from `address`.
    fn read(&mut self, address: usize, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.read_many(&mut [ReadRequest { address, buf }])
    }

    /// Read a pointer-sized little-endian value.
    fn read_usize(&mut self, address: usize) -> Result<usize, MemoryError> {
        let mut bytes = [0u8; 8];
        self.read(address, &mut bytes)?;
        Ok(usize::from_le_bytes(bytes))
    }
}

/// A per-sample budget of reads: ranges and bytes. [`BudgetedMemory`] spends it; the owner
/// resets it at the start of each sample and widens it per thread found.
#[derive(Debug, Default)]
pub struct ReadBudget {
    ranges: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
    range_limit: std::sync::atomic::AtomicU64,
    byte_limit: std::sync::atomic::AtomicU64,
    exceeded: std::sync::atomic::AtomicBool,
}

impl ReadBudget {
    /// Start a sample: nothing spent, `ranges` and `bytes` allowed.
    pub fn reset(&self, ranges: u64, bytes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.ranges.store(0, Relaxed);
        self.bytes.store(0, Relaxed);
        self.range_limit.store(ranges, Relaxed);
        self.byte_limit.store(bytes, Relaxed);
        self.exceeded.store(false, Relaxed);
    }

    /// Allow this sample `ranges` and `bytes` more (per thread found).
    pub fn widen(&self, ranges: u64, bytes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.range_limit.fetch_add(ranges, Relaxed);
        self.byte_limit.fetch_add(bytes, Relaxed);
    }

    /// What this sample has read so far: (ranges, bytes).
    pub fn spent(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.ranges.load(Relaxed), self.bytes.load(Relaxed))
    }

    /// Whether a read of this sample was refused for the budget (sticky until [`reset`]).
    ///
    /// [`reset`]: ReadBudget::reset
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Spend `ranges` and `bytes`, or refuse (and stay refused) if that goes over the limits.
    fn spend(&self, ranges: u64, bytes: u64) -> Result<(), MemoryError> {
        use std::sync::atomic::Ordering::Relaxed;
        let spent_ranges = self.ranges.load(Relaxed) + ranges;
        let spent_bytes = self.bytes.load(Relaxed) + bytes;
        if self.exceeded.load(Relaxed)
            || spent_ranges > self.range_limit.load(Relaxed)
            || spent_bytes > self.byte_limit.load(Relaxed)
        {
            self.exceeded.store(true, Relaxed);
            return Err(MemoryError::OverBudget {
                ranges: spent_ranges,
                bytes: spent_bytes,
            });
        }
        self.ranges.store(spent_ranges, Relaxed);
        self.bytes.store(spent_bytes, Relaxed);
        Ok(())
    }
}

/// A [`MemoryReader`] that spends a shared [`ReadBudget`] on every request before passing it
/// on, refusing once the budget is spent: whatever a walk meets, one sample's cost is bounded.
pub struct BudgetedMemory {
    inner: Box<dyn MemoryReader>,
    budget: std::sync::Arc<ReadBudget>,
}

impl BudgetedMemory {
    /// `inner`, spending `budget`.
    pub fn new(inner: Box<dyn MemoryReader>, budget: std::sync::Arc<ReadBudget>) -> Self {
        BudgetedMemory { inner, budget }
    }
}

impl MemoryReader for BudgetedMemory {
    fn read_many(&mut self, requests: &mut [ReadRequest]) -> Result<(), MemoryError> {
        let bytes: usize = requests.iter().map(|r| r.buf.len()).sum();
        self.budget.spend(requests.len() as u64, bytes as u64)?;
        self.inner.read_many(requests)
    }

    fn calls(&self) -> u64 {
        self.inner.calls()
    }
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
    /// Where the bytes between merged requests go.
    gap_scratch: Box<[u8; MERGE_GAP]>,
    /// Whether the last batch merged requests.
    last_merged: bool,
}

impl TargetMemory {
    /// Memory of `pid`, read with `process_vm_readv`, or through `/proc/PID/mem` if the system
    /// call is refused here.
    pub fn open(pid: i32) -> Result<TargetMemory, MemoryError> {
        let mut memory = TargetMemory {
            pid,
            channel: Channel::VmReadv,
            calls: 0,
            gap_scratch: Box::new([0; MERGE_GAP]),
            last_merged: false,
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
            gap_scratch: Box::new([0; MERGE_GAP]),
            last_merged: false,
        })
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

    /// Read `batch` in one `process_vm_readv`. Requests that follow the previous one in
    /// memory within [`MERGE_GAP`] bytes share its remote range, the bytes between them going
    /// to a scratch buffer: the kernel's cost is mostly per remote range (a VMA lookup and
    /// page pinning each), so one range with a gap is cheaper than two. Order is kept: the
    /// ranges are still read one after the other, as asked. If a merged read fails (a gap
    /// that is not mapped), the batch is read again unmerged, which also names the range
    /// that failed.
    fn vm_readv(&mut self, batch: &mut [ReadRequest]) -> Result<(), MemoryError> {
        match self.vm_readv_merged(batch, true) {
            Err(MemoryError::Unmapped(_)) if self.last_merged => self.vm_readv_merged(batch, false),
            result => result,
        }
    }

    fn vm_readv_merged(
        &mut self,
        batch: &mut [ReadRequest],
        merge: bool,
    ) -> Result<(), MemoryError> {
        debug_assert!(batch.len() <= MAX_IOVECS);
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let mut local = [empty; 2 * MAX_IOVECS];
        let mut remote = [empty; MAX_IOVECS];
        let (mut locals, mut remotes) = (0, 0);
        let mut range_end: Option<usize> = None;
        let gap_buf = self.gap_scratch.as_mut_ptr();
        for r in batch.iter_mut().take(MAX_IOVECS) {
            let end = r.address.checked_add(r.buf.len());
            let gap = match (range_end, end) {
                (Some(previous_end), Some(_)) if merge && !r.buf.is_empty() => r
                    .address
                    .checked_sub(previous_end)
                    .filter(|gap| *gap <= MERGE_GAP),
                _ => None,
            };
            match gap {
                Some(gap) => {
                    if gap > 0 {
                        local[locals] = libc::iovec {
                            iov_base: gap_buf.cast(),
                            iov_len: gap,
                        };
                        locals += 1;
                    }
                    remote[remotes - 1].iov_len += gap + r.buf.len();
                }
                None => {
                    remote[remotes] = libc::iovec {
                        iov_base: r.address as *mut libc::c_void,
                        iov_len: r.buf.len(),
                    };
                    remotes += 1;
                }
            }
            local[locals] = libc::iovec {
                iov_base: r.buf.as_mut_ptr().cast(),
                iov_len: r.buf.len(),
            };
            locals += 1;
            range_end = end;
        }
        self.last_merged = remotes < batch.len();
        let wanted: usize = remote[..remotes].iter().map(|r| r.iov_len).sum();
        self.calls += 1;
        // SAFETY: every local iovec points into a live, exclusively borrowed buffer of the given
        // length, or into the gap scratch buffer (at most MERGE_GAP bytes, written only by the
        // kernel); the remote iovecs are only read by the kernel, in the other process.
        let got = unsafe {
            libc::process_vm_readv(
                self.pid,
                local.as_ptr(),
                locals as libc::c_ulong,
                remote.as_ptr(),
                remotes as libc::c_ulong,
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
            for r in remote[..remotes].iter() {
                if done < r.iov_len {
                    return Err(MemoryError::Unmapped(r.iov_base as usize + done));
                }
                done -= r.iov_len;
            }
            return Err(MemoryError::Unmapped(0));
        }
        Ok(())
    }
}

impl MemoryReader for TargetMemory {
    fn read_many(&mut self, requests: &mut [ReadRequest]) -> Result<(), MemoryError> {
        TargetMemory::read_many(self, requests)
    }

    fn calls(&self) -> u64 {
        self.calls
    }
}

/// A memory image: byte regions at addresses, everything else unmapped. Reads that do not fall
/// wholly inside one region fail as [`MemoryError::Unmapped`], as they would in a process.
#[derive(Debug, Clone, Default)]
pub struct ImageMemory {
    /// Regions sorted by start address, not overlapping.
    regions: Vec<(usize, Vec<u8>)>,
    /// Batches served (one per `read_many`).
    pub batches: u64,
    /// Ranges requested, served or not.
    pub ranges: u64,
}

impl ImageMemory {
    /// An image of `regions` (start address, bytes); overlapping regions are merged, later
    /// bytes winning.
    pub fn new(regions: impl IntoIterator<Item = (usize, Vec<u8>)>) -> ImageMemory {
        let mut sorted: Vec<(usize, Vec<u8>)> = regions
            .into_iter()
            .filter(|(start, bytes)| !bytes.is_empty() && start.checked_add(bytes.len()).is_some())
            .collect();
        sorted.sort_by_key(|(start, _)| *start);
        let mut merged: Vec<(usize, Vec<u8>)> = Vec::with_capacity(sorted.len());
        for (start, bytes) in sorted {
            match merged.last_mut() {
                Some((last_start, last)) if start <= *last_start + last.len() => {
                    let at = start - *last_start;
                    let end = at + bytes.len();
                    if last.len() < end {
                        last.resize(end, 0);
                    }
                    last[at..end].copy_from_slice(&bytes);
                }
                _ => merged.push((start, bytes)),
            }
        }
        ImageMemory {
            regions: merged,
            batches: 0,
            ranges: 0,
        }
    }

    /// The regions, sorted by address.
    pub fn regions(&self) -> &[(usize, Vec<u8>)] {
        &self.regions
    }

    /// The regions, to mutate in place.
    pub fn regions_mut(&mut self) -> &mut [(usize, Vec<u8>)] {
        &mut self.regions
    }

    fn slice(&self, address: usize, len: usize) -> Option<&[u8]> {
        // An empty read succeeds anywhere, as it does from a live process.
        if len == 0 {
            return Some(&[]);
        }
        let end = address.checked_add(len)?;
        let index = self.regions.partition_point(|(start, _)| *start <= address);
        let (start, bytes) = self.regions.get(index.checked_sub(1)?)?;
        let from = address - start;
        (end - start <= bytes.len()).then(|| &bytes[from..from + len])
    }
}

impl MemoryReader for ImageMemory {
    fn read_many(&mut self, requests: &mut [ReadRequest]) -> Result<(), MemoryError> {
        self.batches += 1;
        for request in requests.iter_mut() {
            self.ranges += 1;
            match self.slice(request.address, request.buf.len()) {
                Some(bytes) => request.buf.copy_from_slice(bytes),
                None => return Err(MemoryError::Unmapped(request.address)),
            }
        }
        Ok(())
    }

    fn calls(&self) -> u64 {
        self.batches
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
    crate::target::proc::maps(pid)
        .ok()?
        .iter()
        .find(|m| m.readable())
        .map(|m| m.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_refuses_every_read_until_reset() {
        let budget = std::sync::Arc::new(ReadBudget::default());
        budget.reset(3, 64);
        let image = ImageMemory::new([(0x1000, vec![7u8; 256])]);
        let mut memory = BudgetedMemory::new(Box::new(image), budget.clone());
        let mut buf = [0u8; 16];
        memory.read(0x1000, &mut buf).unwrap();
        memory.read(0x1010, &mut buf).unwrap();
        assert_eq!(budget.spent(), (2, 32));
        // 32 bytes so far; 33 more would go over the 64 allowed.
        let mut big = [0u8; 33];
        assert!(matches!(
            memory.read(0x1000, &mut big),
            Err(MemoryError::OverBudget {
                ranges: 3,
                bytes: 65
            })
        ));
        assert!(budget.exceeded());
        // Sticky: even a read that would fit is refused for the rest of the sample.
        assert!(memory.read(0x1000, &mut [0u8; 1]).is_err());
        budget.reset(3, 64);
        budget.widen(1, 0);
        memory.read(0x1000, &mut big).unwrap();
        assert!(!budget.exceeded());
        assert_eq!(budget.spent(), (1, 33));
    }

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
    fn an_image_serves_its_regions_and_nothing_else() {
        let mut image = ImageMemory::new([(0x1000, vec![1u8; 16]), (0x1008, vec![2u8; 16])]);
        assert_eq!(image.regions().len(), 1, "overlapping regions merge");
        let mut buf = [0u8; 4];
        image.read(0x1006, &mut buf).unwrap();
        assert_eq!(buf, [1, 1, 2, 2]);
        assert!(matches!(
            image.read(0x1016, &mut buf),
            Err(MemoryError::Unmapped(0x1016))
        ));
        assert!(image.read(usize::MAX - 1, &mut buf).is_err());
        assert!(image.read(0xfff, &mut buf).is_err());
    }

    /// The fallback channel opens `/proc/PID/mem` read-only: the kernel's own record of the
    /// descriptor's flags says so.
    #[test]
    fn proc_mem_is_opened_read_only() {
        use std::os::fd::AsRawFd;
        let memory = TargetMemory::open_proc_mem(std::process::id() as i32).unwrap();
        let Channel::ProcMem(file) = &memory.channel else {
            panic!("not the /proc/PID/mem channel");
        };
        let fdinfo =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", file.as_raw_fd())).unwrap();
        let flags = fdinfo
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|f| i32::from_str_radix(f.trim(), 8).unwrap())
            .unwrap();
        assert_eq!(flags & libc::O_ACCMODE, libc::O_RDONLY, "{fdinfo}");
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

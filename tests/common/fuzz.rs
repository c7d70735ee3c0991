//! Shared by the fuzz tests (tests/fuzz_*.rs): how many cases to run, and a watchdog that turns
//! a hang, or a case holding more memory than any input should cost, into a failure.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The most heap a fuzz test process may hold (every case of its running targets together):
/// tracer's bounds keep a case far below (tens of MiB); more is a memory bomb, which in
/// production would be the OOM killer ending a session and its results.
pub const MEMORY_LIMIT: usize = 2 << 30;

/// Bytes allocated and not yet freed, process-wide, by [`CountingAllocator`].
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes for the watchdog. Each fuzz test binary installs
/// it: `#[global_allocator] static ALLOCATOR: CountingAllocator = CountingAllocator;`.
pub struct CountingAllocator;

/// A single allocation this large is reported with its backtrace (the first few only): what a
/// memory bomb is made of is then known even if the watchdog has to stop the process.
const LARGE_ALLOCATION: usize = 256 << 20;
static LARGE_REPORTED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static REPORTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn note_allocation(size: usize) {
    if size < LARGE_ALLOCATION || LARGE_REPORTED.load(Ordering::Relaxed) >= 3 {
        return;
    }
    // The report allocates too: not reported again from inside it.
    if REPORTING.with(|r| r.replace(true)) {
        return;
    }
    LARGE_REPORTED.fetch_add(1, Ordering::Relaxed);
    let target = CURRENT.lock().map(|c| c.0).unwrap_or("");
    eprintln!(
        "fuzz: an allocation of {} MiB in a case of {target}, from:\n{}",
        size >> 20,
        std::backtrace::Backtrace::force_capture()
    );
    REPORTING.with(|r| r.set(false));
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

/// The target whose case started last, and that case's input where the target describes it
/// ([`CaseCounter::case_of`]): what the watchdog names when it stops the process.
static CURRENT: Mutex<(&str, String)> = Mutex::new(("", String::new()));

/// Cases per fuzz target: `TRACER_FUZZ_CASES` (`make fuzz` sets 1,000,000), else 2,000, which
/// keeps `make test` short.
pub fn fuzz_cases() -> u32 {
    std::env::var("TRACER_FUZZ_CASES")
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(2_000)
}

/// Longest a single case may run before the whole test process is declared hung.
pub const CASE_TIME_LIMIT: Duration = Duration::from_secs(20);

/// Milliseconds since the watchdog started at the last [`tick`], per process.
static LAST_TICK_MS: AtomicU64 = AtomicU64::new(0);
static WATCHDOG: OnceLock<Instant> = OnceLock::new();

/// Mark the start of a case. The first call starts a thread that aborts the process, naming
/// the target, if no case starts for [`CASE_TIME_LIMIT`] (a hang fails instead of waiting
/// forever) or if the process holds more than [`MEMORY_LIMIT`] of heap (checked every 50 ms).
pub fn tick(target: &'static str) {
    let start = *WATCHDOG.get_or_init(|| {
        let start = Instant::now();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(50));
            let now = start.elapsed().as_millis() as u64;
            let last = LAST_TICK_MS.load(Ordering::Relaxed);
            let live = LIVE_BYTES.load(Ordering::Relaxed);
            let hung = now.saturating_sub(last) > CASE_TIME_LIMIT.as_millis() as u64;
            if hung || live > MEMORY_LIMIT {
                let (target, input) = CURRENT.lock().map(|c| c.clone()).unwrap_or_default();
                if hung {
                    eprintln!(
                        "fuzz watchdog: a case of {target} ran for over {CASE_TIME_LIMIT:?}: a hang"
                    );
                } else {
                    eprintln!(
                        "fuzz watchdog: a case of {target} holds {} MiB of heap (limit {} MiB): \
                         a memory bomb",
                        live >> 20,
                        MEMORY_LIMIT >> 20
                    );
                }
                if !input.is_empty() {
                    eprintln!("fuzz watchdog: the case of {target} that started last: {input}");
                }
                std::process::abort();
            }
        });
        start
    });
    LAST_TICK_MS.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    if let Ok(mut current) = CURRENT.lock() {
        current.0 = target;
        current.1.clear();
    }
}

/// Counts cases run per target and prints the total when dropped (the count `make fuzz` reports).
pub struct CaseCounter {
    pub target: &'static str,
    pub count: AtomicU64,
}

impl CaseCounter {
    pub const fn new(target: &'static str) -> CaseCounter {
        CaseCounter {
            target,
            count: AtomicU64::new(0),
        }
    }

    /// One more case: ticks the watchdog too.
    pub fn case(&self) {
        tick(self.target);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// One more case, whose `input` the watchdog prints if it stops the process during it
    /// (for targets whose cases cost far more than describing their input).
    pub fn case_of(&self, input: &dyn std::fmt::Debug) {
        self.case();
        if let Ok(mut current) = CURRENT.lock() {
            current.1 = format!("{input:?}");
        }
    }

    /// Print `FUZZ <target>: <n> cases, 0 panics, 0 hangs`.
    pub fn report(&self) {
        println!(
            "FUZZ {}: {} cases, 0 panics, 0 hangs",
            self.target,
            self.count.load(Ordering::Relaxed)
        );
    }
}

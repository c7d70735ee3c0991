//! Shared by the fuzz tests (tests/fuzz_*.rs): how many cases to run, and a watchdog that turns
//! a hang into a failure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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
/// `target`, if no case starts for [`CASE_TIME_LIMIT`]: a hang fails instead of waiting forever.
pub fn tick(target: &'static str) {
    let start = *WATCHDOG.get_or_init(|| {
        let start = Instant::now();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = start.elapsed().as_millis() as u64;
            let last = LAST_TICK_MS.load(Ordering::Relaxed);
            if now.saturating_sub(last) > CASE_TIME_LIMIT.as_millis() as u64 {
                eprintln!(
                    "fuzz watchdog: a case of {target} ran for over {CASE_TIME_LIMIT:?}: a hang"
                );
                std::process::abort();
            }
        });
        start
    });
    LAST_TICK_MS.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
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

    /// Print `FUZZ <target>: <n> cases, 0 panics, 0 hangs`.
    pub fn report(&self) {
        println!(
            "FUZZ {}: {} cases, 0 panics, 0 hangs",
            self.target,
            self.count.load(Ordering::Relaxed)
        );
    }
}

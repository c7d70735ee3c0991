//! The status of a running session: on a terminal, one line redrawn in place (samples, rate,
//! errors, processes, flushes); otherwise a plain log line every `--status-every` seconds,
//! as a sidecar's log collector wants them.

use crate::session::sampler::LiveCounters;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the terminal line is redrawn.
const TERMINAL_REFRESH: Duration = Duration::from_millis(250);

/// What the status reports, shared with the session.
#[derive(Debug, Default)]
pub struct StatusCounters {
    /// The sampler's counters (summed over every process traced).
    pub sampler: Arc<LiveCounters>,
    /// Processes being traced now.
    pub processes: AtomicU64,
    /// Flushes written so far.
    pub flushes: AtomicU64,
}

/// The status reporter's thread; stopping it clears the terminal line.
pub struct StatusReporter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// True when stderr is a terminal and the line is redrawn in place.
    pub on_terminal: bool,
}

impl StatusReporter {
    /// Start reporting `counters`: on a terminal always; otherwise every `log_every`, if given.
    pub fn start(counters: Arc<StatusCounters>, log_every: Option<Duration>) -> StatusReporter {
        let on_terminal = std::io::stderr().is_terminal();
        let stop = Arc::new(AtomicBool::new(false));
        let interval = if on_terminal {
            Some(TERMINAL_REFRESH)
        } else {
            log_every
        };
        let thread = interval.and_then(|interval| {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("tracer-status".into())
                .spawn(move || report_until_stopped(&counters, interval, on_terminal, &stop))
                .ok()
        });
        StatusReporter {
            stop,
            thread,
            on_terminal,
        }
    }

    /// Stop reporting (and clear the terminal line).
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for StatusReporter {
    fn drop(&mut self) {
        self.finish();
    }
}

fn report_until_stopped(
    counters: &StatusCounters,
    interval: Duration,
    on_terminal: bool,
    stop: &AtomicBool,
) {
    let start = Instant::now();
    let mut last = (start, 0u64);
    let mut next = start + interval;
    while !stop.load(Ordering::Relaxed) {
        // Sleep in short slices so that stopping is quick.
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        next += interval;
        let samples = counters.sampler.samples.load(Ordering::Relaxed);
        let rate = (samples - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-9);
        last = (now, samples);
        let line = status_line(counters, samples, rate, now.duration_since(start));
        let mut err = std::io::stderr().lock();
        if on_terminal {
            let _ = write!(err, "\r\x1b[K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }
    if on_terminal {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
}

/// `tracer: status: 12345 samples (998/s), 0 errors, 0 missed, 1 process, 3 flushes, 12s`;
/// with `--max-cpu` holding the rate down, `N throttled` follows the missed ticks.
pub fn status_line(
    counters: &StatusCounters,
    samples: u64,
    rate: f64,
    elapsed: Duration,
) -> String {
    let processes = counters.processes.load(Ordering::Relaxed);
    let throttled = counters.sampler.throttled.load(Ordering::Relaxed);
    format!(
        "tracer: status: {samples} samples ({rate:.0}/s), {} errors, {} missed, {}{processes} {}, \
         {} flushes, {}s",
        counters.sampler.errors.load(Ordering::Relaxed),
        counters.sampler.missed.load(Ordering::Relaxed),
        if throttled > 0 {
            format!("{throttled} throttled (--max-cpu), ")
        } else {
            String::new()
        },
        if processes == 1 {
            "process"
        } else {
            "processes"
        },
        counters.flushes.load(Ordering::Relaxed),
        elapsed.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_ticks_show_only_when_there_are_some() {
        let counters = StatusCounters::default();
        counters.processes.store(1, Ordering::Relaxed);
        let line = status_line(&counters, 10, 10.0, Duration::from_secs(1));
        assert!(!line.contains("throttled"), "{line}");
        counters.sampler.throttled.store(7, Ordering::Relaxed);
        let line = status_line(&counters, 10, 10.0, Duration::from_secs(1));
        assert!(
            line.contains("0 missed, 7 throttled (--max-cpu), 1 process"),
            "{line}"
        );
    }
}

//! The sampler thread: reads stacks on an absolute-deadline timer and sends compact samples to
//! the aggregator.
//!
//! Tick `n` is due at `start + n × period`, so sleeping late never shifts later ticks. A tick
//! whose deadline passed entirely while an earlier read or a late wake-up was in progress is
//! *missed* (counted, not sampled); a tick sampled more than a quarter period after its
//! deadline is *late*. Neither is ever dropped silently.

use crate::reader::sample::{CodeId, CodeInfo, Message, Sample};
use crate::reader::{ErrorKinds, ReadError, StackReader};
use crossbeam_channel::Sender;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How to sample.
#[derive(Debug, Clone)]
pub struct SamplerConfig {
    /// Samples per second.
    pub rate_hz: f64,
    /// Stop after this long; `None` runs until stopped or the target exits.
    pub duration: Option<Duration>,
}

/// Why sampling ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Duration,
    Signal,
    TargetExited,
}

/// What the sampler did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SamplerStats {
    /// Samples read and sent.
    pub samples: u64,
    /// Reads that failed (torn or unreadable stacks): dropped, never half-counted.
    pub errors: u64,
    /// `errors` by kind.
    pub errors_by_kind: ErrorKinds,
    /// Threads left out of samples that were kept (their stacks could not be read whole), by
    /// kind.
    pub threads_dropped: ErrorKinds,
    /// Ticks sampled more than a quarter period after their deadline.
    pub late: u64,
    /// Ticks not sampled at all because their deadline passed during an earlier one.
    pub missed: u64,
    /// Thread stacks counted without their innermost frames, which changed during every read.
    pub truncated: u64,
    /// Wall time from the first tick to the stop.
    pub duration_s: f64,
    /// Wall time summed over the processes sampled (process-seconds): `duration_s` for one
    /// process; for a family (`--subprocesses`), whose `duration_s` is its wall time, more.
    pub process_seconds: f64,
    /// The first read error, for the user's benefit.
    #[serde(skip)]
    pub first_error: Option<String>,
    #[serde(skip)]
    pub stop_reason: Option<StopReason>,
}

/// The longest single sleep: how quickly a stop request is noticed at low rates.
const MAX_SLEEP: Duration = Duration::from_millis(50);
/// Closer than this to a deadline, the sampler spins instead of sleeping: even with the timer
/// slack at 1 ns a sleep overshoots by some tens of microseconds, too coarse for rates of
/// 10 kHz and more (at 200 kHz a tick is 5 µs).
const SPIN_WINDOW: Duration = Duration::from_micros(60);
/// How often the target's liveness is checked while reads succeed.
const LIVENESS_INTERVAL: Duration = Duration::from_millis(100);

/// The sampler's counters as it goes, readable from other threads (the status line, and the
/// stats of periodic snapshots). One session's counters may also add into a total (a
/// family's, for its status line), so that a session's snapshots carry its own counts only.
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub samples: AtomicU64,
    pub errors: AtomicU64,
    pub missed: AtomicU64,
    total: Option<std::sync::Arc<LiveCounters>>,
}

impl LiveCounters {
    /// Counters of one session that also add everything into `total`.
    pub fn adding_to(total: std::sync::Arc<LiveCounters>) -> LiveCounters {
        LiveCounters {
            total: Some(total),
            ..LiveCounters::default()
        }
    }

    fn add_samples(&self, n: u64) {
        self.samples.fetch_add(n, Ordering::Relaxed);
        if let Some(total) = &self.total {
            total.add_samples(n);
        }
    }

    fn add_errors(&self, n: u64) {
        self.errors.fetch_add(n, Ordering::Relaxed);
        if let Some(total) = &self.total {
            total.add_errors(n);
        }
    }

    fn add_missed(&self, n: u64) {
        self.missed.fetch_add(n, Ordering::Relaxed);
        if let Some(total) = &self.total {
            total.add_missed(n);
        }
    }

    /// The stats of a run still going, `elapsed` into it.
    pub fn stats_so_far(&self, elapsed: Duration) -> SamplerStats {
        SamplerStats {
            samples: self.samples.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            missed: self.missed.load(Ordering::Relaxed),
            duration_s: elapsed.as_secs_f64(),
            process_seconds: elapsed.as_secs_f64(),
            ..SamplerStats::default()
        }
    }
}

/// Run the sampler loop until the duration passes, `stop` is set, or `is_alive()` says the
/// target is gone. Samples and new code ids go to `tx`.
pub fn run(
    reader: &mut dyn StackReader,
    pending_codes: Vec<(CodeId, CodeInfo)>,
    config: &SamplerConfig,
    stop: &AtomicBool,
    is_alive: &dyn Fn() -> bool,
    tx: &Sender<Message>,
) -> SamplerStats {
    run_observed(reader, pending_codes, config, stop, is_alive, tx, None)
}

/// [`run`], adding every sample, error and missed tick to `live` as well as it goes.
pub fn run_observed(
    reader: &mut dyn StackReader,
    pending_codes: Vec<(CodeId, CodeInfo)>,
    config: &SamplerConfig,
    stop: &AtomicBool,
    is_alive: &dyn Fn() -> bool,
    tx: &Sender<Message>,
    live: Option<&LiveCounters>,
) -> SamplerStats {
    let mut stats = SamplerStats::default();
    let mut new_codes = pending_codes;
    let period_ns = (1e9 / config.rate_hz.max(0.001)).max(1.0) as u64;
    let start = Instant::now();
    // Ticks due strictly before the end of the duration; `None` is unbounded.
    let tick_limit = config
        .duration
        .map(|d| (d.as_nanos() as u64).div_ceil(period_ns));
    let mut tick: u64 = 0;
    let mut sample = Sample::default();
    let mut last_liveness_check = start;
    set_fine_timer_slack();

    let reason = 'ticks: loop {
        if tick_limit.is_some_and(|limit| tick >= limit) {
            // Sleep out the rest of the duration so that it is honoured exactly.
            let end = start + config.duration.unwrap_or_default();
            break sleep_until(end, stop).unwrap_or(StopReason::Duration);
        }
        let deadline = start + Duration::from_nanos(period_ns.saturating_mul(tick));
        if let Some(reason) = sleep_until(deadline, stop) {
            break reason;
        }
        let lateness = Instant::now()
            .saturating_duration_since(deadline)
            .as_nanos() as u64;
        if lateness >= period_ns {
            let mut skipped = lateness / period_ns;
            if let Some(limit) = tick_limit {
                skipped = skipped.min(limit - tick);
            }
            stats.missed += skipped;
            if let Some(live) = live {
                live.add_missed(skipped);
            }
            tick += skipped;
            if tick_limit == Some(tick) {
                continue;
            }
        }
        if lateness % period_ns > period_ns / 4 {
            stats.late += 1;
        }
        tick += 1;

        let result = reader.read(&mut sample, &mut new_codes);
        // Codes first seen by a failed read are interned all the same: send them regardless.
        for (id, info) in new_codes.drain(..) {
            if tx.send(Message::Code(id, info)).is_err() {
                break 'ticks StopReason::Signal;
            }
        }
        match result {
            Ok(()) => {
                stats.samples += 1;
                if let Some(live) = live {
                    live.add_samples(1);
                }
                stats.truncated += sample.truncated_threads() as u64;
                stats.threads_dropped.merge(&sample.threads_dropped);
                let full = std::mem::take(&mut sample);
                if tx.send(Message::Sample(full)).is_err() {
                    break StopReason::Signal;
                }
            }
            Err(ReadError::Transient(kind, message)) => {
                if !is_alive() {
                    break StopReason::TargetExited;
                }
                stats.errors += 1;
                stats.errors_by_kind.add(kind);
                if let Some(live) = live {
                    live.add_errors(1);
                }
                if stats.first_error.is_none() {
                    stats.first_error = Some(message);
                }
            }
        }
        // A target that exits between reads may leave its memory readable for a moment (a
        // zombie): look now and then even while reads succeed.
        if last_liveness_check.elapsed() >= LIVENESS_INTERVAL {
            last_liveness_check = Instant::now();
            if !is_alive() {
                break StopReason::TargetExited;
            }
        }
    };
    stats.duration_s = start.elapsed().as_secs_f64();
    stats.process_seconds = stats.duration_s;
    stats.stop_reason = Some(reason);
    stats
}

/// Wait until `deadline`: sleep in slices short enough to notice `stop`, and spin through the
/// last [`SPIN_WINDOW`]. Returns the reason to stop, if any.
fn sleep_until(deadline: Instant, stop: &AtomicBool) -> Option<StopReason> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return Some(StopReason::Signal);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        let remaining = deadline - now;
        if remaining > SPIN_WINDOW {
            std::thread::sleep((remaining - SPIN_WINDOW).min(MAX_SLEEP));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Ask the kernel to wake this thread's sleeps on time (the default slack is 50 µs).
fn set_fine_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::sample::FrameRef;

    /// A reader that fails every third read and otherwise reports one frame.
    struct Scripted {
        reads: u32,
    }

    impl StackReader for Scripted {
        fn read(
            &mut self,
            sample: &mut Sample,
            new_codes: &mut Vec<(CodeId, CodeInfo)>,
        ) -> Result<(), ReadError> {
            self.reads += 1;
            sample.clear();
            if self.reads == 1 {
                new_codes.push((
                    0,
                    CodeInfo {
                        filename: "/a.py".into(),
                        funcname: "f".into(),
                    },
                ));
            }
            if self.reads.is_multiple_of(3) {
                return Err(ReadError::Transient(
                    crate::reader::ReadErrorKind::Torn,
                    "torn".into(),
                ));
            }
            sample.frames.push(FrameRef { code: 0, line: 1 });
            sample.end_thread(1, false);
            Ok(())
        }
    }

    #[test]
    fn counts_samples_and_errors_and_honours_duration() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut reader = Scripted { reads: 0 };
        let config = SamplerConfig {
            rate_hz: 200.0,
            duration: Some(Duration::from_millis(300)),
        };
        let stop = AtomicBool::new(false);
        let stats = run(&mut reader, Vec::new(), &config, &stop, &|| true, &tx);
        drop(tx);
        assert_eq!(stats.stop_reason, Some(StopReason::Duration));
        let msgs: Vec<Message> = rx.iter().collect();
        let samples = msgs
            .iter()
            .filter(|m| matches!(m, Message::Sample(_)))
            .count() as u64;
        assert_eq!(samples, stats.samples);
        assert!(
            matches!(msgs[0], Message::Code(0, _)),
            "code before its first sample"
        );
        // Every tick is accounted for: sampled, failed or missed.
        assert_eq!(stats.samples + stats.errors + stats.missed, 60, "{stats:?}");
        assert_eq!(stats.errors_by_kind.torn, stats.errors, "{stats:?}");
        assert!(stats.duration_s >= 0.3);
    }

    #[test]
    fn stops_when_the_target_is_gone() {
        let (tx, _rx) = crossbeam_channel::unbounded();
        let mut reader = Scripted { reads: 0 };
        let config = SamplerConfig {
            rate_hz: 1000.0,
            duration: None,
        };
        let stop = AtomicBool::new(false);
        let stats = run(&mut reader, Vec::new(), &config, &stop, &|| false, &tx);
        assert_eq!(stats.stop_reason, Some(StopReason::TargetExited));
        assert_eq!(stats.samples, 2);
    }
}

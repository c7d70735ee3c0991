//! The sampler thread: reads stacks on an absolute-deadline timer and sends compact samples to
//! the aggregator, in batches.
//!
//! Tick `n` is due at `start + n × period`, so sleeping late never shifts later ticks. A tick
//! whose deadline passed entirely while an earlier read or a late wake-up was in progress is
//! *missed* (counted, not sampled); a tick sampled more than a quarter period after its
//! deadline is *late*. With `--max-cpu`, ticks skipped to keep within the CPU budget are
//! *throttled*. None is ever dropped silently: samples + errors + missed + throttled = ticks.
//!
//! Waiting for a tick sleeps whenever a sleep keeps to the quarter period, and spins only the
//! part a sleep cannot (src/session/pacing.rs). Samples reach the aggregator in batches (at most 256
//! messages or 100 ms), so its thread wakes per batch, not per sample; a flush request is
//! put into the stream after the samples it must include, so flushes are exact.

use crate::aggregate::model::CoverageResults;
use crate::reader::sample::{CodeId, CodeInfo, Message, Sample};
use crate::reader::{ErrorKinds, ReadError, StackReader};
use crate::session::pacing::{self, CpuThrottle, Interrupted, Pacer};
use crossbeam_channel::{Receiver, Sender};
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
    /// `--max-cpu`: the most CPU the tracer may use, in percent of one core; `None` is no cap.
    pub max_cpu_percent: Option<f64>,
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
    /// Ticks skipped on purpose to keep within `--max-cpu`.
    pub throttled: u64,
    /// Ticks due so far: samples + errors + missed + throttled.
    pub ticks: u64,
    /// Thread stacks counted without their innermost frames, which changed during every read.
    pub truncated: u64,
    /// Wall time from the first tick to the stop.
    pub duration_s: f64,
    /// CPU time (user + system) of the session's sampler and aggregator threads.
    pub cpu_s: f64,
    /// Batches of messages handed to the aggregator (each a wake-up of its thread at most).
    pub batches: u64,
    /// Wall time the sampler spent spinning for deadlines a sleep could not keep.
    pub spin_s: f64,
    /// Wall time summed over the processes sampled (process-seconds): `duration_s` for one
    /// process; for a family (`--subprocesses`), whose `duration_s` is its wall time, more.
    pub process_seconds: f64,
    /// The first read error, for the user's benefit.
    #[serde(skip)]
    pub first_error: Option<String>,
    #[serde(skip)]
    pub stop_reason: Option<StopReason>,
}

/// How often the target's liveness is checked while reads succeed.
const LIVENESS_INTERVAL: Duration = Duration::from_millis(100);
/// A batch is handed to the aggregator once it holds this many messages...
const BATCH_MESSAGES: usize = 256;
/// ...or once its first message has waited this long, whichever comes first.
const BATCH_AGE_NS: u64 = 100_000_000;

/// The sampler's counters as it goes, readable from other threads (the status line, and the
/// stats of periodic flushes). One session's counters may also add into a total (a
/// family's, for its status line), so that a session's flushes carry its own counts only.
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub samples: AtomicU64,
    pub errors: AtomicU64,
    pub missed: AtomicU64,
    pub throttled: AtomicU64,
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

    /// Add `n` to one counter, here and in the total this session adds into.
    fn add(&self, counter: fn(&LiveCounters) -> &AtomicU64, n: u64) {
        counter(self).fetch_add(n, Ordering::Relaxed);
        if let Some(total) = &self.total {
            total.add(counter, n);
        }
    }
}

/// What the aggregator answers a flush request with: the results so far and the sampler's
/// stats at the same point of the stream.
pub type FlushReply = (CoverageResults, SamplerStats);

/// A request for the results so far (`--flush-every`), sent to the sampler: it hands the aggregator its pending batch
/// and then [`Message::Flush`], so that the flush holds every sample taken before the
/// request and its stats count exactly those.
pub type FlushRequest = Sender<FlushReply>;

/// Where the sampler's output goes: the channel to the aggregator, and the flush requests
/// to answer.
pub struct Outlet<'a> {
    /// Batches of messages, in order, to the aggregator.
    pub tx: &'a Sender<Vec<Message>>,
    /// Flush requests (`--flush-every`); `None` when nothing is flushed.
    pub flush_requests: Option<&'a Receiver<FlushRequest>>,
    /// Counters to keep up to date for the status line.
    pub live: Option<&'a LiveCounters>,
}

/// Run the sampler loop until the duration passes, `stop` is set, or `is_alive()` says the
/// target is gone. Samples and new code ids go to `tx`, in batches.
pub fn run(
    reader: &mut dyn StackReader,
    pending_codes: Vec<(CodeId, CodeInfo)>,
    config: &SamplerConfig,
    stop: &AtomicBool,
    is_alive: &dyn Fn() -> bool,
    tx: &Sender<Vec<Message>>,
) -> SamplerStats {
    let outlet = Outlet {
        tx,
        flush_requests: None,
        live: None,
    };
    run_observed(reader, pending_codes, config, stop, is_alive, &outlet)
}

/// [`run`], adding every sample, error, missed and throttled tick to the outlet's live
/// counters as it goes, and answering its flush requests.
pub fn run_observed(
    reader: &mut dyn StackReader,
    pending_codes: Vec<(CodeId, CodeInfo)>,
    config: &SamplerConfig,
    stop: &AtomicBool,
    is_alive: &dyn Fn() -> bool,
    outlet: &Outlet,
) -> SamplerStats {
    let mut stats = SamplerStats::default();
    let mut new_codes = pending_codes;
    let period_ns = (1e9 / config.rate_hz.max(0.001)).max(1.0) as u64;
    let mut pacer = Pacer::new();
    let cpu_start = pacing::thread_cpu_ns();
    let start = Instant::now();
    let start_ns = pacing::monotonic_ns();
    let mut throttle = config
        .max_cpu_percent
        .map(|percent| CpuThrottle::new(percent, config.rate_hz, start_ns));
    let mut out = Batcher::new(outlet);
    // Ticks due strictly before the end of the duration; `None` is unbounded.
    let tick_limit = config
        .duration
        .map(|d| (d.as_nanos() as u64).div_ceil(period_ns));
    let mut tick: u64 = 0;
    let mut sample = Sample::default();
    let mut last_liveness_check = start;
    let live = outlet.live;
    let add_live = |counter: fn(&LiveCounters) -> &AtomicU64, n: u64| {
        if let Some(live) = live {
            live.add(counter, n);
        }
    };

    let reason = 'ticks: loop {
        if tick_limit.is_some_and(|limit| tick >= limit) {
            stats.ticks = tick;
            // Sleep out the rest of the duration so that it is honoured exactly.
            let end = start_ns + config.duration.unwrap_or_default().as_nanos() as u64;
            break wait(&mut pacer, end, period_ns, stop, &mut out, &stats, start)
                .unwrap_or(StopReason::Duration);
        }
        // Ticks per sample: above 1 while `--max-cpu` holds the rate down.
        let stride = throttle.as_ref().map_or(1.0, CpuThrottle::stride);
        if let Some(throttle) = &mut throttle {
            let mut next = throttle.next_tick(tick);
            if let Some(limit) = tick_limit {
                next = next.min(limit);
            }
            stats.throttled += next - tick;
            add_live(|l| &l.throttled, next - tick);
            tick = next;
            if tick_limit == Some(tick) {
                continue;
            }
        }
        let effective_period_ns = (period_ns as f64 * stride) as u64;
        let deadline = start_ns + period_ns.saturating_mul(tick);
        stats.ticks = tick;
        if let Some(reason) = wait(
            &mut pacer,
            deadline,
            effective_period_ns / 4,
            stop,
            &mut out,
            &stats,
            start,
        ) {
            break reason;
        }
        let lateness = pacing::monotonic_ns().saturating_sub(deadline);
        if lateness >= period_ns {
            let mut passed = lateness / period_ns;
            if let Some(limit) = tick_limit {
                passed = passed.min(limit - tick);
            }
            // Of the ticks that went by, those the throttle would have sampled are missed; it
            // would have skipped the others anyway.
            let missed = ((passed as f64 / stride) as u64).min(passed);
            stats.missed += missed;
            stats.throttled += passed - missed;
            add_live(|l| &l.missed, missed);
            add_live(|l| &l.throttled, passed - missed);
            tick += passed;
            if tick_limit == Some(tick) {
                continue;
            }
        }
        if lateness % effective_period_ns.max(1) > effective_period_ns / 4 {
            stats.late += 1;
        }
        if let Some(throttle) = &mut throttle {
            throttle.sampled(tick);
        }
        tick += 1;

        let result = reader.read(&mut sample, &mut new_codes);
        // Codes first seen by a failed read are interned all the same: send them regardless.
        for (id, info) in new_codes.drain(..) {
            if out.push(Message::Code(id, info)).is_err() {
                break 'ticks StopReason::Signal;
            }
        }
        match result {
            Ok(()) => {
                stats.samples += 1;
                add_live(|l| &l.samples, 1);
                stats.truncated += sample.truncated_threads() as u64;
                stats.threads_dropped.merge(&sample.threads_dropped);
                let full = std::mem::take(&mut sample);
                if out.push(Message::Sample(full)).is_err() {
                    break StopReason::Signal;
                }
            }
            Err(ReadError::Transient(kind, message)) => {
                if !is_alive() {
                    break StopReason::TargetExited;
                }
                stats.errors += 1;
                stats.errors_by_kind.add(kind);
                add_live(|l| &l.errors, 1);
                if stats.first_error.is_none() {
                    stats.first_error = Some(message);
                }
            }
        }
        let now_ns = pacing::monotonic_ns();
        if out.is_due(now_ns) && out.send().is_err() {
            break StopReason::Signal;
        }
        if let Some(throttle) = &mut throttle {
            throttle.control(now_ns);
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
    // Nothing is lost at the stop: the last batch goes too (unless the aggregator is gone),
    // and a request already waiting is answered with everything (a family's flush may ask
    // just as this process ends).
    let _ = out.send();
    let _ = out.answer_flush_requests(&stats, start);
    stats.ticks = tick;
    stats.batches = out.batches;
    stats.duration_s = start.elapsed().as_secs_f64();
    stats.cpu_s = pacing::thread_cpu_ns().saturating_sub(cpu_start) as f64 / 1e9;
    stats.spin_s = pacer.spun().as_secs_f64();
    stats.process_seconds = stats.duration_s;
    stats.stop_reason = Some(reason);
    stats
}

/// Wait for `deadline_ns` within `tolerance_ns`, answering flush requests meanwhile.
/// Returns the reason to stop, if any.
fn wait(
    pacer: &mut Pacer,
    deadline_ns: u64,
    tolerance_ns: u64,
    stop: &AtomicBool,
    out: &mut Batcher,
    stats: &SamplerStats,
    start: Instant,
) -> Option<StopReason> {
    let requests = out.outlet.flush_requests;
    let interrupt = || stop.load(Ordering::Relaxed) || requests.is_some_and(|r| !r.is_empty());
    loop {
        match pacer.wait_until(deadline_ns, tolerance_ns, &interrupt) {
            Ok(()) => return None,
            Err(Interrupted::Requested) => {
                if stop.load(Ordering::Relaxed) {
                    return Some(StopReason::Signal);
                }
                if out.answer_flush_requests(stats, start).is_err() {
                    return Some(StopReason::Signal);
                }
            }
        }
    }
}

/// The aggregator's thread is gone.
#[derive(Debug)]
struct Closed;

/// Messages collected into batches for the aggregator: one channel send (and at most one
/// wake-up of the aggregator) per batch, not per sample. The channel is bounded, so a slow
/// aggregator blocks the sampler, which then shows as late and missed ticks, never as lost
/// samples.
struct Batcher<'a> {
    outlet: &'a Outlet<'a>,
    batch: Vec<Message>,
    /// When the batch's first message was queued.
    oldest_ns: u64,
    /// Batches sent so far.
    batches: u64,
}

impl<'a> Batcher<'a> {
    fn new(outlet: &'a Outlet<'a>) -> Batcher<'a> {
        Batcher {
            outlet,
            batch: Vec::with_capacity(BATCH_MESSAGES),
            oldest_ns: 0,
            batches: 0,
        }
    }

    fn push(&mut self, message: Message) -> Result<(), Closed> {
        if self.batch.is_empty() {
            self.oldest_ns = pacing::monotonic_ns();
        }
        self.batch.push(message);
        if self.batch.len() >= BATCH_MESSAGES {
            self.send()?;
        }
        Ok(())
    }

    /// The batch has waited long enough: send it even though it is not full.
    fn is_due(&self, now_ns: u64) -> bool {
        !self.batch.is_empty() && now_ns.saturating_sub(self.oldest_ns) >= BATCH_AGE_NS
    }

    /// Hand the batch (if any) to the aggregator.
    fn send(&mut self) -> Result<(), Closed> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_MESSAGES));
        self.outlet.tx.send(batch).map_err(|_| Closed)?;
        self.batches += 1;
        Ok(())
    }

    /// Put every pending flush request into the stream, after the samples so far.
    fn answer_flush_requests(
        &mut self,
        stats: &SamplerStats,
        start: Instant,
    ) -> Result<(), Closed> {
        let Some(requests) = self.outlet.flush_requests else {
            return Ok(());
        };
        while let Ok(reply) = requests.try_recv() {
            let mut so_far = stats.clone();
            so_far.duration_s = start.elapsed().as_secs_f64();
            so_far.process_seconds = so_far.duration_s;
            so_far.batches = self.batches + 1;
            self.batch.push(Message::Flush(reply, Box::new(so_far)));
            self.send()?;
        }
        Ok(())
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
                        first_line: 1,
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
            max_cpu_percent: None,
        };
        let stop = AtomicBool::new(false);
        let stats = run(&mut reader, Vec::new(), &config, &stop, &|| true, &tx);
        drop(tx);
        assert_eq!(stats.stop_reason, Some(StopReason::Duration));
        let batches: Vec<Vec<Message>> = rx.iter().collect();
        assert_eq!(batches.len() as u64, stats.batches);
        // 300 ms of samples at 200 Hz: a batch per 100 ms, not one per sample.
        assert!(stats.batches <= 5, "{stats:?}");
        let msgs: Vec<Message> = batches.into_iter().flatten().collect();
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
    fn a_cpu_cap_throttles_and_every_tick_is_accounted_for() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut reader = Scripted { reads: 0 };
        let config = SamplerConfig {
            rate_hz: 100_000.0,
            duration: Some(Duration::from_millis(400)),
            // Far below what 100 kHz costs, whatever the machine.
            max_cpu_percent: Some(0.5),
        };
        let stop = AtomicBool::new(false);
        let stats = run(&mut reader, Vec::new(), &config, &stop, &|| true, &tx);
        drop(tx);
        assert!(stats.throttled > 0, "{stats:?}");
        assert_eq!(
            stats.samples + stats.errors + stats.missed + stats.throttled,
            40_000,
            "{stats:?}"
        );
        let samples = rx
            .iter()
            .flatten()
            .filter(|m| matches!(m, Message::Sample(_)))
            .count() as u64;
        assert_eq!(samples, stats.samples);
    }

    #[test]
    fn a_flush_request_comes_after_every_sample_before_it() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (requests_tx, requests_rx) = crossbeam_channel::bounded(1);
        let (reply_tx, _reply_rx) = crossbeam_channel::bounded(1);
        requests_tx.send(reply_tx).unwrap();
        let mut reader = Scripted { reads: 0 };
        let config = SamplerConfig {
            rate_hz: 1000.0,
            duration: Some(Duration::from_millis(100)),
            max_cpu_percent: None,
        };
        let stop = AtomicBool::new(false);
        let outlet = Outlet {
            tx: &tx,
            flush_requests: Some(&requests_rx),
            live: None,
        };
        let stats = run_observed(&mut reader, Vec::new(), &config, &stop, &|| true, &outlet);
        drop(tx);
        let mut samples_before = 0;
        let mut marked = None;
        for message in rx.iter().flatten() {
            match message {
                Message::Sample(_) => samples_before += 1,
                Message::Flush(_, at) => marked = Some((samples_before, at.samples)),
                Message::Code(..) => {}
            }
        }
        let (before, counted) = marked.expect("the flush request went into the stream");
        assert_eq!(before, counted, "{stats:?}");
    }

    #[test]
    fn stops_when_the_target_is_gone() {
        let (tx, _rx) = crossbeam_channel::unbounded();
        let mut reader = Scripted { reads: 0 };
        let config = SamplerConfig {
            rate_hz: 1000.0,
            duration: None,
            max_cpu_percent: None,
        };
        let stop = AtomicBool::new(false);
        let stats = run(&mut reader, Vec::new(), &config, &stop, &|| false, &tx);
        assert_eq!(stats.stop_reason, Some(StopReason::TargetExited));
        // The third read fails and the target is then found gone; a slow machine may reach the
        // periodic liveness check first, after fewer samples. A failed read of a gone target
        // is never counted as an error.
        assert!(stats.samples <= 2, "{stats:?}");
        assert_eq!(stats.errors, 0, "{stats:?}");
    }
}

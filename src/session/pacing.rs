//! Pacing the sampler: waiting for a deadline on the monotonic clock with as little CPU as the
//! deadline allows, and the tracer's own CPU time, for `--max-cpu`.
//!
//! A wait sleeps with an absolute `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`, the
//! thread's timer slack lowered to 1 ns, so that sleeping late never shifts later deadlines.
//! Even so a sleep ends some microseconds after its deadline (a wake-up's cost; more after a
//! long sleep, as the CPU idles deeper, and on a virtual machine). The [`Pacer`] learns that
//! overshoot as it goes (capped at 50 µs: more is waiting for a busy CPU, which spinning would
//! only make worse for the target); when it is within the tolerance the caller gives (a
//! quarter of the period: what `stats.late` counts), the wait sleeps straight to the deadline.
//! Only when the tolerance is smaller than the overshoot (high rates) does it wake that much
//! early and spin the rest. So rates up to 1 / (4 × 50 µs) = 5 kHz never spin at all.

use std::time::Duration;

/// Nanoseconds on `CLOCK_MONOTONIC` (the clock `std::time::Instant` reads on Linux).
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// CPU time (user + system) used so far by every thread of this process. Child processes
/// (the command of `tracer run`) are not included: they are separate processes.
pub fn process_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time (user + system) used so far by the calling thread.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write; these clocks exist on every Linux.
    unsafe {
        libc::clock_gettime(clock, &mut t);
    }
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// The longest single sleep: how quickly a stop (or a flush request) is noticed.
const MAX_SLEEP_NS: u64 = 50_000_000;
/// Spin through this much beyond the learned overshoot when waking early, for its jitter.
const SPIN_MARGIN_NS: u64 = 5_000;
/// Sleeps shorter than this are not worth the system call: spin instead.
const MIN_SLEEP_NS: u64 = 2_000;
/// What the overshoot is taken to be before any sleep has measured it.
const INITIAL_OVERSHOOT_NS: f64 = 20_000.0;
/// A single overshoot counts at most this much. Beyond a wake-up's own cost, a sleep ends late
/// because the CPUs are busy (the thread waits its turn); spinning cannot fix that, it only
/// takes a CPU from the target, so such waits must not teach the pacer to spin.
const OVERSHOOT_CAP_NS: f64 = 50_000.0;

/// How a wait ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    /// The caller's `interrupt()` said so.
    Requested,
}

/// Waits for deadlines on the monotonic clock (one per sampler thread).
#[derive(Debug)]
pub struct Pacer {
    /// How late a sleep ends: a moving average of recent sleeps' overshoots, each capped.
    overshoot_ns: f64,
    /// Nanoseconds spent spinning, for the record.
    spun_ns: u64,
    /// Sleeps taken.
    sleeps: u64,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

impl Pacer {
    /// A pacer for the calling thread: lowers its timer slack to 1 ns (the default slack,
    /// 50 µs, would add up to that much to every sleep).
    pub fn new() -> Pacer {
        // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only the calling thread.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
        }
        Pacer {
            overshoot_ns: INITIAL_OVERSHOOT_NS,
            spun_ns: 0,
            sleeps: 0,
        }
    }

    /// How late a sleep is expected to end now.
    pub fn overshoot(&self) -> Duration {
        Duration::from_nanos(self.overshoot_ns as u64)
    }

    /// Time spent spinning so far.
    pub fn spun(&self) -> Duration {
        Duration::from_nanos(self.spun_ns)
    }

    /// Sleeps taken so far.
    pub fn sleeps(&self) -> u64 {
        self.sleeps
    }

    /// Wait until `deadline_ns` ([`monotonic_ns`]); ending up to `tolerance_ns` after it is
    /// acceptable, and sleeping is preferred whenever it keeps to that. `interrupt` is asked
    /// at least every 50 ms; when it says so the wait ends early.
    pub fn wait_until(
        &mut self,
        deadline_ns: u64,
        tolerance_ns: u64,
        interrupt: &dyn Fn() -> bool,
    ) -> Result<(), Interrupted> {
        let mut spin_started: Option<u64> = None;
        let result = loop {
            if interrupt() {
                break Err(Interrupted::Requested);
            }
            let now = monotonic_ns();
            if now >= deadline_ns {
                break Ok(());
            }
            let overshoot = self.overshoot_ns as u64;
            let wake_at = if overshoot <= tolerance_ns {
                deadline_ns
            } else {
                deadline_ns.saturating_sub(overshoot + SPIN_MARGIN_NS)
            };
            if wake_at >= now + MIN_SLEEP_NS {
                let target = wake_at.min(now + MAX_SLEEP_NS);
                sleep_until_ns(target);
                let woke = monotonic_ns();
                self.sleeps += 1;
                self.learn(woke.saturating_sub(target));
            } else {
                spin_started.get_or_insert(now);
                std::hint::spin_loop();
            }
        };
        if let Some(started) = spin_started {
            self.spun_ns += monotonic_ns().saturating_sub(started);
        }
        result
    }

    fn learn(&mut self, overshoot_ns: u64) {
        let o = (overshoot_ns as f64).min(OVERSHOOT_CAP_NS);
        self.overshoot_ns += (o - self.overshoot_ns) / 16.0;
    }
}

/// One absolute sleep on `CLOCK_MONOTONIC` until `deadline_ns` (or a signal).
fn sleep_until_ns(deadline_ns: u64) {
    let t = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `t` is a valid timespec; a null remainder is allowed with TIMER_ABSTIME. An
    // early return (EINTR) is harmless: the caller loops until the deadline.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &t,
            std::ptr::null_mut(),
        );
    }
}

/// `--max-cpu`: keeps the tracer's CPU time within a share of a core by sampling only some of
/// the ticks (the others are `stats.throttled`).
///
/// Every [`CONTROL_INTERVAL_NS`] it compares the process's CPU time over the last interval
/// with the budget and scales the share of ticks sampled by their ratio (CPU per sample is
/// roughly constant, so one step nearly lands on it; a rise is limited to ×2 a step). CPU
/// spent over the budget since the start (the first interval at full rate, a flush's write)
/// is paid back over the next [`PAYBACK_NS`], so the budget holds on average over the run, not
/// only interval by interval. The process's CPU counts every tracer thread (sampler,
/// aggregator, flush writes, other processes' samplers with `--subprocesses`: each scales
/// by the same ratio) and no child process (`tracer run`'s command is one).
#[derive(Debug)]
pub struct CpuThrottle {
    /// Cores (1.0 = one core).
    budget: f64,
    /// The share of ticks sampled, in [`Self::min_fraction`, 1].
    fraction: f64,
    /// Never below one sample a second (or every tick, at lower rates).
    min_fraction: f64,
    /// Where the next sample falls, in ticks (fractional: strides need not be whole).
    next_position: f64,
    start: (u64, u64),
    window: (u64, u64),
}

/// How often the throttle looks at the CPU used.
const CONTROL_INTERVAL_NS: u64 = 20_000_000;
/// Over how long CPU used beyond the budget is paid back.
const PAYBACK_NS: f64 = 1e9;
/// Aim this far under the budget, for the noise of measuring.
const HEADROOM: f64 = 0.95;

impl CpuThrottle {
    /// A throttle to `percent` of a core for a sampler ticking at `rate_hz`, from `now_ns`.
    pub fn new(percent: f64, rate_hz: f64, now_ns: u64) -> CpuThrottle {
        let cpu = process_cpu_ns();
        CpuThrottle {
            budget: percent / 100.0,
            fraction: 1.0,
            min_fraction: (1.0 / rate_hz).min(1.0),
            next_position: 0.0,
            start: (now_ns, cpu),
            window: (now_ns, cpu),
        }
    }

    /// Ticks per sample (1 when not throttling).
    pub fn stride(&self) -> f64 {
        1.0 / self.fraction
    }

    /// The tick to sample next, `tick` or later; the ones between are skipped.
    pub fn next_tick(&mut self, tick: u64) -> u64 {
        if self.next_position < tick as f64 {
            self.next_position = tick as f64;
        }
        self.next_position.ceil() as u64
    }

    /// `tick` is being sampled: the next sample is a stride on.
    pub fn sampled(&mut self, tick: u64) {
        // Later than planned (a late wake-up): the stride counts from there. Otherwise from the
        // planned, fractional position, so that strides of 2.5 ticks alternate 3 and 2.
        if tick as f64 >= self.next_position + 1.0 {
            self.next_position = tick as f64;
        }
        self.next_position += self.stride();
    }

    /// Adjust the share of ticks sampled to the CPU used, once per control interval.
    pub fn control(&mut self, now_ns: u64) {
        let (window_wall, window_cpu) = self.window;
        let wall = now_ns.saturating_sub(window_wall);
        if wall < CONTROL_INTERVAL_NS {
            return;
        }
        let cpu = process_cpu_ns();
        self.window = (now_ns, cpu);
        let used = cpu.saturating_sub(window_cpu) as f64 / wall as f64;
        let (start_wall, start_cpu) = self.start;
        let over = cpu.saturating_sub(start_cpu) as f64
            - self.budget * now_ns.saturating_sub(start_wall) as f64;
        let target = (self.budget * HEADROOM - over.max(0.0) / PAYBACK_NS).max(self.budget / 10.0);
        let ratio = if used > 0.0 { target / used } else { 2.0 };
        self.fraction = (self.fraction * ratio.min(2.0)).clamp(self.min_fraction, 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_ends_at_or_after_its_deadline_and_learns_the_overshoot() {
        let mut pacer = Pacer::new();
        for _ in 0..20 {
            let deadline = monotonic_ns() + 200_000;
            pacer.wait_until(deadline, 1_000_000, &|| false).unwrap();
            assert!(monotonic_ns() >= deadline);
        }
        assert!(pacer.sleeps() >= 20);
        // A tolerance this wide never needs a spin.
        assert_eq!(pacer.spun(), Duration::ZERO);
    }

    #[test]
    fn a_tolerance_below_the_overshoot_spins_the_rest() {
        let mut pacer = Pacer::new();
        // A wake-up later than the whole early margin spins nothing; the overshoot learnt
        // then makes the next wake-up earlier.
        for _ in 0..20 {
            let deadline = monotonic_ns() + 1_000_000;
            pacer.wait_until(deadline, 0, &|| false).unwrap();
            assert!(monotonic_ns() >= deadline);
        }
        assert!(pacer.spun() > Duration::ZERO);
    }

    #[test]
    fn an_interrupt_ends_the_wait() {
        let mut pacer = Pacer::new();
        let deadline = monotonic_ns() + 60_000_000_000;
        assert_eq!(
            pacer.wait_until(deadline, 1_000, &|| true),
            Err(Interrupted::Requested)
        );
    }

    #[test]
    fn a_throttle_samples_one_tick_in_its_stride_on_average() {
        let mut throttle = CpuThrottle::new(1.0, 1000.0, monotonic_ns());
        throttle.fraction = 0.4;
        let (mut tick, mut sampled) = (0u64, 0u64);
        while tick < 1000 {
            tick = throttle.next_tick(tick);
            throttle.sampled(tick);
            sampled += 1;
            tick += 1;
        }
        // Strides of 2.5 ticks: 3, 2, 3, 2... never rounded up to 3 every time.
        assert!((399..=401).contains(&sampled), "{sampled}");
    }

    #[test]
    fn a_throttle_backs_off_when_over_budget_and_never_below_its_floor() {
        let start = monotonic_ns();
        let mut throttle = CpuThrottle::new(0.001, 100.0, start);
        // Burn CPU well over 0.001 % of a core, then let a control interval pass.
        let mut x = 0u64;
        while monotonic_ns() < start + 2 * CONTROL_INTERVAL_NS {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        throttle.control(monotonic_ns());
        assert!(throttle.stride() > 1.0, "{throttle:?}");
        for _ in 0..10 {
            throttle.control(monotonic_ns() + 10 * CONTROL_INTERVAL_NS);
        }
        // One sample a second at 100 Hz: a stride of at most 100 ticks.
        assert!(throttle.stride() <= 100.0 + 1e-9, "{throttle:?}");
    }

    #[test]
    fn cpu_clocks_advance_with_work() {
        let (p0, t0) = (process_cpu_ns(), thread_cpu_ns());
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_ns() > t0);
        assert!(process_cpu_ns() >= p0 + (thread_cpu_ns() - t0) / 2);
    }
}

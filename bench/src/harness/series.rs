//! One series of calls: their latencies, rate and CPU time.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies are recorded in nanoseconds, up to a minute.
pub(super) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Adds one call's latency to `latencies`.
pub(super) fn record(latencies: &mut Histogram<u64>, latency: Duration) {
    let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
    latencies.saturating_record(ns.max(1));
}

/// CPU time this process has used so far (all threads, user and system),
/// from `/proc/self/stat`; `None` where that cannot be read.
///
/// Our process runs the caller and, except for `amqp-publish` (whose
/// queues nobody consumes), the receiver, so its CPU per call says what our
/// code costs, moved less than rate and latency by the broker's load and
/// the machine's other tenants.
pub(crate) fn process_cpu() -> Option<Duration> {
    // Reported in USER_HZ, which Linux fixes at 100 for user space.
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (user + system) * 1000 / TICKS_PER_SECOND,
    ))
}

/// One series of a run: every call of one side at one concurrency.
#[derive(Debug)]
pub(crate) struct Series {
    pub(crate) elapsed: Duration,
    pub(crate) calls: u64,
    pub(crate) latencies: Histogram<u64>,
    /// CPU time of the whole process while the series ran, if known.
    pub(crate) cpu: Option<Duration>,
}

impl Series {
    pub(crate) fn new() -> Self {
        Self {
            elapsed: Duration::ZERO,
            calls: 0,
            latencies: histogram(),
            cpu: Some(Duration::ZERO),
        }
    }

    pub(crate) fn record(&mut self, latency: Duration) {
        record(&mut self.latencies, latency);
    }

    pub(crate) fn add_elapsed(&mut self, elapsed: Duration, calls: usize) {
        self.elapsed += elapsed;
        self.calls += calls as u64;
    }

    pub(crate) fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// Adds CPU time the series used, from two [`process_cpu`] readings.
    pub(crate) fn add_cpu(&mut self, before: Option<Duration>, after: Option<Duration>) {
        self.cpu = match (self.cpu, before, after) {
            (Some(total), Some(before), Some(after)) => Some(total + after.saturating_sub(before)),
            _ => None,
        };
    }

    /// Process CPU per call, in microseconds; `None` when unknown or when
    /// the series used too little CPU for the kernel's 10 ms ticks to
    /// measure it within a few per cent.
    pub(crate) fn cpu_us(&self) -> Option<f64> {
        const MEASURABLE: Duration = Duration::from_secs(1);
        let calls = self.calls.max(1) as f64;
        self.cpu
            .filter(|cpu| *cpu >= MEASURABLE)
            .map(|cpu| cpu.as_secs_f64() * 1e6 / calls)
    }

    pub(crate) fn p50_us(&self) -> f64 {
        self.latencies.value_at_quantile(0.5) as f64 / 1000.0
    }

    pub(crate) fn p99_us(&self) -> f64 {
        self.latencies.value_at_quantile(0.99) as f64 / 1000.0
    }
}

//! Load runs: a baseline and our stack, same process, interleaved rounds.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;
use stage7_transport::{Delivery, Error, Message};
use tower::{Service, ServiceExt};

/// Latencies are recorded in nanoseconds, up to a minute.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Adds one call's latency to `latencies`.
fn record(latencies: &mut Histogram<u64>, latency: Duration) {
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

/// Runs `n` calls with `concurrency` in flight; every call must succeed.
pub(crate) async fn measure<F, Fut>(n: usize, concurrency: usize, call: F) -> Result<Series, String>
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (next, call) = (next.clone(), call.clone());
        workers.spawn(async move {
            let mut latencies = histogram();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, String>(latencies);
                }
                let t0 = Instant::now();
                call(i).await?;
                record(&mut latencies, t0.elapsed());
            }
        });
    }
    let mut series = Series::new();
    while let Some(done) = workers.join_next().await {
        let latencies = done.map_err(|e| format!("worker panicked: {e}"))??;
        series
            .latencies
            .add(&latencies)
            .map_err(|e| format!("merging histograms: {e}"))?;
    }
    series.elapsed = started.elapsed();
    series.calls = n as u64;
    Ok(series)
}

/// A baseline and the stack over the same work, at one concurrency.
#[derive(Debug)]
pub(crate) struct Comparison {
    pub(crate) scenario: String,
    pub(crate) concurrency: usize,
    pub(crate) baseline: (String, Series),
    pub(crate) candidates: Vec<(String, Series)>,
    /// Each side's rate in each round, sides in the order above.
    pub(crate) round_rates: Vec<Vec<f64>>,
    /// What a reader of the figures must know about this run.
    pub(crate) notes: Vec<String>,
}

type CallFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Call = Arc<dyn Fn(usize) -> CallFuture + Send + Sync>;
type RoundFuture = Pin<Box<dyn Future<Output = Result<Series, String>> + Send>>;
type Round = Box<dyn Fn(usize, usize) -> RoundFuture + Send + Sync>;

/// One side of a comparison: a label and how to run a round of `n` calls
/// with `concurrency` in flight.
pub(crate) struct Side {
    label: &'static str,
    round: Round,
    /// Whether the calls run in this process, so its CPU time is theirs.
    in_process: bool,
}

impl Side {
    /// A side making `call` (given the call's index) in this process. Every
    /// in-process side pays the same boxing, so the ratio is fair.
    pub(crate) fn new<F, Fut>(label: &'static str, call: F) -> Self
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let call: Call = Arc::new(move |i| Box::pin(call(i)));
        Self {
            label,
            round: Box::new(move |n, concurrency| {
                let call = call.clone();
                Box::pin(measure(n, concurrency, move |i| call(i)))
            }),
            in_process: true,
        }
    }

    /// A side whose calls another process makes: `round(n, concurrency)`
    /// runs them and reports their latencies.
    pub(crate) fn external<F, Fut>(label: &'static str, round: F) -> Self
    where
        F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Series, String>> + Send + 'static,
    {
        Self {
            label,
            round: Box::new(move |n, concurrency| Box::pin(round(n, concurrency))),
            in_process: false,
        }
    }
}

/// A side that sends a copy of `template` with a [`fresh`] id through
/// `service`. A request must come back with a reply; anything else need
/// only be delivered.
pub(crate) fn service_side<S>(label: &'static str, service: S, template: Message) -> Side
where
    S: Service<Message, Response = Delivery, Error = Error> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    let wants_reply = template.requires_sync();
    Side::new(label, move |_| {
        let call = service.clone().oneshot(fresh(&template));
        async move {
            let delivery = call.await.map_err(|e| e.to_string())?;
            if wants_reply && delivery.reply().is_none() {
                return Err("no reply".to_owned());
            }
            Ok(())
        }
    })
}

/// Alternates `rounds` rounds of each side, `n / rounds` calls each, after a
/// warm-up round, so drift in the machine or the broker hits all sides
/// alike. The rounds follow a balanced order ([`balanced_order`]), so no
/// side runs more often first, or right after a given side, than another:
/// a side inherits its predecessor's unfinished broker work. `rounds` is
/// rounded up to a whole number of periods of that order.
pub(crate) async fn compare(
    scenario: &str,
    n: usize,
    concurrency: usize,
    rounds: usize,
    sides: Vec<Side>,
) -> Result<Comparison, String> {
    let period = balanced_period(sides.len());
    let rounds = rounds.max(1).div_ceil(period) * period;
    let per_round = (n / rounds).max(1);
    let warmup = (per_round / 5).clamp(1, 2000);
    let mut totals: Vec<Series> = sides.iter().map(|_| Series::new()).collect();
    let mut round_rates = vec![Vec::new(); sides.len()];
    for side in &sides {
        (side.round)(warmup, concurrency).await?;
    }
    for round in 0..rounds {
        for i in balanced_order(sides.len(), round) {
            let (side, total) = (&sides[i], &mut totals[i]);
            eprintln!(
                "  [{scenario} c={concurrency}] {} round {}/{rounds} ({per_round} calls)",
                side.label,
                round + 1
            );
            let before = side.in_process.then(process_cpu).flatten();
            let series = (side.round)(per_round, concurrency).await?;
            total.add_cpu(before, process_cpu());
            round_rates[i].push(series.rate());
            total.elapsed += series.elapsed;
            total.calls += series.calls;
            total
                .latencies
                .add(&series.latencies)
                .map_err(|e| format!("merging histograms: {e}"))?;
        }
    }
    let mut labelled = sides.iter().map(|s| s.label.to_owned()).zip(totals);
    let baseline = labelled.next().ok_or("a comparison needs a baseline")?;
    Ok(Comparison {
        scenario: scenario.to_owned(),
        concurrency,
        baseline,
        candidates: labelled.collect(),
        round_rates,
        notes: Vec::new(),
    })
}

/// A 95 % confidence interval of the mean of `candidate`'s rate over
/// `baseline`'s, taken round by round (each pair ran minutes apart at most,
/// so drift in the machine cancels out); `None` with fewer than two rounds.
/// Says whether a ratio a little under or over 1 is more than noise.
fn ratio_interval(candidate: &[f64], baseline: &[f64]) -> Option<(f64, f64)> {
    let ratios: Vec<f64> = candidate
        .iter()
        .zip(baseline)
        .map(|(ours, base)| ours / base.max(f64::MIN_POSITIVE))
        .collect();
    if ratios.len() < 2 {
        return None;
    }
    let k = ratios.len() as f64;
    let mean = ratios.iter().sum::<f64>() / k;
    let variance = ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (k - 1.0);
    let half = t_95(ratios.len() - 1) * (variance / k).sqrt();
    Some((mean - half, mean + half))
}

/// Student's t for a two-sided 95 % interval with `df` degrees of freedom:
/// tabled up to 30, then within 0.002 of it.
fn t_95(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    TABLE
        .get(df.max(1) - 1)
        .copied()
        .unwrap_or(1.96 + 2.5 / df as f64)
}

/// Rounds after which [`balanced_order`] has given every side each place
/// and each predecessor equally often: the number of sides, twice that
/// when it is odd.
fn balanced_period(sides: usize) -> usize {
    if sides % 2 == 1 && sides > 1 {
        2 * sides
    } else {
        sides.max(1)
    }
}

/// The order of the sides in `round`: a Williams design (a Latin square in
/// which each side follows each other side once per period). Round r runs
/// `(r + w[k]) % n` at place k, with w = 0, 1, n−1, 2, n−2, …; for an odd
/// n the second half of the period runs those orders reversed.
fn balanced_order(sides: usize, round: usize) -> Vec<usize> {
    let offsets = (0..sides).map(|k| {
        if k % 2 == 1 {
            k.div_ceil(2)
        } else {
            (sides - k / 2) % sides
        }
    });
    let mut order: Vec<usize> = offsets.map(|w| (round + w) % sides).collect();
    if sides % 2 == 1 && (round / sides) % 2 == 1 {
        order.reverse();
    }
    order
}

impl Comparison {
    /// Prints the series and the ratios of each candidate over the baseline:
    /// a table, or DESIGN §6's JSON lines.
    pub(crate) fn print(&self, as_json: bool) {
        let all = std::iter::once(&self.baseline).chain(&self.candidates);
        for (label, series) in all {
            if as_json {
                println!(
                    "{}",
                    json!({
                        "scenario": self.scenario, "series": label, "concurrency": self.concurrency,
                        "n": series.calls, "rate": round2(series.rate()),
                        "p50_us": round2(series.p50_us()), "p99_us": round2(series.p99_us()),
                        "cpu_us_per_call": series.cpu_us().map(round2),
                    })
                );
            } else {
                println!(
                    "{:<14} {:<10} c={:<4} n={:<8} rate={:>11.0}/s  p50={:>9.2} µs  p99={:>9.2} µs  cpu={:>7} µs/call",
                    self.scenario,
                    label,
                    self.concurrency,
                    series.calls,
                    series.rate(),
                    series.p50_us(),
                    series.p99_us(),
                    series
                        .cpu_us()
                        .map_or_else(|| "?".to_owned(), |cpu| format!("{cpu:.1}"))
                );
            }
        }
        let base = &self.baseline.1;
        for (index, (label, series)) in self.candidates.iter().enumerate() {
            let rate_ratio = series.rate() / base.rate();
            let interval = ratio_interval(&self.round_rates[index + 1], &self.round_rates[0]);
            let p50_ratio = series.p50_us() / base.p50_us().max(f64::MIN_POSITIVE);
            let cpu_ratio = series
                .cpu_us()
                .zip(base.cpu_us())
                .map(|(ours, base)| ours / base.max(f64::MIN_POSITIVE));
            if as_json {
                println!(
                    "{}",
                    json!({
                        "scenario": self.scenario, "series": label, "concurrency": self.concurrency,
                        "rate_ratio": round3(rate_ratio),
                        "rate_ratio_ci95": interval.map(|(lo, hi)| [round3(lo), round3(hi)]),
                        "p50_ratio": round3(p50_ratio),
                        "cpu_ratio": cpu_ratio.map(round2),
                    })
                );
            } else {
                println!(
                    "{:<14} {:<10} c={:<4} rate ratio {:.3}× {} p50 ratio {:.3}×  cpu ratio {}  (over {})",
                    self.scenario,
                    label,
                    self.concurrency,
                    rate_ratio,
                    interval.map_or_else(String::new, |(lo, hi)| format!(
                        "(per round, 95% CI {lo:.3}–{hi:.3}) "
                    )),
                    p50_ratio,
                    cpu_ratio.map_or_else(|| "?".to_owned(), |r| format!("{r:.2}×")),
                    self.baseline.0
                );
            }
        }
        for note in &self.notes {
            if as_json {
                println!(
                    "{}",
                    json!({"scenario": self.scenario, "concurrency": self.concurrency, "note": note})
                );
            } else {
                println!("{:<14} note: {note}", self.scenario);
            }
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `template` with a fresh id, so the endpoint's de-duplication never
/// answers from its cache. Cloning a template rather than building a new
/// message keeps id generation (a UUID) out of the measurement: it is the
/// caller's cost, not the transport's.
pub(crate) fn fresh(template: &Message) -> Message {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    template.clone().with_id(format!("bench-{id}"))
}

#[cfg(test)]
mod tests {
    use super::{balanced_order, balanced_period, ratio_interval};
    use std::collections::HashMap;

    #[test]
    fn the_ratio_interval_is_the_t_interval_of_round_ratios() {
        assert_eq!(
            ratio_interval(&[9.0], &[10.0]),
            None,
            "one round says nothing"
        );
        let (lo, hi) = ratio_interval(&[9.0, 11.0], &[10.0, 10.0]).unwrap();
        // Ratios 0.9 and 1.1: mean 1, standard error 0.1, t(1) = 12.706.
        assert!((lo - (1.0 - 1.2706)).abs() < 1e-9 && (hi - (1.0 + 1.2706)).abs() < 1e-9);
        let (lo, hi) = ratio_interval(&[19.0, 20.0, 21.0], &[20.0, 20.0, 20.0]).unwrap();
        assert!(lo < 1.0 && hi > 1.0 && (lo + hi - 2.0).abs() < 1e-9);
        assert!(
            (super::t_95(40) - 2.021).abs() < 0.002 && (super::t_95(120) - 1.980).abs() < 0.002
        );
        let steady = ratio_interval(&[9.0; 5], &[10.0; 5]).unwrap();
        assert!((steady.0 - 0.9).abs() < 1e-12 && (steady.1 - 0.9).abs() < 1e-12);
    }

    #[test]
    fn every_side_leads_and_follows_each_other_equally_often() {
        for sides in 1..=7 {
            let period = balanced_period(sides);
            let mut first = HashMap::new();
            let mut pairs = HashMap::new();
            for round in 0..period {
                let order = balanced_order(sides, round);
                let mut sorted = order.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, (0..sides).collect::<Vec<_>>(), "{order:?}");
                *first.entry(order[0]).or_insert(0) += 1;
                for pair in order.windows(2) {
                    *pairs.entry((pair[0], pair[1])).or_insert(0) += 1;
                }
            }
            assert_eq!(first.len(), sides, "{sides} sides: {first:?}");
            assert!(first.values().all(|&n| n == period / sides), "{first:?}");
            assert_eq!(pairs.len(), sides * (sides - 1), "{sides} sides: {pairs:?}");
            let once = if sides % 2 == 1 { 2 } else { 1 };
            assert!(
                pairs.values().all(|&n| n == once),
                "{sides} sides: {pairs:?}"
            );
        }
    }
}

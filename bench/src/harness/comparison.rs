//! The result of a load run and how it prints.

use serde_json::json;

use super::interval::ratio_interval;
use super::series::Series;

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

impl Comparison {
    /// Prints the series and the ratios of each candidate over the baseline:
    /// a table, or one JSON object per line.
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

//! Interleaved rounds: every side in turn, in a balanced order, so drift
//! in the machine or the broker hits all sides alike.

use super::comparison::Comparison;
use super::series::{Series, process_cpu};
use super::side::Side;

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

#[cfg(test)]
mod tests {
    use super::{balanced_order, balanced_period};
    use std::collections::HashMap;

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

//! How sure a ratio is: a confidence interval from the per-round ratios.

/// A 95 % confidence interval of the mean of `candidate`'s rate over
/// `baseline`'s, taken round by round (each pair ran minutes apart at most,
/// so drift in the machine cancels out); `None` with fewer than two rounds.
/// Says whether a ratio a little under or over 1 is more than noise.
pub(super) fn ratio_interval(candidate: &[f64], baseline: &[f64]) -> Option<(f64, f64)> {
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

#[cfg(test)]
mod tests {
    use super::ratio_interval;

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
}

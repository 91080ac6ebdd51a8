//! Drift over a history of runs: a slide that no single comparison
//! catches because each step is inside the noise, but whose sum is not.
//!
//! The rule, per metric over the last N runs (oldest first):
//! - **Monotonic:** the Mann-Kendall statistic S (the sum of the signs of
//!   every later-minus-earlier pair) is significant at p < 0.01 (|z| >
//!   2.576, normal approximation with the tie correction).
//! - **Larger than the noise:** the Theil–Sen slope (the median of the
//!   pairwise slopes) times the span, as a share of the median, exceeds
//!   both the compare warning threshold (5%) and twice the residual noise
//!   (the median absolute deviation of the values around the Theil–Sen
//!   line, scaled to a standard deviation, as a share of the median).
//!
//! Both must hold: a slope without monotony is noise, and a monotone
//! creep smaller than the noise band is not worth a flag.

use serde::{Deserialize, Serialize};

use super::Direction;

/// |z| above which a Mann-Kendall trend is significant (p < 0.01, two-sided).
pub const Z_CRITICAL: f64 = 2.576;
/// The least total change (percent) that counts as drift.
pub const MIN_CHANGE_PCT: f64 = 5.0;
/// Runs a trend needs.
pub const MIN_RUNS: usize = 3;

/// What a metric's series does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Drift {
    /// No trend beyond the noise.
    None,
    /// Drifting the worse way (a higher wait, a higher contention rate).
    Worsening,
    /// Drifting the better way.
    Improving,
    /// A neutral metric (a rate of work) drifting either way.
    Changing,
}

/// One metric over the runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub entity: String,
    pub metric: String,
    /// Oldest first; null where a run lacked the metric.
    pub values: Vec<Option<f64>>,
    pub median: f64,
    /// Residual noise around the trend line, percent of the median (± one
    /// standard deviation).
    pub noise_pct: f64,
    /// Theil–Sen slope, percent of the median per run.
    pub slope_pct_per_run: f64,
    /// The slope over the span (first to last run), percent of the median.
    pub total_change_pct: f64,
    /// The Mann-Kendall z score.
    pub mann_kendall_z: f64,
    /// Whether the newest run alone, against the one before it, moved more
    /// than the warning threshold (what a single comparison would see).
    pub last_step_pct: Option<f64>,
    pub drift: Drift,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The Mann-Kendall z of `y` (in run order).
pub fn mann_kendall_z(y: &[f64]) -> f64 {
    let n = y.len();
    if n < MIN_RUNS {
        return 0.0;
    }
    let mut s = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            s += (y[j] - y[i]).signum() * f64::from(u8::from(y[j] != y[i]));
        }
    }
    // Variance with the tie correction: groups of equal values.
    let mut sorted = y.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut ties = 0.0;
    let mut k = 0;
    while k < n {
        let mut m = k;
        while m + 1 < n && sorted[m + 1] == sorted[k] {
            m += 1;
        }
        let t = (m - k + 1) as f64;
        ties += t * (t - 1.0) * (2.0 * t + 5.0);
        k = m + 1;
    }
    let nf = n as f64;
    let var = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - ties) / 18.0;
    if var <= 0.0 || s == 0.0 {
        return 0.0;
    }
    (s - s.signum()) / var.sqrt()
}

/// The Theil–Sen slope and intercept of `(x, y)`.
fn theil_sen(x: &[f64], y: &[f64]) -> (f64, f64) {
    let mut slopes = Vec::new();
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            if x[j] != x[i] {
                slopes.push((y[j] - y[i]) / (x[j] - x[i]));
            }
        }
    }
    let b = median(&mut slopes);
    let mut icepts: Vec<f64> = x.iter().zip(y).map(|(x, y)| y - b * x).collect();
    (b, median(&mut icepts))
}

/// One metric's trend; `values` in run order, a missing value skipped.
pub fn judge(entity: &str, metric: &str, values: &[Option<f64>], dir: Direction) -> Series {
    let (x, y): (Vec<f64>, Vec<f64>) = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i as f64, v)))
        .unzip();
    let med = median(&mut y.clone());
    let scale = med.abs().max(f64::MIN_POSITIVE);
    let (b, a) = if y.len() >= 2 {
        theil_sen(&x, &y)
    } else {
        (0.0, med)
    };
    let mut resid: Vec<f64> = x
        .iter()
        .zip(&y)
        .map(|(x, y)| (y - (a + b * x)).abs())
        .collect();
    let noise_pct = 1.4826 * median(&mut resid) / scale * 100.0;
    let span = x.last().copied().unwrap_or(0.0) - x.first().copied().unwrap_or(0.0);
    let total_change_pct = b * span / scale * 100.0;
    let z = mann_kendall_z(&y);
    let last_step_pct = (y.len() >= 2 && y[y.len() - 2] != 0.0)
        .then(|| (y[y.len() - 1] - y[y.len() - 2]) / y[y.len() - 2].abs() * 100.0);
    let drifts = y.len() >= MIN_RUNS
        && med != 0.0
        && z.abs() > Z_CRITICAL
        && total_change_pct.abs() > MIN_CHANGE_PCT.max(2.0 * noise_pct);
    let drift = match (drifts, dir, b > 0.0) {
        (false, _, _) => Drift::None,
        (true, Direction::Neutral, _) => Drift::Changing,
        (true, Direction::HigherIsWorse, true) => Drift::Worsening,
        (true, Direction::HigherIsWorse, false) => Drift::Improving,
    };
    Series {
        entity: entity.into(),
        metric: metric.into(),
        values: values.to_vec(),
        median: med,
        noise_pct,
        slope_pct_per_run: b / scale * 100.0,
        total_change_pct,
        mann_kendall_z: z,
        last_step_pct,
        drift,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded generator: values within ±`amp` of 1.
    fn noise(seed: u64, n: usize, amp: f64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                1.0 + amp * (((s >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0)
            })
            .collect()
    }

    #[test]
    fn a_three_percent_slide_per_run_is_worsening_drift() {
        let n = noise(7, 10, 0.01);
        let v: Vec<Option<f64>> = (0..10)
            .map(|i| Some(1000.0 * 1.03f64.powi(i) * n[i as usize]))
            .collect();
        let s = judge("lock x", "contentions_per_s", &v, Direction::HigherIsWorse);
        assert_eq!(s.drift, Drift::Worsening, "{s:?}");
        assert!(s.total_change_pct > 20.0, "{s:?}");
        // No single step would have been a warning (5%).
        assert!(s.last_step_pct.unwrap().abs() < 5.0, "{s:?}");
    }

    #[test]
    fn flat_noisy_histories_do_not_drift() {
        for seed in 0..50 {
            let v: Vec<Option<f64>> = noise(seed, 10, 0.05)
                .into_iter()
                .map(|x| Some(x * 500.0))
                .collect();
            let s = judge("lock x", "contentions_per_s", &v, Direction::HigherIsWorse);
            assert_eq!(s.drift, Drift::None, "seed {seed}: {s:?}");
        }
    }

    #[test]
    fn a_falling_wait_is_improving_and_a_neutral_metric_is_changing() {
        let down: Vec<Option<f64>> = (0..8).map(|i| Some(100.0 - 5.0 * i as f64)).collect();
        assert_eq!(
            judge("e", "wait_p99_ns", &down, Direction::HigherIsWorse).drift,
            Drift::Improving
        );
        assert_eq!(
            judge("e", "calls_per_s", &down, Direction::Neutral).drift,
            Drift::Changing
        );
    }

    #[test]
    fn mann_kendall_of_a_strict_rise() {
        // n = 5, S = 10, var = 5·4·15/18: z = 9 / √(50/3) ≈ 2.205.
        let z = mann_kendall_z(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!((z - 2.2045).abs() < 1e-3, "{z}");
        assert_eq!(mann_kendall_z(&[3.0, 3.0, 3.0]), 0.0);
    }
}

//! Statistics over repeated runs: a summary per metric (mean, median,
//! stddev, min, max, p95, p99, coefficient of variation and a variance
//! verdict), and the Mann-Whitney U test that decides whether two sides
//! differ beyond their noise.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How much a metric varies over the runs of one side, from its
/// coefficient of variation (`variance` in the JSON).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variance {
    /// CV under 5%.
    Low,
    /// CV from 5% to 15%.
    Moderate,
    /// CV over 15%.
    High,
    /// One run (no noise estimate) or a mean of 0.
    #[default]
    Unknown,
}

impl Variance {
    /// The verdict's name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Variance::Low => "low",
            Variance::Moderate => "moderate",
            Variance::High => "high",
            Variance::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Variance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verdict equals its name, as in the JSON.
impl PartialEq<&str> for Variance {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One metric's values over the runs of one side.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub runs: usize,
    pub values: Vec<f64>,
    pub mean: f64,
    pub median: f64,
    /// Sample standard deviation (n − 1); 0 with one run.
    pub stddev: f64,
    pub min: f64,
    pub max: f64,
    /// Nearest-rank percentiles of the per-run values.
    pub p95: f64,
    pub p99: f64,
    /// stddev / mean; null with one run (no noise estimate) or mean 0.
    pub cv: Option<f64>,
    /// "low" (CV under 5%), "moderate" (5–15%), "high" (over 15%), or
    /// "unknown" with one run.
    pub variance: Variance,
}

/// The summary of one metric's per-run values (none: an empty summary,
/// variance unknown).
pub fn summarize(values: &[f64]) -> Summary {
    let n = values.len();
    if n == 0 {
        return Summary {
            variance: Variance::Unknown,
            ..Default::default()
        };
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mean = values.iter().sum::<f64>() / n as f64;
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    let stddev = if n > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let rank = |p: f64| sorted[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1];
    let cv = (n > 1 && mean != 0.0).then(|| stddev / mean.abs());
    let variance = match cv {
        None => Variance::Unknown,
        Some(c) if c < 0.05 => Variance::Low,
        Some(c) if c <= 0.15 => Variance::Moderate,
        Some(_) => Variance::High,
    };
    Summary {
        runs: n,
        values: values.to_vec(),
        mean,
        median,
        stddev,
        min: sorted[0],
        max: sorted[n - 1],
        p95: rank(95.0),
        p99: rank(99.0),
        cv,
        variance,
    }
}

/// Two-sided p-value of the Mann-Whitney U test of `a` against `b`: exact
/// (all rank arrangements counted) when there are no ties and both sides
/// have at most 12 runs, else the normal approximation with tie and
/// continuity corrections.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    // Ranks of the pooled values, ties averaged.
    let mut pooled: Vec<(f64, usize)> = a
        .iter()
        .map(|&v| (v, 0))
        .chain(b.iter().map(|&v| (v, 1)))
        .collect();
    pooled.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = pooled.len();
    let mut ranks = vec![0.0; n];
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && pooled[j + 1].0 == pooled[i].0 {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for rank in ranks.iter_mut().take(j + 1).skip(i) {
            *rank = r;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let r1: f64 = pooled
        .iter()
        .zip(&ranks)
        .filter(|((_, side), _)| *side == 0)
        .map(|(_, r)| r)
        .sum();
    let u1 = r1 - (n1 * (n1 + 1)) as f64 / 2.0;
    let u = u1.min((n1 * n2) as f64 - u1);
    if tie_term == 0.0 && n1 <= 12 && n2 <= 12 {
        // P(U <= u) under H0, doubled.
        let counts = u_distribution(n1, n2);
        let total: f64 = counts.iter().sum();
        let below: f64 = counts.iter().take(u as usize + 1).sum();
        return (2.0 * below / total).min(1.0);
    }
    let (n1f, n2f, nf) = (n1 as f64, n2 as f64, n as f64);
    let mean = n1f * n2f / 2.0;
    let var = n1f * n2f / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    let z = ((u - mean).abs() - 0.5).max(0.0) / var.sqrt();
    (2.0 * (1.0 - normal_cdf(z))).min(1.0)
}

/// Number of arrangements giving each U, for sizes n1 and n2 (no ties).
fn u_distribution(n1: usize, n2: usize) -> Vec<f64> {
    // f[i][j][u]: arrangements of i values of one side and j of the other
    // with statistic u; built up with f(i,j,u) = f(i-1,j,u-j) + f(i,j-1,u).
    let max_u = n1 * n2;
    let mut f = vec![vec![vec![0.0; max_u + 1]; n2 + 1]; n1 + 1];
    for (i, fi) in f.iter_mut().enumerate() {
        for (j, fij) in fi.iter_mut().enumerate() {
            if i == 0 || j == 0 {
                fij[0] = 1.0;
            }
        }
    }
    for i in 1..=n1 {
        for j in 1..=n2 {
            for u in 0..=i * j {
                let a = if u >= j { f[i - 1][j][u - j] } else { 0.0 };
                let b = f[i][j - 1][u];
                f[i][j][u] = a + b;
            }
        }
    }
    f[n1][n2].clone()
}

/// Standard normal CDF (Abramowitz–Stegun 7.1.26 for erf, error < 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    let erf = if x >= 0.0 { y } else { -y };
    0.5 * (1.0 + erf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_values() {
        let s = summarize(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.mean, 2.5);
        assert_eq!(s.median, 2.5);
        assert!((s.stddev - 1.290_994).abs() < 1e-6);
        assert_eq!((s.min, s.max, s.p95, s.p99), (1.0, 4.0, 4.0, 4.0));
        assert_eq!(s.variance, "high");
        let one = summarize(&[7.0]);
        assert_eq!(one.cv, None);
        assert_eq!(one.variance, "unknown");
        assert_eq!(summarize(&[100.0, 101.0, 99.0]).variance, "low");
        assert_eq!(summarize(&[100.0, 110.0, 90.0]).variance, "moderate");
    }

    #[test]
    fn mann_whitney_exact_and_approximate() {
        // Fully separated 5 vs 5: the exact two-sided p is 2/252.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [6.0, 7.0, 8.0, 9.0, 10.0];
        assert!((mann_whitney_p(&a, &b) - 2.0 / 252.0).abs() < 1e-12);
        // Interleaved: no evidence.
        let c = [1.0, 3.0, 5.0, 7.0, 9.0];
        let d = [2.0, 4.0, 6.0, 8.0, 10.0];
        assert!(mann_whitney_p(&c, &d) > 0.5);
        // 3 vs 3 can never reach 0.05 (the smallest p is 0.1).
        assert!((mann_whitney_p(&a[..3], &b[..3]) - 0.1).abs() < 1e-12);
        // Ties: the normal approximation, still separated.
        let e: Vec<f64> = (0..15).map(|i| (i / 2) as f64).collect();
        let f: Vec<f64> = (0..15).map(|i| 100.0 + (i / 2) as f64).collect();
        assert!(mann_whitney_p(&e, &f) < 0.001);
        assert_eq!(mann_whitney_p(&[], &a), 1.0);
    }
}

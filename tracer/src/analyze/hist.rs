//! Percentiles from the kernel's log-linear histogram buckets.

use std::collections::BTreeMap;

use crate::report::model::{Bucket, Durations};

/// The p-th percentile (0 < p ≤ 100) of the values in `buckets` (sorted by
/// `lo_ns`), by nearest rank, interpolated linearly inside its bucket and
/// clamped to the observed maximum. Buckets are at most 1/32 of their value
/// wide, so the estimate is within about 3% of the true value.
pub fn percentile(buckets: &[Bucket], p: f64, max_ns: u64) -> u64 {
    // Saturating throughout: a saved report read back may hold anything.
    let total: u64 = buckets.iter().fold(0, |a, b| a.saturating_add(b.count));
    if total == 0 {
        return 0;
    }
    let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
    let mut seen: u64 = 0;
    for b in buckets {
        if seen.saturating_add(b.count) >= rank {
            let within = (rank - seen) as f64 - 0.5;
            let width = b.hi_ns.saturating_sub(b.lo_ns) as f64;
            let v = b.lo_ns as f64 + width * within / b.count as f64;
            return (v.round() as u64).min(max_ns.max(b.lo_ns));
        }
        seen = seen.saturating_add(b.count);
    }
    max_ns
}

/// `count` durations adding up to `total_ns`, the longest `max_ns`, with
/// percentiles from their histogram.
pub fn durations(total_ns: u64, count: u64, max_ns: u64, buckets: &[Bucket]) -> Durations {
    Durations {
        total_ns,
        avg_ns: total_ns / count.max(1),
        p50_ns: percentile(buckets, 50.0, max_ns),
        p95_ns: percentile(buckets, 95.0, max_ns),
        p99_ns: percentile(buckets, 99.0, max_ns),
        max_ns,
    }
}

/// Builds sorted buckets from (bucket index, count) pairs; pairs of one
/// index (a lock's several keys, its EAGAIN waits) are one bucket.
pub fn buckets(pairs: Vec<(u32, u64)>) -> Vec<Bucket> {
    let mut merged: BTreeMap<u32, u64> = BTreeMap::new();
    for (b, c) in pairs {
        *merged.entry(b).or_default() += c;
    }
    merged
        .into_iter()
        .filter(|&(_, c)| c > 0)
        .map(|(b, count)| {
            let (lo_ns, hi_ns) = tracer_common::hist::bounds(b);
            Bucket {
                lo_ns,
                hi_ns,
                count,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::hist::bucket;

    fn hist_of(values: &[u64]) -> Vec<Bucket> {
        let mut m = std::collections::BTreeMap::new();
        for &v in values {
            *m.entry(bucket(v)).or_insert(0u64) += 1;
        }
        buckets(m.into_iter().collect())
    }

    fn exact(sorted: &[u64], p: f64) -> u64 {
        let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
        sorted[rank - 1]
    }

    /// A deterministic xorshift so the test needs no rand crate.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn percentiles_are_within_five_percent_on_many_shapes() {
        let mut s = 0x9e3779b97f4a7c15u64;
        let shapes: Vec<Box<dyn Fn(u64) -> u64>> = vec![
            Box::new(|r| 1_000 + r % 1_000_000),  // uniform µs..ms
            Box::new(|r| 1u64 << (10 + r % 20)),  // powers of two
            Box::new(|r| 5_000_000 + r % 50_000), // tight around 5 ms
            Box::new(|r| (r % 1000) * (r % 1000) * 37 + 200), // skewed
        ];
        for shape in &shapes {
            let mut values: Vec<u64> = (0..20_000).map(|_| shape(xorshift(&mut s))).collect();
            let h = hist_of(&values);
            values.sort_unstable();
            let max = *values.last().unwrap();
            for p in [50.0, 90.0, 95.0, 99.0, 99.9] {
                let (want, got) = (exact(&values, p) as f64, percentile(&h, p, max) as f64);
                let err = (got - want).abs() / want;
                assert!(
                    err <= 0.05,
                    "p{p}: exact {want}, estimated {got} ({:.2}% off)",
                    err * 100.0
                );
            }
        }
    }

    #[test]
    fn single_value_and_empty() {
        let h = hist_of(&[7_000_000]);
        let p = percentile(&h, 50.0, 7_000_000) as f64;
        assert!((p - 7e6).abs() / 7e6 < 0.032);
        assert_eq!(percentile(&[], 50.0, 0), 0);
    }

    #[test]
    fn never_above_max() {
        let h = hist_of(&[1000, 1000, 1000]);
        assert!(percentile(&h, 99.0, 1000) <= 1000);
    }
}

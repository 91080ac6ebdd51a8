//! Folded stacks ("outermost;…;innermost;lock weight"), the input of
//! flamegraph.pl and inferno, and the same stacks as a speedscope file,
//! weighted by wait time in ns.
//!
//! Each lock's total wait is spread over its call sites in proportion to
//! their (sampled) wait estimates — .eh_frame sites when there are any,
//! else frame-pointer sites — and what no site accounts for goes to an
//! `[unattributed]` frame, so the folded total equals the report's total
//! wait exactly.

use std::fmt::Write as _;

use super::model::{Frame, Report};

fn name(f: &Frame) -> String {
    f.symbol
        .clone()
        .unwrap_or_else(|| f.addr.clone())
        .replace([';', ' '], "_")
}

/// Weighted stacks, frames outermost first with the lock last; the weights
/// of each lock add up to its total wait.
pub fn stacks(r: &Report) -> Vec<(Vec<String>, u64)> {
    let mut out = Vec::new();
    for l in &r.locks {
        let total = l.wait.total_ns;
        if total == 0 {
            continue;
        }
        let lock = format!("lock:{}", l.label.replace([';', ' '], "_"));
        let sites = if l.unwound_sites.is_empty() {
            &l.sites
        } else {
            &l.unwound_sites
        };
        let est: u128 = sites.iter().map(|s| u128::from(s.wait_ns)).sum();
        let mut given = 0u64;
        for s in sites.iter().filter(|s| !s.frames.is_empty()) {
            let share = (u128::from(total) * u128::from(s.wait_ns))
                .checked_div(est)
                .map_or(0, |v| v as u64);
            if share == 0 {
                continue;
            }
            let mut path: Vec<String> = s.frames.iter().rev().map(name).collect();
            path.push(lock.clone());
            out.push((path, share));
            given += share;
        }
        if given < total {
            out.push((vec!["[unattributed]".into(), lock], total - given));
        }
    }
    out
}

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    for (path, weight) in stacks(r) {
        let _ = writeln!(o, "{} {weight}", path.join(";"));
    }
    o
}

/// The same stacks as a speedscope file (a "sampled" profile in
/// nanoseconds of wait): https://www.speedscope.app/file-format-schema.json
pub fn speedscope(r: &Report) -> serde_json::Value {
    let mut names: Vec<String> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut samples = Vec::new();
    let mut weights = Vec::new();
    for (path, weight) in stacks(r) {
        let ids: Vec<usize> = path
            .into_iter()
            .map(|f| {
                *index.entry(f.clone()).or_insert_with(|| {
                    names.push(f);
                    names.len() - 1
                })
            })
            .collect();
        samples.push(ids);
        weights.push(weight);
    }
    let total: u64 = weights.iter().sum();
    serde_json::json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "exporter": format!("tracer {}", r.tool.version),
        "name": format!("lock wait, {}", r.start_time),
        "activeProfileIndex": 0,
        "shared": { "frames": names.iter().map(|n| serde_json::json!({"name": n})).collect::<Vec<_>>() },
        "profiles": [{
            "type": "sampled",
            "name": "futex wait time by call site",
            "unit": "nanoseconds",
            "startValue": 0,
            "endValue": total,
            "samples": samples,
            "weights": weights,
        }],
    })
}

#[cfg(test)]
mod tests {
    const FIXTURE: &str = include_str!("../../../tests/fixtures/report-v1.3.json");

    #[test]
    fn folded_total_equals_the_reports_total_wait() {
        let r = crate::report::json::parse(FIXTURE).unwrap();
        let text = super::render(&r);
        let total: u64 = text
            .lines()
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
            .sum();
        let want: u64 = r.locks.iter().map(|l| l.wait.total_ns).sum();
        assert_eq!(total, want);
        assert!(
            text.lines()
                .any(|l| l.contains("sequencer_assign;")
                    && l.contains("lock:global_seq_batch_seq_mu_")),
            "{text}"
        );
        // Outermost first.
        let l = text
            .lines()
            .find(|l| l.contains("sequencer_assign"))
            .unwrap();
        assert!(l.find("start_thread") < l.find("sequencer_assign"), "{l}");
    }

    #[test]
    fn speedscope_weights_add_up_and_index_frames() {
        let r = crate::report::json::parse(FIXTURE).unwrap();
        let v = super::speedscope(&r);
        let p = &v["profiles"][0];
        let weights: u64 = p["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_u64().unwrap())
            .sum();
        let want: u64 = r.locks.iter().map(|l| l.wait.total_ns).sum();
        assert_eq!(weights, want);
        assert_eq!(p["endValue"].as_u64(), Some(want));
        let frames = v["shared"]["frames"].as_array().unwrap().len();
        for s in p["samples"].as_array().unwrap() {
            for i in s.as_array().unwrap() {
                assert!((i.as_u64().unwrap() as usize) < frames);
            }
        }
        assert_eq!(
            p["samples"].as_array().unwrap().len(),
            p["weights"].as_array().unwrap().len()
        );
    }
}

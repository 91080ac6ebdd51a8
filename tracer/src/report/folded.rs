//! Folded stacks ("outermost;…;innermost;lock weight"), the input of
//! flamegraph.pl and inferno, and the same stacks as a speedscope file,
//! weighted by wait time in ns.
//!
//! `parts` is where each lock's exact waits go, shared with the pprof
//! view: each lock's (and, when the stacks say which thread took them, each
//! thread's) totals are spread over its call sites in proportion to their
//! sampled estimates — .eh_frame sites when there are any, else
//! frame-pointer sites — and what no site accounts for goes to an
//! `[unattributed]` frame, so the folded total equals the report's total
//! wait exactly.

use std::{collections::HashMap, fmt::Write as _};

use super::model::{Frame, Lock, Report, Site};

/// A frame's name as one folded-stack field: no separator, whitespace or
/// control character (a newline in a symbol would start a line of its own).
fn name(f: &Frame) -> String {
    field(&f.name())
}

fn field(s: &str) -> String {
    s.replace(
        |c: char| c == ';' || c.is_whitespace() || c.is_control(),
        "_",
    )
}

/// One (lock, thread, stack) with its share of the exact totals.
#[derive(Debug)]
pub struct Part<'a> {
    pub lock: &'a Lock,
    /// (tid, name); None when the stacks have no per-thread breakdown.
    pub thread: Option<(u32, &'a str)>,
    /// Innermost first; None for the `[unattributed]` remainder.
    pub frames: Option<&'a [Frame]>,
    pub contentions: u64,
    pub delay_ns: u64,
}

/// Splits `total` over `weights` in proportion (floors); the shares never
/// add up to more than `total`.
fn apportion(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    weights
        .iter()
        .map(|&w| {
            (u128::from(total) * u128::from(w))
                .checked_div(sum)
                .map_or(0, |v| v as u64)
        })
        .collect()
}

/// Pushes the parts of one group of exact totals spread over `sites` by
/// their (count, wait) estimates, then the remainder as unattributed.
fn spread<'a>(
    out: &mut Vec<Part<'a>>,
    lock: &'a Lock,
    thread: Option<(u32, &'a str)>,
    totals: (u64, u64),
    sites: &[(&'a Site, u64, u64)],
) {
    let counts = apportion(totals.0, &sites.iter().map(|s| s.1).collect::<Vec<_>>());
    let delays = apportion(totals.1, &sites.iter().map(|s| s.2).collect::<Vec<_>>());
    let (mut c_given, mut d_given) = (0, 0);
    for ((s, c), d) in sites.iter().zip(counts).zip(delays) {
        if c == 0 && d == 0 {
            continue;
        }
        out.push(Part {
            lock,
            thread,
            frames: Some(&s.0.frames),
            contentions: c,
            delay_ns: d,
        });
        c_given += c;
        d_given += d;
    }
    let rest = (totals.0 - c_given, totals.1 - d_given);
    if rest != (0, 0) {
        out.push(Part {
            lock,
            thread,
            frames: None,
            contentions: rest.0,
            delay_ns: rest.1,
        });
    }
}

/// Every drawn lock's exact contentions and wait time, spread over
/// (thread, stack) parts (`Report::view_rows`).
pub fn parts(r: &Report, all_waits: bool) -> Vec<Part<'_>> {
    let mut out = Vec::new();
    for l in r.view_rows(all_waits) {
        let sites: Vec<&Site> = if l.unwound_sites.is_empty() {
            l.sites.iter()
        } else {
            l.unwound_sites.iter()
        }
        .filter(|s| !s.frames.is_empty())
        .collect();
        // Per thread when the stacks say which thread took them, or when
        // there are no stacks at all (--mode sched): the thread is then all
        // that is known of where the wait came from.
        if sites.is_empty() || sites.iter().any(|s| !s.threads.is_empty()) {
            let (mut c_given, mut d_given) = (0u64, 0u64);
            for t in &l.threads {
                let per: Vec<(&Site, u64, u64)> = sites
                    .iter()
                    .filter_map(|s| {
                        let st = s.threads.iter().find(|x| x.tid == t.tid)?;
                        Some((*s, st.count, st.wait_ns))
                    })
                    .collect();
                let totals = (
                    t.contentions.min(l.contentions - c_given),
                    t.wait_ns.min(l.wait.total_ns - d_given),
                );
                spread(&mut out, l, Some((t.tid, &t.name)), totals, &per);
                c_given += totals.0;
                d_given += totals.1;
            }
            // The threads add up to the lock; anything else is kept anyway.
            spread(
                &mut out,
                l,
                None,
                (l.contentions - c_given, l.wait.total_ns - d_given),
                &[],
            );
        } else {
            let per: Vec<(&Site, u64, u64)> =
                sites.iter().map(|s| (*s, s.count, s.wait_ns)).collect();
            spread(&mut out, l, None, (l.contentions, l.wait.total_ns), &per);
        }
    }
    out
}

/// Weighted stacks, frames outermost first with the lock last; the weights
/// of each lock add up to its total wait (the parts' delays, per stack).
pub fn stacks(r: &Report, all_waits: bool) -> Vec<(Vec<String>, u64)> {
    let mut out: Vec<(Vec<String>, u64)> = Vec::new();
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    for p in parts(r, all_waits).into_iter().filter(|p| p.delay_ns > 0) {
        let mut path: Vec<String> = match p.frames {
            Some(frames) => frames.iter().rev().map(name).collect(),
            None => vec!["[unattributed]".into()],
        };
        path.push(format!("lock:{}", field(&p.lock.label)));
        match index.get(&path) {
            Some(&i) => out[i].1 = out[i].1.saturating_add(p.delay_ns),
            None => {
                index.insert(path.clone(), out.len());
                out.push((path, p.delay_ns));
            }
        }
    }
    out
}

pub fn render(r: &Report, all_waits: bool) -> String {
    let mut o = String::new();
    for (path, weight) in stacks(r, all_waits) {
        let _ = writeln!(o, "{} {weight}", path.join(";"));
    }
    o
}

/// The same stacks as a speedscope file (a "sampled" profile in
/// nanoseconds of wait): https://www.speedscope.app/file-format-schema.json
pub fn speedscope(r: &Report, all_waits: bool) -> serde_json::Value {
    let mut names: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut samples = Vec::new();
    let mut weights = Vec::new();
    for (path, weight) in stacks(r, all_waits) {
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
    let total: u64 = weights.iter().fold(0u64, |a, &w| a.saturating_add(w));
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
    const FIXTURE: &str = include_str!("../../../tests/fixtures/report-v1.8.json");

    #[test]
    fn folded_total_equals_the_reports_total_wait() {
        let r = crate::report::json::parse(FIXTURE).unwrap();
        let text = super::render(&r, false);
        let total: u64 = text
            .lines()
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
            .sum();
        let want: u64 = r
            .view_rows(false)
            .into_iter()
            .map(|l| l.wait.total_ns)
            .sum();
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
    fn apportion_never_gives_more_than_the_total() {
        assert_eq!(super::apportion(10, &[1, 1, 1]), [3, 3, 3]);
        assert_eq!(super::apportion(10, &[]), Vec::<u64>::new());
        assert_eq!(super::apportion(10, &[0, 0]), [0, 0]);
        assert_eq!(super::apportion(u64::MAX, &[u64::MAX, 1])[0], u64::MAX - 1);
    }

    #[test]
    fn speedscope_weights_add_up_and_index_frames() {
        let r = crate::report::json::parse(FIXTURE).unwrap();
        let v = super::speedscope(&r, false);
        let p = &v["profiles"][0];
        let weights: u64 = p["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_u64().unwrap())
            .sum();
        let want: u64 = r
            .view_rows(false)
            .into_iter()
            .map(|l| l.wait.total_ns)
            .sum();
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

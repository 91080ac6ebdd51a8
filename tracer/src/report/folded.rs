//! Folded stacks ("outermost;…;innermost;lock weight"), the input of
//! flamegraph.pl, inferno and speedscope, weighted by wait time in ns.
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

pub fn render(r: &Report) -> String {
    let mut o = String::new();
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
            let path: Vec<String> = s.frames.iter().rev().map(name).collect();
            let _ = writeln!(o, "{};{lock} {share}", path.join(";"));
            given += share;
        }
        if given < total {
            let _ = writeln!(o, "[unattributed];{lock} {}", total - given);
        }
    }
    o
}

#[cfg(test)]
mod tests {
    const FIXTURE: &str = include_str!("../../../tests/fixtures/report-v1.2.json");

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
}

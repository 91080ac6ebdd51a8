//! Compare output for people (text), for pull requests (Markdown).

use std::fmt::Write as _;

use super::{Comparison, MetricChange, Severity, Status, severity_name};
use crate::report::units::{clip, human_ns, human_rate};

/// A metric's value in its unit (ns, share of time, or a rate); also used
/// by `tracer contention --repeat`.
pub fn value(metric: &str, v: f64) -> String {
    if metric.ends_with("_ns") {
        human_ns(v.max(0.0) as u64)
    } else if metric.ends_with("_share") {
        format!("{:.1}%", 100.0 * v)
    } else {
        human_rate(v)
    }
}

fn change(m: &MetricChange) -> String {
    match m.change_pct {
        Some(p) => format!("{p:+.1}%"),
        None => "from 0".into(),
    }
}

fn status(m: &MetricChange) -> String {
    match m.status {
        Status::Regression => format!("REGRESSION ({})", severity_name(m.severity)),
        Status::Improvement => format!("improvement ({})", severity_name(m.severity)),
        Status::Changed => format!("changed ({})", severity_name(m.severity)),
        Status::WithinNoise => "within noise".into(),
        Status::Unchanged => "unchanged".into(),
    }
}

fn side_line(c: &Comparison) -> String {
    format!(
        "{} run(s) of {} vs {} run(s) of {}",
        c.base.runs, c.base.program, c.current.runs, c.current.program
    )
}

/// Decision changes first, then regressions and improvements, then the rest
/// (only changed metrics unless `all`).
pub fn text(c: &Comparison, all: bool) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "tracer compare: {}", side_line(c));
    let _ = writeln!(
        o,
        "  thresholds: warning {}%, minor {}%, major {}%, critical over {}%{}",
        c.thresholds.warning,
        c.thresholds.minor,
        c.thresholds.major,
        c.thresholds.critical,
        if c.metric_thresholds.is_empty() {
            String::new()
        } else {
            format!(" ({} metric override(s))", c.metric_thresholds.len())
        }
    );
    if !c.noise_estimate {
        let _ = writeln!(
            o,
            "  no noise estimate: one run on a side (trace with --repeat N, or pass several runs per side)"
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "VERDICT  {}", verdict(c));
    for i in &c.incomplete {
        let _ = writeln!(o, "INCOMPLETE {i}");
    }
    for d in &c.decision_changes {
        let _ = writeln!(
            o,
            "DECISION {} {}: {:?} → {:?}",
            if d.worse { "WORSE" } else { "better" },
            d.entity,
            d.base,
            d.current
        );
    }
    for e in &c.appeared {
        let _ = writeln!(o, "NEW      {e}");
    }
    for e in &c.disappeared {
        let _ = writeln!(o, "GONE     {e}");
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "  {:<44} {:<18} {:>10} {:>10} {:>9}  STATUS",
        "ENTITY", "METRIC", "BASE", "CURRENT", "CHANGE"
    );
    let mut hidden = 0;
    for m in &c.metrics {
        if !all && m.severity == Severity::None {
            hidden += 1;
            continue;
        }
        let _ = writeln!(
            o,
            "  {:<44} {:<18} {:>10} {:>10} {:>9}  {}",
            clip(&m.entity, 44),
            m.metric,
            value(&m.metric, m.base.mean),
            value(&m.metric, m.current.mean),
            change(m),
            status(m)
        );
        if c.noise_estimate && m.severity != Severity::None {
            let _ = writeln!(
                o,
                "      {} · base CV {} ({}), current CV {} ({})",
                m.noise,
                cv(m.base.cv),
                m.base.variance,
                cv(m.current.cv),
                m.current.variance
            );
        }
    }
    if hidden > 0 {
        let _ = writeln!(
            o,
            "  ({hidden} metric(s) changed less than the warning threshold; --all shows them)"
        );
    }
    o
}

/// The verdict line: FAIL when the gate fails, INCOMPLETE when an input
/// lost data, REGRESSION when regressions were found but no gate was asked
/// for (or they are below it), OK otherwise.
pub fn verdict(c: &Comparison) -> String {
    let lost = if c.incomplete.is_empty() {
        String::new()
    } else {
        format!(
            "; {} input run(s) INCOMPLETE ({})",
            c.incomplete.len(),
            c.input.loss()
        )
    };
    match c.fail_on {
        Some(_) if !c.incomplete.is_empty() => format!(
            "INCOMPLETE  {}{lost}: an incomplete run cannot pass (exit {})",
            c.summary, c.exit_code
        ),
        Some(f) if c.exit_code != 0 => format!(
            "FAIL  {} (at or above {}, exit {})",
            c.summary,
            severity_name(f),
            c.exit_code
        ),
        Some(f) if c.regressions > 0 => format!(
            "OK    {} (below --fail-on {}){lost}",
            c.summary,
            severity_name(f)
        ),
        None if c.regressions > 0 => format!(
            "REGRESSION  {} (exit 0: pass --ci or --fail-on to fail on it){lost}",
            c.summary
        ),
        _ => format!("OK    {}{lost}", c.summary),
    }
}

fn cv(v: Option<f64>) -> String {
    v.map_or("-".into(), |c| format!("{:.1}%", 100.0 * c))
}

/// A pull-request comment.
pub fn markdown(c: &Comparison) -> String {
    let mut o = String::new();
    let icon = if c.exit_code != 0 {
        "❌"
    } else if c.regressions > 0 || !c.incomplete.is_empty() {
        "⚠️"
    } else {
        "✅"
    };
    let _ = writeln!(o, "### {icon} tracer compare: {}\n", verdict(c));
    for i in &c.incomplete {
        let _ = writeln!(o, "- **Incomplete run:** {}", i.replace('|', "\\|"));
    }
    let _ = writeln!(o, "{}.", side_line(c));
    if !c.noise_estimate {
        let _ = writeln!(o, "No noise estimate (one run on a side).");
    }
    let _ = writeln!(o);
    if !c.decision_changes.is_empty() {
        let _ = writeln!(o, "**Decisions changed**\n");
        for d in &c.decision_changes {
            let _ = writeln!(
                o,
                "- {} `{}`: {:?} → {:?}",
                if d.worse { "worse:" } else { "better:" },
                d.entity,
                d.base,
                d.current
            );
        }
        let _ = writeln!(o);
    }
    let shown: Vec<&MetricChange> = c
        .metrics
        .iter()
        .filter(|m| m.severity != Severity::None)
        .collect();
    if shown.is_empty() {
        let _ = writeln!(o, "Every metric within {}%.", c.thresholds.warning);
    } else {
        let _ = writeln!(o, "| entity | metric | base | current | change | status |");
        let _ = writeln!(o, "|---|---|---:|---:|---:|---|");
        for m in shown {
            let _ = writeln!(
                o,
                "| `{}` | {} | {} | {} | {} | {} |",
                m.entity.replace('|', "\\|"),
                m.metric,
                value(&m.metric, m.base.mean),
                value(&m.metric, m.current.mean),
                change(m),
                status(m)
            );
        }
    }
    for e in &c.appeared {
        let _ = writeln!(o, "\nNew: `{e}`");
    }
    for e in &c.disappeared {
        let _ = writeln!(o, "\nGone: `{e}`");
    }
    o
}

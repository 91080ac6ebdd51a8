//! `tracer compare --html`: both sides on one self-contained page. The
//! verdict, contentions/s and p99 wait per lock (or, for profiles, self
//! CPU share per function) as paired bars (base grey, current coloured by
//! the change's severity), every change with its severity coloured, and
//! each side's own rate chart and lock table (or function table) next to
//! each other.

use std::fmt::Write as _;

use super::{Comparison, MetricChange, Runs, Severity, Status, render, severity_name};
use crate::{
    input::Saved,
    report::{
        chart::{self, Bar, esc},
        html::{
            command_of, decision_badge, decision_key, decision_text, page, program, rate_chart,
            table,
        },
        model::{Lock, Report},
        profile::{Profile, pct},
        units::{human_ns, human_rate},
    },
};

/// The colour of a severity on the page's bars.
pub fn severity_color(s: Severity) -> &'static str {
    match s {
        Severity::None => "#3c963c",
        Severity::Warning => "#5b8fd6",
        Severity::Minor => "#d4b106",
        Severity::Major => "#e08e0b",
        Severity::Critical => "#c9302c",
    }
}

/// The badge class of a change: its severity for a regression, else what
/// it was.
fn badge(m: &MetricChange) -> (&'static str, String) {
    match m.status {
        Status::Regression => (
            severity_name(m.severity),
            format!("regression ({})", severity_name(m.severity)),
        ),
        Status::Improvement => (
            "improvement",
            format!("improvement ({})", severity_name(m.severity)),
        ),
        Status::Changed => (
            "neutral",
            format!("changed ({})", severity_name(m.severity)),
        ),
        Status::WithinNoise => ("neutral", "within noise".into()),
        Status::Unchanged => ("none", "unchanged".into()),
    }
}

/// Base vs current medians of one metric for every entity of one kind
/// (`lock ` or `function `), as paired bars (log scale or not).
fn paired(
    c: &Comparison,
    id: &str,
    (prefix, metric): (&str, &str),
    log: bool,
    fmt: &dyn Fn(f64) -> String,
) -> Option<String> {
    let bars: Vec<Bar> = c
        .metrics
        .iter()
        .filter(|m| m.metric == metric && m.entity.starts_with(prefix))
        .take(20)
        .map(|m| {
            let color = if m.status == Status::Regression {
                severity_color(m.severity)
            } else {
                "#4a7bd0"
            };
            Bar {
                label: m.entity.trim_start_matches(prefix).to_string(),
                values: vec![(m.base.median, "#b5b5b5"), (m.current.median, color)],
                title: format!(
                    "{}: {} → {} ({})",
                    m.entity,
                    fmt(m.base.median),
                    fmt(m.current.median),
                    badge(m).1
                ),
            }
        })
        .collect();
    (!bars.is_empty()).then(|| chart::hbars(id, &bars, log, &[], fmt))
}

/// One side's column: its first run, a report's verdict, rate chart and
/// lock table, or a profile's function table.
fn side(o: &mut String, title: &str, runs: &Runs, id: &str) {
    let _ = write!(o, "<div><h2>{}</h2>", esc(title));
    let Some((path, run)) = runs.first() else {
        o.push_str("</div>");
        return;
    };
    let _ = write!(
        o,
        "<p class=\"meta\">{} · {} run(s){}",
        esc(&path.display().to_string()),
        runs.len(),
        if runs.len() > 1 {
            ", the first shown"
        } else {
            ""
        },
    );
    match run {
        Saved::Report(r) => report_side(o, r, id),
        Saved::Profile(p) => profile_side(o, p),
    }
    o.push_str("</div>");
}

/// A report's side: duration and start, verdict, rate chart, lock table.
fn report_side(o: &mut String, r: &Report, id: &str) {
    let _ = write!(
        o,
        " · {:.1} s · {}</p><div class=\"verdict d-{}\"><b>{}</b><br>{}</div>",
        r.duration_s,
        esc(&r.start_time),
        decision_key(r.verdict.decision),
        decision_text(r.verdict.decision),
        esc(&r.verdict.text)
    );
    let locks: Vec<&Lock> = r.view_rows(false).into_iter().take(12).collect();
    if locks.is_empty() {
        o.push_str("<p>No lock was contended.</p>");
    } else {
        o.push_str(&rate_chart(id, &locks, r));
        let rows: Vec<Vec<String>> = locks
            .iter()
            .map(|l| {
                vec![
                    esc(&l.label),
                    human_rate(l.contentions_per_s),
                    human_ns(l.wait.total_ns),
                    human_ns(l.wait.p99_ns),
                    decision_badge(l.decision),
                ]
            })
            .collect();
        table(
            o,
            "",
            &[
                ("lock", "name"),
                ("cont/s", ""),
                ("total wait", ""),
                ("p99", ""),
                ("decision", "l"),
            ],
            &rows,
        );
    }
}

/// A profile's side: duration, start and samples, whether it is
/// incomplete, and its functions by self CPU.
fn profile_side(o: &mut String, p: &Profile) {
    let _ = write!(
        o,
        " · {:.1} s · {} · {} samples at {} Hz</p>",
        p.duration_s,
        esc(&p.start_time),
        p.sampling.received,
        p.sampling.frequency_hz
    );
    if let Some(why) = &p.incomplete {
        let _ = write!(o, "<p class=\"lost\">Incomplete: {}</p>", esc(why));
    }
    if p.functions.is_empty() {
        o.push_str("<p>No sample was received.</p>");
        return;
    }
    let rows: Vec<Vec<String>> = p
        .functions
        .iter()
        .take(12)
        .map(|f| {
            vec![
                esc(&f.name),
                pct(f.self_share),
                pct(f.total_share),
                human_ns(f.self_ns),
            ]
        })
        .collect();
    table(
        o,
        "",
        &[
            ("function", "name"),
            ("self", ""),
            ("total", ""),
            ("self CPU", ""),
        ],
        &rows,
    );
}

/// The comparison page: header and verdict, decision and lock changes,
/// paired charts, every change, then each side next to the other.
pub fn render(c: &Comparison, base: &Runs, current: &Runs, all: bool) -> String {
    let mut o = String::new();
    let prog = base
        .first()
        .map(|(_, run)| match run {
            Saved::Report(r) => program(r),
            Saved::Profile(p) => command_of(&p.targets),
        })
        .unwrap_or_default();
    header(&mut o, c, &prog);
    verdict(&mut o, c);
    decisions(&mut o, c);
    charts(&mut o, c);
    changes(&mut o, c, all);
    o.push_str("<div class=\"cols\">");
    side(&mut o, "Base", base, "base-rates");
    side(&mut o, "Current", current, "current-rates");
    o.push_str("</div>");
    page(&format!("tracer compare: {prog}"), &o)
}

/// The title, run counts, thresholds and whether there is a noise
/// estimate.
fn header(o: &mut String, c: &Comparison, prog: &str) {
    let _ = write!(
        o,
        "<h1>tracer compare: {}</h1><div class=\"meta\">{} run(s) vs {} run(s) · thresholds: warning {}%, minor {}%, major {}%, critical over {}%{}</div>",
        esc(prog),
        c.base.runs,
        c.current.runs,
        c.thresholds.warning,
        c.thresholds.minor,
        c.thresholds.major,
        c.thresholds.critical,
        if c.noise_estimate {
            ""
        } else {
            " · no noise estimate (one run on a side)"
        }
    );
}

/// The verdict box, coloured by how bad it is, and each incomplete input
/// run.
fn verdict(o: &mut String, c: &Comparison) {
    let class = if c.exit_code != 0 || c.worst >= Severity::Major {
        "d-recommended"
    } else if c.regressions > 0 || !c.incomplete.is_empty() {
        "d-consider"
    } else {
        "d-not_needed"
    };
    let _ = write!(
        o,
        "<div class=\"verdict {class}\" id=\"verdict\"><b>{}</b><br>{}</div>",
        if c.exit_code == 10 {
            "INCOMPLETE"
        } else if c.exit_code != 0 {
            "FAIL"
        } else if c.regressions > 0 {
            "regressions, not failing"
        } else {
            "no regression"
        },
        esc(&super::render::verdict(c))
    );
    for i in &c.incomplete {
        let _ = write!(o, "<p class=\"lost\">Incomplete run: {}</p>", esc(i));
    }
}

/// Decision changes and the locks that appeared or disappeared, if any.
fn decisions(o: &mut String, c: &Comparison) {
    if c.decision_changes.is_empty() && c.appeared.is_empty() && c.disappeared.is_empty() {
        return;
    }
    o.push_str("<h2>Decisions and locks</h2><ul>");
    for d in &c.decision_changes {
        let _ = write!(
            o,
            "<li><span class=\"badge b-{}\">{}</span> {}: {} → {}</li>",
            if d.worse { "critical" } else { "improvement" },
            if d.worse { "WORSE" } else { "better" },
            esc(&d.entity),
            decision_text(d.base),
            decision_text(d.current)
        );
    }
    for e in &c.appeared {
        let _ = write!(
            o,
            "<li><span class=\"badge b-warning\">NEW</span> {}</li>",
            esc(e)
        );
    }
    for e in &c.disappeared {
        let _ = write!(
            o,
            "<li><span class=\"badge b-neutral\">GONE</span> {}</li>",
            esc(e)
        );
    }
    o.push_str("</ul>");
}

/// Paired bars per lock: contentions per second and p99 wait; per
/// profiled function: self CPU share.
fn charts(o: &mut String, c: &Comparison) {
    let rate = |v: f64| format!("{}/s", human_rate(v));
    let ns = |v: f64| human_ns(v.max(0.0) as u64);
    if let Some(svg) = paired(c, "cmp-cpu", ("function ", "cpu_self_share"), false, &pct) {
        o.push_str("<h2>Self CPU share</h2><p class=\"note\">Median per side: base grey, current blue, or the colour of its regression's severity.</p>");
        o.push_str(&svg);
    }
    if let Some(svg) = paired(c, "cmp-rates", ("lock ", "contentions_per_s"), true, &rate) {
        o.push_str("<h2>Contentions per second</h2><p class=\"note\">Median per side (log scale): base grey, current blue, or the colour of its regression's severity.</p>");
        o.push_str(&svg);
    }
    if let Some(svg) = paired(c, "cmp-p99", ("lock ", "wait_p99_ns"), true, &ns) {
        o.push_str("<h2>p99 wait</h2>");
        o.push_str(&svg);
    }
}

/// The severity key and the table of changes (only those past the warning
/// threshold unless `all`).
fn changes(o: &mut String, c: &Comparison, all: bool) {
    o.push_str("<h2>Changes</h2><p class=\"note\">Severity of |change|: ");
    for s in [
        Severity::Warning,
        Severity::Minor,
        Severity::Major,
        Severity::Critical,
    ] {
        let _ = write!(
            o,
            "<span class=\"badge b-{0}\">{0}</span> ",
            severity_name(s)
        );
    }
    o.push_str("</p>");
    let rows: Vec<Vec<String>> = c
        .metrics
        .iter()
        .filter(|m| all || m.severity != Severity::None)
        .map(change_row)
        .collect();
    if rows.is_empty() {
        let _ = write!(o, "<p>Every metric within {}%.</p>", c.thresholds.warning);
    } else {
        table(
            o,
            "changes",
            &[
                ("entity", "l"),
                ("metric", "l"),
                ("base", ""),
                ("current", ""),
                ("change", ""),
                ("status", "l"),
                ("p", ""),
                ("noise", "mono"),
            ],
            &rows,
        );
    }
}

/// One change as a table row: medians, change, status badge, p-value and
/// why it is or is not beyond noise.
fn change_row(m: &MetricChange) -> Vec<String> {
    let (class, text) = badge(m);
    vec![
        esc(&m.entity),
        esc(&m.metric),
        render::value(&m.metric, m.base.median),
        render::value(&m.metric, m.current.median),
        m.change_pct
            .map_or("from 0".into(), |p| format!("{p:+.1}%")),
        format!("<span class=\"badge b-{class}\">{}</span>", esc(&text)),
        m.p_value.map_or("-".into(), |p| format!("{p:.3}")),
        esc(&m.noise),
    ]
}

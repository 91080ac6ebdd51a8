//! `tracer trend NAME`: every metric of a baseline's last saved runs (the
//! values `tracer compare` compares), its median and noise band, and drift
//! by the rule of `crate::compare::trend`; text, JSON and a page of
//! charts. Exit 9 when a metric drifts the worse way.

use std::{collections::BTreeSet, fmt::Write as _};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::{
    cli::TrendArgs,
    compare::{
        self,
        trend::{self, Drift, Series},
    },
    exit::{Code, fail},
    input::Saved,
    output::Out,
    report::chart::esc as html_esc,
    store, ui,
};

pub const KIND: &str = "trend";
pub const SCHEMA: &str = "1.0";

/// The JSON document.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Trend {
    pub kind: String,
    pub schema_version: String,
    pub name: String,
    pub runs: Vec<Run>,
    /// The drift rule, in words.
    pub rule: String,
    /// Drifting first (worsening, improving, changing), then by size.
    pub metrics: Vec<Series>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    pub file: String,
    pub saved_at: String,
    pub commit: Option<String>,
    /// The run's own start time.
    pub start_time: String,
}

pub const RULE: &str = "drift: a Mann-Kendall trend at p < 0.01 (|z| > 2.576) whose Theil-Sen slope over the span exceeds both 5% of the median and twice the residual noise";

pub fn run(args: &TrendArgs) -> Result<Code> {
    let json = args
        .json
        .as_deref()
        .map(|p| Out::prepare(p, "trend JSON"))
        .transpose()?;
    let html = args
        .html
        .as_deref()
        .map(|p| Out::prepare(p, "trend page"))
        .transpose()?;
    let dir = store::dir(args.dir.as_deref());
    let all = store::history(&dir, &args.name)?;
    if all.is_empty() {
        return Err(fail(
            Code::Input,
            format!(
                "baseline '{}' has no saved runs in {} (each `tracer baseline save --name {}` adds one)",
                args.name,
                dir.display(),
                args.name
            ),
        ));
    }
    let runs = &all[all.len().saturating_sub(args.last as usize)..];
    if runs.len() < trend::MIN_RUNS {
        return Err(fail(
            Code::Input,
            format!(
                "baseline '{}' has {} saved run{} in {}: a trend needs at least {}",
                args.name,
                runs.len(),
                if runs.len() == 1 { "" } else { "s" },
                dir.display(),
                trend::MIN_RUNS
            ),
        ));
    }
    let mut loaded = Vec::new();
    for r in runs {
        loaded.push(crate::input::load_any(&r.path)?);
    }
    if loaded.iter().any(|s| matches!(s, Saved::Report(_)))
        && loaded.iter().any(|s| matches!(s, Saved::Profile(_)))
    {
        return Err(fail(
            Code::Input,
            format!(
                "baseline '{}' holds both reports and profiles: a trend follows one kind",
                args.name
            ),
        ));
    }
    let t = build(&args.name, runs, &loaded);
    if let Some(out) = &json {
        out.write_str(&serde_json::to_string_pretty(&t)?)?;
    }
    if let Some(out) = &html {
        out.write_str(&page(&t))?;
    }
    if json.as_ref().is_none_or(|o| !o.is_stdout()) {
        ui::print(&ui::esc_text(&text(&t, args.top)))?;
    }
    Ok(if t.metrics.iter().any(|m| m.drift == Drift::Worsening) {
        Code::Regression
    } else {
        Code::Ok
    })
}

/// Every metric present in at least three of the runs, judged.
pub fn build(name: &str, runs: &[store::HistoryRun], loaded: &[Saved]) -> Trend {
    let metrics: Vec<compare::RunMetrics> = loaded.iter().map(compare::metrics_of).collect();
    let keys: BTreeSet<&(String, String)> = metrics.iter().flat_map(|m| m.values.keys()).collect();
    let mut series: Vec<Series> = keys
        .into_iter()
        .filter_map(|k| {
            let values: Vec<Option<f64>> =
                metrics.iter().map(|m| m.values.get(k).copied()).collect();
            (values.iter().flatten().count() >= trend::MIN_RUNS)
                .then(|| trend::judge(&k.0, &k.1, &values, compare::direction(&k.0, &k.1)))
        })
        .collect();
    let rank = |d: Drift| match d {
        Drift::Worsening => 0,
        Drift::Improving => 1,
        Drift::Changing => 2,
        Drift::None => 3,
    };
    series.sort_by(|a, b| {
        rank(a.drift).cmp(&rank(b.drift)).then(
            b.total_change_pct
                .abs()
                .total_cmp(&a.total_change_pct.abs()),
        )
    });
    Trend {
        kind: KIND.into(),
        schema_version: SCHEMA.into(),
        name: name.into(),
        runs: runs
            .iter()
            .zip(loaded)
            .map(|(r, s)| Run {
                file: r.path.display().to_string(),
                saved_at: r.saved_at.clone(),
                commit: r.commit.clone(),
                start_time: match s {
                    Saved::Report(r) => r.start_time.clone(),
                    Saved::Profile(p) => p.start_time.clone(),
                },
            })
            .collect(),
        rule: RULE.into(),
        metrics: series,
    }
}

fn drift_word(d: Drift) -> &'static str {
    match d {
        Drift::Worsening => "DRIFT (worse)",
        Drift::Improving => "drift (better)",
        Drift::Changing => "drift",
        Drift::None => "-",
    }
}

fn value(metric: &str, v: f64) -> String {
    compare::render::value(metric, v)
}

/// The text table.
pub fn text(t: &Trend, top: usize) -> String {
    let mut o = String::new();
    let first = t.runs.first().map_or("", |r| r.saved_at.as_str());
    let last = t.runs.last().map_or("", |r| r.saved_at.as_str());
    let _ = writeln!(
        o,
        "TREND of '{}': {} runs saved {first} … {last}",
        t.name,
        t.runs.len()
    );
    let drifting: Vec<&Series> = t
        .metrics
        .iter()
        .filter(|m| m.drift != Drift::None)
        .collect();
    let worse = drifting
        .iter()
        .filter(|m| m.drift == Drift::Worsening)
        .count();
    let _ = writeln!(
        o,
        "verdict: {}",
        if worse > 0 {
            format!(
                "{worse} metric{} drifting the worse way",
                if worse == 1 { "" } else { "s" }
            )
        } else if drifting.is_empty() {
            "no drift".to_string()
        } else {
            format!("{} metric(s) drifting, none the worse way", drifting.len())
        }
    );
    let _ = writeln!(o, "rule: {}\n", t.rule);
    let _ = writeln!(
        o,
        "  {:<40} {:<18} {:>4} {:>10} {:>10} {:>10} {:>7} {:>8} {:>8} {:>6}  VERDICT",
        "ENTITY", "METRIC", "RUNS", "FIRST", "LAST", "MEDIAN", "NOISE", "SLOPE", "TOTAL", "Z"
    );
    for m in t.metrics.iter().take(top) {
        let present: Vec<f64> = m.values.iter().flatten().copied().collect();
        let entity: String = m.entity.chars().take(40).collect();
        let _ = writeln!(
            o,
            "  {:<40} {:<18} {:>4} {:>10} {:>10} {:>10} {:>6.1}% {:>+7.1}% {:>+7.1}% {:>6.2}  {}",
            entity,
            m.metric,
            present.len(),
            value(&m.metric, present.first().copied().unwrap_or(0.0)),
            value(&m.metric, present.last().copied().unwrap_or(0.0)),
            value(&m.metric, m.median),
            m.noise_pct,
            m.slope_pct_per_run,
            m.total_change_pct,
            m.mann_kendall_z,
            drift_word(m.drift)
        );
    }
    if t.metrics.len() > top {
        let _ = writeln!(o, "  … {} more metrics in --json", t.metrics.len() - top);
    }
    let _ = writeln!(
        o,
        "\nNOISE: residual spread around the trend line (±1 sd, % of median); SLOPE: per run; TOTAL: over the span."
    );
    o
}

/// A self-contained page: one line chart per drifting metric (or the six
/// largest changes when none drifts), with the median and noise band.
pub fn page(t: &Trend) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tracer trend {}</title><style>body{{font:14px sans-serif;margin:2em}} .c{{display:inline-block;margin:1em}} .w{{color:#b00}}</style></head><body><h1>Trend of '{}'</h1><p>{} runs. {}</p>",
        html_esc(&t.name),
        html_esc(&t.name),
        t.runs.len(),
        html_esc(&t.rule)
    );
    let drifting: Vec<&Series> = t
        .metrics
        .iter()
        .filter(|m| m.drift != Drift::None)
        .collect();
    let shown: Vec<&Series> = if drifting.is_empty() {
        t.metrics.iter().take(6).collect()
    } else {
        drifting
    };
    if shown.is_empty() {
        o.push_str("<p>No metric is present in three runs.</p>");
    }
    for m in shown {
        o.push_str(&chart(m));
    }
    o.push_str("</body></html>\n");
    o
}

fn chart(m: &Series) -> String {
    let (w, h, pad) = (420.0, 180.0, 30.0);
    let pts: Vec<(usize, f64)> = m
        .values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    let n = m.values.len().max(2) as f64 - 1.0;
    let band = m.median * m.noise_pct / 100.0;
    let lo = pts.iter().map(|p| p.1).fold(m.median - band, f64::min);
    let hi = pts.iter().map(|p| p.1).fold(m.median + band, f64::max);
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let x = |i: f64| pad + (w - 2.0 * pad) * i / n;
    let y = |v: f64| h - pad - (h - 2.0 * pad) * (v - lo) / span;
    let line: Vec<String> = pts
        .iter()
        .map(|&(i, v)| format!("{:.1},{:.1}", x(i as f64), y(v)))
        .collect();
    let class = if m.drift == Drift::Worsening {
        " class=\"w\""
    } else {
        ""
    };
    format!(
        "<div class=\"c\"><div{class}><b>{}</b> · {} · {} ({:+.1}% over the span, noise ±{:.1}%)</div><svg width=\"{w}\" height=\"{h}\" role=\"img\"><rect x=\"{pad}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#e8eef8\"/><line x1=\"{pad}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#99a\" stroke-dasharray=\"4\"/><polyline points=\"{}\" fill=\"none\" stroke=\"#135\" stroke-width=\"2\"/>{}<text x=\"{pad}\" y=\"{:.1}\" font-size=\"11\">run 1</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">run {}</text></svg></div>",
        html_esc(&m.entity),
        html_esc(&m.metric),
        drift_word(m.drift),
        m.total_change_pct,
        m.noise_pct,
        y(m.median + band),
        w - 2.0 * pad,
        (y(m.median - band) - y(m.median + band)).max(0.0),
        w - pad,
        y(m.median),
        y(m.median),
        line.join(" "),
        pts.iter()
            .map(|&(i, v)| format!("<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#135\"><title>run {}: {}</title></circle>", x(i as f64), y(v), i + 1, value(&m.metric, v)))
            .collect::<String>(),
        h - 8.0,
        w - pad,
        h - 8.0,
        m.values.len()
    )
}

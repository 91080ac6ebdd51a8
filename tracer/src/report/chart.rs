//! Small inline SVG charts for the HTML pages: horizontal bars (linear or
//! log scale, with marker lines), histograms with percentile markers, and
//! stacked share bars. Plain SVG, no script: it renders anywhere, offline.

use std::fmt::Write as _;

use super::{model::Bucket, units::clip};

const WIDTH: f64 = 760.0;
const LABEL_W: f64 = 250.0;
const ROW_H: f64 = 22.0;
const TOP: f64 = 30.0;

/// A rough width of a label in the charts' 11 px font.
fn text_width(s: &str) -> f64 {
    6.2 * s.chars().count() as f64
}

/// Where a marker's label goes: right of its line when it fits before
/// `right`, else left of it (kept right of `left`).
fn label_side(mx: f64, w: f64, left: f64, right: f64) -> (f64, &'static str) {
    if mx + 3.0 + w <= right || mx - 3.0 - w < left {
        (mx + 3.0, "start")
    } else {
        (mx - 3.0, "end")
    }
}

/// Text for HTML and SVG, attribute-safe.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// One bar; `values` are drawn side by side (one for a plain chart, two
/// for base vs current), each with its colour.
pub struct Bar {
    pub label: String,
    pub values: Vec<(f64, &'static str)>,
    /// Tooltip.
    pub title: String,
}

/// A value axis: linear from 0, or log10 over whole decades.
struct Scale {
    log: bool,
    lo: f64,
    hi: f64,
}

impl Scale {
    fn new(max: f64, min_pos: f64, log: bool) -> Self {
        if log {
            let lo = 10f64.powf(min_pos.max(1e-3).log10().floor().min(0.0));
            let hi = 10f64.powf(max.max(lo * 10.0).log10().ceil());
            Self { log, lo, hi }
        } else {
            Self {
                log,
                lo: 0.0,
                hi: if max > 0.0 { max * 1.05 } else { 1.0 },
            }
        }
    }

    /// 0..=1 along the axis.
    fn frac(&self, v: f64) -> f64 {
        if self.log {
            if v <= self.lo {
                return 0.0;
            }
            ((v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())).clamp(0.0, 1.0)
        } else {
            (v / self.hi).clamp(0.0, 1.0)
        }
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let mut t = Vec::new();
            let mut v = self.lo;
            while v <= self.hi * 1.0001 {
                t.push(v);
                v *= 10.0;
            }
            t
        } else {
            (0..=4)
                .map(|i| self.hi / 1.05 * f64::from(i) / 4.0)
                .collect()
        }
    }
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else if v >= 1.0 || v == 0.0 {
        format!("{}", (v * 100.0).round() / 100.0)
    } else {
        format!("{v}")
    }
}

/// Horizontal bars with vertical marker lines (e.g. decision thresholds).
pub fn hbars(
    id: &str,
    bars: &[Bar],
    log: bool,
    markers: &[(f64, String)],
    fmt: &dyn Fn(f64) -> String,
) -> String {
    let all = bars.iter().flat_map(|b| b.values.iter().map(|v| v.0));
    let max = all
        .clone()
        .chain(markers.iter().map(|m| m.0))
        .fold(0.0, f64::max);
    let min_pos = all
        .chain(markers.iter().map(|m| m.0))
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let scale = Scale::new(max, if min_pos.is_finite() { min_pos } else { 1.0 }, log);
    let per = bars.first().map_or(1, |b| b.values.len().max(1)) as f64;
    let row = ROW_H * per.max(1.0) + 6.0;
    let plot_w = WIDTH - LABEL_W - 70.0;
    let h = TOP + row * bars.len() as f64 + 24.0;
    let x = |v: f64| LABEL_W + plot_w * scale.frac(v);
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg class="chart" id="{id}" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{h}" viewBox="0 0 {WIDTH} {h}" role="img">"#
    );
    let base_y = TOP + row * bars.len() as f64;
    for t in scale.ticks() {
        let tx = x(t);
        // A linear axis' ticks fall anywhere (quarters of the largest
        // value): in the values' unit; a log axis' are decades.
        let tick = if log { short(t) } else { fmt(t) };
        let _ = write!(
            o,
            r##"<line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{base_y}" stroke="#e3e3e3"/><text x="{tx:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"##,
            base_y + 14.0,
            esc(&tick)
        );
    }
    for (i, b) in bars.iter().enumerate() {
        let y = TOP + row * i as f64 + 3.0;
        let _ = write!(
            o,
            r#"<text x="{:.1}" y="{:.1}" class="label" text-anchor="end"><title>{}</title>{}</text>"#,
            LABEL_W - 8.0,
            y + row / 2.0,
            esc(&b.label),
            esc(&clip(&b.label, 34))
        );
        for (j, &(v, color)) in b.values.iter().enumerate() {
            let by = y + ROW_H * j as f64;
            let w = (x(v) - LABEL_W).max(if v > 0.0 { 1.0 } else { 0.0 });
            let _ = write!(
                o,
                r#"<rect class="bar" x="{LABEL_W}" y="{by:.1}" width="{w:.1}" height="{:.1}" fill="{color}"><title>{}</title></rect><text x="{:.1}" y="{:.1}" class="value">{}</text>"#,
                ROW_H - 4.0,
                esc(&b.title),
                LABEL_W + w + 4.0,
                by + ROW_H / 2.0 + 2.0,
                esc(&fmt(v))
            );
        }
    }
    for (k, (v, label)) in markers.iter().enumerate() {
        let mx = x(*v);
        // One row of labels per marker, each on the side of its line that
        // keeps it inside the chart.
        let (tx, anchor) = label_side(mx, text_width(label), LABEL_W, WIDTH);
        let ly = 10.0 + 11.0 * (k % 2) as f64;
        let _ = write!(
            o,
            r##"<line class="threshold" x1="{mx:.1}" y1="{:.1}" x2="{mx:.1}" y2="{base_y}" stroke="#444" stroke-dasharray="4 3"/><text x="{tx:.1}" y="{ly:.1}" class="marker" text-anchor="{anchor}">{}</text>"##,
            ly + 2.0,
            esc(label)
        );
    }
    o.push_str("</svg>");
    o
}

/// Tick values for a log axis over [lo, hi]: decades, with 2 and 5 steps
/// when the range is narrow.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = (hi / lo).log10();
    let steps: &[f64] = if decades < 1.5 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut t = Vec::new();
    let mut d = 10f64.powf(lo.log10().floor());
    while d <= hi {
        for m in steps {
            let v = d * m;
            if v >= lo && v <= hi {
                t.push(v);
            }
        }
        d *= 10.0;
    }
    t
}

/// A histogram of sparse buckets on a continuous log axis (each bucket
/// spans its own [lo, hi)), with markers (e.g. p50/p95/p99) at their value.
/// `unit` formats values on the axis.
pub fn histogram(
    id: &str,
    buckets: &[Bucket],
    markers: &[(u64, &str)],
    unit: &dyn Fn(u64) -> String,
    color: &str,
) -> String {
    let (w, h, left, bottom, top) = (380.0, 190.0, 44.0, 34.0, 36.0);
    let plot_w = w - left - 12.0;
    let plot_h = h - bottom - top;
    let lo = buckets
        .iter()
        .map(|b| b.lo_ns.max(1))
        .chain(markers.iter().map(|m| m.0.max(1)))
        .min()
        .unwrap_or(1) as f64;
    let hi = buckets
        .iter()
        .map(|b| b.hi_ns)
        .chain(markers.iter().map(|m| m.0))
        .max()
        .unwrap_or(2)
        .max(lo as u64 + 1) as f64;
    // At least a decade wide, so one bucket does not fill the chart.
    let widen = (10.0 / (hi / lo)).max(1.0).sqrt();
    let (lo, hi) = ((lo / widen).max(1.0), hi * widen);
    let (llo, lhi) = (lo.ln(), hi.ln());
    let x = |v: f64| left + plot_w * ((v.max(lo).ln() - llo) / (lhi - llo)).clamp(0.0, 1.0);
    let max = buckets.iter().map(|b| b.count).max().unwrap_or(0).max(1) as f64;
    let mut o = String::new();
    let _ = write!(
        o,
        r##"<svg class="chart hist" id="{id}" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#999"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">0</text>"##,
        top + plot_h,
        left + plot_w,
        top + plot_h,
        left - 4.0,
        top + 4.0,
        max as u64,
        left - 4.0,
        top + plot_h
    );
    for t in log_ticks(lo, hi) {
        let tx = x(t);
        let _ = write!(
            o,
            r##"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#999"/><text x="{tx:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"##,
            top + plot_h,
            top + plot_h + 4.0,
            top + plot_h + 14.0,
            esc(&unit(t as u64))
        );
    }
    for b in buckets {
        let bh = (plot_h * b.count as f64 / max).max(if b.count > 0 { 1.0 } else { 0.0 });
        let (x0, x1) = (x(b.lo_ns as f64), x(b.hi_ns as f64));
        let _ = write!(
            o,
            r#"<rect class="bar" x="{x0:.2}" y="{:.1}" width="{:.2}" height="{bh:.1}" fill="{color}"><title>{} – {}: {}</title></rect>"#,
            top + plot_h - bh,
            (x1 - x0).max(1.0),
            unit(b.lo_ns),
            unit(b.hi_ns),
            b.count
        );
    }
    for (k, (v, name)) in markers.iter().enumerate() {
        let mx = x(*v as f64);
        // One line of labels per marker: close percentiles stay readable.
        let ly = top - 26.0 + 10.0 * k as f64;
        let text = format!("{name} {}", unit(*v));
        let (tx, anchor) = label_side(mx, text_width(&text), 0.0, w);
        let _ = write!(
            o,
            r##"<line class="pmark" x1="{mx:.1}" y1="{:.1}" x2="{mx:.1}" y2="{:.1}" stroke="#b00" stroke-dasharray="3 2"/><text x="{tx:.1}" y="{ly:.1}" class="marker" text-anchor="{anchor}">{}</text>"##,
            ly + 2.0,
            top + plot_h,
            esc(&text)
        );
    }
    let _ = write!(
        o,
        r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">log scale; bar height: count per bucket</text></svg>"#,
        left + plot_w / 2.0,
        h - 4.0
    );
    o
}

/// Horizontal bars of shares that add up to 1 per row (e.g. where a
/// thread's time went), with a legend.
pub fn stacked(id: &str, rows: &[(String, Vec<f64>)], parts: &[(&str, &str)]) -> String {
    let row = ROW_H + 6.0;
    let plot_w = WIDTH - LABEL_W - 20.0;
    let h = TOP + row * rows.len() as f64 + 4.0;
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg class="chart" id="{id}" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{h}" viewBox="0 0 {WIDTH} {h}" role="img">"#
    );
    let mut lx = LABEL_W;
    for (name, color) in parts {
        let _ = write!(
            o,
            r#"<rect x="{lx:.1}" y="4" width="12" height="12" fill="{color}"/><text x="{:.1}" y="14" class="tick">{}</text>"#,
            lx + 16.0,
            esc(name)
        );
        lx += 30.0 + 7.0 * name.chars().count() as f64;
    }
    for (i, (label, shares)) in rows.iter().enumerate() {
        let y = TOP + row * i as f64;
        let _ = write!(
            o,
            r#"<text x="{:.1}" y="{:.1}" class="label" text-anchor="end">{}</text>"#,
            LABEL_W - 8.0,
            y + ROW_H / 2.0 + 4.0,
            esc(&clip(label, 34))
        );
        let total: f64 = shares.iter().sum();
        let mut x = LABEL_W;
        for (s, (name, color)) in shares.iter().zip(parts) {
            let f = if total > 0.0 { s / total } else { 0.0 };
            let w = plot_w * f;
            let _ = write!(
                o,
                r#"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{ROW_H}" fill="{color}"><title>{}: {} {:.1}%</title></rect>"#,
                esc(label),
                esc(name),
                100.0 * f
            );
            x += w;
        }
    }
    o.push_str("</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::units::human_ns;

    #[test]
    fn log_scale_spans_whole_decades_and_clamps() {
        let s = Scale::new(2500.0, 3.0, true);
        assert_eq!((s.lo, s.hi), (1.0, 10_000.0));
        assert_eq!(s.frac(100.0), 0.5);
        assert_eq!(s.frac(0.0), 0.0);
        assert_eq!(s.ticks(), [1.0, 10.0, 100.0, 1000.0, 10_000.0]);
    }

    #[test]
    fn histogram_draws_every_bucket_and_marker() {
        let b = [
            Bucket {
                lo_ns: 1024,
                hi_ns: 2048,
                count: 5,
            },
            Bucket {
                lo_ns: 8192,
                hi_ns: 16384,
                count: 1,
            },
        ];
        let svg = histogram("h", &b, &[(1500, "p50"), (9000, "p99")], &human_ns, "#36c");
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains(">p50 1.50µs<") && svg.contains(">p99 9.00µs<"));
        assert_eq!(
            log_ticks(1000.0, 16384.0),
            [1000.0, 2000.0, 5000.0, 10_000.0]
        );
        assert_eq!(log_ticks(1.0, 1e4), [1.0, 10.0, 100.0, 1000.0, 10_000.0]);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
        let svg = hbars(
            "x",
            &[Bar {
                label: "<script>".into(),
                values: vec![(5.0, "#000")],
                title: String::new(),
            }],
            false,
            &[],
            &|v| v.to_string(),
        );
        assert!(!svg.contains("<script>"));
    }
}

//! Units for people: durations (812ns, 68.2µs), rates and counts with
//! thousands separators, and clipping to a column width. Shared by every
//! view and by the verdict's sentences.

/// 812ns, 68.2µs, 4.21ms, 1.05s.
pub fn human_ns(ns: u64) -> String {
    let v = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{}µs", sig3(v / 1e3))
    } else if ns < 1_000_000_000 {
        format!("{}ms", sig3(v / 1e6))
    } else {
        format!("{}s", sig3(v / 1e9))
    }
}

/// Three significant digits, without trailing noise.
fn sig3(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// 12,345 or 0.20 (rates under 10 keep two decimals).
pub fn human_rate(r: f64) -> String {
    if r < 10.0 {
        format!("{r:.2}")
    } else {
        human_count(r.round() as u64)
    }
}

/// 61725 → 61,725.
pub fn human_count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `s` cut to `width` characters, the last one an ellipsis when cut, with
/// its control characters escaped (text from the target lands here).
pub fn clip(s: &str, width: usize) -> String {
    let s = &*crate::ui::esc(s);
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width - 1).collect();
        t.push('…');
        t
    }
}

//! `tracer baseline save` keeps a history; `tracer trend` flags a slide
//! that no single comparison catches, and not a flat noisy history. Real
//! reports (a saved fixture run) with their lock rates scaled per run,
//! saved through the real binary. No root needed.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use common::*;
use serde_json::Value;

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn fixture() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/report-v1.8.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Saves `factors.len()` runs as baseline `name` in `dir`, run k with every
/// rate × factors[k].
fn history(dir: &Path, name: &str, factors: &[f64]) {
    let _ = std::fs::remove_dir_all(dir);
    for (k, f) in factors.iter().enumerate() {
        // The same waits in 1/f of the time: every rate × f (the rates
        // compare reads are counts over the run's duration).
        let mut r = fixture();
        let d = r["duration_s"].as_f64().unwrap();
        r["duration_s"] = (d / f).into();
        let run = tmp(&format!("{name}-run-{k}.json"));
        std::fs::write(&run, serde_json::to_string(&r).unwrap()).unwrap();
        let out = output(
            Command::new(tracer_bin())
                .args(["baseline", "save"])
                .arg(&run)
                .args(["--name", name, "--commit", &format!("c0ffee{k}")])
                .arg("--dir")
                .arg(dir),
        );
        assert!(out.status.success(), "{out:?}");
    }
}

fn trend(dir: &Path, name: &str, json: &Path) -> (Option<i32>, String, Value) {
    let out = output(
        Command::new(tracer_bin())
            .args(["trend", name, "--json"])
            .arg(json)
            .arg("--dir")
            .arg(dir),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = std::fs::read_to_string(json)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    (out.status.code(), text, v)
}

/// Seeded noise within ±amp.
fn noise(seed: u64, n: usize, amp: f64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            1.0 + amp * (((s >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0)
        })
        .collect()
}

#[test]
fn a_three_percent_slide_per_run_is_flagged_as_drift() {
    let dir = tmp("trend-slide");
    let n = noise(3, 10, 0.005);
    let factors: Vec<f64> = (0..10).map(|k| 1.03f64.powi(k) * n[k as usize]).collect();
    history(&dir, "svc", &factors);
    let (code, text, v) = trend(&dir, "svc", &tmp("trend-slide.json"));
    assert_eq!(code, Some(9), "{text}");
    assert_eq!(v["kind"], "trend");
    assert_eq!(v["runs"].as_array().unwrap().len(), 10);
    assert_eq!(v["runs"][9]["commit"], "c0ffee9");
    let m = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m["metric"] == "contentions_per_s"
                && m["entity"]
                    .as_str()
                    .unwrap()
                    .contains("global_seq_batch_seq_mu_")
        })
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(m["drift"], "worsening", "{m:#}");
    let total = m["total_change_pct"].as_f64().unwrap();
    assert!((25.0..40.0).contains(&total), "≈ 1.03^9 − 1 = 30%: {total}");
    // The newest run against the one before: inside the 5% warning band,
    // so a single comparison would not have caught it.
    assert!(m["last_step_pct"].as_f64().unwrap().abs() < 5.0, "{m:#}");
    assert!(text.contains("DRIFT (worse)"), "{text}");
    assert!(text.contains("drifting the worse way"), "{text}");
    // The page draws it.
    let html = tmp("trend-slide.html");
    let out = output(
        Command::new(tracer_bin())
            .args(["trend", "svc", "--html"])
            .arg(&html)
            .arg("--dir")
            .arg(&dir),
    );
    assert_eq!(out.status.code(), Some(9));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<polyline") && page.contains("global_seq_batch_seq_mu_"));
}

#[test]
fn a_flat_noisy_history_is_not_drift() {
    let dir = tmp("trend-flat");
    history(&dir, "flat", &noise(11, 10, 0.05));
    let (code, text, v) = trend(&dir, "flat", &tmp("trend-flat.json"));
    assert_eq!(code, Some(0), "{text}");
    let drifting: Vec<&Value> = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["drift"] != "none")
        .collect();
    assert!(drifting.is_empty(), "{drifting:#?}");
    assert!(text.contains("verdict: no drift"), "{text}");
}

#[test]
fn history_is_bounded_and_short_or_missing_histories_are_refused() {
    let dir = tmp("trend-short");
    history(&dir, "two", &[1.0, 1.1]);
    let (code, _, _) = trend(&dir, "two", &tmp("trend-two.json"));
    let out = output(
        Command::new(tracer_bin())
            .args(["trend", "two", "--dir"])
            .arg(&dir),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code, Some(8));
    assert!(
        err.contains("has 2 saved runs") && err.contains("at least 3"),
        "{err}"
    );
    let out = output(
        Command::new(tracer_bin())
            .args(["trend", "nope", "--dir"])
            .arg(&dir),
    );
    assert_eq!(out.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no saved runs"));
    // --keep: the oldest go.
    let run = tmp("two-run-0.json");
    for _ in 0..3 {
        let out = output(
            Command::new(tracer_bin())
                .args(["baseline", "save"])
                .arg(&run)
                .args(["--name", "two", "--keep", "3", "--dir"])
                .arg(&dir),
        );
        assert!(out.status.success(), "{out:?}");
    }
    let kept = std::fs::read_dir(dir.join("two.history")).unwrap().count();
    assert_eq!(kept, 3);
    let out = output(
        Command::new(tracer_bin())
            .args(["baseline", "show", "two", "--dir"])
            .arg(&dir),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("history: 3 saved runs"),
        "{out:?}"
    );
}

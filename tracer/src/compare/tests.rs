//! Planted changes: severities at every edge, exit codes, identity across
//! address-randomized runs, and noise.

use super::*;
use crate::report::model::{Lock, Target};

fn report(program: &str, locks: Vec<Lock>) -> Report {
    Report {
        schema_version: crate::report::model::SCHEMA_VERSION.into(),
        duration_s: 1.0,
        targets: vec![Target {
            pid: 1,
            command_line: vec![format!("/opt/{program}")],
            ..Default::default()
        }],
        locks,
        ..Default::default()
    }
}

fn lock(symbol: &str, address: &str, contentions: u64) -> Lock {
    Lock {
        address: address.into(),
        symbol: Some(symbol.into()),
        kind: "mutex".into(),
        contentions,
        contentions_per_s: contentions as f64,
        ..Default::default()
    }
}

fn run(p: &str, r: Report) -> (PathBuf, Report) {
    (PathBuf::from(p), r)
}

fn opts(fail_on: Option<Severity>) -> Options {
    Options {
        thresholds: Thresholds::default(),
        config: Config::default(),
        fail_on,
    }
}

fn rate_change(base: u64, current: u64, fail_on: Option<Severity>) -> Comparison {
    compare(
        &[run("b", report("app", vec![lock("mu", "0x1000", base)]))],
        &[run("c", report("app", vec![lock("mu", "0x2000", current)]))],
        &opts(fail_on),
    )
}

fn rate_metric(c: &Comparison) -> &MetricChange {
    c.metrics
        .iter()
        .find(|m| m.metric == "contentions_per_s")
        .unwrap()
}

#[test]
fn severity_edges() {
    let t = Thresholds::default();
    let cases = [
        (4.9, Severity::None),
        (5.0, Severity::Warning),
        (9.99, Severity::Warning),
        (10.0, Severity::Minor),
        (20.0, Severity::Major),
        (50.0, Severity::Major),
        (50.1, Severity::Critical),
        (-50.1, Severity::Critical),
    ];
    for (pct, want) in cases {
        assert_eq!(t.severity(pct), want, "{pct}%");
    }
}

#[test]
fn planted_changes_give_their_severity_and_exit_code() {
    // Base 1000 contentions/s; current at each edge.
    let cases = [
        (1049, Severity::None, 0),
        (1050, Severity::Warning, 0),
        (1100, Severity::Minor, 0),
        (1200, Severity::Major, 9),
        (1500, Severity::Major, 9),
        (1501, Severity::Critical, 9),
    ];
    for (current, sev, code) in cases {
        let c = rate_change(1000, current, Some(Severity::Major));
        let m = rate_metric(&c);
        assert_eq!(m.severity, sev, "1000 → {current}");
        assert_eq!(c.exit_code, code, "1000 → {current} with --fail-on major");
        if sev != Severity::None {
            assert_eq!(m.status, "regression");
            assert_eq!(m.p_value, None, "one run per side: no noise estimate");
        }
    }
    // An improvement never fails.
    let c = rate_change(1000, 400, Some(Severity::Warning));
    assert_eq!(rate_metric(&c).status, "improvement");
    assert_eq!(c.exit_code, 0);
    // --ci is --fail-on minor: a warning passes, a minor fails.
    assert_eq!(rate_change(1000, 1060, Some(Severity::Minor)).exit_code, 0);
    assert_eq!(rate_change(1000, 1100, Some(Severity::Minor)).exit_code, 9);
}

#[test]
fn address_randomized_runs_match_every_lock() {
    let a = report(
        "app",
        vec![
            lock("seq_mu", "0x55d0c0a1b040", 5000),
            Lock {
                symbol: None,
                call_site: Some("take_heap_lock (heap.c:27)".into()),
                ..lock("", "0x55d0c1f00010", 300)
            },
        ],
    );
    let b = report(
        "app",
        vec![
            lock("seq_mu", "0x5617aa3c9040", 5100),
            Lock {
                symbol: None,
                call_site: Some("take_heap_lock (heap.c:27)".into()),
                ..lock("", "0x5617ab200010", 310)
            },
        ],
    );
    let c = compare(&[run("a", a)], &[run("b", b)], &opts(None));
    assert!(c.appeared.is_empty() && c.disappeared.is_empty(), "{c:#?}");
    assert_eq!(
        c.metrics
            .iter()
            .filter(|m| m.metric == "contentions_per_s")
            .count(),
        2
    );
}

#[test]
fn decision_changes_come_first_and_kinds_separate_identities() {
    let mut a = lock("mu", "0x1", 500);
    a.decision = Decision::Consider;
    let mut b = lock("mu", "0x2", 1500);
    b.decision = Decision::Recommended;
    let c = compare(
        &[run("a", report("app", vec![a.clone()]))],
        &[run("b", report("app", vec![b]))],
        &opts(None),
    );
    assert_eq!(c.decision_changes.len(), 1);
    assert!(c.decision_changes[0].worse);
    assert!(
        render::text(&c, false).contains("DECISION WORSE lock mu [mutex]: Consider → Recommended")
    );
    // The same symbol as a condvar is another entity.
    let cv = Lock {
        kind: "condvar".into(),
        ..a.clone()
    };
    let c = compare(
        &[run("a", report("app", vec![a]))],
        &[run("b", report("app", vec![cv]))],
        &opts(None),
    );
    assert_eq!(c.appeared, vec!["lock mu [condvar]".to_string()]);
    assert_eq!(c.disappeared, vec!["lock mu [mutex]".to_string()]);
}

/// Five runs per side around 1000 contentions/s with a planted CV, and a
/// 10% shift of the current side.
fn noisy(cv_pct: f64) -> Comparison {
    let spread = [-1.5, -0.75, 0.0, 0.75, 1.5];
    let side = |shift: f64, tag: &str| -> Vec<(PathBuf, Report)> {
        spread
            .iter()
            .enumerate()
            .map(|(i, z)| {
                let v = (1000.0 * shift * (1.0 + z * cv_pct / 100.0 / 1.186)).round() as u64;
                run(
                    &format!("{tag}{i}"),
                    report("app", vec![lock("mu", "0x1", v)]),
                )
            })
            .collect()
    };
    compare(
        &side(1.0, "b"),
        &side(1.10, "c"),
        &opts(Some(Severity::Warning)),
    )
}

#[test]
fn a_noisy_metric_is_within_noise_and_a_tight_one_regresses() {
    let loose = noisy(20.0);
    let m = rate_metric(&loose);
    assert!(
        (m.base.cv.unwrap() - 0.20).abs() < 0.01,
        "planted CV: {:?}",
        m.base.cv
    );
    assert_eq!(m.status, "within_noise", "{m:#?}");
    assert_eq!(loose.exit_code, 0);
    let tight = noisy(1.0);
    let m = rate_metric(&tight);
    assert!((m.base.cv.unwrap() - 0.01).abs() < 0.002);
    assert_eq!(m.status, "regression", "{m:#?}");
    assert_eq!(m.severity, Severity::Minor);
    assert!(m.p_value.unwrap() < ALPHA);
    assert_eq!(tight.exit_code, 9);
}

#[test]
fn three_runs_a_side_use_range_separation() {
    let side = |vals: &[u64], tag: &str| -> Vec<(PathBuf, Report)> {
        vals.iter()
            .enumerate()
            .map(|(i, v)| {
                run(
                    &format!("{tag}{i}"),
                    report("app", vec![lock("mu", "0x1", *v)]),
                )
            })
            .collect()
    };
    // Apart and far beyond the noise: a regression although p ≥ 0.1.
    let c = compare(
        &side(&[1000, 1010, 990], "b"),
        &side(&[1500, 1520, 1480], "c"),
        &opts(None),
    );
    let m = rate_metric(&c);
    assert_eq!(m.status, "regression", "{m:#?}");
    assert!(m.noise.contains("ranges apart"), "{}", m.noise);
    // Overlapping: within noise.
    let c = compare(
        &side(&[1000, 1300, 900], "b"),
        &side(&[1250, 1350, 1200], "c"),
        &opts(None),
    );
    assert_eq!(rate_metric(&c).status, "within_noise");
    assert!((min_p(3, 3) - 0.1).abs() < 1e-12);
    assert!((min_p(5, 5) - 2.0 / 252.0).abs() < 1e-12);
}

#[test]
fn different_programs_are_refused() {
    let dir = std::env::temp_dir().join(format!("tracer-cmp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("a.json");
    let b = dir.join("b.json");
    std::fs::write(&a, serde_json::to_string(&report("app", vec![])).unwrap()).unwrap();
    std::fs::write(&b, serde_json::to_string(&report("other", vec![])).unwrap()).unwrap();
    let err = load_sides(std::slice::from_ref(&a), std::slice::from_ref(&b), false).unwrap_err();
    assert_eq!(crate::exit::code_of(&err), Code::Input);
    assert!(err.to_string().contains("different programs"), "{err}");
    assert!(load_sides(&[a], &[b], true).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unusable_inputs_are_one_sentence_and_code_8() {
    let dir = std::env::temp_dir().join(format!("tracer-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = serde_json::to_string(&report("app", vec![lock("mu", "0x1", 10)])).unwrap();
    let newer = good.replacen(
        &format!(
            "\"schema_version\":\"{}\"",
            crate::report::model::SCHEMA_VERSION
        ),
        "\"schema_version\":\"2.0\"",
        1,
    );
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("notjson", b"hello".to_vec(), "not valid JSON"),
        (
            "truncated",
            good.as_bytes()[..good.len() / 2].to_vec(),
            "not valid JSON",
        ),
        (
            "foreign",
            b"{\"timestamp\": 1, \"results\": []}".to_vec(),
            "not a tracer report",
        ),
        ("newer", newer.into_bytes(), "newer"),
        ("binary", vec![0xff, 0xfe, 0x00], "not valid JSON"),
    ];
    for (name, bytes, want) in cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let err = load(&p).unwrap_err();
        assert_eq!(crate::exit::code_of(&err), Code::Input, "{name}");
        assert!(format!("{err:#}").contains(want), "{name}: {err:#}");
        assert_eq!(format!("{err}").lines().count(), 1, "{name}: one line");
    }
    let err = load(&dir.join("missing.json")).unwrap_err();
    assert_eq!(crate::exit::code_of(&err), Code::Input);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn thresholds_config_overrides_one_metric() {
    let dir = std::env::temp_dir().join(format!("tracer-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("t.toml");
    std::fs::write(
        &p,
        "[metrics.contentions_per_s]\nwarning = 20.0\nminor = 30.0\nmajor = 40.0\ncritical = 60.0\n",
    )
    .unwrap();
    let cfg = Config::load(&p).unwrap();
    let c = compare(
        &[run("b", report("app", vec![lock("mu", "0x1", 1000)]))],
        &[run("c", report("app", vec![lock("mu", "0x2", 1150)]))],
        &Options {
            thresholds: Thresholds::default(),
            config: cfg,
            fail_on: Some(Severity::Warning),
        },
    );
    assert_eq!(rate_metric(&c).severity, Severity::None, "15% is under 20%");
    std::fs::write(
        &p,
        "[metrics.no_such_metric]\nwarning = 1.0\nminor = 2.0\nmajor = 3.0\ncritical = 4.0\n",
    )
    .unwrap();
    assert!(
        Config::load(&p)
            .unwrap_err()
            .to_string()
            .contains("unknown metric")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

mod fuzz {
    use proptest::prelude::*;

    const FIXTURE: &str = include_str!("../../../tests/fixtures/report-v1.8.json");

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(192))]

        /// Arbitrary bytes never panic the loader.
        #[test]
        fn arbitrary_text_never_panics(s in ".{0,512}") {
            let _ = crate::report::json::parse(&s);
        }

        /// A real report cut anywhere or with a byte changed never panics it.
        #[test]
        fn mutated_reports_never_panic(cut in 0usize..FIXTURE.len(), at in 0usize..FIXTURE.len(), b in any::<u8>()) {
            if let Some(prefix) = FIXTURE.get(..cut) {
                let _ = crate::report::json::parse(prefix);
            }
            let mut bytes = FIXTURE.as_bytes().to_vec();
            bytes[at] = b;
            if let Ok(text) = String::from_utf8(bytes) {
                let _ = crate::report::json::parse(&text);
            }
        }

        /// Any number of the report replaced by another (negative, huge,
        /// fractional) is read or refused with a sentence; what is read
        /// renders in every format without panicking.
        #[test]
        fn numbers_anywhere_never_panic(nth in 0usize..4000, v in prop_oneof![
            Just("-1".to_string()), Just("0".to_string()), Just("1e308".to_string()),
            Just("-1e308".to_string()), Just("18446744073709551615".to_string()),
            Just("0.5".to_string()), any::<i64>().prop_map(|i| i.to_string()),
        ]) {
            let mut seen = 0;
            let mut out = String::with_capacity(FIXTURE.len());
            let mut chars = FIXTURE.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                let starts = (c.is_ascii_digit() || c == '-')
                    && FIXTURE[..i].ends_with([' ', '[', ':']);
                if starts {
                    let mut end = i + c.len_utf8();
                    while let Some(&(j, d)) = chars.peek() {
                        if d.is_ascii_digit() || ".eE+-".contains(d) { end = j + 1; chars.next(); } else { break; }
                    }
                    if seen == nth { out.push_str(&v); } else { out.push_str(&FIXTURE[i..end]); }
                    seen += 1;
                } else {
                    out.push(c);
                }
            }
            if let Ok(r) = crate::report::json::parse(&out) {
                let _ = crate::report::text::render(&r, crate::report::text::Options { top: 10, all_waits: true, per_process: false });
                let _ = crate::report::html::render(&r, true);
                let _ = crate::report::folded::render(&r, true);
                let _ = crate::report::pprof::render(&r, true);
                let _ = crate::compare::run_metrics(&r);
            }
        }
    }
}

#[test]
fn condvar_and_join_waits_never_regress() {
    let waits = |kind: &str, n: u64| {
        let mut l = lock("cv", "0x1000", n);
        l.kind = kind.into();
        report("app", vec![l])
    };
    for kind in ["condvar", "wait"] {
        let c = compare(
            &[run("b", waits(kind, 100))],
            &[run("c", waits(kind, 300))],
            &opts(Some(Severity::Minor)),
        );
        let m = rate_metric(&c);
        assert_eq!(m.severity, Severity::Critical, "{kind}");
        assert_eq!(m.status, "changed", "{kind}");
        assert_eq!(c.exit_code, 0, "{kind}");
    }
    // The same change of a mutex fails.
    let c = compare(
        &[run("b", waits("mutex", 100))],
        &[run("c", waits("mutex", 300))],
        &opts(Some(Severity::Minor)),
    );
    assert_eq!(rate_metric(&c).status, "regression");
    assert_ne!(c.exit_code, 0);
}

#[test]
fn closed_sets_serialize_by_their_names_and_read_back() {
    for s in [
        Status::Regression,
        Status::Improvement,
        Status::Changed,
        Status::WithinNoise,
        Status::Unchanged,
    ] {
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{}\"", s.as_str()));
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), s);
    }
    for v in [
        stats::Variance::Low,
        stats::Variance::Moderate,
        stats::Variance::High,
        stats::Variance::Unknown,
    ] {
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, format!("\"{v}\""));
        assert_eq!(serde_json::from_str::<stats::Variance>(&json).unwrap(), v);
    }
    // A comparison as compare 1.1 wrote it reads back whole.
    let c = rate_change(1000, 1500, Some(Severity::Major));
    let json = serde_json::to_string_pretty(&c).unwrap();
    for field in [
        "\"kind\": \"tracer-compare\"",
        "\"status\": \"regression\"",
        "\"variance\": \"unknown\"",
    ] {
        assert!(json.contains(field), "{field}: {json}");
    }
    assert_eq!(serde_json::from_str::<Comparison>(&json).unwrap(), c);
    assert!(serde_json::from_str::<Comparison>(&json.replace("tracer-compare", "other")).is_err());
}

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

fn run(p: &str, r: Report) -> (PathBuf, Saved) {
    (PathBuf::from(p), Saved::Report(Box::new(r)))
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
    let side = |shift: f64, tag: &str| -> Runs {
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
    let side = |vals: &[u64], tag: &str| -> Runs {
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

/// Profiles: per-function CPU shares judged like a report's metrics.
mod profiles {
    use super::*;
    use crate::report::{
        model::Frame,
        profile::{CpuStack, FunctionCpu, Profile, Sampling},
    };

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/profile-v1.0.json"
    );
    const PERIOD_NS: u64 = 10_101_010;

    /// A profile of `program` whose samples are `leaves` (function, self
    /// samples), each under `dispatch` and `main`: consistent as a
    /// profile file must be (the loader checks its counts).
    fn profile(program: &str, leaves: &[(&str, u64)]) -> Profile {
        let received: u64 = leaves.iter().map(|(_, n)| n).sum();
        let share = |n: u64| n as f64 / received as f64;
        let frame = |name: &str| Frame {
            addr: "0x1000".into(),
            symbol: Some(name.into()),
            ..Default::default()
        };
        let function = |name: &str, self_samples: u64, total_samples: u64| FunctionCpu {
            name: name.into(),
            self_samples,
            total_samples,
            self_share: share(self_samples),
            total_share: share(total_samples),
            self_ns: self_samples * PERIOD_NS,
            total_ns: total_samples * PERIOD_NS,
            ..Default::default()
        };
        let mut functions: Vec<FunctionCpu> =
            leaves.iter().map(|&(f, n)| function(f, n, n)).collect();
        functions.push(function("dispatch", 0, received));
        functions.push(function("main", 0, received));
        Profile {
            kind: crate::report::profile::KIND.into(),
            schema_version: crate::report::profile::SCHEMA.into(),
            targets: vec![Target {
                pid: 1,
                command_line: vec![format!("/opt/{program}")],
                ..Default::default()
            }],
            duration_s: 3.0,
            sampling: Sampling {
                event: "cpu-clock".into(),
                frequency_hz: 99,
                period_ns: PERIOD_NS,
                received,
                taken: received,
                sampled_cpu_ns: received * PERIOD_NS,
                ..Default::default()
            },
            stacks: leaves
                .iter()
                .map(|&(f, n)| CpuStack {
                    samples: n,
                    cpu_ns: n * PERIOD_NS,
                    frames: vec![frame(f), frame("dispatch"), frame("main")],
                    ..Default::default()
                })
                .collect(),
            functions,
            ..Default::default()
        }
    }

    fn prun(p: &str, prof: Profile) -> (PathBuf, Saved) {
        (PathBuf::from(p), Saved::Profile(Box::new(prof)))
    }

    fn metric<'a>(c: &'a Comparison, entity: &str, metric: &str) -> Option<&'a MetricChange> {
        c.metrics
            .iter()
            .find(|m| m.entity == entity && m.metric == metric)
    }

    /// 60/30/10% of the samples in burn_alpha/beta/gamma, then 45/45/10%.
    fn beta_grows(fail_on: Option<Severity>) -> Comparison {
        let base = profile(
            "cpu_mix",
            &[("burn_alpha", 60), ("burn_beta", 30), ("burn_gamma", 10)],
        );
        let current = profile(
            "cpu_mix",
            &[("burn_alpha", 45), ("burn_beta", 45), ("burn_gamma", 10)],
        );
        compare(&[prun("b", base)], &[prun("c", current)], &opts(fail_on))
    }

    /// A temporary directory for one test, emptied first.
    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tracer-prof-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(dir: &Path, name: &str, value: &impl Serialize) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, serde_json::to_string_pretty(value).unwrap()).unwrap();
        p
    }

    #[test]
    fn a_function_whose_self_share_grows_from_30_to_45_percent_regresses() {
        let c = beta_grows(Some(Severity::Minor));
        assert_eq!(c.input, Input::Profile);
        let beta = metric(&c, "function burn_beta", "cpu_self_share").expect("beta compared");
        assert!((beta.base.mean - 0.30).abs() < 1e-12, "{beta:#?}");
        assert!((beta.current.mean - 0.45).abs() < 1e-12, "{beta:#?}");
        assert!((beta.change_pct.unwrap() - 50.0).abs() < 1e-9);
        assert_eq!(
            beta.severity,
            Severity::Major,
            "+50% is major (critical above)"
        );
        assert_eq!(beta.status, "regression");
        assert_eq!(beta.direction, Direction::HigherIsWorse);
        // Its total share moved with it; alpha gave the CPU up.
        assert_eq!(
            metric(&c, "function burn_beta", "cpu_total_share")
                .unwrap()
                .status,
            "regression"
        );
        let alpha = metric(&c, "function burn_alpha", "cpu_self_share").unwrap();
        assert_eq!(
            (alpha.status, alpha.severity),
            (Status::Improvement, Severity::Major)
        );
        assert_eq!(
            metric(&c, "function burn_gamma", "cpu_self_share")
                .unwrap()
                .status,
            "unchanged"
        );
        assert_eq!(
            metric(&c, "function main", "cpu_total_share")
                .unwrap()
                .status,
            "unchanged"
        );
        // main runs nothing itself: 0% on both sides is not compared.
        assert!(metric(&c, "function main", "cpu_self_share").is_none());
        assert_eq!(c.regressions, 2, "beta's self and total shares");
        assert_eq!(c.worst, Severity::Major);
        // --ci is --fail-on minor: exit 9; without a gate, 0.
        assert_eq!(c.exit_code, 9);
        assert_eq!(beta_grows(None).exit_code, 0);
        assert!(render::text(&c, false).contains("VERDICT  FAIL  2 regression(s), worst major"));
        let md = render::markdown(&c);
        assert!(
            md.contains("| `function burn_beta` | cpu_self_share | 30.0% | 45.0% | +50.0% | REGRESSION (major) |"),
            "{md}"
        );
    }

    #[test]
    fn profile_metrics_take_their_own_thresholds() {
        let (metric_name, t) = parse_metric_threshold("cpu_self_share=60,70,80,90").unwrap();
        let mut config = Config::default();
        config.metrics.insert(metric_name, t);
        let base = profile("cpu_mix", &[("burn_alpha", 70), ("burn_beta", 30)]);
        let current = profile("cpu_mix", &[("burn_alpha", 55), ("burn_beta", 45)]);
        let c = compare(
            &[prun("b", base)],
            &[prun("c", current)],
            &Options {
                thresholds: Thresholds::default(),
                config,
                fail_on: Some(Severity::Minor),
            },
        );
        let beta = metric(&c, "function burn_beta", "cpu_self_share").unwrap();
        assert_eq!(beta.severity, Severity::None, "+50% is under 60%");
        // The total share keeps the defaults.
        let total = metric(&c, "function burn_beta", "cpu_total_share").unwrap();
        assert_eq!(total.severity, Severity::Major);
        assert_eq!(c.exit_code, 9);
    }

    #[test]
    fn an_unchanged_profile_gives_no_regression() {
        let fixture = PathBuf::from(FIXTURE);
        let (b, c) = load_sides(
            std::slice::from_ref(&fixture),
            std::slice::from_ref(&fixture),
            false,
        )
        .unwrap();
        let cmp = compare(&b, &c, &opts(Some(Severity::Warning)));
        assert_eq!(cmp.input, Input::Profile);
        assert_eq!(cmp.base.program, "cpu_mix");
        let alpha = metric(&cmp, "function burn_alpha", "cpu_self_share").expect("compared");
        assert!((alpha.base.mean - 181.0 / 297.0).abs() < 1e-9, "{alpha:#?}");
        assert!(cmp.metrics.iter().all(|m| m.status == Status::Unchanged));
        assert_eq!((cmp.regressions, cmp.exit_code), (0, 0));
        assert!(cmp.appeared.is_empty() && cmp.disappeared.is_empty());
        assert!(render::text(&cmp, false).contains("VERDICT  OK    no regression"));
        // Every view renders it.
        let html = View::Html.render(&cmp, &b, &c, false).unwrap();
        assert!(html.contains("cmp-cpu") && html.contains("burn_alpha"));
        let json = View::Json.render(&cmp, &b, &c, false).unwrap();
        assert!(json.contains("\"input\": \"profile\""), "{json}");
        assert_eq!(serde_json::from_str::<Comparison>(&json).unwrap(), cmp);
    }

    #[test]
    fn small_shares_and_one_sided_functions() {
        // Out of 1,000 samples: 5 are 0.5%.
        let base = profile(
            "app",
            &[
                ("work", 975),
                ("tiny", 5),
                ("grows", 5),
                ("old_rare", 5),
                ("old_hot", 10),
            ],
        );
        let current = profile(
            "app",
            &[
                ("work", 947),
                ("tiny", 8),
                ("grows", 30),
                ("new_rare", 5),
                ("new_hot", 10),
            ],
        );
        let c = compare(&[prun("b", base)], &[prun("c", current)], &opts(None));
        assert!(
            metric(&c, "function tiny", "cpu_self_share").is_none(),
            "0.5% → 0.8%: under 1% on both sides"
        );
        let grows = metric(&c, "function grows", "cpu_self_share").expect("0.5% → 3%");
        assert_eq!(
            (grows.status, grows.severity),
            (Status::Regression, Severity::Critical)
        );
        assert_eq!(c.appeared, vec!["function new_hot".to_string()]);
        assert_eq!(c.disappeared, vec!["function old_hot".to_string()]);
    }

    #[test]
    fn a_function_missing_from_a_run_had_no_cpu_in_it() {
        let with = profile("app", &[("work", 90), ("sometimes", 10)]);
        let without = profile("app", &[("work", 100)]);
        let c = compare(
            &[prun("b1", with.clone()), prun("b2", without.clone())],
            &[prun("c1", with), prun("c2", without)],
            &opts(None),
        );
        let m = metric(&c, "function sometimes", "cpu_self_share").unwrap();
        assert_eq!(m.base.values, vec![0.1, 0.0]);
        assert_eq!(m.current.values, vec![0.1, 0.0]);
        assert_eq!(m.status, "unchanged");
    }

    #[test]
    fn several_profiles_a_side_go_through_the_noise_rule() {
        // beta's self share on five runs a side, around 30% then 33%.
        let side = |tag: &str, shares: &[u64]| -> Runs {
            shares
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    prun(
                        &format!("{tag}{i}"),
                        profile("app", &[("burn_alpha", 100 - n), ("burn_beta", n)]),
                    )
                })
                .collect()
        };
        let beta = |c: &Comparison| {
            metric(c, "function burn_beta", "cpu_self_share")
                .unwrap()
                .clone()
        };
        let tight = compare(
            &side("b", &[29, 30, 30, 30, 31]),
            &side("c", &[32, 33, 33, 33, 34]),
            &opts(Some(Severity::Minor)),
        );
        assert!(tight.noise_estimate);
        let m = beta(&tight);
        assert_eq!(m.status, "regression", "{m:#?}");
        assert!(m.p_value.unwrap() < ALPHA);
        assert_eq!(tight.exit_code, 9);
        let loose = compare(
            &side("b", &[20, 25, 30, 35, 40]),
            &side("c", &[23, 28, 33, 38, 43]),
            &opts(Some(Severity::Minor)),
        );
        let m = beta(&loose);
        assert_eq!(m.status, "within_noise", "{m:#?}");
        assert_eq!(loose.exit_code, 0);
    }

    #[test]
    fn a_report_and_a_profile_are_not_compared() {
        let dir = scratch("mix");
        let report_file = write(&dir, "run.json", &report("cpu_mix", vec![]));
        let profile_file = PathBuf::from(FIXTURE);
        for (base, current) in [
            (vec![report_file.clone()], vec![profile_file.clone()]),
            (vec![profile_file.clone()], vec![report_file.clone()]),
            (
                vec![profile_file.clone(), report_file.clone()],
                vec![profile_file.clone()],
            ),
        ] {
            // Refused even when different programs are allowed.
            let err = load_sides(&base, &current, true).unwrap_err();
            assert_eq!(crate::exit::code_of(&err), Code::Input);
            let msg = err.to_string();
            assert!(
                msg.contains("is a contention report") && msg.contains("is a profile"),
                "{msg}"
            );
            assert!(
                msg.contains("compare reports with reports (tracer contention --json) and profiles with profiles (tracer profile --json)"),
                "{msg}"
            );
            assert_eq!(msg.lines().count(), 1, "{msg}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn profiles_of_different_programs_are_refused() {
        let dir = scratch("progs");
        let a = write(&dir, "a.json", &profile("app", &[("work", 10)]));
        let b = write(&dir, "b.json", &profile("other", &[("work", 10)]));
        let err =
            load_sides(std::slice::from_ref(&a), std::slice::from_ref(&b), false).unwrap_err();
        assert_eq!(crate::exit::code_of(&err), Code::Input);
        assert!(
            err.to_string().contains("different programs (app, other)"),
            "{err}"
        );
        assert!(load_sides(&[a], &[b], true).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ci_on_profile_files_exits_9_and_a_saved_baseline_is_a_base() {
        use clap::Parser as _;
        let dir = scratch("ci");
        let base = write(
            &dir,
            "base.json",
            &profile(
                "cpu_mix",
                &[("burn_alpha", 60), ("burn_beta", 30), ("burn_gamma", 10)],
            ),
        );
        let current = write(
            &dir,
            "current.json",
            &profile(
                "cpu_mix",
                &[("burn_alpha", 45), ("burn_beta", 45), ("burn_gamma", 10)],
            ),
        );
        let cli = |args: &[&str]| {
            let mut argv = vec!["tracer", "compare"];
            argv.extend(args);
            match crate::cli::Cli::try_parse_from(argv).unwrap().command {
                crate::cli::Command::Compare(a) => a,
                _ => unreachable!(),
            }
        };
        let (b, c) = (base.to_str().unwrap(), current.to_str().unwrap());
        let code = crate::cmd::compare::run(&cli(&["--ci", b, c])).unwrap();
        assert_eq!(code, Code::Regression);
        assert_eq!(
            crate::cmd::compare::run(&cli(&["--ci", b, b])).unwrap(),
            Code::Ok
        );
        // Saved as a baseline, the base profile is the base side.
        let store_dir = dir.join("baselines");
        let saved = load(&base).unwrap();
        store::save(&store_dir, "main", &saved).unwrap();
        let (_, back) = store::load(&store_dir, "main").unwrap();
        assert!(matches!(back, Saved::Profile(_)), "{back:?}");
        let sd = store_dir.to_str().unwrap();
        let code = crate::cmd::compare::run(&cli(&[
            "--baseline",
            "main",
            "--baseline-dir",
            sd,
            "--ci",
            c,
        ]))
        .unwrap();
        assert_eq!(code, Code::Regression);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

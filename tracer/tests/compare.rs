//! `tracer compare` and `tracer baseline` end to end: real traced runs of
//! the demo built normally and with a deliberately longer critical section,
//! and the command line's exit codes for every kind of unusable input.

mod common;

use std::{path::Path, process::Command};

use common::*;

fn tmp(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn compare(args: &[&str]) -> std::process::Output {
    output(Command::new(tracer_bin()).arg("compare").args(args))
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn a_longer_critical_section_is_a_regression() {
    let Some(_serial) = privileged() else { return };
    let fast = sequencer_with_work(200);
    let slow = sequencer_with_work(4000);
    let trace = |bin: &Path, json: &Path| {
        let out = output(
            Command::new(tracer_bin())
                .args(["contention", "--repeat", "3", "--json"])
                .arg(json)
                .arg("--")
                .arg(bin)
                .args(["--seconds", "1"]),
        );
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = trace(&fast, &tmp("fast.json"));
    assert!(text.contains("REPEATED RUNS (3 runs)"), "{text}");
    assert!(text.contains("contentions_per_s"), "{text}");
    trace(&slow, &tmp("slow.json"));
    let side = |stem: &str| -> Vec<String> {
        (1..=3)
            .map(|k| tmp(&format!("{stem}-{k}.json")).display().to_string())
            .collect()
    };
    let mut args: Vec<String> = Vec::new();
    for f in side("fast") {
        args.extend(["-b".into(), f]);
    }
    for f in side("slow") {
        args.extend(["-c".into(), f]);
    }
    let json_out = tmp("compare.json");
    args.extend([
        "--fail-on".into(),
        "major".into(),
        "--json".into(),
        json_out.display().to_string(),
    ]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = compare(&argv);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(9),
        "a major regression fails: {text}"
    );
    let cmp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_out).unwrap()).unwrap();
    // Twenty times the work under the lock: its waits grow far past 50%.
    let p99 = cmp["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m["entity"] == "lock global_seq_batch_seq_mu_ [mutex]" && m["metric"] == "wait_p99_ns"
        })
        .unwrap_or_else(|| panic!("no p99 of the sequencer lock: {text}"));
    assert_eq!(p99["status"], "regression", "{p99:#}");
    assert_eq!(p99["severity"], "critical", "{p99:#}");
    assert!(
        cmp["appeared"].as_array().unwrap().is_empty(),
        "same locks: {cmp:#}"
    );
    assert!(cmp["disappeared"].as_array().unwrap().is_empty());
    // The same runs against themselves: nothing regressed, exit 0.
    let mut same: Vec<String> = Vec::new();
    for f in side("fast") {
        same.extend(["-b".into(), f.clone(), "-c".into(), f]);
    }
    same.push("--ci".into());
    let argv: Vec<&str> = same.iter().map(String::as_str).collect();
    let out = compare(&argv);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // A named baseline: save, show, compare against it (one run a side).
    let dir = tmp("baselines");
    let _ = std::fs::remove_dir_all(&dir);
    let fast1 = side("fast")[0].clone();
    let slow1 = side("slow")[0].clone();
    let save = output(
        Command::new(tracer_bin())
            .args(["baseline", "save", &fast1, "--name", "main", "--dir"])
            .arg(&dir),
    );
    assert!(save.status.success(), "{save:?}");
    let show = output(
        Command::new(tracer_bin())
            .args(["baseline", "show", "main", "--dir"])
            .arg(&dir),
    );
    assert!(
        String::from_utf8_lossy(&show.stdout).contains("global_seq_batch_seq_mu_"),
        "{show:?}"
    );
    let md = tmp("pr.md");
    let out = output(
        Command::new(tracer_bin())
            .args([
                "compare",
                "--baseline",
                "main",
                &slow1,
                "--ci",
                "--baseline-dir",
            ])
            .arg(&dir)
            .arg("--markdown")
            .arg(&md),
    );
    assert_eq!(out.status.code(), Some(9), "{out:?}");
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.starts_with("### ❌ tracer compare"), "{md}");
    assert!(md.contains("No noise estimate"), "{md}");
}

/// Every unusable input: one sentence on stderr and exit 8, never a panic.
#[test]
fn unusable_inputs_exit_8_with_one_sentence() {
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/report-v1.2.json");
    let text = std::fs::read_to_string(&good).unwrap();
    let write = |name: &str, body: &str| {
        let p = tmp(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    };
    let other: serde_json::Value = {
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["targets"][0]["command_line"][0] = "/usr/bin/another".into();
        v
    };
    let newer = text.replacen(
        "\"schema_version\": \"1.2\"",
        "\"schema_version\": \"2.0\"",
        1,
    );
    let cases = [
        (
            "missing",
            tmp("no-such-run.json").display().to_string(),
            "cannot read",
        ),
        (
            "not json",
            write("notjson.json", "hello, world"),
            "not valid JSON",
        ),
        (
            "truncated",
            write("trunc.json", &text[..text.len() / 3]),
            "not valid JSON",
        ),
        (
            "foreign",
            write("foreign.json", "{\"benchmarks\": []}"),
            "not a tracer report",
        ),
        ("newer", write("newer.json", &newer), "newer"),
        (
            "other program",
            write("other.json", &other.to_string()),
            "different programs",
        ),
    ];
    let good = good.display().to_string();
    for (what, path, want) in cases {
        let out = compare(&[&good, &path]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(8), "{what}: {err}");
        assert!(err.contains(want), "{what}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{what}: one sentence: {err}");
        assert!(!err.contains("panicked"), "{what}");
    }
    // A bad command line is 2.
    let out = compare(&[&good]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = compare(&[&good, &good, "--warning", "30", "--minor", "10"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // The fixture against itself: no regression, exit 0 even with --ci.
    let out = compare(&[&good, &good, "--ci"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// `tracer report` rebuilds views from the JSON alone; completions and the
/// man page come from the same clap definitions.
#[test]
fn report_completions_and_man() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/report-v1.2.json");
    let fixture = fixture.to_str().unwrap();
    let text = output(Command::new(tracer_bin()).args(["report", fixture]));
    assert!(text.status.success(), "{text:?}");
    assert!(String::from_utf8_lossy(&text.stdout).contains("VERDICT"));
    let folded = output(Command::new(tracer_bin()).args(["report", fixture, "--format", "folded"]));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    assert_eq!(
        folded_total(&String::from_utf8_lossy(&folded.stdout)),
        total_wait_ns(&report),
        "folded total = the report's total wait"
    );
    let json = output(Command::new(tracer_bin()).args(["report", fixture, "--format", "json"]));
    let again: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(again["locks"], report["locks"]);
    let missing = output(Command::new(tracer_bin()).args(["report", "/nonexistent/run.json"]));
    assert_eq!(missing.status.code(), Some(8));
    for shell in ["bash", "zsh", "fish"] {
        let c = output(Command::new(tracer_bin()).args(["completions", shell]));
        assert!(c.status.success() && c.stdout.len() > 1000, "{shell}");
        assert!(String::from_utf8_lossy(&c.stdout).contains("contention"));
    }
    let man = output(Command::new(tracer_bin()).arg("man"));
    assert!(man.status.success());
    assert!(String::from_utf8_lossy(&man.stdout).contains(".TH tracer"));
    // A command's own page has its options.
    let man = output(Command::new(tracer_bin()).args(["man", "contention"]));
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        page.contains(".TH tracer-contention") && page.contains("\\-\\-html"),
        "{page}"
    );
    let bad = output(Command::new(tracer_bin()).args(["man", "contentoin"]));
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("one of: contention"));
}

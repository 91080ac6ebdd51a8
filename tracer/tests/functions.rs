//! Privileged integration tests for function probes (--uprobe, --alloc):
//! the probed programs count their own calls, time their own calls and
//! know their own allocations; the tracer's numbers must match.

mod common;

use std::{path::Path, process::Command, time::Duration};

use common::*;

fn function<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no function {name}: {:#}", report["functions"]))
}

fn gated(bin: &Path, args: &[&str]) -> Gated {
    let mut c = Command::new(bin);
    c.args(args);
    Gated::start(c)
}

/// Runs `bin ARGS` under the tracer (`--pid` it, plus `probes`) and
/// returns what the program printed after its gate, the text report and the
/// JSON report.
fn traced(
    bin: &Path,
    args: &[&str],
    probes: &[&str],
    tag: &str,
) -> (String, String, serde_json::Value) {
    let mut work = gated(bin, args);
    let pid = work.pid.to_string();
    let mut tracer_args = vec!["--pid", pid.as_str()];
    tracer_args.extend_from_slice(probes);
    let tracer = Tracer::start(&tracer_args, tag);
    let held = tracer.held.clone();
    work.go();
    let rest = work.finish(Duration::from_secs(60));
    let (text, report) = tracer.finish(Duration::from_secs(60));
    assert_all_detached(&held, &report);
    (rest, text, report)
}

/// A C-ABI function with a known sleep, a mangled Rust function and known
/// mallocs: counts exact, latency p50 within 10% of the program's own
/// median, sizes in the right histogram buckets.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn rust_functions_and_allocations_match_the_program() {
    let Some(_serial) = privileged() else { return };
    let (rest, text, report) = traced(
        &example("probe_target"),
        &["100", "2000", "1000"],
        &[
            "--uprobe",
            "probe_target_sleep",
            "--uprobe",
            "probe_target::*::assign",
            "--alloc",
        ],
        "probe_target",
    );
    let own_median: f64 = field(&rest, "median_ns").unwrap().parse().unwrap();

    let sleep = function(&report, "probe_target_sleep");
    assert_eq!(sleep["calls"].as_u64(), Some(100), "{text}");
    let p50 = sleep["latency"]["p50_ns"].as_f64().unwrap();
    assert!(
        (p50 - own_median).abs() / own_median < 0.10,
        "p50 {p50} vs the program's own median {own_median}"
    );
    assert_eq!(
        function(&report, "probe_target::orders::assign")["calls"].as_u64(),
        Some(100)
    );

    let malloc = function(&report, "malloc");
    assert!(malloc["calls"].as_u64() >= Some(1500), "{malloc:#}");
    let bucket = |size: u64| {
        malloc["size_histogram"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["lo_ns"].as_u64() <= Some(size) && Some(size) < b["hi_ns"].as_u64())
            .map_or(0, |b| b["count"].as_u64().unwrap())
    };
    assert_eq!(bucket(777), 1000, "777-byte mallocs");
    assert_eq!(bucket(12345), 500, "12345-byte mallocs");
    assert!(
        malloc["sites"][0]["caller"]
            .as_str()
            .is_some_and(|c| c.starts_with("probe_target::main")),
        "top allocating call site: {:#}",
        malloc["sites"]
    );
    let cost = &report["probe_cost"];
    assert!(cost["per_call_ns"].as_f64() > Some(0.0), "{cost:#}");
    assert_eq!(cost["attached_fraction"].as_f64(), Some(1.0));
    assert!(text.contains("PROBE COST"), "{text}");
}

/// A namespaced C++ method, matched by a glob on its demangled name.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn cpp_method_matches_by_demangled_glob() {
    let Some(_serial) = privileged() else { return };
    let bin = Path::new(env!("CARGO_TARGET_TMPDIR")).join("orders");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/workloads/orders.cpp");
    let ok = Command::new("c++")
        .args(["-O2", "-g", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("c++ is needed (cargo xtask setup installs g++)");
    assert!(ok.success());
    let (rest, _, report) = traced(
        &bin,
        &["150"],
        &["--uprobe", "orders::Book::match*"],
        "orders",
    );
    assert_eq!(field(&rest, "matched"), Some("150"));
    let f = function(&report, "orders::Book::match(long, int)");
    assert_eq!(f["calls"].as_u64(), Some(150));
}

/// A static function whose symbol exists only in a separate debug file
/// found by build id.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn symbol_only_in_a_debug_file_is_found() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("stripped");
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let debug = tmp.join("stripped.debug");
    let run = |cmd: &mut Command| assert!(cmd.status().unwrap().success(), "{cmd:?}");
    run(Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(&bin)
        .arg(&debug));
    run(Command::new("strip").arg("--strip-all").arg(&bin));
    // The build id names the debug file: .build-id/xx/rest.debug.
    let out = output(Command::new("readelf").arg("-n").arg(&bin));
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .expect("the workload has a build id")
        .to_string();
    let dir = tmp.join("debug-root");
    let at = dir.join(".build-id").join(&id[..2]);
    std::fs::create_dir_all(&at).unwrap();
    std::fs::copy(&debug, at.join(format!("{}.debug", &id[2..]))).unwrap();

    let mut work = gated(&bin, &["300"]);
    // Without the debug dir the symbol does not exist: one sentence, exit 2.
    let miss = output(
        Command::new(tracer_bin())
            .args(["contention", "--duration", "1s", "--pid"])
            .arg(work.pid.to_string())
            .args(["--uprobe", "hidden_step"]),
    );
    assert_eq!(miss.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&miss.stderr).contains("no function matches"),
        "{miss:?}"
    );
    let tracer = Tracer::start(
        &[
            "--pid",
            &work.pid.to_string(),
            "--uprobe",
            "hidden_step",
            "--debug-dir",
            dir.to_str().unwrap(),
        ],
        "stripped",
    );
    work.go();
    let rest = work.finish(Duration::from_secs(60));
    let (_, report) = tracer.finish(Duration::from_secs(60));
    assert_eq!(field(&rest, "steps"), Some("300"));
    assert_eq!(
        function(&report, "hidden_step")["calls"].as_u64(),
        Some(300)
    );
}

/// Refusals: a lock fast path without --allow-hot-probes, and a name that
/// matches nothing (with the closest names offered).
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn hot_paths_and_unknown_symbols_are_refused() {
    let Some(_serial) = privileged() else { return };
    let mut work = gated(&example("probe_target"), &["1", "1", "1"]);
    let pid = work.pid.to_string();
    let hot = output(Command::new(tracer_bin()).args([
        "contention",
        "--pid",
        &pid,
        "--uprobe",
        "pthread_mutex_lock",
    ]));
    assert_eq!(hot.status.code(), Some(2), "{hot:?}");
    let err = String::from_utf8_lossy(&hot.stderr);
    assert!(
        err.contains("lock fast path") && err.contains("--allow-hot-probes"),
        "{err}"
    );
    let typo = output(Command::new(tracer_bin()).args([
        "contention",
        "--pid",
        &pid,
        "--uprobe",
        "probe_target_slep",
    ]));
    assert_eq!(typo.status.code(), Some(2));
    let err = String::from_utf8_lossy(&typo.stderr);
    assert!(err.contains("closest: probe_target_sleep"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    work.go();
    work.finish(Duration::from_secs(30));
}

/// With a budget below what the probes cost (but not 4× below), they are
/// attached only part of the time, and the report says so and scales the
/// counts.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn probe_budget_duty_cycles_and_is_reported() {
    let Some(_serial) = privileged() else { return };
    // 3 s of assign() calls, ≈1,000/s: its probes cost ≈20-40% of the
    // program's CPU while attached, over a 15% budget and under 4× it.
    let (_, text, report) = traced(
        &example("probe_target"),
        &["3000", "1000", "0"],
        &[
            "--uprobe",
            "probe_target::*::assign",
            "--probe-budget",
            "15%",
        ],
        "budget",
    );
    let cost = &report["probe_cost"];
    let fraction = cost["attached_fraction"].as_f64().unwrap();
    assert!(fraction < 0.9, "duty cycle applied: {cost:#}");
    assert!(cost["windows"].as_u64() >= Some(1));
    assert_eq!(cost["budget_pct"].as_f64(), Some(15.0));
    let f = function(&report, "probe_target::orders::assign");
    assert!(
        f["detached_early"].is_null(),
        "duty cycled, not detached: {f:#}"
    );
    let (seen, est) = (
        f["calls"].as_u64().unwrap(),
        f["calls_estimated"].as_u64().unwrap(),
    );
    assert!(
        seen > 0 && est > seen,
        "scaled estimate {est} from {seen} seen"
    );
    assert!(text.contains("budget 15.0%"), "{text}");
}

/// A function whose probes alone cost far more than the budget (hot_fn's
/// hot_step: ≈1e9 calls/s, each probed call ≈11 µs) is detached within
/// its first window and reported, and the budget holds: the program's own
/// call counter shows it ran unprobed nearly all the time.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn a_function_too_hot_for_the_budget_is_detached_early() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("hot_fn");
    let bin = bin.to_str().unwrap();
    // Launched: its output (calls=N) comes with the report on stdout.
    let tracer = Tracer::start(
        &[
            "--uprobe",
            "hot_step",
            "--probe-budget",
            "5%",
            "--",
            bin,
            // 6 s: measuring and detaching cost ≈170 ms probed, ≈3%.
            "6",
        ],
        "too_hot",
    );
    let (text, report) = tracer.finish(Duration::from_secs(60));
    let f = function(&report, "hot_step");
    let d = &f["detached_early"];
    assert!(!d.is_null(), "hot_step detached early: {text}");
    assert!(
        d["after_s"].as_f64().unwrap() < 0.3,
        "within its first window: {d:#}"
    );
    assert!(d["share"].as_f64().unwrap() > 0.2, "{d:#}");
    let cost = &report["probe_cost"];
    assert!(
        cost["estimated_share"].as_f64().unwrap() <= 0.05 && cost["over_budget"].is_null(),
        "the budget held: {cost:#}"
    );
    let own: u64 = field(&text, "calls")
        .and_then(|v| v.parse().ok())
        .expect("calls=");
    let seen = f["calls"].as_u64().unwrap();
    assert!(
        seen > 0 && own > 1000 * seen,
        "probed {seen} of the program's {own} calls"
    );
    assert!(
        text.contains("DETACHED after")
            && text.contains("too hot to probe within the budget: hot_step"),
        "{text}"
    );
}

/// A budget no run can hold (0.01%: measuring alone costs more) is said
/// to be over, on the PROBE COST line and in the verdict, with the share
/// the probes' hits and their calibrated cost give.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn a_budget_that_does_not_hold_is_said() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("hot_fn");
    let bin = bin.to_str().unwrap();
    let tracer = Tracer::start(
        &[
            "--uprobe",
            "hot_step",
            "--probe-budget",
            "0.01%",
            "--",
            bin,
            "2",
        ],
        "over_budget",
    );
    let (text, report) = tracer.finish(Duration::from_secs(60));
    let cost = &report["probe_cost"];
    assert_eq!(cost["over_budget"], true, "{cost:#}");
    let share = cost["estimated_share"].as_f64().unwrap();
    let want =
        cost["estimated_overhead_ns"].as_f64().unwrap() / cost["target_cpu_ns"].as_f64().unwrap();
    assert!((share - want).abs() < 1e-9 && share > 0.0001, "{cost:#}");
    let verdict = text.lines().find(|l| l.starts_with("VERDICT")).unwrap();
    let line = text.lines().find(|l| l.contains("PROBE COST")).unwrap();
    assert!(
        verdict.contains("OVER BUDGET")
            && line.contains("OVER BUDGET")
            && line.contains("0.01% budget"),
        "{verdict}\n{line}"
    );
}

//! `tracer compare`: two sets of runs (one or more JSON reports per side,
//! or one or more profiles per side) → per metric, the change, its
//! direction and severity, and whether it stands out of the runs' noise;
//! then a verdict and an exit code for CI.
//!
//! Locks, functions and threads are matched by stable identity — a lock by
//! its symbol, else its call site, with its kind; a function by name; a
//! thread by name — never by address: ASLR moves addresses between runs.
//! Profiles are compared by function (`profile`).

pub mod html;
pub mod profile;
pub mod render;
pub mod stats;
pub mod trend;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::{
    analyze::hist::durations,
    exit::{Code, fail},
    input::Saved,
    output::Out,
    report::model::{Bucket, Decision, Durations, Report, Target},
    store,
};
use stats::{Summary, mann_whitney_p, summarize};

/// Version of the compare JSON output (docs/compare.md).
pub const COMPARE_SCHEMA_VERSION: &str = "1.2";

/// Fewer waits than this on a side and a lock's wait-time metrics are not
/// compared (a p99 of 3 waits is noise).
pub const MIN_WAITS: u64 = 20;
/// Time shares under this on both sides are not compared (a profile's CPU
/// shares have their own floor, `profile::MIN_CPU_SHARE`).
pub const MIN_SHARE: f64 = 0.005;
/// Significance level of the Mann-Whitney U test.
pub const ALPHA: f64 = 0.05;

/// How large a change is, by its percent against the thresholds (ordered:
/// `None` < … < `Critical`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    None,
    Warning,
    Minor,
    Major,
    Critical,
}

/// Percent thresholds: warning from `warning`, minor from `minor`, major
/// from `major` up to `critical` inclusive, critical above `critical`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub warning: f64,
    pub minor: f64,
    pub major: f64,
    pub critical: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            warning: 5.0,
            minor: 10.0,
            major: 20.0,
            critical: 50.0,
        }
    }
}

impl Thresholds {
    /// The severity of a change of `change_pct` percent, either way.
    pub fn severity(&self, change_pct: f64) -> Severity {
        // Changes are computed from values; allow for rounding at the edges.
        const EPS: f64 = 1e-9;
        let c = change_pct.abs();
        if c > self.critical + EPS {
            Severity::Critical
        } else if c + EPS >= self.major {
            Severity::Major
        } else if c + EPS >= self.minor {
            Severity::Minor
        } else if c + EPS >= self.warning {
            Severity::Warning
        } else {
            Severity::None
        }
    }

    /// Refuses thresholds that are not increasing, finite, non-negative
    /// percentages.
    pub fn check(&self) -> Result<()> {
        let t = [self.warning, self.minor, self.major, self.critical];
        if t.iter().all(|v| v.is_finite() && *v >= 0.0) && t.windows(2).all(|w| w[0] <= w[1]) {
            Ok(())
        } else {
            Err(fail(
                Code::Usage,
                format!(
                    "severity thresholds must be increasing percentages, got warning {} minor {} major {} critical {}",
                    self.warning, self.minor, self.major, self.critical
                ),
            ))
        }
    }
}

/// Thresholds from a config file: defaults plus per-metric overrides.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub default: Option<Thresholds>,
    /// Metric name (e.g. `wait_p99_ns`) → thresholds.
    #[serde(default)]
    pub metrics: BTreeMap<String, Thresholds>,
}

impl Config {
    /// Reads TOML (`.toml`) or JSON (anything else).
    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::input::read_text(path, "the thresholds file")?;
        let parsed: Result<Self, String> = if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str(&text).map_err(|e| e.message().to_string())
        } else {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        };
        let cfg = parsed.map_err(|e| {
            fail(
                Code::Input,
                format!("the thresholds file {} is not valid: {e}", path.display()),
            )
        })?;
        for t in cfg.default.iter().chain(cfg.metrics.values()) {
            t.check()?;
        }
        for m in cfg.metrics.keys() {
            if !METRICS.iter().any(|(name, _)| name == m) {
                return Err(fail(
                    Code::Input,
                    format!(
                        "the thresholds file {} names an unknown metric '{m}' (known: {})",
                        path.display(),
                        METRICS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        Ok(cfg)
    }
}

/// How a metric's change reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    HigherIsWorse,
    /// A rate of work: neither better nor worse by itself.
    Neutral,
}

/// Every metric compared, and how to read it.
pub const METRICS: &[(&str, Direction)] = &[
    ("contentions_per_s", Direction::HigherIsWorse),
    ("wait_total_ns", Direction::HigherIsWorse),
    ("wait_p50_ns", Direction::HigherIsWorse),
    ("wait_p95_ns", Direction::HigherIsWorse),
    ("wait_p99_ns", Direction::HigherIsWorse),
    ("wait_max_ns", Direction::HigherIsWorse),
    ("futex_wait_share", Direction::HigherIsWorse),
    ("runnable_share", Direction::HigherIsWorse),
    ("other_sleep_share", Direction::Neutral),
    ("calls_per_s", Direction::Neutral),
    ("latency_p50_ns", Direction::HigherIsWorse),
    ("latency_p95_ns", Direction::HigherIsWorse),
    ("latency_p99_ns", Direction::HigherIsWorse),
    ("latency_max_ns", Direction::HigherIsWorse),
    ("cpu_self_share", Direction::HigherIsWorse),
    ("cpu_total_share", Direction::HigherIsWorse),
];

/// How a change of `metric` of `entity` reads: condvar and other event
/// waits (joins, parking) are not lock contention, so their changes are
/// reported and never regressions — two joins instead of one is not a
/// slower program.
pub fn direction(entity: &str, metric: &str) -> Direction {
    let kind = entity
        .strip_prefix("lock ")
        .and_then(|e| e.rsplit_once(" ["))
        .map(|(_, k)| k.trim_end_matches(']'));
    if kind.is_some_and(|k| {
        crate::analyze::implementations::Kind::from_name(k).is_some_and(|k| !k.is_lock())
    }) {
        return Direction::Neutral;
    }
    METRICS
        .iter()
        .find(|(m, _)| *m == metric)
        .map_or(Direction::HigherIsWorse, |(_, d)| *d)
}

/// One run's values: (entity, metric) → value, and each lock's decision.
#[derive(Clone, Debug, Default)]
pub struct RunMetrics {
    pub values: BTreeMap<(String, String), f64>,
    pub decisions: BTreeMap<String, Decision>,
    pub program: String,
    /// A value missing from this run is 0 when its side has it in another
    /// run (a profile: a function not sampled had no CPU share), rather
    /// than unknown (a report: a lock with too few waits for a p99).
    pub absent_is_zero: bool,
}

impl RunMetrics {
    /// Every entity seen in the run (each has at least one metric).
    pub fn entities(&self) -> impl Iterator<Item = &String> {
        self.values.keys().map(|(e, _)| e)
    }
}

/// A lock's identity across runs, with its kind: a parked lock's label
/// (implementation and call site, never an address); a word's symbol,
/// else its call site, else its address (which will not match across
/// runs).
pub fn lock_identity(l: &crate::report::model::Lock) -> String {
    let name = match l.identity.as_str() {
        "call-site" | "implementation" => without_tag(&l.label).to_string(),
        _ => l
            .symbol
            .clone()
            .or_else(|| l.call_site.clone())
            .unwrap_or_else(|| l.address.clone()),
    };
    format!("lock {name} [{}]", l.kind)
}

/// A label without the ` [pid N]` or ` [0x…]` that told two rows apart
/// in one run.
fn without_tag(label: &str) -> &str {
    match label.rsplit_once(" [") {
        Some((head, tail))
            if tail.ends_with(']') && (tail.starts_with("pid ") || tail.starts_with("0x")) =>
        {
            head
        }
        _ => label,
    }
}

/// A lock class's identity across runs: its type and call site (not its
/// number of locks, which varies), with its kind.
pub fn class_identity(c: &crate::report::model::LockClass) -> String {
    let name = c
        .label
        .rsplit_once(", ")
        .map_or(c.label.as_str(), |(h, _)| h);
    format!("class {name} [{}]", c.kind)
}

/// Extracts every comparable value of one report. Locks with the same
/// identity (e.g. several joins from one call site) are merged.
pub fn run_metrics(r: &Report) -> RunMetrics {
    let mut m = RunMetrics {
        program: program_of(r),
        ..Default::default()
    };
    let dur = r.duration_s.max(1e-9);
    put_lock_metrics(&mut m, merged_locks(r), dur);
    put_thread_metrics(&mut m, r, dur);
    put_function_metrics(&mut m, r);
    m
}

/// The locks of one identity in one run, merged: contentions, wait times
/// and histogram buckets summed, the longest wait and the worst decision
/// kept.
struct MergedLock {
    contentions: u64,
    total: u64,
    max: u64,
    hist: BTreeMap<(u64, u64), u64>,
    decision: Decision,
}

impl MergedLock {
    /// Adds one lock row of this identity.
    fn add(&mut self, contentions: u64, wait: &Durations, hist: &[Bucket], decision: Decision) {
        self.contentions += contentions;
        self.total += wait.total_ns;
        self.max = self.max.max(wait.max_ns);
        self.decision = self.decision.max(decision);
        for b in hist {
            *self.hist.entry((b.lo_ns, b.hi_ns)).or_default() += b.count;
        }
    }

    /// The merged histogram, as report buckets.
    fn buckets(&self) -> Vec<Bucket> {
        self.hist
            .iter()
            .map(|(&(lo_ns, hi_ns), &count)| Bucket {
                lo_ns,
                hi_ns,
                count,
            })
            .collect()
    }
}

/// Every lock of a run by identity: logical locks (wait channels for
/// reports before schema 1.5), lock classes, and Go locks (goroutine
/// level: counted, never timed).
fn merged_locks(r: &Report) -> BTreeMap<String, MergedLock> {
    let mut locks: BTreeMap<String, MergedLock> = BTreeMap::new();
    let mut add = |id: String, contentions: u64, wait: &Durations, hist: &[Bucket], decision| {
        locks
            .entry(id)
            .or_insert(MergedLock {
                contentions: 0,
                total: 0,
                max: 0,
                hist: BTreeMap::new(),
                decision,
            })
            .add(contentions, wait, hist, decision);
    };
    for l in r.lock_rows() {
        add(
            lock_identity(l),
            l.contentions,
            &l.wait,
            &l.histogram,
            l.decision,
        );
    }
    for c in &r.lock_classes {
        add(
            class_identity(c),
            c.contentions,
            &c.wait,
            &c.histogram,
            c.decision,
        );
    }
    for g in &r.go_locks {
        add(
            format!("go {}", g.label),
            g.contentions,
            &Durations::default(),
            &[],
            g.decision,
        );
    }
    locks
}

/// Each merged lock's decision, contention rate, and (with at least
/// MIN_WAITS timed waits) its wait-time metrics.
fn put_lock_metrics(m: &mut RunMetrics, locks: BTreeMap<String, MergedLock>, dur: f64) {
    for (id, a) in locks {
        m.decisions.insert(id.clone(), a.decision);
        let mut put = |metric: &str, v: f64| {
            m.values.insert((id.clone(), metric.to_string()), v);
        };
        put("contentions_per_s", a.contentions as f64 / dur);
        // (Go locks' waits are not timed.)
        if a.contentions >= MIN_WAITS && !id.starts_with("go ") {
            let d = durations(a.total, a.contentions, a.max, &a.buckets());
            put("wait_total_ns", d.total_ns as f64);
            put("wait_p50_ns", d.p50_ns as f64);
            put("wait_p95_ns", d.p95_ns as f64);
            put("wait_p99_ns", d.p99_ns as f64);
            put("wait_max_ns", d.max_ns as f64);
        }
    }
}

/// Threads by name: where their time went, as shares of traced time
/// (threads of one name summed, over as many spans of the run).
fn put_thread_metrics(m: &mut RunMetrics, r: &Report, dur: f64) {
    let mut threads: BTreeMap<String, (u64, u64, u64, u32)> = BTreeMap::new();
    for t in &r.threads {
        let Some(s) = &t.sched else { continue };
        let e = threads.entry(format!("thread {}", t.name)).or_default();
        e.0 += s.futex_sleep_ns;
        e.1 += s.runnable_ns;
        e.2 += s.sleep_ns.saturating_sub(s.futex_sleep_ns);
        e.3 += 1;
    }
    for (id, (futex, runnable, other, n)) in threads {
        let span = dur * 1e9 * f64::from(n);
        m.values
            .insert((id.clone(), "futex_wait_share".into()), futex as f64 / span);
        m.values.insert(
            (id.clone(), "runnable_share".into()),
            runnable as f64 / span,
        );
        m.values.insert(
            (id.clone(), "other_sleep_share".into()),
            other as f64 / span,
        );
    }
}

/// Traced functions by name: call rate, and (with at least MIN_WAITS
/// calls) their latency percentiles.
fn put_function_metrics(m: &mut RunMetrics, r: &Report) {
    for f in &r.functions {
        let id = format!("function {}", f.name);
        let mut put = |metric: &str, v: f64| {
            m.values.insert((id.clone(), metric.to_string()), v);
        };
        put("calls_per_s", f.calls_per_s);
        if f.calls >= MIN_WAITS {
            put("latency_p50_ns", f.latency.p50_ns as f64);
            put("latency_p95_ns", f.latency.p95_ns as f64);
            put("latency_p99_ns", f.latency.p99_ns as f64);
            put("latency_max_ns", f.latency.max_ns as f64);
        }
    }
}

/// The traced program: the first target's executable name.
pub fn program_of(r: &Report) -> String {
    program_of_targets(&r.targets)
}

/// The executable name of the first target not followed (else of the
/// first).
pub fn program_of_targets(targets: &[Target]) -> String {
    targets
        .iter()
        .find(|t| !t.followed)
        .or(targets.first())
        .and_then(|t| t.command_line.first())
        .map(|c| c.rsplit('/').next().unwrap_or(c).to_string())
        .unwrap_or_default()
}

/// Loads one run (a report or a profile) for comparison: every way it can
/// be unusable is one sentence and `Code::Input`.
pub fn load(path: &Path) -> Result<Saved> {
    crate::input::load_any(path)
}

/// What a run lost that can hide a lock: its verdict says so from schema
/// 1.4 on; older reports are judged from their drop counters.
pub fn incomplete_of(r: &Report) -> Option<crate::report::model::Incomplete> {
    r.verdict
        .incomplete
        .clone()
        .or_else(|| crate::analyze::decide::assess(&r.drops, r.mode, None))
}

/// What a metric's change amounts to (`status` in the JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Worse, beyond noise, at least a warning.
    Regression,
    /// Better, beyond noise, at least a warning.
    Improvement,
    /// A neutral metric moved beyond noise, at least a warning.
    Changed,
    /// At least a warning, but not beyond the runs' noise.
    WithinNoise,
    /// Under the warning threshold.
    Unchanged,
}

impl Status {
    /// The status's name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Regression => "regression",
            Status::Improvement => "improvement",
            Status::Changed => "changed",
            Status::WithinNoise => "within_noise",
            Status::Unchanged => "unchanged",
        }
    }
}

/// A status equals its name, as in the JSON.
impl PartialEq<&str> for Status {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// What a comparison document is (`kind` in the JSON): always
/// `tracer-compare`, so another tool's JSON is not read as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    #[serde(rename = "tracer-compare")]
    TracerCompare,
}

/// What the runs compared are (`input` in the JSON): both sides are of
/// one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// Contention reports (`tracer contention --json`).
    #[default]
    Report,
    /// Profiles (`tracer profile --json`).
    Profile,
}

impl Input {
    /// The kind of one run.
    pub fn of(run: &Saved) -> Self {
        match run {
            Saved::Report(_) => Input::Report,
            Saved::Profile(_) => Input::Profile,
        }
    }

    /// A run of this kind, in words.
    pub fn noun(self) -> &'static str {
        match self {
            Input::Report => "a contention report",
            Input::Profile => "a profile",
        }
    }

    /// What a run of this kind loses when it is incomplete, in words.
    pub fn loss(self) -> &'static str {
        match self {
            Input::Report => "lost data that can hide a lock",
            Input::Profile => "lost samples that can change the profile",
        }
    }
}

/// The comparison of one metric of one entity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricChange {
    pub entity: String,
    pub metric: String,
    pub direction: Direction,
    pub base: Summary,
    pub current: Summary,
    /// (current mean − base mean) / base mean × 100; null when the base
    /// mean is 0.
    pub change_pct: Option<f64>,
    pub severity: Severity,
    /// "regression", "improvement", "changed" (neutral metric),
    /// "within_noise", "unchanged".
    pub status: Status,
    /// Mann-Whitney U two-sided p-value; null with one run on a side.
    pub p_value: Option<f64>,
    /// Why a change is or is not beyond noise, in words.
    pub noise: String,
}

/// A lock whose usual decision differs between the sides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionChange {
    pub entity: String,
    pub base: Decision,
    pub current: Decision,
    pub worse: bool,
}

/// One side's runs: their files, how many, and the traced program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SideInfo {
    pub files: Vec<String>,
    pub runs: usize,
    pub program: String,
}

/// The whole comparison (JSON output of `tracer compare --json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub schema_version: String,
    pub kind: Kind,
    /// Reports or profiles (compare 1.2; `report` before).
    #[serde(default)]
    pub input: Input,
    pub base: SideInfo,
    pub current: SideInfo,
    pub thresholds: Thresholds,
    /// Per-metric overrides from the config file.
    pub metric_thresholds: BTreeMap<String, Thresholds>,
    pub fail_on: Option<Severity>,
    pub decision_changes: Vec<DecisionChange>,
    pub appeared: Vec<String>,
    pub disappeared: Vec<String>,
    /// Every metric present on both sides, worst first.
    pub metrics: Vec<MetricChange>,
    /// Whether a noise estimate exists (at least 2 runs on both sides).
    pub noise_estimate: bool,
    /// Input runs that lost data that can hide a lock: "FILE: cause"
    /// (compare 1.1). With --fail-on or --ci the comparison cannot pass.
    #[serde(default)]
    pub incomplete: Vec<String>,
    pub regressions: usize,
    pub worst: Severity,
    /// 0; 9 when a regression at or above `fail_on` was found; 10 when
    /// `fail_on` is set and an input run is incomplete.
    pub exit_code: i32,
    pub summary: String,
}

/// How `compare` judges changes: the default thresholds, per-metric
/// overrides, and the severity from which a regression fails.
pub struct Options {
    pub thresholds: Thresholds,
    pub config: Config,
    pub fail_on: Option<Severity>,
}

/// One run's metrics: a report's locks, threads and probed functions, or a
/// profile's functions.
pub fn metrics_of(run: &Saved) -> RunMetrics {
    match run {
        Saved::Report(r) => run_metrics(r),
        Saved::Profile(p) => profile::profile_metrics(p),
    }
}

/// Compares two sides of runs (of one kind: `load_sides` refuses a mix).
pub fn compare(
    base: &[(PathBuf, Saved)],
    current: &[(PathBuf, Saved)],
    opts: &Options,
) -> Comparison {
    let bm: Vec<RunMetrics> = base.iter().map(|(_, r)| metrics_of(r)).collect();
    let cm: Vec<RunMetrics> = current.iter().map(|(_, r)| metrics_of(r)).collect();
    let (be, ce) = (entities(&bm), entities(&cm));
    let noise_estimate = bm.len() >= 2 && cm.len() >= 2;
    let metrics = metric_changes(&bm, &cm, opts, noise_estimate);
    let regressions: Vec<&MetricChange> = metrics
        .iter()
        .filter(|m| m.status == Status::Regression)
        .collect();
    let worst = regressions
        .iter()
        .map(|m| m.severity)
        .max()
        .unwrap_or(Severity::None);
    let incomplete = incomplete_runs(base, current);
    let exit_code = exit_code(opts.fail_on, &regressions, &incomplete);
    let summary = summary(regressions.len(), worst);
    let regressions = regressions.len();
    Comparison {
        schema_version: COMPARE_SCHEMA_VERSION.into(),
        kind: Kind::TracerCompare,
        input: base
            .iter()
            .chain(current)
            .next()
            .map_or(Input::Report, |(_, r)| Input::of(r)),
        base: side_info(base, &bm),
        current: side_info(current, &cm),
        thresholds: opts.thresholds,
        metric_thresholds: opts.config.metrics.clone(),
        fail_on: opts.fail_on,
        decision_changes: decision_changes(&bm, &cm, &be, &ce),
        appeared: ce
            .difference(&be)
            .filter(|e| worth_listing(&cm, e))
            .cloned()
            .collect(),
        disappeared: be
            .difference(&ce)
            .filter(|e| worth_listing(&bm, e))
            .cloned()
            .collect(),
        noise_estimate,
        regressions,
        worst,
        exit_code,
        incomplete,
        summary,
        metrics,
    }
}

/// Every entity seen in any run of one side.
fn entities(side: &[RunMetrics]) -> BTreeSet<String> {
    side.iter().flat_map(|m| m.entities().cloned()).collect()
}

/// One metric's values over the runs of one side: none when no run has
/// it; else each run's, a run without it counting 0 when its absence
/// means 0 (`RunMetrics::absent_is_zero`) and left out otherwise.
fn side_values(side: &[RunMetrics], key: &(String, String)) -> Vec<f64> {
    if !side.iter().any(|m| m.values.contains_key(key)) {
        return Vec::new();
    }
    side.iter()
        .filter_map(|m| {
            m.values
                .get(key)
                .copied()
                .or(m.absent_is_zero.then_some(0.0))
        })
        .collect()
}

/// The share of time (or of CPU) under which a metric is too small to
/// compare on both sides; none for a metric that is not a share.
fn min_share(metric: &str) -> Option<f64> {
    if metric.starts_with("cpu_") {
        Some(profile::MIN_CPU_SHARE)
    } else {
        metric.ends_with("_share").then_some(MIN_SHARE)
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Whether an entity of one side only is listed as NEW or GONE: a
/// profiled function when one of its CPU shares reaches
/// `profile::MIN_CPU_SHARE` on that side (sampling alone makes rarer ones
/// come and go), any other entity always.
fn worth_listing(side: &[RunMetrics], entity: &str) -> bool {
    let keys: BTreeSet<&(String, String)> = side
        .iter()
        .flat_map(|m| m.values.keys())
        .filter(|(e, _)| e == entity)
        .collect();
    keys.iter()
        .any(|k| !k.1.starts_with("cpu_") || mean(&side_values(side, k)) >= profile::MIN_CPU_SHARE)
}

/// Every metric present on both sides, judged against its thresholds,
/// worst first. Shares of time too small on both sides to matter are left
/// out.
fn metric_changes(
    bm: &[RunMetrics],
    cm: &[RunMetrics],
    opts: &Options,
    noise_estimate: bool,
) -> Vec<MetricChange> {
    let keys: BTreeSet<(String, String)> = bm
        .iter()
        .chain(cm)
        .flat_map(|m| m.values.keys().cloned())
        .collect();
    let mut metrics = Vec::new();
    for key in keys {
        let (bv, cv) = (side_values(bm, &key), side_values(cm, &key));
        if bv.is_empty() || cv.is_empty() {
            continue;
        }
        // Shares too small on both sides are not worth a verdict (0.001% →
        // 0.003% is +200%).
        if min_share(&key.1).is_some_and(|min| mean(&bv) < min && mean(&cv) < min) {
            continue;
        }
        let t = opts
            .config
            .metrics
            .get(&key.1)
            .copied()
            .unwrap_or(opts.thresholds);
        metrics.push(judge(&key.0, &key.1, &bv, &cv, &t, noise_estimate));
    }
    sort_worst_first(&mut metrics);
    metrics
}

/// Regressions first, by severity; then by the size of the change; then
/// by entity.
fn sort_worst_first(metrics: &mut [MetricChange]) {
    metrics.sort_by(|a, b| {
        let rank = |m: &MetricChange| (m.status == Status::Regression, m.severity);
        rank(b)
            .cmp(&rank(a))
            .then(
                b.change_pct
                    .unwrap_or(0.0)
                    .abs()
                    .total_cmp(&a.change_pct.unwrap_or(0.0).abs()),
            )
            .then(a.entity.cmp(&b.entity))
    });
}

/// A lock's most frequent decision over the runs of one side (the worse on
/// a tie); none when no run has it.
fn usual_decision(side: &[RunMetrics], entity: &str) -> Option<Decision> {
    let mut count: BTreeMap<Decision, usize> = BTreeMap::new();
    for m in side {
        if let Some(d) = m.decisions.get(entity) {
            *count.entry(*d).or_default() += 1;
        }
    }
    count
        .into_iter()
        .max_by_key(|(d, n)| (*n, *d))
        .map(|(d, _)| d)
}

/// The locks on both sides whose usual decision changed.
fn decision_changes(
    bm: &[RunMetrics],
    cm: &[RunMetrics],
    be: &BTreeSet<String>,
    ce: &BTreeSet<String>,
) -> Vec<DecisionChange> {
    be.intersection(ce)
        .filter_map(|e| {
            let (b, c) = (usual_decision(bm, e)?, usual_decision(cm, e)?);
            (b != c).then(|| DecisionChange {
                entity: e.clone(),
                base: b,
                current: c,
                worse: c > b,
            })
        })
        .collect()
}

/// The input runs that lost data that can hide a lock, or samples that can
/// change a profile: "FILE: causes".
fn incomplete_runs(base: &[(PathBuf, Saved)], current: &[(PathBuf, Saved)]) -> Vec<String> {
    base.iter()
        .chain(current)
        .filter_map(|(p, run)| {
            let causes = match run {
                Saved::Report(r) => incomplete_of(r).map(|i| i.causes.join("; ")),
                Saved::Profile(p) => p.incomplete.clone(),
            };
            causes.map(|c| format!("{}: {c}", p.display()))
        })
        .collect()
}

/// The comparison's exit code: with a gate (`fail_on`), 10 when an input
/// run is incomplete, else 9 when a regression reaches it; 0 otherwise.
fn exit_code(
    fail_on: Option<Severity>,
    regressions: &[&MetricChange],
    incomplete: &[String],
) -> i32 {
    let failing = fail_on.is_some_and(|f| regressions.iter().any(|m| m.severity >= f));
    if fail_on.is_some() && !incomplete.is_empty() {
        Code::Incomplete as i32
    } else if failing {
        Code::Regression as i32
    } else {
        0
    }
}

/// The summary line: how many regressions, and the worst.
fn summary(regressions: usize, worst: Severity) -> String {
    if regressions == 0 {
        "no regression".to_string()
    } else {
        format!(
            "{regressions} regression(s), worst {}",
            severity_name(worst)
        )
    }
}

/// One side's files, number of runs, and program.
fn side_info(runs: &[(PathBuf, Saved)], ms: &[RunMetrics]) -> SideInfo {
    SideInfo {
        files: runs.iter().map(|(p, _)| p.display().to_string()).collect(),
        runs: runs.len(),
        program: ms.first().map(|m| m.program.clone()).unwrap_or_default(),
    }
}

/// A severity's name, as in the JSON and on the command line.
pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::None => "none",
        Severity::Warning => "warning",
        Severity::Minor => "minor",
        Severity::Major => "major",
        Severity::Critical => "critical",
    }
}

/// One metric: change, severity, and whether it exceeds the noise of both
/// sides: a Mann-Whitney U p-value under ALPHA (or, with too few runs for
/// that, no overlap between the sides' ranges) *and* a mean shift larger
/// than either side's coefficient of variation.
fn judge(
    entity: &str,
    metric: &str,
    bv: &[f64],
    cv: &[f64],
    t: &Thresholds,
    noise_estimate: bool,
) -> MetricChange {
    let (b, c) = (summarize(bv), summarize(cv));
    let dir = direction(entity, metric);
    let change_pct = (b.mean != 0.0).then(|| (c.mean - b.mean) / b.mean.abs() * 100.0);
    let severity = match change_pct {
        Some(p) => t.severity(p),
        // From zero to something: as large a change as there is.
        None if c.mean != 0.0 => Severity::Critical,
        None => Severity::None,
    };
    let up = c.mean > b.mean;
    let (p_value, beyond, noise) = if noise_estimate {
        let p = mann_whitney_p(bv, cv);
        let spread = b.cv.unwrap_or(0.0).max(c.cv.unwrap_or(0.0)) * 100.0;
        let shift = change_pct.map_or(f64::INFINITY, f64::abs);
        // With few runs the rank test cannot reach ALPHA at all (3 vs 3:
        // p ≥ 0.1); then every run of one side must lie beyond every run
        // of the other, the rank test's own extreme.
        let (ranks_differ, how) = if min_p(bv.len(), cv.len()) < ALPHA {
            (p < ALPHA, format!("Mann-Whitney p = {p:.3}"))
        } else {
            let apart = b.max < c.min || c.max < b.min;
            (
                apart,
                format!(
                    "{} vs {} runs, too few for p < {ALPHA}: ranges {}",
                    bv.len(),
                    cv.len(),
                    if apart { "apart" } else { "overlap" }
                ),
            )
        };
        let beyond = ranks_differ && shift > spread;
        let why = if beyond {
            format!("beyond noise: {how}, shift {shift:.1}% > CV {spread:.1}%")
        } else if !ranks_differ {
            format!("within noise: {how}")
        } else {
            format!("within noise: shift {shift:.1}% ≤ CV {spread:.1}%")
        };
        (Some(p), beyond, why)
    } else {
        (
            None,
            true,
            "no noise estimate: one run on a side".to_string(),
        )
    };
    let status = if severity == Severity::None {
        Status::Unchanged
    } else if !beyond {
        Status::WithinNoise
    } else if dir == Direction::Neutral {
        Status::Changed
    } else if up {
        Status::Regression
    } else {
        Status::Improvement
    };
    MetricChange {
        entity: entity.into(),
        metric: metric.into(),
        direction: dir,
        base: b,
        current: c,
        change_pct,
        severity,
        status,
        p_value,
        noise,
    }
}

/// The smallest two-sided p the exact rank test can give for these sizes:
/// 2 / C(n1 + n2, n1).
fn min_p(n1: usize, n2: usize) -> f64 {
    let mut c = 1.0;
    for i in 0..n1 {
        c = c * (n2 + i + 1) as f64 / (i + 1) as f64;
    }
    2.0 / c
}

/// The runs of one side, with the files they came from.
pub type Runs = Vec<(PathBuf, Saved)>;

/// Loads both sides (reports or profiles); refuses a mix of the two, and
/// runs of different programs.
pub fn load_sides(
    base: &[PathBuf],
    current: &[PathBuf],
    allow_different: bool,
) -> Result<(Runs, Runs)> {
    let load_all = |paths: &[PathBuf]| -> Result<Runs> {
        paths.iter().map(|p| Ok((p.clone(), load(p)?))).collect()
    };
    let (b, c) = (load_all(base)?, load_all(current)?);
    one_kind(b.iter().chain(&c))?;
    if !allow_different {
        let programs: BTreeSet<String> = b.iter().chain(&c).map(|(_, r)| program(r)).collect();
        if programs.len() > 1 {
            return Err(fail(
                Code::Input,
                format!(
                    "these runs trace different programs ({}): compare runs of one program, or pass --allow-different-programs",
                    programs.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    Ok((b, c))
}

/// Refuses runs of two kinds (a report and a profile measure different
/// things), naming one of each.
fn one_kind<'a>(mut runs: impl Iterator<Item = &'a (PathBuf, Saved)>) -> Result<()> {
    let Some((first, kind)) = runs.next().map(|(p, r)| (p, Input::of(r))) else {
        return Ok(());
    };
    match runs.find(|(_, r)| Input::of(r) != kind) {
        None => Ok(()),
        Some((other, r)) => Err(fail(
            Code::Input,
            format!(
                "{} is {} and {} is {}: compare reports with reports (tracer contention --json) and profiles with profiles (tracer profile --json)",
                first.display(),
                kind.noun(),
                other.display(),
                Input::of(r).noun()
            ),
        )),
    }
}

/// The traced program of a run of either kind.
pub fn program(run: &Saved) -> String {
    match run {
        Saved::Report(r) => program_of(r),
        Saved::Profile(p) => profile::program_of(p),
    }
}

#[cfg(test)]
mod tests;

/// `METRIC=W,MI,MA,CR` → (metric, thresholds).
pub fn parse_metric_threshold(spec: &str) -> Result<(String, Thresholds)> {
    let bad = || {
        fail(
            Code::Usage,
            format!(
                "--metric-threshold '{spec}' is not METRIC=WARNING,MINOR,MAJOR,CRITICAL with a known metric (e.g. wait_p99_ns=15,25,50,100)"
            ),
        )
    };
    let (metric, values) = spec.split_once('=').ok_or_else(bad)?;
    if !METRICS.iter().any(|(m, _)| *m == metric) {
        return Err(bad());
    }
    let v: Vec<f64> = values
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let [warning, minor, major, critical] = v[..] else {
        return Err(bad());
    };
    let t = Thresholds {
        warning,
        minor,
        major,
        critical,
    };
    t.check()?;
    Ok((metric.to_string(), t))
}

/// What `tracer compare` was asked for, as plain values (the command
/// line's argument handling builds it).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Positional runs: BASE CURRENT, or one CURRENT after --base or
    /// --baseline.
    pub files: Vec<PathBuf>,
    /// Base runs.
    pub base: Vec<PathBuf>,
    /// Current runs.
    pub current: Vec<PathBuf>,
    /// A named baseline (see `crate::store`) added to the base side.
    pub baseline: Option<String>,
    /// Where named baselines live (`None`: `store::dir`'s default).
    pub baseline_dir: Option<PathBuf>,
    /// The default thresholds, unless the thresholds file has `[default]`.
    pub thresholds: Thresholds,
    /// A TOML or JSON file of thresholds (`Config`).
    pub thresholds_file: Option<PathBuf>,
    /// `METRIC=W,MI,MA,CR` overrides, applied over the file's.
    pub metric_thresholds: Vec<String>,
    /// Fail (exit 9) on a regression at or above this severity.
    pub fail_on: Option<Severity>,
    /// Where to write the comparison JSON (`-`: stdout).
    pub json: Option<PathBuf>,
    /// Where to write the Markdown summary (`-`: stdout).
    pub markdown: Option<PathBuf>,
    /// Where to write the HTML page (`-`: stdout).
    pub html: Option<PathBuf>,
    /// List every metric, not only those past the warning threshold.
    pub all: bool,
    /// Compare runs of different programs anyway.
    pub allow_different_programs: bool,
}

/// `tracer compare`: loads both sides, compares them, prints the text and
/// writes the files asked for; returns the exit code (0, 9 or 10).
pub fn run(req: &RunOptions) -> Result<Code> {
    let opts = judging(req)?;
    let (base, current) = side_paths(req)?;
    let (b, c) = load_sides(&base, &current, req.allow_different_programs)?;
    let outputs = prepare_outputs(req)?;
    let cmp = compare(&b, &c, &opts);
    // The text goes to stderr when stdout carries a file format.
    let text = crate::ui::esc_text(&render::text(&cmp, req.all)).into_owned();
    if outputs.iter().any(|(o, _)| o.is_stdout()) {
        use std::io::Write as _;
        let _ = std::io::stderr().write_all(text.as_bytes());
    } else {
        crate::ui::print(&text)?;
    }
    for (out, view) in &outputs {
        out.write_str(&view.render(&cmp, &b, &c, req.all)?)?;
    }
    Ok(match cmp.exit_code {
        0 => Code::Ok,
        10 => Code::Incomplete,
        _ => Code::Regression,
    })
}

/// The thresholds and gate of a request: its thresholds (checked), the
/// thresholds file's default and overrides over them, then each
/// `--metric-threshold`.
fn judging(req: &RunOptions) -> Result<Options> {
    req.thresholds.check()?;
    let mut config = match &req.thresholds_file {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    for spec in &req.metric_thresholds {
        let (metric, t) = parse_metric_threshold(spec)?;
        config.metrics.insert(metric, t);
    }
    Ok(Options {
        thresholds: config.default.unwrap_or(req.thresholds),
        config,
        fail_on: req.fail_on,
    })
}

/// The files of each side: --base (and the named baseline) and --current,
/// completed by the positional files; refuses any other combination.
fn side_paths(req: &RunOptions) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut base = req.base.clone();
    let mut current = req.current.clone();
    if let Some(name) = &req.baseline {
        base.push(store::path_of(
            &store::dir(req.baseline_dir.as_deref()),
            name,
        )?);
    }
    match (req.files.len(), base.is_empty(), current.is_empty()) {
        (2, true, true) => {
            base.push(req.files[0].clone());
            current.push(req.files[1].clone());
        }
        (1, false, true) => current.push(req.files[0].clone()),
        (0, false, false) => {}
        _ => {
            return Err(fail(
                Code::Usage,
                "give BASE.json CURRENT.json, or --base/--baseline and --current (or one CURRENT.json after --base/--baseline)",
            ));
        }
    }
    Ok((base, current))
}

/// A file format of the comparison.
#[derive(Clone, Copy)]
enum View {
    Json,
    Markdown,
    Html,
}

impl View {
    /// The comparison in this format.
    fn render(self, cmp: &Comparison, base: &Runs, current: &Runs, all: bool) -> Result<String> {
        Ok(match self {
            View::Json => {
                serde_json::to_string_pretty(cmp)
                    .map_err(|e| fail(Code::Internal, e.to_string()))?
                    + "\n"
            }
            View::Markdown => render::markdown(cmp),
            View::Html => html::render(cmp, base, current, all),
        })
    }
}

/// Each file asked for, checked writable before any work; at most one of
/// them may be stdout.
fn prepare_outputs(req: &RunOptions) -> Result<Vec<(Out, View)>> {
    let mut outputs: Vec<(Out, View)> = Vec::new();
    for (path, what, view) in [
        (&req.json, "comparison JSON", View::Json),
        (&req.markdown, "Markdown summary", View::Markdown),
        (&req.html, "comparison page", View::Html),
    ] {
        if let Some(p) = path {
            outputs.push((Out::prepare(p, what)?, view));
        }
    }
    if outputs.iter().filter(|(o, _)| o.is_stdout()).count() > 1 {
        return Err(fail(
            Code::Usage,
            "only one of --json, --markdown and --html can go to stdout (-)",
        ));
    }
    Ok(outputs)
}

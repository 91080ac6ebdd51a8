//! Versioned JSON: written through `output::Out` (atomic, no link
//! followed), read back streaming with a schema check and a consistency
//! check.

use std::io::{BufReader, Read, Seek};

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

use super::model::{Report, SCHEMA_VERSION};
use crate::output::Out;

/// Writes the report as pretty JSON to `dest`.
pub fn write(report: &Report, dest: &Out) -> Result<()> {
    dest.write(|w| {
        serde_json::to_writer_pretty(&mut *w, report)?;
        w.write_all(b"\n")
    })
}

/// Writes a profile as pretty JSON, as `tracer profile --json` does.
pub fn write_profile(profile: &crate::report::profile::Profile, dest: &Out) -> Result<()> {
    dest.write(|w| {
        serde_json::to_writer_pretty(&mut *w, profile)?;
        w.write_all(b"\n")
    })
}

/// Only the version, read first: other fields are skipped without being
/// kept, so a foreign or newer file is refused before it is materialized.
#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    schema_version: Option<serde_json::Value>,
}

fn check_head<R: Read + Seek>(mut r: R) -> Result<()> {
    // A report is a JSON object: say so for anything else, before serde
    // would read an array as a struct's fields.
    let mut first = [0u8; 1];
    loop {
        match r.read(&mut first) {
            Ok(0) => bail!("not valid JSON: the file is empty"),
            Ok(_) if first[0].is_ascii_whitespace() => continue,
            Ok(_) if first[0] == b'{' => break,
            Ok(_) if b"[\"-0123456789tfn".contains(&first[0]) => {
                bail!("not a tracer report (not a JSON object)")
            }
            Ok(_) => bail!("not valid JSON: it does not start with a JSON value"),
            Err(e) => bail!("cannot read it: {e}"),
        }
    }
    r.rewind().context("rewinding the report")?;
    let head: Head = serde_json::from_reader(BufReader::new(r)).map_err(|e| {
        if e.is_data() {
            anyhow::anyhow!("not a tracer report (not a JSON object)")
        } else {
            anyhow::anyhow!("not valid JSON: {e}")
        }
    })?;
    let version = head
        .schema_version
        .as_ref()
        .and_then(|v| v.as_str())
        .ok_or_else(|| anyhow::anyhow!("no schema_version: not a tracer report"))?;
    let major = |v: &str| v.split('.').next().and_then(|m| m.parse::<u32>().ok());
    match (major(version), major(SCHEMA_VERSION)) {
        (Some(theirs), Some(ours)) if theirs > ours => bail!(
            "report schema {version} is newer than this tracer understands ({SCHEMA_VERSION}): upgrade tracer"
        ),
        (Some(_), _) => Ok(()),
        _ => bail!("schema_version '{version}' is not major.minor"),
    }
}

/// Parses a report from a seekable reader (a file): the version first,
/// then the report itself, streaming (no intermediate JSON tree), then its
/// consistency.
pub fn parse_reader<R: Read + Seek>(mut r: R) -> Result<Report> {
    check_head(&mut r)?;
    r.rewind().context("rewinding the report")?;
    let report: Report = serde_json::from_reader(BufReader::new(r))
        .map_err(|e| anyhow::anyhow!("JSON does not match the report schema: {e}"))?;
    validate(&report)?;
    Ok(report)
}

#[derive(Deserialize)]
struct KindHead {
    #[serde(default)]
    kind: Option<String>,
}

/// Whether the file is a profile (`tracer profile --json`), not a
/// contention report; the reader is rewound.
pub fn is_profile<R: Read + Seek>(mut r: R) -> Result<bool> {
    check_head(&mut r)?;
    r.rewind().context("rewinding the file")?;
    let head: KindHead = serde_json::from_reader(BufReader::new(&mut r))
        .map_err(|e| anyhow::anyhow!("not valid JSON: {e}"))?;
    r.rewind().context("rewinding the file")?;
    Ok(head.kind.as_deref() == Some(crate::report::profile::KIND))
}

/// Parses a profile, and checks that its counts add up.
pub fn parse_profile_reader<R: Read + Seek>(r: R) -> Result<crate::report::profile::Profile> {
    let p: crate::report::profile::Profile = serde_json::from_reader(BufReader::new(r))
        .map_err(|e| anyhow::anyhow!("JSON does not match the profile schema: {e}"))?;
    let received = p.sampling.received;
    let stacks: u64 = p.stacks.iter().map(|s| s.samples).sum();
    if stacks != received {
        bail!("its stacks hold {stacks} samples but it says {received} were received");
    }
    if let Some(f) = p
        .functions
        .iter()
        .find(|f| f.self_samples > f.total_samples || f.total_samples > received)
    {
        bail!("function {} has more samples than the profile", f.name);
    }
    if !(p.duration_s.is_finite() && p.duration_s >= 0.0) {
        bail!("its duration is not a number of seconds");
    }
    Ok(p)
}

/// Parses a report held in memory.
#[cfg(test)]
pub fn parse(text: &str) -> Result<Report> {
    parse_reader(std::io::Cursor::new(text.as_bytes()))
}

/// What a report must satisfy to be compared or re-rendered: numbers a run
/// can produce, and counts that add up. One sentence on failure.
pub fn validate(r: &Report) -> Result<()> {
    validate_run(r)?;
    // No thread waits longer than the run (one second of slack each).
    let span_ns = (r.duration_s + 1.0) * 1e9;
    validate_locks(r, span_ns)?;
    validate_threads(r, span_ns)?;
    validate_classes(r, span_ns)?;
    validate_lock_times(r, span_ns)?;
    validate_totals(r, span_ns)?;
    validate_counts(r, span_ns)
}

/// The run's length and thresholds.
fn validate_run(r: &Report) -> Result<()> {
    // A year and a day at most: --duration's own limit.
    if !(r.duration_s.is_finite() && r.duration_s > 0.0 && r.duration_s < 367.0 * 86400.0) {
        bail!(
            "duration_s is {}, not the length of a run in seconds",
            r.duration_s
        );
    }
    let t = &r.thresholds;
    if !(t.consider_at.is_finite()
        && t.recommend_at.is_finite()
        && t.consider_at >= 0.0
        && t.consider_at <= t.recommend_at)
    {
        bail!(
            "thresholds consider_at {} / recommend_at {} are not 0 ≤ consider ≤ recommend",
            t.consider_at,
            t.recommend_at
        );
    }
    Ok(())
}

/// Each lock's outcomes, rate, wait and histogram.
fn validate_locks(r: &Report, span_ns: f64) -> Result<()> {
    for l in r.locks.iter().chain(&r.logical_locks) {
        let o = &l.outcomes;
        let sum = [o.slept, o.eagain, o.timed_out, o.interrupted, o.error]
            .iter()
            .try_fold(0u64, |a, &b| a.checked_add(b));
        if sum != Some(l.contentions) {
            bail!(
                "lock {}: its outcomes do not add up to its {} contentions",
                l.label,
                l.contentions
            );
        }
        if !(l.contentions_per_s.is_finite() && l.contentions_per_s >= 0.0) {
            bail!(
                "lock {}: contentions_per_s is {}",
                l.label,
                l.contentions_per_s
            );
        }
        let waiters = l
            .threads
            .iter()
            .filter(|t| t.contentions > 0)
            .count()
            .max(1);
        if l.wait.total_ns as f64 > span_ns * waiters as f64 {
            bail!(
                "lock {}: {} ns of wait by {waiters} thread(s) in a {} s run",
                l.label,
                l.wait.total_ns,
                r.duration_s
            );
        }
        if l.histogram.iter().any(|b| b.lo_ns >= b.hi_ns) {
            bail!("lock {}: a histogram bucket ends before it begins", l.label);
        }
        let in_hist = l
            .histogram
            .iter()
            .try_fold(0u64, |a, b| a.checked_add(b.count));
        if in_hist.is_none_or(|h| h > l.contentions) {
            bail!(
                "lock {}: its histogram holds more waits than its {} contentions",
                l.label,
                l.contentions
            );
        }
    }
    Ok(())
}

/// Each thread's share and times: none longer than the run.
fn validate_threads(r: &Report, span_ns: f64) -> Result<()> {
    for th in &r.threads {
        if !(th.wait_share.is_finite() && th.wait_share >= 0.0) {
            bail!("thread {}: wait_share is {}", th.tid, th.wait_share);
        }
        // One thread's time, in any state, cannot exceed the run.
        let mut times = vec![th.wait_ns, th.max_wait_ns];
        if let Some(s) = &th.sched {
            times.extend([
                s.oncpu_ns,
                s.sleep_ns,
                s.futex_sleep_ns,
                s.runnable_ns,
                s.wakeup_latency_ns,
            ]);
            times.extend(s.other_sleep.iter().map(|x| x.sleep_ns));
        }
        if times.iter().any(|&t| t as f64 > span_ns) {
            bail!(
                "thread {}: more time in one state than the {} s run",
                th.tid,
                r.duration_s
            );
        }
    }
    Ok(())
}

/// Each lock class's counts.
fn validate_classes(r: &Report, span_ns: f64) -> Result<()> {
    for c in &r.lock_classes {
        let o = &c.outcomes;
        let sum = [o.slept, o.eagain, o.timed_out, o.interrupted, o.error]
            .iter()
            .try_fold(0u64, |a, &b| a.checked_add(b));
        if sum != Some(c.contentions)
            || !(c.contentions_per_s.is_finite() && c.contentions_per_s >= 0.0)
            || c.wait.max_ns as f64 > span_ns
            || c.contentions as f64 > (r.duration_s + 1.0) * 1e9
            || c.histogram
                .iter()
                .try_fold(0u64, |a, b| a.checked_add(b.count))
                .is_none_or(|h| h > c.contentions)
            || c.histogram.iter().any(|b| b.lo_ns >= b.hi_ns)
        {
            bail!("lock class {}: its counts do not add up", c.label);
        }
    }
    Ok(())
}

/// Each lock's waits and its threads': none longer than the run.
fn validate_lock_times(r: &Report, span_ns: f64) -> Result<()> {
    for l in r.locks.iter().chain(&r.logical_locks) {
        let waiters = l.threads.len().max(1) as f64;
        let mut times = vec![l.wait.max_ns];
        times.extend(l.threads.iter().flat_map(|t| [t.wait_ns, t.max_wait_ns]));
        if let Some(s) = &l.sched {
            times.extend([
                s.blocked_ns / waiters as u64,
                s.runnable_ns / waiters as u64,
            ]);
        }
        // (Call-site wait times are sampled estimates: a long wait sampled
        // with a large weight may exceed the run; they are not checked.)
        if times.iter().any(|&t| t as f64 > span_ns) {
            bail!(
                "lock {}: waits longer than the {} s run",
                l.label,
                r.duration_s
            );
        }
    }
    Ok(())
}

/// Across locks: one thread waits on one lock at a time, so the locks'
/// waits add up to at most the threads' time; and every total fits a u64
/// with room to add (renderers add them up).
fn validate_totals(r: &Report, span_ns: f64) -> Result<()> {
    let threads = r.threads.len().max(1) as f64;
    let room = (u64::MAX / 4) as f64;
    // The channels, the logical locks (a split of the same waits) and the
    // classes (sums of logical locks) each.
    let sums = |rows: &mut dyn Iterator<Item = (u64, u64)>| {
        rows.fold((0f64, 0f64), |(w, c), (tw, tc)| {
            (w + tw as f64, c + tc as f64)
        })
    };
    let all = [
        sums(&mut r.locks.iter().map(|l| (l.wait.total_ns, l.contentions))),
        sums(
            &mut r
                .logical_locks
                .iter()
                .map(|l| (l.wait.total_ns, l.contentions)),
        ),
        sums(
            &mut r
                .lock_classes
                .iter()
                .map(|c| (c.wait.total_ns, c.contentions)),
        ),
    ];
    if all.iter().any(|&(total_wait, total_count)| {
        total_wait > (span_ns * threads).min(room)
            || total_count > ((r.duration_s + 1.0) * 1e9 * threads).min(room)
    }) {
        bail!(
            "its locks wait longer, or more often, than its {} thread(s) could in a {} s run",
            r.threads.len(),
            r.duration_s
        );
    }
    Ok(())
}

/// Counts (a billion events a second is beyond any run), Go locks,
/// functions and kernel locks.
fn validate_counts(r: &Report, span_ns: f64) -> Result<()> {
    let max_count = (r.duration_s + 1.0) * 1e9;
    let counts = r
        .locks
        .iter()
        .chain(&r.logical_locks)
        .flat_map(|l| [l.contentions, l.wakes.calls, l.wakes.woken])
        .chain(r.functions.iter().map(|f| f.calls))
        .chain(r.kernel_locks.iter().map(|k| k.contentions));
    if counts.into_iter().any(|c| c as f64 > max_count) {
        bail!(
            "a count above a billion per second of the {} s run",
            r.duration_s
        );
    }
    for g in &r.go_locks {
        if !(g.contentions_per_s.is_finite() && g.contentions_per_s >= 0.0)
            || g.contentions as f64 > max_count
            || g.semaphore > g.contentions
        {
            bail!("Go lock {}: its counts do not add up", g.label);
        }
    }
    for f in &r.functions {
        if !(f.calls_per_s.is_finite() && f.calls_per_s >= 0.0) {
            bail!("function {}: calls_per_s is {}", f.name, f.calls_per_s);
        }
        if f.latency.max_ns as f64 > span_ns {
            bail!("function {}: a call longer than the run", f.name);
        }
    }
    for k in &r.kernel_locks {
        if k.max_ns as f64 > span_ns {
            bail!("kernel lock {}: a wait longer than the run", k.address);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real run at the current schema (1.8).
    const FIXTURE: &str = include_str!("../../../tests/fixtures/report-v1.8.json");
    /// Schema 1.7 (before shared-memory locks, per-process kernel locks and
    /// functions detached early).
    const FIXTURE_1_7: &str = include_str!("../../../tests/fixtures/report-v1.7.json");
    /// Schema 1.6 (Go locks, before targets' programs and untraced children).
    const FIXTURE_1_6: &str = include_str!("../../../tests/fixtures/report-v1.6.json");
    /// Schema 1.5 (logical locks, before Go locks).
    const FIXTURE_1_5: &str = include_str!("../../../tests/fixtures/report-v1.5.json");
    /// A real run from schema 1.4 (before logical locks and classes).
    const FIXTURE_1_4: &str = include_str!("../../../tests/fixtures/report-v1.4.json");
    /// A real run from schema 1.3 (before verdict.incomplete).
    const FIXTURE_1_3: &str = include_str!("../../../tests/fixtures/report-v1.3.json");
    /// A real run from schema 1.2 (before per-thread site estimates).
    const FIXTURE_1_2: &str = include_str!("../../../tests/fixtures/report-v1.2.json");
    /// A real run from schema 1.1 (before lock kinds and unwound sites).
    const FIXTURE_1_1: &str = include_str!("../../../tests/fixtures/report-v1.1.json");
    /// A real run from schema 1.0: an older minor must still be read.
    const FIXTURE_1_0: &str = include_str!("../../../tests/fixtures/report-v1.0.json");

    #[test]
    fn fixture_round_trips_exactly() {
        let report = parse(FIXTURE).expect("fixture parses");
        let again = serde_json::to_value(&report).unwrap();
        let original: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(again, original, "serializing the parsed fixture changed it");
        assert_eq!(
            report.locks[0].symbol.as_deref(),
            Some("global_seq_batch_seq_mu_")
        );
    }

    /// Every value in `old` is in `new` unchanged (`new` may add fields).
    fn is_subset(old: &serde_json::Value, new: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (old, new) {
            (Value::Object(a), Value::Object(b)) => a
                .iter()
                .all(|(k, v)| b.get(k).is_some_and(|w| is_subset(v, w))),
            (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(v, w)| is_subset(v, w))
            }
            _ => old == new,
        }
    }

    #[test]
    fn older_minor_is_read_without_losing_anything() {
        let report = parse(FIXTURE_1_0).expect("a 1.0 report parses");
        assert_eq!(report.schema_version, "1.0");
        assert!(
            report.threads.iter().all(|t| t.sched.is_none()),
            "1.0 has no scheduler view"
        );
        let again = serde_json::to_value(&report).unwrap();
        let original: serde_json::Value = serde_json::from_str(FIXTURE_1_0).unwrap();
        assert!(
            is_subset(&original, &again),
            "a 1.0 field changed when read by 1.1"
        );
    }

    #[test]
    fn schema_1_1_reads_with_unknown_kinds() {
        let report = parse(FIXTURE_1_1).expect("a 1.1 report parses");
        assert!(report.locks.iter().all(|l| l.kind == "unknown"));
        let again = serde_json::to_value(&report).unwrap();
        let original: serde_json::Value = serde_json::from_str(FIXTURE_1_1).unwrap();
        assert!(
            is_subset(&original, &again),
            "a 1.1 field changed when read by 1.2"
        );
    }

    #[test]
    fn schema_1_2_reads_without_per_thread_sites() {
        let report = parse(FIXTURE_1_2).expect("a 1.2 report parses");
        assert!(
            report
                .locks
                .iter()
                .flat_map(|l| &l.unwound_sites)
                .all(|s| s.threads.is_empty())
        );
        let again = serde_json::to_value(&report).unwrap();
        let original: serde_json::Value = serde_json::from_str(FIXTURE_1_2).unwrap();
        assert!(
            is_subset(&original, &again),
            "a 1.2 field changed when read by 1.3"
        );
    }

    #[test]
    fn schema_1_3_reads_as_complete() {
        let report = parse(FIXTURE_1_3).expect("a 1.3 report parses");
        assert!(report.verdict.incomplete.is_none());
        assert!(crate::compare::incomplete_of(&report).is_none());
        let again = serde_json::to_value(&report).unwrap();
        let original: serde_json::Value = serde_json::from_str(FIXTURE_1_3).unwrap();
        assert!(
            is_subset(&original, &again),
            "a 1.3 field changed when read by 1.4"
        );
    }

    #[test]
    fn schema_1_4_reads_with_its_channels_as_the_lock_rows() {
        let report = parse(FIXTURE_1_4).expect("a 1.4 report parses");
        assert!(report.logical_locks.is_empty() && report.lock_classes.is_empty());
        assert_eq!(report.lock_rows(), &report.locks[..]);
        assert_eq!(report.verdict.level, "lock", "the only level before 1.5");
        let again = serde_json::to_value(&report).unwrap();
        let original: serde_json::Value = serde_json::from_str(FIXTURE_1_4).unwrap();
        assert!(
            is_subset(&original, &again),
            "a 1.4 field changed when read by 1.5"
        );
    }

    #[test]
    fn schema_1_5_reads_unchanged() {
        let report = parse(FIXTURE_1_5).expect("a 1.5 report parses");
        assert!(report.go_locks.is_empty());
        let again = serde_json::to_value(&report).unwrap();
        let original: serde_json::Value = serde_json::from_str(FIXTURE_1_5).unwrap();
        assert!(
            is_subset(&original, &again),
            "a 1.5 field changed when read by 1.6"
        );
    }

    #[test]
    fn schema_1_7_reads_unchanged() {
        let report = parse(FIXTURE_1_7).expect("a 1.7 report parses");
        assert!(report.locks.iter().all(|l| l.shared.is_none()));
        assert!(report.kernel_locks.iter().all(|k| k.processes.is_empty()));
        let again = serde_json::to_value(&report).unwrap();
        let original: serde_json::Value = serde_json::from_str(FIXTURE_1_7).unwrap();
        assert!(
            is_subset(&original, &again),
            "a 1.7 field changed when read by 1.8"
        );
        // The current fixture's threads name their process, and its
        // allocator probes were too hot for its 5% budget.
        let now = parse(FIXTURE).unwrap();
        assert!(
            now.locks[0]
                .threads
                .iter()
                .all(|t| t.pid == now.locks[0].pid)
        );
        assert!(now.functions.iter().any(|f| f.detached_early.is_some()));
    }

    #[test]
    fn schema_1_6_reads_unchanged() {
        let report = parse(FIXTURE_1_6).expect("a 1.6 report parses");
        assert!(report.targets.iter().all(|t| t.program.is_none()));
        let again = serde_json::to_value(&report).unwrap();
        let original: serde_json::Value = serde_json::from_str(FIXTURE_1_6).unwrap();
        assert!(
            is_subset(&original, &again),
            "a 1.6 field changed when read by 1.7"
        );
        // The current fixture names its program.
        let now = parse(FIXTURE).unwrap();
        assert!(
            now.targets[0]
                .program
                .as_deref()
                .is_some_and(|p| p.ends_with("/sequencer"))
        );
    }

    #[test]
    fn current_fixture_has_logical_locks_over_its_channels() {
        let report = parse(FIXTURE).unwrap();
        let top = &report.logical_locks[0];
        assert_eq!(top.label, "global_seq_batch_seq_mu_");
        assert_eq!(top.identity, "word");
        assert_eq!(top.implementation, "glibc");
        let channel = &report.locks[0];
        assert_eq!(top.contentions, channel.contentions);
        assert_eq!(channel.of.as_deref(), Some(top.label.as_str()));
        assert_eq!(report.verdict.level, "lock");
        // The joins are waits, not locks.
        assert!(
            report.logical_locks.iter().any(|l| l.kind == "wait"
                && l.decision == crate::report::model::Decision::NotLockContention)
        );
    }

    #[test]
    fn current_fixture_has_kinds_and_unwound_sites() {
        let report = parse(FIXTURE).unwrap();
        let top = &report.locks[0];
        assert_eq!(top.kind, "mutex");
        assert_eq!(top.call_site_unwind, "eh_frame");
        assert!(
            top.call_site
                .as_deref()
                .is_some_and(|c| c.starts_with("sequencer_assign"))
        );
        // Per-thread estimates add up to the site's (schema 1.3).
        let site = &top.unwound_sites[0];
        assert!(site.threads.len() > 1);
        assert_eq!(
            site.threads.iter().map(|t| t.count).sum::<u64>(),
            site.count
        );
    }

    #[test]
    fn current_fixture_has_the_scheduler_view() {
        let report = parse(FIXTURE).unwrap();
        assert_eq!(report.schema_version, SCHEMA_VERSION);
        assert!(
            report
                .threads
                .iter()
                .any(|t| t.sched.as_ref().is_some_and(|s| s.oncpu_ns > 0))
        );
    }

    #[test]
    fn newer_major_and_foreign_json_are_refused() {
        let newer = FIXTURE.replacen(
            &format!("\"schema_version\": \"{SCHEMA_VERSION}\""),
            "\"schema_version\": \"2.0\"",
            1,
        );
        assert!(parse(&newer).unwrap_err().to_string().contains("newer"));
        assert!(
            parse("{\"timestamp\": 1}")
                .unwrap_err()
                .to_string()
                .contains("not a tracer report")
        );
        assert!(parse("{").is_err());
        assert!(
            parse("[1, 2]")
                .unwrap_err()
                .to_string()
                .contains("not a tracer report")
        );
    }

    #[test]
    fn inconsistent_reports_are_refused_with_one_sentence() {
        let negative = FIXTURE.replacen("\"duration_s\": ", "\"duration_s\": -", 1);
        let e = parse(&negative).unwrap_err().to_string();
        assert!(e.contains("duration_s"), "{e}");
        let mut r = parse(FIXTURE).unwrap();
        r.locks[0].contentions += 1;
        let e = validate(&r).unwrap_err().to_string();
        assert!(e.contains("do not add up"), "{e}");
        let mut r = parse(FIXTURE).unwrap();
        r.thresholds.consider_at = 5000.0;
        assert!(validate(&r).is_err());
    }

    #[test]
    fn write_is_atomic_and_readable() {
        let dir = std::env::temp_dir().join(format!("tracer-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.json");
        let report = parse(FIXTURE).unwrap();
        write(&report, &Out::prepare(&path, "JSON report").unwrap()).unwrap();
        assert_eq!(
            parse(&std::fs::read_to_string(&path).unwrap()).unwrap(),
            report
        );
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != "run.json")
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
        let Err(err) = Out::prepare(
            std::path::Path::new("/nonexistent-dir/run.json"),
            "JSON report",
        ) else {
            panic!("a missing directory was accepted");
        };
        assert_eq!(crate::exit::code_of(&err), crate::exit::Code::Output);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

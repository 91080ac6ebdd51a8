//! The agent's metrics: per logical lock and per process, summed over the
//! windows, with the last window's rates and decisions, rendered as the
//! Prometheus text exposition or OpenMetrics.
//!
//! Everything measured in a window carries the window's end as its
//! timestamp: a counter moves once a window, and with the time it moved at
//! `rate()` measures the windows exactly, however scrapes fall. The
//! agent's own gauges (CPU, memory, map fill) are live and carry none.

use std::{collections::BTreeMap, fmt::Write as _, time::SystemTime};

use crate::report::model::{Decision, Lock, Report};

/// Upper bounds of the wait histogram's buckets (ns), ×4 from 1 µs to 4 s,
/// then +Inf. A report bucket (at most 1/32 of its value wide) goes to the
/// first bound at or above its upper end.
pub const LE_NS: [u64; 12] = [
    1_000,
    4_000,
    16_000,
    64_000,
    256_000,
    1_000_000,
    4_000_000,
    16_000_000,
    64_000_000,
    256_000_000,
    1_000_000_000,
    4_000_000_000,
];

/// A series unseen for this many windows (its process alive) is dropped.
const KEEP_WINDOWS: u64 = 10;

/// The states a process's traced time is split into.
const STATES: [&str; 4] = ["on_cpu", "runnable", "futex_wait", "other_sleep"];

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct LockKey {
    pid: u32,
    process: String,
    program: String,
    lock: String,
    kind: String,
    call_site: String,
}

#[derive(Default)]
struct LockSeries {
    contentions: u64,
    wait_ns: u64,
    /// Observations per bucket of [`LE_NS`], the last one +Inf.
    buckets: [u64; LE_NS.len() + 1],
    /// In the last window (`seen` = the window's number): its rate and its
    /// decision (0 not needed, 1 consider, 2 recommended).
    rate: f64,
    decision: u8,
    seen: u64,
}

#[derive(Default)]
struct ProcSeries {
    process: String,
    program: String,
    ns: [u64; 4],
    window_ns: [u64; 4],
    seen: u64,
}

/// What the agent's loop measured that is not a window's: read when
/// /metrics is asked for.
#[derive(Clone, Debug, Default)]
pub struct Live {
    pub targets: usize,
    /// (map, entries, capacity), counted at most a second ago.
    pub maps: Vec<(String, u64, u32)>,
    pub execs_dropped: u64,
    pub window_s: f64,
    pub load_attach_s: f64,
    pub mode: &'static str,
}

#[derive(Default)]
pub struct Exposition {
    locks: BTreeMap<LockKey, LockSeries>,
    procs: BTreeMap<u32, ProcSeries>,
    drops: BTreeMap<String, u64>,
    events: BTreeMap<String, u64>,
    windows: u64,
    incomplete: u64,
    /// The last window's end, ms since the epoch.
    end_ms: i64,
}

/// A lock's decision as the gauge's value.
fn decision_code(d: Decision) -> u8 {
    match d {
        Decision::Recommended => 2,
        Decision::Consider => 1,
        _ => 0,
    }
}

fn basename(p: &str) -> String {
    p.rsplit('/').next().unwrap_or(p).to_string()
}

impl Exposition {
    /// Windows summed so far.
    pub fn windows(&self) -> u64 {
        self.windows
    }

    /// Series currently exported per lock (for the soak's bound).
    pub fn lock_series(&self) -> usize {
        self.locks.len()
    }

    /// Adds one window's report: its top `top_k` locks per process by
    /// contentions, the rest as `other`. `alive` says which processes
    /// still run (the series of those gone are dropped).
    pub fn add(&mut self, r: &Report, end: SystemTime, top_k: usize, alive: impl Fn(u32) -> bool) {
        self.windows += 1;
        let w = self.windows;
        self.end_ms = end
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        if r.verdict.incomplete.is_some() {
            self.incomplete += 1;
        }
        let program = |pid: u32| {
            r.targets
                .iter()
                .find(|t| t.pid == pid)
                .and_then(|t| t.program.as_deref())
                .map(basename)
                .unwrap_or_default()
        };
        let process = |pid: u32| {
            if pid == 0 {
                return "(shared)".to_string();
            }
            r.threads
                .iter()
                .find(|t| t.tid == pid)
                .map(|t| t.name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| program(pid))
        };
        let mut by_pid: BTreeMap<u32, Vec<&Lock>> = BTreeMap::new();
        for l in r.view_rows(false) {
            by_pid.entry(l.pid).or_default().push(l);
        }
        for (pid, mut rows) in by_pid {
            rows.sort_by(|a, b| {
                b.contentions
                    .cmp(&a.contentions)
                    .then_with(|| a.label.cmp(&b.label))
            });
            let (name, prog) = (process(pid), program(pid));
            for (i, l) in rows.into_iter().enumerate() {
                let key = if i < top_k {
                    LockKey {
                        pid,
                        process: name.clone(),
                        program: prog.clone(),
                        lock: l.label.clone(),
                        kind: l.kind.clone(),
                        call_site: l.call_site.clone().unwrap_or_default(),
                    }
                } else {
                    LockKey {
                        pid,
                        process: name.clone(),
                        program: prog.clone(),
                        lock: "other".into(),
                        kind: String::new(),
                        call_site: String::new(),
                    }
                };
                let s = self.locks.entry(key).or_default();
                if s.seen != w {
                    s.seen = w;
                    s.rate = 0.0;
                    s.decision = 0;
                }
                s.contentions += l.contentions;
                s.wait_ns += l.wait.total_ns;
                for b in &l.histogram {
                    let at = LE_NS
                        .iter()
                        .position(|&le| b.hi_ns <= le)
                        .unwrap_or(LE_NS.len());
                    s.buckets[at] += b.count;
                }
                s.rate += l.contentions_per_s;
                s.decision = s.decision.max(decision_code(l.decision));
            }
        }
        for t in &r.threads {
            let Some(sched) = &t.sched else { continue };
            let p = self.procs.entry(t.pid).or_default();
            if p.seen != w {
                p.seen = w;
                p.window_ns = [0; 4];
                p.process = process(t.pid);
                p.program = program(t.pid);
            }
            let other = sched.sleep_ns.saturating_sub(sched.futex_sleep_ns);
            let parts = [
                sched.oncpu_ns,
                sched.runnable_ns,
                sched.futex_sleep_ns,
                other,
            ];
            for (k, v) in parts.into_iter().enumerate() {
                p.ns[k] += v;
                p.window_ns[k] += v;
            }
        }
        for (k, v) in &r.drops {
            *self.drops.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &r.events {
            *self.events.entry(k.clone()).or_default() += v;
        }
        // Bounded whatever the churn: a process gone takes its series with
        // it once they have been exported for the window it ended in (a
        // short-lived process's waits are in that window's counters), and
        // a lock unseen for long is dropped.
        let keep = |pid: u32, seen: u64| {
            seen == w || (w - seen < KEEP_WINDOWS && (pid == 0 || alive(pid)))
        };
        self.locks.retain(|k, s| keep(k.pid, s.seen));
        self.procs.retain(|&pid, p| keep(pid, p.seen));
    }

    /// The exposition: Prometheus text (0.0.4), or OpenMetrics 1.0.
    pub fn render(&self, live: &Live, openmetrics: bool) -> String {
        let mut o = Out {
            s: String::new(),
            om: openmetrics,
            ts: (self.windows > 0).then_some(self.end_ms),
        };
        let w = self.windows;
        o.family(
            "tracer_lock_contentions",
            "counter",
            "Contended waits on a logical lock (in --mode sched, futex waits that blocked), summed over the windows.",
        );
        for (k, s) in &self.locks {
            o.sample(
                "tracer_lock_contentions_total",
                &lock_labels(k),
                s.contentions as f64,
                true,
            );
        }
        o.family(
            "tracer_lock_wait_seconds",
            "histogram",
            "How long each contended wait lasted, summed over the windows.",
        );
        for (k, s) in &self.locks {
            let labels = lock_labels(k);
            let mut acc = 0;
            for (i, n) in s.buckets.iter().enumerate() {
                acc += n;
                let le = LE_NS
                    .get(i)
                    .map_or("+Inf".to_string(), |&ns| fmt_f64(ns as f64 / 1e9));
                let mut l = labels.clone();
                l.push(("le", le));
                o.sample("tracer_lock_wait_seconds_bucket", &l, acc as f64, true);
            }
            o.sample(
                "tracer_lock_wait_seconds_sum",
                &labels,
                s.wait_ns as f64 / 1e9,
                true,
            );
            o.sample("tracer_lock_wait_seconds_count", &labels, acc as f64, true);
        }
        o.family(
            "tracer_lock_contentions_per_second",
            "gauge",
            "Contentions per second in the last window.",
        );
        for (k, s) in self.locks.iter().filter(|(_, s)| s.seen == w) {
            o.sample(
                "tracer_lock_contentions_per_second",
                &lock_labels(k),
                s.rate,
                true,
            );
        }
        o.family(
            "tracer_lock_decision",
            "gauge",
            "The last window's decision on a lock-free redesign: 0 not needed, 1 consider, 2 recommended.",
        );
        for (k, s) in self.locks.iter().filter(|(_, s)| s.seen == w) {
            o.sample(
                "tracer_lock_decision",
                &lock_labels(k),
                f64::from(s.decision),
                true,
            );
        }
        o.family(
            "tracer_process_time_seconds",
            "counter",
            "Where a process's threads' traced time went (on CPU, runnable, in futex waits, in other sleeps), summed over the windows.",
        );
        for (pid, p) in &self.procs {
            for (k, state) in STATES.iter().enumerate() {
                let l = proc_labels(*pid, p, state);
                o.sample(
                    "tracer_process_time_seconds_total",
                    &l,
                    p.ns[k] as f64 / 1e9,
                    true,
                );
            }
        }
        o.family(
            "tracer_process_time_share",
            "gauge",
            "Share of a process's traced time in each state, in the last window.",
        );
        for (pid, p) in self.procs.iter().filter(|(_, p)| p.seen == w) {
            let total: u64 = p.window_ns.iter().sum();
            for (k, state) in STATES.iter().enumerate() {
                let share = p.window_ns[k] as f64 / total.max(1) as f64;
                o.sample(
                    "tracer_process_time_share",
                    &proc_labels(*pid, p, state),
                    share,
                    true,
                );
            }
        }
        o.family(
            "tracer_drops",
            "counter",
            "Events the tracer lost, by cause (a window with losses that can change its verdict is also counted in tracer_incomplete_windows_total).",
        );
        for (k, v) in &self.drops {
            o.sample(
                "tracer_drops_total",
                &[("counter", k.clone())],
                *v as f64,
                true,
            );
        }
        o.sample(
            "tracer_drops_total",
            &[("counter", "agent_execs_dropped".into())],
            live.execs_dropped as f64,
            false,
        );
        o.family(
            "tracer_events",
            "counter",
            "Events the kernel programs counted, by kind.",
        );
        for (k, v) in &self.events {
            o.sample(
                "tracer_events_total",
                &[("counter", k.clone())],
                *v as f64,
                true,
            );
        }
        o.family("tracer_windows", "counter", "Windows ended.");
        o.sample("tracer_windows_total", &[], w as f64, true);
        o.family(
            "tracer_incomplete_windows",
            "counter",
            "Windows that lost data that can change their verdict.",
        );
        o.sample(
            "tracer_incomplete_windows_total",
            &[],
            self.incomplete as f64,
            true,
        );
        self.render_live(&mut o, live);
        if openmetrics {
            o.s.push_str("# EOF\n");
        }
        o.s
    }

    fn render_live(&self, o: &mut Out, live: &Live) {
        let (cpu, rss) = own_cost();
        o.family(
            "tracer_agent_cpu_seconds",
            "counter",
            "The agent's own CPU time (user and system).",
        );
        o.sample("tracer_agent_cpu_seconds_total", &[], cpu, false);
        o.family(
            "tracer_agent_resident_bytes",
            "gauge",
            "The agent's resident memory.",
        );
        o.sample("tracer_agent_resident_bytes", &[], rss as f64, false);
        o.family(
            "tracer_agent_map_entries",
            "gauge",
            "Entries in each kernel map now.",
        );
        for (m, n, _) in &live.maps {
            o.sample(
                "tracer_agent_map_entries",
                &[("map", m.to_lowercase())],
                *n as f64,
                false,
            );
        }
        o.family(
            "tracer_agent_map_capacity",
            "gauge",
            "Capacity of each kernel map.",
        );
        for (m, _, cap) in &live.maps {
            o.sample(
                "tracer_agent_map_capacity",
                &[("map", m.to_lowercase())],
                f64::from(*cap),
                false,
            );
        }
        o.family(
            "tracer_agent_lock_series",
            "gauge",
            "Lock series exported (bounded by --top-k per process, plus other).",
        );
        o.sample(
            "tracer_agent_lock_series",
            &[],
            self.lock_series() as f64,
            false,
        );
        o.family("tracer_agent_targets", "gauge", "Processes traced now.");
        o.sample("tracer_agent_targets", &[], live.targets as f64, false);
        o.family(
            "tracer_agent_window_seconds",
            "gauge",
            "Length of a window.",
        );
        o.sample("tracer_agent_window_seconds", &[], live.window_s, false);
        o.family(
            "tracer_agent_load_attach_seconds",
            "gauge",
            "Time the last window took to load and attach its programs.",
        );
        o.sample(
            "tracer_agent_load_attach_seconds",
            &[],
            live.load_attach_s,
            false,
        );
        o.family(
            "tracer_agent_info",
            "gauge",
            "The agent's version and tracing mode.",
        );
        o.sample(
            "tracer_agent_info",
            &[
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("mode", live.mode.to_string()),
            ],
            1.0,
            false,
        );
    }
}

fn lock_labels(k: &LockKey) -> Vec<(&'static str, String)> {
    vec![
        ("pid", k.pid.to_string()),
        ("process", k.process.clone()),
        ("program", k.program.clone()),
        ("lock", k.lock.clone()),
        ("kind", k.kind.clone()),
        ("call_site", k.call_site.clone()),
    ]
}

fn proc_labels(pid: u32, p: &ProcSeries, state: &str) -> Vec<(&'static str, String)> {
    vec![
        ("pid", pid.to_string()),
        ("process", p.process.clone()),
        ("program", p.program.clone()),
        ("state", state.to_string()),
    ]
}

/// The agent's CPU seconds and resident bytes.
fn own_cost() -> (f64, u64) {
    // SAFETY: getrusage fills a zeroed struct we own.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        secs(ru.ru_utime) + secs(ru.ru_stime),
        crate::target::proc::own_rss_bytes().unwrap_or(0),
    )
}

/// A number as both formats write it.
fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A label value, escaped as both formats require.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out {
    s: String,
    om: bool,
    /// The window's end (ms), for the samples measured in windows.
    ts: Option<i64>,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Prometheus text names a counter family by its sample's name.
        let fam = if !self.om && kind == "counter" {
            format!("{name}_total")
        } else {
            name.to_string()
        };
        let _ = writeln!(self.s, "# HELP {fam} {help}");
        let _ = writeln!(self.s, "# TYPE {fam} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, String)], v: f64, windowed: bool) {
        self.s.push_str(name);
        if !labels.is_empty() {
            self.s.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.s.push(',');
                }
                let _ = write!(self.s, "{k}=\"{}\"", escape(val));
            }
            self.s.push('}');
        }
        let _ = write!(self.s, " {}", fmt_f64(v));
        if windowed && let Some(ms) = self.ts {
            if self.om {
                let _ = write!(self.s, " {}.{:03}", ms / 1000, ms % 1000);
            } else {
                let _ = write!(self.s, " {ms}");
            }
        }
        self.s.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{Bucket, Durations, Thread};

    fn report(contentions: &[(&str, u64)]) -> Report {
        let mut r = Report::default();
        for (label, n) in contentions {
            r.logical_locks.push(Lock {
                pid: 42,
                label: label.to_string(),
                kind: "mutex".into(),
                contentions: *n,
                contentions_per_s: *n as f64,
                decision: if *n > 1000 {
                    Decision::Recommended
                } else {
                    Decision::NotNeeded
                },
                wait: Durations {
                    total_ns: n * 10_000,
                    ..Default::default()
                },
                histogram: vec![Bucket {
                    lo_ns: 9_000,
                    hi_ns: 10_000,
                    count: *n,
                }],
                ..Default::default()
            });
        }
        r.threads.push(Thread {
            tid: 42,
            pid: 42,
            name: "srv".into(),
            ..Default::default()
        });
        r.drops.insert("ring_full".into(), 3);
        r
    }

    #[test]
    fn counters_sum_over_windows_and_the_rest_is_other() {
        let mut e = Exposition::default();
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        e.add(&report(&[("a", 5000), ("b", 50), ("c", 7)]), t, 2, |_| true);
        e.add(&report(&[("a", 2000), ("c", 100)]), t, 2, |_| true);
        let text = e.render(&Live::default(), false);
        assert!(text.contains(r#"tracer_lock_contentions_total{pid="42",process="srv",program="",lock="a",kind="mutex",call_site=""} 7000 1000000"#), "{text}");
        // Window 1: c is third (other); window 2: c is second (its own).
        assert!(
            text.contains(r#"lock="other",kind="",call_site=""} 7 1000000"#),
            "{text}"
        );
        assert!(
            text.contains(r#"lock="c",kind="mutex",call_site=""} 100 1000000"#),
            "{text}"
        );
        // Decisions only for the last window's series: b is not in it.
        assert!(text.contains(r#"tracer_lock_decision{pid="42",process="srv",program="",lock="a",kind="mutex",call_site=""} 2"#), "{text}");
        assert!(
            !text.contains(r#"tracer_lock_decision{pid="42",process="srv",program="",lock="b""#),
            "{text}"
        );
        // Waits of 10 µs fall under le=16 µs; the count is cumulative.
        assert!(
            text.contains(r#"lock="a",kind="mutex",call_site="",le="0.000016"} 7000"#),
            "{text}"
        );
        assert!(
            text.contains(r#"lock="a",kind="mutex",call_site="",le="0.000004"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"tracer_drops_total{counter="ring_full"} 6 1000000"#),
            "{text}"
        );
        assert!(text.contains("# TYPE tracer_lock_contentions_total counter"));
    }

    #[test]
    fn openmetrics_names_families_without_total_and_ends_with_eof() {
        let mut e = Exposition::default();
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_500);
        e.add(&report(&[("a", 10)]), t, 10, |_| true);
        let text = e.render(&Live::default(), true);
        assert!(
            text.contains("# TYPE tracer_lock_contentions counter\n"),
            "{text}"
        );
        assert!(text.contains(r#"call_site=""} 10 1.500"#), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn series_of_processes_gone_are_dropped() {
        let mut e = Exposition::default();
        let t = SystemTime::now();
        // A process that exited within its window is still exported for it.
        e.add(&report(&[("a", 10), ("b", 10)]), t, 10, |_| false);
        assert_eq!(e.lock_series(), 2);
        e.add(&Report::default(), t, 10, |_| false);
        assert_eq!(e.lock_series(), 0);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

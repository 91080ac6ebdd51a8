//! The text report on stdout: header, verdict, locks, threads, events and
//! drops (always, even when all are 0), and what the run could not see.

use std::fmt::Write as _;

use std::collections::BTreeMap;

use super::model::{Decision, Lock, Report};
use super::units::{clip, human_count, human_ns, human_rate};
use crate::ui::esc;

/// "f ← g ← h": the first six frames of a stack, innermost first. A frame
/// without a name is its module and file offset (`libfoo.so+0x1a2b`: the
/// same in every run, resolvable later with addr2line), or `[unknown]`
/// outside any file (a JIT's code without a perf map), a run of those once.
pub fn stack_path(frames: &[super::model::Frame]) -> String {
    let mut path: Vec<String> = Vec::new();
    for f in frames {
        let name = if f.symbol.is_none() && (f.module.is_none() || f.file_offset.is_none()) {
            "[unknown]".to_string()
        } else {
            f.name()
        };
        if name == "[unknown]" && path.last().is_some_and(|l| l == "[unknown]") {
            continue;
        }
        path.push(name);
        if path.len() == 6 {
            break;
        }
    }
    if path.is_empty() {
        "(no stack)".to_string()
    } else {
        crate::ui::esc(&path.join(" ← ")).into_owned()
    }
}

fn decision_cell(d: Decision) -> &'static str {
    match d {
        Decision::NotLockContention => "not a lock",
        Decision::NotNeeded => "not needed",
        Decision::Consider => "CONSIDER",
        Decision::Recommended => "RECOMMENDED",
    }
}

/// What the text report shows.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Locks and threads listed (JSON has all).
    pub top: usize,
    /// Also list the condition, event and runtime waits that are not locks
    /// (otherwise summed up in one line).
    pub all_waits: bool,
    /// One row per process for locks every process of a program has
    /// (otherwise one row per program).
    pub per_process: bool,
}

pub fn render(r: &Report, opts: Options) -> String {
    let mut o = String::new();
    header(&mut o, r);
    let _ = writeln!(o, "VERDICT  {}", esc(&r.verdict.text));
    for note in r.untraced_notes() {
        let _ = writeln!(o, "UNTRACED {}", esc(&note));
    }
    let _ = writeln!(o);
    processes(&mut o, r, opts.top);
    if !r.go_locks.is_empty() {
        go_locks(&mut o, r, opts.top);
    }
    locks(&mut o, r, opts);
    threads(&mut o, r, opts.top);
    sched(&mut o, r, opts.top);
    kernel_locks(&mut o, r, opts.top);
    if !r.functions.is_empty() {
        functions(&mut o, r, opts.top);
    }
    tail(&mut o, r);
    o
}

/// Every traced process with its program and title, when there are
/// followed ones (a forking server's workers).
fn processes(o: &mut String, r: &Report, top: usize) {
    if !r.targets.iter().any(|t| t.followed) {
        return;
    }
    let followed = r.targets.iter().filter(|t| t.followed).count();
    let _ = writeln!(
        o,
        "PROCESSES {} traced ({} root{}, {followed} followed)",
        r.targets.len(),
        r.targets.len() - followed,
        if r.targets.len() - followed == 1 {
            ""
        } else {
            "s"
        }
    );
    let _ = writeln!(o, "  {:>8}  {:<20}  TITLE", "PID", "PROGRAM");
    let show = r.targets.len().min(top.max(1) * 2);
    for t in &r.targets[..show] {
        let program = t
            .program
            .as_deref()
            .map(|p| p.rsplit('/').next().unwrap_or(p))
            .unwrap_or("?");
        let _ = writeln!(
            o,
            "  {:>8}  {:<20}  {}{}",
            t.pid,
            clip(program, 20),
            clip(&t.command_line.join(" "), 70),
            if t.followed { "" } else { "  (root)" }
        );
    }
    if show < r.targets.len() {
        let _ = writeln!(o, "  … {} more in the JSON", r.targets.len() - show);
    }
    let _ = writeln!(o);
}

fn header(o: &mut String, r: &Report) {
    // The roots, and a few followed processes (PROCESSES lists them all).
    let followed = r.targets.iter().filter(|t| t.followed).count();
    let shown = r.targets.iter().filter(|t| !t.followed).chain(
        r.targets
            .iter()
            .filter(|t| t.followed)
            .take(if followed > 3 { 0 } else { 3 }),
    );
    let mut targets: Vec<String> = shown
        .map(|t| {
            let cmd = clip(&t.command_line.join(" "), 60);
            let follow = if t.followed { ", followed" } else { "" };
            let exit = t
                .exit
                .as_deref()
                .map(|e| format!(", {e}"))
                .unwrap_or_default();
            let rt = t
                .runtime
                .as_deref()
                .map(|r| format!(", {r} program"))
                .unwrap_or_default();
            format!("pid {} ({cmd}{follow}{exit}{rt})", t.pid)
        })
        .collect();
    if followed > 3 {
        targets.push(format!("{followed} followed processes"));
    }
    let _ = writeln!(
        o,
        "tracer contention: {}, traced {:.2} s",
        targets.join(", "),
        r.duration_s
    );
    let _ = writeln!(
        o,
        "  kernel {} · started {} · load+attach {:.0} ms · mode {}",
        r.kernel, r.start_time, r.load_attach_ms, r.mode
    );
    let attached: Vec<&str> = r
        .hooks
        .iter()
        .filter(|h| h.attached)
        .map(|h| h.name.as_str())
        .collect();
    let _ = writeln!(o, "  hooks: {}", attached.join(", "));
    let _ = writeln!(
        o,
        "  thresholds: consider at {}/s, recommend over {}/s (contentions per second of traced time)",
        human_rate(r.thresholds.consider_at),
        human_rate(r.thresholds.recommend_at)
    );
    let _ = writeln!(o);
}

const LOCK_HEADER: [&str; 12] = [
    "LOCK", "CONT", "CONT/S", "SLEPT", "EAGAIN", "TOTAL", "AVG", "P50", "P95", "P99", "MAX", "THR",
];

fn lock_header(o: &mut String) {
    let h = LOCK_HEADER;
    let _ = writeln!(
        o,
        "  {:<28} {:>9} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>4}  DECISION",
        h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11]
    );
}

/// One table row: counts, wait percentiles, waiters, decision.
#[expect(
    clippy::too_many_arguments,
    reason = "one row of one table; plain values"
)]
fn lock_row(
    o: &mut String,
    label: &str,
    contentions: u64,
    rate: f64,
    outcomes: &super::model::Outcomes,
    w: &super::model::Durations,
    threads: usize,
    decision: Decision,
) {
    let _ = writeln!(
        o,
        "  {:<28} {:>9} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>4}  {}",
        clip(label, 28),
        human_count(contentions),
        human_rate(rate),
        human_count(outcomes.slept),
        human_count(outcomes.eagain),
        human_ns(w.total_ns),
        human_ns(w.avg_ns),
        human_ns(w.p50_ns),
        human_ns(w.p95_ns),
        human_ns(w.p99_ns),
        human_ns(w.max_ns),
        threads,
        decision_cell(decision),
    );
}

/// LOCK CLASSES, LOCKS (by decision, then rate), and the waits that are
/// not locks: one line, or a table with `all_waits`.
fn locks(o: &mut String, r: &Report, opts: Options) {
    let rows = r.lock_rows();
    let (locks, waits): (Vec<&Lock>, Vec<&Lock>) = rows
        .iter()
        .partition(|l| l.decision != Decision::NotLockContention);
    if !r.lock_classes.is_empty() {
        let shown = r.lock_classes.len().min(opts.top);
        let _ = writeln!(
            o,
            "LOCK CLASSES: many locks of one type at one call site, decided on their sum ({shown} of {})",
            r.lock_classes.len()
        );
        lock_header(o);
        for c in r.lock_classes.iter().take(opts.top) {
            lock_row(
                o,
                &c.label,
                c.contentions,
                c.contentions_per_s,
                &c.outcomes,
                &c.wait,
                c.threads,
                c.decision,
            );
            let _ = writeln!(
                o,
                "      {} {} locks in pid {} · the busiest, {}, at {}/s",
                esc(&c.kind),
                c.locks,
                c.pid,
                clip(&c.busiest, 60),
                human_rate(c.busiest_per_s)
            );
        }
        let _ = writeln!(o);
    }
    let order = if r.logical_locks.is_empty() {
        "by total wait"
    } else {
        "by decision, then rate"
    };
    // Locks of one program in several processes: one row per group, at
    // its busiest member's place.
    let groups: Vec<&super::model::LockGroup> = if opts.per_process {
        Vec::new()
    } else {
        r.lock_groups.iter().collect()
    };
    let group_of = |label: &str| groups.iter().find(|g| g.members.iter().any(|m| m == label));
    let locks: Vec<&Lock> = locks
        .into_iter()
        .filter(|l| group_of(&l.label).is_none_or(|g| g.busiest == l.label))
        .collect();
    let shown = locks.len().min(opts.top);
    let _ = writeln!(o, "LOCKS {order} ({shown} of {})", locks.len());
    if locks.is_empty() {
        let _ = writeln!(o, "  (no lock waits seen)");
    } else {
        lock_header(o);
    }
    for l in locks.iter().take(opts.top) {
        match group_of(&l.label) {
            Some(g) => group_detail(o, g, l),
            None => lock_detail(o, l),
        }
    }
    let _ = writeln!(o);
    if waits.is_empty() {
        return;
    }
    if opts.all_waits {
        let _ = writeln!(
            o,
            "WAITS that are not locks: condition variables, joins, parks, runtime sleeps ({})",
            waits.len()
        );
        lock_header(o);
        for l in &waits {
            lock_detail(o, l);
        }
    } else {
        let n: u64 = waits.iter().map(|l| l.contentions).sum();
        let ns = waits
            .iter()
            .fold(0u64, |a, l| a.saturating_add(l.wait.total_ns));
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for l in &waits {
            *kinds.entry(l.kind.as_str()).or_default() += 1;
        }
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = writeln!(
            o,
            "NOT LOCKS  {} waits, {} waited, on {} ({}): not a lock, so not contention (--all-waits lists them)",
            human_count(n),
            human_ns(ns),
            if waits.len() == 1 {
                "one word".to_string()
            } else {
                format!("{} words or sites", waits.len())
            },
            kinds.join(", ")
        );
    }
    let _ = writeln!(o);
}

/// A lock's row and the lines under it.
fn lock_detail(o: &mut String, l: &Lock) {
    lock_row(
        o,
        &l.label,
        l.contentions,
        l.contentions_per_s,
        &l.outcomes,
        &l.wait,
        l.threads.iter().filter(|t| t.contentions > 0).count(),
        l.decision,
    );
    lock_lines(o, l);
}

/// A group's row (one lock of one program in several processes), what it
/// is, and its busiest member's lines.
fn group_detail(o: &mut String, g: &super::model::LockGroup, busiest: &Lock) {
    lock_row(
        o,
        &g.label,
        g.contentions,
        g.contentions_per_s,
        &g.outcomes,
        &g.wait,
        g.threads,
        g.decision,
    );
    let each: Vec<String> = g.pids.iter().take(6).map(|p| p.to_string()).collect();
    let more = g.pids.len().saturating_sub(6);
    let _ = writeln!(
        o,
        "      one lock per process of {} (pids {}{}): decided on the busiest, pid {} at {}/s, not on the sum (--per-process lists each)",
        esc(g.program_name()),
        each.join(", "),
        if more > 0 {
            format!(", +{more} more")
        } else {
            String::new()
        },
        g.busiest_pid,
        human_rate(g.busiest_per_s)
    );
    lock_lines(o, busiest);
}

/// The lines under a lock's row.
fn lock_lines(o: &mut String, l: &Lock) {
    lock_identity(o, l);
    if let Some(w) = &l.shared {
        shared_parts(o, w);
    }
    if let Some(s) = &l.sched {
        lock_sleeps(o, l, s);
    }
    waiters_and_wakers(o, l);
    lock_sites(o, l);
}

/// What the lock is and where: kind (and what decided it), address,
/// process(es), wakes and unusual outcomes.
fn lock_identity(o: &mut String, l: &Lock) {
    let other = l.outcomes.timed_out + l.outcomes.interrupted + l.outcomes.error;
    let other = if other > 0 {
        format!(
            " · timed out {}, interrupted {}, errors {}",
            l.outcomes.timed_out, l.outcomes.interrupted, l.outcomes.error
        )
    } else {
        String::new()
    };
    // "mutex (glibc, from __lll_lock_wait)": what decided the kind.
    let mut why: Vec<String> = Vec::new();
    if !l.implementation.is_empty() && l.implementation != "generic" {
        why.push(esc(&l.implementation).into_owned());
    }
    if let Some(f) = l.kind_frame.as_deref().filter(|_| l.kind != "unknown") {
        why.push(format!("from {}", esc(f)));
    }
    let kind = if why.is_empty() {
        l.kind.clone()
    } else {
        format!("{} ({})", l.kind, why.join(", "))
    };
    let at = if l.address.is_empty() {
        format!(
            "parked on {} wait channel(s)",
            human_count(l.channels.len() as u64)
        )
    } else {
        format!("at {}", l.address)
    };
    let class =
        l.of.as_deref()
            .filter(|_| !l.channels.is_empty())
            .map(|c| format!(" · one of {}", clip(c, 60)))
            .unwrap_or_default();
    let pid = match &l.shared {
        Some(w) => format!(
            "shared by {} processes ({} inode {} offset {:#x}, as the kernel keys it)",
            w.processes.len(),
            esc(w.object.trim_end_matches(" (deleted)")),
            w.inode,
            w.offset
        ),
        None => {
            // A lock in shared memory whose waiters park on words of their
            // own: its waiters and wakers are in several processes.
            let pids: std::collections::BTreeSet<u32> = l
                .threads
                .iter()
                .map(|t| t.pid)
                .filter(|&p| p != 0)
                .collect();
            if pids.len() > 1 {
                format!("in {} processes", pids.len())
            } else {
                format!("in pid {}", l.pid)
            }
        }
    };
    let _ = writeln!(
        o,
        "      {kind} {at} {pid} · wakes: {} calls woke {}{other}{class}",
        human_count(l.wakes.calls),
        human_count(l.wakes.woken)
    );
}

/// A shared lock's part in each process.
fn shared_parts(o: &mut String, w: &super::model::SharedWord) {
    let parts: Vec<String> = w
        .processes
        .iter()
        .take(6)
        .map(|p| {
            format!(
                "pid {} {} waits, woke {}",
                p.pid,
                human_count(p.contentions),
                human_count(p.woken)
            )
        })
        .collect();
    let more = w.processes.len().saturating_sub(6);
    let more = if more > 0 {
        format!(" · {more} more")
    } else {
        String::new()
    };
    let _ = writeln!(o, "      per process: {}{more}", parts.join(" · "));
}

/// The scheduler's view of the lock's sleeps.
fn lock_sleeps(o: &mut String, l: &Lock, s: &super::model::LockSleeps) {
    let note = if crate::analyze::decide::cpu_bound_note(l).is_some() {
        " → woken waiters wait for a CPU, not the lock"
    } else {
        ""
    };
    let _ = writeln!(
        o,
        "      futex sleeps: {} · blocked {} · runnable after wakeup {} ({:.0}%; wake→run p50 {}, p99 {}){note}",
        human_count(s.sleeps),
        human_ns(s.blocked_ns),
        human_ns(s.runnable_ns),
        100.0 * s.runnable_share,
        human_ns(s.wakeup_latency.p50_ns),
        human_ns(s.wakeup_latency.p99_ns),
    );
}

/// Who waited longest, and who released the waiters (wake calls that
/// woke someone).
fn waiters_and_wakers(o: &mut String, l: &Lock) {
    let waiters: Vec<String> = l
        .threads
        .iter()
        .filter(|t| t.contentions > 0)
        .take(4)
        .map(|t| {
            format!(
                "{}/{} {}",
                if t.name.is_empty() {
                    "?".into()
                } else {
                    esc(&t.name)
                },
                t.tid,
                human_ns(t.wait_ns)
            )
        })
        .collect();
    let more = l
        .threads
        .iter()
        .filter(|t| t.contentions > 0)
        .count()
        .saturating_sub(4);
    let more = if more > 0 {
        format!(", +{more} more")
    } else {
        String::new()
    };
    let _ = writeln!(o, "      waiters: {}{more}", waiters.join(", "));
    let mut wakers: Vec<_> = l.threads.iter().filter(|t| t.woken > 0).collect();
    wakers.sort_by(|a, b| b.woken.cmp(&a.woken).then(a.tid.cmp(&b.tid)));
    if !wakers.is_empty() {
        let list: Vec<String> = wakers
            .iter()
            .take(4)
            .map(|t| {
                let name = if t.name.is_empty() {
                    "?".into()
                } else {
                    esc(&t.name)
                };
                format!("{name}/{} woke {}", t.tid, human_count(t.woken))
            })
            .collect();
        let more = wakers.len().saturating_sub(4);
        let more = if more > 0 {
            format!(", +{more} more")
        } else {
            String::new()
        };
        let _ = writeln!(o, "      wakers: {}{more}", list.join(", "));
    }
}

/// The top waker site and the top call site (the unwound one when there
/// is one).
fn lock_sites(o: &mut String, l: &Lock) {
    if let Some(site) = l.waker_sites.first() {
        let _ = writeln!(
            o,
            "      top waker site ({} wakes, {}): {}",
            human_count(site.wakes),
            site.unwind,
            clip(&stack_path(&site.frames), 100)
        );
    }
    let unwound_total: u64 = l
        .unwound_sites
        .iter()
        .fold(0u64, |a, s| a.saturating_add(s.count));
    if let Some(site) = l.unwound_sites.first() {
        let share = 100.0 * site.count as f64 / unwound_total.max(1) as f64;
        let _ = writeln!(
            o,
            "      call site: {} ({share:.0}% of waits, eh_frame, {} samples)",
            esc(site.call_site.as_deref().unwrap_or("?")),
            l.unwound_sites
                .iter()
                .fold(0u64, |a, s| a.saturating_add(s.samples)),
        );
        let _ = writeln!(o, "        stack: {}", clip(&stack_path(&site.frames), 110));
    } else if let Some(site) = l.sites.first() {
        let share = 100.0 * site.count as f64 / l.contentions.max(1) as f64;
        let _ = writeln!(
            o,
            "      top call site ({share:.0}% of waits, {}): {}",
            site.unwind,
            clip(&stack_path(&site.frames), 110)
        );
    }
}

fn threads(o: &mut String, r: &Report, top: usize) {
    let shown = r.threads.len().min(top);
    let _ = writeln!(
        o,
        "THREADS by time waiting on futexes ({shown} of {})",
        r.threads.len()
    );
    if !r.threads.is_empty() {
        let _ = writeln!(
            o,
            "  {:>8} {:<16} {:>9} {:>9} {:>8} {:>8} {:>7}  TOP LOCK",
            "TID", "NAME", "WAITS", "WAITING", "%TRACED", "MAX", "WAKES"
        );
    }
    for t in r.threads.iter().take(top) {
        let _ = writeln!(
            o,
            "  {:>8} {:<16} {:>9} {:>9} {:>7.1}% {:>8} {:>7}  {}",
            t.tid,
            clip(&t.name, 16),
            human_count(t.contentions),
            human_ns(t.wait_ns),
            100.0 * t.wait_share,
            human_ns(t.max_wait_ns),
            human_count(t.wake_calls),
            esc(t.top_lock.as_deref().unwrap_or("-")),
        );
    }
    let _ = writeln!(o);
}

fn sched(o: &mut String, r: &Report, top: usize) {
    let sched: Vec<_> = r
        .threads
        .iter()
        .filter_map(|t| t.sched.as_ref().map(|s| (t, s)))
        .collect();
    if !sched.is_empty() {
        let mut sched = sched;
        sched.sort_by(|a, b| {
            (b.1.sleep_ns.saturating_add(b.1.runnable_ns))
                .cmp(&(a.1.sleep_ns.saturating_add(a.1.runnable_ns)))
                .then(a.0.tid.cmp(&b.0.tid))
        });
        let shown = sched.len().min(top);
        let _ = writeln!(
            o,
            "WHERE THE TIME GOES by thread, from the scheduler ({shown} of {})",
            sched.len()
        );
        let _ = writeln!(
            o,
            "  {:>8} {:<16} {:>9} {:>11} {:>11} {:>9} {:>11} {:>9} {:>7} {:>7}  OTHER SLEEP IN",
            "TID",
            "NAME",
            "ON-CPU",
            "FUTEX-SLEEP",
            "OTHER-SLEEP",
            "RUNNABLE",
            "WAKE→RUN",
            "W→R P99",
            "VOL",
            "INVOL"
        );
        for (t, s) in sched.iter().take(top) {
            let _ = writeln!(
                o,
                "  {:>8} {:<16} {:>9} {:>11} {:>11} {:>9} {:>11} {:>9} {:>7} {:>7}  {}",
                t.tid,
                clip(&t.name, 16),
                human_ns(s.oncpu_ns),
                human_ns(s.futex_sleep_ns),
                human_ns(s.sleep_ns - s.futex_sleep_ns.min(s.sleep_ns)),
                human_ns(s.runnable_ns),
                human_ns(s.wakeup_latency_ns),
                human_ns(s.wakeup_latency.p99_ns),
                human_count(s.voluntary_switches),
                human_count(s.involuntary_switches),
                s.other_sleep
                    .iter()
                    .take(2)
                    .map(|x| format!("{} {}", esc(&x.syscall), human_ns(x.sleep_ns)))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        let _ = writeln!(o);
    }
}

/// "pid 12" for one process; "3: pid 12 71%, pid 14 20%, …" for several
/// (share of the lock's wait time).
pub fn kernel_lock_processes(k: &super::model::KernelLock) -> String {
    match k.processes.as_slice() {
        [] => format!("pid {}", k.pid),
        [one] => format!("pid {}", one.pid),
        many => {
            let parts: Vec<String> = many
                .iter()
                .take(3)
                .map(|p| {
                    format!(
                        "pid {} {:.0}%",
                        p.pid,
                        100.0 * p.total_ns as f64 / k.total_ns.max(1) as f64
                    )
                })
                .collect();
            let more = if many.len() > 3 { ", …" } else { "" };
            format!("{}: {}{more}", many.len(), parts.join(", "))
        }
    }
}

fn kernel_locks(o: &mut String, r: &Report, top: usize) {
    if !r.kernel_locks.is_empty() {
        let shown = r.kernel_locks.len().min(top);
        let _ = writeln!(
            o,
            "KERNEL LOCKS contended by the traced threads ({shown} of {})",
            r.kernel_locks.len()
        );
        let _ = writeln!(
            o,
            "  {:<36} {:<11} {:>9} {:>9} {:>9} {:>9}  PROCESSES",
            "LOCK", "KIND", "CONT", "TOTAL", "AVG", "MAX"
        );
        for k in r.kernel_locks.iter().take(top) {
            let name = k.symbol.clone().unwrap_or_else(|| k.address.clone());
            let _ = writeln!(
                o,
                "  {:<36} {:<11} {:>9} {:>9} {:>9} {:>9}  {}",
                clip(&name, 36),
                k.kind,
                human_count(k.contentions),
                human_ns(k.total_ns),
                human_ns(k.avg_ns),
                human_ns(k.max_ns),
                kernel_lock_processes(k)
            );
        }
        let _ = writeln!(o);
    }
}

fn tail(o: &mut String, r: &Report) {
    let events: Vec<String> = r
        .events
        .iter()
        .map(|(k, v)| format!("{} {k}", human_count(*v)))
        .collect();
    let _ = writeln!(o, "EVENTS   {}", events.join(", "));
    let drops: Vec<String> = r.drops.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(o, "DROPS    {}", drops.join(" · "));
    if !r.maps.is_empty() {
        let maps: Vec<String> = r
            .maps
            .iter()
            .filter(|m| m.capacity > 0)
            .map(|m| {
                format!(
                    "{} {}/{}",
                    m.name,
                    human_count(m.entries),
                    human_count(u64::from(m.capacity))
                )
            })
            .collect();
        let _ = writeln!(
            o,
            "MAPS     {} (entries at the end / capacity)",
            maps.join(" · ")
        );
    }
    for note in &r.limitations {
        let _ = writeln!(o, "NOTE     {}", esc(note));
    }
}

/// FUNCTIONS: probed functions' rates and latency, allocation sizes and
/// callers, and what the probes cost.
/// Go locks at goroutine level (slow-path entry probes).
fn go_locks(o: &mut String, r: &Report, top: usize) {
    let shown = r.go_locks.len().min(top);
    let _ = writeln!(
        o,
        "GO LOCKS goroutine level, by decision, then rate ({shown} of {}): contended acquisitions from slow-path entry probes; wait time not measured",
        r.go_locks.len()
    );
    let _ = writeln!(
        o,
        "  {:<52} {:>10} {:>9} {:>9}  DECISION",
        "LOCK", "CONT", "CONT/S", "SEMA"
    );
    for g in r.go_locks.iter().take(top) {
        let _ = writeln!(
            o,
            "  {:<52} {:>10} {:>9} {:>9}  {}",
            clip(&g.label, 52),
            human_count(g.contentions),
            human_rate(g.contentions_per_s),
            human_count(g.semaphore),
            decision_cell(g.decision)
        );
        let _ = writeln!(o, "        stack: {}", stack_path(&g.frames));
    }
    let _ = writeln!(o);
}

fn functions(o: &mut String, r: &Report, top: usize) {
    let shown = r.functions.len().min(top);
    let _ = writeln!(
        o,
        "FUNCTIONS probed, by total time ({shown} of {})",
        r.functions.len()
    );
    let _ = writeln!(
        o,
        "  {:<34} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "FUNCTION", "CALLS", "CALLS/S", "TOTAL", "P50", "P95", "P99", "MAX"
    );
    for f in r.functions.iter().take(top) {
        let l = &f.latency;
        let _ = writeln!(
            o,
            "  {:<34} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            clip(&f.name, 34),
            human_count(f.calls),
            human_rate(f.calls_per_s),
            human_ns(l.total_ns),
            human_ns(l.p50_ns),
            human_ns(l.p95_ns),
            human_ns(l.p99_ns),
            human_ns(l.max_ns)
        );
        if let Some(d) = &f.detached_early {
            let _ = writeln!(
                o,
                "      DETACHED after {:.2} s: {} calls/s while probed, its probes alone cost {:.0}% of the targets' CPU (over the {}% budget); counts are from then, at least {} over the run at that rate (the probes slowed it)",
                d.after_s,
                human_rate(d.calls_per_s),
                100.0 * d.share,
                crate::analyze::decide::budget_str(
                    r.probe_cost
                        .as_ref()
                        .and_then(|c| c.budget_pct)
                        .unwrap_or(0.0)
                ),
                human_count(f.calls_estimated)
            );
        }
        if let Some(bytes) = f.bytes
            && f.calls > 0
        {
            let p50 = crate::analyze::hist::percentile(&f.size_histogram, 50.0, u64::MAX);
            let p99 = crate::analyze::hist::percentile(&f.size_histogram, 99.0, u64::MAX);
            let _ = writeln!(
                o,
                "      sizes: {} bytes requested, avg {}, p50 {} B, p99 {} B",
                human_count(bytes),
                human_count(bytes / f.calls.max(1)),
                human_count(p50),
                human_count(p99)
            );
        }
        let callers: Vec<String> = f
            .sites
            .iter()
            .take(3)
            .map(|s| {
                format!(
                    "{} {}",
                    esc(s.caller.as_deref().unwrap_or(&s.return_addr)),
                    human_count(s.calls)
                )
            })
            .collect();
        if !callers.is_empty() {
            let _ = writeln!(o, "      callers: {}", clip(&callers.join(", "), 110));
        }
    }
    if let Some(c) = &r.probe_cost {
        // Every function detached early: its own line says what its counts
        // are; there was no duty cycle to scale by.
        let all_detached =
            !r.functions.is_empty() && r.functions.iter().all(|f| f.detached_early.is_some());
        let duty = if c.attached_fraction < 0.999 && !all_detached {
            format!(
                " · attached {:.0}% of the run ({} windows, budget {}%): counts ×{:.2} estimate the whole run",
                100.0 * c.attached_fraction,
                c.windows,
                crate::analyze::decide::budget_str(c.budget_pct.unwrap_or(100.0)),
                1.0 / c.attached_fraction.max(1e-9)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "  PROBE COST ≈{} per call (calibrated) × {} calls ≈ {} = {:.1}% of the targets' CPU time{duty}{}",
            human_ns(c.per_call_ns as u64),
            human_count(c.calls),
            human_ns(c.estimated_overhead_ns),
            100.0 * c.estimated_share,
            match crate::analyze::decide::probe_cost_warning(c) {
                Some(w) if c.over_budget => format!(
                    " · {w} (measuring takes a window attached, and each probe's detach ≈110 ms while the others still fire: the run was too short for that, or the probes cost more than calibrated)"
                ),
                Some(w) => format!(" · {w}"),
                None => String::new(),
            }
        );
    }
    let _ = writeln!(o);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_ns(812), "812ns");
        assert_eq!(human_ns(68_200), "68.2µs");
        assert_eq!(human_ns(4_210_000), "4.21ms");
        assert_eq!(human_ns(1_050_000_000), "1.05s");
        assert_eq!(human_count(61725), "61,725");
        assert_eq!(human_count(999), "999");
        assert_eq!(human_count(1_000_000), "1,000,000");
        assert_eq!(human_rate(0.2), "0.20");
        assert_eq!(human_rate(12345.4), "12,345");
    }

    #[test]
    fn drops_line_is_always_there() {
        let r = Report {
            drops: [("missing_start".to_string(), 0)].into_iter().collect(),
            ..Default::default()
        };
        let text = render(
            &r,
            Options {
                top: 10,
                all_waits: true,
                per_process: false,
            },
        );
        assert!(text.contains("DROPS    missing_start 0"), "{text}");
        assert!(text.contains("(no lock waits seen)"), "{text}");
    }
}

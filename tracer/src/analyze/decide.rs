//! The decision rule of the users' validation plan: under 100 contentions/s
//! a lock-free redesign is not needed, 100–1000/s consider it, over 1000/s
//! it is recommended. Thresholds come from flags.

use std::collections::BTreeMap;

use crate::report::model::{
    Decision, GoLock, Incomplete, Lock, LockClass, ProbeCost, Thresholds, Verdict,
};
use crate::report::units::{human_count, human_ns, human_rate};

pub fn decide(rate: f64, t: &Thresholds) -> Decision {
    if rate > t.recommend_at {
        Decision::Recommended
    } else if rate >= t.consider_at {
        Decision::Consider
    } else {
        Decision::NotNeeded
    }
}

/// The overall verdict names the lock — or the class of locks — that
/// matters most: the highest decision, and within it the highest
/// contention rate; a class counts when its summed rate decides more than
/// any of its locks does, and then ranks with the locks the same way. Condition-variable and other event waits are not
/// lock contention and never count.
pub fn verdict(locks: &[Lock], classes: &[LockClass], t: &Thresholds) -> Verdict {
    let events = locks
        .iter()
        .filter(|l| l.decision == Decision::NotLockContention)
        .count();
    let locks: Vec<&Lock> = locks
        .iter()
        .filter(|l| l.decision != Decision::NotLockContention)
        .collect();
    let total_wait: u64 = locks
        .iter()
        .fold(0u64, |a, l| a.saturating_add(l.wait.total_ns));
    let top = locks.iter().copied().max_by(|a, b| {
        (a.decision, a.contentions_per_s)
            .partial_cmp(&(b.decision, b.contentions_per_s))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    // A class counts when its sum decides more than its busiest lock; then
    // it ranks with the locks by decision and rate.
    let class = classes
        .iter()
        .filter(|c| c.decision > decide(c.busiest_per_s, t))
        .max_by(|a, b| {
            (a.decision, a.contentions_per_s)
                .partial_cmp(&(b.decision, b.contentions_per_s))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    let share = |wait: u64| {
        if total_wait > 0 {
            100.0 * wait as f64 / total_wait as f64
        } else {
            0.0
        }
    };
    if let Some(c) = class
        && top.is_none_or(|l| (c.decision, c.contentions_per_s) > (l.decision, l.contentions_per_s))
    {
        return class_verdict(c, share(c.wait.total_ns), t);
    }
    let Some(top) = top else {
        let text = if events > 0 {
            format!(
                "no lock contention seen ({events} wait(s) were condition-variable or other event waits, which are not lock contention): lock-free not needed"
            )
        } else {
            "no futex contention seen: lock-free not needed".to_string()
        };
        return Verdict {
            decision: Decision::NotNeeded,
            lock: None,
            text,
            incomplete: None,
            level: "lock".into(),
        };
    };
    let share = share(top.wait.total_ns);
    let rate = human_rate(top.contentions_per_s);
    let text = match top.decision {
        Decision::Recommended => format!(
            "lock-free redesign RECOMMENDED for {}: {rate} contentions/s (over {}/s), {share:.0}% of all lock wait time, p99 wait {}",
            top.label,
            human_rate(t.recommend_at),
            human_ns(top.wait.p99_ns)
        ),
        Decision::Consider => format!(
            "CONSIDER a lock-free redesign for {}: {rate} contentions/s (between {}/s and {}/s), {share:.0}% of all lock wait time",
            top.label,
            human_rate(t.consider_at),
            human_rate(t.recommend_at)
        ),
        Decision::NotNeeded | Decision::NotLockContention => format!(
            "lock-free NOT needed: the busiest lock, {}, sees {rate} contentions/s (under {}/s)",
            top.label,
            human_rate(t.consider_at)
        ),
    };
    let notes: Vec<String> = kind_note(&top.kind)
        .map(String::from)
        .into_iter()
        .chain(cpu_bound_note(top))
        .collect();
    let text = if notes.is_empty() {
        text
    } else {
        format!("{text}; {}", notes.join("; "))
    };
    Verdict {
        decision: top.decision,
        lock: Some(top.label.clone()),
        text,
        incomplete: None,
        level: "lock".into(),
    }
}

/// A Go lock (goroutine level) is named instead of the verdict's lock or
/// class when it decides more, or as much at a higher rate.
pub fn consider_go(
    v: &mut Verdict,
    go: &[GoLock],
    locks: &[Lock],
    classes: &[LockClass],
    t: &Thresholds,
) {
    let Some(g) = go.first() else { return };
    let current = v.lock.as_ref().and_then(|label| {
        locks
            .iter()
            .find(|l| &l.label == label)
            .map(|l| l.contentions_per_s)
            .or_else(|| {
                classes
                    .iter()
                    .find(|c| &c.label == label)
                    .map(|c| c.contentions_per_s)
            })
    });
    if current.is_some_and(|rate| (g.decision, g.contentions_per_s) <= (v.decision, rate)) {
        return;
    }
    let rate = human_rate(g.contentions_per_s);
    let sema = if g.contentions > 0 {
        100.0 * g.semaphore as f64 / g.contentions as f64
    } else {
        0.0
    };
    let text = match g.decision {
        Decision::Recommended => format!(
            "lock-free redesign RECOMMENDED for {}: {rate} contended acquisitions/s (over {}/s; {sema:.0}% of them went on to the runtime's semaphore; goroutine level, wait time not measured)",
            g.label,
            human_rate(t.recommend_at)
        ),
        Decision::Consider => format!(
            "CONSIDER a lock-free redesign for {}: {rate} contended acquisitions/s (between {}/s and {}/s; goroutine level, wait time not measured)",
            g.label,
            human_rate(t.consider_at),
            human_rate(t.recommend_at)
        ),
        _ => format!(
            "lock-free NOT needed: the busiest Go lock, {}, sees {rate} contended acquisitions/s (under {}/s)",
            g.label,
            human_rate(t.consider_at)
        ),
    };
    *v = Verdict {
        decision: g.decision,
        lock: Some(g.label.clone()),
        text,
        incomplete: None,
        level: "go".into(),
    };
}

/// The verdict for a class: many locks of one type at one call site whose
/// waits add up to more than any of them alone.
fn class_verdict(c: &LockClass, share: f64, t: &Thresholds) -> Verdict {
    let rate = human_rate(c.contentions_per_s);
    let busiest = format!(
        "the busiest, {}, alone at {}/s",
        c.busiest,
        human_rate(c.busiest_per_s)
    );
    let text = match c.decision {
        Decision::Recommended => format!(
            "lock-free redesign RECOMMENDED for the lock class {}: {rate} contentions/s in all (over {}/s; {busiest}), {share:.0}% of all lock wait time, p99 wait {}",
            c.label,
            human_rate(t.recommend_at),
            human_ns(c.wait.p99_ns)
        ),
        _ => format!(
            "CONSIDER a lock-free redesign for the lock class {}: {rate} contentions/s in all (between {}/s and {}/s; {busiest}), {share:.0}% of all lock wait time",
            c.label,
            human_rate(t.consider_at),
            human_rate(t.recommend_at)
        ),
    };
    Verdict {
        decision: c.decision,
        lock: Some(c.label.clone()),
        text,
        incomplete: None,
        level: "class".into(),
    }
}

/// What the verdict must say of a kind whose waits are not all lock waits.
fn kind_note(kind: &str) -> Option<&'static str> {
    (kind == "juc-park").then_some(
        "a java.util.concurrent park is a lock acquire or a Condition or queue wait, which native frames cannot tell apart: Java frames would (a perf map, -XX:+PreserveFramePointer)",
    )
}

/// Whether the run lost data that can hide a lock or change a decision,
/// from its drop counters: waits not counted (a full lock map, start-slot
/// collisions, unreadable futex_waitv arrays, and in sched mode a full
/// thread map), processes not followed, call-site samples lost (a lock's
/// kind decides whether it counts). `max_locks` is the lock map's size,
/// when known, for the advice.
pub fn assess(
    drops: &BTreeMap<String, u64>,
    mode: crate::report::model::Mode,
    max_locks: Option<u32>,
) -> Option<Incomplete> {
    let d = |name: &str| drops.get(name).copied().unwrap_or(0);
    let mut inc = Incomplete::default();
    let full = d("lock_map_full");
    if full > 0 {
        let advice = match max_locks {
            Some(m) if m >= tracer_common::limits::MAX_LOCKS_LIMIT => format!(
                "the lock map was full ({} (lock, thread) entries, the largest --max-locks): trace fewer processes or a shorter run",
                human_count(u64::from(m))
            ),
            Some(m) => format!(
                "the lock map was full ({} (lock, thread) entries): rerun with --max-locks {}",
                human_count(u64::from(m)),
                m.saturating_mul(4)
                    .min(tracer_common::limits::MAX_LOCKS_LIMIT)
            ),
            None => "the lock map was full: rerun with a larger --max-locks".to_string(),
        };
        inc.causes.push(format!(
            "{} waits were not counted because {advice}",
            human_count(full)
        ));
        inc.lost_waits += full;
    }
    let collisions = d("start_collision");
    if collisions > 0 {
        inc.causes.push(format!(
            "{} futex calls were lost to threads whose ids collide modulo {} (pid_max is above it)",
            human_count(collisions),
            human_count(u64::from(tracer_common::limits::START_SLOTS))
        ));
        inc.lost_waits += collisions;
    }
    let waitv = d("waitv_read_error");
    if waitv > 0 {
        inc.causes.push(format!(
            "{} futex_waitv waits could not be tied to a futex word",
            human_count(waitv)
        ));
        inc.lost_waits += waitv;
    }
    let sched = d("sched_map_full");
    if mode == crate::report::model::Mode::Sched && sched > 0 {
        inc.causes.push(format!(
            "{} scheduler events were lost because the thread map was full, and with them sleeping waits (sched mode)",
            human_count(sched)
        ));
        inc.lost_waits += sched;
    }
    let procs = d("targets_map_full");
    if procs > 0 {
        inc.causes.push(format!(
            "{} forked processes were not followed: the target set was full ({} live processes)",
            human_count(procs),
            human_count(u64::from(tracer_common::limits::TARGETS))
        ));
        inc.lost_processes += procs;
    }
    let unread = d("map_read_errors");
    if unread > 0 {
        inc.causes.push(format!(
            "{} kernel map entries could not be read at the end",
            human_count(unread)
        ));
    }
    if d("ring_reader_failed") > 0 {
        inc.causes.push(
            "the event ring's reader failed, so unwound call sites and the entries of threads that exited are missing"
                .to_string(),
        );
    }
    let samples = d("unwind_ring_full");
    if samples > 0 {
        inc.causes.push(format!(
            "{} call-site samples were lost because the event ring was full, so lock kinds and call sites may be missing: rerun with a lower --unwind-rate",
            human_count(samples)
        ));
        inc.lost_samples += samples;
    }
    (!inc.causes.is_empty()).then_some(inc)
}

/// The verdict of a run that lost data: it says so first, then what was
/// seen.
pub fn mark_incomplete(v: &mut Verdict, inc: Incomplete) {
    v.text = format!(
        "INCOMPLETE: {}. What was seen: {}",
        inc.causes.join("; "),
        v.text
    );
    v.incomplete = Some(inc);
}

/// A budget as the user wrote it: `5.0`, `0.01`.
pub fn budget_str(b: f64) -> String {
    if b >= 0.1 {
        format!("{b:.1}")
    } else {
        format!("{b}")
    }
}

/// Above this estimated share of the targets' CPU, probes run without a
/// budget get a warning (they slowed what they measured).
const UNBUDGETED_WARN: f64 = 0.10;

/// What the report says when the function probes cost more than allowed:
/// over --probe-budget (the budget did not hold), or over 10% with no
/// budget. Shown on the PROBE COST line and in the verdict.
pub fn probe_cost_warning(c: &ProbeCost) -> Option<String> {
    let share = 100.0 * c.estimated_share;
    match c.budget_pct {
        Some(b) if c.over_budget => Some(format!(
            "OVER BUDGET: the probes cost ≈{share:.1}% of the targets' CPU, over the {}% budget, so the target ran slower while probed",
            budget_str(b)
        )),
        None if c.estimated_share > UNBUDGETED_WARN => Some(format!(
            "the probes cost ≈{share:.0}% of the targets' CPU and slowed the target while probed: --probe-budget 5% bounds it"
        )),
        _ => None,
    }
}

/// Sleeps needed before the run-queue share of a lock's waits is trusted.
const MIN_SLEEPS: u64 = 10;

/// When a lock's sleeping waiters spend most of their wait runnable (woken,
/// but no CPU free), the lock is not what slows them: say so.
pub fn cpu_bound_note(lock: &Lock) -> Option<String> {
    let s = lock.sched.as_ref()?;
    (s.sleeps >= MIN_SLEEPS && s.runnable_share > 0.5).then(|| {
        let of_wait = 100.0 * s.runnable_ns as f64 / lock.wait.total_ns.max(1) as f64;
        format!(
            "but its woken waiters spent {} runnable, waiting for a CPU ({:.0}% of their sleeps, {:.0}% of the lock's wait time): a CPU problem more than a lock problem",
            human_ns(s.runnable_ns),
            100.0 * s.runnable_share,
            of_wait.min(100.0)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runnable_waiters_make_it_a_cpu_problem() {
        use crate::report::model::LockSleeps;
        let t = Thresholds::default();
        let mut lock = Lock {
            label: "seq_mu".into(),
            contentions_per_s: 5000.0,
            decision: decide(5000.0, &t),
            ..Default::default()
        };
        let sleeps = |n, blocked, runnable| LockSleeps {
            sleeps: n,
            blocked_ns: blocked,
            runnable_ns: runnable,
            runnable_share: runnable as f64 / (blocked + runnable) as f64,
            ..Default::default()
        };
        lock.sched = Some(sleeps(100, 1_000, 9_000));
        assert!(
            verdict(std::slice::from_ref(&lock), &[], &t)
                .text
                .contains("a CPU problem")
        );
        lock.sched = Some(sleeps(100, 9_000, 1_000));
        assert!(
            !verdict(std::slice::from_ref(&lock), &[], &t)
                .text
                .contains("CPU problem")
        );
        // Too few sleeps to judge.
        lock.sched = Some(sleeps(3, 1_000, 9_000));
        assert!(cpu_bound_note(&lock).is_none());
    }

    #[test]
    fn lost_waits_make_the_verdict_incomplete() {
        let drops: BTreeMap<String, u64> = [
            ("lock_map_full".to_string(), 1234),
            ("hist_map_full".to_string(), 5),
            ("missing_start".to_string(), 9),
        ]
        .into_iter()
        .collect();
        let inc =
            assess(&drops, crate::report::model::Mode::Full, Some(16384)).expect("incomplete");
        assert_eq!(inc.lost_waits, 1234);
        assert!(
            inc.causes[0].contains("--max-locks 65536"),
            "{:?}",
            inc.causes
        );
        let mut v = verdict(&[], &[], &Thresholds::default());
        mark_incomplete(&mut v, inc);
        assert!(v.text.starts_with("INCOMPLETE: 1,234 waits"), "{}", v.text);
        // Losses that cannot hide a lock, and calls that began before
        // tracing, leave a run complete.
        let benign: BTreeMap<String, u64> = [
            ("hist_map_full".to_string(), 5),
            ("missing_start".to_string(), 9),
            ("sched_map_full".to_string(), 3),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            assess(&benign, crate::report::model::Mode::Full, None),
            None
        );
        assert!(assess(&benign, crate::report::model::Mode::Sched, None).is_some());
    }

    #[test]
    fn a_class_is_named_when_its_sum_decides_more_than_any_member() {
        let t = Thresholds::default();
        let member = Lock {
            label: "shards+0x40".into(),
            kind: "mutex".into(),
            contentions_per_s: 95.0,
            decision: decide(95.0, &t),
            ..Default::default()
        };
        let class = LockClass {
            label: "mutex @ bump_shard (a.c:24), 64 locks".into(),
            contentions_per_s: 6000.0,
            decision: decide(6000.0, &t),
            busiest: "shards+0x40".into(),
            busiest_per_s: 95.0,
            ..Default::default()
        };
        let v = verdict(
            std::slice::from_ref(&member),
            std::slice::from_ref(&class),
            &t,
        );
        assert_eq!(v.decision, Decision::Recommended);
        assert_eq!(v.level, "class");
        assert!(
            v.text.contains("the lock class mutex @ bump_shard"),
            "{}",
            v.text
        );
        // A lock that decides as much at a higher rate is named instead; at
        // a lower rate, the class still is.
        let hot = |rate: f64| Lock {
            label: "hot".into(),
            contentions_per_s: rate,
            decision: decide(rate, &t),
            ..Default::default()
        };
        let v = verdict(
            &[member.clone(), hot(9000.0)],
            std::slice::from_ref(&class),
            &t,
        );
        assert_eq!((v.level.as_str(), v.lock.as_deref()), ("lock", Some("hot")));
        let v = verdict(&[member, hot(1200.0)], std::slice::from_ref(&class), &t);
        assert_eq!(v.level, "class", "{}", v.text);
    }

    #[test]
    fn decision_edges() {
        let t = Thresholds::default();
        assert_eq!(decide(0.0, &t), Decision::NotNeeded);
        assert_eq!(decide(99.0, &t), Decision::NotNeeded);
        assert_eq!(decide(99.99, &t), Decision::NotNeeded);
        assert_eq!(decide(100.0, &t), Decision::Consider);
        assert_eq!(decide(1000.0, &t), Decision::Consider);
        assert_eq!(decide(1000.5, &t), Decision::Recommended);
        assert_eq!(decide(1001.0, &t), Decision::Recommended);
    }

    #[test]
    fn thresholds_are_configurable() {
        let t = Thresholds {
            consider_at: 10.0,
            recommend_at: 20.0,
        };
        assert_eq!(decide(9.0, &t), Decision::NotNeeded);
        assert_eq!(decide(10.0, &t), Decision::Consider);
        assert_eq!(decide(21.0, &t), Decision::Recommended);
    }

    #[test]
    fn probe_cost_over_budget_or_unbounded_is_said() {
        let mut c = ProbeCost {
            estimated_share: 0.53,
            budget_pct: Some(5.0),
            over_budget: true,
            ..Default::default()
        };
        let w = probe_cost_warning(&c).unwrap();
        assert!(
            w.contains("OVER BUDGET") && w.contains("53.0%") && w.contains("5.0%"),
            "{w}"
        );
        c.over_budget = false;
        c.estimated_share = 0.04;
        assert_eq!(probe_cost_warning(&c), None);
        c.budget_pct = None;
        assert_eq!(probe_cost_warning(&c), None);
        c.estimated_share = 0.2;
        assert!(probe_cost_warning(&c).unwrap().contains("--probe-budget"));
    }

    #[test]
    fn verdict_names_the_worst_lock() {
        let t = Thresholds::default();
        let mk = |label: &str, rate: f64, wait: u64| Lock {
            label: label.into(),
            contentions_per_s: rate,
            decision: decide(rate, &t),
            wait: crate::report::model::Durations {
                total_ns: wait,
                ..Default::default()
            },
            ..Default::default()
        };
        let locks = vec![
            mk("join", 0.2, 5_000_000_000),
            mk("seq_mu", 4000.0, 1_000_000_000),
            mk("pool", 150.0, 10),
        ];
        let v = verdict(&locks, &[], &t);
        assert_eq!(v.decision, Decision::Recommended);
        assert_eq!(v.lock.as_deref(), Some("seq_mu"));
        assert!(v.text.contains("RECOMMENDED for seq_mu"), "{}", v.text);
        assert_eq!(verdict(&[], &[], &t).decision, Decision::NotNeeded);
    }

    #[test]
    fn condvar_waits_are_not_lock_contention() {
        let t = Thresholds::default();
        let cv = Lock {
            label: "cv".into(),
            kind: "condvar".into(),
            contentions_per_s: 50_000.0,
            decision: Decision::NotLockContention,
            ..Default::default()
        };
        let v = verdict(std::slice::from_ref(&cv), &[], &t);
        assert_eq!(v.decision, Decision::NotNeeded);
        assert!(v.lock.is_none());
        assert!(v.text.contains("not lock contention"), "{}", v.text);
        let mu = Lock {
            label: "mu".into(),
            kind: "mutex".into(),
            contentions_per_s: 200.0,
            decision: decide(200.0, &t),
            ..Default::default()
        };
        let v = verdict(&[cv, mu], &[], &t);
        assert_eq!(v.decision, Decision::Consider);
        assert_eq!(v.lock.as_deref(), Some("mu"));
    }
}

//! The lock model in three levels (DESIGN.md): a **wait channel** is a
//! futex word in a process (exact counts live there); a **lock** is what
//! the program locks — the word itself for word locks, or, for locks whose
//! waiters park on words of their own, every channel its waits went
//! through, named by the implementation and the frame that called it; a
//! **lock class** is many locks of one type taken at one call site.
//! Decisions apply to locks and classes; condition and event waits are
//! kept, as not locks.
//!
//! A channel's waits go to locks by its unwound stacks: each stack is
//! classified (implementations.rs), and the channel's exact counts are
//! split in proportion to its stacks' estimated waits — wholly to one lock
//! in the common case (a thread's parking word used for one lock).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tracer_common::futex_op;

use super::implementations::{Decided, Kind};
use crate::analyze::{decide::decide, hist::durations};
use crate::report::model::{
    Bucket, ChannelShare, Decision, Latency, Lock, LockClass, LockGroup, LockSleeps, LockThread,
    Site, Thresholds, WakerSite,
};

/// Sites kept per lock (every site counts; the report lists these).
const SITES_PER_LOCK: usize = 8;
/// Members listed per class (all count).
const MEMBERS_PER_CLASS: usize = 50;

/// Waits of one channel explained by one kind of stack.
#[derive(Clone, Debug)]
pub struct Part {
    pub decided: Decided,
    pub kind: Kind,
    pub implementation: &'static str,
    /// The frame that decided.
    pub frame: Option<String>,
    /// The first frame outside the implementation, as a label.
    pub call_site: Option<String>,
    /// `eh_frame` or `frame-pointer`: where the stacks came from.
    pub unwind: &'static str,
    /// Estimated waits and wait time (sampled stacks, weighted).
    pub waits: u64,
    pub wait_ns: u64,
    /// Its stacks, largest first.
    pub sites: Vec<Site>,
}

/// A futex word as measured, with what its stacks say.
pub struct Channel {
    pub lock: Lock,
    pub parts: Vec<Part>,
    /// Futex commands used on it (`tracer_common::op_bit`).
    pub ops: u32,
    /// The process's program (its executable), when known: processes of
    /// one program share locks kept in shared memory.
    pub program: Option<String>,
    /// The process is a Go program: the futex words its frames do not
    /// explain are its runtime's thread sleeps.
    pub go: bool,
}

/// What a lock is, across channels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum LockId {
    /// The channel (pid, futex word) is the lock (or the event).
    Word(u32, u64),
    /// Scope, implementation, type label, call site.
    Parked(Scope, &'static str, &'static str, String),
}

/// Where a parked lock's call site names one lock.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    Process(u32),
    /// Every process of this program (locks in shared memory).
    Program(String),
}

/// Whether a channel's ops say PI (FUTEX_LOCK_PI, LOCK_PI2, UNLOCK_PI,
/// WAIT_REQUEUE_PI).
fn is_pi(ops: u32) -> bool {
    [
        futex_op::LOCK_PI,
        futex_op::LOCK_PI2,
        futex_op::UNLOCK_PI,
        futex_op::WAIT_REQUEUE_PI,
    ]
    .iter()
    .any(|&op| ops & tracer_common::op_bit(op) != 0)
}

/// FUTEX_UNLOCK_PI returns 0, not a count of waiters woken, and also
/// returns 0 when the waiter it was called for has already gone (timed
/// out, or taken the lock through the kernel itself). The waiters it
/// released are the LOCK_PI waits that ended owning the lock (`slept`):
/// `woken` is that, never more than the calls; each waker thread keeps its
/// share.
fn pi_wakes(l: &mut Lock) {
    let released = l.outcomes.slept.min(l.wakes.calls);
    let counted = l.wakes.woken.max(1);
    for t in &mut l.threads {
        t.woken = (t.woken as f64 * released as f64 / counted as f64).round() as u64;
    }
    l.wakes.woken = released;
}

/// Names of the futex commands in `ops`.
pub fn op_names(ops: u32) -> Vec<String> {
    const NAMES: &[(u32, &str)] = &[
        (futex_op::WAIT, "wait"),
        (futex_op::WAKE, "wake"),
        (futex_op::REQUEUE, "requeue"),
        (futex_op::CMP_REQUEUE, "cmp_requeue"),
        (futex_op::WAKE_OP, "wake_op"),
        (futex_op::LOCK_PI, "lock_pi"),
        (futex_op::UNLOCK_PI, "unlock_pi"),
        (futex_op::WAIT_BITSET, "wait_bitset"),
        (futex_op::WAKE_BITSET, "wake_bitset"),
        (futex_op::WAIT_REQUEUE_PI, "wait_requeue_pi"),
        (futex_op::CMP_REQUEUE_PI, "cmp_requeue_pi"),
        (futex_op::LOCK_PI2, "lock_pi2"),
    ];
    let mut v: Vec<String> = NAMES
        .iter()
        .filter(|(op, _)| ops & tracer_common::op_bit(*op) != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    if ops & tracer_common::OPS_FUTEX2 != 0 {
        v.push("futex2".into());
    }
    v
}

/// What a channel's waits are when no stack explains them.
fn unexplained(ch: &Channel) -> Part {
    let pi = is_pi(ch.ops);
    Part {
        decided: Decided::Word,
        kind: if pi { Kind::PiMutex } else { Kind::Unknown },
        implementation: if pi { "PI futex" } else { "generic" },
        frame: None,
        call_site: None,
        unwind: "none",
        waits: ch.lock.contentions.max(1),
        wait_ns: ch.lock.wait.total_ns,
        sites: Vec::new(),
    }
}

/// The generic rule for a channel no frame explains: one thread waited on
/// it and no thread of the target ever called FUTEX_WAKE on it, yet its
/// waits ended — the kernel woke it (a thread's exit clearing its TID word:
/// a join) or a process outside the target did. Not a lock of this
/// program either way.
fn woken_by_no_one(l: &Lock) -> bool {
    let waiters = l.threads.iter().filter(|t| t.contentions > 0).count();
    waiters == 1 && l.wakes.calls == 0 && l.threads.iter().all(|t| t.wake_calls == 0)
}

/// A lock being gathered.
struct Acc {
    id: LockId,
    /// The largest contribution: it names the lock (kind, frame, site).
    part: Part,
    /// (channel index, share of its waits, index of this lock in the
    /// channel's split).
    members: Vec<(usize, f64, usize)>,
    sites: Vec<Site>,
}

/// Channels → (channels labelled, logical locks, lock classes).
pub fn model(
    mut channels: Vec<Channel>,
    duration_s: f64,
    t: &Thresholds,
) -> (Vec<Lock>, Vec<Lock>, Vec<LockClass>) {
    let duration = duration_s.max(1e-9);
    infer_from_frame_pointers(&mut channels);
    let mut accs: BTreeMap<LockId, Acc> = BTreeMap::new();
    // Per channel, the waits of each lock it is split into (in the order of
    // the members' split index): counters are apportioned by these.
    let mut weights: Vec<Vec<u64>> = Vec::with_capacity(channels.len());
    for (ci, ch) in channels.iter_mut().enumerate() {
        let parts = channel_parts(ch);
        let total: u64 = parts.iter().map(|p| p.waits).sum::<u64>().max(1);
        let by_id = by_lock_id(ch, parts);
        name_channel(ch, &by_id);
        weights.push(by_id.values().map(|(_, w, _)| *w).collect());
        for (idx, (id, (part, waits, sites))) in by_id.into_iter().enumerate() {
            let share = waits as f64 / total as f64;
            let acc = accs.entry(id.clone()).or_insert_with(|| Acc {
                id,
                part: part.clone(),
                members: Vec::new(),
                sites: Vec::new(),
            });
            if part.waits > acc.part.waits {
                acc.part = part;
            }
            acc.members.push((ci, share, idx));
            acc.sites.extend(sites);
        }
    }
    let mut logical: Vec<Lock> = accs
        .into_values()
        .map(|a| gather(a, &channels, &weights, duration, t))
        .collect();
    disambiguate_labels(&mut logical);
    let channels = channels_named(channels, &logical);
    let classes = classes(&mut logical, duration, t);
    sort_locks(&mut logical);
    (channels, logical, classes)
}

/// A channel's parts as the program's facts decide them: an unexplained
/// channel is one part; a generic word nobody woke is an event; in Go,
/// the runtime's; a PI futex is a PI mutex whatever the frames call it.
fn channel_parts(ch: &mut Channel) -> Vec<Part> {
    let mut parts = std::mem::take(&mut ch.parts);
    if parts.is_empty() {
        parts.push(unexplained(ch));
    }
    if parts
        .iter()
        .all(|p| p.implementation == "generic" && p.call_site.is_none())
        && !is_pi(ch.ops)
        && woken_by_no_one(&ch.lock)
    {
        for p in &mut parts {
            p.decided = Decided::Event;
            p.kind = Kind::Wait;
        }
    }
    // In a Go program, a word no implementation explains (a stripped
    // binary, an unsampled wait) is the runtime's: goroutines never
    // wait on futexes, its threads do.
    if ch.go {
        for p in &mut parts {
            if p.implementation == "generic" {
                p.decided = Decided::Event;
                p.kind = Kind::GoRuntime;
                p.implementation = "Go";
            }
        }
    }
    // A PI futex is a PI mutex whatever the frames call it.
    if is_pi(ch.ops) {
        pi_wakes(&mut ch.lock);
        for p in &mut parts {
            if p.decided == Decided::Word
                && matches!(p.kind, Kind::Mutex | Kind::Other | Kind::Unknown)
            {
                p.kind = Kind::PiMutex;
            }
        }
    }
    parts
}

/// A channel's parts merged by the lock they go to.
/// Per lock a channel's parts go to: the largest part, the waits, the sites.
type ByLock = BTreeMap<LockId, (Part, u64, Vec<Site>)>;

fn by_lock_id(ch: &Channel, parts: Vec<Part>) -> ByLock {
    let mut by_id: ByLock = BTreeMap::new();
    for p in parts {
        let id = match p.decided {
            Decided::Parked(label) => LockId::Parked(
                match (
                    &ch.program,
                    super::implementations::shared_memory(p.implementation),
                ) {
                    (Some(program), true) => Scope::Program(program.clone()),
                    _ => Scope::Process(ch.lock.pid),
                },
                p.implementation,
                label,
                p.call_site
                    .clone()
                    .unwrap_or_else(|| "[unknown caller]".into()),
            ),
            Decided::Word | Decided::Event => {
                LockId::Word(ch.lock.pid, parse_addr(&ch.lock.address))
            }
        };
        let e = by_id
            .entry(id)
            .or_insert_with(|| (p.clone(), 0, Vec::new()));
        // The largest part names the lock (its kind, call site).
        if p.waits > e.0.waits {
            let sites = std::mem::take(&mut e.2);
            e.0 = p.clone();
            e.2 = sites;
        }
        e.1 += p.waits;
        e.2.extend(p.sites);
    }
    by_id
}

/// The channel row: its largest lock's kind and name.
fn name_channel(ch: &mut Channel, by_id: &ByLock) {
    if let Some((_, (p, _, _))) = by_id.iter().max_by_key(|(_, (_, w, _))| *w) {
        ch.lock.kind = p.kind.name().to_string();
        ch.lock.kind_frame = p.frame.clone();
        ch.lock.implementation = p.implementation.to_string();
        ch.lock.futex_ops = op_names(ch.ops);
        if p.call_site.is_some() {
            ch.lock.call_site = p.call_site.clone();
            ch.lock.call_site_unwind = p.unwind.to_string();
        } else if ch.lock.call_site.is_none() {
            ch.lock.call_site_unwind = "none".into();
        } else {
            ch.lock.call_site_unwind = "frame-pointer".into();
        }
        ch.lock.label = word_label(&ch.lock, p);
        if !p.kind.is_lock() {
            ch.lock.decision = Decision::NotLockContention;
        }
    }
}

/// Channels name their lock (a channel split among locks names the one
/// with its largest share).
fn channels_named(channels: Vec<Channel>, logical: &[Lock]) -> Vec<Lock> {
    let mut label_of: HashMap<(u32, String), (f64, String)> = HashMap::new();
    for l in logical {
        for c in &l.channels {
            let e = label_of
                .entry((c.pid, c.address.clone()))
                .or_insert((-1.0, String::new()));
            if c.share > e.0 || (c.share == e.0 && l.label < e.1) {
                *e = (c.share, l.label.clone());
            }
        }
    }
    let mut channels: Vec<Lock> = channels.into_iter().map(|c| c.lock).collect();
    for c in &mut channels {
        c.of = label_of
            .get(&(c.pid, c.address.clone()))
            .map(|(_, l)| l.clone());
    }
    channels
}

/// A channel's frame-pointer stacks, as addresses: the same list in two
/// channels of a process is the same code path to the wait.
fn fp_signature(l: &Lock) -> Option<Vec<String>> {
    let s = l
        .sites
        .iter()
        .find(|s| s.unwind == "frame-pointer" && !s.frames.is_empty())?;
    Some(s.frames.iter().map(|f| f.addr.clone()).collect())
}

/// Channels whose waits were never unwound with .eh_frame (the per-CPU
/// sample budget ran out, or the run was short) have only frame-pointer
/// stacks, which stop inside a C library without frame pointers or skip
/// the function that called it, so they have no call site or a wrong one. When every unwound channel of the same process with
/// the same frame-pointer stack agrees on what the waits are (one
/// implementation, kind and call site for ≥95% of their waits), the
/// channel takes that answer, marked `inferred`. Ambiguous stacks (one
/// library frame reached from several call sites) stay unexplained.
fn infer_from_frame_pointers(channels: &mut [Channel]) {
    type Answer = (Decided, Kind, &'static str, String);
    type Answers = BTreeMap<Answer, (u64, Option<String>)>;
    let mut seen: HashMap<(u32, Vec<String>), Answers> = HashMap::new();
    for ch in channels.iter() {
        if !ch.parts.iter().any(|p| p.unwind == "eh_frame") {
            continue;
        }
        let Some(sig) = fp_signature(&ch.lock) else {
            continue;
        };
        let e = seen.entry((ch.lock.pid, sig)).or_default();
        for p in &ch.parts {
            let Some(site) = &p.call_site else { continue };
            let a = e
                .entry((p.decided.clone(), p.kind, p.implementation, site.clone()))
                .or_insert((0, p.frame.clone()));
            a.0 += p.waits;
        }
    }
    for ch in channels.iter_mut() {
        // Frame-pointer call sites are not trusted where .eh_frame ones
        // exist: the walk skips the function that called a C library lock
        // function (its frame pointer is still the caller's).
        if ch.parts.iter().any(|p| p.unwind == "eh_frame") {
            continue;
        }
        let Some(sig) = fp_signature(&ch.lock) else {
            continue;
        };
        let Some(answers) = seen.get(&(ch.lock.pid, sig)) else {
            continue;
        };
        let total: u64 = answers.values().map(|a| a.0).sum();
        let Some(((decided, kind, implementation, site), (waits, frame))) =
            answers.iter().max_by_key(|(_, a)| a.0)
        else {
            continue;
        };
        if total == 0 || (*waits as f64) < 0.95 * total as f64 {
            continue;
        }
        ch.parts = vec![Part {
            decided: decided.clone(),
            kind: *kind,
            implementation,
            frame: frame.clone(),
            call_site: Some(site.clone()),
            unwind: "inferred",
            waits: ch.lock.contentions.max(1),
            wait_ns: ch.lock.wait.total_ns,
            sites: Vec::new(),
        }];
    }
}

/// Two locks with the same label (two heap mutexes taken at one call site)
/// get their address appended so every row is distinguishable.
pub fn disambiguate_labels(locks: &mut [Lock]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut at: HashMap<(String, String), usize> = HashMap::new();
    for l in locks.iter() {
        *seen.entry(l.label.clone()).or_default() += 1;
        *at.entry((l.label.clone(), l.address.clone())).or_default() += 1;
    }
    for l in locks.iter_mut() {
        if seen.get(&l.label).copied().unwrap_or(0) > 1 && l.label != l.address {
            // A parked lock has no address, and forked processes have
            // their locks at one address: the process tells them apart.
            let tag = if l.address.is_empty()
                || at.get(&(l.label.clone(), l.address.clone())).copied() > Some(1)
            {
                format!("pid {}", l.pid)
            } else {
                l.address.clone()
            };
            l.label = format!("{} [{tag}]", l.label);
        }
    }
}

/// The label without the tag `disambiguate_labels` appended.
fn base_label(label: &str) -> &str {
    match label.rfind(" [") {
        Some(i) if label.ends_with(']') => &label[..i],
        _ => label,
    }
}

/// Locks of one program at one place in several processes (each a
/// process's own lock: forked workers): one group each, decided on its
/// busiest member. Locks in shared memory are one lock already and are
/// not grouped.
pub fn program_groups(
    logical: &[Lock],
    program_of: impl Fn(u32) -> Option<String>,
    duration_s: f64,
) -> Vec<LockGroup> {
    let mut by: BTreeMap<(String, String, String, String), Vec<&Lock>> = BTreeMap::new();
    for l in logical {
        let one_process = l.threads.iter().all(|t| t.pid == 0 || t.pid == l.pid);
        if l.decision == Decision::NotLockContention || l.shared.is_some() || !one_process {
            continue;
        }
        let Some(program) = program_of(l.pid) else {
            continue;
        };
        by.entry((
            program,
            base_label(&l.label).to_string(),
            l.kind.clone(),
            l.implementation.clone(),
        ))
        .or_default()
        .push(l);
    }
    let mut out = Vec::new();
    for ((program, base, kind, _), mut members) in by {
        let pids: BTreeSet<u32> = members.iter().map(|l| l.pid).collect();
        // One copy per process, in two processes at least: a process with
        // two such locks keeps its rows (they are different locks).
        if pids.len() < 2 || pids.len() != members.len() {
            continue;
        }
        members.sort_by(|a, b| b.contentions.cmp(&a.contentions).then(a.pid.cmp(&b.pid)));
        let busiest = members[0];
        let mut g = LockGroup {
            label: format!("{base} ×{} processes", pids.len()),
            program,
            kind,
            decision: busiest.decision,
            busiest: busiest.label.clone(),
            busiest_pid: busiest.pid,
            busiest_per_s: busiest.contentions_per_s,
            ..Default::default()
        };
        let mut hist: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        for l in &members {
            g.members.push(l.label.clone());
            g.pids.push(l.pid);
            g.contentions += l.contentions;
            g.outcomes.add(&l.outcomes);
            g.wait.total_ns += l.wait.total_ns;
            g.wait.max_ns = g.wait.max_ns.max(l.wait.max_ns);
            g.threads += l.threads.iter().filter(|t| t.contentions > 0).count();
            for b in &l.histogram {
                *hist.entry((b.lo_ns, b.hi_ns)).or_default() += b.count;
            }
        }
        g.contentions_per_s = g.contentions as f64 / duration_s.max(1e-9);
        let histogram = to_buckets(hist);
        g.wait = durations(g.wait.total_ns, g.contentions, g.wait.max_ns, &histogram);
        out.push(g);
    }
    out.sort_by(|a, b| {
        (b.decision, b.busiest_per_s)
            .partial_cmp(&(a.decision, a.busiest_per_s))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    out
}

fn parse_addr(a: &str) -> u64 {
    u64::from_str_radix(a.trim_start_matches("0x"), 16).unwrap_or(0)
}

/// A word lock's (or event's) name: its static, else what it is at its
/// call site, else its address.
fn word_label(l: &Lock, p: &Part) -> String {
    if let Some(s) = &l.symbol {
        return s.clone();
    }
    let what = if p.kind.is_lock() {
        "lock"
    } else {
        p.kind.name()
    };
    match &p.call_site {
        Some(c) => format!("{what}@{c}"),
        // A shared word's label names its object and offset.
        None if l.shared.is_some() => l.label.clone(),
        None => l.address.clone(),
    }
}

/// Splits `v` in proportion to `weights`, exactly: each part gets its
/// floor, and the parts with the largest remainders one more (ties to the
/// first), so the parts add up to `v`.
fn apportion(v: u64, weights: &[u64]) -> Vec<u64> {
    let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if weights.len() <= 1 || total == 0 {
        let mut out = vec![0; weights.len().max(1)];
        out[0] = v;
        return out;
    }
    let exact: Vec<(u64, u128)> = weights
        .iter()
        .map(|&w| {
            let x = u128::from(v) * u128::from(w);
            ((x / total) as u64, x % total)
        })
        .collect();
    let mut out: Vec<u64> = exact.iter().map(|e| e.0).collect();
    let left = v - out.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by(|&a, &b| exact[b].1.cmp(&exact[a].1).then(a.cmp(&b)));
    for &i in order.iter().take(left as usize) {
        out[i] += 1;
    }
    out
}

/// The counts of `items` (outcome classes, histogram buckets, in their
/// order) that fall in the waits `from..from + n` of the channel: a part's
/// own waits, so its outcomes and histogram add up to its contentions.
fn fill(items: &[u64], from: u64, n: u64) -> Vec<u64> {
    let (end, mut at) = (from + n, 0u64);
    items
        .iter()
        .map(|&c| {
            let (lo, hi) = (at.max(from), (at + c).min(end));
            at += c;
            hi.saturating_sub(lo)
        })
        .collect()
}

/// One logical lock from its channels' parts.
fn gather(
    a: Acc,
    channels: &[Channel],
    weights: &[Vec<u64>],
    duration: f64,
    t: &Thresholds,
) -> Lock {
    let first = &channels[a.members[0].0].lock;
    let mut l = Lock {
        pid: first.pid,
        kind: a.part.kind.name().to_string(),
        kind_frame: a.part.frame.clone(),
        implementation: a.part.implementation.to_string(),
        call_site: a.part.call_site.clone(),
        call_site_unwind: if a.part.call_site.is_some() {
            a.part.unwind.to_string()
        } else {
            "none".into()
        },
        ..Default::default()
    };
    let mut g = Gathered::default();
    for &(ci, share, idx) in &a.members {
        g.add(
            &mut l,
            &channels[ci].lock,
            &weights[ci],
            idx,
            share,
            a.part.unwind,
        );
    }
    l.histogram = to_buckets(g.hist);
    l.wait = durations(l.wait.total_ns, l.contentions, l.wait.max_ns, &l.histogram);
    l.contentions_per_s = l.contentions as f64 / duration;
    l.threads = g.threads.into_values().collect();
    l.threads
        .sort_by(|a, b| b.wait_ns.cmp(&a.wait_ns).then(a.tid.cmp(&b.tid)));
    if g.had_sched {
        l.sched = Some(finish_sleeps(g.sleeps, g.wake_hist));
    }
    let mut waker_sites = g.waker_sites;
    waker_sites.sort_by_key(|s| std::cmp::Reverse(s.wakes));
    waker_sites.truncate(SITES_PER_LOCK);
    l.waker_sites = waker_sites;
    let mut sites = same_frames_merged(a.sites);
    sites.truncate(SITES_PER_LOCK);
    let mut fp_sites = g.fp_sites;
    if a.part.unwind == "eh_frame" {
        l.unwound_sites = sites;
        fp_sites.sort_by_key(|s| std::cmp::Reverse(s.count));
        fp_sites.truncate(SITES_PER_LOCK);
        l.sites = fp_sites;
    } else {
        l.sites = if sites.is_empty() { fp_sites } else { sites };
        l.sites.truncate(SITES_PER_LOCK);
    }
    identify(&mut l, &a.id, first, &a.part);
    l.decision = if a.part.kind.is_lock() {
        decide(l.contentions_per_s, t)
    } else {
        Decision::NotLockContention
    };
    l
}

/// What a logical lock collects from its channels' shares before it is
/// finished: histograms by bucket, threads by tid, scheduler sleeps, and
/// the sites.
#[derive(Default)]
struct Gathered {
    hist: BTreeMap<(u64, u64), u64>,
    threads: BTreeMap<u32, LockThread>,
    sleeps: LockSleeps,
    wake_hist: BTreeMap<(u64, u64), u64>,
    waker_sites: Vec<WakerSite>,
    fp_sites: Vec<Site>,
    had_sched: bool,
}

impl Gathered {
    /// Adds this lock's part `idx` of channel `c` (weights `w`): its
    /// waits (from the channel's `first` on, `n` of them), outcomes,
    /// times, histogram buckets, threads and sleeps, each in proportion.
    fn add(&mut self, l: &mut Lock, c: &Lock, w: &[u64], idx: usize, share: f64, unwind: &str) {
        let part_of = |v: u64| apportion(v, w)[idx];
        // This lock's waits of the channel: from `first` on, `n` of them.
        let quotas = apportion(c.contentions, w);
        let (first, n) = (quotas[..idx].iter().sum::<u64>(), quotas[idx]);
        l.contentions += n;
        let o = &c.outcomes;
        let mine = fill(
            &[o.slept, o.eagain, o.timed_out, o.interrupted, o.error],
            first,
            n,
        );
        l.outcomes.slept += mine[0];
        l.outcomes.eagain += mine[1];
        l.outcomes.timed_out += mine[2];
        l.outcomes.interrupted += mine[3];
        l.outcomes.error += mine[4];
        l.wait.total_ns += part_of(c.wait.total_ns);
        l.wait.max_ns = l.wait.max_ns.max(c.wait.max_ns);
        l.wakes.calls += part_of(c.wakes.calls);
        l.wakes.woken += part_of(c.wakes.woken);
        let counts: Vec<u64> = c.histogram.iter().map(|b| b.count).collect();
        for (b, k) in c.histogram.iter().zip(fill(&counts, first, n)) {
            *self.hist.entry((b.lo_ns, b.hi_ns)).or_default() += k;
        }
        for th in &c.threads {
            let e = self.threads.entry(th.tid).or_insert_with(|| LockThread {
                tid: th.tid,
                pid: th.pid,
                name: th.name.clone(),
                ..Default::default()
            });
            e.contentions += part_of(th.contentions);
            e.wait_ns += part_of(th.wait_ns);
            e.max_wait_ns = e.max_wait_ns.max(th.max_wait_ns);
            e.wake_calls += part_of(th.wake_calls);
            e.woken += part_of(th.woken);
        }
        if let Some(s) = &c.sched {
            self.had_sched = true;
            let sq = apportion(s.sleeps, w);
            self.sleeps.sleeps += sq[idx];
            self.sleeps.blocked_ns += part_of(s.blocked_ns);
            self.sleeps.runnable_ns += part_of(s.runnable_ns);
            let counts: Vec<u64> = s.wakeup_latency.histogram.iter().map(|b| b.count).collect();
            let from = sq[..idx].iter().sum::<u64>();
            for (b, k) in s
                .wakeup_latency
                .histogram
                .iter()
                .zip(fill(&counts, from, sq[idx]))
            {
                *self.wake_hist.entry((b.lo_ns, b.hi_ns)).or_default() += k;
            }
        }
        self.waker_sites.extend(c.waker_sites.iter().cloned());
        if unwind == "frame-pointer" || c.unwound_sites.is_empty() {
            self.fp_sites.extend(c.sites.iter().cloned());
        }
        l.channels.push(ChannelShare {
            address: c.address.clone(),
            pid: c.pid,
            contentions: n,
            share,
        });
    }
}

/// The scheduler's view of a logical lock's sleeps, its wakeup latency
/// from the gathered buckets.
fn finish_sleeps(mut sleeps: LockSleeps, wake_hist: BTreeMap<(u64, u64), u64>) -> LockSleeps {
    let histogram = to_buckets(wake_hist);
    let max = histogram.last().map_or(0, |b| b.hi_ns);
    sleeps.runnable_share =
        sleeps.runnable_ns as f64 / (sleeps.blocked_ns + sleeps.runnable_ns).max(1) as f64;
    sleeps.wakeup_latency = Latency {
        count: histogram.iter().map(|b| b.count).sum(),
        p50_ns: crate::analyze::hist::percentile(&histogram, 50.0, max),
        p99_ns: crate::analyze::hist::percentile(&histogram, 99.0, max),
        histogram,
    };
    sleeps
}

/// How a logical lock is known: by its word, or by the implementation and
/// call site its waiters parked from.
fn identify(l: &mut Lock, id: &LockId, first: &Lock, part: &Part) {
    match id {
        LockId::Word(..) => {
            l.identity = "word".into();
            l.address = first.address.clone();
            l.symbol = first.symbol.clone();
            l.shared = first.shared.clone();
            l.label = word_label(first, part);
        }
        LockId::Parked(_, _, label, site) => {
            // "[Java code]", "[unknown caller]": no named call site, so
            // every such wait of the implementation in the process.
            l.identity = if site.starts_with('[') {
                "implementation"
            } else {
                "call-site"
            }
            .into();
            l.label = format!("{label} @ {site}");
        }
    }
}

/// Sites with the same frames are one site (a lock in shared memory has
/// the same stacks in every process): counts and threads add up. Largest
/// first.
pub fn same_frames_merged(list: Vec<Site>) -> Vec<Site> {
    let mut out: Vec<Site> = Vec::new();
    for site in list {
        match out
            .iter_mut()
            .find(|o| o.frames == site.frames && o.unwind == site.unwind && !o.frames.is_empty())
        {
            Some(o) => {
                o.count += site.count;
                o.wait_ns += site.wait_ns;
                o.samples += site.samples;
                for t in site.threads {
                    match o.threads.iter_mut().find(|x| x.tid == t.tid) {
                        Some(x) => {
                            x.count += t.count;
                            x.wait_ns += t.wait_ns;
                        }
                        None => o.threads.push(t),
                    }
                }
            }
            None => out.push(site),
        }
    }
    out.sort_by(|x, y| y.count.cmp(&x.count).then(y.wait_ns.cmp(&x.wait_ns)));
    out
}

fn to_buckets(h: BTreeMap<(u64, u64), u64>) -> Vec<Bucket> {
    h.into_iter()
        .filter(|(_, c)| *c > 0)
        .map(|((lo_ns, hi_ns), count)| Bucket {
            lo_ns,
            hi_ns,
            count,
        })
        .collect()
}

/// Locks before events, then by decision, then by rate.
pub fn sort_locks(locks: &mut [Lock]) {
    locks.sort_by(|a, b| {
        (b.decision, b.contentions_per_s)
            .partial_cmp(&(a.decision, a.contentions_per_s))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.wait.total_ns.cmp(&a.wait.total_ns))
            .then(a.label.cmp(&b.label))
    });
}

/// What a class of locks is called: its implementation's name for the
/// kind, or the kind alone for the C library's.
fn type_name(implementation: &str, kind: &str) -> String {
    match implementation {
        "glibc" | "musl" | "generic" | "PI futex" | "" => kind.to_string(),
        other => format!("{other} {kind}"),
    }
}

/// Word locks of one kind and implementation taken at one call site, two
/// or more: a class, decided on their summed rate. Members learn their
/// class (`of`).
fn classes(logical: &mut [Lock], duration: f64, t: &Thresholds) -> Vec<LockClass> {
    let mut groups: BTreeMap<(u32, String, String, String), Vec<usize>> = BTreeMap::new();
    for (i, l) in logical.iter().enumerate() {
        // Word locks whose call site an unwound stack gave (a frame-pointer
        // site skips the caller, and would merge unrelated locks), that a
        // thread other than their waiter released (a word one thread waited
        // on and no one woke shows no contention between threads).
        if l.identity != "word"
            || l.decision == Decision::NotLockContention
            || l.kind == Kind::Unknown.name()
            || !matches!(l.call_site_unwind.as_str(), "eh_frame" | "inferred")
            || woken_by_no_one(l)
        {
            continue;
        }
        let Some(site) = &l.call_site else { continue };
        groups
            .entry((
                l.pid,
                l.kind.clone(),
                l.implementation.clone(),
                site.clone(),
            ))
            .or_default()
            .push(i);
    }
    let mut out = Vec::new();
    for ((pid, kind, implementation, site), members) in groups {
        if members.len() < 2 {
            continue;
        }
        let label = format!(
            "{} @ {site}, {} locks",
            type_name(&implementation, &kind),
            members.len()
        );
        let mut c = LockClass {
            label: label.clone(),
            kind,
            implementation,
            pid,
            call_site: site,
            locks: members.len(),
            ..Default::default()
        };
        let mut hist: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        let mut tids: BTreeSet<u32> = BTreeSet::new();
        let mut by_count: Vec<(u64, String, f64)> = Vec::new();
        for &i in &members {
            let l = &mut logical[i];
            c.contentions += l.contentions;
            c.outcomes.add(&l.outcomes);
            c.wait.total_ns += l.wait.total_ns;
            c.wait.max_ns = c.wait.max_ns.max(l.wait.max_ns);
            for b in &l.histogram {
                *hist.entry((b.lo_ns, b.hi_ns)).or_default() += b.count;
            }
            tids.extend(
                l.threads
                    .iter()
                    .filter(|t| t.contentions > 0)
                    .map(|t| t.tid),
            );
            by_count.push((l.contentions, l.label.clone(), l.contentions_per_s));
            l.of = Some(label.clone());
        }
        by_count.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        c.busiest = by_count[0].1.clone();
        c.busiest_per_s = by_count[0].2;
        c.members = by_count
            .into_iter()
            .take(MEMBERS_PER_CLASS)
            .map(|(_, l, _)| l)
            .collect();
        c.histogram = to_buckets(hist);
        c.wait = durations(c.wait.total_ns, c.contentions, c.wait.max_ns, &c.histogram);
        c.contentions_per_s = c.contentions as f64 / duration;
        c.threads = tids.len();
        c.decision = decide(c.contentions_per_s, t);
        out.push(c);
    }
    out.sort_by(|a, b| {
        (b.decision, b.contentions_per_s)
            .partial_cmp(&(a.decision, a.contentions_per_s))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{Durations, Outcomes};

    fn channel(addr: &str, tid: u32, waits: u64, parts: Vec<Part>) -> Channel {
        Channel {
            lock: Lock {
                address: addr.into(),
                pid: 7,
                contentions: waits,
                outcomes: Outcomes {
                    slept: waits,
                    ..Default::default()
                },
                wait: Durations {
                    total_ns: waits * 1000,
                    max_ns: 5000,
                    ..Default::default()
                },
                histogram: vec![Bucket {
                    lo_ns: 992,
                    hi_ns: 1024,
                    count: waits,
                }],
                threads: vec![LockThread {
                    tid,
                    contentions: waits,
                    wait_ns: waits * 1000,
                    ..Default::default()
                }],
                ..Default::default()
            },
            parts,
            ops: tracer_common::op_bit(futex_op::WAIT),
            program: None,
            go: false,
        }
    }

    fn part(decided: Decided, kind: Kind, imp: &'static str, site: &str, waits: u64) -> Part {
        Part {
            decided,
            kind,
            implementation: imp,
            frame: None,
            call_site: Some(site.into()),
            unwind: "eh_frame",
            waits,
            wait_ns: waits * 1000,
            sites: Vec::new(),
        }
    }

    #[test]
    fn parked_waiters_make_one_lock_with_every_channel() {
        let parked = |w| {
            part(
                Decided::Parked("parking_lot::Mutex"),
                Kind::Mutex,
                "parking_lot",
                "apply_order",
                w,
            )
        };
        let chans = vec![
            channel("0x10", 1, 300, vec![parked(300)]),
            channel("0x20", 2, 290, vec![parked(290)]),
            channel("0x30", 3, 310, vec![parked(310)]),
            channel("0x40", 4, 269, vec![parked(269)]),
        ];
        let (channels, logical, classes) = model(chans, 1.0, &Thresholds::default());
        assert_eq!(logical.len(), 1);
        let l = &logical[0];
        assert_eq!(l.label, "parking_lot::Mutex @ apply_order");
        assert_eq!(l.contentions, 1169, "the sum of its channels");
        assert_eq!(l.decision, Decision::Recommended, "decided on the sum");
        assert_eq!(l.channels.len(), 4);
        assert_eq!(l.threads.len(), 4);
        assert!(
            channels
                .iter()
                .all(|c| c.of.as_deref() == Some(l.label.as_str()))
        );
        assert!(classes.is_empty());
    }

    #[test]
    fn word_locks_at_one_site_make_a_class_decided_on_their_sum() {
        let chans: Vec<Channel> = (0..64)
            .map(|i| {
                let mut c = channel(
                    &format!("{:#x}", 0x1000 + i * 0x40),
                    100 + i as u32,
                    50,
                    vec![part(
                        Decided::Word,
                        Kind::Mutex,
                        "glibc",
                        "bump_shard (a.c:24)",
                        50,
                    )],
                );
                c.lock.wakes.calls = 50;
                c
            })
            .collect();
        let (_, logical, classes) = model(chans, 1.0, &Thresholds::default());
        assert_eq!(logical.len(), 64);
        assert!(logical.iter().all(|l| l.decision == Decision::NotNeeded));
        assert_eq!(classes.len(), 1);
        let c = &classes[0];
        assert_eq!(c.label, "mutex @ bump_shard (a.c:24), 64 locks");
        assert_eq!(c.contentions, 3200);
        assert_eq!(c.decision, Decision::Recommended);
        assert!(
            logical
                .iter()
                .all(|l| l.of.as_deref() == Some(c.label.as_str()))
        );
    }

    #[test]
    fn words_one_thread_waited_on_that_no_one_woke_are_no_class() {
        let words = |wakes: u64| -> Vec<Channel> {
            (0..64)
                .map(|i| {
                    let mut c = channel(
                        &format!("{:#x}", 0x1000 + i * 0x40),
                        100,
                        50,
                        vec![part(
                            Decided::Word,
                            Kind::Other,
                            "generic",
                            "main (w.c:52)",
                            50,
                        )],
                    );
                    c.lock.wakes.calls = wakes;
                    c
                })
                .collect()
        };
        let (_, logical, classes) = model(words(0), 1.0, &Thresholds::default());
        assert!(classes.is_empty(), "{classes:?}");
        assert!(logical.iter().all(|l| l.of.is_none()));
        // The same words woken by another thread are a class.
        let (_, _, classes) = model(words(50), 1.0, &Thresholds::default());
        assert_eq!(classes.len(), 1);
    }

    #[test]
    fn a_channel_parked_for_two_locks_is_split_by_its_stacks() {
        let a = part(
            Decided::Parked("absl::Mutex"),
            Kind::Mutex,
            "Abseil",
            "put",
            75,
        );
        let b = part(
            Decided::Parked("absl::Mutex"),
            Kind::Mutex,
            "Abseil",
            "get",
            25,
        );
        let (_, logical, _) = model(
            vec![channel("0x10", 1, 1000, vec![a, b])],
            1.0,
            &Thresholds::default(),
        );
        let by: HashMap<&str, u64> = logical
            .iter()
            .map(|l| (l.label.as_str(), l.contentions))
            .collect();
        assert_eq!(by["absl::Mutex @ put"], 750);
        assert_eq!(by["absl::Mutex @ get"], 250);
    }

    #[test]
    fn a_split_channel_is_apportioned_exactly() {
        let parts: Vec<Part> = ["a", "b", "c"]
            .iter()
            .map(|site| {
                part(
                    Decided::Parked("absl::Mutex"),
                    Kind::Mutex,
                    "Abseil",
                    site,
                    1,
                )
            })
            .collect();
        let mut ch = channel("0x10", 1, 5, parts);
        ch.lock.outcomes = Outcomes {
            slept: 2,
            eagain: 2,
            timed_out: 1,
            ..Default::default()
        };
        ch.lock.histogram = (0..5)
            .map(|i| Bucket {
                lo_ns: 1 << i,
                hi_ns: 2 << i,
                count: 1,
            })
            .collect();
        let (_, logical, _) = model(vec![ch], 1.0, &Thresholds::default());
        assert_eq!(logical.iter().map(|l| l.contentions).sum::<u64>(), 5);
        assert_eq!(
            logical.iter().map(|l| l.wait.total_ns).sum::<u64>(),
            5000,
            "wait time is split exactly too"
        );
        for l in &logical {
            let o = &l.outcomes;
            assert_eq!(
                o.slept + o.eagain + o.timed_out + o.interrupted + o.error,
                l.contentions,
                "{l:?}"
            );
            let in_hist: u64 = l.histogram.iter().map(|b| b.count).sum();
            assert_eq!(in_hist, l.contentions, "{l:?}");
        }
    }

    #[test]
    fn apportion_and_fill_add_up() {
        assert_eq!(apportion(5, &[1, 1]), vec![3, 2]);
        assert_eq!(apportion(1, &[1, 1, 1]), vec![1, 0, 0]);
        assert_eq!(apportion(10, &[3, 1]), vec![8, 2]);
        assert_eq!(apportion(7, &[0, 0]), vec![7, 0]);
        assert_eq!(fill(&[2, 2, 1], 0, 3), vec![2, 1, 0]);
        assert_eq!(fill(&[2, 2, 1], 3, 2), vec![0, 1, 1]);
    }

    #[test]
    fn pi_ops_name_a_pi_mutex_and_events_are_not_locks() {
        let mut pi = channel("0x10", 1, 10, Vec::new());
        pi.ops =
            tracer_common::op_bit(futex_op::LOCK_PI) | tracer_common::op_bit(futex_op::UNLOCK_PI);
        let cv = channel(
            "0x20",
            2,
            10,
            vec![part(Decided::Event, Kind::Condvar, "glibc", "consume", 10)],
        );
        let (channels, logical, _) = model(vec![pi, cv], 1.0, &Thresholds::default());
        assert_eq!(channels[0].kind, "pi-mutex");
        assert_eq!(channels[0].futex_ops, vec!["lock_pi", "unlock_pi"]);
        let cvl = logical.iter().find(|l| l.kind == "condvar").unwrap();
        assert_eq!(cvl.decision, Decision::NotLockContention);
        assert_eq!(cvl.label, "condvar@consume");
    }

    #[test]
    fn unsampled_channels_take_the_call_site_of_their_frame_pointer_stack_when_unambiguous() {
        let fp = |addr: &str| Site {
            count: 1,
            unwind: "frame-pointer".into(),
            frames: vec![crate::report::model::Frame {
                addr: addr.into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let with_fp = |mut c: Channel, addr: &str| {
            c.lock.sites = vec![fp(addr)];
            c.lock.wakes.calls = c.lock.contentions;
            c
        };
        let word = |site: &str| part(Decided::Word, Kind::Mutex, "glibc", site, 50);
        let unexplained = |c: &mut Channel| {
            c.parts = vec![Part {
                call_site: None,
                unwind: "frame-pointer",
                ..word("")
            }]
        };
        let mut chans = vec![
            with_fp(channel("0x1000", 1, 50, vec![word("bump (a.c:2)")]), "0xaa"),
            with_fp(channel("0x1040", 2, 50, vec![word("bump (a.c:2)")]), "0xaa"),
            with_fp(channel("0x1080", 3, 50, Vec::new()), "0xaa"),
            // One library frame reached from two call sites: ambiguous.
            with_fp(channel("0x2000", 4, 50, vec![word("put (b.c:1)")]), "0xbb"),
            with_fp(channel("0x2040", 5, 50, vec![word("get (b.c:9)")]), "0xbb"),
            with_fp(channel("0x2080", 6, 50, Vec::new()), "0xbb"),
        ];
        unexplained(&mut chans[2]);
        unexplained(&mut chans[5]);
        let (_, logical, classes) = model(chans, 1.0, &Thresholds::default());
        let inferred = logical.iter().find(|l| l.address == "0x1080").unwrap();
        assert_eq!(inferred.call_site.as_deref(), Some("bump (a.c:2)"));
        assert_eq!(inferred.call_site_unwind, "inferred");
        let c = classes
            .iter()
            .find(|c| c.call_site == "bump (a.c:2)")
            .unwrap();
        assert_eq!(c.locks, 3);
        let ambiguous = logical.iter().find(|l| l.address == "0x2080").unwrap();
        assert_eq!(ambiguous.call_site, None);
    }

    #[test]
    fn an_unexplained_word_one_thread_waits_on_and_no_one_wakes_is_an_event() {
        let join = channel("0x7f00", 1, 1, Vec::new());
        let mut lock = channel("0x1000", 2, 1, Vec::new());
        lock.lock.wakes.calls = 1;
        let (channels, _, _) = model(vec![join, lock], 1.0, &Thresholds::default());
        let by: HashMap<&str, &str> = channels
            .iter()
            .map(|c| (c.address.as_str(), c.kind.as_str()))
            .collect();
        assert_eq!(by["0x7f00"], "wait");
        assert_eq!(by["0x1000"], "unknown");
    }
}

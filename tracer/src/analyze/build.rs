//! Snapshot (kernel maps) + process info (/proc) → report model.

use std::collections::{BTreeMap, HashMap};

use tracer_common::{LockKey, NO_STACK, STACK_ALL_FIRST, SiteStats, counter, outcome};

use super::{
    decide::{decide, verdict},
    hist::{buckets, durations, percentile},
};
use crate::report::model::*;
use crate::{
    analyze::{
        implementations::{self, Decided, Kind},
        locks::{self, Channel, Part},
    },
    kernel::{collect::Snapshot, uprobes::Role},
    target::process::ProcessInfo,
    target::symbolize::Symbols,
    target::unwind::Unwound,
};

/// Sites symbolized per lock (all are counted; JSON lists these).
const SITES_PER_LOCK: usize = 8;

/// What the report needs to know about the function probes.
#[derive(Clone, Debug, Default)]
pub struct FnMeta {
    /// Each probed function.
    pub planned: Vec<ProbedFn>,
    pub per_call_ns: f64,
    /// Cost of one entry-only hit (Go's slow paths).
    pub go_per_call_ns: f64,
    pub budget_pct: Option<f64>,
    pub attached_s: f64,
    pub windows: u64,
    pub target_cpu_ns: u64,
    /// Functions detached early: too hot for the budget.
    pub detached: Vec<DetachedFn>,
}

/// A function the probes were planned for.
#[derive(Clone, Debug)]
pub struct ProbedFn {
    pub id: u32,
    pub name: String,
    /// The binary, as the target's mappings name it.
    pub binary: String,
    /// File offset of its entry.
    pub offset: u64,
    pub role: Role,
}

/// A probed function detached early (see `funcs::Detached`).
#[derive(Clone, Debug, Default)]
pub struct DetachedFn {
    pub id: u32,
    pub attached_s: f64,
    pub share: f64,
    pub calls_per_s: f64,
}

/// Everything about the run that is not in the maps.
pub struct RunMeta {
    pub tracer_args: Vec<String>,
    pub targets: Vec<Target>,
    pub start_time: String,
    pub duration_s: f64,
    pub load_attach_ms: f64,
    pub hooks: Vec<Hook>,
    pub thresholds: Thresholds,
    /// Call-site sampling period (see `--stack-every`).
    pub stack_every: u64,
    /// Unwind samples per second per (lock, thread) (see `--unwind-rate`).
    pub unwind_rate: u64,
    /// Function probes, when any were attached.
    pub functions: Option<FnMeta>,
    pub mode: Mode,
    /// Capacity of the per-(lock, thread) map (`--max-locks`).
    pub max_locks: u32,
}

pub fn build(
    snap: &Snapshot,
    procs: &BTreeMap<u32, ProcessInfo>,
    syms: &mut Symbols,
    meta: RunMeta,
) -> Report {
    let ctx = Ctx {
        snap,
        procs,
        empty: ProcessInfo::default(),
    };
    let mut runq = Runq::new(snap);
    let channels = lock_channels(&ctx, syms, &meta, &mut runq);
    let (mut locks, logical, lock_classes) =
        locks::model(channels, meta.duration_s, &meta.thresholds);
    locks.sort_by(|a, b| {
        b.wait
            .total_ns
            .cmp(&a.wait.total_ns)
            .then(b.contentions.cmp(&a.contentions))
    });
    locks::disambiguate_labels(&mut locks);
    let threads = threads(&ctx, &locks, meta.duration_s.max(1e-9), &mut runq);
    let kernel_locks = kernel_locks(snap);
    let (events, drops) = events_and_drops(snap);

    let mut limitations = run_limitations(snap, &meta);
    let (functions, probe_cost) = match &meta.functions {
        Some(fm) => {
            let (f, c) = functions(snap, procs, syms, fm, meta.duration_s);
            (f, Some(c))
        }
        None => (Vec::new(), None),
    };
    if let Some(c) = &probe_cost {
        limitations.push(probe_cost_note(c, &functions));
    }
    let thresholds = meta.thresholds;
    let go_locks = match &meta.functions {
        Some(fm) => go_locks(snap, procs, syms, fm, meta.duration_s, &thresholds),
        None => Vec::new(),
    };
    let lock_groups = locks::program_groups(
        &logical,
        |pid| {
            meta.targets
                .iter()
                .find(|t| t.pid == pid)
                .and_then(|t| t.program.clone())
        },
        meta.duration_s,
    );
    let mut verdict = verdict(&logical, &lock_classes, &thresholds);
    note_group(&mut verdict, &lock_groups);
    super::decide::consider_go(
        &mut verdict,
        &go_locks,
        &logical,
        &lock_classes,
        &thresholds,
    );
    note_go(&mut verdict, &mut limitations, &meta);
    limitations.extend(logical_notes(&logical));
    if let Some(inc) = super::decide::assess(&drops, meta.mode, Some(meta.max_locks)) {
        super::decide::mark_incomplete(&mut verdict, inc);
    }
    note_probes(&mut verdict, probe_cost.as_ref(), &functions);
    let pids: Vec<u32> = meta.targets.iter().map(|t| t.pid).collect();
    let modules = modules(&locks, &go_locks, &pids);
    limitations.extend(modules.iter().filter_map(stripped_note));
    Report {
        schema_version: SCHEMA_VERSION.to_string(),
        tool: Tool {
            name: "tracer".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        kernel: kernel_release(),
        hostname: hostname(),
        tracer_args: meta.tracer_args,
        targets: meta.targets,
        start_time: meta.start_time,
        duration_s: meta.duration_s,
        load_attach_ms: meta.load_attach_ms,
        mode: meta.mode,
        hooks: meta.hooks,
        thresholds,
        verdict,
        locks,
        logical_locks: logical,
        lock_classes,
        lock_groups,
        threads,
        kernel_locks,
        functions,
        go_locks,
        probe_cost,
        events,
        drops,
        maps: snap
            .map_fill
            .iter()
            .map(|(name, entries, capacity)| MapFill {
                name: name.to_lowercase(),
                entries: *entries,
                capacity: *capacity,
            })
            .collect(),
        modules,
        limitations,
    }
}

/// What every stage of the build reads: the maps and the processes.
struct Ctx<'a> {
    snap: &'a Snapshot,
    procs: &'a BTreeMap<u32, ProcessInfo>,
    /// What a process that was never read stands as.
    empty: ProcessInfo,
}

impl Ctx<'_> {
    fn proc_of(&self, pid: u32) -> &ProcessInfo {
        self.procs.get(&pid).unwrap_or(&self.empty)
    }

    /// A thread's name: as it died when it exited while traced (the last
    /// name it had, even if it lived between two reads of /proc), else as
    /// /proc last showed it.
    fn thread_name(&self, pid: u32, tid: u32) -> String {
        self.snap
            .exited_names
            .get(&(pid, tid))
            .or_else(|| self.proc_of(pid).threads.get(&tid))
            .cloned()
            .unwrap_or_default()
    }
}

/// Run-queue latency histograms, (kind, id, tgid) → buckets; each is
/// taken once, by the lock or thread it belongs to.
struct Runq(HashMap<(u32, u64, u32), Vec<(u32, u64)>>);

impl Runq {
    fn new(snap: &Snapshot) -> Self {
        let mut runq: HashMap<(u32, u64, u32), Vec<(u32, u64)>> = HashMap::new();
        for (k, c) in &snap.runq {
            let kind = k.kind_bucket & tracer_common::RUNQ_LOCK;
            let bucket = k.kind_bucket & !tracer_common::RUNQ_LOCK;
            runq.entry((kind, k.id, k.tgid))
                .or_default()
                .push((bucket, *c));
        }
        Self(runq)
    }

    /// The latency of `kind` (lock or thread) summed over `keys`.
    fn take(&mut self, kind: u32, keys: &[LockKey]) -> Latency {
        let pairs = keys
            .iter()
            .flat_map(|k| self.0.remove(&(kind, k.uaddr, k.tgid)).unwrap_or_default())
            .collect();
        let histogram = buckets(pairs);
        let max = histogram.last().map_or(0, |b| b.hi_ns);
        Latency {
            count: histogram.iter().map(|b| b.count).sum(),
            p50_ns: percentile(&histogram, 50.0, max),
            p99_ns: percentile(&histogram, 99.0, max),
            histogram,
        }
    }
}

/// The per-(lock, thread) entries folded into locks. Futex words in
/// shared memory used as shared futexes are one lock across processes, as
/// the kernel keys them (by mapped object and offset): each lock's
/// `members` are the keys it stands for.
struct Folded {
    locks: BTreeMap<LockKey, Lock>,
    ops: HashMap<LockKey, u32>,
    members: BTreeMap<LockKey, Vec<LockKey>>,
    /// Per key, the waits that returned EAGAIN as histogram (bucket,
    /// count) pairs: the kernel counts them without a histogram lookup, so
    /// each (lock, thread)'s are put in the bucket of their mean.
    eagain: HashMap<LockKey, Vec<(u32, u64)>>,
}

fn fold_lock_threads(ctx: &Ctx, shared: &HashMap<LockKey, (LockKey, Word)>) -> Folded {
    let canon = |k: LockKey| shared.get(&k).map_or(k, |(c, _)| *c);
    let mut f = Folded {
        locks: BTreeMap::new(),
        ops: HashMap::new(),
        members: BTreeMap::new(),
        eagain: HashMap::new(),
    };
    for (k, s) in &ctx.snap.lock_threads {
        let own = LockKey {
            uaddr: k.uaddr,
            tgid: k.tgid,
            _pad: 0,
        };
        let key = canon(own);
        *f.ops.entry(key).or_default() |= s.ops;
        let m = f.members.entry(key).or_default();
        if !m.contains(&own) {
            m.push(own);
        }
        let lock = f.locks.entry(key).or_insert_with(|| Lock {
            address: format!("{:#x}", key.uaddr),
            pid: key.tgid,
            ..Default::default()
        });
        let waits: u64 = s.outcomes.iter().sum();
        let eagain = s.outcomes[outcome::EAGAIN];
        if let Some(mean) = s.eagain_ns.checked_div(eagain) {
            let bucket = tracer_common::hist::bucket(mean);
            f.eagain.entry(own).or_default().push((bucket, eagain));
        }
        let o = &mut lock.outcomes;
        o.slept += s.outcomes[outcome::WOKEN];
        o.eagain += s.outcomes[outcome::EAGAIN];
        o.timed_out += s.outcomes[outcome::TIMEDOUT];
        o.interrupted += s.outcomes[outcome::INTERRUPTED];
        o.error += s.outcomes[outcome::ERROR];
        lock.contentions += waits;
        lock.wait.total_ns += s.wait_ns;
        lock.wait.max_ns = lock.wait.max_ns.max(s.max_wait_ns);
        lock.wakes.calls += s.wake_calls;
        lock.wakes.woken += s.woken;
        lock.threads.push(LockThread {
            tid: k.tid,
            pid: k.tgid,
            name: ctx.thread_name(k.tgid, k.tid),
            contentions: waits,
            wait_ns: s.wait_ns,
            max_wait_ns: s.max_wait_ns,
            wake_calls: s.wake_calls,
            woken: s.woken,
        });
    }
    // A futex that was only woken, never waited on, was not contended.
    f.locks.retain(|_, l| l.contentions > 0);
    f
}

/// Every contended futex lock as a channel for [`locks::model`]: counts,
/// decision, histogram, scheduler view, sampled sites and the unwound
/// stacks' parts.
fn lock_channels(ctx: &Ctx, syms: &mut Symbols, meta: &RunMeta, runq: &mut Runq) -> Vec<Channel> {
    let snap = ctx.snap;
    let duration = meta.duration_s.max(1e-9);
    let shared = shared_words(snap, ctx.procs);
    let Folded {
        mut locks,
        ops,
        mut members,
        mut eagain,
    } = fold_lock_threads(ctx, &shared);
    let mut stacks = LockStacks {
        hist: by_lock(&snap.hist, |k| (k.uaddr, k.tgid, k.bucket)),
        sites: by_lock(&snap.sites, |k| (k.uaddr, k.tgid, k.stack_id)),
        wake_sites: by_lock(&snap.wake_sites, |k| (k.uaddr, k.tgid, k.stack_id)),
    };
    let lock_sched: HashMap<LockKey, tracer_common::LockSched> =
        snap.lock_sched.iter().copied().collect();
    let go_pids: std::collections::BTreeSet<u32> = meta
        .targets
        .iter()
        .filter(|t| t.runtime.as_deref() == Some("go"))
        .map(|t| t.pid)
        .collect();
    let mut channels: Vec<Channel> = Vec::with_capacity(locks.len());
    for (key, lock) in locks.iter_mut() {
        let p = ctx.proc_of(key.tgid);
        let keys = members.remove(key).unwrap_or_else(|| vec![*key]);
        lock.sched = lock_sleeps(&keys, &lock_sched, runq);
        lock.contentions_per_s = lock.contentions as f64 / duration;
        lock.decision = decide(lock.contentions_per_s, &meta.thresholds);
        let pairs = keys.iter().flat_map(|k| {
            let mut p = stacks.hist.remove(k).unwrap_or_default();
            p.extend(eagain.remove(k).unwrap_or_default());
            p
        });
        lock.histogram = buckets(pairs.collect());
        lock.wait = durations(
            lock.wait.total_ns,
            lock.contentions,
            lock.wait.max_ns,
            &lock.histogram,
        );
        lock.threads
            .retain(|t| t.contentions > 0 || t.wake_calls > 0);
        lock.threads
            .sort_by(|a, b| b.wait_ns.cmp(&a.wait_ns).then(a.tid.cmp(&b.tid)));
        stacks.add_sites(ctx, lock, &keys, syms);
        match shared.get(key) {
            Some((_, word)) => {
                lock.shared = Some(shared_word(word, &keys, &lock.threads));
                lock.label = shared_label(word);
            }
            None => {
                lock.symbol = syms.data(p, key.uaddr);
                lock.label = lock.symbol.clone().unwrap_or_else(|| lock.address.clone());
            }
        }
        let unwound: Vec<_> = keys
            .iter()
            .map(|k| (snap.unwound.get(&(k.uaddr, k.tgid)), ctx.proc_of(k.tgid)))
            .collect();
        let parts = unwound_parts(lock, &unwound, syms);
        channels.push(Channel {
            ops: ops.get(key).copied().unwrap_or(0),
            program: p.exe.as_ref().map(|e| e.display().to_string()),
            go: go_pids.contains(&key.tgid),
            lock: std::mem::take(lock),
            parts,
        });
    }
    channels
}

/// A lock's sleeps as the scheduler saw them, summed over its keys.
fn lock_sleeps(
    keys: &[LockKey],
    lock_sched: &HashMap<LockKey, tracer_common::LockSched>,
    runq: &mut Runq,
) -> Option<LockSleeps> {
    let sched: Vec<_> = keys.iter().filter_map(|k| lock_sched.get(k)).collect();
    if sched.is_empty() {
        return None;
    }
    let (sleeps, blocked_ns, runnable_ns) = sched.iter().fold((0, 0, 0), |a, s| {
        (a.0 + s.sleeps, a.1 + s.blocked_ns, a.2 + s.runnable_ns)
    });
    Some(LockSleeps {
        sleeps,
        blocked_ns,
        runnable_ns,
        runnable_share: runnable_ns as f64 / (blocked_ns + runnable_ns).max(1) as f64,
        wakeup_latency: runq.take(tracer_common::RUNQ_LOCK, keys),
    })
}

/// Per lock key: its wait histogram and its sampled wait and wake sites,
/// each taken once by the lock the key belongs to.
struct LockStacks {
    hist: HashMap<LockKey, Vec<(u32, u64)>>,
    sites: HashMap<LockKey, Vec<(i32, SiteStats)>>,
    wake_sites: HashMap<LockKey, Vec<(i32, SiteStats)>>,
}

impl LockStacks {
    /// The lock's frame-pointer wait and wake sites; stacks are symbolized
    /// in the process that took them.
    fn add_sites(&mut self, ctx: &Ctx, lock: &mut Lock, keys: &[LockKey], syms: &mut Symbols) {
        let mut waits = Vec::new();
        let mut wakes = Vec::new();
        for k in keys {
            let pk = ctx.proc_of(k.tgid);
            waits.extend(top_sites(
                self.sites.remove(k).unwrap_or_default(),
                &ctx.snap.stacks,
                syms,
                pk,
            ));
            wakes.extend(top_sites(
                self.wake_sites.remove(k).unwrap_or_default(),
                &ctx.snap.stacks,
                syms,
                pk,
            ));
        }
        for (s, unwind, frames) in merge_sites(waits) {
            lock.sites.push(Site {
                count: s.count,
                wait_ns: s.wait_ns,
                samples: s.samples,
                unwind,
                call_site: implementations::caller(&frames).map(|i| call_site_label(&frames, i)),
                frames,
                threads: Vec::new(),
            });
        }
        for (s, unwind, frames) in merge_sites(wakes) {
            lock.waker_sites.push(WakerSite {
                wakes: s.count,
                woken: s.wait_ns,
                samples: s.samples,
                unwind,
                frames,
            });
        }
    }
}

/// Per thread: its waits folded across locks, with the lock it waited on
/// most, and the scheduler's view of every traced thread the hooks saw,
/// waiting or not; longest waits first.
fn threads(ctx: &Ctx, locks: &[Lock], duration: f64, runq: &mut Runq) -> Vec<Thread> {
    let mut threads: BTreeMap<(u32, u32), (Thread, u64)> = BTreeMap::new();
    let new = |tid: u32, pid: u32, name: String| {
        (
            Thread {
                tid,
                pid,
                name,
                ..Default::default()
            },
            0,
        )
    };
    for lock in locks {
        for lt in &lock.threads {
            let pid = if lt.pid != 0 { lt.pid } else { lock.pid };
            let (t, top_wait) = threads
                .entry((pid, lt.tid))
                .or_insert_with(|| new(lt.tid, pid, lt.name.clone()));
            t.contentions += lt.contentions;
            t.wait_ns += lt.wait_ns;
            t.max_wait_ns = t.max_wait_ns.max(lt.max_wait_ns);
            t.wake_calls += lt.wake_calls;
            if lt.wait_ns > *top_wait {
                *top_wait = lt.wait_ns;
                t.top_lock = Some(lock.of.clone().unwrap_or_else(|| lock.label.clone()));
            }
        }
    }
    let mut other_sleep = other_sleeps(ctx.snap);
    for (tid, s) in &ctx.snap.sched {
        let (t, _) = threads
            .entry((s.tgid, *tid))
            .or_insert_with(|| new(*tid, s.tgid, ctx.thread_name(s.tgid, *tid)));
        t.sched = Some(SchedTime {
            oncpu_ns: s.oncpu_ns,
            sleep_ns: s.sleep_ns,
            futex_sleep_ns: s.futex_sleep_ns,
            runnable_ns: s.runnable_ns,
            wakeup_latency_ns: s.wakeup_latency_ns,
            voluntary_switches: s.voluntary,
            involuntary_switches: s.involuntary,
            wakeups: s.wakeups,
            other_sleep: other_sleep.remove(tid).unwrap_or_default(),
            wakeup_latency: runq.take(
                tracer_common::RUNQ_THREAD,
                &[LockKey {
                    uaddr: u64::from(*tid),
                    tgid: s.tgid,
                    _pad: 0,
                }],
            ),
        });
    }
    let mut threads: Vec<Thread> = threads
        .into_values()
        .map(|(mut t, _)| {
            t.wait_share = t.wait_ns as f64 / (duration * 1e9);
            t
        })
        .collect();
    threads.sort_by(|a, b| b.wait_ns.cmp(&a.wait_ns).then(a.tid.cmp(&b.tid)));
    threads
}

/// Non-futex sleeps by syscall, per thread, longest first.
fn other_sleeps(snap: &Snapshot) -> HashMap<u32, Vec<SyscallTime>> {
    let mut other_sleep: HashMap<u32, Vec<SyscallTime>> = HashMap::new();
    for (k, v) in &snap.syscall_sleep {
        other_sleep.entry(k.tid).or_default().push(SyscallTime {
            syscall: crate::target::syscalls::name(k.nr),
            sleeps: v.sleeps,
            sleep_ns: v.sleep_ns,
        });
    }
    for v in other_sleep.values_mut() {
        v.sort_by(|a, b| b.sleep_ns.cmp(&a.sleep_ns).then(a.syscall.cmp(&b.syscall)));
    }
    other_sleep
}

/// One row per kernel lock (address and type), with each process's part:
/// a lock in the kernel is the same lock whoever contends it. Keyed by
/// kind, not flags: a mutex that spins, then sleeps, is one.
fn kernel_locks(snap: &Snapshot) -> Vec<KernelLock> {
    let kallsyms = crate::target::kallsyms::Kallsyms::load();
    let mut klocks: BTreeMap<(u64, String), KernelLock> = BTreeMap::new();
    for (k, v) in &snap.klocks {
        let kind = crate::target::kallsyms::lock_kind(k.flags);
        let l = klocks
            .entry((k.addr, kind.clone()))
            .or_insert_with(|| KernelLock {
                address: format!("{:#x}", k.addr),
                symbol: kallsyms.name(k.addr),
                kind,
                ..Default::default()
            });
        l.contentions += v.count;
        l.total_ns += v.total_ns;
        l.max_ns = l.max_ns.max(v.max_ns);
        match l.processes.iter_mut().find(|p| p.pid == k.tgid) {
            Some(p) => {
                p.contentions += v.count;
                p.total_ns += v.total_ns;
            }
            None => l.processes.push(KernelLockShare {
                pid: k.tgid,
                contentions: v.count,
                total_ns: v.total_ns,
            }),
        }
    }
    let mut kernel_locks: Vec<KernelLock> = klocks
        .into_values()
        .map(|mut l| {
            l.avg_ns = l.total_ns / l.contentions.max(1);
            l.processes
                .sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then(a.pid.cmp(&b.pid)));
            l.pid = l.processes.first().map_or(0, |p| p.pid);
            l
        })
        .collect();
    kernel_locks.sort_by(|a, b| {
        b.total_ns
            .cmp(&a.total_ns)
            .then(b.contentions.cmp(&a.contentions))
    });
    kernel_locks
}

/// The run's event counts, and every drop counter by name.
fn events_and_drops(snap: &Snapshot) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let c = |i: u32| snap.counters[i as usize];
    let waits: u64 = snap
        .lock_threads
        .iter()
        .map(|(_, s)| s.outcomes.iter().sum::<u64>())
        .sum();
    let wakes: u64 = snap.lock_threads.iter().map(|(_, s)| s.wake_calls).sum();
    let events = BTreeMap::from([
        ("waits".to_string(), waits),
        ("wakes".to_string(), wakes),
        ("unwind_samples".to_string(), snap.unwind_stats.received),
        ("unwind_throttled".to_string(), c(counter::UNWIND_THROTTLED)),
        ("stack_throttled".to_string(), c(counter::STACK_THROTTLED)),
        ("cpu_samples".to_string(), c(counter::CPU_SAMPLES)),
        ("threads_exited".to_string(), snap.threads_exited),
        ("exit_record_lost".to_string(), c(counter::EXIT_RECORD_LOST)),
        (
            "process_record_lost".to_string(),
            c(counter::PROCESS_RECORD_LOST),
        ),
    ]);
    let mut drops: BTreeMap<String, u64> = (0..counter::COUNT)
        .filter(|&i| counter::is_drop(i))
        .map(|i| (counter::NAMES[i as usize].to_string(), c(i)))
        .collect();
    drops.insert("map_read_errors".into(), snap.read_errors);
    drops.insert("ring_reader_failed".into(), u64::from(snap.reader_failed));
    drops.insert("unwind_failed".into(), snap.unwind_stats.failed);
    (events, drops)
}

/// What the run's settings and hooks leave unmeasured.
fn run_limitations(snap: &Snapshot, meta: &RunMeta) -> Vec<String> {
    let mut limitations = vec![format!(
        "Call sites are sampled: every wait of a thread on a lock until it has had {STACK_ALL_FIRST}, then 1 in {}, at most {} stacks/s per CPU (a sample due past that is carried by the pair's next; site counts are scaled estimates; lock and thread counts are exact).",
        meta.stack_every,
        crate::report::units::human_count(tracer_common::STACK_CPU_RATE)
    )];
    if meta.unwind_rate > 0 {
        limitations.push(format!(
            "True call sites and lock kinds come from sampled waits unwound with .eh_frame: the first {} of each (lock, thread), then up to {}/s, at most {}/s per CPU in all, each weighted by the waits it stands for. Frame-pointer sites (kernel walk) skip the caller of glibc's lock functions.",
            tracer_common::UNWIND_FIRST,
            meta.unwind_rate,
            tracer_common::UNWIND_CPU_RATE
        ));
    } else {
        limitations.push("No .eh_frame unwinding (--unwind-rate 0): call sites are frame-pointer walks, which skip the function that called a glibc lock function, and lock kinds are unknown, so condition-variable waits count as contention.".to_string());
    }
    if meta.mode == Mode::Sched {
        limitations.insert(
            0,
            "Sched-only mode: no syscall tracepoints. A contention is a futex wait that blocked, seen at its switch-out; waits that returned at once (EAGAIN) or never slept are not seen, and wait time runs from blocking to running again. Call sites and lock kinds come from the blocked waiters' stacks, unwound at their switch-out (no frame-pointer sites); a lock's wait time is split over its call sites by waits.".to_string(),
        );
    }
    let missing = snap.counters[counter::MISSING_START as usize];
    if missing > 0 {
        limitations.push(format!(
            "{missing} futex calls were already in progress when tracing began and are not measured."
        ));
    }
    for h in meta.hooks.iter().filter(|h| !h.attached) {
        limitations.push(format!("Hook {} not attached: {}.", h.name, h.note));
    }
    limitations
}

/// What the function probes cost the targets, and how counts were scaled
/// to stay within the budget.
fn probe_cost_note(c: &ProbeCost, functions: &[Function]) -> String {
    format!(
        "Function probes cost ≈{} per call here (entry + return, measured at start-up): {} calls ≈ {} of the targets' {} on-CPU time ({:.1}%){}.",
        crate::report::units::human_ns(c.per_call_ns as u64),
        c.calls,
        crate::report::units::human_ns(c.estimated_overhead_ns),
        crate::report::units::human_ns(c.target_cpu_ns),
        100.0 * c.estimated_share,
        if c.attached_fraction < 0.999
            && (functions.is_empty() || !functions.iter().all(|f| f.detached_early.is_some()))
        {
            format!(
                "; attached {:.0}% of the run to stay within the {}% budget, so call counts are scaled by {:.2}",
                100.0 * c.attached_fraction,
                super::decide::budget_str(c.budget_pct.unwrap_or(100.0)),
                1.0 / c.attached_fraction.max(1e-9)
            )
        } else {
            String::new()
        }
    )
}

/// The verdict's lock may be one process's copy of a lock every worker
/// has: say so, and that it is decided on its own rate.
fn note_group(verdict: &mut Verdict, lock_groups: &[LockGroup]) {
    if let Some(g) = lock_groups
        .iter()
        .find(|g| verdict.lock.as_deref() == Some(g.busiest.as_str()))
    {
        verdict.text.push_str(&format!(
            " · the busiest of {} processes of {} with this lock, each its own ({}/s in all)",
            g.pids.len(),
            g.program_name(),
            crate::report::units::human_rate(g.contentions_per_s)
        ));
    }
}

/// Go targets: their mutexes park in the Go scheduler, not on a futex.
/// The verdict and limitations say what was (or was not) seen of them.
fn note_go(verdict: &mut Verdict, limitations: &mut Vec<String>, meta: &RunMeta) {
    let go: Vec<String> = meta
        .targets
        .iter()
        .filter(|t| t.runtime.as_deref() == Some("go"))
        .map(|t| t.pid.to_string())
        .collect();
    if go.is_empty() {
        return;
    }
    let go_probed = meta
        .functions
        .as_ref()
        .is_some_and(|fm| fm.planned.iter().any(|p| p.role == Role::GoMutex));
    let note = format!(
        "pid {} is a Go program: goroutines contending a sync.Mutex or RWMutex park in the Go scheduler, not on a futex, so futex tracing does not see that contention; its futex waits are the Go runtime's own thread sleeps (kind go-runtime), never lock contention",
        go.join(", ")
    );
    if go_probed {
        if verdict.lock.is_none() {
            verdict.text = format!(
                "lock-free not needed: no sync.Mutex or RWMutex slow path was entered (goroutine-level probes), and {note}"
            );
        }
        limitations.push(format!(
            "{note}. Its goroutine-level contention comes from entry probes on sync.(*Mutex).lockSlow and sync.runtime_SemacquireMutex (GO LOCKS): contended acquisitions per call site from frame-pointer stacks; wait time is not measured (no return probes on goroutine stacks); a call site is the function that locked, with inlined callers folded into it."
        ));
    } else {
        if verdict.lock.is_none() {
            verdict.text = format!("no lock contention seen by futex tracing — {note}");
        }
        limitations.push(format!(
            "{note}. Goroutine-level probes were off (--no-go-mutex, or the binary has no symbols for sync's slow paths)."
        ));
    }
}

/// What the logical locks' stacks could not tell apart.
fn logical_notes(logical: &[Lock]) -> Vec<String> {
    let mut notes = Vec::new();
    let unnamed: Vec<&str> = logical
        .iter()
        .filter(|l| l.identity == "implementation")
        .map(|l| l.label.as_str())
        .collect();
    let java_named = logical.iter().any(|l| {
        l.unwound_sites
            .iter()
            .any(|s| s.frames.iter().any(implementations::is_java))
    });
    let jvm = logical.iter().any(|l| l.implementation == "HotSpot");
    if !unnamed.is_empty() {
        notes.push(format!(
            "{} counts every wait of its kind whose caller is generated code without names (a JIT's output): several locks of that kind may be in one row.",
            unnamed.join(", ")
        ));
    }
    if jvm && !java_named {
        notes.push(JAVA_NAMES.to_string());
    }
    if logical.iter().any(|l| l.kind == "juc-park") {
        notes.push("java.util.concurrent parks (kind juc-park) whose Java frames are unnamed are counted as lock waits: a ReentrantLock acquire and a Condition or queue wait park the same way, and only Java frames tell them apart (timed parks are events).".to_string());
    }
    notes
}

/// Probes that cost more than allowed slowed what was measured: the
/// verdict says so, and names the functions detached for it.
fn note_probes(verdict: &mut Verdict, probe_cost: Option<&ProbeCost>, functions: &[Function]) {
    if let Some(w) = probe_cost.and_then(super::decide::probe_cost_warning) {
        verdict.text.push_str(&format!(" · PROBES {w}"));
    }
    let detached: Vec<&str> = functions
        .iter()
        .filter(|f| f.detached_early.is_some())
        .map(|f| f.name.as_str())
        .collect();
    if !detached.is_empty() {
        verdict.text.push_str(&format!(
            " · detached early, too hot to probe within the budget: {}",
            detached.join(", ")
        ));
    }
}

/// The files the lock stacks' frames are in: distinct (module, file
/// offset) frames and how many have no name; build ids read from the file
/// (through a target's root, for containers).
fn modules(locks: &[Lock], go_locks: &[GoLock], pids: &[u32]) -> Vec<Module> {
    let mut seen: BTreeMap<&str, BTreeMap<u64, bool>> = BTreeMap::new();
    let stacks = locks
        .iter()
        .flat_map(|l| {
            l.sites
                .iter()
                .chain(&l.unwound_sites)
                .map(|s| &s.frames)
                .chain(l.waker_sites.iter().map(|w| &w.frames))
        })
        .chain(go_locks.iter().map(|g| &g.frames));
    for frames in stacks {
        for f in frames {
            if let (Some(m), Some(off)) = (f.module.as_deref(), f.file_offset) {
                seen.entry(m).or_default().insert(off, f.symbol.is_some());
            }
        }
    }
    seen.into_iter()
        .map(|(path, frames)| {
            let file = pids
                .iter()
                .map(|&pid| crate::target::proc::host_path(pid, std::path::Path::new(path)))
                .find(|p| p.exists())
                .unwrap_or_else(|| path.into());
            let id = crate::target::elf::identity(&file);
            let unnamed = frames.values().filter(|named| !**named).count() as u64;
            Module {
                path: path.to_string(),
                build_id: id.build_id,
                frames: frames.len() as u64,
                unnamed,
                // Named frames mean symbols were found (a debug file).
                stripped: !id.symtab && unnamed == frames.len() as u64,
                debug_link: id.debug_link.is_some(),
                debug_link_name: id.debug_link,
                segments: id.segments,
            }
        })
        .collect()
}

/// What to do about a module whose frames have no names.
pub fn stripped_note(m: &Module) -> Option<String> {
    if m.unnamed == 0 {
        return None;
    }
    let name = m.path.rsplit('/').next().unwrap_or(&m.path);
    let how = match &m.build_id {
        Some(id) if id.len() > 2 && m.debug_link => format!(
            "install its debug symbols (build id {id}; on Debian its -dbgsym package, which puts them at /usr/lib/debug/.build-id/{}/{}.debug) or give the directory holding .build-id/{}/{}.debug with --debug-dir",
            &id[..2],
            &id[2..],
            &id[..2],
            &id[2..]
        ),
        Some(id) => format!(
            "trace a build with symbols (build id {id}): it names no separate debug file (no .gnu_debuglink; `objcopy --add-gnu-debuglink` adds one)"
        ),
        None => "trace a build with symbols (it has no build id)".to_string(),
    };
    Some(format!(
        "{} of {} frames in {}{} have no name: they are shown as {name}+0xOFFSET (a file offset, the same in every run: `addr2line -f -e FILE-WITH-SYMBOLS OFFSET` names them later). To name them, {how}.",
        m.unnamed,
        m.frames,
        m.path,
        if m.stripped { " (stripped)" } else { "" },
    ))
}

/// Probed functions from FN_STATS / FN_SITES / FN_HIST, summed over the
/// traced processes, with their cost.
fn functions(
    snap: &Snapshot,
    procs: &BTreeMap<u32, ProcessInfo>,
    syms: &mut Symbols,
    fm: &FnMeta,
    duration_s: f64,
) -> (Vec<Function>, ProbeCost) {
    let attached = fm.attached_s.max(1e-9);
    let fraction = (fm.attached_s / duration_s.max(1e-9)).clamp(0.0, 1.0);
    let mut out = Vec::new();
    let mut total_calls = 0;
    let mut go_calls = 0;
    for ProbedFn {
        id,
        name,
        binary,
        offset,
        role,
    } in &fm.planned
    {
        let early = fm.detached.iter().find(|d| d.id == *id);
        // A function detached early was attached only until then.
        let (attached, fraction) = match early {
            Some(d) => (
                d.attached_s.max(1e-9),
                (d.attached_s / duration_s.max(1e-9)).clamp(0.0, 1.0),
            ),
            None => (attached, fraction),
        };
        if *role == Role::GoMutex {
            // Go's slow paths are locks (go_locks), not functions timed.
            go_calls += snap
                .fn_stats
                .iter()
                .filter(|(k, _)| k.fn_id == *id)
                .map(|(_, v)| v.entries)
                .sum::<u64>();
            continue;
        }
        let mut st = tracer_common::FnStats::default();
        for (_, v) in snap.fn_stats.iter().filter(|(k, _)| k.fn_id == *id) {
            st.calls += v.calls;
            st.total_ns += v.total_ns;
            st.bytes += v.bytes;
            st.max_ns = st.max_ns.max(v.max_ns);
        }
        total_calls += st.calls;
        let hist = |kind: u32| {
            buckets(
                snap.fn_hist
                    .iter()
                    .filter(|(k, _)| k.fn_id == *id && k.kind == kind)
                    .map(|(k, c)| (k.bucket, *c))
                    .collect(),
            )
        };
        let histogram = hist(tracer_common::FN_LATENCY);
        let is_alloc = *role == Role::Alloc && name != "free";
        out.push(Function {
            name: name.clone(),
            binary: binary.clone(),
            offset: *offset,
            role: role.name().to_string(),
            calls: st.calls,
            // A function detached early: the rate measured in its window
            // (its hits may go on while it is detached), extrapolated.
            calls_per_s: early.map_or(st.calls as f64 / attached, |d| d.calls_per_s),
            // (detached early: a lower bound, the probes slowed the calls
            // they counted)
            calls_estimated: match early {
                Some(d) => ((d.calls_per_s * duration_s).round() as u64).max(st.calls),
                None => (st.calls as f64 / fraction.max(1e-9)).round() as u64,
            },
            latency: durations(st.total_ns, st.calls, st.max_ns, &histogram),
            detached_early: early.map(|d| DetachedEarly {
                after_s: d.attached_s,
                share: d.share,
                calls_per_s: d.calls_per_s,
            }),
            histogram,
            bytes: is_alloc.then_some(st.bytes),
            size_histogram: if is_alloc {
                hist(tracer_common::FN_SIZE)
            } else {
                Vec::new()
            },
            sites: fn_sites(snap, procs, syms, *id),
        });
    }
    out.sort_by(|a, b| {
        b.latency
            .total_ns
            .cmp(&a.latency.total_ns)
            .then(b.calls.cmp(&a.calls))
    });
    let cost = probe_cost(fm, total_calls, go_calls, fraction);
    (out, cost)
}

/// A probed function's busiest call sites, named by their return
/// addresses.
fn fn_sites(
    snap: &Snapshot,
    procs: &BTreeMap<u32, ProcessInfo>,
    syms: &mut Symbols,
    id: u32,
) -> Vec<FnSite> {
    let mut sites: Vec<(FnKey2, tracer_common::FnStats)> = snap
        .fn_sites
        .iter()
        .filter(|(k, _)| k.fn_id == id)
        .map(|(k, v)| ((k.tgid, k.ret_addr), *v))
        .collect();
    sites.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then(a.0.cmp(&b.0)));
    let empty = ProcessInfo::default();
    sites
        .into_iter()
        .take(SITES_PER_LOCK)
        .map(|((tgid, ret), v)| {
            let f = syms.return_addr(procs.get(&tgid).unwrap_or(&empty), ret);
            FnSite {
                caller: f.symbol.is_some().then(|| frame_label(&f)),
                return_addr: format!("{ret:#x}"),
                calls: v.calls,
                total_ns: v.total_ns,
                bytes: v.bytes,
            }
        })
        .collect()
}

/// What the function probes cost the targets: calls × the per-hit cost
/// measured at start-up, against the targets' on-CPU time.
fn probe_cost(fm: &FnMeta, total_calls: u64, go_calls: u64, fraction: f64) -> ProbeCost {
    let overhead =
        (total_calls as f64 * fm.per_call_ns + go_calls as f64 * fm.go_per_call_ns) as u64;
    ProbeCost {
        functions: fm.planned.len(),
        per_call_ns: if total_calls == 0 && go_calls > 0 {
            fm.go_per_call_ns
        } else {
            fm.per_call_ns
        },
        calls: total_calls + go_calls,
        estimated_overhead_ns: overhead,
        target_cpu_ns: fm.target_cpu_ns,
        estimated_share: overhead as f64 / fm.target_cpu_ns.max(1) as f64,
        budget_pct: fm.budget_pct,
        attached_fraction: fraction,
        windows: fm.windows,
        over_budget: fm
            .budget_pct
            .is_some_and(|b| 100.0 * overhead as f64 / fm.target_cpu_ns.max(1) as f64 > b),
    }
}

/// (tgid, return address) of a function call site.
type FnKey2 = (u32, u64);

/// Go locks from the slow-path entry probes: each hit's user stack (Go
/// keeps frame pointers: the kernel's walk is whole) says which lock type
/// and which call site. lockSlow hits are a Mutex's contended acquisitions;
/// runtime_SemacquireMutex hits called from lockSlow are their sleeps, the
/// others an RWMutex's (a writer behind readers from RWMutex.Lock, else a
/// reader behind a writer: RLock is inlined).
fn go_locks(
    snap: &Snapshot,
    procs: &BTreeMap<u32, ProcessInfo>,
    syms: &mut Symbols,
    fm: &FnMeta,
    duration_s: f64,
    t: &Thresholds,
) -> Vec<GoLock> {
    let fraction = (fm.attached_s / duration_s.max(1e-9)).clamp(0.0, 1.0);
    let scale = 1.0 / fraction.max(1e-9);
    let empty = ProcessInfo::default();
    // (pid, type, call site) → (hits, sleeps, frames of the top stack, its hits)
    type Site = (u64, u64, Vec<Frame>, u64);
    let mut by: BTreeMap<(u32, String, String), Site> = BTreeMap::new();
    for ProbedFn { id, name, .. } in fm.planned.iter().filter(|p| p.role == Role::GoMutex) {
        let sem = name.ends_with("runtime_SemacquireMutex");
        let sites = snap.fn_sites.iter().filter_map(|(k, v)| {
            let (fn_id, stack_id, caller) = tracer_common::probe::stack_site(k)?;
            (fn_id == *id).then_some((k, v, stack_id, caller))
        });
        for (k, v, stack_id, caller) in sites {
            let p = procs.get(&k.tgid).unwrap_or(&empty);
            // The entry, its caller (read at entry), then the kernel's walk
            // from the caller's frame.
            let mut ips: Vec<u64> = Vec::new();
            if let Some(s) = snap.stacks.get(&stack_id).filter(|_| stack_id != NO_STACK) {
                ips.extend(s.first());
                if caller != 0 {
                    ips.push(caller);
                }
                ips.extend(s.iter().skip(1));
            }
            let frames = syms.stack(p, &ips);
            let sym = |f: &Frame| f.symbol.clone().unwrap_or_default();
            let caller_is = |s: &str| frames.get(1).is_some_and(|f| sym(f) == s);
            let rw_write = frames.iter().any(|f| sym(f) == "sync.(*RWMutex).Lock");
            let (lock_type, sleep_only) = if sem && caller_is("sync.(*Mutex).lockSlow") {
                (
                    if rw_write {
                        "sync.RWMutex (write)"
                    } else {
                        "sync.Mutex"
                    },
                    true,
                )
            } else if sem {
                (
                    if rw_write {
                        "sync.RWMutex (write)"
                    } else {
                        "sync.RWMutex (read)"
                    },
                    false,
                )
            } else if rw_write {
                ("sync.RWMutex (write)", false)
            } else {
                ("sync.Mutex", false)
            };
            let site = frames
                .iter()
                .skip(1)
                .find(|f| {
                    let s = sym(f);
                    !(s.starts_with("sync.") || s.starts_with("runtime.") || s.is_empty())
                })
                .map(frame_label)
                .unwrap_or_else(|| "[unknown caller]".to_string());
            let e =
                by.entry((k.tgid, lock_type.to_string(), site))
                    .or_insert((0, 0, Vec::new(), 0));
            if sleep_only {
                e.1 += v.calls;
            } else {
                e.0 += v.calls;
                if sem {
                    e.1 += v.calls;
                }
                if v.calls > e.3 {
                    e.2 = frames;
                    e.3 = v.calls;
                }
            }
        }
    }
    let mut out: Vec<GoLock> = by
        .into_iter()
        .filter(|(_, (hits, ..))| *hits > 0)
        .map(|((pid, lock_type, site), (hits, sleeps, frames, _))| {
            let contentions = (hits as f64 * scale).round() as u64;
            let rate = contentions as f64 / duration_s.max(1e-9);
            GoLock {
                label: format!("{lock_type} @ {site}"),
                lock_type,
                pid,
                call_site: site,
                contentions,
                contentions_per_s: rate,
                semaphore: ((sleeps as f64 * scale).round() as u64).min(contentions),
                hits,
                decision: decide(rate, t),
                frames,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (b.decision, b.contentions_per_s)
            .partial_cmp(&(a.decision, a.contentions_per_s))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.label.cmp(&b.label))
    });
    out
}

/// Groups per-lock map entries by lock: (futex word, tgid, detail) → value
/// becomes lock → [(detail, value)].
fn by_lock<K, V: Copy, D>(
    entries: &[(K, V)],
    split: impl Fn(&K) -> (u64, u32, D),
) -> HashMap<LockKey, Vec<(D, V)>> {
    let mut out: HashMap<LockKey, Vec<(D, V)>> = HashMap::new();
    for (k, v) in entries {
        let (uaddr, tgid, detail) = split(k);
        out.entry(LockKey {
            uaddr,
            tgid,
            _pad: 0,
        })
        .or_default()
        .push((detail, *v));
    }
    out
}

/// Samples taken when a wait blocks (sched mode, at switch-out) cannot
/// know how long it will last: when no sample of the channel carries a
/// duration, each thread's exact wait time is split over its stacks by
/// the waits they stand for.
fn with_wait_estimates<'p>(
    lock: &Lock,
    mut unwound: Vec<(Unwound, &'p ProcessInfo)>,
) -> Vec<(Unwound, &'p ProcessInfo)> {
    if unwound.iter().any(|(u, _)| u.wait_ns > 0) {
        return unwound;
    }
    let mut sampled: BTreeMap<u32, u64> = BTreeMap::new();
    for (u, _) in &unwound {
        for (&tid, &(waits, _)) in &u.threads {
            *sampled.entry(tid).or_default() += waits;
        }
    }
    for (u, _) in &mut unwound {
        u.wait_ns = 0;
        for (tid, (waits, wait_ns)) in &mut u.threads {
            let exact = lock
                .threads
                .iter()
                .find(|t| t.tid == *tid)
                .map_or(0, |t| t.wait_ns);
            let of = sampled.get(tid).copied().unwrap_or(0);
            *wait_ns = if of == 0 {
                0
            } else {
                (u128::from(exact) * u128::from(*waits) / u128::from(of)) as u64
            };
            u.wait_ns += *wait_ns;
        }
    }
    unwound
}

/// A channel's stacks, classified: its true call sites (sampled waits
/// unwound with .eh_frame; the frame-pointer sites when none were), and
/// its waits grouped by what the stacks say they are.
fn unwound_parts(
    lock: &mut Lock,
    stacks: &[(Option<&Vec<Unwound>>, &ProcessInfo)],
    syms: &mut Symbols,
) -> Vec<Part> {
    let mut parts: BTreeMap<(Decided, Kind, &'static str, Option<String>), Part> = BTreeMap::new();
    let mut add = |c: &implementations::Classification, frames: &[Frame], site: Site, unwind| {
        let call_site = c.caller.map(|i| call_site_label(frames, i));
        let e = parts
            .entry((c.role.clone(), c.kind, c.implementation, call_site.clone()))
            .or_insert_with(|| Part {
                decided: c.role.clone(),
                kind: c.kind,
                implementation: c.implementation,
                frame: c.frame.clone(),
                call_site,
                unwind,
                waits: 0,
                wait_ns: 0,
                sites: Vec::new(),
            });
        e.waits += site.count;
        e.wait_ns += site.wait_ns;
        e.sites.push(site);
    };
    let unwound: Vec<(Unwound, &ProcessInfo)> = with_wait_estimates(
        lock,
        stacks
            .iter()
            .flat_map(|(s, p)| s.iter().flat_map(|s| s.iter()).map(|u| (u.clone(), *p)))
            .collect(),
    );
    match (!unwound.is_empty()).then_some(unwound) {
        Some(stacks) => {
            let mut listed = Vec::new();
            for (u, p) in &stacks {
                let (u, p) = (u, *p);
                let frames = syms.stack(p, &u.frames);
                let c = implementations::classify(&frames);
                let site = Site {
                    count: u.waits,
                    wait_ns: u.wait_ns,
                    samples: u.samples,
                    unwind: "eh_frame".to_string(),
                    call_site: c.caller.map(|i| call_site_label(&frames, i)),
                    frames: frames.clone(),
                    threads: site_threads(&u.threads),
                };
                listed.push(site.clone());
                add(&c, &frames, site, "eh_frame");
            }
            lock.unwound_sites = locks::same_frames_merged(listed);
            lock.unwound_sites.truncate(SITES_PER_LOCK);
        }
        None => {
            for site in lock.sites.clone() {
                if site.frames.is_empty() {
                    continue;
                }
                let c = implementations::classify(&site.frames);
                let frames = site.frames.clone();
                add(&c, &frames, site, "frame-pointer");
            }
        }
    }
    parts.into_values().collect()
}

/// Sites of one lock taken in several processes: the same frames are one
/// site (their counts add), largest first, the first `SITES_PER_LOCK`.
fn merge_sites(list: Vec<(SiteStats, String, Vec<Frame>)>) -> Vec<(SiteStats, String, Vec<Frame>)> {
    let mut out: Vec<(SiteStats, String, Vec<Frame>)> = Vec::new();
    for (s, unwind, frames) in list {
        match out
            .iter_mut()
            .find(|o| o.1 == unwind && o.2 == frames && !frames.is_empty())
        {
            Some(o) => {
                o.0.count += s.count;
                o.0.wait_ns += s.wait_ns;
                o.0.samples += s.samples;
            }
            None => out.push((s, unwind, frames)),
        }
    }
    out.sort_by(|a, b| {
        b.0.count
            .cmp(&a.0.count)
            .then(b.0.wait_ns.cmp(&a.0.wait_ns))
    });
    out.truncate(SITES_PER_LOCK);
    out
}

/// A shared-memory word, as the kernel keys it.
#[derive(Clone, Debug)]
struct Word {
    object: String,
    dev: u64,
    inode: u64,
    offset: u64,
}

/// The channels that are one shared futex: each key whose calls were not
/// private and whose word lies in a shared mapping of its process, with
/// the key the lock is shown under (the process that waited most on it,
/// then the lowest pid), and the word.
fn shared_words(
    snap: &Snapshot,
    procs: &BTreeMap<u32, ProcessInfo>,
) -> HashMap<LockKey, (LockKey, Word)> {
    // Per key: whether some call was shared, and its waits.
    let mut per_key: BTreeMap<LockKey, (bool, u64)> = BTreeMap::new();
    for (k, s) in &snap.lock_threads {
        let e = per_key
            .entry(LockKey {
                uaddr: k.uaddr,
                tgid: k.tgid,
                _pad: 0,
            })
            .or_default();
        e.0 |= s.ops & tracer_common::OPS_SHARED != 0;
        e.1 += s.outcomes.iter().sum::<u64>();
    }
    // (device, inode, offset) → (the processes' keys and waits, object)
    type Keys = (Vec<(LockKey, u64)>, String);
    let mut by_word: BTreeMap<(u64, u64, u64), Keys> = BTreeMap::new();
    for (key, (shared, waits)) in per_key {
        if !shared {
            continue;
        }
        let Some((m, id)) = procs.get(&key.tgid).and_then(|p| {
            p.maps
                .iter()
                .find_map(|m| m.shared_key(key.uaddr).map(|id| (m, id)))
        }) else {
            continue;
        };
        let e = by_word
            .entry(id)
            .or_insert_with(|| (Vec::new(), m.name.clone()));
        e.0.push((key, waits));
    }
    let mut out = HashMap::new();
    for ((dev, inode, offset), (keys, object)) in by_word {
        let first = keys
            .iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.tgid.cmp(&a.0.tgid)))
            .map(|k| k.0)
            .expect("a word has a key");
        let word = Word {
            object,
            dev,
            inode,
            offset,
        };
        for (k, _) in keys {
            out.insert(k, (first, word.clone()));
        }
    }
    out
}

/// The report's name for a shared word: its object and offset.
fn shared_label(w: &Word) -> String {
    let object = w.object.trim_end_matches(" (deleted)");
    let object = match object {
        "/dev/zero" | "" => "shared memory".to_string(),
        o if o.starts_with("/SYSV") => format!("SysV shm {}", &o[1..]),
        o => o.to_string(),
    };
    format!("{object}+{:#x}", w.offset)
}

/// The per-process split of a shared lock.
fn shared_word(w: &Word, keys: &[LockKey], threads: &[LockThread]) -> SharedWord {
    // One entry per process (a process may map the object twice: its
    // first address is shown, its threads counted once).
    let mut seen = std::collections::BTreeSet::new();
    let mut processes: Vec<ProcessShare> = keys
        .iter()
        .filter(|k| seen.insert(k.tgid))
        .map(|k| {
            let mine = threads.iter().filter(|t| t.pid == k.tgid);
            let mut p = ProcessShare {
                pid: k.tgid,
                address: format!("{:#x}", k.uaddr),
                ..Default::default()
            };
            for t in mine {
                p.contentions += t.contentions;
                p.wait_ns += t.wait_ns;
                p.wake_calls += t.wake_calls;
                p.woken += t.woken;
            }
            p
        })
        .collect();
    processes.sort_by(|a, b| b.wait_ns.cmp(&a.wait_ns).then(a.pid.cmp(&b.pid)));
    SharedWord {
        object: w.object.clone(),
        dev: format!("{:02x}:{:02x}", w.dev >> 20, w.dev & 0xfffff),
        inode: w.inode,
        offset: w.offset,
        processes,
    }
}

fn site_threads(t: &BTreeMap<u32, (u64, u64)>) -> Vec<SiteThread> {
    let mut v: Vec<SiteThread> = t
        .iter()
        .map(|(&tid, &(count, wait_ns))| SiteThread {
            tid,
            count,
            wait_ns,
        })
        .collect();
    v.sort_by(|a, b| b.wait_ns.cmp(&a.wait_ns).then(a.tid.cmp(&b.tid)));
    v
}

/// The largest sites (by count, then amount), symbolized: (stats, unwind
/// method, frames innermost first).
fn top_sites(
    mut list: Vec<(i32, SiteStats)>,
    stacks: &BTreeMap<i32, Vec<u64>>,
    syms: &mut Symbols,
    p: &ProcessInfo,
) -> Vec<(SiteStats, String, Vec<Frame>)> {
    list.sort_by(|a, b| {
        b.1.count
            .cmp(&a.1.count)
            .then(b.1.wait_ns.cmp(&a.1.wait_ns))
            .then(a.0.cmp(&b.0))
    });
    list.into_iter()
        .take(SITES_PER_LOCK)
        .map(|(stack_id, s)| match stacks.get(&stack_id) {
            Some(ips) if stack_id != NO_STACK => {
                (s, "frame-pointer".to_string(), syms.stack(p, ips))
            }
            _ => (s, "none".to_string(), Vec::new()),
        })
        .collect()
}

/// How to get Java frames named (said once when a JVM's are not).
pub const JAVA_NAMES: &str = "Java frames have no names: the JVM wrote no perf map (/tmp/perf-PID.map) the tracer could read when the report was built. Start the JVM with -XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit (written when it exits), or run `jcmd PID Compiler.perfmap` before tracing ends; add -XX:+PreserveFramePointer so that stacks go on through compiled Java frames to the Java call site.";

/// A call site's label: the frame's function (file:line), or what made a
/// frame of generated code.
fn call_site_label(frames: &[Frame], i: usize) -> String {
    if implementations::is_interpreter(&frames[i]) {
        "[interpreted Java]".to_string()
    } else if implementations::is_generated(&frames[i]) {
        implementations::generated_label(frames).to_string()
    } else {
        frame_label(&frames[i])
    }
}

pub fn frame_label(f: &Frame) -> String {
    let name = f.name();
    match (&f.file, f.line) {
        (Some(file), Some(line)) => {
            format!(
                "{name} ({}:{line})",
                file.rsplit('/').next().unwrap_or(file)
            )
        }
        _ => name,
    }
}

pub fn kernel_release() -> String {
    crate::target::proc::os_release().unwrap_or_default()
}

fn hostname() -> String {
    crate::target::proc::hostname().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::{HistKey, LockThreadKey, LockThreadStats, SiteKey, SiteStats, hist};

    fn meta() -> RunMeta {
        RunMeta {
            tracer_args: vec![],
            targets: vec![],
            start_time: "2026-11-24T00:00:00Z".into(),
            duration_s: 2.0,
            load_attach_ms: 10.0,
            hooks: vec![],
            thresholds: Thresholds::default(),
            stack_every: 16,
            unwind_rate: 10,
            functions: None,
            mode: Mode::Full,
            max_locks: 16384,
        }
    }

    #[test]
    fn folds_threads_into_locks_and_locks_into_threads() {
        let mut snap = Snapshot::default();
        let stats = |woken: u64, eagain: u64, wait: u64| LockThreadStats {
            outcomes: [woken, eagain, 0, 0, 0],
            wait_ns: wait,
            max_wait_ns: wait / 2,
            ..Default::default()
        };
        snap.lock_threads = vec![
            (
                LockThreadKey {
                    uaddr: 0x1000,
                    tgid: 7,
                    tid: 8,
                },
                stats(1500, 100, 3_000_000),
            ),
            (
                LockThreadKey {
                    uaddr: 0x1000,
                    tgid: 7,
                    tid: 9,
                },
                stats(900, 0, 1_000_000),
            ),
            (
                LockThreadKey {
                    uaddr: 0x2000,
                    tgid: 7,
                    tid: 9,
                },
                stats(10, 0, 9_000_000),
            ),
            // Wake-only futex: not a contended lock.
            (
                LockThreadKey {
                    uaddr: 0x3000,
                    tgid: 7,
                    tid: 9,
                },
                LockThreadStats {
                    wake_calls: 5,
                    ..Default::default()
                },
            ),
        ];
        snap.hist = vec![(
            HistKey {
                uaddr: 0x1000,
                tgid: 7,
                bucket: hist::bucket(1000),
            },
            2500,
        )];
        snap.sites = vec![(
            SiteKey {
                uaddr: 0x1000,
                tgid: 7,
                stack_id: NO_STACK,
            },
            SiteStats {
                count: 2500,
                wait_ns: 4_000_000,
                samples: 200,
            },
        )];
        let r = build(&snap, &BTreeMap::new(), &mut Symbols::new(), meta());
        assert_eq!(r.locks.len(), 2);
        // 0x2000 has more total wait, so it sorts first.
        assert_eq!(r.locks[0].address, "0x2000");
        let l = &r.locks[1];
        assert_eq!(l.contentions, 2500);
        assert_eq!(l.outcomes.slept, 2400);
        assert_eq!(l.outcomes.eagain, 100);
        assert_eq!(l.contentions_per_s, 1250.0);
        assert_eq!(l.decision, Decision::Recommended);
        assert_eq!(l.wait.total_ns, 4_000_000);
        assert_eq!(l.wait.max_ns, 1_500_000);
        assert_eq!(l.sites[0].unwind, "none");
        assert_eq!(r.verdict.lock.as_deref(), Some("0x1000"));
        let t9 = r.threads.iter().find(|t| t.tid == 9).unwrap();
        assert_eq!(t9.contentions, 910);
        assert_eq!(t9.wait_ns, 10_000_000);
        assert_eq!(t9.top_lock.as_deref(), Some("0x2000"));
        assert!((t9.wait_share - 0.005).abs() < 1e-9);
        assert!(r.drops.contains_key("missing_start"));
        assert!(r.drops.contains_key("map_read_errors"));
        // Every counter but the five events, plus the three userspace ones.
        assert_eq!(r.drops.len(), counter::COUNT as usize - 5 + 3);
        for event in ["unwind_throttled", "stack_throttled", "cpu_samples"] {
            assert!(!r.drops.contains_key(event) && r.events.contains_key(event));
        }
        assert_eq!(l.kind, "unknown", "no unwound stacks");
        assert_eq!(r.events["waits"], 2500 + 10);
        assert_eq!(r.events["wakes"], 5);
    }

    /// The kernel counts EAGAIN waits without a histogram lookup: they are
    /// put in the bucket of each (lock, thread)'s mean, beside the slept
    /// waits' buckets, and the histogram holds every contention.
    #[test]
    fn eagain_waits_join_the_histogram_at_their_mean() {
        let mut snap = Snapshot::default();
        let key = |tid| LockThreadKey {
            uaddr: 0x1000,
            tgid: 7,
            tid,
        };
        snap.lock_threads = vec![
            (
                key(8),
                LockThreadStats {
                    outcomes: [10, 90, 0, 0, 0],
                    wait_ns: 10 * 50_000 + 90 * 700,
                    eagain_ns: 90 * 700,
                    max_wait_ns: 50_000,
                    ..Default::default()
                },
            ),
            (
                key(9),
                LockThreadStats {
                    outcomes: [0, 100, 0, 0, 0],
                    wait_ns: 100 * 702,
                    eagain_ns: 100 * 702,
                    max_wait_ns: 2_000,
                    ..Default::default()
                },
            ),
        ];
        snap.hist = vec![(
            HistKey {
                uaddr: 0x1000,
                tgid: 7,
                bucket: hist::bucket(50_000),
            },
            10,
        )];
        let r = build(&snap, &BTreeMap::new(), &mut Symbols::new(), meta());
        let l = &r.locks[0];
        assert_eq!(l.contentions, 200);
        assert_eq!(l.histogram.iter().map(|b| b.count).sum::<u64>(), 200);
        // 700 and 702 ns share a bucket (1/32 of 512..1024: 688..704 ns):
        // one bucket of 190, not two rows of one index.
        let fast = l
            .histogram
            .iter()
            .find(|b| b.lo_ns <= 700 && 700 < b.hi_ns)
            .unwrap();
        assert_eq!(fast.count, 190);
        assert_eq!(l.histogram.len(), 2);
        assert!((690..=720).contains(&l.wait.p50_ns), "{:?}", l.wait);
        assert!(l.wait.p99_ns >= 40_000, "{:?}", l.wait);
    }
}

//! From on-CPU samples to a profile: symbolized stacks, functions by self
//! and total CPU, threads, the action rules' findings, and (`--wall`) each
//! thread's traced time split into CPU, lock waits, other sleeps and
//! runnable, with the locks of the run's contention report.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::{
    kernel::collect::Snapshot,
    report::{
        model::{Decision, Frame, Hook, Report, Target},
        profile::{
            self as p, Caller, Counters, CpuStack, Finding, FunctionCpu, Profile, Sampling,
            ThreadCpu, Wall, WallPart, WallThread,
        },
    },
    target::{kallsyms::Kallsyms, process::ProcessInfo, symbolize::Symbols},
};

/// A function over this share of the CPU time sampled is a target.
pub const HOT_FUNCTION: f64 = 0.20;
/// Cache misses over this share of cache references are a finding.
pub const CACHE_MISSES: f64 = 0.10;
/// Branch misses over this share of branches are a finding.
pub const BRANCH_MISSES: f64 = 0.05;
/// Lost samples over this share of those taken make the profile
/// incomplete.
pub const LOST_INCOMPLETE: f64 = 0.01;

/// What the profile says about the run itself.
pub struct ProfileMeta {
    pub tracer_args: Vec<String>,
    pub targets: Vec<Target>,
    pub start_time: String,
    pub duration_s: f64,
    pub load_attach_ms: f64,
    pub hooks: Vec<Hook>,
    pub frequency: u64,
    pub cpus: u32,
    /// Build the wall-clock view (the report traced futex waits).
    pub wall: bool,
    /// The counting events' values, when they were opened.
    pub counters: Option<crate::kernel::counters::CounterValues>,
}

pub fn build(
    snap: &Snapshot,
    procs: &BTreeMap<u32, ProcessInfo>,
    syms: &mut Symbols,
    report: Report,
    meta: ProfileMeta,
) -> Profile {
    let names = thread_names(&report, snap, procs);
    let stacks = symbolize(snap, procs, syms, &names);
    let received: u64 = stacks.iter().map(|s| s.samples).sum();
    let sampling = sampling(snap, &meta, received);
    let functions = functions(&stacks, received);
    let threads = threads(&stacks, &report, received);
    let mut findings = Vec::new();
    for f in functions.iter().filter(|f| f.self_share > HOT_FUNCTION) {
        findings.push(Finding {
            rule: "hot_function".into(),
            subject: f.name.clone(),
            value: f.self_share,
            text: format!(
                "{} uses {} of the CPU time sampled by itself (over {:.0}%): an optimization target",
                f.name,
                p::pct(f.self_share),
                100.0 * HOT_FUNCTION
            ),
        });
    }
    let counters = counters(meta.counters.as_ref(), &names);
    for c in &counters.processes {
        let subject = format!("pid {} {}", c.pid, c.name);
        if let Some(r) = c.cache_miss_rate.filter(|r| *r > CACHE_MISSES) {
            findings.push(Finding {
                rule: "cache_misses".into(),
                subject: subject.clone(),
                value: r,
                text: format!(
                    "{subject}: {} of cache references miss (over {:.0}%): prefetching or a denser data layout may pay",
                    p::pct(r),
                    100.0 * CACHE_MISSES
                ),
            });
        }
        if let Some(r) = c.branch_miss_rate.filter(|r| *r > BRANCH_MISSES) {
            findings.push(Finding {
                rule: "branch_misses".into(),
                subject: subject.clone(),
                value: r,
                text: format!(
                    "{subject}: {} of branches are mispredicted (over {:.0}%): branchless code on the hot path may pay",
                    p::pct(r),
                    100.0 * BRANCH_MISSES
                ),
            });
        }
    }
    let wall = meta.wall.then(|| wall(&report, &stacks));
    let mut incomplete = None;
    if sampling.taken > 0 && sampling.lost as f64 > LOST_INCOMPLETE * sampling.taken as f64 {
        incomplete = Some(format!(
            "{} of {} samples were lost (the event ring was full): shares may be off; lower -F",
            sampling.lost, sampling.taken
        ));
    }
    if meta.wall
        && let Some(why) = &report.verdict.incomplete
    {
        incomplete.get_or_insert_with(|| {
            format!(
                "the contention data behind the wall-clock view is incomplete: {}",
                why.causes.join("; ")
            )
        });
    }
    let mut limitations = Vec::new();
    if !meta.wall {
        limitations.push(
            "no futex tracing in this run: lock waits are not split out (run with --wall)".into(),
        );
    }
    Profile {
        kind: p::KIND.into(),
        schema_version: p::SCHEMA.into(),
        tool: report.tool.clone(),
        kernel: report.kernel.clone(),
        hostname: report.hostname.clone(),
        tracer_args: meta.tracer_args,
        targets: meta.targets,
        start_time: meta.start_time,
        duration_s: meta.duration_s,
        load_attach_ms: meta.load_attach_ms,
        hooks: meta.hooks,
        sampling,
        findings,
        functions,
        threads,
        counters,
        stacks,
        wall,
        contention: meta.wall.then(|| Box::new(report)),
        incomplete,
        limitations,
    }
}

/// The counters per thread and per process, with their derived rates.
fn counters(
    values: Option<&crate::kernel::counters::CounterValues>,
    names: &HashMap<u32, String>,
) -> Counters {
    let Some(v) = values else {
        return Counters {
            note: "counters were not opened".into(),
            ..Default::default()
        };
    };
    let note = match &v.hardware {
        Ok(()) => String::new(),
        Err(why) => format!("hardware counters not available: {why}"),
    };
    let set = |pid: u32, tid: u32, name: String, values: BTreeMap<String, u64>| {
        let ratio = |a: &str, b: &str| {
            let (x, y) = (*values.get(a)?, *values.get(b)?);
            (y > 0).then(|| x as f64 / y as f64)
        };
        p::CounterSet {
            pid,
            tid,
            name,
            ipc: ratio("instructions", "cycles"),
            cache_miss_rate: ratio("cache_misses", "cache_references"),
            branch_miss_rate: ratio("branch_misses", "branches"),
            values,
        }
    };
    let mut threads = Vec::new();
    let mut procs: BTreeMap<u32, BTreeMap<String, u64>> = BTreeMap::new();
    for (&(pid, tid), counts) in &v.values {
        let values: BTreeMap<String, u64> =
            counts.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        let total = procs.entry(pid).or_default();
        for (k, n) in &values {
            *total.entry(k.clone()).or_default() += n;
        }
        let name = names
            .get(&tid)
            .cloned()
            .unwrap_or_else(|| format!("tid {tid}"));
        threads.push(set(pid, tid, name, values));
    }
    let processes = procs
        .into_iter()
        .map(|(pid, values)| {
            let name = names.get(&pid).cloned().unwrap_or_default();
            set(pid, 0, name, values)
        })
        .collect();
    Counters {
        available: v.hardware.is_ok(),
        note,
        processes,
        threads,
    }
}

/// tid → name, from /proc, the exited threads and the report's threads.
fn thread_names(
    report: &Report,
    snap: &Snapshot,
    procs: &BTreeMap<u32, ProcessInfo>,
) -> HashMap<u32, String> {
    let mut m: HashMap<u32, String> = procs
        .values()
        .flat_map(|p| p.threads.iter().map(|(&tid, n)| (tid, n.clone())))
        .collect();
    m.extend(
        snap.exited_names
            .iter()
            .map(|(&(_, tid), n)| (tid, n.clone())),
    );
    for t in &report.threads {
        m.insert(t.tid, t.name.clone());
    }
    m
}

fn sampling(snap: &Snapshot, meta: &ProfileMeta, received: u64) -> Sampling {
    use tracer_common::counter;
    let st = snap.cpu_stats;
    Sampling {
        event: "cpu-clock".into(),
        frequency_hz: meta.frequency,
        period_ns: 1_000_000_000 / meta.frequency.max(1),
        cpus: meta.cpus,
        // The counters are read before the ring's last drain: samples taken
        // in between are received but not yet counted as taken.
        taken: snap.counters[counter::CPU_SAMPLES as usize]
            .max(received + snap.counters[counter::CPU_RING_FULL as usize]),
        received,
        lost: snap.counters[counter::CPU_RING_FULL as usize],
        unwound_eh_frame: st.eh_frame,
        unwound_frame_pointers: st.frame_pointers,
        one_frame: st.one_frame,
        in_kernel: snap
            .cpu
            .iter()
            .filter(|s| !s.kernel.is_empty())
            .map(|s| s.samples)
            .sum(),
        sampled_cpu_ns: snap.cpu.iter().map(|s| s.period_ns).sum(),
    }
}

/// Names every sampled stack: kernel frames from /proc/kallsyms, user
/// frames as lock stacks are named (symbols, debug files, perf maps).
fn symbolize(
    snap: &Snapshot,
    procs: &BTreeMap<u32, ProcessInfo>,
    syms: &mut Symbols,
    names: &HashMap<u32, String>,
) -> Vec<CpuStack> {
    let kallsyms = if snap.cpu.iter().any(|s| !s.kernel.is_empty()) {
        Kallsyms::load_code()
    } else {
        Kallsyms::empty()
    };
    let empty = ProcessInfo::default();
    // One lookup per (process, address, first frame or not).
    let mut memo: HashMap<(u32, u64, bool), Frame> = HashMap::new();
    let mut out = Vec::with_capacity(snap.cpu.len());
    for s in &snap.cpu {
        let proc_ = procs.get(&s.tgid).unwrap_or(&empty);
        let mut frames: Vec<Frame> = s
            .kernel
            .iter()
            .map(|&ip| {
                let (symbol, offset) = kallsyms.function(ip).unzip();
                Frame {
                    addr: format!("{ip:#x}"),
                    symbol,
                    offset,
                    module: Some("[kernel]".into()),
                    ..Default::default()
                }
            })
            .collect();
        for (i, &ip) in s.user.iter().enumerate() {
            let first = i == 0;
            let f = memo.entry((s.tgid, ip, first)).or_insert_with(|| {
                if first {
                    syms.stack(proc_, &[ip]).pop().unwrap_or_default()
                } else {
                    syms.return_addr(proc_, ip)
                }
            });
            frames.push(f.clone());
        }
        out.push(CpuStack {
            tid: s.tid,
            pid: s.tgid,
            thread: names
                .get(&s.tid)
                .cloned()
                .unwrap_or_else(|| format!("tid {}", s.tid)),
            samples: s.samples,
            cpu_ns: s.period_ns,
            unwind: if s.frame_pointers * 2 > s.samples {
                "frame-pointer".into()
            } else {
                "eh_frame".into()
            },
            frames,
        });
    }
    out
}

/// Functions by self CPU, with totals, callers and their hottest path.
fn functions(stacks: &[CpuStack], received: u64) -> Vec<FunctionCpu> {
    #[derive(Default)]
    struct Acc {
        module: Option<String>,
        self_samples: u64,
        total_samples: u64,
        self_ns: u64,
        total_ns: u64,
        callers: BTreeMap<String, u64>,
        /// (samples, path) of the hottest stack holding it.
        hottest: (u64, Vec<String>),
    }
    let mut acc: HashMap<String, Acc> = HashMap::new();
    for s in stacks {
        let names: Vec<String> = s.frames.iter().map(Frame::name).collect();
        let mut seen = HashSet::new();
        for (i, name) in names.iter().enumerate() {
            let a = acc.entry(name.clone()).or_default();
            if a.module.is_none() {
                a.module = s.frames[i].module.clone();
            }
            if i == 0 {
                a.self_samples += s.samples;
                a.self_ns += s.cpu_ns;
            }
            // Once per stack (recursion), at its innermost occurrence.
            if !seen.insert(name.clone()) {
                continue;
            }
            a.total_samples += s.samples;
            a.total_ns += s.cpu_ns;
            if let Some(caller) = names.get(i + 1) {
                *a.callers.entry(caller.clone()).or_default() += s.samples;
            }
            if s.samples > a.hottest.0 {
                a.hottest = (s.samples, names[i..].iter().rev().cloned().collect());
            }
        }
    }
    let share = |n: u64| n as f64 / received.max(1) as f64;
    let mut v: Vec<FunctionCpu> = acc
        .into_iter()
        .map(|(name, a)| {
            let mut callers: Vec<Caller> = a
                .callers
                .into_iter()
                .map(|(name, samples)| Caller {
                    name,
                    samples,
                    share: samples as f64 / a.total_samples.max(1) as f64,
                })
                .collect();
            callers.sort_by(|x, y| y.samples.cmp(&x.samples).then(x.name.cmp(&y.name)));
            callers.truncate(8);
            FunctionCpu {
                name,
                module: a.module,
                self_samples: a.self_samples,
                total_samples: a.total_samples,
                self_share: share(a.self_samples),
                total_share: share(a.total_samples),
                self_ns: a.self_ns,
                total_ns: a.total_ns,
                callers,
                path: a.hottest.1,
            }
        })
        .collect();
    v.sort_by(|a, b| {
        (b.self_samples, b.total_samples)
            .cmp(&(a.self_samples, a.total_samples))
            .then(a.name.cmp(&b.name))
    });
    v
}

fn threads(stacks: &[CpuStack], report: &Report, received: u64) -> Vec<ThreadCpu> {
    let mut by: BTreeMap<u32, ThreadCpu> = BTreeMap::new();
    for s in stacks {
        let t = by.entry(s.tid).or_insert_with(|| ThreadCpu {
            tid: s.tid,
            pid: s.pid,
            name: s.thread.clone(),
            ..Default::default()
        });
        t.samples += s.samples;
        t.sampled_ns += s.cpu_ns;
    }
    for t in report.threads.iter().filter(|t| t.sched.is_some()) {
        let e = by.entry(t.tid).or_insert_with(|| ThreadCpu {
            tid: t.tid,
            pid: t.pid,
            name: t.name.clone(),
            ..Default::default()
        });
        e.oncpu_ns = t.sched.as_ref().map(|s| s.oncpu_ns);
    }
    let mut v: Vec<ThreadCpu> = by
        .into_values()
        .map(|mut t| {
            t.share = t.samples as f64 / received.max(1) as f64;
            t
        })
        .collect();
    v.sort_by(|a, b| {
        (b.samples, b.oncpu_ns)
            .cmp(&(a.samples, a.oncpu_ns))
            .then(a.tid.cmp(&b.tid))
    });
    v
}

/// The note the wall-clock view carries.
pub const WALL_NOTE: &str = "traced time from the scheduler hooks; lock waits are futex wait times as in the contention report, split by call site from the unwound samples; other sleeps by syscall; the rest is on CPU (split by sampled stack) and runnable, in their measured proportion";

/// Each traced thread's time, split so that its parts sum to its traced
/// time exactly.
fn wall(report: &Report, stacks: &[CpuStack]) -> Wall {
    let mut threads = Vec::new();
    for t in &report.threads {
        let Some(sched) = &t.sched else { continue };
        let traced = sched.oncpu_ns + sched.sleep_ns + sched.runnable_ns;
        if traced == 0 {
            continue;
        }
        let mut parts = lock_parts(report, t.tid, t.pid);
        let mut lock_wait: u64 = parts.iter().map(|p| p.ns).sum();
        // Never more than the traced time (a wait that began before
        // tracing is measured whole by the futex hooks).
        if lock_wait > traced {
            scale(&mut parts, traced);
            lock_wait = traced;
        }
        let mut rest = traced - lock_wait;
        let mut other = 0;
        for sl in &sched.other_sleep {
            let ns = sl.sleep_ns.min(rest);
            if ns == 0 {
                continue;
            }
            rest -= ns;
            other += ns;
            parts.push(WallPart {
                kind: "sleep".into(),
                path: vec![format!("[sleep] {}", sl.syscall)],
                ns,
            });
        }
        let busy = sched.oncpu_ns + sched.runnable_ns;
        let oncpu = if busy == 0 {
            0
        } else {
            (rest as u128 * sched.oncpu_ns as u128 / busy as u128) as u64
        };
        let runnable = rest - oncpu;
        parts.extend(cpu_parts(stacks, t.tid, oncpu));
        if runnable > 0 {
            parts.push(WallPart {
                kind: "runnable".into(),
                path: vec!["[runnable: waiting for a CPU]".into()],
                ns: runnable,
            });
        }
        threads.push(WallThread {
            tid: t.tid,
            pid: t.pid,
            name: t.name.clone(),
            traced_ns: traced,
            oncpu_ns: oncpu,
            lock_wait_ns: lock_wait,
            other_sleep_ns: other,
            runnable_ns: runnable,
            parts,
        });
    }
    threads.sort_by(|a, b| b.traced_ns.cmp(&a.traced_ns).then(a.tid.cmp(&b.tid)));
    Wall {
        threads,
        note: WALL_NOTE.into(),
    }
}

/// A thread's futex waits, per logical lock and call site.
fn lock_parts(report: &Report, tid: u32, pid: u32) -> Vec<WallPart> {
    let mut parts: Vec<WallPart> = Vec::new();
    for l in &report.logical_locks {
        let Some(lt) = l
            .threads
            .iter()
            .find(|lt| lt.tid == tid && (lt.pid == 0 || lt.pid == pid))
        else {
            continue;
        };
        if lt.wait_ns == 0 {
            continue;
        }
        let (kind, head) = if l.decision == Decision::NotLockContention {
            ("wait", format!("[wait] {} ({})", l.label, l.kind))
        } else {
            ("lock", format!("[lock] {}", l.label))
        };
        // This thread's part of each unwound call site.
        let sites: Vec<(String, u64)> = l
            .unwound_sites
            .iter()
            .filter_map(|s| {
                let w = s.threads.iter().find(|st| st.tid == tid)?.wait_ns;
                let name = s
                    .call_site
                    .clone()
                    .or_else(|| s.frames.first().map(Frame::name))?;
                (w > 0).then_some((name, w))
            })
            .collect();
        let mut mine: Vec<WallPart> = if sites.is_empty() {
            vec![WallPart {
                kind: kind.into(),
                path: vec![
                    head.clone(),
                    l.call_site
                        .clone()
                        .unwrap_or_else(|| "(call site unknown)".into()),
                ],
                ns: lt.wait_ns,
            }]
        } else {
            sites
                .into_iter()
                .map(|(site, w)| WallPart {
                    kind: kind.into(),
                    path: vec![head.clone(), site],
                    ns: w,
                })
                .collect()
        };
        scale(&mut mine, lt.wait_ns);
        // Two unwound sites can share a call-site name (different frames
        // further out): one part each name.
        for m in mine {
            match parts.iter_mut().find(|p| p.path == m.path) {
                Some(p) => p.ns += m.ns,
                None => parts.push(m),
            }
        }
    }
    parts
}

/// Scales parts to sum to `total` exactly (the largest takes the rounding).
fn scale(parts: &mut [WallPart], total: u64) {
    let sum: u64 = parts.iter().map(|p| p.ns).sum();
    if sum == 0 || parts.is_empty() {
        return;
    }
    let mut given = 0;
    for p in parts.iter_mut() {
        p.ns = (p.ns as u128 * total as u128 / sum as u128) as u64;
        given += p.ns;
    }
    if let Some(big) = parts.iter_mut().max_by_key(|p| p.ns) {
        big.ns += total - given;
    }
}

/// A thread's on-CPU time split over its sampled stacks.
fn cpu_parts(stacks: &[CpuStack], tid: u32, oncpu: u64) -> Vec<WallPart> {
    if oncpu == 0 {
        return Vec::new();
    }
    let mut parts: Vec<WallPart> = stacks
        .iter()
        .filter(|s| s.tid == tid)
        .map(|s| {
            let mut path = vec!["[cpu]".to_string()];
            path.extend(s.names_root_first());
            WallPart {
                kind: "cpu".into(),
                path,
                ns: s.samples,
            }
        })
        .collect();
    if parts.is_empty() {
        return vec![WallPart {
            kind: "cpu".into(),
            path: vec!["[cpu] (not sampled)".into()],
            ns: oncpu,
        }];
    }
    scale(&mut parts, oncpu);
    parts
}

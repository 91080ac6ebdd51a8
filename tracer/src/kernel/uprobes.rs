//! Probed functions (`--uprobe`, `--alloc`): which functions, attaching
//! them per target process with a cookie naming each, measuring what a hit
//! costs, and keeping that cost under `--probe-budget` by attaching them
//! only part of the time (duty cycling).

use std::{
    num::NonZeroU32,
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};
use tracer_common::names;

use anyhow::{Context as _, Result};
use aya::{
    maps::HashMap,
    programs::{UProbe, uprobe::UProbeAttachPoint, uprobe::UProbeLinkId, uprobe::UProbeScope},
};
use tracer_common::{FnKey, FnStats, probe};

use crate::{
    exit::{Code, fail},
    kernel::attach::Probes,
    target::process::ProcessInfo,
    target::resolve::{self, Func, Resolver},
};

/// What to probe, from the command line.
#[derive(Clone, Debug, Default)]
pub struct FnOptions {
    /// `--uprobe` specs: SYMBOL, GLOB or BINARY:SYMBOL.
    pub uprobes: Vec<String>,
    /// `--alloc`: the allocator's functions.
    pub alloc: bool,
    /// Go's lock slow paths, when the target is a Go program.
    pub go_mutex: bool,
    /// Call sites per probed function (--fn-sites).
    pub fn_sites: bool,
    /// Probe functions known to be called millions of times a second.
    pub allow_hot_probes: bool,
    /// Where separate debug files are looked for (besides /usr/lib/debug).
    pub debug_dirs: Vec<PathBuf>,
    /// The share of the targets' CPU time the probes may cost, in percent.
    pub probe_budget: Option<f64>,
}

impl FnOptions {
    /// Probes asked for explicitly (not only Go's, which depend on the target).
    pub fn explicit(&self) -> bool {
        !self.uprobes.is_empty() || self.alloc
    }
}

/// One function to probe.
#[derive(Clone, Debug)]
pub struct Planned {
    pub id: u32,
    pub func: Func,
    pub role: Role,
    pub size_arg: u32,
    pub sites: bool,
}

impl Planned {
    fn cookie(&self) -> u64 {
        u64::from(self.id)
            | u64::from(self.size_arg) << 32
            | if self.sites { probe::SITES } else { 0 }
    }
}

/// Why a function is probed, which decides its programs and its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `--uprobe`: entry and return.
    Uprobe,
    /// `--alloc`: entry and return, with the size argument.
    Alloc,
    /// Go's lock slow paths: entry only.
    GoMutex,
}

impl Role {
    /// The name in the report (`functions[].role`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Uprobe => "uprobe",
            Role::Alloc => "alloc",
            Role::GoMutex => "go-mutex",
        }
    }
}

/// Go's lock slow paths, probed at entry for a Go target: a contended
/// `sync.Mutex.Lock` (and an RWMutex writer behind another) calls lockSlow;
/// a goroutine that must sleep on a Mutex or an RWMutex (a reader behind a
/// writer, a writer behind readers) calls runtime_SemacquireMutex. Fast
/// paths are inlined atomics and never probed.
pub const GO_SLOW_PATHS: &[&str] = &["sync.(*Mutex).lockSlow", "sync.runtime_SemacquireMutex"];

/// More than this many functions is almost certainly a pattern too wide.
const MAX_FUNCTIONS: usize = 256;

/// Lock fast paths: a probe here traps on every uncontended acquisition.
const HOT: &[&str] = &[
    "pthread_mutex_lock",
    "pthread_mutex_unlock",
    "pthread_mutex_trylock",
    "___pthread_mutex_lock",
    "__pthread_mutex_lock",
    "__pthread_mutex_unlock",
    "pthread_spin_*",
    "pthread_rwlock_*",
    "__lll_lock_*",
    "__lll_unlock_*",
    "*futex*",
    "syscall",
    "std::sync::*Mutex*::lock",
    "*::lock_contended",
    "*RawMutex*::lock*",
    "*RawMutex*::unlock*",
    "lock_api::*",
    "parking_lot*",
];

/// The allocation functions and where each one's size is.
const ALLOC: &[(&str, u32)] = &[
    ("malloc", probe::SIZE_ARG0),
    ("calloc", probe::SIZE_ARG0_X_ARG1),
    ("realloc", probe::SIZE_ARG1),
    ("free", probe::SIZE_NONE),
    ("posix_memalign", probe::SIZE_ARG2),
    ("aligned_alloc", probe::SIZE_ARG1),
];

/// The longest `--uprobe` spec: symbol names are shorter; a longer pattern
/// is a mistake, and matching it against every symbol would take seconds.
pub const MAX_SPEC: usize = 512;

/// Resolves `--uprobe` specs and `--alloc` in the first target's binaries.
/// Checks `stop` between specs, so Ctrl-C is never ignored meanwhile.
pub fn plan(args: &FnOptions, target: &ProcessInfo, stop: &AtomicBool) -> Result<Vec<Planned>> {
    let mut out: Vec<Planned> = Vec::new();
    let go = target.runtime == Some("go") && args.go_mutex;
    if args.uprobes.is_empty() && !args.alloc && !go {
        return Ok(out);
    }
    if let Some(spec) = args.uprobes.iter().find(|s| s.len() > MAX_SPEC) {
        return Err(fail(
            Code::Usage,
            format!(
                "--uprobe takes a symbol or pattern of at most {MAX_SPEC} bytes; this one has {}",
                spec.len()
            ),
        ));
    }
    let bins = resolve::binaries(target);
    if bins.is_empty() {
        return Err(fail(
            Code::Target,
            format!("pid {} has no mapped executable to probe", target.pid),
        ));
    }
    let mut dirs: Vec<PathBuf> = args.debug_dirs.clone();
    dirs.push(PathBuf::from("/usr/lib/debug"));
    let mut r = Resolver::new(target.pid, dirs);
    for spec in &args.uprobes {
        if stop.load(Ordering::Relaxed) {
            return Err(fail(Code::Internal, "interrupted before tracing began"));
        }
        plan_spec(args, spec, target, &bins, &mut r, &mut out)?;
    }
    if go {
        // The executable: Go links statically (sync is in it).
        let exe = &bins[..1];
        for name in GO_SLOW_PATHS {
            if let Some(func) = r.find(exe, name).into_iter().find(|f| f.name == *name) {
                push(&mut out, func, Role::GoMutex, probe::SIZE_NONE, true);
            }
        }
        if !out.iter().any(|p| p.role == Role::GoMutex) {
            log::warn!(
                "pid {} is a Go program without the symbols of sync.Mutex's slow path (stripped?): goroutine-level contention is not measured",
                target.pid
            );
        }
    }
    if args.alloc {
        let lib = allocator(&mut r, &bins).ok_or_else(|| {
            fail(
                Code::Target,
                format!(
                    "--alloc: none of pid {}'s binaries defines malloc",
                    target.pid
                ),
            )
        })?;
        for (name, size_arg) in ALLOC {
            if let Some(func) = r
                .find(std::slice::from_ref(&lib), name)
                .into_iter()
                .find(|f| f.name == *name)
            {
                push(&mut out, func, Role::Alloc, *size_arg, true);
            }
        }
    }
    if out.len() > MAX_FUNCTIONS {
        return Err(fail(
            Code::Usage,
            format!(
                "the --uprobe patterns match {} functions (at most {MAX_FUNCTIONS}): narrow them, e.g. BINARY:PREFIX*",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// One `--uprobe` spec: the functions it matches in the binaries it names
/// (all of the target's when it names none), or the sentence saying why
/// none or a lock fast path.
fn plan_spec(
    args: &FnOptions,
    spec: &str,
    target: &ProcessInfo,
    bins: &[PathBuf],
    r: &mut Resolver,
    out: &mut Vec<Planned>,
) -> Result<()> {
    let (bin, pat) = resolve::split_spec(spec);
    let within: Vec<PathBuf> = match bin {
        None => bins.to_vec(),
        Some(b) => bins
            .iter()
            .filter(|p| {
                p.as_os_str() == b
                    || p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(b))
            })
            .cloned()
            .collect(),
    };
    if within.is_empty() {
        return Err(fail(
            Code::Usage,
            format!(
                "--uprobe {spec}: pid {} maps no binary named {}; it maps {}",
                target.pid,
                bin.unwrap_or(""),
                list(bins.iter().map(|p| p.display().to_string()), 6)
            ),
        ));
    }
    let found = r.find(&within, pat);
    if found.is_empty() {
        let near = r.closest(&within, pat, 5);
        return Err(fail(
            Code::Usage,
            format!(
                "--uprobe {spec}: no function matches in pid {}'s binaries; closest: {}",
                target.pid,
                list(near.into_iter(), 5)
            ),
        ));
    }
    if !args.allow_hot_probes
        && let Some(f) = found
            .iter()
            .find(|f| HOT.iter().any(|h| resolve::glob(h, &f.name)))
    {
        return Err(fail(
            Code::Usage,
            format!(
                "--uprobe {spec} matches {}, a lock fast path: a uprobe traps on every call (≈20 µs each on some VMs), and the futex hooks already see its contended path; pass --allow-hot-probes to probe it anyway",
                f.name
            ),
        ));
    }
    for func in found {
        push(out, func, Role::Uprobe, probe::SIZE_NONE, args.fn_sites);
    }
    Ok(())
}

fn push(out: &mut Vec<Planned>, func: Func, role: Role, size_arg: u32, sites: bool) {
    if out
        .iter()
        .any(|p| p.func.binary == func.binary && p.func.offset == func.offset)
    {
        return;
    }
    out.push(Planned {
        id: out.len() as u32,
        func,
        role,
        size_arg,
        sites,
    });
}

fn list(items: impl Iterator<Item = String>, n: usize) -> String {
    let v: Vec<String> = items.take(n).collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

/// The allocator the target calls: its executable if that defines malloc
/// (a statically linked allocator), else a library other than libc that
/// does (jemalloc, tcmalloc, mimalloc), else libc.
fn allocator(r: &mut Resolver, bins: &[PathBuf]) -> Option<PathBuf> {
    let defines = |r: &mut Resolver, b: &PathBuf| {
        r.find(std::slice::from_ref(b), "malloc")
            .iter()
            .any(|f| f.name == "malloc")
    };
    let is_libc = |b: &PathBuf| {
        b.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("libc.so") || n.starts_with("libc-"))
    };
    if let Some(exe) = bins.first()
        && defines(r, exe)
    {
        return Some(exe.clone());
    }
    for b in bins.iter().skip(1).filter(|b| !is_libc(b)) {
        if defines(r, b) {
            return Some(b.clone());
        }
    }
    bins.iter().find(|b| is_libc(b)).cloned()
}

/// The function the start-up calibration probes, in the tracer itself.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_calibration_target(x: u64) -> u64 {
    std::hint::black_box(x).wrapping_add(1)
}

/// Measures what one probed call costs here, for each role's programs
/// (entry + return for `--uprobe`; entry only for Go's slow paths): the
/// same calls timed with and without the probes, median of 5 batches each.
pub fn calibrate(probes: &mut Probes, role: Role) -> Result<f64> {
    // The function's file offset, from its address and our own mapping of
    // the executable: no symbol table is read (a debug build's takes
    // seconds, while a launched command waits at the gate).
    let addr = tracer_calibration_target as *const () as u64;
    let maps = crate::target::process::parse_maps(
        &crate::target::proc::own_maps_text().context("reading /proc/self/maps")?,
    );
    let (path, offset) = maps
        .iter()
        .find(|m| m.exec && m.start <= addr && addr < m.end)
        .map(|m| {
            // A binary replaced on disk since we started (a rebuild, an
            // upgrade) is still reachable through its mapping.
            let path = m.path.clone().unwrap_or_else(|| {
                format!("/proc/self/map_files/{:x}-{:x}", m.start, m.end).into()
            });
            (path, addr - m.start + m.offset)
        })
        .context("the calibration function is not in a mapped file")?;
    const CALLS: u64 = 100;
    let batch = || {
        let t = Instant::now();
        for i in 0..CALLS {
            std::hint::black_box(tracer_calibration_target(i));
        }
        t.elapsed().as_nanos() as f64 / CALLS as f64
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let plain = median((0..5).map(|_| batch()).collect());
    let cookie = u64::from(probe::CALIBRATION_FN);
    let links = attach_pair(
        probes,
        programs(role),
        &path,
        offset,
        cookie,
        UProbeScope::CallingProcess,
    )
    .map_err(|e| {
        fail(
            Code::Load,
            format!("attaching the calibration uprobe failed: {e}"),
        )
    })?;
    let probed = median((0..5).map(|_| batch()).collect());
    detach(probes, links);
    let cost = (probed - plain).max(0.0);
    log::debug!("calibration: {plain:.0} ns plain, {probed:.0} ns probed per call");
    Ok(cost)
}

/// The programs a role's probes attach: entry and return, or (Go) the
/// entry only.
fn programs(role: Role) -> &'static [&'static str] {
    if role == Role::GoMutex {
        &[crate::kernel::attach::GO_UPROBE]
    } else {
        &crate::kernel::attach::UPROBES
    }
}

/// Attaches the given programs at one file offset.
fn attach_pair(
    probes: &mut Probes,
    names: &[&'static str],
    path: &std::path::Path,
    offset: u64,
    cookie: u64,
    scope: UProbeScope,
) -> Result<Vec<(&'static str, UProbeLinkId)>> {
    let mut links = Vec::new();
    for &name in names {
        let prog: &mut UProbe = probes
            .bpf
            .program_mut(name)
            .context("uprobe program missing")?
            .try_into()?;
        let point = UProbeAttachPoint {
            location: offset.into(),
            cookie: Some(cookie),
        };
        links.push((name, prog.attach(point, path, scope)?));
    }
    Ok(links)
}

/// Detaches links. Each uprobe's unregistration waits for an SRCU grace
/// period (≈110 ms each on the development VM), serialized in the kernel:
/// closing the links from parallel threads was measured and did not help.
fn detach(probes: &mut Probes, links: Vec<(&'static str, UProbeLinkId)>) {
    for (name, id) in links {
        match probes.bpf.program_mut(name).map(<&mut UProbe>::try_from) {
            Some(Ok(prog)) => {
                if let Err(e) = prog.detach(id) {
                    log::warn!("detaching a uprobe: {e}");
                }
            }
            _ => log::warn!("uprobe program {name} missing at detach"),
        }
    }
}

/// A probed function detached for the rest of the run: its probes alone
/// cost more than the budget whenever they were attached.
#[derive(Clone, Debug)]
pub struct Detached {
    pub id: u32,
    /// Time it was attached, until its entry probe's detach returned (its
    /// calls are counted until then; a detach takes ≈110 ms).
    pub attached: Duration,
    /// Share of the targets' CPU its probes cost in its last window.
    pub share: f64,
    /// Its call rate in that window.
    pub calls_per_s: f64,
}

/// Attach state and the duty cycle.
pub struct FnProbes {
    pub planned: Vec<Planned>,
    pids: Vec<u32>,
    /// (function id, program, link) per attached probe.
    links: Vec<(u32, &'static str, UProbeLinkId)>,
    /// Functions too hot to probe within the budget (never attached again).
    pub detached: Vec<Detached>,
    /// Per function at the window's start: (probe cost so far ns, entries).
    window_by_fn: std::collections::HashMap<u32, (f64, u64)>,
    /// Measured cost of one probed call (entry + return), ns.
    pub cost_ns: f64,
    /// Measured cost of one entry-only hit (Go's slow paths), ns.
    pub go_cost_ns: f64,
    budget: Option<f64>,
    /// Fraction of the run the probes should be attached.
    duty: f64,
    on_since: Option<Instant>,
    off_since: Instant,
    /// How long to stay detached after the last window.
    off_for: Duration,
    pub on_time: Duration,
    pub windows: u64,
    window_cpu: u64,
    /// Target CPU time over the whole run, ns (the last reading while the
    /// targets lived).
    cpu_start: u64,
    cpu_last: u64,
    /// When `cpu_last` was last brought up to date.
    cpu_read: Instant,
    /// Per process, (its CPU time when it joined, the most read since):
    /// an exited one keeps its last reading.
    cpu_seen: std::collections::HashMap<u32, (u64, u64)>,
    /// The first `roots` pids are the roots: failing to attach to one is
    /// an error, to a follower that is gone not.
    roots: usize,
    pub cpu_total: u64,
}

/// Length of an attached window used to measure what the probes cost.
const WINDOW: Duration = Duration::from_millis(250);
/// A function whose probes alone cost more than HOT_FACTOR × the budget
/// while attached is detached for the rest of the run: duty cycling it
/// would slow the target by more than that in every window. Below, it is
/// duty cycled (attached at least 1/HOT_FACTOR of the time).
const HOT_FACTOR: f64 = 4.0;
/// From this far into a window (once the targets ran EARLY_CPU_NS in it),
/// a function that hot is detached without waiting for the window's end.
const EARLY: Duration = Duration::from_millis(40);
const EARLY_CPU_NS: u64 = 2_000_000;
/// How often the targets' CPU time is read between windows.
const CPU_EVERY: Duration = Duration::from_millis(200);
/// Never attach for less than this share of the run.
const MIN_DUTY: f64 = 0.005;

impl FnProbes {
    pub fn new(
        planned: Vec<Planned>,
        pids: Vec<u32>,
        (cost_ns, go_cost_ns): (f64, f64),
        budget: Option<f64>,
    ) -> Self {
        let cpu_seen: std::collections::HashMap<u32, (u64, u64)> = pids
            .iter()
            .map(|&p| {
                let c = cpu_ns(&[p]);
                (p, (c, c))
            })
            .collect();
        Self {
            planned,
            roots: pids.len(),
            pids,
            links: Vec::new(),
            detached: Vec::new(),
            window_by_fn: std::collections::HashMap::new(),
            cost_ns,
            go_cost_ns,
            budget,
            duty: 1.0,
            on_since: None,
            off_since: Instant::now(),
            off_for: Duration::ZERO,
            on_time: Duration::ZERO,
            windows: 0,
            window_cpu: 0,
            cpu_start: 0,
            cpu_last: 0,
            cpu_read: Instant::now(),
            cpu_seen,
            cpu_total: 0,
        }
    }

    /// Attaches entry and return probes of every planned function, per
    /// target process.
    pub fn attach(&mut self, probes: &mut Probes) -> Result<()> {
        for (i, pid) in self.pids.clone().into_iter().enumerate() {
            match self.attach_to(probes, pid) {
                // A root that has exited (of several) ends nothing.
                Err(e) if i < self.roots && crate::target::process::alive(pid as i32) => {
                    return Err(e);
                }
                Err(e) => log::debug!("function probes in pid {pid}: {e:#}"),
                Ok(()) => {}
            }
        }
        log::debug!("function probes attached");
        self.on_since = Some(Instant::now());
        self.window_by_fn = self.by_fn(probes);
        self.window_cpu = self.cpu_now();
        self.windows += 1;
        Ok(())
    }

    /// The targets' CPU time since each joined: its latest reading, the
    /// last one for those gone.
    fn cpu_now(&mut self) -> u64 {
        for &pid in &self.pids {
            let now = cpu_ns(&[pid]);
            let e = self.cpu_seen.entry(pid).or_insert((now, now));
            e.1 = e.1.max(now);
        }
        self.cpu_seen
            .values()
            .map(|(base, last)| last.saturating_sub(*base))
            .sum()
    }

    /// Every planned function's probes (those not detached for good) in
    /// one process.
    fn attach_to(&mut self, probes: &mut Probes, pid: u32) -> Result<()> {
        let Some(nz) = NonZeroU32::new(pid) else {
            return Ok(());
        };
        for p in &self.planned {
            if self.detached.iter().any(|d| d.id == p.id) {
                continue;
            }
            let links = attach_pair(
                probes,
                programs(p.role),
                &p.func.host_path,
                p.func.offset,
                p.cookie(),
                UProbeScope::OneProcess(nz),
            )
            .map_err(|e| {
                fail(
                    Code::Load,
                    format!(
                        "attaching a uprobe to {} in {} failed: {e}",
                        p.func.name,
                        p.func.binary.display()
                    ),
                )
            })?;
            self.links
                .extend(links.into_iter().map(|(name, l)| (p.id, name, l)));
        }
        Ok(())
    }

    /// Processes that joined the target set (forks followed, --children)
    /// get the probes too: at once if they are attached now, else with the
    /// next window. A fork's calls before that (≤ one loop turn) are not
    /// counted.
    pub fn follow(&mut self, targets: &[u32], probes: &mut Probes) {
        for &pid in targets {
            if self.pids.contains(&pid) {
                continue;
            }
            self.pids.push(pid);
            // Its CPU time counts from now (a fork's first milliseconds
            // are lost to this; an adopted child's past is not counted).
            let c = cpu_ns(&[pid]);
            self.cpu_seen.entry(pid).or_insert((c, c));
            if self.on_since.is_some()
                && let Err(e) = self.attach_to(probes, pid)
            {
                // Gone already, most likely: its calls were never made.
                log::debug!("function probes in pid {pid}: {e:#}");
            }
        }
    }

    pub fn detach(&mut self, probes: &mut Probes) {
        let t = Instant::now();
        let links = std::mem::take(&mut self.links);
        detach(probes, links.into_iter().map(|(_, n, l)| (n, l)).collect());
        log::debug!("function probes detached in {} ms", t.elapsed().as_millis());
        if let Some(t) = self.on_since.take() {
            self.on_time += t.elapsed();
        }
        self.off_since = Instant::now();
    }

    /// Per function: (what its hits so far cost ns, entry hits).
    fn by_fn(&self, probes: &Probes) -> std::collections::HashMap<u32, (f64, u64)> {
        let go: std::collections::HashSet<u32> = self
            .planned
            .iter()
            .filter(|p| p.role == Role::GoMutex)
            .map(|p| p.id)
            .collect();
        let mut out = std::collections::HashMap::new();
        if let Some(m) = probes
            .bpf
            .map(names::FN_STATS)
            .and_then(|m| HashMap::<_, FnKey, FnStats>::try_from(m).ok())
        {
            for (k, v) in m
                .iter()
                .flatten()
                .filter(|(k, _)| k.fn_id != probe::CALIBRATION_FN && k.ret_addr == 0)
            {
                let each = if go.contains(&k.fn_id) {
                    self.go_cost_ns
                } else {
                    self.cost_ns
                };
                let e: &mut (f64, u64) = out.entry(k.fn_id).or_default();
                e.0 += v.entries as f64 * each;
                e.1 += v.entries;
            }
        }
        out
    }

    /// In or after a window: the functions whose probes alone cost more
    /// than `over` percent of the targets' CPU in it are detached for the
    /// rest of the run; returns the window's cost of those that stay.
    fn drop_hot(
        &mut self,
        probes: &mut Probes,
        over: f64,
        budget: f64,
        cpu: u64,
        window: Duration,
    ) -> f64 {
        let now = self.by_fn(probes);
        let mut kept = 0.0;
        let mut hot = Vec::new();
        for (&id, &(cost, n)) in &now {
            if self.detached.iter().any(|d| d.id == id) {
                continue;
            }
            let (c0, n0) = self.window_by_fn.get(&id).copied().unwrap_or_default();
            let cost = (cost - c0).max(0.0);
            // Hits × calibrated cost can exceed the CPU time measured (the
            // calibration is an estimate): never more than all of it.
            let share = (cost / cpu.max(1) as f64).min(1.0);
            if share > over / 100.0 {
                hot.push(Detached {
                    id,
                    attached: self.on_time + window,
                    share,
                    calls_per_s: n.saturating_sub(n0) as f64 / window.as_secs_f64().max(1e-9),
                });
            } else {
                kept += cost;
            }
        }
        if !hot.is_empty() {
            let (mut gone, stay): (Vec<_>, Vec<_>) = std::mem::take(&mut self.links)
                .into_iter()
                .partition(|(id, _, _)| hot.iter().any(|d| d.id == *id));
            self.links = stay;
            // Entry probes first: a function's calls are counted until its
            // entry probe is detached (each detach waits ≈110 ms, and the
            // probes not yet detached go on firing meanwhile).
            gone.sort_by_key(|(id, name, _)| (*name == crate::kernel::attach::UPROBES[1], *id));
            for (id, name, link) in gone {
                detach(probes, vec![(name, link)]);
                if name != crate::kernel::attach::UPROBES[1]
                    && let Some(d) = hot.iter_mut().find(|d| d.id == id)
                {
                    d.attached = self.on_time + self.on_since.map_or(window, |t| t.elapsed());
                }
            }
            for d in &hot {
                log::debug!(
                    "function {} detached: {:.0} calls/s cost {:.1}% of the targets' CPU, over {over}% (budget {budget}%)",
                    d.id,
                    d.calls_per_s,
                    100.0 * d.share
                );
            }
            self.detached.extend(hot);
            if self.all_detached() {
                // Nothing left to probe: the window ends here, for good.
                self.detach(probes);
            }
        }
        kept
    }

    fn all_detached(&self) -> bool {
        self.planned
            .iter()
            .all(|p| self.detached.iter().any(|d| d.id == p.id))
    }

    /// Duty cycling, called from the run loop. After each attached window
    /// (WINDOW long), the share of the target's CPU its probes cost sets the
    /// duty d = budget / share, and the probes stay detached until the
    /// window, *including its detach time*, is a fraction d of the cycle.
    /// Detaching is slow (each uprobe's unregistration waits for an SRCU
    /// grace period, serialized in the kernel: ≈1.3 s for 14 probes on the
    /// development VM), so cycles are long and the budget holds over runs
    /// much longer than one cycle; the report shows the share achieved.
    pub fn tick(&mut self, probes: &mut Probes) -> Result<()> {
        // The targets' CPU, kept while they live: read every 200 ms, not
        // every loop turn (one /proc pass per process and thread).
        if self.cpu_read.elapsed() >= CPU_EVERY {
            self.cpu_read = Instant::now();
            self.cpu_last = self.cpu_last.max(self.cpu_now());
        }
        let Some(budget) = self.budget else {
            return Ok(());
        };
        match self.on_since {
            // Early in a window, a function far over the budget is detached
            // at once: every millisecond attached costs the target.
            Some(t) if t.elapsed() >= EARLY && t.elapsed() < WINDOW => {
                let cpu = self.cpu_now().saturating_sub(self.window_cpu);
                if cpu >= EARLY_CPU_NS {
                    self.drop_hot(probes, budget * HOT_FACTOR, budget, cpu, t.elapsed());
                }
            }
            Some(t) if t.elapsed() >= WINDOW => {
                let cpu = self.cpu_now().saturating_sub(self.window_cpu);
                // Too little target CPU in the window to judge a function
                // hot for good: its cost only sets the duty.
                let cost = if cpu >= EARLY_CPU_NS {
                    self.drop_hot(probes, budget * HOT_FACTOR, budget, cpu, t.elapsed())
                } else {
                    let now = self.by_fn(probes);
                    now.iter()
                        .map(|(id, (c, _))| {
                            (c - self.window_by_fn.get(id).map_or(0.0, |w| w.0)).max(0.0)
                        })
                        .sum()
                };
                if self.on_since.is_none() {
                    return Ok(());
                }
                let share = cost / cpu.max(1) as f64;
                self.duty = if share > 0.0 {
                    (budget / 100.0 / share).clamp(MIN_DUTY, 1.0)
                } else {
                    1.0
                };
                if self.duty < 1.0 {
                    self.detach(probes);
                    let window = t.elapsed();
                    self.off_for = window.mul_f64(1.0 / self.duty - 1.0);
                    log::debug!(
                        "probe window: {cost:.0} ns of probe cost, {:.1}% of target CPU; duty {:.3}: detached for {} ms",
                        100.0 * share,
                        self.duty,
                        self.off_for.as_millis()
                    );
                } else {
                    self.on_time += t.elapsed();
                    self.on_since = Some(Instant::now());
                    self.window_by_fn = self.by_fn(probes);
                    self.window_cpu = self.cpu_now();
                }
            }
            None if self.off_since.elapsed() >= self.off_for && !self.all_detached() => {
                self.attach(probes)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Ends the run: detaches and records the target's CPU time.
    pub fn finish(&mut self, probes: &mut Probes) {
        self.detach(probes);
        self.cpu_last = self.cpu_last.max(self.cpu_now());
        self.cpu_total = self.cpu_last.saturating_sub(self.cpu_start);
    }
}

/// CPU time (user + system, all threads, exited ones included) of the given
/// processes, ns: the finer of /proc/PID/stat's clock ticks and the live
/// threads' schedstat (exited threads are missing there, which the coarser
/// stat keeps); a process that is gone counts 0.
fn cpu_ns(pids: &[u32]) -> u64 {
    use crate::target::proc;
    let hz = proc::ticks_per_second();
    let ticks: u64 = pids
        .iter()
        .filter_map(|&pid| proc::stat(pid))
        .map(|s| (s.utime + s.stime) * 1_000_000_000 / hz)
        .sum();
    ticks.max(pids.iter().map(|&pid| proc::threads_cpu_ns(pid)).sum())
}

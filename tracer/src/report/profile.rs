//! The profile (`tracer profile`): where the target's CPU time goes, from
//! on-CPU samples, and with `--wall` where all of its time goes. Its model
//! (the JSON is this, serialized) and its text view; the other views are
//! in `profile_views`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::report::{
    model::{Frame, Hook, Report, Target, Tool},
    units::{clip, human_ns},
};

/// The JSON document's kind: what tells a profile from a contention report.
pub const KIND: &str = "profile";
pub const SCHEMA: &str = "1.0";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Always `profile`.
    pub kind: String,
    pub schema_version: String,
    pub tool: Tool,
    pub kernel: String,
    pub hostname: String,
    pub tracer_args: Vec<String>,
    pub targets: Vec<Target>,
    /// RFC 3339, UTC, when sampling began.
    pub start_time: String,
    pub duration_s: f64,
    pub load_attach_ms: f64,
    pub hooks: Vec<Hook>,
    pub sampling: Sampling,
    /// What was found, by the users' action rules.
    pub findings: Vec<Finding>,
    /// Functions by self CPU time, largest first.
    pub functions: Vec<FunctionCpu>,
    /// Threads by CPU time, largest first.
    pub threads: Vec<ThreadCpu>,
    pub counters: Counters,
    /// Every distinct sampled stack, by thread then samples.
    pub stacks: Vec<CpuStack>,
    /// The wall-clock view (`--wall`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall: Option<Wall>,
    /// The contention report of the same run (`--wall`): the locks the
    /// wall-clock view's waits are under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contention: Option<Box<Report>>,
    /// Samples lost or not unwound: set when that can change the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
    pub limitations: Vec<String>,
}

/// How the samples were taken and what became of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// `cpu-clock` (a software event: CPU time, whatever the PMU).
    pub event: String,
    pub frequency_hz: u64,
    /// The sampling period, nanoseconds of CPU time per sample.
    pub period_ns: u64,
    pub cpus: u32,
    /// Samples of the target's threads the kernel took.
    pub taken: u64,
    /// Those that reached the tracer (unwound and counted below).
    pub received: u64,
    /// Lost: the event ring was full (`cpu_ring_full`).
    pub lost: u64,
    /// Of those received: user stacks unwound with .eh_frame (or a stack
    /// scan), with frame pointers (the fallback), and those that gave one
    /// frame only.
    pub unwound_eh_frame: u64,
    pub unwound_frame_pointers: u64,
    pub one_frame: u64,
    /// Samples that interrupted kernel code (they carry a kernel stack).
    pub in_kernel: u64,
    /// The received samples' periods summed.
    pub sampled_cpu_ns: u64,
}

/// One function's CPU time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCpu {
    pub name: String,
    /// Its file, or `[kernel]`.
    pub module: Option<String>,
    /// Samples with it as the innermost frame.
    pub self_samples: u64,
    /// Samples with it anywhere in the stack (once per stack).
    pub total_samples: u64,
    /// Shares of all samples received, 0–1.
    pub self_share: f64,
    pub total_share: f64,
    pub self_ns: u64,
    pub total_ns: u64,
    /// Its direct callers, by samples, largest first.
    pub callers: Vec<Caller>,
    /// Its hottest call path, outermost first, ending with it.
    pub path: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Caller {
    pub name: String,
    pub samples: u64,
    /// Of the function's total samples.
    pub share: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadCpu {
    pub tid: u32,
    pub pid: u32,
    pub name: String,
    pub samples: u64,
    /// Its samples' periods summed.
    pub sampled_ns: u64,
    /// Its time on a CPU as the scheduler hooks measured it (exact).
    pub oncpu_ns: Option<u64>,
    /// Of all samples received.
    pub share: f64,
}

/// A finding by one of the action rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `hot_function` (a function over 20% of CPU), `cache_misses` (over
    /// 10% of cache references), `branch_misses` (over 5% of branches).
    pub rule: String,
    pub subject: String,
    /// The measured share, 0–1.
    pub value: f64,
    pub text: String,
}

/// Counting perf events: software counters always, hardware counters
/// when the machine has a PMU.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Hardware counters were counted.
    pub available: bool,
    /// Why not, in one sentence, when not available.
    pub note: String,
    /// Per process: each counter summed over its threads.
    #[serde(default)]
    pub processes: Vec<CounterSet>,
    /// Per thread that existed when tracing began; a thread's counts
    /// include the threads it created later.
    #[serde(default)]
    pub threads: Vec<CounterSet>,
}

/// One thread's (or process's) counters, with the rates derived from them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CounterSet {
    pub pid: u32,
    /// 0 for a process.
    pub tid: u32,
    pub name: String,
    /// Counter name → count: task_clock_ns, context_switches,
    /// cpu_migrations, minor_faults, major_faults; with a PMU cycles,
    /// instructions, cache_references, cache_misses, branches,
    /// branch_misses.
    pub values: std::collections::BTreeMap<String, u64>,
    /// Instructions per cycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<f64>,
    /// cache_misses / cache_references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_miss_rate: Option<f64>,
    /// branch_misses / branches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_miss_rate: Option<f64>,
}

/// One distinct stack of one thread.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuStack {
    pub tid: u32,
    pub pid: u32,
    pub thread: String,
    pub samples: u64,
    pub cpu_ns: u64,
    /// How the user part was unwound: `eh_frame` or `frame-pointer`.
    pub unwind: String,
    /// Innermost first: the kernel frames (module `[kernel]`), then the
    /// user frames.
    pub frames: Vec<Frame>,
}

impl CpuStack {
    /// Frame names outermost first, as flame graphs draw them.
    pub fn names_root_first(&self) -> Vec<String> {
        self.frames.iter().rev().map(Frame::name).collect()
    }
}

/// Each thread's traced time, split into what it did: on a CPU (by
/// sampled stack), waiting for a lock (by lock and call site), sleeping in
/// other syscalls, and runnable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Wall {
    pub threads: Vec<WallThread>,
    /// How the parts are measured.
    pub note: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WallThread {
    pub tid: u32,
    pub pid: u32,
    pub name: String,
    /// On CPU + blocked + runnable, from the scheduler hooks: the parts
    /// sum to this.
    pub traced_ns: u64,
    pub oncpu_ns: u64,
    pub lock_wait_ns: u64,
    pub other_sleep_ns: u64,
    pub runnable_ns: u64,
    pub parts: Vec<WallPart>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WallPart {
    /// `cpu`, `lock` (a futex wait: `path` is the lock, then its call
    /// site), `sleep` (`path` is the syscall) or `runnable`.
    pub kind: String,
    /// Outermost first, under the thread: e.g. `[lock] global_mu`,
    /// `worker_loop` for a lock wait, or the call path for CPU time.
    pub path: Vec<String>,
    pub ns: u64,
}

/// What the text view shows.
pub struct TextOptions {
    pub functions: usize,
    pub threads: usize,
}

pub fn render_text(p: &Profile, o: &TextOptions) -> String {
    let mut s = String::new();
    let s_ = &mut s;
    let sm = &p.sampling;
    let _ = writeln!(
        s_,
        "CPU PROFILE: {} samples at {} Hz on {} CPUs over {:.1} s ({} of CPU time sampled)",
        sm.received,
        sm.frequency_hz,
        sm.cpus,
        p.duration_s,
        human_ns(sm.sampled_cpu_ns)
    );
    if let Some(why) = &p.incomplete {
        let _ = writeln!(s_, "INCOMPLETE: {why}");
    }
    let _ = writeln!(
        s_,
        "  samples: {} taken, {} lost (event ring full); user stacks: {} by .eh_frame, {} by frame pointers, {} one frame only; {} in the kernel",
        sm.taken,
        sm.lost,
        sm.unwound_eh_frame,
        sm.unwound_frame_pointers,
        sm.one_frame,
        sm.in_kernel
    );
    let _ = writeln!(s_, "\nFINDINGS");
    if p.findings.is_empty() {
        let _ = writeln!(s_, "  none: no function over 20% of the CPU time sampled");
    }
    for f in &p.findings {
        let _ = writeln!(s_, "  * {}", f.text);
    }
    let _ = writeln!(
        s_,
        "\nTOP FUNCTIONS by self CPU (of {} samples)",
        sm.received
    );
    let _ = writeln!(
        s_,
        "  {:>6} {:>6} {:>9}  {:<40} HOTTEST PATH",
        "SELF", "TOTAL", "SELF CPU", "FUNCTION"
    );
    for f in p.functions.iter().take(o.functions) {
        let path = f
            .path
            .iter()
            .rev()
            .skip(1)
            .take(4)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ← ");
        let _ = writeln!(
            s_,
            "  {:>6} {:>6} {:>9}  {:<40} {}",
            pct(f.self_share),
            pct(f.total_share),
            human_ns(f.self_ns),
            clip(&f.name, 40),
            if path.is_empty() {
                "(root)".into()
            } else {
                format!("← {path}")
            }
        );
    }
    let _ = writeln!(s_, "\nTHREADS by CPU");
    let _ = writeln!(
        s_,
        "  {:>8} {:<16} {:>8} {:>6} {:>10} {:>10}",
        "TID", "NAME", "SAMPLES", "SHARE", "SAMPLED", "ON CPU"
    );
    for t in p.threads.iter().take(o.threads) {
        let _ = writeln!(
            s_,
            "  {:>8} {:<16} {:>8} {:>6} {:>10} {:>10}",
            t.tid,
            clip(&t.name, 16),
            t.samples,
            pct(t.share),
            human_ns(t.sampled_ns),
            t.oncpu_ns.map_or("-".into(), human_ns)
        );
    }
    let _ = writeln!(s_, "\nCOUNTERS (perf events, per process)");
    if !p.counters.available {
        let _ = writeln!(s_, "  {}", p.counters.note);
    }
    for c in &p.counters.processes {
        let v = |k: &str| c.values.get(k).copied();
        let mut line = format!(
            "  pid {} {}: task clock {}, {} context switches, {} migrations, {} minor / {} major faults",
            c.pid,
            c.name,
            v("task_clock_ns").map_or("-".into(), human_ns),
            v("context_switches").unwrap_or(0),
            v("cpu_migrations").unwrap_or(0),
            v("minor_faults").unwrap_or(0),
            v("major_faults").unwrap_or(0)
        );
        if let Some(ipc) = c.ipc {
            let _ = write!(line, "; IPC {ipc:.2}");
        }
        if let Some(r) = c.cache_miss_rate {
            let _ = write!(line, "; cache misses {}", pct(r));
        }
        if let Some(r) = c.branch_miss_rate {
            let _ = write!(line, "; branch misses {}", pct(r));
        }
        let _ = writeln!(s_, "{line}");
    }
    if let Some(w) = &p.wall {
        render_wall(s_, w, o.threads);
    }
    if !p.limitations.is_empty() {
        let _ = writeln!(s_, "\nLIMITATIONS");
        for l in &p.limitations {
            let _ = writeln!(s_, "  - {l}");
        }
    }
    s
}

fn render_wall(s: &mut String, w: &Wall, threads: usize) {
    let _ = writeln!(s, "\nWALL-CLOCK VIEW: each thread's traced time");
    let _ = writeln!(s, "  ({})", w.note);
    // Busiest first: what a thread did besides sleeping.
    let mut order: Vec<&WallThread> = w.threads.iter().collect();
    order.sort_by_key(|t| std::cmp::Reverse(t.traced_ns - t.other_sleep_ns.min(t.traced_ns)));
    for t in order.into_iter().take(threads) {
        let share = |v: u64| pct(v as f64 / t.traced_ns.max(1) as f64);
        let _ = writeln!(
            s,
            "  {} {} (pid {}): {} traced = on CPU {} {} + lock waits {} {} + other sleeps {} {} + runnable {} {}",
            t.tid,
            t.name,
            t.pid,
            human_ns(t.traced_ns),
            human_ns(t.oncpu_ns),
            share(t.oncpu_ns),
            human_ns(t.lock_wait_ns),
            share(t.lock_wait_ns),
            human_ns(t.other_sleep_ns),
            share(t.other_sleep_ns),
            human_ns(t.runnable_ns),
            share(t.runnable_ns),
        );
        // The largest lock waits, CPU time by the function on top of the
        // stack, and other sleeps, a few of each (runnable is above).
        let mut by_leaf: std::collections::BTreeMap<&str, u64> = Default::default();
        let mut rows: Vec<(u64, &str, String)> = Vec::new();
        for p in &t.parts {
            match p.kind.as_str() {
                "cpu" => {
                    let leaf = p.path.last().map_or("?", String::as_str);
                    *by_leaf.entry(leaf).or_default() += p.ns;
                }
                "runnable" => {}
                kind => rows.push((p.ns, kind, p.path.join(" → "))),
            }
        }
        rows.extend(
            by_leaf
                .into_iter()
                .map(|(leaf, ns)| (ns, "cpu", format!("{leaf} (on top of the stack)"))),
        );
        rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.cmp(&b.2)));
        for kind in ["lock", "wait", "cpu", "sleep"] {
            for (ns, k, what) in rows.iter().filter(|r| r.1 == kind && r.0 > 0).take(3) {
                let _ = writeln!(s, "      {:>6} {:<5} {}", share(*ns), k, what);
            }
        }
    }
}

/// A share (0–1) as a percentage with one decimal.
pub fn pct(share: f64) -> String {
    format!("{:.1}%", 100.0 * share)
}

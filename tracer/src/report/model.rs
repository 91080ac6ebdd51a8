//! The report model: every renderer (text, JSON, later HTML/pprof) reads
//! this, and `tracer report RUN.json` can rebuild any view from its JSON.
//! Field by field in docs/json-schema.md; bump SCHEMA_VERSION with it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Major.minor. Readers refuse a newer major; minors only add fields.
pub const SCHEMA_VERSION: &str = "1.8";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: String,
    pub tool: Tool,
    pub kernel: String,
    pub hostname: String,
    /// The tracer's own command line.
    pub tracer_args: Vec<String>,
    pub targets: Vec<Target>,
    /// RFC 3339, UTC, when tracing began (probes attached).
    pub start_time: String,
    pub duration_s: f64,
    pub load_attach_ms: f64,
    /// `full` (futex syscall tracepoints + scheduler) or `sched` (scheduler
    /// only: sleeping futex waits, no EAGAIN, no frame-pointer sites). Schema 1.1.
    #[serde(default)]
    pub mode: Mode,
    pub hooks: Vec<Hook>,
    pub thresholds: Thresholds,
    pub verdict: Verdict,
    /// Wait channels: every futex word waited on, per process, by total
    /// wait, largest first (until schema 1.4 the only level).
    pub locks: Vec<Lock>,
    /// What the program locks (schema 1.5): a lock whose futex word is the
    /// lock is its channel; one whose waiters park on words of their own
    /// (parking_lot, Abseil, HotSpot, PostgreSQL LWLocks) gathers every
    /// channel its waits went through, named by its implementation and call
    /// site. Condition and event waits are here too, as not locks. By
    /// decision, then rate.
    #[serde(default)]
    pub logical_locks: Vec<Lock>,
    /// Many locks of one type taken at one call site (an array of mutexes,
    /// page latches), by decision then rate (schema 1.5).
    #[serde(default)]
    pub lock_classes: Vec<LockClass>,
    /// Locks of one program in several processes, one row each in the
    /// text and HTML views (schema 1.8).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lock_groups: Vec<LockGroup>,
    /// Sorted by time waiting, largest first.
    pub threads: Vec<Thread>,
    /// Kernel locks the traced threads contended (lock:contention_*), by
    /// total wait (schema 1.1).
    #[serde(default)]
    pub kernel_locks: Vec<KernelLock>,
    /// Probed functions (--uprobe, --alloc), by total time, largest first
    /// (schema 1.2).
    #[serde(default)]
    pub functions: Vec<Function>,
    /// Go locks at goroutine level, from entry probes on sync.Mutex's and
    /// sync.RWMutex's slow paths, by decision then rate (schema 1.6; empty
    /// without a Go target).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub go_locks: Vec<GoLock>,
    /// What the function probes cost and how much of the run they saw
    /// (schema 1.2; absent without function probes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_cost: Option<ProbeCost>,
    pub events: BTreeMap<String, u64>,
    pub drops: BTreeMap<String, u64>,
    /// How full each kernel map was when the run ended (entries of exited
    /// threads are evicted as they exit), to size `--max-locks` (schema 1.4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maps: Vec<MapFill>,
    /// Every file the lock stacks' frames are in, with its build id and
    /// how many of those frames have no name (schema 1.7).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<Module>,
    /// What this run could not see.
    pub limitations: Vec<String>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn none_str() -> String {
    "none".to_string()
}

fn unknown_str() -> String {
    "unknown".to_string()
}

/// What the run traced (`mode` in the JSON).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Futex syscall tracepoints and the scheduler.
    #[default]
    Full,
    /// The scheduler only.
    Sched,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Sched => "sched",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub pid: u32,
    pub command_line: Vec<String>,
    /// true when the process was forked by a target and followed.
    pub followed: bool,
    /// For a launched command: how it ended, if it did.
    pub exit: Option<String>,
    /// `go` for a Go program: its goroutines' lock contention is not seen
    /// by futex tracing (schema 1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Its executable (/proc/PID/exe) when it was last seen (schema 1.7);
    /// `command_line` is its process title then (its current argv).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// Descendants of this root that ran while it was traced but were not
    /// (started before tracing without --children, or forked with
    /// --no-follow), pids ascending (schema 1.7).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub untraced_children: Vec<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hook {
    pub name: String,
    pub attached: bool,
    pub note: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Contentions/s from which a lock-free redesign is worth considering.
    pub consider_at: f64,
    /// Contentions/s above which it is recommended.
    pub recommend_at: f64,
}

impl Report {
    /// One sentence per root whose descendants ran untraced: waits in
    /// them are not in this report.
    pub fn untraced_notes(&self) -> Vec<String> {
        self.targets
            .iter()
            .filter(|t| !t.untraced_children.is_empty())
            .map(|t| {
                let n = t.untraced_children.len();
                let pids: Vec<String> = t
                    .untraced_children
                    .iter()
                    .take(8)
                    .map(u32::to_string)
                    .collect();
                format!(
                    "pid {} had {n} descendant process{} that were not traced ({}{}): their waits are not in this report; {}",
                    t.pid,
                    if n == 1 { "" } else { "es" },
                    pids.join(", "),
                    if n > 8 { ", …" } else { "" },
                    if self.tracer_args.iter().any(|a| a == "--no-follow") {
                        "without --no-follow, the processes it forks are followed"
                    } else if self.tracer_args.iter().any(|a| a == "--") {
                        "they were not followed (the target set was full, or they came from a process outside it)"
                    } else {
                        "--children traces those already running when tracing starts"
                    }
                )
            })
            .collect()
    }

    /// The locks the views show: the logical locks, or for a report from
    /// before schema 1.5 its wait channels.
    pub fn lock_rows(&self) -> &[Lock] {
        if self.logical_locks.is_empty() {
            &self.locks
        } else {
            &self.logical_locks
        }
    }

    /// The rows the views draw: the locks, and the waits that are not
    /// locks (condition variables, events, runtime sleeps) only with
    /// `all_waits`.
    pub fn view_rows(&self, all_waits: bool) -> Vec<&Lock> {
        self.lock_rows()
            .iter()
            .filter(|l| all_waits || l.decision != Decision::NotLockContention)
            .collect()
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            consider_at: 100.0,
            recommend_at: 1000.0,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// A condition-variable or other wait (join, park, semaphore): threads
    /// waiting for an event, not for a lock. Never counted as contention
    /// (schema 1.2).
    NotLockContention,
    /// Under `consider_at` contentions/s.
    #[default]
    NotNeeded,
    /// From `consider_at` to `recommend_at` contentions/s inclusive.
    Consider,
    /// Over `recommend_at` contentions/s.
    Recommended,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub decision: Decision,
    /// The lock that matters most (its label), if any lock was contended.
    pub lock: Option<String>,
    pub text: String,
    /// Set when the run lost data that can hide a lock or change a
    /// decision: the verdict is about what was seen only (schema 1.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<Incomplete>,
    /// Whether `lock` names a lock or a lock class (schema 1.5).
    #[serde(default = "lock_level")]
    pub level: String,
}

fn lock_level() -> String {
    "lock".to_string()
}

/// A Go lock type at one call site, from the slow-path entry probes
/// (schema 1.6). Wait time is not measured (an entry probe only).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GoLock {
    /// `sync.Mutex @ main.bumpCounter (gomutex.go:40)`.
    pub label: String,
    /// `sync.Mutex`, `sync.RWMutex (write)`, `sync.RWMutex (read)`.
    #[serde(rename = "type")]
    pub lock_type: String,
    pub pid: u32,
    pub call_site: String,
    /// Contended acquisitions: slow-path entries (a Mutex's lockSlow; an
    /// RWMutex reader's or writer's sleep), estimated over the whole run
    /// when the probes were duty-cycled.
    pub contentions: u64,
    pub contentions_per_s: f64,
    /// Of those, the ones that went on to the runtime's semaphore
    /// (runtime_SemacquireMutex: a sleep, unless a permit was already
    /// there); the rest were won by spinning.
    pub semaphore: u64,
    /// Probe hits seen (before scaling).
    pub hits: u64,
    pub decision: Decision,
    /// The most frequent stack (innermost first).
    pub frames: Vec<Frame>,
}

/// Many locks of one type taken at one call site (schema 1.5).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LockClass {
    /// `mutex @ bump_shard (mutex_array.c:24), 64 locks`.
    pub label: String,
    pub kind: String,
    pub implementation: String,
    pub pid: u32,
    pub call_site: String,
    /// How many locks: members' labels are in `members` (the 50 with the
    /// most waits).
    pub locks: usize,
    pub members: Vec<String>,
    /// Sums over the members.
    pub contentions: u64,
    pub contentions_per_s: f64,
    pub outcomes: Outcomes,
    pub wait: Durations,
    pub histogram: Vec<Bucket>,
    /// Distinct waiting threads.
    pub threads: usize,
    pub decision: Decision,
    /// The member with the most contentions, and its rate.
    pub busiest: String,
    pub busiest_per_s: f64,
}

/// One lock of one program in several processes (forked workers each
/// with their own copy): the same code, so one row, but each process's
/// lock is contended alone, so it is decided on its busiest process, not
/// on the sum (schema 1.8).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LockGroup {
    /// `worker_mu ×4 processes`.
    pub label: String,
    /// The program (its executable).
    pub program: String,
    pub kind: String,
    /// The members' labels (logical locks), busiest first, and their pids.
    pub members: Vec<String>,
    pub pids: Vec<u32>,
    /// Sums over the members.
    pub contentions: u64,
    pub contentions_per_s: f64,
    pub outcomes: Outcomes,
    pub wait: Durations,
    pub threads: usize,
    /// The busiest member's decision.
    pub decision: Decision,
    pub busiest: String,
    pub busiest_pid: u32,
    pub busiest_per_s: f64,
}

impl LockGroup {
    /// The program's file name (`forking_server`).
    pub fn program_name(&self) -> &str {
        self.program.rsplit('/').next().unwrap_or(&self.program)
    }
}

/// A wait channel's part in a logical lock (schema 1.5).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelShare {
    pub address: String,
    pub pid: u32,
    /// Its waits counted in this lock.
    pub contentions: u64,
    /// The share of the channel's waits that belongs to this lock (1 unless
    /// its thread parked for several locks).
    pub share: f64,
}

/// One kernel map's fill at the end of the run (schema 1.4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapFill {
    pub name: String,
    /// Live entries when the maps were read.
    pub entries: u64,
    pub capacity: u32,
}

/// What a run lost that can change its verdict (schema 1.4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incomplete {
    /// Futex waits (or calls) that were not counted.
    pub lost_waits: u64,
    /// Call-site samples lost: lock kinds and call sites may be missing.
    pub lost_samples: u64,
    /// Processes forked by a target that could not be followed.
    pub lost_processes: u64,
    /// One sentence per cause, with what to change.
    pub causes: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    /// Futex address, hex. Identity within this run only (ASLR moves it).
    pub address: String,
    pub pid: u32,
    /// The named static holding the futex word, when there is one.
    pub symbol: Option<String>,
    /// The first frame outside the lock implementation in the top call site.
    pub call_site: Option<String>,
    /// How `call_site` was found: "eh_frame" (unwound in userspace from a
    /// copied stack), "frame-pointer" (kernel walk; skips the direct caller
    /// of a glibc lock function) or "none" (schema 1.2).
    #[serde(default = "none_str")]
    pub call_site_unwind: String,
    /// mutex, rwlock, condvar, wait (join, park, semaphore, once), other
    /// (a raw futex the frames do not explain) or unknown (no unwound
    /// stack). Schema 1.2.
    #[serde(default = "unknown_str")]
    pub kind: String,
    /// The frame that decided `kind`, e.g. `___pthread_cond_wait`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind_frame: Option<String>,
    /// What the report calls the lock: symbol, else call site, else address.
    pub label: String,
    /// Futex waits: every outcome counts (slept, EAGAIN, timed out, …).
    pub contentions: u64,
    pub contentions_per_s: f64,
    pub outcomes: Outcomes,
    pub wait: Durations,
    pub wakes: Wakes,
    pub decision: Decision,
    pub threads: Vec<LockThread>,
    pub histogram: Vec<Bucket>,
    /// Call sites by wait count, largest first (frame-pointer stacks).
    pub sites: Vec<Site>,
    /// Call sites from sampled waits unwound with .eh_frame, by estimated
    /// waits, largest first (schema 1.2).
    #[serde(default)]
    pub unwound_sites: Vec<Site>,
    /// Where the wakes that released its waiters were issued (the holder
    /// side), by wake calls, largest first (schema 1.1).
    #[serde(default)]
    pub waker_sites: Vec<WakerSite>,
    /// The waits that slept, from the scheduler's view (schema 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sched: Option<LockSleeps>,
    /// The implementation that explains its waits: glibc, musl, Rust std,
    /// parking_lot, Abseil, HotSpot, PostgreSQL, InnoDB, RocksDB, Go
    /// runtime, or generic (schema 1.5).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub implementation: String,
    /// How the lock is identified: `word` (its futex word is the lock),
    /// `call-site` (its waiters park on words of their own: the
    /// implementation and the frame that called it) or `implementation`
    /// (parked, with no named caller: every such wait of the
    /// implementation in the process). Logical locks only (schema 1.5).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identity: String,
    /// A logical lock's wait channels (schema 1.5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<ChannelShare>,
    /// A channel's logical lock (its label), or a logical lock's class
    /// (schema 1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<String>,
    /// The futex commands used on a channel (`wait`, `wait_bitset`,
    /// `lock_pi`, `wake`, …; schema 1.5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub futex_ops: Vec<String>,
    /// The word is in memory shared between processes and was used as a
    /// shared futex: every process's waits and wakes on it are this one
    /// lock (schema 1.8). `pid` and `address` are those of its first
    /// process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<SharedWord>,
}

/// A futex word in a shared mapping, named as the kernel keys it: the
/// mapped object and the word's offset in it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SharedWord {
    /// The object as /proc/PID/maps prints it (`/dev/zero (deleted)` is
    /// shared anonymous memory, `/SYSV…` a SysV segment, else a file).
    pub object: String,
    /// Its device (`major:minor`, hex) and inode.
    pub dev: String,
    pub inode: u64,
    /// The word's offset in the object.
    pub offset: u64,
    /// Each process that waited on or woke the word, most wait first.
    pub processes: Vec<ProcessShare>,
}

/// One process's part in a shared lock.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessShare {
    pub pid: u32,
    /// The word's address in this process.
    pub address: String,
    pub contentions: u64,
    pub wait_ns: u64,
    pub wake_calls: u64,
    pub woken: u64,
}

/// What a lock's sleeping waits were made of: blocked until the wakeup, then
/// runnable until a CPU was free.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LockSleeps {
    pub sleeps: u64,
    pub blocked_ns: u64,
    pub runnable_ns: u64,
    /// runnable / (blocked + runnable): over 0.5, the waiters mostly wait for
    /// a CPU, not for the lock.
    pub runnable_share: f64,
    /// Wakeup → running latency of its woken waiters.
    #[serde(default)]
    pub wakeup_latency: Latency,
}

/// A latency distribution: percentiles and the buckets they come from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub histogram: Vec<Bucket>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcomes {
    /// Slept and were woken (or acquired, for PI futexes).
    pub slept: u64,
    /// Returned EAGAIN at once: the word changed before sleeping.
    pub eagain: u64,
    pub timed_out: u64,
    pub interrupted: u64,
    pub error: u64,
}

impl Outcomes {
    /// Adds another lock's outcomes (a class's or a group's sums).
    pub fn add(&mut self, o: &Outcomes) {
        self.slept += o.slept;
        self.eagain += o.eagain;
        self.timed_out += o.timed_out;
        self.interrupted += o.interrupted;
        self.error += o.error;
    }
}

/// A distribution of durations: a lock's waits, a function's calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    pub total_ns: u64,
    pub avg_ns: u64,
    pub p50_ns: u64,
    pub p95_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wakes {
    /// Wake calls on this futex (FUTEX_WAKE*, futex_wake, requeue, unlock_pi).
    pub calls: u64,
    /// Waiters those calls woke or requeued.
    pub woken: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LockThread {
    pub tid: u32,
    /// Its process (schema 1.8; absent in older reports: the lock's).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pid: u32,
    pub name: String,
    pub contentions: u64,
    pub wait_ns: u64,
    pub max_wait_ns: u64,
    pub wake_calls: u64,
    /// Waiters its wake calls woke: the holder side of the contention.
    #[serde(default)]
    pub woken: u64,
}

/// A kernel lock contended by the traced threads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelLock {
    pub address: String,
    pub pid: u32,
    /// The kernel symbol when the lock is a static (from /proc/kallsyms).
    pub symbol: Option<String>,
    /// spinlock, rwlock:R/W, rwsem:R/W, mutex, rt-mutex, pcpu-sem:R/W.
    pub kind: String,
    pub contentions: u64,
    pub total_ns: u64,
    pub avg_ns: u64,
    pub max_ns: u64,
    /// Each traced process that contended it, most wait first (schema 1.8:
    /// one row per lock, `pid` the first of these; before, one row per
    /// process).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<KernelLockShare>,
}

/// One process's part in a kernel lock's contention.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelLockShare {
    pub pid: u32,
    pub contentions: u64,
    pub total_ns: u64,
}

/// One histogram bucket: `count` waits lasted `lo_ns <= t < hi_ns`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub lo_ns: u64,
    pub hi_ns: u64,
    pub count: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Site {
    /// Estimated waits at this site (sampled waits scaled by their weight).
    pub count: u64,
    /// Estimated wait time at this site.
    pub wait_ns: u64,
    /// Stacks actually taken here.
    pub samples: u64,
    /// "frame-pointer" (kernel walk), "eh_frame" (unwound in userspace) or
    /// "none" when no stack was taken.
    pub unwind: String,
    /// The first frame outside the lock implementation (schema 1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_site: Option<String>,
    /// Innermost first.
    pub frames: Vec<Frame>,
    /// The estimates per waiting thread, by wait time, largest first
    /// (unwound sites only; schema 1.3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub threads: Vec<SiteThread>,
}

/// One thread's share of a call site: sampled waits scaled by their weight.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteThread {
    pub tid: u32,
    pub count: u64,
    pub wait_ns: u64,
}

/// A call site of wakes that woke someone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WakerSite {
    /// Estimated wake calls from this stack that woke a waiter.
    pub wakes: u64,
    /// Estimated waiters they woke.
    pub woken: u64,
    pub samples: u64,
    pub unwind: String,
    pub frames: Vec<Frame>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    pub addr: String,
    pub symbol: Option<String>,
    pub offset: Option<u64>,
    pub module: Option<String>,
    /// The address's offset in the module's file (schema 1.5): the same
    /// in every run, whatever the load address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_offset: Option<u64>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// A file code in the stacks came from (schema 1.7): what a saved run's
/// `module+0xOFFSET` frames are resolved against later.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    pub path: String,
    /// Its GNU build id, hex (what debuginfod and .build-id/ directories
    /// are keyed by); None when it has none or could not be read.
    pub build_id: Option<String>,
    /// Distinct frames (module, file offset) of the lock stacks in it.
    pub frames: u64,
    /// Those without a name.
    pub unnamed: u64,
    /// It has no symbol table and no debug file was found for it.
    pub stripped: bool,
    /// It names a separate debug file (.gnu_debuglink), looked up by its
    /// build id under /usr/lib/debug and --debug-dir.
    #[serde(default)]
    pub debug_link: bool,
    /// The debug file's name in its .gnu_debuglink (schema 1.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_link_name: Option<String>,
    /// Its loadable segments, `[file offset, virtual address, file size]`
    /// (schema 1.8): what turns a frame's file offset into the address a
    /// separate debug file is keyed by (`tracer report --debug-dir`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<[u64; 3]>,
}

impl Frame {
    /// Its name in the views: the symbol, else (a stripped binary) the
    /// module and file offset, the same in every run (`libfoo.so+0x1a2b`),
    /// else its address.
    pub fn name(&self) -> String {
        match (&self.symbol, &self.module, self.file_offset) {
            (Some(s), _, _) => s.clone(),
            (None, Some(m), Some(off)) => format!("{}+{off:#x}", m.rsplit('/').next().unwrap_or(m)),
            _ => self.addr.clone(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    pub tid: u32,
    pub pid: u32,
    pub name: String,
    pub contentions: u64,
    pub wait_ns: u64,
    pub max_wait_ns: u64,
    /// Share of the traced time this thread spent in futex waits.
    pub wait_share: f64,
    pub wake_calls: u64,
    /// Label of the lock it waited on longest.
    pub top_lock: Option<String>,
    /// Where its time went, from the scheduler hooks (schema 1.1); null
    /// when the scheduler hooks did not see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sched: Option<SchedTime>,
}

/// A thread's traced time by state, from sched_switch and sched_wakeup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedTime {
    pub oncpu_ns: u64,
    /// Blocked after a voluntary switch-out, until woken.
    pub sleep_ns: u64,
    /// The part of `sleep_ns` spent inside a futex wait.
    pub futex_sleep_ns: u64,
    /// Runnable but not running: preempted, or woken and still queued.
    pub runnable_ns: u64,
    /// The part of `runnable_ns` from a wakeup to running.
    pub wakeup_latency_ns: u64,
    /// Switch-outs as /proc/PID/task/TID/status counts them.
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    pub wakeups: u64,
    /// Voluntary sleeps outside futex waits, by the syscall they happened
    /// in (read from the thread's saved registers), longest first.
    #[serde(default)]
    pub other_sleep: Vec<SyscallTime>,
    /// Wakeup → running latency (run-queue latency after a sleep).
    #[serde(default)]
    pub wakeup_latency: Latency,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallTime {
    /// Syscall name, `syscall N` when unknown, or `not in a syscall`.
    pub syscall: String,
    pub sleeps: u64,
    pub sleep_ns: u64,
}

/// A probed function (schema 1.2).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Function {
    /// Demangled name.
    pub name: String,
    /// The binary, as the target maps it.
    pub binary: String,
    /// File offset the probe is attached at.
    pub offset: u64,
    /// "uprobe" (--uprobe) or "alloc" (--alloc).
    pub role: String,
    /// Calls seen while the probes were attached (entry and return both).
    pub calls: u64,
    /// Calls per second of attached time (detached early: the rate in its
    /// last window).
    pub calls_per_s: f64,
    /// `calls` scaled to the whole run (÷ attached fraction; detached
    /// early: that rate × the run).
    pub calls_estimated: u64,
    pub latency: Durations,
    /// Latency histogram (`lo_ns`/`hi_ns` are nanoseconds).
    pub histogram: Vec<Bucket>,
    /// Allocation functions: bytes requested by the calls seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Allocation functions: request sizes (`lo_ns`/`hi_ns` are bytes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub size_histogram: Vec<Bucket>,
    /// Per caller (return address), by calls, largest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<FnSite>,
    /// Detached before the end: its probes alone cost more than
    /// --probe-budget while attached (schema 1.8). Its counts are from the
    /// time it was attached; `calls_estimated` extrapolates its rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detached_early: Option<DetachedEarly>,
}

/// Why and when a probed function was detached early.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DetachedEarly {
    /// Seconds it was attached.
    pub after_s: f64,
    /// Share of the targets' CPU its probes cost in its last window.
    pub share: f64,
    /// Its call rate then.
    pub calls_per_s: f64,
}

/// Calls of a probed function from one call site.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FnSite {
    /// The calling function (symbolized return address), with file:line.
    pub caller: Option<String>,
    /// The return address, hex.
    pub return_addr: String,
    pub calls: u64,
    pub total_ns: u64,
    pub bytes: u64,
}

/// The price of the function probes (schema 1.2).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeCost {
    /// Functions probed (entry + return each).
    pub functions: usize,
    /// Cost of one probed call (entry + return), measured at start-up by
    /// timing a function in the tracer with and without the probes.
    pub per_call_ns: f64,
    /// Probed calls seen.
    pub calls: u64,
    /// calls × per_call_ns.
    pub estimated_overhead_ns: u64,
    /// The targets' on-CPU time over the run (schedstat).
    pub target_cpu_ns: u64,
    /// estimated_overhead_ns / target_cpu_ns.
    pub estimated_share: f64,
    /// --probe-budget, percent.
    pub budget_pct: Option<f64>,
    /// Share of the run the probes were attached (1 without a budget).
    pub attached_fraction: f64,
    /// Attach windows (1 without a budget).
    pub windows: u64,
    /// estimated_share is over budget_pct: the budget did not hold (the
    /// run was too short for the duty cycle, or the probes were slower
    /// than calibrated); schema 1.8.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub over_budget: bool,
}

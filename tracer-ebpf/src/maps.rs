//! Maps shared by the hook families, the target filter, and small helpers
//! for counting, atomics and reading tracepoint records.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    EbpfContext,
    bindings::BPF_NOEXIST,
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf, StackTrace},
    programs::TracePointContext,
};
use tracer_common::{
    FnHistKey, FnKey, FnStart, FnStartKey, FnStats, FutexStart, HistKey, KLockKey, KLockStart,
    KLockStats, LockKey, LockSched, LockThreadKey, LockThreadStats, RunqKey, SiteKey, SiteStats,
    SyscallSleep, SyscallSleepKey, ThreadLocks, ThreadSched, UnwindSample, counter, limits,
};

/// Processes being traced (tgid → 1). Filled by userspace, and by
/// `task_newtask` when a traced process forks and children are followed.
#[map]
pub static TARGETS: HashMap<u32, u32> = HashMap::with_max_entries(limits::TARGETS, 0);

/// Futex calls in flight, in slot `tid & (START_SLOTS - 1)`.
#[map]
pub static FUTEX_START: Array<FutexStart> = Array::with_max_entries(limits::START_SLOTS, 0);

/// The start slot of a thread.
#[inline(always)]
pub fn start_slot(tid: u32) -> Option<*mut FutexStart> {
    FUTEX_START.get_ptr_mut(tid & (limits::START_SLOTS - 1))
}

/// Per (lock, thread) wait and wake statistics. Per-lock and per-thread
/// totals are sums over this map, so one map update per event serves both.
#[map]
pub static LOCK_THREADS: HashMap<LockThreadKey, LockThreadStats> =
    HashMap::with_max_entries(limits::LOCK_THREADS, 0);

/// Per thread, in slot `tid & (START_SLOTS - 1)`: the locks it has
/// LOCK_THREADS entries for, deleted at its exit (sched.rs).
#[map]
pub static THREAD_LOCKS: Array<ThreadLocks> = Array::with_max_entries(limits::START_SLOTS, 0);

/// Per traced thread: where its time goes (sched.rs).
#[map]
pub static THREAD_SCHED: HashMap<u32, ThreadSched> = HashMap::with_max_entries(limits::THREADS, 0);

/// Per lock: its waiters' futex sleeps, blocked vs runnable after wakeup.
#[map]
pub static LOCK_SCHED: HashMap<LockKey, LockSched> =
    HashMap::with_max_entries(limits::LOCK_SCHED, 0);

/// Per (thread, syscall): voluntary sleeps outside futex waits.
#[map]
pub static SYSCALL_SLEEP: HashMap<SyscallSleepKey, SyscallSleep> =
    HashMap::with_max_entries(limits::SYSCALL_SLEEP, 0);

/// Kernel-lock waits in flight, in slot `tid & (START_SLOTS - 1)`.
#[map]
pub static KLOCK_START: Array<KLockStart> = Array::with_max_entries(limits::START_SLOTS, 0);

/// Kernel locks contended by traced threads.
#[map]
pub static KLOCKS: HashMap<KLockKey, KLockStats> = HashMap::with_max_entries(limits::KLOCKS, 0);

/// Wakeup → running latency histograms, per thread and per lock.
#[map]
pub static RUNQ_HIST: HashMap<RunqKey, u64> = HashMap::with_max_entries(limits::RUNQ_HIST, 0);

/// Sparse wait-time histogram per lock.
#[map]
pub static LOCK_HIST: HashMap<HistKey, u64> = HashMap::with_max_entries(limits::HIST, 0);

/// Waits per (lock, user stack).
#[map]
pub static LOCK_SITES: HashMap<SiteKey, SiteStats> = HashMap::with_max_entries(limits::SITES, 0);

/// Wakes that woke someone, per (lock, user stack): the holder side.
/// `count` is wake calls, `wait_ns` holds waiters woken.
#[map]
pub static WAKE_SITES: HashMap<SiteKey, SiteStats> = HashMap::with_max_entries(limits::SITES, 0);

/// User stacks, frame-pointer walked by the kernel.
#[map]
pub static STACKS: StackTrace = StackTrace::with_max_entries(limits::STACKS, 0);

/// Records for userspace (tracer_common::record): sampled futex waits with
/// a copy of the user stack, unwound in userspace with .eh_frame (bounded:
/// see `UNWIND_RATE`), thread exits and followed forks. Read by a thread of
/// its own in userspace.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(limits::UNWIND_RING, 0);

/// Flags for a bulky record (a stack copy): no wakeup of the reader until
/// the ring is a quarter full. A wakeup is an irq_work, a self-IPI: ≈8 µs
/// per record on this VM in a perf event's interrupt (measured with
/// --program-stats: 8.4–10.5 µs per sample with it, 0.5 µs without). The
/// reader polls every 50 ms anyway.
#[inline(always)]
pub fn bulk_flags() -> u64 {
    use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) > u64::from(limits::UNWIND_RING / 4) {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// Per CPU: where an unwind sample is assembled before it is copied into
/// EVENTS at its real length (a ring reservation must have a constant
/// size, and most stacks are far shorter than UNWIND_STACK).
#[map]
pub static UNWIND_SCRATCH: PerCpuArray<UnwindSample> = PerCpuArray::with_max_entries(1, 0);

/// Probed function calls in flight (uprobe.rs).
#[map]
pub static FN_START: HashMap<FnStartKey, FnStart> = HashMap::with_max_entries(limits::FN_START, 0);

/// Per (function, process): calls and latency.
#[map]
pub static FN_STATS: HashMap<FnKey, FnStats> = HashMap::with_max_entries(limits::FN_STATS, 0);

/// Per (function, process, caller's return address).
#[map]
pub static FN_SITES: HashMap<FnKey, FnStats> = HashMap::with_max_entries(limits::FN_SITES, 0);

/// Function latency and allocation size histograms.
#[map]
pub static FN_HIST: HashMap<FnHistKey, u64> = HashMap::with_max_entries(limits::FN_HIST, 0);

/// Set by userspace (`tracer_common::CONTROL_HARVESTING`): read only on the
/// rare paths that move entries out of the maps (a thread's exit).
#[map]
pub static CONTROL: Array<u32> = Array::with_max_entries(1, 0);

/// Whether userspace has begun its final read of the maps.
#[inline(always)]
pub fn harvesting() -> bool {
    CONTROL
        .get(tracer_common::CONTROL_HARVESTING)
        .is_some_and(|v| *v != 0)
}

/// Events and drops, per CPU (indices in `tracer_common::counter`).
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

// Load-time settings are `static mut`, so they live in .data, not .rodata.
// LLVM merges identical read-only constants, and a promoted `&0` passed as a
// map's initial value was once merged into a read-only global the loader
// later set to 1264: every new histogram bucket then started at 1264. A
// mutable global is never a merge target.

/// Set by userspace to the first root target (NO_TGID when there is
/// none): it is checked with a compare before any map lookup. Set to
/// NO_TGID by the kernel when that process exits, so a reused pid is never
/// traced.
#[unsafe(no_mangle)]
static mut TARGET_TGID: u32 = tracer_common::NO_TGID;

/// Set by userspace when TARGET_TGID is the only target (one root): the
/// compare is then the whole filter (no hash lookup for any futex call on
/// the system), until the target forks a child that is followed
/// ([`more_than_first`]).
#[unsafe(no_mangle)]
static mut ONLY_FIRST: u32 = 0;

/// Set by userspace: follow processes forked by a target (`-- CMD` mode).
#[unsafe(no_mangle)]
static mut FOLLOW_FORKS: u32 = 0;

/// Set by userspace: after the first waits of a (lock, thread) pair, take a
/// stack for one wait in STACK_EVERY (a power of two; 1 = every wait).
#[unsafe(no_mangle)]
static mut STACK_EVERY: u64 = 16;

#[inline(always)]
pub fn stack_every() -> u64 {
    // SAFETY: as for FOLLOW_FORKS.
    unsafe { core::ptr::read_volatile(&raw const STACK_EVERY) }
}

/// Per CPU: [window start ns, unwind samples in the window], so the whole
/// system sends at most UNWIND_CPU_RATE samples per second per CPU however
/// many futex words the target has.
#[map]
pub static UNWIND_BUDGET: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

/// Per CPU: [window start ns, stacks taken in the window] for call sites,
/// at most `STACK_CPU_RATE` per second per CPU (futex.rs `record_site`).
#[map]
pub static STACK_BUDGET: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

/// Set by userspace: unwind samples per second per CPU, at most.
#[unsafe(no_mangle)]
static mut UNWIND_CPU_RATE: u64 = 100;

#[inline(always)]
pub fn unwind_cpu_rate() -> u64 {
    // SAFETY: as for FOLLOW_FORKS.
    unsafe { core::ptr::read_volatile(&raw const UNWIND_CPU_RATE) }
}

/// Set by userspace: unwind samples per second per (lock, thread) after
/// the first UNWIND_FIRST; 0 turns unwind sampling off.
#[unsafe(no_mangle)]
static mut UNWIND_RATE: u64 = 10;

#[inline(always)]
pub fn unwind_rate() -> u64 {
    // SAFETY: as for FOLLOW_FORKS.
    unsafe { core::ptr::read_volatile(&raw const UNWIND_RATE) }
}

/// Set by userspace for `--mode sched`: no syscall tracepoints; futex waits
/// are seen at voluntary switch-out from the saved registers.
#[unsafe(no_mangle)]
static mut SCHED_ONLY: u32 = 0;

#[inline(always)]
pub fn sched_only() -> bool {
    // SAFETY: as for FOLLOW_FORKS.
    unsafe { core::ptr::read_volatile(&raw const SCHED_ONLY) != 0 }
}

#[inline(always)]
pub fn follow_forks() -> bool {
    // SAFETY: a plain read of a global the loader sets before load; volatile
    // so the compiler does not fold the default value in.
    unsafe { core::ptr::read_volatile(&raw const FOLLOW_FORKS) != 0 }
}

/// Is this tgid one of ours?
#[inline(always)]
pub fn is_target(tgid: u32) -> bool {
    // SAFETY: as for FOLLOW_FORKS.
    let first = unsafe { core::ptr::read_volatile(&raw const TARGET_TGID) };
    if tgid == first {
        return true;
    }
    // With one target and no following, nothing else is ours: a compare
    // instead of a hash lookup for every futex call on the system.
    // SAFETY: as for FOLLOW_FORKS.
    if unsafe { core::ptr::read_volatile(&raw const ONLY_FIRST) } != 0 {
        return false;
    }
    TARGETS.get_ptr(tgid).is_some()
}

/// A second process joins the target set (a followed fork): from now on
/// the filter looks it up. Stored before the child is added, in the
/// parent's fork, so the child's first syscall sees it.
#[inline(always)]
pub fn more_than_first() {
    // SAFETY: a plain store into the program's own .bss; readers use
    // read_volatile and only ever see 0 or 1.
    unsafe { core::ptr::write_volatile(&raw mut ONLY_FIRST, 0) };
}

/// A traced process is gone: it leaves the target set, so a process that
/// reuses its pid is not traced.
#[inline(always)]
pub fn forget_target(tgid: u32) {
    let _ = TARGETS.remove(&tgid);
    // SAFETY: a plain store into the program's own .data; a concurrent
    // reader sees the old or the new value, both valid.
    unsafe {
        if core::ptr::read_volatile(&raw const TARGET_TGID) == tgid {
            core::ptr::write_volatile(&raw mut TARGET_TGID, tracer_common::NO_TGID);
        }
    }
}

/// Bumps one of the per-CPU counters.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, and BPF programs do not migrate while running.
        unsafe { *p += 1 };
    }
}

/// Atomically adds to a u64 shared between CPUs.
#[inline(always)]
pub fn atomic_add(p: *mut u64, v: u64) {
    // SAFETY: `p` comes from a map lookup and points at a live u64 value.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, v) };
}

/// Returns a pointer to the value for `key`, inserting `init` first if the key
/// is new. A full map is counted under `full` and returns None.
#[inline(always)]
pub fn get_or_insert<K, V>(map: &HashMap<K, V>, key: &K, init: &V, full: u32) -> Option<*mut V> {
    if let Some(p) = map.get_ptr_mut(key) {
        return Some(p);
    }
    // Another CPU may insert the same key between our lookup and insert: NOEXIST
    // then fails with EEXIST and the lookup below finds its entry.
    if map.insert(key, init, BPF_NOEXIST as u64).is_err() && map.get_ptr_mut(key).is_none() {
        count(full);
        return None;
    }
    map.get_ptr_mut(key)
}

/// Reads a field of a tracepoint record by direct context access (cheaper
/// than a probe_read helper call; the verifier bounds-checks it).
///
/// # Safety
/// `offset` must be a constant, inside the tracepoint's record and aligned
/// for `T`.
#[inline(always)]
pub unsafe fn read_ctx<T: Copy>(ctx: &TracePointContext, offset: usize) -> T {
    // SAFETY: the caller guarantees the offset; the verifier checks ctx bounds.
    unsafe { core::ptr::read(ctx.as_ptr().cast::<u8>().add(offset).cast::<T>()) }
}

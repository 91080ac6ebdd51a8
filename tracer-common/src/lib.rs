//! The wire contract between the kernel programs (`tracer-ebpf`) and the
//! userspace loader (`tracer`): map keys and values, counter indices, sizes.
//!
//! Everything here is `#[repr(C)]`, has no implicit padding (fields ordered
//! u64 → u32) and pins its size with a `const` assertion, so the two sides can
//! never silently disagree about a layout.
#![no_std]

use core::mem::size_of;

/// Names of the kernel object's programs, maps and load-time globals, as
/// userspace looks them up. The kernel side declares each by its Rust name
/// (`#[map]` statics, `#[no_mangle]` functions and globals); a unit test in
/// the loader checks every name here exists in the built object, and every
/// program in the object is listed here.
pub mod names {
    /// Programs: the futex syscalls' entries and the shared exit.
    pub const SYS_ENTER_FUTEX: &str = "sys_enter_futex";
    pub const SYS_ENTER_FUTEX_WAIT: &str = "sys_enter_futex_wait";
    pub const SYS_ENTER_FUTEX_WAITV: &str = "sys_enter_futex_waitv";
    pub const SYS_ENTER_FUTEX_WAKE: &str = "sys_enter_futex_wake";
    pub const SYS_EXIT_FUTEX: &str = "sys_exit_futex";
    /// Programs: kernel lock contention.
    pub const CONTENTION_BEGIN: &str = "contention_begin";
    pub const CONTENTION_END: &str = "contention_end";
    /// Programs: forks and process exits.
    pub const TASK_NEWTASK: &str = "task_newtask";
    pub const SCHED_PROCESS_FREE: &str = "sched_process_free";
    /// Program: execs, for `tracer agent`'s matching.
    pub const SCHED_PROCESS_EXEC: &str = "sched_process_exec";
    /// Programs: the scheduler hooks, as tp_btf and their raw_tp fallbacks
    /// (the same name with `RAW_SUFFIX`).
    pub const SCHED_SWITCH: &str = "sched_switch";
    pub const SCHED_WAKEUP: &str = "sched_wakeup";
    pub const SCHED_WAKEUP_NEW: &str = "sched_wakeup_new";
    pub const SCHED_HOOKS: [&str; 3] = [SCHED_SWITCH, SCHED_WAKEUP, SCHED_WAKEUP_NEW];
    pub const RAW_SUFFIX: &str = "_raw";
    /// Programs: function probes (entry, return) and Go's lock entry.
    pub const FN_ENTRY: &str = "fn_entry";
    pub const FN_RETURN: &str = "fn_return";
    pub const GO_LOCK_ENTRY: &str = "go_lock_entry";
    /// Program: on-CPU samples (`tracer profile`), on a perf event.
    pub const CPU_SAMPLE: &str = "cpu_sample";

    /// Every program the object holds.
    pub const PROGRAMS: [&str; 20] = [
        SYS_ENTER_FUTEX,
        SYS_ENTER_FUTEX_WAIT,
        SYS_ENTER_FUTEX_WAITV,
        SYS_ENTER_FUTEX_WAKE,
        SYS_EXIT_FUTEX,
        CONTENTION_BEGIN,
        CONTENTION_END,
        TASK_NEWTASK,
        SCHED_PROCESS_FREE,
        SCHED_PROCESS_EXEC,
        SCHED_SWITCH,
        SCHED_WAKEUP,
        SCHED_WAKEUP_NEW,
        "sched_switch_raw",
        "sched_wakeup_raw",
        "sched_wakeup_new_raw",
        FN_ENTRY,
        FN_RETURN,
        GO_LOCK_ENTRY,
        CPU_SAMPLE,
    ];

    /// Maps.
    pub const TARGETS: &str = "TARGETS";
    pub const CONTROL: &str = "CONTROL";
    pub const COUNTERS: &str = "COUNTERS";
    pub const EVENTS: &str = "EVENTS";
    pub const STACKS: &str = "STACKS";
    pub const LOCK_THREADS: &str = "LOCK_THREADS";
    pub const LOCK_HIST: &str = "LOCK_HIST";
    pub const LOCK_SITES: &str = "LOCK_SITES";
    pub const WAKE_SITES: &str = "WAKE_SITES";
    pub const LOCK_SCHED: &str = "LOCK_SCHED";
    pub const THREAD_SCHED: &str = "THREAD_SCHED";
    pub const SYSCALL_SLEEP: &str = "SYSCALL_SLEEP";
    pub const RUNQ_HIST: &str = "RUNQ_HIST";
    pub const KLOCKS: &str = "KLOCKS";
    pub const FN_START: &str = "FN_START";
    pub const FN_STATS: &str = "FN_STATS";
    pub const FN_SITES: &str = "FN_SITES";
    pub const FN_HIST: &str = "FN_HIST";

    /// Load-time globals.
    pub const TARGET_TGID: &str = "TARGET_TGID";
    pub const ONLY_FIRST: &str = "ONLY_FIRST";
    pub const FOLLOW_FORKS: &str = "FOLLOW_FORKS";
    pub const STACK_EVERY: &str = "STACK_EVERY";
    pub const UNWIND_RATE: &str = "UNWIND_RATE";
    pub const SCHED_ONLY: &str = "SCHED_ONLY";
    pub const TASK_PID_OFFSET: &str = "TASK_PID_OFFSET";

    /// The kernel keeps the first 15 bytes of a program's name (bpftool
    /// and /proc/PID/fdinfo show those).
    pub const KERNEL_NAME_LEN: usize = 15;
}

/// Tracepoint record offsets we read directly from the context, as the
/// kernel's `format` files describe them. They have been stable since syscall
/// tracepoints were introduced (common header 8 bytes, `__syscall_nr` at 8,
/// then every argument as 8 bytes from 16). Userspace verifies each one
/// against `/sys/kernel/tracing/events/*/*/format` before loading, and refuses
/// to run with one sentence if a kernel ever disagrees.
pub mod tp {
    /// `syscalls:sys_enter_*`: first syscall argument.
    pub const SYSCALL_ARG0: usize = 16;
    /// `syscalls:sys_enter_*`: second syscall argument.
    pub const SYSCALL_ARG1: usize = 24;
    /// `syscalls:sys_enter_*`: fourth syscall argument.
    pub const SYSCALL_ARG3: usize = 40;
    /// `syscalls:sys_exit_*`: `long ret`.
    pub const SYSCALL_RET: usize = 16;
    /// `task:task_newtask`: `pid_t pid` (the new task's id).
    pub const NEWTASK_PID: usize = 8;
    /// `task:task_newtask`: `u64 clone_flags`.
    pub const NEWTASK_CLONE_FLAGS: usize = 32;
    /// `lock:contention_begin` / `contention_end`: `void *lock_addr`.
    pub const LOCK_ADDR: usize = 8;
    /// `lock:contention_begin`: `unsigned int flags`.
    pub const LOCK_FLAGS: usize = 16;
    /// `sched:sched_process_free`: `pid_t pid` (after `__data_loc comm`).
    pub const PROCESS_FREE_PID: usize = 12;
}

/// futex(2) operation codes (include/uapi/linux/futex.h).
pub mod futex_op {
    pub const WAIT: u32 = 0;
    pub const WAKE: u32 = 1;
    pub const REQUEUE: u32 = 3;
    pub const CMP_REQUEUE: u32 = 4;
    pub const WAKE_OP: u32 = 5;
    pub const LOCK_PI: u32 = 6;
    pub const UNLOCK_PI: u32 = 7;
    pub const WAIT_BITSET: u32 = 9;
    pub const WAKE_BITSET: u32 = 10;
    pub const WAIT_REQUEUE_PI: u32 = 11;
    pub const CMP_REQUEUE_PI: u32 = 12;
    pub const LOCK_PI2: u32 = 13;
    pub const PRIVATE_FLAG: u32 = 128;
    pub const CLOCK_REALTIME: u32 = 256;
    /// `op & CMD_MASK` is the command with both flags removed.
    pub const CMD_MASK: u32 = !(PRIVATE_FLAG | CLOCK_REALTIME);
    /// Pseudo-ops recorded for the futex2 syscalls, outside the futex(2) range.
    pub const SYS_FUTEX_WAIT: u32 = 0x1000;
    pub const SYS_FUTEX_WAITV: u32 = 0x1001;
    pub const SYS_FUTEX_WAKE: u32 = 0x1002;
    /// Or'ed into a recorded op: the call was not private (no
    /// FUTEX_PRIVATE_FLAG, no FUTEX2_PRIVATE), so the kernel keys the word
    /// by its mapping when the mapping is shared: processes that map the
    /// same memory wait on the same futex.
    pub const SHARED: u32 = 1 << 30;
}

/// What a futex call in flight is, as stored in its start record. Each
/// thread keeps one start slot for its lifetime, updated in place (no map
/// insert or delete per call); the exit marks it `NONE` again.
pub mod kind {
    /// No call in flight: a futex exit that finds this began before
    /// tracing did.
    pub const NONE: u32 = 0;
    pub const WAIT: u32 = 1;
    /// futex_waitv(2): the address is read at exit from the waiter array.
    pub const WAITV: u32 = 2;
    pub const WAKE: u32 = 3;
    /// A futex op we do not aggregate (trylock, fd, …); recorded so its
    /// exit is not mistaken for one that began before tracing.
    pub const OTHER: u32 = 4;
}

/// Call-site sampling: every wait of a (lock, thread) pair takes a user
/// stack until the pair has had `STACK_ALL_FIRST` waits; after that, one in
/// `STACK_EVERY` (a power of two, set at load time). A sampled wait counts
/// for `STACK_EVERY` in its site, so site counts stay unbiased estimates
/// while the per-wait cost of hot locks drops.
pub const STACK_ALL_FIRST: u64 = 64;

/// User stacks taken per second per CPU, at most, for call sites (each
/// costs about a microsecond): a sample due past it is deferred, its
/// weight carried by the pair's next sample (`stack_throttled` counts
/// them), so site counts keep adding up to the waits.
pub const STACK_CPU_RATE: u64 = 2000;

/// How a wait ended, as an index into [`LockThreadStats::outcomes`].
pub mod outcome {
    /// Returned 0: slept and was woken (or acquired, for PI locks).
    pub const WOKEN: usize = 0;
    /// Returned EAGAIN: the futex word changed before sleeping. Contended,
    /// but no sleep.
    pub const EAGAIN: usize = 1;
    /// Returned ETIMEDOUT.
    pub const TIMEDOUT: usize = 2;
    /// Returned EINTR or one of the kernel's restart codes (a signal).
    pub const INTERRUPTED: usize = 3;
    /// Any other error (EINVAL, EFAULT, EDEADLK, …).
    pub const ERROR: usize = 4;
    pub const COUNT: usize = 5;

    pub const EAGAIN_ERRNO: i64 = 11;
    pub const EINTR_ERRNO: i64 = 4;
    pub const ETIMEDOUT_ERRNO: i64 = 110;
    /// ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK:
    /// a syscall exit tracepoint sees these before signal delivery turns
    /// them into EINTR or a restart.
    pub const RESTART_ERRNO_MIN: i64 = 512;
    pub const RESTART_ERRNO_MAX: i64 = 516;

    /// Classifies a futex wait's return value.
    #[inline(always)]
    pub fn classify(ret: i64) -> usize {
        if ret >= 0 {
            WOKEN
        } else {
            let errno = -ret;
            if errno == EAGAIN_ERRNO {
                EAGAIN
            } else if errno == ETIMEDOUT_ERRNO {
                TIMEDOUT
            } else if errno == EINTR_ERRNO
                || (RESTART_ERRNO_MIN..=RESTART_ERRNO_MAX).contains(&errno)
            {
                INTERRUPTED
            } else {
                ERROR
            }
        }
    }
}

/// Indices into the per-CPU `COUNTERS` array: every way an event can be
/// lost. Userspace shows all of them in every report. (Events seen are
/// summed from the aggregates instead: one map access less per event.)
pub mod counter {
    /// A futex call of a target exited without its start: it began before
    /// tracing did (a thread already asleep at attach time), or a thread
    /// whose id collides modulo START_SLOTS took its slot. Not measured.
    pub const MISSING_START: u32 = 0;
    /// The per-(lock, thread) map was full: that event is lost.
    pub const AGG_FULL: u32 = 1;
    /// The histogram map was full: the wait is counted but not in a bucket.
    pub const HIST_FULL: u32 = 2;
    /// The call-site map was full: the wait is counted but has no site.
    pub const SITE_FULL: u32 = 3;
    /// bpf_get_stackid failed other than by a collision.
    pub const STACK_ERROR: u32 = 4;
    /// bpf_get_stackid hit a hash collision (EEXIST): no stack for that wait.
    pub const STACK_COLLISION: u32 = 5;
    /// futex_waitv: reading the waiter array from user memory failed.
    pub const WAITV_READ: u32 = 6;
    /// The target map was full: a forked child could not be followed.
    pub const TARGETS_FULL: u32 = 7;
    /// The per-thread scheduler map was full: that thread's switches are lost.
    pub const SCHED_FULL: u32 = 8;
    /// Reading a task_struct field failed in a scheduler hook.
    pub const TASK_READ: u32 = 9;
    /// The per-lock scheduler map was full: a futex sleep is not attributed.
    pub const LOCK_SCHED_FULL: u32 = 10;
    /// The per-(thread, syscall) sleep map was full.
    pub const SYSCALL_SLEEP_FULL: u32 = 11;
    /// The kernel-lock map was full.
    pub const KLOCK_FULL: u32 = 12;
    /// A contention_end with no matching begin (began before attach, or
    /// nested deeper than two).
    pub const KLOCK_UNMATCHED: u32 = 13;
    /// The run-queue histogram map was full.
    pub const RUNQ_HIST_FULL: u32 = 14;
    /// The unwind ring buffer was full: that wait keeps its frame-pointer
    /// stack only.
    pub const UNWIND_RING_FULL: u32 = 15;
    /// Reading the user registers for an unwind sample failed.
    pub const UNWIND_REGS: u32 = 16;
    /// A probed function returned without a recorded entry (it began
    /// before attach, or recursed: the inner call took the entry).
    pub const FN_MISSING_ENTRY: u32 = 17;
    /// One of the function maps (starts, stats, sites, histograms) was full.
    pub const FN_MAP_FULL: u32 = 18;
    /// Not a loss: a wait that would have been unwound was not, because
    /// its CPU had sent its unwind samples for this second (reported as an
    /// event, not a drop).
    pub const UNWIND_THROTTLED: u32 = 19;
    /// A futex exit found its start slot taken by another live thread
    /// whose id collides modulo START_SLOTS: that call is lost.
    pub const START_COLLISION: u32 = 20;
    /// The per-(lock, thread) map was full at a wake call: that wake is
    /// lost (waits are counted under AGG_FULL).
    pub const WAKE_MAP_FULL: u32 = 21;
    /// Not a loss: a thread-exit record did not fit in the event ring, so
    /// that thread's entries stay in the maps until the end of the run
    /// (counted as an event).
    pub const EXIT_RECORD_LOST: u32 = 22;
    /// Not a loss: a fork or process-gone record did not fit in the event
    /// ring (the target set itself is read too; counted as an event).
    pub const PROCESS_RECORD_LOST: u32 = 23;
    /// Not a loss: a call-site sample deferred by the per-CPU stack budget
    /// (its weight goes with the pair's next sample).
    pub const STACK_THROTTLED: u32 = 24;
    /// Not a loss: on-CPU samples of a target thread taken (`tracer
    /// profile`), sent or not.
    pub const CPU_SAMPLES: u32 = 25;
    /// An on-CPU sample did not fit in the event ring: it is lost.
    pub const CPU_RING_FULL: u32 = 26;
    pub const COUNT: u32 = 27;

    /// Whether counter `i` counts lost or unattributed data (every counter
    /// but the events UNWIND_THROTTLED, EXIT_RECORD_LOST,
    /// PROCESS_RECORD_LOST, STACK_THROTTLED and CPU_SAMPLES).
    pub const fn is_drop(i: u32) -> bool {
        i != UNWIND_THROTTLED
            && i != EXIT_RECORD_LOST
            && i != PROCESS_RECORD_LOST
            && i != STACK_THROTTLED
            && i != CPU_SAMPLES
    }

    /// Report names, in index order.
    pub const NAMES: [&str; COUNT as usize] = [
        "missing_start",
        "lock_map_full",
        "hist_map_full",
        "site_map_full",
        "stack_error",
        "stack_collision",
        "waitv_read_error",
        "targets_map_full",
        "sched_map_full",
        "task_read_error",
        "lock_sched_map_full",
        "syscall_sleep_map_full",
        "klock_map_full",
        "klock_unmatched",
        "runq_hist_map_full",
        "unwind_ring_full",
        "unwind_regs_error",
        "fn_missing_entry",
        "fn_map_full",
        "unwind_throttled",
        "start_collision",
        "wake_map_full",
        "exit_record_lost",
        "process_record_lost",
        "stack_throttled",
        "cpu_samples",
        "cpu_ring_full",
    ];
}

/// Map capacities. Kernel memory is proportional to these; every overflow is
/// counted in [`counter`]. The per-lock maps are resized at load time from
/// `--max-locks` (LOCK_THREADS entries; the histogram and run-queue maps
/// get `HIST_PER_LOCK` times as many).
pub mod limits {
    pub const TARGETS: u32 = 1024;
    /// Histogram entries per (lock, thread) entry when `--max-locks` sizes
    /// the maps (a contended lock spreads its waits over a few buckets).
    pub const HIST_PER_LOCK: u32 = 4;
    /// `--max-locks` accepts up to this many entries (2^22: about 1.2 GB
    /// of preallocated kernel memory across the per-lock maps).
    pub const MAX_LOCKS_LIMIT: u32 = 1 << 22;
    /// Start slots (a power of two). Thread ids are dense and sequential,
    /// so two live traced threads rarely share `tid & (START_SLOTS - 1)`;
    /// when they do, the earlier call is counted under `MISSING_START`.
    pub const START_SLOTS: u32 = 1 << 16;
    pub const LOCK_THREADS: u32 = 16384;
    pub const THREADS: u32 = 16384;
    pub const LOCK_SCHED: u32 = 16384;
    pub const SYSCALL_SLEEP: u32 = 16384;
    pub const KLOCKS: u32 = 16384;
    pub const RUNQ_HIST: u32 = 65536;
    pub const HIST: u32 = 65536;
    pub const SITES: u32 = 16384;
    pub const STACKS: u32 = 16384;
    /// Ring buffer for unwind samples, bytes (a power of two).
    pub const UNWIND_RING: u32 = 4 << 20;
    pub const FN_START: u32 = 16384;
    pub const FN_STATS: u32 = 4096;
    pub const FN_SITES: u32 = 16384;
    pub const FN_HIST: u32 = 65536;
}

/// Log-linear (HDR-like) histogram: values below `2 * SUB` have a bucket of
/// their own; above, each power of two is split into `SUB` linear
/// sub-buckets, so a bucket is never wider than 1/SUB of its lower bound
/// (3.1% with 32 sub-buckets).
pub mod hist {
    pub const SUB_BITS: u32 = 5;
    pub const SUB: u64 = 1 << SUB_BITS;
    /// One past the largest bucket index `bucket` can return.
    pub const BUCKETS: u32 = (64 - SUB_BITS + 1) * SUB as u32;

    /// floor(log2(v)) for v > 0, without loops (the verifier likes that).
    #[inline(always)]
    pub fn log2_floor(mut v: u64) -> u32 {
        let mut r = 0;
        if v >= 1 << 32 {
            v >>= 32;
            r += 32;
        }
        if v >= 1 << 16 {
            v >>= 16;
            r += 16;
        }
        if v >= 1 << 8 {
            v >>= 8;
            r += 8;
        }
        if v >= 1 << 4 {
            v >>= 4;
            r += 4;
        }
        if v >= 1 << 2 {
            v >>= 2;
            r += 2;
        }
        if v >= 1 << 1 {
            r += 1;
        }
        r
    }

    /// The bucket index of a value (nanoseconds, bytes, …).
    #[inline(always)]
    pub fn bucket(v: u64) -> u32 {
        if v < SUB {
            return v as u32;
        }
        let shift = log2_floor(v) - SUB_BITS;
        let sub = ((v >> shift) & (SUB - 1)) as u32;
        (shift + 1) * SUB as u32 + sub
    }

    /// The half-open range `[lo, hi)` of values that land in bucket `b`.
    pub fn bounds(b: u32) -> (u64, u64) {
        let sub = SUB as u32;
        if b < 2 * sub {
            return (b as u64, b as u64 + 1);
        }
        let shift = b / sub - 1;
        let lo = (SUB + (b % sub) as u64) << shift;
        (lo, lo.saturating_add(1 << shift))
    }
}

/// Start of a futex call in flight, in slot `tid & (START_SLOTS - 1)` of an
/// array (the JIT inlines array lookups; a hash lookup costs ~100 ns here).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FutexStart {
    pub ts_ns: u64,
    /// The futex word's user address (for WAITV: the waiter array).
    pub uaddr: u64,
    /// futex_waitv: number of waiters in the array.
    pub nr: u64,
    /// The masked futex command, or a `futex_op::SYS_*` pseudo-op.
    pub op: u32,
    /// One of [`kind`].
    pub kind: u32,
    /// The thread owning the slot: two live threads whose ids collide on a
    /// slot are detected, never mixed up.
    pub tid: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<FutexStart>() == 40);

/// A lock as the kernel sees it within one run: futex address in a process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockKey {
    pub uaddr: u64,
    pub tgid: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<LockKey>() == 16);

/// Per (lock, thread): one writer only (the thread itself), so no atomics.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockThreadKey {
    pub uaddr: u64,
    pub tgid: u32,
    pub tid: u32,
}
const _: () = assert!(size_of::<LockThreadKey>() == 16);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockThreadStats {
    /// Waits by how they ended, indexed by [`outcome`].
    pub outcomes: [u64; outcome::COUNT],
    /// Sum of wait durations, all outcomes.
    pub wait_ns: u64,
    pub max_wait_ns: u64,
    /// Wake calls this thread made on this futex.
    pub wake_calls: u64,
    /// Waiters those calls woke (or requeued), from their return values.
    pub woken: u64,
    /// Kernel-private: when this pair may next send an unwind sample.
    pub unwind_next_ns: u64,
    /// Kernel-private: the wait count at the last unwind sample.
    pub unwind_last_nth: u64,
    /// Sum of the durations of the waits that returned EAGAIN. They skip
    /// the histogram map (the hot path's cheapest exit); userspace puts
    /// them in the bucket of their mean.
    pub eagain_ns: u64,
    /// Kernel-private: call-site sample weight not taken yet, [waits,
    /// wakes]: a sample came due while its CPU's stack budget
    /// ([`STACK_CPU_RATE`]) was spent, and the pair's next sample carries it.
    pub site_debt: [u64; 2],
    /// The futex commands used on this word by this thread: bit `cmd` for
    /// futex(2) commands below 32 (see [`futex_op`]), [`OPS_FUTEX2`] for the
    /// futex2 syscalls. A PI lock says what it is by its ops.
    pub ops: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<LockThreadStats>() == 120);

/// [`LockThreadStats::ops`] bit for futex_wait(2), futex_waitv(2) and
/// futex_wake(2).
pub const OPS_FUTEX2: u32 = 1 << 31;

/// The `ops` bit of a recorded command (a futex(2) command or a
/// `futex_op::SYS_*` pseudo-op).
#[inline(always)]
pub fn op_bit(op: u32) -> u32 {
    let cmd = op & !futex_op::SHARED;
    let bit = if cmd < 30 { 1 << cmd } else { OPS_FUTEX2 };
    bit | (op & futex_op::SHARED)
}

/// [`LockThreadStats::ops`] bit: some call on the word was not private
/// (same bit as [`futex_op::SHARED`]).
pub const OPS_SHARED: u32 = futex_op::SHARED;

/// Per (lock, histogram bucket): a sparse histogram, memory proportional to
/// the buckets actually used.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HistKey {
    pub uaddr: u64,
    pub tgid: u32,
    pub bucket: u32,
}
const _: () = assert!(size_of::<HistKey>() == 16);

/// Per (lock, user stack): where the waits come from.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteKey {
    pub uaddr: u64,
    pub tgid: u32,
    /// Id in the `STACKS` map, or [`NO_STACK`] when it could not be taken.
    pub stack_id: i32,
}
const _: () = assert!(size_of::<SiteKey>() == 16);

pub const NO_STACK: i32 = -1;

/// `TARGET_TGID` when there is no single first target, or once it has
/// exited: never a process id.
pub const NO_TGID: u32 = u32::MAX;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SiteStats {
    /// Estimated waits at this site (sampled waits times their weight).
    pub count: u64,
    /// Estimated wait time at this site.
    pub wait_ns: u64,
    /// Stacks actually taken.
    pub samples: u64,
}
const _: () = assert!(size_of::<SiteStats>() == 24);

/// Depth of the kernel's stack-trace map values (PERF_MAX_STACK_DEPTH).
pub const STACK_DEPTH: usize = 127;

/// Scheduler view of one traced thread (`THREAD_SCHED`, keyed by tid).
/// Written at its own switch-out/in and at wakeups of it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadSched {
    /// When the thread entered `state`.
    pub since_ns: u64,
    /// When it was last woken while sleeping (0: not since it slept).
    pub woken_ns: u64,
    /// Time on a CPU.
    pub oncpu_ns: u64,
    /// Time blocked after a voluntary switch-out, until woken.
    pub sleep_ns: u64,
    /// The part of `sleep_ns` spent inside a futex wait.
    pub futex_sleep_ns: u64,
    /// Time runnable but not running: preempted, or woken and queued.
    pub runnable_ns: u64,
    /// The part of `runnable_ns` between a wakeup and running again.
    pub wakeup_latency_ns: u64,
    /// Switch-outs as /proc counts them (nvcsw / nivcsw).
    pub voluntary: u64,
    pub involuntary: u64,
    pub wakeups: u64,
    /// The futex word of the wait the thread last slept in (valid while
    /// `in_futex` is 1).
    pub futex_uaddr: u64,
    pub tgid: u32,
    /// One of [`sched_state`].
    pub state: u32,
    /// 1 when the last voluntary switch-out happened inside a futex wait.
    pub in_futex: u32,
    /// The syscall the thread was in at its last voluntary switch-out
    /// (from its saved user registers), or `NO_SYSCALL`.
    pub sleep_syscall: u32,
    /// (lock, thread) entries this thread created: its exit knows whether
    /// its THREAD_LOCKS slot lists them all.
    pub locks_created: u32,
    pub _pad: u32,
}

/// `ThreadSched::sleep_syscall` when the thread was not in a syscall.
pub const NO_SYSCALL: u32 = u32::MAX;

/// Per (thread, syscall): voluntary sleeps outside futex waits.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SyscallSleepKey {
    pub tid: u32,
    pub nr: u32,
}
const _: () = assert!(size_of::<SyscallSleepKey>() == 8);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallSleep {
    pub sleeps: u64,
    pub sleep_ns: u64,
}
const _: () = assert!(size_of::<SyscallSleep>() == 16);

/// In-flight kernel-lock contention of one thread: up to two nested waits
/// (a contended mutex's slow path can contend on its wait_lock spinlock).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KLockStart {
    pub ts_ns: [u64; 2],
    pub addr: [u64; 2],
    pub flags: [u32; 2],
    pub tid: u32,
    /// Waits in flight (0, 1 or 2).
    pub depth: u32,
}
const _: () = assert!(size_of::<KLockStart>() == 48);

/// A kernel lock contended by a traced process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KLockKey {
    pub addr: u64,
    pub tgid: u32,
    /// LCB_F_* flags from lock:contention_begin (the lock's type).
    pub flags: u32,
}
const _: () = assert!(size_of::<KLockKey>() == 16);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KLockStats {
    pub count: u64,
    pub total_ns: u64,
    /// Longest wait (updated without atomics: concurrent maxima may lose a
    /// race; counts and totals are exact).
    pub max_ns: u64,
}
const _: () = assert!(size_of::<KLockStats>() == 24);

/// Run-queue latency histograms (wakeup → running), per thread and per lock:
/// `id` is the tid for `RUNQ_THREAD`, the futex word for `RUNQ_LOCK`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunqKey {
    pub id: u64,
    pub tgid: u32,
    /// `RUNQ_THREAD` or `RUNQ_LOCK` in the top bit, histogram bucket below.
    pub kind_bucket: u32,
}
const _: () = assert!(size_of::<RunqKey>() == 16);

pub const RUNQ_THREAD: u32 = 0;
pub const RUNQ_LOCK: u32 = 1 << 31;

/// Offsets into x86-64 `struct pt_regs` (arch/x86/include/asm/ptrace.h):
/// the saved user registers of a task in a syscall.
pub mod pt_regs {
    pub const DI: usize = 112;
    pub const SI: usize = 104;
    pub const ORIG_AX: usize = 120;
    pub const BP: usize = 32;
    pub const IP: usize = 128;
    pub const CS: usize = 136;
    pub const SP: usize = 152;
}

/// Bytes of user stack copied for one unwind sample, in `UNWIND_CHUNK`
/// pieces: a copy stops at the first chunk that faults (the stack's top).
/// Small chunks matter: a main thread waiting in `pthread_join` sits less
/// than 2 KiB below the top of its stack, and 2 KiB chunks copied nothing.
pub const UNWIND_STACK: usize = 16384;
pub const UNWIND_CHUNK: usize = 512;
/// Waits of a (lock, thread) pair that are always unwound before the rate
/// limit applies (within the per-CPU budget).
pub const UNWIND_FIRST: u64 = 8;
/// Unwind samples per second per CPU, at most, whatever the number of
/// futex words (the kernel's `UNWIND_CPU_RATE` default).
pub const UNWIND_CPU_RATE: u64 = 100;

/// Kinds of records in the event ring: the first u32 of every record.
pub mod record {
    /// An `UnwindSample`.
    pub const UNWIND: u32 = 1;
    /// A `ThreadExit`.
    pub const THREAD_EXIT: u32 = 2;
    /// A `ForkRecord`.
    pub const FORK: u32 = 3;
    /// A `ProcessGone`.
    pub const PROCESS_GONE: u32 = 4;
    /// A `CpuSample`.
    pub const CPU_SAMPLE: u32 = 5;
    /// An `ExecRecord`.
    pub const EXEC: u32 = 6;
}

/// Kernel frames kept per on-CPU sample.
pub const CPU_KSTACK_DEPTH: usize = 32;

/// One on-CPU sample of a target thread (`tracer profile`): the user
/// registers and a copy of the user stack (unwound in userspace with
/// .eh_frame, as [`UnwindSample`]s are), and the kernel stack when the
/// sample interrupted kernel code. Only the header and the `stack_len`
/// bytes copied are sent.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CpuSample {
    /// [`record::CPU_SAMPLE`].
    pub record: u32,
    pub tgid: u32,
    pub tid: u32,
    /// Valid bytes of `stack`, from `sp` upwards.
    pub stack_len: u32,
    /// Valid entries of `kstack` (0: the sample was in user mode).
    pub kstack_len: u32,
    pub cpu: u32,
    /// The perf event's sampling period: nanoseconds of CPU time (cpu-clock).
    pub period: u64,
    /// User registers (the task's saved ones when it was in the kernel).
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    pub time_ns: u64,
    /// Kernel instruction pointers, innermost first.
    pub kstack: [u64; CPU_KSTACK_DEPTH],
    pub stack: [u8; UNWIND_STACK],
}

/// The header of a [`CpuSample`]: what is sent before the stack bytes.
pub const CPU_HEADER: usize = 64 + 8 * CPU_KSTACK_DEPTH;
const _: () = assert!(core::mem::offset_of!(CpuSample, stack) == CPU_HEADER);
const _: () = assert!(size_of::<CpuSample>() == CPU_HEADER + UNWIND_STACK);

/// Index of the `CONTROL` array: 1 once userspace has begun its final
/// read of the maps (harvest): from then on a thread's exit leaves its
/// entries in place, so the read counts each entry once.
pub const CONTROL_HARVESTING: u32 = 0;

/// One sampled futex wait, sent through the event ring for unwinding in
/// userspace with .eh_frame (the kernel can only walk frame pointers, and
/// glibc has none). Bounded: `UNWIND_FIRST` per (lock, thread), then at
/// most `UNWIND_RATE` per second per pair. Only the header and the
/// `stack_len` bytes copied are sent (the record is assembled in a per-CPU
/// scratch slot, then copied out at its length).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UnwindSample {
    /// [`record::UNWIND`].
    pub record: u32,
    pub tgid: u32,
    pub tid: u32,
    /// Valid bytes of `stack`, from `sp` upwards.
    pub stack_len: u32,
    pub uaddr: u64,
    /// Waits this sample stands for (since the pair's previous sample).
    pub weight: u64,
    pub wait_ns: u64,
    /// User registers at the syscall.
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    pub stack: [u8; UNWIND_STACK],
}
const _: () = assert!(size_of::<UnwindSample>() == 64 + UNWIND_STACK);

/// The header of an [`UnwindSample`]: what is sent before the stack bytes.
pub const UNWIND_HEADER: usize = 64;
const _: () = assert!(core::mem::offset_of!(UnwindSample, stack) == UNWIND_HEADER);

/// Locks a thread's exit takes out of LOCK_THREADS itself; a thread that
/// touched more leaves the rest to userspace's sweep.
pub const EXIT_LOCKS: usize = 4;

/// The locks a traced thread has entries for, in slot
/// `tid & (START_SLOTS - 1)` of an array: noted when its (lock, thread)
/// entry is created, read at its exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadLocks {
    pub uaddr: [u64; EXIT_LOCKS],
    pub tid: u32,
    /// Entries created; above EXIT_LOCKS, some are not listed.
    pub n: u32,
}
const _: () = assert!(size_of::<ThreadLocks>() == 8 * EXIT_LOCKS + 8);

/// A traced thread's last switch-out (TASK_DEAD): its final scheduler
/// view and its (lock, thread) entries, which the kernel deletes at once,
/// so churn never fills those maps and a reused thread id starts afresh;
/// userspace evicts the thread's other entries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadExit {
    /// [`record::THREAD_EXIT`].
    pub record: u32,
    pub tgid: u32,
    pub tid: u32,
    pub _pad: u32,
    pub sched: ThreadSched,
    /// Futex words of the entries in `locks`, of the first `nlocks`; 0 for
    /// one that was not found.
    pub lock_uaddr: [u64; EXIT_LOCKS],
    pub locks: [LockThreadStats; EXIT_LOCKS],
    /// Slots of `locks` filled in.
    pub nlocks: u32,
    /// 1 when the thread had entries not listed here: userspace sweeps them.
    pub more_locks: u32,
    /// The thread's name as it died (NUL-padded): a thread that lived
    /// between two reads of /proc is named by this.
    pub comm: [u8; 16],
}
const _: () = assert!(
    size_of::<ThreadExit>()
        == 16 + size_of::<ThreadSched>() + EXIT_LOCKS * (8 + size_of::<LockThreadStats>()) + 8 + 16
);

/// A traced process is gone: its group leader's task was freed (after every
/// thread exited and the process was reaped), and it left the target set.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessGone {
    /// [`record::PROCESS_GONE`].
    pub record: u32,
    pub tgid: u32,
}
const _: () = assert!(size_of::<ProcessGone>() == 8);

/// A traced process forked a child that is now followed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkRecord {
    /// [`record::FORK`].
    pub record: u32,
    pub parent: u32,
    pub child: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<ForkRecord>() == 16);

/// A process exec'd (`tracer agent` with `--comm` or `--cgroup`: is it one
/// to trace?). Sent for every exec on the system while the hook is on.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecRecord {
    /// [`record::EXEC`].
    pub record: u32,
    pub tgid: u32,
    /// Its cgroup v2 id (the cgroup directory's inode number).
    pub cgroup: u64,
    /// Its new name.
    pub comm: [u8; 16],
}
const _: () = assert!(size_of::<ExecRecord>() == 32);

/// Probed user functions (uprobe.rs). The attach cookie is
/// `fn_id | size_arg << 32 | SITES`; `size_arg` says where an allocation
/// size is, `SITES` asks for per-caller statistics.
pub mod probe {
    pub const SITES: u64 = 1 << 40;
    /// In an FN_SITES key's `ret_addr`: a stack site of Go's slow-path
    /// entries (user addresses never have this bit). The low bits are the
    /// caller's return address (read at entry: the kernel's frame-pointer
    /// walk starts from the caller's frame and skips it), and the key's
    /// `fn_id` carries the STACKS id + 1 in its high 16 bits (0: none).
    pub const STACK_SITE: u64 = 1 << 63;

    /// (function id, STACKS id or -1, caller's return address) of an
    /// FN_SITES stack-site key, or None for an ordinary call site.
    pub fn stack_site(key: &super::FnKey) -> Option<(u32, i32, u64)> {
        (key.ret_addr & STACK_SITE != 0).then(|| {
            (
                key.fn_id & 0xffff,
                (key.fn_id >> 16) as i32 - 1,
                key.ret_addr & !STACK_SITE,
            )
        })
    }
    /// The cookie's function id for the start-up calibration probe, which
    /// fires in the tracer itself.
    pub const CALIBRATION_FN: u32 = u32::MAX;
    pub const SIZE_NONE: u32 = 0;
    /// malloc(size)
    pub const SIZE_ARG0: u32 = 1;
    /// realloc(p, size), aligned_alloc(align, size)
    pub const SIZE_ARG1: u32 = 2;
    /// calloc(n, size)
    pub const SIZE_ARG0_X_ARG1: u32 = 3;
    /// posix_memalign(&p, align, size)
    pub const SIZE_ARG2: u32 = 4;
}

/// A call in flight, per (thread, function).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FnStartKey {
    pub tid: u32,
    pub fn_id: u32,
}
const _: () = assert!(size_of::<FnStartKey>() == 8);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FnStart {
    pub ts_ns: u64,
    /// The caller's return address ([sp] at entry).
    pub ret_addr: u64,
    pub size: u64,
}
const _: () = assert!(size_of::<FnStart>() == 24);

/// Per (function, process): calls and latency; per call site when
/// `ret_addr` is set (`FN_SITES`), else 0 (`FN_STATS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FnKey {
    pub ret_addr: u64,
    pub fn_id: u32,
    pub tgid: u32,
}
const _: () = assert!(size_of::<FnKey>() == 16);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FnStats {
    /// Entry hits.
    pub entries: u64,
    /// Returns matched with their entry.
    pub calls: u64,
    pub total_ns: u64,
    /// Bytes requested (allocation functions).
    pub bytes: u64,
    /// Longest call (updated without atomics: concurrent maxima may lose a
    /// race; counts and totals are exact).
    pub max_ns: u64,
}
const _: () = assert!(size_of::<FnStats>() == 40);

/// Histogram key for function latency (`kind` FN_LATENCY) and allocation
/// sizes (`kind` FN_SIZE); `bucket` from [`hist::bucket`] for both.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FnHistKey {
    pub fn_id: u32,
    pub kind: u32,
    pub bucket: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<FnHistKey>() == 16);
pub const FN_LATENCY: u32 = 0;
pub const FN_SIZE: u32 = 1;
const _: () = assert!(size_of::<ThreadSched>() == 112);

/// Per lock (`LOCK_SCHED`, keyed by [`LockKey`]): what its waiters' futex
/// sleeps were made of, from the scheduler's view.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockSched {
    /// Futex waits that actually slept (switched out) and were switched back in.
    pub sleeps: u64,
    /// Time blocked: from switch-out to the wakeup.
    pub blocked_ns: u64,
    /// Time runnable after the wakeup, until running again.
    pub runnable_ns: u64,
}
const _: () = assert!(size_of::<LockSched>() == 24);

/// States of [`ThreadSched::state`].
pub mod sched_state {
    /// Not seen switching yet.
    pub const UNKNOWN: u32 = 0;
    pub const RUNNING: u32 = 1;
    /// Switched out voluntarily (blocked).
    pub const SLEEPING: u32 = 2;
    /// Switched out while runnable (preempted).
    pub const PREEMPTED: u32 = 3;
    /// Switched out for the last time (TASK_DEAD): nothing more to count.
    pub const EXITED: u32 = 4;

    /// `TASK_DEAD` in a switch-out's prev_state (include/linux/sched.h).
    pub const TASK_DEAD: u32 = 0x80;
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: as below: repr(C), integers only, no padding (size pinned).
    unsafe impl aya::Pod for super::ThreadSched {}
    // SAFETY: as below.
    unsafe impl aya::Pod for super::ThreadExit {}
    // SAFETY: as below.
    unsafe impl aya::Pod for super::ForkRecord {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ExecRecord {}
    // SAFETY: as below.
    unsafe impl aya::Pod for super::ProcessGone {}
    // SAFETY: as below.
    unsafe impl aya::Pod for super::ThreadLocks {}
    // SAFETY: as below.
    unsafe impl aya::Pod for super::FnStartKey {}
    // SAFETY: as below.
    unsafe impl aya::Pod for super::FnStart {}
    // SAFETY: as below.
    unsafe impl aya::Pod for super::LockSched {}
    // SAFETY: as below.
    unsafe impl aya::Pod for super::SyscallSleepKey {}
    // SAFETY: as below.
    unsafe impl aya::Pod for super::SyscallSleep {}
    // SAFETY: as below.
    unsafe impl aya::Pod for super::KLockKey {}
    // SAFETY: as below.
    unsafe impl aya::Pod for super::RunqKey {}
    // SAFETY: as below.
    unsafe impl aya::Pod for super::KLockStats {}
    // SAFETY: as below.
    unsafe impl aya::Pod for super::KLockStart {}
    // SAFETY: each type is #[repr(C)], Copy, built only of integers, and has
    // no padding (sizes pinned above), so every bit pattern is valid.
    unsafe impl aya::Pod for super::FutexStart {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::LockKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::LockThreadKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::LockThreadStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::HistKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SiteKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SiteStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FnKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FnStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FnHistKey {}
}

#[cfg(test)]
mod tests {
    use super::hist::*;
    use super::outcome;

    #[test]
    fn bucket_is_monotonic_and_inside_its_bounds() {
        let mut last = 0;
        let mut v = 0u64;
        while v < 1 << 40 {
            let b = bucket(v);
            assert!(b >= last, "bucket({v}) = {b} < {last}");
            let (lo, hi) = bounds(b);
            assert!(lo <= v && v < hi, "{v} outside bucket {b} [{lo},{hi})");
            last = b;
            v = v + 1 + v / 97;
        }
        assert!(bucket(u64::MAX) < BUCKETS);
        let (lo, hi) = bounds(bucket(u64::MAX));
        assert!(lo > 1 << 62 && hi == u64::MAX, "top bucket [{lo}, {hi})");
    }

    #[test]
    fn bucket_width_is_at_most_one_sub_bucket_of_its_value() {
        for b in 2 * SUB as u32..BUCKETS - 1 {
            let (lo, hi) = bounds(b);
            let rel = (hi - lo) as f64 / lo as f64;
            assert!(rel <= 1.0 / SUB as f64 + 1e-12, "bucket {b} width {rel}");
        }
    }

    #[test]
    fn buckets_are_contiguous() {
        for b in 0..BUCKETS - 1 {
            assert_eq!(bounds(b).1, bounds(b + 1).0, "gap after bucket {b}");
        }
    }

    #[test]
    fn log2_floor_matches_leading_zeros() {
        for s in 0..64 {
            for v in [1u64 << s, (1u64 << s) | 1, ((1u128 << (s + 1)) - 1) as u64] {
                assert_eq!(log2_floor(v), 63 - v.leading_zeros());
            }
        }
    }

    #[test]
    fn outcomes_classify_kernel_return_values() {
        assert_eq!(outcome::classify(0), outcome::WOKEN);
        assert_eq!(outcome::classify(-11), outcome::EAGAIN);
        assert_eq!(outcome::classify(-110), outcome::TIMEDOUT);
        assert_eq!(outcome::classify(-4), outcome::INTERRUPTED);
        assert_eq!(outcome::classify(-512), outcome::INTERRUPTED);
        assert_eq!(outcome::classify(-516), outcome::INTERRUPTED);
        assert_eq!(outcome::classify(-22), outcome::ERROR);
    }
}

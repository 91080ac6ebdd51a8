//! Where a traced thread's time goes: on a CPU, blocked (and whether inside
//! a futex wait), or runnable but not running (preempted, or woken and still
//! queued). One state machine per thread, advanced at sched_switch and
//! sched_wakeup(_new).
//!
//! match-proto (tp_btf, include/trace/events/sched.h, v6.18):
//!   sched_switch(bool preempt, struct task_struct *prev,
//!                struct task_struct *next, unsigned int prev_state)
//!   sched_wakeup(struct task_struct *p), sched_wakeup_new(struct task_struct *p)
//! https://github.com/torvalds/linux/blob/v6.18/include/trace/events/sched.h
//! A switch-out is voluntary exactly when `!preempt && prev_state != 0`:
//! the rule __schedule() uses for nvcsw/nivcsw, so counts match /proc.
//! task_struct offsets come from BTF in userspace (no CO-RE in Rust eBPF).

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task_btf, bpf_ktime_get_ns,
        bpf_probe_read_kernel, bpf_probe_read_user, bpf_task_pt_regs,
    },
    programs::BtfTracePointContext,
};
use tracer_common::{
    EXIT_LOCKS, LockKey, LockSched, LockThreadKey, LockThreadStats, NO_SYSCALL, ProcessGone,
    RUNQ_LOCK, RUNQ_THREAD, RunqKey, SyscallSleep, SyscallSleepKey, ThreadExit, ThreadSched,
    counter, futex_op, hist, kind, limits, pt_regs, record, sched_state, tp,
};

use crate::futex::{aggregate_wait, sample_blocking_wait};

use crate::maps::{
    EVENTS, LOCK_SCHED, LOCK_THREADS, RUNQ_HIST, SYSCALL_SLEEP, THREAD_LOCKS, THREAD_SCHED,
    atomic_add, count, forget_target, get_or_insert, harvesting, is_target, read_ctx, sched_only,
    start_slot,
};

/// Set by userspace from BTF: offsetof(struct task_struct, pid). `tgid`
/// follows it (`pid_t pid; pid_t tgid;`, checked by userspace), so one read
/// of 8 bytes gets both.
#[unsafe(no_mangle)]
static mut TASK_PID_OFFSET: u64 = 0;

/// A traced thread's last switch-out: send its final accounting and its
/// (lock, thread) entries to userspace and delete them, so a thread that
/// reuses the id starts afresh and churn never fills the maps. Once
/// userspace is reading the maps for the report (harvesting), or when the
/// record does not fit, everything stays in place (the scheduler entry
/// marked EXITED) and is read there.
#[inline(always)]
fn thread_exit(t: *mut ThreadSched, tid: u32, tgid: u32) {
    let slot = THREAD_LOCKS.get_ptr_mut(tid & (limits::START_SLOTS - 1));
    if !harvesting() {
        match EVENTS.reserve::<ThreadExit>(0) {
            Some(mut entry) => {
                // SAFETY: a reserved record of our type: every field is
                // written before submit. `t` and `slot` are this thread's
                // map values; the thread is dead, so nothing else writes
                // its entries.
                unsafe {
                    let p = entry.as_mut_ptr();
                    (*p).record = record::THREAD_EXIT;
                    (*p).tgid = tgid;
                    (*p).tid = tid;
                    (*p)._pad = 0;
                    (*p).sched = *t;
                    // prev is `current` at its last switch-out.
                    (*p).comm = bpf_get_current_comm().unwrap_or([0; 16]);
                    // A slot taken by a colliding thread id, or more entries
                    // than it lists: userspace sweeps what is not here.
                    let listed = match slot {
                        Some(s) if (*s).tid == tid => ((*s).n as usize).min(EXIT_LOCKS),
                        _ => 0,
                    };
                    (*p).more_locks = u32::from((*t).locks_created as usize > listed);
                    (*p).nlocks = listed as u32;
                    let mut i = 0;
                    while i < EXIT_LOCKS {
                        (*p).lock_uaddr[i] = 0;
                        (*p).locks[i] = LockThreadStats::default();
                        if i < listed
                            && let Some(s) = slot
                        {
                            let key = LockThreadKey {
                                uaddr: (*s).uaddr[i],
                                tgid,
                                tid,
                            };
                            // Slot i of the record for listed entry i (0
                            // where it is gone): no counter that differs by
                            // path, so the verifier's states converge.
                            if let Some(v) = LOCK_THREADS.get_ptr(&key) {
                                (*p).lock_uaddr[i] = key.uaddr;
                                (*p).locks[i] = *v;
                                let _ = LOCK_THREADS.remove(&key);
                            }
                        }
                        i += 1;
                    }
                }
                entry.submit(0);
                let _ = THREAD_SCHED.remove(&tid);
            }
            None => count(counter::EXIT_RECORD_LOST),
        }
    }
    if let Some(s) = slot {
        // SAFETY: array value pointer of this (dead) thread's slot.
        unsafe {
            if (*s).tid == tid {
                (*s).tid = 0;
                (*s).n = 0;
            }
        }
    }
}

/// A task's memory is freed: for a process's group leader, that happens
/// after every thread exited and the process was reaped — the process is
/// gone, and leaves the target set (its pid may now be reused).
///
/// match-format: sched:sched_process_free, include/trace/events/sched.h
/// (v6.18): `__string comm` (a __data_loc at 8), `pid_t pid` at 12.
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/sched/sched_process_free")]
pub extern "C" fn sched_process_free(ctx: *mut core::ffi::c_void) -> u32 {
    let ctx = aya_ebpf::programs::TracePointContext::new(ctx);
    // SAFETY: constant, aligned offset inside the record (checked against
    // its format file by userspace before load).
    let pid = unsafe { read_ctx::<i32>(&ctx, tp::PROCESS_FREE_PID) } as u32;
    // A thread's id is never another process's tgid: only a traced
    // process's leader matches here.
    if pid == 0 || !is_target(pid) {
        return 1;
    }
    forget_target(pid);
    let gone = ProcessGone {
        record: record::PROCESS_GONE,
        tgid: pid,
    };
    if EVENTS.output::<ProcessGone>(&gone, 0).is_err() {
        count(counter::PROCESS_RECORD_LOST);
    }
    1
}

/// (tid, tgid) of the task in tp_btf argument `n`. The argument is read as a
/// plain number, not as the verifier's typed task pointer: adding a
/// load-time offset to a typed pointer is refused, and bpf_probe_read_kernel
/// validates the address anyway.
#[inline(always)]
fn task_ids(ctx: &BtfTracePointContext, n: usize) -> Option<(u32, u32)> {
    // SAFETY: ctx points at the tracepoint's u64 argument array; both reads
    // go through bpf_probe_read_kernel, which fails cleanly on a bad address.
    unsafe {
        let arg = ctx.as_ptr().cast::<u64>().add(n);
        let task = bpf_probe_read_kernel(arg).ok()?;
        let off = core::ptr::read_volatile(&raw const TASK_PID_OFFSET);
        let ids = bpf_probe_read_kernel((task + off) as *const u64).ok()?;
        Some((ids as u32, (ids >> 32) as u32))
    }
}

#[inline(always)]
fn thread(tid: u32, tgid: u32) -> Option<*mut ThreadSched> {
    let init = ThreadSched {
        tgid,
        ..Default::default()
    };
    get_or_insert(&THREAD_SCHED, &tid, &init, counter::SCHED_FULL)
}

/// The syscall number the current task is in (its saved user orig_ax), or
/// NO_SYSCALL (a sleep outside a syscall, e.g. a page fault, reads -1).
#[inline(always)]
fn current_syscall() -> u32 {
    // SAFETY: helpers on the current task; the register read goes through
    // bpf_probe_read_kernel.
    unsafe {
        let regs = bpf_task_pt_regs(bpf_get_current_task_btf()) as u64;
        match bpf_probe_read_kernel((regs + pt_regs::ORIG_AX as u64) as *const i64) {
            Ok(nr) if (0..=u32::MAX as i64 - 1).contains(&nr) => nr as u32,
            _ => NO_SYSCALL,
        }
    }
}

/// In sched-only mode: the futex word the current task blocks on, when it
/// is in a futex wait (futex(2) with a wait op, futex_wait(2), or the first
/// waiter of futex_waitv(2)); otherwise Err(the syscall it is in).
#[inline(always)]
fn futex_wait_from_regs() -> Result<u64, u32> {
    const SYS_FUTEX: u32 = 202;
    const SYS_FUTEX_WAITV: u32 = 449;
    const SYS_FUTEX_WAIT: u32 = 455;
    let nr = current_syscall();
    // SAFETY: register reads of the current task through
    // bpf_probe_read_kernel, the waiter array through bpf_probe_read_user.
    unsafe {
        let regs = bpf_task_pt_regs(bpf_get_current_task_btf()) as u64;
        let reg =
            |off: usize| bpf_probe_read_kernel((regs + off as u64) as *const u64).map_err(|_| nr);
        match nr {
            SYS_FUTEX => {
                let op = reg(pt_regs::SI)? as u32 & futex_op::CMD_MASK;
                match op {
                    futex_op::WAIT
                    | futex_op::WAIT_BITSET
                    | futex_op::LOCK_PI
                    | futex_op::LOCK_PI2
                    | futex_op::WAIT_REQUEUE_PI => reg(pt_regs::DI),
                    _ => Err(nr),
                }
            }
            SYS_FUTEX_WAIT => reg(pt_regs::DI),
            SYS_FUTEX_WAITV => {
                let waiters = reg(pt_regs::DI)?;
                // struct futex_waitv { u64 val; u64 uaddr; ... }
                bpf_probe_read_user((waiters + 8) as *const u64).map_err(|_| nr)
            }
            _ => Err(nr),
        }
    }
}

/// Charges one voluntary non-futex sleep to the syscall it happened in.
#[inline(always)]
fn syscall_sleep(tid: u32, nr: u32, slept: u64) {
    let key = SyscallSleepKey { tid, nr };
    let init = SyscallSleep::default();
    if let Some(s) = get_or_insert(&SYSCALL_SLEEP, &key, &init, counter::SYSCALL_SLEEP_FULL) {
        // SAFETY: map value pointer; only the thread's own switch-in writes it.
        unsafe {
            (*s).sleeps += 1;
            (*s).sleep_ns += slept;
        }
    }
}

/// Counts one wakeup → running latency in a histogram.
#[inline(always)]
fn runq(id: u64, tgid: u32, kind: u32, latency: u64) {
    let key = RunqKey {
        id,
        tgid,
        kind_bucket: kind | hist::bucket(latency),
    };
    let zero: u64 = 0;
    if let Some(c) = get_or_insert(&RUNQ_HIST, &key, &zero, counter::RUNQ_HIST_FULL) {
        atomic_add(c, 1);
    }
}

/// Charges one futex sleep to its lock.
#[inline(always)]
fn lock_sleep(uaddr: u64, tgid: u32, blocked: u64, runnable: u64) {
    let key = LockKey {
        uaddr,
        tgid,
        _pad: 0,
    };
    let init = LockSched::default();
    if let Some(l) = get_or_insert(&LOCK_SCHED, &key, &init, counter::LOCK_SCHED_FULL) {
        // SAFETY: map value pointer; several threads may sleep on one lock,
        // so every field is added atomically.
        unsafe {
            atomic_add(&raw mut (*l).sleeps, 1);
            atomic_add(&raw mut (*l).blocked_ns, blocked);
            atomic_add(&raw mut (*l).runnable_ns, runnable);
        }
    }
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "tp_btf/sched_switch")]
pub extern "C" fn sched_switch(ctx: *mut core::ffi::c_void) -> u32 {
    switch(ctx)
}

/// The same hooks as raw tracepoints, loaded only when the kernel refuses
/// the BTF-typed ones: both contexts are the tracepoint's u64 argument
/// array, and every argument is read as a number here.
#[unsafe(no_mangle)]
#[unsafe(link_section = "raw_tp/sched_switch")]
pub extern "C" fn sched_switch_raw(ctx: *mut core::ffi::c_void) -> u32 {
    switch(ctx)
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "raw_tp/sched_wakeup")]
pub extern "C" fn sched_wakeup_raw(ctx: *mut core::ffi::c_void) -> u32 {
    wakeup(&BtfTracePointContext::new(ctx), false);
    0
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "raw_tp/sched_wakeup_new")]
pub extern "C" fn sched_wakeup_new_raw(ctx: *mut core::ffi::c_void) -> u32 {
    wakeup(&BtfTracePointContext::new(ctx), true);
    0
}

#[inline(always)]
fn switch(ctx: *mut core::ffi::c_void) -> u32 {
    let ctx = BtfTracePointContext::new(ctx);
    // prev is still `current` here.
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tid, tgid) = (pid_tgid as u32, (pid_tgid >> 32) as u32);
    let prev_ours = is_target(tgid);
    let next = task_ids(&ctx, 2);
    let next_ours = next.is_some_and(|(_, ntgid)| is_target(ntgid));
    if !prev_ours && !next_ours {
        // Every context switch of the system comes here: no clock read,
        // no map touched for switches between other processes.
        if next.is_none() {
            count(counter::TASK_READ);
        }
        return 0;
    }
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let preempt: u64 = ctx.arg(0);
    let prev_state: u64 = ctx.arg(3);
    if prev_ours && let Some(t) = thread(tid, tgid) {
        // SAFETY: map value pointer; a thread's switch-out and switch-in run
        // one after the other on the CPU it runs on.
        unsafe {
            if (*t).state == sched_state::RUNNING {
                (*t).oncpu_ns += now.saturating_sub((*t).since_ns);
            }
            (*t).since_ns = now;
            (*t).woken_ns = 0;
            if (prev_state as u32) & sched_state::TASK_DEAD != 0 {
                // The thread's last switch-out (do_exit): /proc counts it as
                // voluntary; after it there is no time left to account. The
                // entry may be deleted here: nothing writes it after this.
                (*t).state = sched_state::EXITED;
                (*t).voluntary += 1;
                thread_exit(t, tid, tgid);
            } else if (preempt as u8) == 0 && (prev_state as u32) != 0 {
                (*t).state = sched_state::SLEEPING;
                (*t).voluntary += 1;
                (*t).in_futex = 0;
                (*t).sleep_syscall = NO_SYSCALL;
                if sched_only() {
                    // No syscall tracepoints: read the blocked syscall and
                    // its futex word from the saved user registers.
                    match futex_wait_from_regs() {
                        Ok(uaddr) => {
                            (*t).in_futex = 1;
                            (*t).futex_uaddr = uaddr;
                            // Its call site and kind: the waiter's stack,
                            // sampled as full mode samples it at exit.
                            sample_blocking_wait(uaddr, tgid, tid, now);
                        }
                        Err(nr) => (*t).sleep_syscall = nr,
                    }
                } else if let Some(s) = start_slot(tid)
                    && (*s).tid == tid
                    && (*s).kind == kind::WAIT
                {
                    (*t).in_futex = 1;
                    (*t).futex_uaddr = (*s).uaddr;
                } else {
                    (*t).sleep_syscall = current_syscall();
                }
            } else {
                (*t).state = sched_state::PREEMPTED;
                (*t).involuntary += 1;
            }
        }
    }

    let Some((ntid, ntgid)) = next else {
        count(counter::TASK_READ);
        return 0;
    };
    if !next_ours {
        return 0;
    }
    let Some(t) = thread(ntid, ntgid) else {
        return 0;
    };
    // SAFETY: as above.
    unsafe {
        let since = (*t).since_ns;
        match (*t).state {
            sched_state::PREEMPTED => (*t).runnable_ns += now.saturating_sub(since),
            sched_state::SLEEPING => {
                let woken = (*t).woken_ns;
                let (slept, queued) = if woken >= since && woken != 0 {
                    (woken - since, now.saturating_sub(woken))
                } else {
                    // The wakeup was not seen: count it all as sleep.
                    (now.saturating_sub(since), 0)
                };
                (*t).sleep_ns += slept;
                if (*t).in_futex != 0 {
                    (*t).futex_sleep_ns += slept;
                    lock_sleep((*t).futex_uaddr, ntgid, slept, queued);
                    if sched_only() {
                        // The wait as the syscall would have timed it: from
                        // blocking to running again (a woken waiter).
                        // (The op is not known here: no PI kind in sched mode.)
                        let _ = aggregate_wait((*t).futex_uaddr, ntgid, ntid, 0, slept + queued, 0);
                    }
                } else if slept > 0 {
                    syscall_sleep(ntid, (*t).sleep_syscall, slept);
                }
                (*t).runnable_ns += queued;
                (*t).wakeup_latency_ns += queued;
                if woken >= since && woken != 0 {
                    runq(u64::from(ntid), ntgid, RUNQ_THREAD, queued);
                    if (*t).in_futex != 0 {
                        runq((*t).futex_uaddr, ntgid, RUNQ_LOCK, queued);
                    }
                }
            }
            _ => {}
        }
        (*t).state = sched_state::RUNNING;
        (*t).since_ns = now;
    }
    0
}

#[inline(always)]
fn wakeup(ctx: &BtfTracePointContext, new_task: bool) {
    let Some((tid, tgid)) = task_ids(ctx, 0) else {
        count(counter::TASK_READ);
        return;
    };
    if !is_target(tgid) {
        return;
    }
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if new_task {
        // A new thread waits for its first CPU from here: seed it as a
        // sleeper woken now, so that wait counts as runnable.
        let t = ThreadSched {
            tgid,
            state: sched_state::SLEEPING,
            since_ns: now,
            woken_ns: now,
            wakeups: 1,
            sleep_syscall: NO_SYSCALL,
            ..Default::default()
        };
        if THREAD_SCHED.insert(tid, t, 0).is_err() {
            count(counter::SCHED_FULL);
        }
        return;
    }
    // Only a thread we have seen sleep has state to update.
    let Some(t) = THREAD_SCHED.get_ptr_mut(tid) else {
        return;
    };
    // SAFETY: map value pointer; the woken thread is not running.
    unsafe {
        if (*t).state == sched_state::SLEEPING {
            (*t).woken_ns = now;
            (*t).wakeups += 1;
        }
    }
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "tp_btf/sched_wakeup")]
pub extern "C" fn sched_wakeup(ctx: *mut core::ffi::c_void) -> u32 {
    wakeup(&BtfTracePointContext::new(ctx), false);
    0
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "tp_btf/sched_wakeup_new")]
pub extern "C" fn sched_wakeup_new(ctx: *mut core::ffi::c_void) -> u32 {
    wakeup(&BtfTracePointContext::new(ctx), true);
    0
}

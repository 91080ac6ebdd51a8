//! Kernel-lock contention of the traced threads (spinlocks, rwlocks,
//! mutexes, rwsems inside the kernel), as `perf lock contention` sees it.
//!
//! match-format: lock:contention_begin(void *lock_addr @8, unsigned int flags @16),
//! lock:contention_end(void *lock_addr @8, int ret @16)
//! https://github.com/torvalds/linux/blob/v6.18/include/trace/events/lock.h

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    programs::TracePointContext,
};
use tracer_common::{KLockKey, KLockStats, counter, limits, tp};

use crate::maps::{KLOCK_START, KLOCKS, atomic_add, count, get_or_insert, is_target, read_ctx};

#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/lock/contention_begin")]
pub extern "C" fn contention_begin(ctx: *mut core::ffi::c_void) -> u32 {
    let ctx = TracePointContext::new(ctx);
    let pid_tgid = bpf_get_current_pid_tgid();
    if !is_target((pid_tgid >> 32) as u32) {
        return 1;
    }
    let tid = pid_tgid as u32;
    let Some(s) = KLOCK_START.get_ptr_mut(tid & (limits::START_SLOTS - 1)) else {
        return 1;
    };
    // SAFETY: constant, aligned offsets inside the record; array value
    // pointer owned by this thread's slot (a colliding thread id resets it).
    unsafe {
        let addr = read_ctx::<u64>(&ctx, tp::LOCK_ADDR);
        let flags = read_ctx::<u32>(&ctx, tp::LOCK_FLAGS);
        if (*s).tid != tid {
            (*s).tid = tid;
            (*s).depth = 0;
        }
        let d = (*s).depth as usize;
        if d < 2 {
            (*s).ts_ns[d] = bpf_ktime_get_ns();
            (*s).addr[d] = addr;
            (*s).flags[d] = flags;
            (*s).depth += 1;
        }
    }
    1
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/lock/contention_end")]
pub extern "C" fn contention_end(ctx: *mut core::ffi::c_void) -> u32 {
    let ctx = TracePointContext::new(ctx);
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if !is_target(tgid) {
        return 1;
    }
    let tid = pid_tgid as u32;
    let Some(s) = KLOCK_START.get_ptr_mut(tid & (limits::START_SLOTS - 1)) else {
        return 1;
    };
    // SAFETY: as in contention_begin.
    let (addr, ts, flags) = unsafe {
        let addr = read_ctx::<u64>(&ctx, tp::LOCK_ADDR);
        let d = (*s).depth;
        // The innermost wait ends first; match it by address.
        if (*s).tid != tid || d == 0 || d > 2 || (*s).addr[(d - 1) as usize & 1] != addr {
            count(counter::KLOCK_UNMATCHED);
            return 1;
        }
        let i = (d - 1) as usize & 1;
        (*s).depth = d - 1;
        (addr, (*s).ts_ns[i], (*s).flags[i])
    };
    // The clock after the filter: kernel locks of every process reach here.
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let dur = now.saturating_sub(ts);
    let key = KLockKey { addr, tgid, flags };
    let init = KLockStats::default();
    if let Some(l) = get_or_insert(&KLOCKS, &key, &init, counter::KLOCK_FULL) {
        // SAFETY: map value pointer shared by every thread of the process.
        unsafe {
            atomic_add(&raw mut (*l).count, 1);
            atomic_add(&raw mut (*l).total_ns, dur);
            if dur > (*l).max_ns {
                (*l).max_ns = dur;
            }
        }
    }
    1
}

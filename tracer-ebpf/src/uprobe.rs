//! Probed user functions: `--uprobe` specs and `--alloc`. One entry and one
//! return program, attached once per function with a cookie saying which
//! function it is (`tracer_common::probe`).
//!
//! match-proto: uprobe/uretprobe programs get the user `struct pt_regs`
//! (x86-64 SysV: args in rdi, rsi, rdx; return value in rax).
//! https://github.com/torvalds/linux/blob/v6.18/kernel/events/uprobes.c
//!
//! Each hit costs a trap (≈20 µs on the development VM): the tracer
//! calibrates that cost at start-up and reports hits × cost.

use aya_ebpf::bindings::BPF_F_USER_STACK;
use aya_ebpf::{
    helpers::{
        bpf_get_attach_cookie, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user,
    },
    programs::{ProbeContext, RetProbeContext, tracing::StackIdContext},
};
use tracer_common::{
    FN_LATENCY, FN_SIZE, FnHistKey, FnKey, FnStart, FnStartKey, FnStats, NO_STACK, counter, hist,
    probe,
};

use crate::maps::{
    FN_HIST, FN_SITES, FN_START, FN_STATS, STACKS, atomic_add, count, get_or_insert, is_target,
};

struct Cookie {
    fn_id: u32,
    size_arg: u32,
    sites: bool,
}

#[inline(always)]
fn cookie(ctx: *mut core::ffi::c_void) -> Cookie {
    // SAFETY: the helper reads the cookie of the link that fired.
    let c = unsafe { bpf_get_attach_cookie(ctx) };
    Cookie {
        fn_id: c as u32,
        size_arg: ((c >> 32) & 0xff) as u32,
        sites: c & probe::SITES != 0,
    }
}

/// Ours: a target's call, or the calibration probe in the tracer itself.
#[inline(always)]
fn wanted(fn_id: u32, tgid: u32) -> bool {
    fn_id == probe::CALIBRATION_FN || is_target(tgid)
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "uprobe/fn_entry")]
pub extern "C" fn fn_entry(ctx: *mut core::ffi::c_void) -> u32 {
    let c = cookie(ctx);
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if !wanted(c.fn_id, tgid) {
        return 0;
    }
    let pctx = ProbeContext::new(ctx);
    let key = FnKey {
        ret_addr: 0,
        fn_id: c.fn_id,
        tgid,
    };
    if let Some(s) = get_or_insert(&FN_STATS, &key, &FnStats::default(), counter::FN_MAP_FULL) {
        // SAFETY: map value pointer, updated atomically.
        atomic_add(unsafe { &raw mut (*s).entries }, 1);
    }
    let arg = |n: usize| pctx.arg::<u64>(n).unwrap_or(0);
    let size = match c.size_arg {
        probe::SIZE_ARG0 => arg(0),
        probe::SIZE_ARG1 => arg(1),
        probe::SIZE_ARG0_X_ARG1 => arg(0).wrapping_mul(arg(1)),
        probe::SIZE_ARG2 => arg(2),
        _ => 0,
    };
    let ret_addr = if c.sites {
        // SAFETY: at a function's first instruction [sp] is the caller's
        // return address; bpf_probe_read_user fails cleanly on a fault.
        unsafe { bpf_probe_read_user((*pctx.regs).rsp as *const u64).unwrap_or(0) }
    } else {
        0
    };
    let start = FnStart {
        // SAFETY: the helper has no preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        ret_addr,
        size,
    };
    let skey = FnStartKey {
        tid,
        fn_id: c.fn_id,
    };
    if FN_START.insert(&skey, &start, 0).is_err() {
        count(counter::FN_MAP_FULL);
    }
    0
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "uretprobe/fn_return")]
pub extern "C" fn fn_return(ctx: *mut core::ffi::c_void) -> u32 {
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let c = cookie(ctx);
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if !wanted(c.fn_id, tgid) {
        return 0;
    }
    let _ = RetProbeContext::new(ctx);
    let skey = FnStartKey {
        tid,
        fn_id: c.fn_id,
    };
    // SAFETY: the value is copied out before the entry is removed.
    let Some(start) = (unsafe { FN_START.get(&skey) }).copied() else {
        count(counter::FN_MISSING_ENTRY);
        return 0;
    };
    let _ = FN_START.remove(&skey);
    let dur = now.saturating_sub(start.ts_ns);
    let key = FnKey {
        ret_addr: 0,
        fn_id: c.fn_id,
        tgid,
    };
    add(&key, dur, start.size, false);
    if c.sites {
        add(
            &FnKey {
                ret_addr: start.ret_addr,
                ..key
            },
            dur,
            start.size,
            true,
        );
    }
    bump_hist(c.fn_id, FN_LATENCY, hist::bucket(dur));
    if c.size_arg != probe::SIZE_NONE {
        bump_hist(c.fn_id, FN_SIZE, hist::bucket(start.size));
    }
    0
}

/// Go's lock slow paths (`--go-mutex`): an entry-only probe (a uretprobe
/// would rewrite a return address on a goroutine stack the Go runtime may
/// move). Counts hits per (function, process) in FN_STATS and per user
/// stack in FN_SITES (`ret_addr` holds the stack id: Go keeps frame
/// pointers, so the kernel's walk is the whole stack).
#[unsafe(no_mangle)]
#[unsafe(link_section = "uprobe/go_lock_entry")]
pub extern "C" fn go_lock_entry(ctx: *mut core::ffi::c_void) -> u32 {
    let c = cookie(ctx);
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !wanted(c.fn_id, tgid) {
        return 0;
    }
    let pctx = ProbeContext::new(ctx);
    let key = FnKey {
        ret_addr: 0,
        fn_id: c.fn_id,
        tgid,
    };
    if let Some(s) = get_or_insert(&FN_STATS, &key, &FnStats::default(), counter::FN_MAP_FULL) {
        // SAFETY: map value pointer, updated atomically.
        unsafe {
            atomic_add(&raw mut (*s).entries, 1);
            atomic_add(&raw mut (*s).calls, 1);
        }
    }
    let stack_id = match pctx.get_stackid(&STACKS, BPF_F_USER_STACK as u64) {
        Ok(id) => id as i32,
        Err(e) => {
            count(if -(e as i64) == EEXIST {
                counter::STACK_COLLISION
            } else {
                counter::STACK_ERROR
            });
            NO_STACK
        }
    };
    // SAFETY: at a function's first instruction [sp] is the caller's
    // return address; bpf_probe_read_user fails cleanly on a fault.
    let caller = unsafe { bpf_probe_read_user((*pctx.regs).rsp as *const u64).unwrap_or(0) };
    let site = FnKey {
        ret_addr: probe::STACK_SITE | (caller & !probe::STACK_SITE),
        fn_id: (c.fn_id & 0xffff) | (((stack_id + 1) as u32) << 16),
        tgid,
    };
    if let Some(s) = get_or_insert(&FN_SITES, &site, &FnStats::default(), counter::FN_MAP_FULL) {
        // SAFETY: as above.
        unsafe {
            atomic_add(&raw mut (*s).entries, 1);
            atomic_add(&raw mut (*s).calls, 1);
        }
    }
    0
}

/// bpf_get_stackid's error for a bucket already holding another stack.
const EEXIST: i64 = 17;

#[inline(always)]
fn add(key: &FnKey, dur: u64, size: u64, site: bool) {
    let map = if site { &FN_SITES } else { &FN_STATS };
    if let Some(s) = get_or_insert(map, key, &FnStats::default(), counter::FN_MAP_FULL) {
        // SAFETY: map value pointer; fields are u64 updated atomically.
        unsafe {
            atomic_add(&raw mut (*s).calls, 1);
            atomic_add(&raw mut (*s).total_ns, dur);
            atomic_add(&raw mut (*s).bytes, size);
            if dur > (*s).max_ns {
                (*s).max_ns = dur;
            }
        }
    }
}

#[inline(always)]
fn bump_hist(fn_id: u32, kind: u32, bucket: u32) {
    let key = FnHistKey {
        fn_id,
        kind,
        bucket,
        _pad: 0,
    };
    // A stack local, not `&0` (see the note on load-time settings in maps.rs).
    let zero: u64 = 0;
    if let Some(h) = get_or_insert(&FN_HIST, &key, &zero, counter::FN_MAP_FULL) {
        atomic_add(h, 1);
    }
}

//! Reads the kernel maps into plain Rust values. Nothing downstream touches
//! the maps: the report is built from a `Snapshot`.

use std::collections::BTreeMap;
use tracer_common::names;

use anyhow::{Context as _, Result};
use aya::{
    Pod,
    maps::{HashMap, Map, MapData, PerCpuArray, StackTraceMap},
};
use tracer_common::{
    FnHistKey, FnKey, FnStats, HistKey, KLockKey, KLockStats, LockKey, LockSched, LockThreadKey,
    LockThreadStats, RunqKey, SiteKey, SiteStats, SyscallSleep, SyscallSleepKey, ThreadSched,
    counter, sched_state,
};

use crate::kernel::attach::Probes;

#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub lock_threads: Vec<(LockThreadKey, LockThreadStats)>,
    pub hist: Vec<(HistKey, u64)>,
    pub sites: Vec<(SiteKey, SiteStats)>,
    /// Wakes that woke someone, per (lock, stack): `count` wake calls,
    /// `wait_ns` waiters woken.
    pub wake_sites: Vec<(SiteKey, SiteStats)>,
    /// Stack id → user instruction pointers, innermost first.
    pub stacks: BTreeMap<i32, Vec<u64>>,
    /// Per traced thread (tid → scheduler view), with intervals still open
    /// at snapshot time closed at `now_ns`.
    pub sched: Vec<(u32, ThreadSched)>,
    /// Per lock: its waiters' futex sleeps from the scheduler's view.
    pub lock_sched: Vec<(LockKey, LockSched)>,
    /// Per (thread, syscall): voluntary sleeps outside futex waits.
    pub syscall_sleep: Vec<(SyscallSleepKey, SyscallSleep)>,
    /// Kernel locks the traced threads contended.
    pub klocks: Vec<(KLockKey, KLockStats)>,
    /// Wakeup → running latency histograms (per thread and per lock).
    pub runq: Vec<(RunqKey, u64)>,
    /// Summed over CPUs, indexed by `tracer_common::counter`.
    pub counters: [u64; counter::COUNT as usize],
    /// Entries that vanished or failed to read while iterating.
    pub read_errors: u64,
    /// Sampled waits unwound with .eh_frame (from the ring buffer, not a
    /// map: filled in by the caller).
    pub unwound: crate::target::unwind::UnwoundByLock,
    pub unwind_stats: crate::target::unwind::UnwindStats,
    /// On-CPU samples (`tracer profile`), unwound; from the ring too.
    pub cpu: Vec<crate::target::unwind::CpuStack>,
    pub cpu_stats: crate::target::unwind::CpuStats,
    /// Probed functions: per (function, process), per call site, and
    /// latency/size histograms.
    pub fn_stats: Vec<(FnKey, FnStats)>,
    pub fn_sites: Vec<(FnKey, FnStats)>,
    pub fn_hist: Vec<(FnHistKey, u64)>,
    /// Traced threads that exited during the run (their entries were moved
    /// out of the kernel maps and are merged into the vectors above).
    pub threads_exited: u64,
    /// Exited threads' names as they died, by (tgid, tid): a thread that
    /// lived between two reads of /proc is named by these.
    pub exited_names: std::collections::BTreeMap<(u32, u32), String>,
    /// (map, entries live at the snapshot, capacity) of each hash map.
    pub map_fill: Vec<(String, u64, u32)>,
    /// The event ring's reader thread failed: what it held is missing.
    pub reader_failed: bool,
}

pub fn snapshot(probes: &Probes) -> Result<Snapshot> {
    let bpf = &probes.bpf;
    let mut snap = Snapshot::default();
    let map = |name: &str| bpf.map(name).with_context(|| format!("map {name} missing"));
    let errors = &mut snap.read_errors;

    snap.lock_threads = read_all(map(names::LOCK_THREADS)?, errors)?;
    snap.hist = read_all(map(names::LOCK_HIST)?, errors)?;
    snap.sites = read_all(map(names::LOCK_SITES)?, errors)?;
    snap.wake_sites = read_all(map(names::WAKE_SITES)?, errors)?;
    snap.lock_sched = read_all(map(names::LOCK_SCHED)?, errors)?;
    snap.syscall_sleep = read_all(map(names::SYSCALL_SLEEP)?, errors)?;
    snap.klocks = read_all(map(names::KLOCKS)?, errors)?;
    snap.runq = read_all(map(names::RUNQ_HIST)?, errors)?;
    snap.fn_stats = read_all(map(names::FN_STATS)?, errors)?;
    snap.fn_sites = read_all(map(names::FN_SITES)?, errors)?;
    snap.fn_hist = read_all(map(names::FN_HIST)?, errors)?;
    let now = monotonic_ns();
    snap.sched = read_all::<u32, ThreadSched>(map(names::THREAD_SCHED)?, errors)?;
    for (_, t) in &mut snap.sched {
        close_open_interval(t, now);
    }

    let stacks: StackTraceMap<&MapData> = StackTraceMap::try_from(map(names::STACKS)?)?;
    let fn_stacks = snap
        .fn_sites
        .iter()
        .filter_map(|(k, _)| tracer_common::probe::stack_site(k).map(|s| s.1));
    let ids: Vec<i32> = snap
        .sites
        .iter()
        .chain(&snap.wake_sites)
        .map(|(k, _)| k.stack_id)
        .chain(fn_stacks)
        .collect();
    for stack_id in ids {
        if stack_id < 0 || snap.stacks.contains_key(&stack_id) {
            continue;
        }
        match stacks.get(&(stack_id as u32), 0) {
            Ok(trace) => {
                let ips = trace
                    .frames()
                    .iter()
                    .map(|f| f.ip)
                    .filter(|&ip| ip != 0)
                    .collect();
                snap.stacks.insert(stack_id, ips);
            }
            Err(_) => snap.read_errors += 1,
        }
    }
    snap.counters = counters(probes)?;
    let live = [
        (names::LOCK_THREADS, snap.lock_threads.len()),
        (names::LOCK_HIST, snap.hist.len()),
        (names::LOCK_SITES, snap.sites.len()),
        (names::WAKE_SITES, snap.wake_sites.len()),
        (names::LOCK_SCHED, snap.lock_sched.len()),
        (names::THREAD_SCHED, snap.sched.len()),
        (names::SYSCALL_SLEEP, snap.syscall_sleep.len()),
        (names::RUNQ_HIST, snap.runq.len()),
        (names::KLOCKS, snap.klocks.len()),
    ];
    for (name, entries) in live {
        let capacity = match bpf.map(name) {
            Some(Map::HashMap(d)) => d.info().map(|i| i.max_entries()).unwrap_or(0),
            _ => 0,
        };
        snap.map_fill
            .push((name.to_string(), entries as u64, capacity));
    }
    Ok(snap)
}

/// The counters, summed over CPUs, indexed by `tracer_common::counter`.
pub fn counters(probes: &Probes) -> Result<[u64; counter::COUNT as usize]> {
    let map = probes
        .bpf
        .map(names::COUNTERS)
        .context("map COUNTERS missing")?;
    let per_cpu: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map)?;
    let mut out = [0; counter::COUNT as usize];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = per_cpu
            .get(&(i as u32), 0)
            .context("reading a counter")?
            .iter()
            .sum();
    }
    Ok(out)
}

/// Every entry of a hash map, each key once: when the key an iteration
/// stands on is deleted meanwhile (a thread's exit moves its entries out),
/// the kernel's next-key starts again from the first bucket, so keys can
/// come twice (the later value is kept). An entry deleted between its key
/// and its value is gone, not an error; other failures count in `errors`.
pub fn read_all<K: Pod + Eq + std::hash::Hash, V: Pod>(
    map: &Map,
    errors: &mut u64,
) -> Result<Vec<(K, V)>> {
    let map: HashMap<&MapData, K, V> = HashMap::try_from(map)?;
    let mut at: std::collections::HashMap<K, usize> = std::collections::HashMap::new();
    let mut out: Vec<(K, V)> = Vec::new();
    for entry in map.iter() {
        match entry {
            Ok((k, v)) => match at.get(&k) {
                Some(&i) => out[i].1 = v,
                None => {
                    at.insert(k, out.len());
                    out.push((k, v));
                }
            },
            Err(aya::maps::MapError::KeyNotFound) => {}
            Err(_) => *errors += 1,
        }
    }
    Ok(out)
}

/// CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Accounts the interval a thread is still in when tracing ends, as the
/// kernel side would at its next switch.
pub fn close_open_interval(t: &mut ThreadSched, now: u64) {
    let since = t.since_ns;
    match t.state {
        sched_state::RUNNING => t.oncpu_ns += now.saturating_sub(since),
        sched_state::PREEMPTED => t.runnable_ns += now.saturating_sub(since),
        sched_state::SLEEPING => {
            let (slept, queued) = if t.woken_ns >= since && t.woken_ns != 0 {
                (t.woken_ns - since, now.saturating_sub(t.woken_ns))
            } else {
                (now.saturating_sub(since), 0)
            };
            t.sleep_ns += slept;
            if t.in_futex != 0 {
                t.futex_sleep_ns += slept;
            }
            t.runnable_ns += queued;
            t.wakeup_latency_ns += queued;
        }
        _ => {}
    }
    t.since_ns = now;
}

/// The per-lock and per-thread maps' entries now and their capacities,
/// counted key by key (nothing is read or moved): `tracer agent`'s map-fill
/// gauges, read while tracing goes on.
pub fn map_entries(probes: &Probes) -> Vec<(String, u64, u32)> {
    let names = [
        names::LOCK_THREADS,
        names::LOCK_HIST,
        names::LOCK_SITES,
        names::WAKE_SITES,
        names::LOCK_SCHED,
        names::THREAD_SCHED,
        names::SYSCALL_SLEEP,
        names::RUNQ_HIST,
        names::KLOCKS,
        names::TARGETS,
    ];
    names
        .iter()
        .filter_map(|&name| {
            let data = match probes.bpf.map(name)? {
                Map::HashMap(d) | Map::LruHashMap(d) | Map::PerCpuHashMap(d) => d,
                _ => return None,
            };
            let info = data.info().ok()?;
            let n = count_keys(data, info.key_size() as usize, info.max_entries());
            Some((name.to_string(), n, info.max_entries()))
        })
        .collect()
}

/// Walks a hash map's keys with BPF_MAP_GET_NEXT_KEY.
fn count_keys(map: &MapData, key_size: usize, max: u32) -> u64 {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
    #[repr(C)]
    struct Attr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        next_key: u64,
    }
    let fd = map.fd().as_fd().as_raw_fd() as u32;
    let mut key = vec![0u8; key_size.max(1)];
    let mut next = vec![0u8; key_size.max(1)];
    let mut n = 0u64;
    let mut first = true;
    loop {
        let attr = Attr {
            map_fd: fd,
            _pad: 0,
            key: if first { 0 } else { key.as_ptr() as u64 },
            next_key: next.as_mut_ptr() as u64,
        };
        // SAFETY: bpf(2) with an attr of the size given; the key buffers
        // are key_size bytes and outlive the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_GET_NEXT_KEY,
                &attr as *const Attr,
                size_of::<Attr>() as u32,
            )
        };
        // A key deleted under the walk restarts it: never past capacity.
        if r != 0 || n >= u64::from(max) {
            return n;
        }
        n += 1;
        first = false;
        std::mem::swap(&mut key, &mut next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_intervals_close_like_the_kernel_side() {
        let mut t = ThreadSched {
            state: sched_state::RUNNING,
            since_ns: 100,
            ..Default::default()
        };
        close_open_interval(&mut t, 150);
        assert_eq!(t.oncpu_ns, 50);
        let mut t = ThreadSched {
            state: sched_state::SLEEPING,
            since_ns: 100,
            woken_ns: 130,
            in_futex: 1,
            ..Default::default()
        };
        close_open_interval(&mut t, 150);
        assert_eq!(
            (
                t.sleep_ns,
                t.futex_sleep_ns,
                t.runnable_ns,
                t.wakeup_latency_ns
            ),
            (30, 30, 20, 20)
        );
        let mut t = ThreadSched {
            state: sched_state::PREEMPTED,
            since_ns: 100,
            ..Default::default()
        };
        close_open_interval(&mut t, 150);
        assert_eq!(t.runnable_ns, 50);
        let mut t = ThreadSched {
            state: sched_state::SLEEPING,
            since_ns: 100,
            ..Default::default()
        };
        close_open_interval(&mut t, 150);
        assert_eq!((t.sleep_ns, t.futex_sleep_ns, t.runnable_ns), (50, 0, 0));
    }
}

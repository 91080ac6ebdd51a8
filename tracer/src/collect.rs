//! Reads the kernel maps into plain Rust values. Nothing downstream touches
//! the maps: the report is built from a `Snapshot`.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use aya::maps::{HashMap, MapData, PerCpuArray, StackTraceMap};
use tracer_common::{
    HistKey, KLockKey, KLockStats, LockKey, LockSched, LockThreadKey, LockThreadStats, RunqKey,
    SiteKey, SiteStats, SyscallSleep, SyscallSleepKey, ThreadSched, counter, sched_state,
};

use crate::attach::Probes;

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
}

pub fn snapshot(probes: &Probes) -> Result<Snapshot> {
    let bpf = &probes.bpf;
    let mut snap = Snapshot::default();
    let map = |name: &str| bpf.map(name).with_context(|| format!("map {name} missing"));

    let lt: HashMap<&MapData, LockThreadKey, LockThreadStats> =
        HashMap::try_from(map("LOCK_THREADS")?)?;
    for entry in lt.iter() {
        match entry {
            Ok(kv) => snap.lock_threads.push(kv),
            Err(_) => snap.read_errors += 1,
        }
    }
    let hist: HashMap<&MapData, HistKey, u64> = HashMap::try_from(map("LOCK_HIST")?)?;
    for entry in hist.iter() {
        match entry {
            Ok(kv) => snap.hist.push(kv),
            Err(_) => snap.read_errors += 1,
        }
    }
    let sites: HashMap<&MapData, SiteKey, SiteStats> = HashMap::try_from(map("LOCK_SITES")?)?;
    for entry in sites.iter() {
        match entry {
            Ok(kv) => snap.sites.push(kv),
            Err(_) => snap.read_errors += 1,
        }
    }
    let wake_sites: HashMap<&MapData, SiteKey, SiteStats> = HashMap::try_from(map("WAKE_SITES")?)?;
    for entry in wake_sites.iter() {
        match entry {
            Ok(kv) => snap.wake_sites.push(kv),
            Err(_) => snap.read_errors += 1,
        }
    }
    let stacks: StackTraceMap<&MapData> = StackTraceMap::try_from(map("STACKS")?)?;
    for (key, _) in snap.sites.iter().chain(&snap.wake_sites) {
        if key.stack_id < 0 || snap.stacks.contains_key(&key.stack_id) {
            continue;
        }
        match stacks.get(&(key.stack_id as u32), 0) {
            Ok(trace) => {
                let ips = trace
                    .frames()
                    .iter()
                    .map(|f| f.ip)
                    .filter(|&ip| ip != 0)
                    .collect();
                snap.stacks.insert(key.stack_id, ips);
            }
            Err(_) => snap.read_errors += 1,
        }
    }
    let sched: HashMap<&MapData, u32, ThreadSched> = HashMap::try_from(map("THREAD_SCHED")?)?;
    let now = monotonic_ns();
    for entry in sched.iter() {
        match entry {
            Ok((tid, mut t)) => {
                close_open_interval(&mut t, now);
                snap.sched.push((tid, t));
            }
            Err(_) => snap.read_errors += 1,
        }
    }
    let lock_sched: HashMap<&MapData, LockKey, LockSched> = HashMap::try_from(map("LOCK_SCHED")?)?;
    for entry in lock_sched.iter() {
        match entry {
            Ok(kv) => snap.lock_sched.push(kv),
            Err(_) => snap.read_errors += 1,
        }
    }
    let syscall_sleep: HashMap<&MapData, SyscallSleepKey, SyscallSleep> =
        HashMap::try_from(map("SYSCALL_SLEEP")?)?;
    for entry in syscall_sleep.iter() {
        match entry {
            Ok(kv) => snap.syscall_sleep.push(kv),
            Err(_) => snap.read_errors += 1,
        }
    }
    let klocks: HashMap<&MapData, KLockKey, KLockStats> = HashMap::try_from(map("KLOCKS")?)?;
    for entry in klocks.iter() {
        match entry {
            Ok(kv) => snap.klocks.push(kv),
            Err(_) => snap.read_errors += 1,
        }
    }
    let runq: HashMap<&MapData, RunqKey, u64> = HashMap::try_from(map("RUNQ_HIST")?)?;
    for entry in runq.iter() {
        match entry {
            Ok(kv) => snap.runq.push(kv),
            Err(_) => snap.read_errors += 1,
        }
    }
    let counters: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map("COUNTERS")?)?;
    for (i, slot) in snap.counters.iter_mut().enumerate() {
        let per_cpu = counters.get(&(i as u32), 0).context("reading a counter")?;
        *slot = per_cpu.iter().sum();
    }
    Ok(snap)
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

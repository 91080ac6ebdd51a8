//! Exited threads leave the kernel maps: the kernel sends each traced
//! thread's final scheduler view at its last switch-out and deletes that
//! entry itself; the thread's other entries (per lock, per syscall, its
//! run-queue histogram, probed calls in flight) are moved here by a sweep
//! that reads only the keys of those maps. So thread churn and long runs
//! never fill them, and nothing measured is lost: the report is built
//! from the live entries plus these.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use aya::{
    Pod,
    maps::{HashMap as BpfHashMap, MapData},
};
use tracer_common::{
    FnStartKey, LockThreadKey, LockThreadStats, RUNQ_LOCK, RunqKey, SyscallSleep, SyscallSleepKey,
    ThreadExit, ThreadSched,
};

use crate::{attach::Probes, collect::Snapshot};

/// Exits are swept in batches, at most this often.
const SWEEP_EVERY: Duration = Duration::from_millis(200);

#[derive(Default)]
pub struct Retired {
    lock_threads: HashMap<LockThreadKey, LockThreadStats>,
    /// By (tgid, tid): a thread id reused in another process stays apart.
    sched: HashMap<(u32, u32), ThreadSched>,
    syscall_sleep: HashMap<SyscallSleepKey, SyscallSleep>,
    runq: HashMap<RunqKey, u64>,
    /// Exited threads whose entries are still in the maps: tid → tgid.
    pending: HashMap<u32, u32>,
    last_sweep: Option<Instant>,
    /// Processes whose last thread exited.
    pub exited: BTreeSet<u32>,
    /// Threads that exited while traced.
    pub threads_exited: u64,
    /// Map entries moved out of the kernel.
    pub evicted: u64,
}

impl Retired {
    /// A traced thread exited: keep its final scheduler view, and evict its
    /// other entries at the next sweep.
    pub fn thread_exit(&mut self, e: &ThreadExit) {
        self.threads_exited += 1;
        merge_sched(self.sched.entry((e.tgid, e.tid)).or_default(), &e.sched);
        self.pending.insert(e.tid, e.tgid);
        if e.group_dead != 0 {
            self.exited.insert(e.tgid);
        }
    }

    pub fn sweep_due(&self) -> bool {
        !self.pending.is_empty() && self.last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY)
    }

    /// Moves the pending threads' entries out of the kernel maps.
    /// `fn_ids` are the probed functions (calls in flight are keyed by
    /// (tid, function)).
    pub fn sweep(&mut self, probes: &mut Probes, fn_ids: &[u32]) -> Result<()> {
        self.last_sweep = Some(Instant::now());
        let pending = std::mem::take(&mut self.pending);
        // A thread id reused by a new thread of the same process is writing
        // the same keys now: leave them; its own exit brings them here.
        let gone: HashSet<(u32, u32)> = pending
            .into_iter()
            .map(|(tid, tgid)| (tgid, tid))
            .filter(|&(tgid, tid)| !thread_alive(tgid, tid))
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        let tids: HashSet<u32> = gone.iter().map(|&(_, tid)| tid).collect();
        let bpf = &mut probes.bpf;
        self.evicted += evict(
            bpf.map_mut("LOCK_THREADS")
                .context("LOCK_THREADS missing")?,
            |k: &LockThreadKey| gone.contains(&(k.tgid, k.tid)),
            |k, v| merge_lock_thread(self.lock_threads.entry(k).or_default(), &v),
        )?;
        self.evicted += evict(
            bpf.map_mut("SYSCALL_SLEEP")
                .context("SYSCALL_SLEEP missing")?,
            |k: &SyscallSleepKey| tids.contains(&k.tid),
            |k, v: SyscallSleep| {
                let e = self.syscall_sleep.entry(k).or_default();
                e.sleeps += v.sleeps;
                e.sleep_ns += v.sleep_ns;
            },
        )?;
        self.evicted += evict(
            bpf.map_mut("RUNQ_HIST").context("RUNQ_HIST missing")?,
            |k: &RunqKey| {
                k.kind_bucket & RUNQ_LOCK == 0
                    && u32::try_from(k.id).is_ok_and(|tid| gone.contains(&(k.tgid, tid)))
            },
            |k, v: u64| *self.runq.entry(k).or_default() += v,
        )?;
        if !fn_ids.is_empty() {
            let mut starts: BpfHashMap<&mut MapData, FnStartKey, tracer_common::FnStart> =
                BpfHashMap::try_from(bpf.map_mut("FN_START").context("FN_START missing")?)?;
            for &tid in &tids {
                for &fn_id in fn_ids {
                    // A call in flight when its thread died never returns.
                    let _ = starts.remove(&FnStartKey { tid, fn_id });
                }
            }
        }
        Ok(())
    }

    /// Waits counted in the entries moved out of the kernel.
    pub fn waits(&self) -> u64 {
        self.lock_threads
            .values()
            .map(|s| s.outcomes.iter().sum::<u64>())
            .sum()
    }

    /// Adds what was moved out of the kernel to a snapshot of the maps.
    pub fn merge_into(&self, snap: &mut Snapshot) {
        merge_entries(
            &mut snap.lock_threads,
            &self.lock_threads,
            merge_lock_thread,
        );
        // A thread that exited after its entry was read has both: the
        // snapshot's view (closed at the snapshot's time) and its final
        // record (closed at its exit, later). The record holds everything
        // the view does; a view that began after the exit is a new thread
        // with the same id, and adds up.
        let mut at: HashMap<(u32, u32), usize> = snap
            .sched
            .iter()
            .enumerate()
            .map(|(i, (t, s))| ((s.tgid, *t), i))
            .collect();
        for (&(tgid, tid), r) in &self.sched {
            match at.get(&(tgid, tid)) {
                Some(&i) if snap.sched[i].1.since_ns <= r.since_ns => snap.sched[i].1 = *r,
                Some(&i) => merge_sched(&mut snap.sched[i].1, r),
                None => {
                    at.insert((tgid, tid), snap.sched.len());
                    snap.sched.push((tid, *r));
                }
            }
        }
        merge_entries(&mut snap.syscall_sleep, &self.syscall_sleep, |a, b| {
            a.sleeps += b.sleeps;
            a.sleep_ns += b.sleep_ns;
        });
        merge_entries(&mut snap.runq, &self.runq, |a, b| *a += b);
        snap.threads_exited = self.threads_exited;
    }
}

/// Whether `tid` is a live thread of `tgid` (not gone, not a zombie).
fn thread_alive(tgid: u32, tid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{tgid}/task/{tid}/stat"))
        .ok()
        .and_then(|s| crate::preflight::parse_stat_state_flags(&s))
        .is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// Deletes the entries whose key matches, handing each (key, value) read
/// before its deletion to `keep`; returns how many were moved.
fn evict<K: Pod + Eq + std::hash::Hash, V: Pod>(
    map: &mut aya::maps::Map,
    matches: impl Fn(&K) -> bool,
    mut keep: impl FnMut(K, V),
) -> Result<u64> {
    let mut map: BpfHashMap<&mut MapData, K, V> = BpfHashMap::try_from(map)?;
    let keys: Vec<K> = map.keys().flatten().filter(|k| matches(k)).collect();
    let mut moved = 0;
    for k in keys {
        // Only the dead thread wrote these entries: nothing updates them
        // between the read and the delete.
        if let Ok(v) = map.get(&k, 0)
            && map.remove(&k).is_ok()
        {
            keep(k, v);
            moved += 1;
        }
    }
    Ok(moved)
}

/// Folds `extra` into `entries`: a key present in both is merged.
fn merge_entries<K: Copy + Eq + std::hash::Hash, V: Copy + Default>(
    entries: &mut Vec<(K, V)>,
    extra: &HashMap<K, V>,
    merge: impl Fn(&mut V, &V),
) {
    if extra.is_empty() {
        return;
    }
    let mut at: HashMap<K, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (*k, i))
        .collect();
    for (k, v) in extra {
        match at.get(k) {
            Some(&i) => merge(&mut entries[i].1, v),
            None => {
                at.insert(*k, entries.len());
                entries.push((*k, *v));
            }
        }
    }
}

pub fn merge_lock_thread(a: &mut LockThreadStats, b: &LockThreadStats) {
    for (x, y) in a.outcomes.iter_mut().zip(&b.outcomes) {
        *x += y;
    }
    a.wait_ns += b.wait_ns;
    a.max_wait_ns = a.max_wait_ns.max(b.max_wait_ns);
    a.wake_calls += b.wake_calls;
    a.woken += b.woken;
}

/// Two lives of one thread id (or one thread's retired and live parts).
pub fn merge_sched(a: &mut ThreadSched, b: &ThreadSched) {
    a.oncpu_ns += b.oncpu_ns;
    a.sleep_ns += b.sleep_ns;
    a.futex_sleep_ns += b.futex_sleep_ns;
    a.runnable_ns += b.runnable_ns;
    a.wakeup_latency_ns += b.wakeup_latency_ns;
    a.voluntary += b.voluntary;
    a.involuntary += b.involuntary;
    a.wakeups += b.wakeups;
    a.tgid = b.tgid;
    if a.since_ns <= b.since_ns {
        a.since_ns = b.since_ns;
        a.state = b.state;
        a.woken_ns = b.woken_ns;
        a.in_futex = b.in_futex;
        a.futex_uaddr = b.futex_uaddr;
        a.sleep_syscall = b.sleep_syscall;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_thread_id_merges_instead_of_replacing() {
        let key = LockThreadKey {
            uaddr: 0x10,
            tgid: 7,
            tid: 8,
        };
        let stats = |n: u64| LockThreadStats {
            outcomes: [n, 0, 0, 0, 0],
            wait_ns: n * 10,
            max_wait_ns: n,
            ..Default::default()
        };
        let mut snap = Snapshot {
            lock_threads: vec![(key, stats(3))],
            ..Default::default()
        };
        let mut r = Retired::default();
        r.lock_threads.insert(key, stats(5));
        let other = LockThreadKey { tid: 9, ..key };
        r.lock_threads.insert(other, stats(1));
        r.merge_into(&mut snap);
        snap.lock_threads.sort_by_key(|(k, _)| k.tid);
        assert_eq!(snap.lock_threads.len(), 2);
        assert_eq!(snap.lock_threads[0].1.outcomes[0], 8);
        assert_eq!(snap.lock_threads[0].1.wait_ns, 80);
        assert_eq!(snap.lock_threads[0].1.max_wait_ns, 5);
        assert_eq!(snap.lock_threads[1].1.outcomes[0], 1);
    }

    #[test]
    fn an_exit_is_pending_until_swept() {
        let mut r = Retired::default();
        assert!(!r.sweep_due());
        r.thread_exit(&ThreadExit {
            tgid: 7,
            tid: 8,
            group_dead: 1,
            sched: ThreadSched {
                oncpu_ns: 5,
                ..Default::default()
            },
            ..Default::default()
        });
        assert!(r.sweep_due());
        assert!(r.exited.contains(&7));
        assert_eq!(r.sched[&(7, 8)].oncpu_ns, 5);
    }
}

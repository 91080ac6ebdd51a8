//! Exited threads leave the kernel maps: the kernel sends each traced
//! thread's final scheduler view at its last switch-out and deletes that
//! entry itself; the thread's other entries (per lock, per syscall, its
//! run-queue histogram, probed calls in flight) are moved here by a sweep
//! that reads only the keys of those maps. The sweeps run on the event
//! ring's reader thread (`Janitor`), as exits arrive, so thread churn and
//! long runs never fill the maps whatever the main loop is doing, and
//! nothing measured is lost: the report is built from the live entries
//! plus these (`Retired`).

use std::{
    collections::{HashMap, HashSet},
    os::fd::AsFd as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tracer_common::names;

use anyhow::{Context as _, Result};
use aya::{
    Pod,
    maps::{HashMap as BpfHashMap, Map, MapData},
};
use tracer_common::{
    FnStartKey, LockThreadKey, LockThreadStats, RUNQ_LOCK, RunqKey, SyscallSleep, SyscallSleepKey,
    ThreadExit, ThreadSched,
};

use crate::{kernel::attach::Probes, kernel::collect::Snapshot};

/// Sweeps never take more than 1/SWEEP_BUDGET of a CPU: one that cost 2 ms
/// spaces the next ones 40 ms apart (and at least MIN_GAP).
const SWEEP_BUDGET: u32 = 20;
const MIN_GAP: Duration = Duration::from_millis(5);
/// Keys read between two drains of the event ring during a sweep (a sweep
/// of a large map must not let the ring fill).
const KEYS_PER_BREATH: usize = 4096;

/// What was moved out of the kernel maps, to be merged into the snapshot.
#[derive(Default)]
pub struct Retired {
    lock_threads: HashMap<LockThreadKey, LockThreadStats>,
    /// By (tgid, tid): a thread id reused in another process stays apart.
    sched: HashMap<(u32, u32), ThreadSched>,
    syscall_sleep: HashMap<SyscallSleepKey, SyscallSleep>,
    runq: HashMap<RunqKey, u64>,
    /// Threads that exited while traced.
    pub threads_exited: u64,
    /// Their names as they died.
    names: std::collections::BTreeMap<(u32, u32), String>,
    /// Map entries moved out of the kernel.
    pub evicted: u64,
    /// Waits in `lock_threads`.
    waits: u64,
}

/// Moves exited threads' entries out of the kernel maps, through handles
/// of its own (it runs on the ring reader's thread).
pub struct Janitor {
    lock_threads: Map,
    thread_sched: Map,
    syscall_sleep: Map,
    runq: Map,
    fn_start: Map,
    /// Probed functions, whose calls in flight are keyed by (tid, id).
    pub fn_ids: Vec<u32>,
    pub retired: Retired,
    /// Exited threads whose entries are still in the maps: tid → (tgid,
    /// whether some of its lock entries are among them).
    pending: HashMap<u32, (u32, bool)>,
    next_sweep: Instant,
    /// Waits in the retired entries, for the progress line.
    waits: Arc<AtomicU64>,
}

/// A second handle on one of the programs' maps.
fn handle(probes: &Probes, name: &str) -> Result<Map> {
    let map = probes
        .bpf
        .map(name)
        .with_context(|| format!("map {name} missing"))?;
    let Map::HashMap(data) = map else {
        anyhow::bail!("map {name} is not a hash map");
    };
    let fd = data
        .fd()
        .as_fd()
        .try_clone_to_owned()
        .with_context(|| format!("duplicating map {name}"))?;
    Ok(Map::from_map_data(MapData::from_fd(fd)?)?)
}

impl Janitor {
    pub fn new(probes: &Probes, waits: Arc<AtomicU64>) -> Result<Self> {
        Ok(Self {
            lock_threads: handle(probes, names::LOCK_THREADS)?,
            thread_sched: handle(probes, names::THREAD_SCHED)?,
            syscall_sleep: handle(probes, names::SYSCALL_SLEEP)?,
            runq: handle(probes, names::RUNQ_HIST)?,
            fn_start: handle(probes, names::FN_START)?,
            fn_ids: Vec::new(),
            retired: Retired::default(),
            pending: HashMap::new(),
            next_sweep: Instant::now(),
            waits,
        })
    }

    /// A traced thread exited: keep its final scheduler view and the lock
    /// entries the kernel took out with it, and evict its other entries at
    /// the next sweep.
    pub fn thread_exit(&mut self, e: &ThreadExit) {
        self.retired.thread_exit(e);
        let more = e.more_locks != 0;
        self.pending
            .entry(e.tid)
            .and_modify(|p| *p = (e.tgid, p.1 || more))
            .or_insert((e.tgid, more));
    }

    /// How long until a sweep is due, if one is pending.
    pub fn due_in(&self) -> Option<Duration> {
        (!self.pending.is_empty())
            .then(|| self.next_sweep.saturating_duration_since(Instant::now()))
    }

    /// Moves the pending threads' entries out of the kernel maps, calling
    /// `breathe` every few thousand keys (the reader drains the ring there).
    pub fn sweep(&mut self, breathe: &mut dyn FnMut()) -> Result<()> {
        let started = Instant::now();
        let pending = std::mem::take(&mut self.pending);
        // A thread id reused by a new thread of the same process is writing
        // the same keys now: leave them; its own exit brings them here.
        let reused: HashMap<u32, ThreadSched> = {
            let live: BpfHashMap<&MapData, u32, ThreadSched> =
                BpfHashMap::try_from(&self.thread_sched)?;
            pending
                .keys()
                .filter_map(|&tid| Some((tid, live.get(&tid, 0).ok()?)))
                .collect()
        };
        let gone: Vec<(u32, u32, bool)> = pending
            .into_iter()
            .filter(|(tid, (tgid, _))| {
                reused.get(tid).is_none_or(|s| {
                    s.tgid != *tgid || s.state == tracer_common::sched_state::EXITED
                })
            })
            .map(|(tid, (tgid, more))| (tgid, tid, more))
            .collect();
        let result = self.evict(&gone, breathe);
        let cost = started.elapsed();
        self.next_sweep = Instant::now() + (cost * SWEEP_BUDGET).max(MIN_GAP);
        self.waits.store(self.retired.waits, Ordering::Relaxed);
        result
    }

    fn evict(&mut self, gone: &[(u32, u32, bool)], breathe: &mut dyn FnMut()) -> Result<()> {
        if gone.is_empty() {
            return Ok(());
        }
        let threads: HashSet<(u32, u32)> = gone.iter().map(|&(tgid, tid, _)| (tgid, tid)).collect();
        let tids: HashSet<u32> = gone.iter().map(|&(_, tid, _)| tid).collect();
        // Lock entries only for threads the kernel could not clear at exit.
        let locks: HashSet<(u32, u32)> = gone
            .iter()
            .filter(|g| g.2)
            .map(|&(tgid, tid, _)| (tgid, tid))
            .collect();
        let r = &mut self.retired;
        if !locks.is_empty() {
            r.evicted += evict(
                &mut self.lock_threads,
                |k: &LockThreadKey| locks.contains(&(k.tgid, k.tid)),
                |k, v| r.add_lock_thread(k, &v),
                breathe,
            )?;
        }
        r.evicted += evict(
            &mut self.syscall_sleep,
            |k: &SyscallSleepKey| tids.contains(&k.tid),
            |k, v: SyscallSleep| merge_sleep(r.syscall_sleep.entry(k).or_default(), &v),
            breathe,
        )?;
        r.evicted += evict(
            &mut self.runq,
            |k: &RunqKey| {
                k.kind_bucket & RUNQ_LOCK == 0
                    && u32::try_from(k.id).is_ok_and(|tid| threads.contains(&(k.tgid, tid)))
            },
            |k, v: u64| *r.runq.entry(k).or_default() += v,
            breathe,
        )?;
        if !self.fn_ids.is_empty() {
            let mut starts: BpfHashMap<&mut MapData, FnStartKey, tracer_common::FnStart> =
                BpfHashMap::try_from(&mut self.fn_start)?;
            for &tid in &tids {
                for &fn_id in &self.fn_ids {
                    // A call in flight when its thread died never returns.
                    let _ = starts.remove(&FnStartKey { tid, fn_id });
                }
            }
        }
        Ok(())
    }
}

impl Retired {
    fn thread_exit(&mut self, e: &ThreadExit) {
        self.threads_exited += 1;
        let len = e.comm.iter().position(|&b| b == 0).unwrap_or(e.comm.len());
        if len > 0 {
            self.names.insert(
                (e.tgid, e.tid),
                String::from_utf8_lossy(&e.comm[..len]).into_owned(),
            );
        }
        merge_sched(self.sched.entry((e.tgid, e.tid)).or_default(), &e.sched);
        let n = (e.nlocks as usize).min(tracer_common::EXIT_LOCKS);
        for (uaddr, stats) in e.lock_uaddr.iter().zip(&e.locks).take(n) {
            if *uaddr == 0 {
                continue;
            }
            let key = LockThreadKey {
                uaddr: *uaddr,
                tgid: e.tgid,
                tid: e.tid,
            };
            self.add_lock_thread(key, stats);
            self.evicted += 1;
        }
    }

    fn add_lock_thread(&mut self, key: LockThreadKey, v: &LockThreadStats) {
        self.waits += v.outcomes.iter().sum::<u64>();
        merge_lock_thread(self.lock_threads.entry(key).or_default(), v);
    }

    /// Adds what was moved out of the kernel to a snapshot of the maps
    /// (taken after the last sweep).
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
        merge_entries(&mut snap.syscall_sleep, &self.syscall_sleep, merge_sleep);
        merge_entries(&mut snap.runq, &self.runq, |a, b| *a += b);
        snap.threads_exited = self.threads_exited;
        snap.exited_names.clone_from(&self.names);
    }
}

/// Deletes the entries whose key matches, handing each (key, value) read
/// before its deletion to `keep`; returns how many were moved.
fn evict<K: Pod + Eq + std::hash::Hash, V: Pod>(
    map: &mut Map,
    matches: impl Fn(&K) -> bool,
    mut keep: impl FnMut(K, V),
    breathe: &mut dyn FnMut(),
) -> Result<u64> {
    let mut map: BpfHashMap<&mut MapData, K, V> = BpfHashMap::try_from(map)?;
    let mut keys: Vec<K> = Vec::new();
    for (i, k) in map.keys().flatten().enumerate() {
        if matches(&k) {
            keys.push(k);
        }
        if i % KEYS_PER_BREATH == KEYS_PER_BREATH - 1 {
            breathe();
        }
    }
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

fn merge_sleep(a: &mut SyscallSleep, b: &SyscallSleep) {
    a.sleeps += b.sleeps;
    a.sleep_ns += b.sleep_ns;
}

pub fn merge_lock_thread(a: &mut LockThreadStats, b: &LockThreadStats) {
    for (x, y) in a.outcomes.iter_mut().zip(&b.outcomes) {
        *x += y;
    }
    a.wait_ns += b.wait_ns;
    a.eagain_ns += b.eagain_ns;
    a.max_wait_ns = a.max_wait_ns.max(b.max_wait_ns);
    a.wake_calls += b.wake_calls;
    a.woken += b.woken;
    a.ops |= b.ops;
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
    fn an_exit_record_supersedes_an_earlier_view_of_the_thread() {
        let view = ThreadSched {
            tgid: 7,
            oncpu_ns: 3,
            since_ns: 100,
            ..Default::default()
        };
        let mut snap = Snapshot {
            sched: vec![(8, view)],
            ..Default::default()
        };
        let mut r = Retired::default();
        r.thread_exit(&ThreadExit {
            tgid: 7,
            tid: 8,
            sched: ThreadSched {
                tgid: 7,
                oncpu_ns: 5,
                since_ns: 150,
                ..Default::default()
            },
            ..Default::default()
        });
        r.merge_into(&mut snap);
        assert_eq!(snap.sched.len(), 1);
        assert_eq!(snap.sched[0].1.oncpu_ns, 5, "the record, not view + record");
        assert_eq!(snap.threads_exited, 1);
    }

    #[test]
    fn an_exited_thread_keeps_the_name_it_died_with() {
        let mut comm = [0u8; 16];
        comm[..15].copy_from_slice(b"\x1b[2J\nVERDICT ok");
        let mut r = Retired::default();
        r.thread_exit(&ThreadExit {
            tgid: 7,
            tid: 8,
            comm,
            ..Default::default()
        });
        // A nameless record (a kernel that could not read it) names nothing.
        r.thread_exit(&ThreadExit {
            tgid: 7,
            tid: 9,
            ..Default::default()
        });
        let mut snap = Snapshot::default();
        r.merge_into(&mut snap);
        assert_eq!(
            snap.exited_names.get(&(7, 8)).map(String::as_str),
            Some("\x1b[2J\nVERDICT ok")
        );
        assert_eq!(snap.exited_names.len(), 1);
    }
}

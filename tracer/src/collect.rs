//! Reads the kernel maps into plain Rust values. Nothing downstream touches
//! the maps: the report is built from a `Snapshot`.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use aya::maps::{HashMap, MapData, PerCpuArray, StackTraceMap};
use tracer_common::{HistKey, LockThreadKey, LockThreadStats, SiteKey, SiteStats, counter};

use crate::attach::Probes;

#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub lock_threads: Vec<(LockThreadKey, LockThreadStats)>,
    pub hist: Vec<(HistKey, u64)>,
    pub sites: Vec<(SiteKey, SiteStats)>,
    /// Stack id → user instruction pointers, innermost first.
    pub stacks: BTreeMap<i32, Vec<u64>>,
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
    let stacks: StackTraceMap<&MapData> = StackTraceMap::try_from(map("STACKS")?)?;
    for (key, _) in &snap.sites {
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
    let counters: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map("COUNTERS")?)?;
    for (i, slot) in snap.counters.iter_mut().enumerate() {
        let per_cpu = counters.get(&(i as u32), 0).context("reading a counter")?;
        *slot = per_cpu.iter().sum();
    }
    Ok(snap)
}

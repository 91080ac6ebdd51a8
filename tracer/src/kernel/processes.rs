//! The processes a session traces: the roots and every child followed,
//! what /proc said about each (kept after it exits: symbolization happens
//! at the end), which exited, and the roots' descendants that were never
//! traced.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use crate::{
    kernel::{attach::Probes, ring::Event},
    target::process::{self, ProcessInfo},
};

/// /proc is re-read this often at first (to catch a short-lived command's
/// maps after exec), then every second.
const FAST_REFRESH: Duration = Duration::from_millis(50);
const SLOW_REFRESH: Duration = Duration::from_secs(1);
const FAST_PERIOD: Duration = Duration::from_secs(1);

pub struct Processes {
    /// What /proc said about every process traced (kept after it exits).
    pub procs: BTreeMap<u32, ProcessInfo>,
    /// Every process traced at some point: roots and followed children
    /// (the kernel's target set drops those that exited).
    known: BTreeSet<u32>,
    /// Traced processes that are gone.
    exited: BTreeSet<u32>,
    /// The roots (--pid, or the launched command).
    roots: Vec<u32>,
    /// Per root, its descendants seen in /proc (traced or not).
    seen: BTreeMap<u32, BTreeSet<u32>>,
    started: Instant,
    last_refresh: Option<Instant>,
}

impl Processes {
    pub fn new(roots: &[u32]) -> Self {
        Self {
            procs: BTreeMap::new(),
            known: roots.iter().copied().collect(),
            exited: BTreeSet::new(),
            roots: roots.to_vec(),
            seen: BTreeMap::new(),
            started: Instant::now(),
            last_refresh: None,
        }
    }

    /// The roots, as given.
    pub fn roots(&self) -> &[u32] {
        &self.roots
    }

    /// Re-reads /proc when it is time: often in the first second, then
    /// once a second.
    pub fn tick(&mut self, probes: &Probes) {
        let every = if self.started.elapsed() < FAST_PERIOD {
            FAST_REFRESH
        } else {
            SLOW_REFRESH
        };
        if self.last_refresh.is_none_or(|t| t.elapsed() >= every) {
            self.refresh(probes);
        }
    }

    /// A fork or a process exit, from the event ring.
    pub fn event(&mut self, e: Event) {
        match e {
            Event::ProcessExit(pid) => {
                self.exited.insert(pid);
            }
            Event::Fork { parent, child } => {
                log::debug!("pid {parent} forked {child}: followed");
                // Read the child's /proc now: it may be gone by the next
                // refresh, and its maps are what symbolizes its stacks.
                self.known.insert(child);
                self.refresh_one(child);
                // Gone already: a fork runs its parent's program with its
                // parent's argv and memory (its maps symbolize its stacks and
                // name its shared memory) until it execs or rewrites them.
                let inherited = self.procs.get(&parent).map(|p| {
                    (
                        p.cmdline.clone(),
                        p.exe.clone(),
                        p.maps.clone(),
                        p.threads.get(&parent).cloned(),
                    )
                });
                if let (Some(c), Some((cmdline, exe, maps, name))) =
                    (self.procs.get_mut(&child), inherited)
                {
                    if c.cmdline.is_empty() {
                        c.cmdline = cmdline;
                        c.exe = c.exe.take().or(exe);
                    }
                    if c.maps.is_empty() {
                        c.maps = maps;
                    }
                    if let Some(name) = name {
                        c.threads.entry(child).or_insert(name);
                    }
                }
            }
            Event::Exec { .. } => {}
        }
    }

    /// Re-reads /proc for every traced process still in the target set,
    /// and notes the roots' descendants that are not in it.
    pub fn refresh(&mut self, probes: &Probes) {
        self.last_refresh = Some(Instant::now());
        self.known.extend(probes.targets());
        let live: Vec<u32> = self.known.difference(&self.exited).copied().collect();
        for pid in live {
            self.refresh_one(pid);
        }
        // Every descendant seen (zombies too: they ran); which of them
        // were traced is only known once the ring is drained at the end
        // (a fork's record may still be on its way), so `untraced` is
        // worked out then.
        let tree = process::process_tree();
        for (root, pids) in process::descendants_in(&tree, &self.roots) {
            if !self.exited.contains(&root) {
                self.seen.entry(root).or_default().extend(pids);
            }
        }
    }

    /// Traces the roots' descendants that already run (--children),
    /// scanning again until a scan finds none new (a child may fork while
    /// it is being adopted). False when the target set filled up first.
    pub fn adopt_descendants(&mut self, probes: &mut Probes) -> bool {
        for _ in 0..16 {
            let tree = process::process_tree();
            let new: Vec<u32> = process::descendants_in(&tree, &self.roots)
                .into_values()
                .flatten()
                .filter(|p| !self.known.contains(p) && !tree.get(p).is_some_and(|t| t.1))
                .collect();
            if new.is_empty() {
                return true;
            }
            for pid in new {
                if probes.add_target(pid).is_err() {
                    return false;
                }
                if !process::alive(pid as i32) {
                    // Gone meanwhile: its pid must not stay traced.
                    probes.remove_target(pid);
                    continue;
                }
                self.known.insert(pid);
                self.refresh_one(pid);
            }
        }
        true
    }

    /// Per root, its descendants seen while tracing that were never traced
    /// (pids ascending). Meaningful once the ring is drained.
    pub fn untraced(&self, root: u32) -> Vec<u32> {
        self.seen
            .get(&root)
            .map(|s| s.difference(&self.known).copied().collect())
            .unwrap_or_default()
    }

    /// Whether this process is (or was) traced.
    pub fn is_traced(&self, pid: u32) -> bool {
        self.known.contains(&pid) && !self.exited.contains(&pid)
    }

    /// One more process traced from now on (the caller added it to the
    /// kernel's target set).
    pub fn adopt(&mut self, pid: u32) {
        self.known.insert(pid);
        self.exited.remove(&pid);
        self.refresh_one(pid);
    }

    /// Every process traced, roots first.
    pub fn targets(&self) -> Vec<u32> {
        self.known.iter().copied().collect()
    }

    /// This process's /proc view, read now.
    pub fn refresh_one(&mut self, pid: u32) {
        self.procs
            .entry(pid)
            .or_insert_with(|| ProcessInfo {
                pid,
                ..Default::default()
            })
            .refresh();
    }
}

//! One tracing session: load and attach the programs for the given root
//! processes, keep the event ring drained (its own thread) and the maps
//! clear of exited threads while tracing, then harvest one snapshot and
//! detach. `tracer contention` (once or `--repeat`ed) drives it; the loop
//! that decides when tracing ends is the caller's.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::{
    kernel::attach::{LoadOptions, Probes},
    kernel::collect::{self, Snapshot},
    kernel::ring::{Event, RingReader},
    target::process::ProcessInfo,
};

/// /proc is re-read this often at first (to catch a short-lived command's
/// maps after exec), then every second.
const FAST_REFRESH: Duration = Duration::from_millis(50);
const SLOW_REFRESH: Duration = Duration::from_secs(1);
const FAST_PERIOD: Duration = Duration::from_secs(1);

pub struct Session {
    pub probes: Probes,
    ring: Option<RingReader>,
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

impl Session {
    /// Loads the programs, starts reading the event ring, adds the roots
    /// and attaches every hook.
    pub fn start(
        opts: &LoadOptions,
        roots: &[u32],
        sched_only: bool,
        follow: bool,
    ) -> Result<Self> {
        let mut probes = Probes::load(opts)?;
        let ring = RingReader::start(&mut probes, roots)?;
        for &pid in roots {
            probes.add_target(pid)?;
        }
        probes.attach(sched_only, follow)?;
        Ok(Self {
            probes,
            ring: Some(ring),
            procs: BTreeMap::new(),
            known: roots.iter().copied().collect(),
            exited: BTreeSet::new(),
            roots: roots.to_vec(),
            seen: BTreeMap::new(),
            started: Instant::now(),
            last_refresh: None,
        })
    }

    /// One turn of the tracing loop: kernel events (forks, process exits)
    /// and /proc. Exited threads are evicted on the ring's thread.
    pub fn tick(&mut self) {
        let events: Vec<Event> = self
            .ring
            .as_ref()
            .map(|r| r.events.try_iter().collect())
            .unwrap_or_default();
        for e in events {
            self.event(e);
        }
        let every = if self.started.elapsed() < FAST_PERIOD {
            FAST_REFRESH
        } else {
            SLOW_REFRESH
        };
        if self.last_refresh.is_none_or(|t| t.elapsed() >= every) {
            self.refresh();
        }
    }

    fn event(&mut self, e: Event) {
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
        }
    }

    /// Re-reads /proc for every traced process still in the target set,
    /// and notes the roots' descendants that are not in it.
    fn refresh(&mut self) {
        self.last_refresh = Some(Instant::now());
        self.known.extend(self.probes.targets());
        let live: Vec<u32> = self.known.difference(&self.exited).copied().collect();
        for pid in live {
            self.refresh_one(pid);
        }
        // Every descendant seen (zombies too: they ran); which of them
        // were traced is only known once the ring is drained at the end
        // (a fork's record may still be on its way), so `untraced` is
        // worked out then.
        let tree = crate::target::process::process_tree();
        for (root, pids) in crate::target::process::descendants_in(&tree, &self.roots) {
            if !self.exited.contains(&root) {
                self.seen.entry(root).or_default().extend(pids);
            }
        }
    }

    /// Traces the roots' descendants that already run (--children),
    /// scanning again until a scan finds none new (a child may fork while
    /// it is being adopted). False when the target set filled up first.
    pub fn adopt_descendants(&mut self) -> bool {
        for _ in 0..16 {
            let tree = crate::target::process::process_tree();
            let new: Vec<u32> = crate::target::process::descendants_in(&tree, &self.roots)
                .into_values()
                .flatten()
                .filter(|p| !self.known.contains(p) && !tree.get(p).is_some_and(|t| t.1))
                .collect();
            if new.is_empty() {
                return true;
            }
            for pid in new {
                if self.probes.add_target(pid).is_err() {
                    return false;
                }
                if !crate::kernel::preflight::alive(pid as i32) {
                    // Gone meanwhile: its pid must not stay traced.
                    self.probes.remove_target(pid);
                    continue;
                }
                self.known.insert(pid);
                self.refresh_one(pid);
            }
        }
        true
    }

    /// Per root, its descendants seen while tracing that were never traced
    /// (pids ascending). Meaningful after [`Session::harvest`].
    pub fn untraced(&self, root: u32) -> Vec<u32> {
        self.seen
            .get(&root)
            .map(|s| s.difference(&self.known).copied().collect())
            .unwrap_or_default()
    }

    /// A process changed its memory maps (a launched command exec'd): read
    /// them again now, for unwinding and symbolizing.
    pub fn watch(&mut self, pid: u32) {
        if let Some(r) = &self.ring {
            r.watch(pid);
        }
        self.refresh_one(pid);
    }

    /// Waits counted so far in entries already moved out of the kernel
    /// (the live ones are in LOCK_THREADS).
    pub fn retired_waits(&self) -> u64 {
        self.ring.as_ref().map_or(0, RingReader::retired_waits)
    }

    /// The probed functions: their calls in flight are evicted with their
    /// threads.
    pub fn set_fn_ids(&self, ids: Vec<u32>) {
        if let Some(r) = &self.ring {
            r.set_fn_ids(ids);
        }
    }

    /// Every process traced, roots first.
    pub fn targets(&self) -> Vec<u32> {
        self.known.iter().copied().collect()
    }

    /// The run's data: the maps as they are now, the entries moved out of
    /// them, and every unwound sample (the ring is drained to its end).
    pub fn harvest(&mut self) -> Result<Snapshot> {
        self.refresh();
        // From here on exits leave their entries in the maps, and after the
        // pause nothing else moves them: each entry is counted once, live
        // (in the snapshot) or retired (before it).
        self.probes.begin_harvest()?;
        let paused = self.ring.as_ref().is_some_and(RingReader::pause);
        let mut snap = collect::snapshot(&self.probes).context("reading the kernel maps")?;
        // The reader's last drain happens after this point: every record
        // submitted before the snapshot is read, exits included.
        match self.ring.take().and_then(RingReader::finish) {
            Some((mut unwinding, retired, events)) if paused => {
                for e in events {
                    self.event(e);
                }
                snap.unwound = unwinding.take();
                snap.unwind_stats = unwinding.stats;
                retired.merge_into(&mut snap);
                log::debug!(
                    "{} threads exited while traced; {} map entries evicted",
                    retired.threads_exited,
                    retired.evicted
                );
            }
            _ => {
                log::warn!(
                    "the event ring's reader failed: unwound call sites and exited threads' entries are missing"
                );
                snap.reader_failed = true;
            }
        }
        Ok(snap)
    }

    /// This process's /proc view, read now.
    fn refresh_one(&mut self, pid: u32) {
        self.procs
            .entry(pid)
            .or_insert_with(|| ProcessInfo {
                pid,
                ..Default::default()
            })
            .refresh();
    }
}

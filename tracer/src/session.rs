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
    attach::{LoadOptions, Probes},
    collect::{self, Snapshot},
    retire::Retired,
    ring::{Event, RingReader},
    target::ProcessInfo,
};

/// /proc is re-read this often at first (to catch a short-lived command's
/// maps after exec), then every second.
const FAST_REFRESH: Duration = Duration::from_millis(50);
const SLOW_REFRESH: Duration = Duration::from_secs(1);
const FAST_PERIOD: Duration = Duration::from_secs(1);

pub struct Session {
    pub probes: Probes,
    ring: Option<RingReader>,
    retired: Retired,
    /// What /proc said about every process traced (kept after it exits).
    pub procs: BTreeMap<u32, ProcessInfo>,
    /// Every process traced at some point: roots and followed children
    /// (the kernel's target set drops those that exited).
    known: BTreeSet<u32>,
    /// Probed functions' ids, whose in-flight calls are keyed by thread.
    pub fn_ids: Vec<u32>,
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
            retired: Retired::default(),
            procs: BTreeMap::new(),
            known: roots.iter().copied().collect(),
            fn_ids: Vec::new(),
            started: Instant::now(),
            last_refresh: None,
        })
    }

    /// One turn of the tracing loop: kernel events (forks, exits), the
    /// eviction of exited threads, and /proc.
    pub fn tick(&mut self) {
        let events: Vec<Event> = self
            .ring
            .as_ref()
            .map(|r| r.events.try_iter().collect())
            .unwrap_or_default();
        for e in events {
            self.event(e);
        }
        if self.retired.sweep_due()
            && let Err(e) = self.retired.sweep(&mut self.probes, &self.fn_ids)
        {
            log::warn!("evicting exited threads: {e:#}");
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
            Event::ThreadExit(x) => self.retired.thread_exit(&x),
            Event::Fork { parent, child } => {
                log::debug!("pid {parent} forked {child}: followed");
                // Read the child's /proc now: it may be gone by the next
                // refresh, and its maps are what symbolizes its stacks.
                self.known.insert(child);
                self.procs
                    .entry(child)
                    .or_insert_with(|| ProcessInfo {
                        pid: child,
                        ..Default::default()
                    })
                    .refresh();
            }
        }
    }

    /// Re-reads /proc for every traced process still in the target set.
    fn refresh(&mut self) {
        self.last_refresh = Some(Instant::now());
        self.known.extend(self.probes.targets());
        let exited = &self.retired.exited;
        for &pid in self.known.iter().filter(|p| !exited.contains(p)) {
            self.procs
                .entry(pid)
                .or_insert_with(|| ProcessInfo {
                    pid,
                    ..Default::default()
                })
                .refresh();
        }
    }

    /// A process changed its memory maps (a launched command exec'd): read
    /// them again now, for unwinding and symbolizing.
    pub fn watch(&mut self, pid: u32) {
        if let Some(r) = &self.ring {
            r.watch(pid);
        }
        self.procs
            .entry(pid)
            .or_insert_with(|| ProcessInfo {
                pid,
                ..Default::default()
            })
            .refresh();
    }

    /// Waits counted so far in entries already moved out of the kernel
    /// (the live ones are in LOCK_THREADS).
    pub fn retired_waits(&self) -> u64 {
        self.retired.waits()
    }

    /// Every process traced, roots first.
    pub fn targets(&self) -> Vec<u32> {
        self.known.iter().copied().collect()
    }

    /// The run's data: the maps as they are now, the entries moved out of
    /// them, and every unwound sample (the ring is drained to its end).
    pub fn harvest(&mut self) -> Result<Snapshot> {
        self.refresh();
        let mut snap = collect::snapshot(&self.probes).context("reading the kernel maps")?;
        // The reader's last drain happens after this point: records the
        // programs submitted up to now are all read.
        let unwinding = self.ring.take().map(|r| {
            let events: Vec<Event> = r.events.try_iter().collect();
            (r.finish(), events)
        });
        if let Some((mut unwinding, events)) = unwinding {
            for e in events {
                self.event(e);
            }
            snap.unwound = unwinding.take();
            snap.unwind_stats = unwinding.stats;
        }
        // Exits reported last are merged from their records (their other
        // entries are still live in the snapshot).
        self.retired.merge_into(&mut snap);
        log::debug!(
            "{} threads exited while traced; {} map entries evicted",
            self.retired.threads_exited,
            self.retired.evicted
        );
        Ok(snap)
    }
}

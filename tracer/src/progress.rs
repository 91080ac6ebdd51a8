//! The live progress line on stderr while tracing (only on a terminal, and
//! not with -q): elapsed time, waits/s, the top lock so far, drops. Read
//! from the kernel maps once a second, the same aggregates the report is
//! built from: never one record per event.

use std::{
    collections::{BTreeMap, HashMap},
    io::IsTerminal as _,
    time::{Duration, Instant},
};
use tracer_common::names;

use tracer_common::{LockThreadKey, LockThreadStats, counter};

use crate::{
    kernel::attach::Probes,
    kernel::collect,
    report::units::{human_count, human_ns, human_rate},
    target::process::ProcessInfo,
    target::symbolize::Symbols,
};

const EVERY: Duration = Duration::from_secs(1);

/// The line never takes more than 1/BUDGET of a CPU: a refresh that cost
/// 40 ms (≈9,000 (lock, thread) entries) spaces the next ones 2 s apart.
const BUDGET: u32 = 50;

pub struct Progress {
    every: Duration,
    last: Instant,
    last_waits: u64,
    names: HashMap<(u64, u32), String>,
    syms: Symbols,
    /// Time spent reading the maps for the line, and how often.
    spent: Duration,
    ticks: u32,
}

/// What one look at the maps found.
#[derive(Debug, Default, PartialEq)]
pub struct Totals {
    pub waits: u64,
    pub drops: u64,
    /// (futex word, tgid, contentions, wait ns) of the lock with the most
    /// wait time.
    pub top: Option<(u64, u32, u64, u64)>,
}

impl Progress {
    /// None when stderr is not a terminal or the user asked for quiet.
    pub fn new(quiet: bool) -> Option<Self> {
        (!quiet && std::io::stderr().is_terminal()).then(|| Self {
            every: EVERY,
            last: Instant::now(),
            last_waits: 0,
            names: HashMap::new(),
            syms: Symbols::new(),
            spent: Duration::ZERO,
            ticks: 0,
        })
    }

    /// Redraws the line if a second has passed since the last one.
    /// `retired` is the waits already moved out of the kernel maps (the
    /// entries of threads that exited).
    pub fn tick(
        &mut self,
        probes: &Probes,
        procs: &BTreeMap<u32, ProcessInfo>,
        retired: u64,
        elapsed: Duration,
    ) {
        if self.last.elapsed() < self.every {
            return;
        }
        let dt = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        let started = Instant::now();
        let mut t = totals(probes);
        t.waits += retired;
        let cost = started.elapsed();
        self.every = EVERY.max(cost * BUDGET);
        self.spent += cost;
        self.ticks += 1;
        let rate = t.waits.saturating_sub(self.last_waits) as f64 / dt;
        self.last_waits = t.waits;
        let top = match t.top {
            Some((addr, tgid, count, wait)) => {
                let name = self
                    .names
                    .entry((addr, tgid))
                    .or_insert_with(|| {
                        procs
                            .get(&tgid)
                            .and_then(|p| self.syms.data(p, addr))
                            .map(|n| crate::ui::esc(&n).into_owned())
                            .unwrap_or_else(|| format!("{addr:#x}"))
                    })
                    .clone();
                format!(
                    "top {name} ({}/s, {} waited)",
                    human_rate(count as f64 / elapsed.as_secs_f64().max(1e-3)),
                    human_ns(wait)
                )
            }
            None => "no lock contended yet".to_string(),
        };
        let line = format!(
            "tracer: {:.0}s · {} waits/s · {} waits · drops {} · {top}",
            elapsed.as_secs_f64(),
            human_rate(rate),
            human_count(t.waits),
            human_count(t.drops)
        );
        let width = columns().saturating_sub(1).max(20);
        let line: String = line.chars().take(width).collect();
        crate::ui::status_line(&line);
    }

    /// Erases the line, before anything else is printed.
    pub fn clear(&mut self) {
        crate::ui::clear_status_line();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
        if self.ticks > 0 {
            log::debug!(
                "progress line: {} refreshes, {} µs of map reads each",
                self.ticks,
                self.spent.as_micros() / u128::from(self.ticks)
            );
        }
    }
}

/// Waits, drops and the top lock so far, from LOCK_THREADS and COUNTERS.
/// What fails to read is left out: this is a progress line, the report
/// counts such failures.
pub fn totals(probes: &Probes) -> Totals {
    let mut t = Totals::default();
    let mut errors = 0;
    let entries: Vec<(LockThreadKey, LockThreadStats)> = probes
        .bpf
        .map(names::LOCK_THREADS)
        .and_then(|m| collect::read_all(m, &mut errors).ok())
        .unwrap_or_default();
    let mut per_lock: HashMap<(u64, u32), (u64, u64)> = HashMap::new();
    for (k, s) in entries {
        let waits: u64 = s.outcomes.iter().sum();
        t.waits += waits;
        let e = per_lock.entry((k.uaddr, k.tgid)).or_default();
        e.0 += waits;
        e.1 += s.wait_ns;
    }
    t.top = per_lock
        .into_iter()
        .filter(|(_, (c, _))| *c > 0)
        .max_by_key(|(k, (c, w))| (*w, *c, *k))
        .map(|((a, p), (c, w))| (a, p, c, w));
    if let Ok(c) = collect::counters(probes) {
        t.drops = (0..counter::COUNT)
            .filter(|&i| counter::is_drop(i))
            .map(|i| c[i as usize])
            .sum();
    }
    t
}

/// The terminal's width (stderr), 100 when unknown.
fn columns() -> usize {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the valid pointer we pass.
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 {
        usize::from(ws.ws_col)
    } else {
        100
    }
}

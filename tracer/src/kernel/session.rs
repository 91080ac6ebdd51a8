//! One tracing session, in phases: resolve the targets (the given pids, or
//! a command launched and held at a gate) → load and attach the programs
//! and the function probes → trace (a loop that only drives time: the
//! event ring has its own reader, exited threads leave the maps on its
//! thread) → harvest one snapshot → detach (in the background, joined
//! before the tracer exits).
//!
//! `tracer contention` runs one session per report (`--repeat` runs
//! several). The phases are separate calls so that other modes reuse them:
//! a continuous mode calls [`Session::trace`] for each period; a sampling
//! mode adds its programs as the function probes are added here (a part
//! with its own attach, tick and finish, driven by the same loop).

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicBool, Ordering},
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};

use crate::{
    exit::{Code, fail},
    kernel::{
        attach::{HookState, LoadOptions, Probes},
        collect::{self, Snapshot},
        counters::{CounterValues, Counters},
        functions::Functions,
        preflight,
        processes::Processes,
        ring::{Event, RingReader},
        sampling::{self, SamplingOptions},
        uprobes::{FnOptions, FnProbes},
    },
    say,
    target::process::{self, Launched, ProcessInfo},
};

/// What to trace.
pub enum Targets {
    /// Running processes (`--pid`).
    Pids(Vec<i32>),
    /// A command to launch (`-- CMD`), held at a gate until the probes are
    /// attached; its stdout goes to stderr when stdout carries a report.
    Command {
        argv: Vec<String>,
        stdout_to_stderr: bool,
    },
}

/// How to trace, independent of the command line.
pub struct Options {
    pub sched_only: bool,
    /// Trace the children the targets fork.
    pub follow_forks: bool,
    /// Also trace the children that already run (`--children`).
    pub children: bool,
    pub stack_every: u64,
    /// Unwind samples per second per (lock, thread).
    pub unwind_rate: u64,
    pub max_locks: u32,
    pub verbose: bool,
    pub functions: FnOptions,
    /// Keep BPF run-time statistics on and print them at the end.
    pub program_stats: bool,
    /// On-CPU sampling (`tracer profile`).
    pub sampling: Option<SamplingOptions>,
    /// Report every exec on the system ([`Session::take_execs`]), for a
    /// caller that adds the processes it wants ([`Session::adopt`]).
    pub watch_execs: bool,
    /// Tracing does not end when the targets are gone (`tracer agent`:
    /// more may come).
    pub open_ended: bool,
}

/// A process that exec'd (see [`Options::watch_execs`]).
#[derive(Clone, Debug)]
pub struct Exec {
    pub tgid: u32,
    /// Its cgroup v2 id.
    pub cgroup: u64,
    pub comm: String,
}

/// Execs kept for [`Session::take_execs`] between two calls; more are
/// dropped (and counted).
const EXECS_KEPT: usize = 4096;

/// Why tracing ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Interrupted,
    Duration,
    TargetExited,
}

impl End {
    pub fn as_str(self) -> &'static str {
        match self {
            End::Interrupted => "interrupted",
            End::Duration => "duration reached",
            End::TargetExited => "target exited",
        }
    }
}

/// When [`Session::trace`] returns: at the duration (since tracing began),
/// at `stop` (a signal), or when the targets are gone.
pub struct Until<'a> {
    pub duration: Option<Duration>,
    pub stop: &'a AtomicBool,
}

/// How often the tracing loop turns.
const TICK: Duration = Duration::from_millis(20);

/// What a session measured, once harvested; the kernel side is being
/// detached meanwhile (join [`Harvest::detach`] before exiting).
pub struct Harvest {
    pub snap: Snapshot,
    /// What /proc said about every process traced.
    pub procs: BTreeMap<u32, ProcessInfo>,
    pub hooks: Vec<HookState>,
    pub load_attach: Duration,
    /// The roots, then every process traced.
    pub roots: Vec<u32>,
    pub all_targets: Vec<u32>,
    /// Per root, its descendants that were never traced.
    pub untraced: BTreeMap<u32, Vec<u32>>,
    /// The launched command, stopped.
    pub launched: Option<Launched>,
    pub functions: Option<FnProbes>,
    /// The counters' values at the end, and whether hardware ones were
    /// counted (else why not).
    pub counters: Option<CounterValues>,
    /// Wall-clock start and length of the traced window.
    pub start_time: SystemTime,
    pub duration: Duration,
    pub detach: Detach,
}

/// The kernel side being detached on its own thread: each tracepoint's
/// unregistration waits for an RCU grace period (≈ 70 ms each here), so the
/// report is built meanwhile.
pub struct Detach(JoinHandle<()>);

impl Detach {
    /// Waits until nothing is left attached.
    pub fn join(self) -> Result<()> {
        self.0
            .join()
            .map_err(|_| fail(Code::Internal, "detaching the probes panicked"))
    }
}

pub struct Session {
    pub probes: Probes,
    ring: Option<RingReader>,
    /// The processes traced and what /proc said about them.
    pub processes: Processes,
    /// The pids given (--pid): tracing ends when all are gone.
    given: Vec<i32>,
    launched: Option<Launched>,
    functions: Functions,
    /// Counting perf events (`tracer profile`).
    counters: Option<Counters>,
    /// Kept open while tracing: the kernel counts run time while any such
    /// fd is open.
    stats_fd: Option<std::os::fd::OwnedFd>,
    program_stats: bool,
    /// When tracing began ([`Session::begin`]).
    t0: Instant,
    start_time: SystemTime,
    open_ended: bool,
    /// When its targets were handed to another session ([`Session::hand_over`]).
    ended: Option<Instant>,
    /// Execs not yet taken, and those dropped because nobody took them.
    execs: Vec<Exec>,
    pub execs_dropped: u64,
}

impl Session {
    /// Resolves the targets, loads the programs, starts reading the event
    /// ring, adds the roots, attaches every hook and the function probes.
    /// A launched command still waits at its gate: [`Session::begin`]
    /// releases it.
    pub fn start(opts: Options, targets: Targets, stop: &AtomicBool) -> Result<Self> {
        preflight::privileges()?;
        let (launched, given) = match targets {
            // More processes come and go (`tracer agent`): one that is gone
            // by now is not an error.
            Targets::Pids(pids) if opts.open_ended => (
                None,
                pids.into_iter()
                    .filter(|&p| process::check_pid(p).is_ok())
                    .collect(),
            ),
            Targets::Pids(pids) => {
                process::check_pids(&pids)?;
                (None, pids)
            }
            Targets::Command {
                argv,
                stdout_to_stderr,
            } => (Some(Launched::spawn(&argv, stdout_to_stderr)?), Vec::new()),
        };
        let roots: Vec<u32> = match &launched {
            Some(l) => vec![l.pid as u32],
            None => given.iter().map(|&p| p as u32).collect(),
        };
        let load = LoadOptions {
            sched_only: opts.sched_only,
            follow_forks: opts.follow_forks,
            // The target set decides alone when it changes hands (no
            // compare against a first target that cannot be removed).
            first_target: if opts.open_ended {
                None
            } else {
                roots.first().copied()
            },
            single: roots.len() == 1 && !opts.children && !opts.open_ended,
            stack_every: opts.stack_every,
            unwind_rate: opts.unwind_rate,
            max_locks: opts.max_locks,
            verbose: opts.verbose,
            watch_execs: opts.watch_execs,
        };
        let mut probes = Probes::load(&load)?;
        let ring = RingReader::start(&mut probes, &roots, opts.sampling.is_some())?;
        for &pid in &roots {
            probes.add_target(pid)?;
        }
        probes.attach(opts.sched_only, opts.follow_forks)?;
        if let Some(&pid) = given
            .iter()
            .find(|&&p| !opts.open_ended && !process::alive(p))
        {
            return Err(fail(
                Code::Target,
                format!("pid {pid} exited before tracing began"),
            ));
        }
        let now = Instant::now();
        let mut me = Self {
            probes,
            ring: Some(ring),
            processes: Processes::new(&roots),
            given,
            launched,
            functions: Functions::none(),
            counters: None,
            stats_fd: None,
            program_stats: opts.program_stats,
            t0: now,
            start_time: SystemTime::now(),
            open_ended: opts.open_ended,
            ended: None,
            execs: Vec::new(),
            execs_dropped: 0,
        };
        if opts.children && !me.processes.adopt_descendants(&mut me.probes) {
            say!(
                "tracer: the target set is full ({} processes): some of the target's children are not traced (UNTRACED in the report)",
                tracer_common::limits::TARGETS
            );
        }
        if let Some(s) = opts.sampling {
            let targets = me.targets();
            sampling::attach(&mut me.probes, s, &targets)?;
            me.counters = Some(Counters::open(&targets, sampling::has_pmu()));
        }
        me.functions = Functions::new(
            opts.functions,
            &roots,
            me.launched.as_ref().map(|l| l.program()),
            &mut me.probes,
            stop,
        )?;
        // The children taken (--children) get the probes before tracing
        // starts, as the roots do.
        let targets = me.targets();
        me.functions.follow(&targets, &mut me.probes);
        if me.program_stats {
            me.stats_fd = Some(
                aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| {
                    fail(
                        Code::Environment,
                        format!("the kernel refused BPF run-time statistics: {e}"),
                    )
                })?,
            );
        }
        Ok(me)
    }

    /// Tracing begins: a launched command is released from its gate, and
    /// once it has exec'd its maps are read and its functions probed.
    pub fn begin(&mut self, stop: &AtomicBool) -> Result<()> {
        self.start_time = SystemTime::now();
        self.t0 = Instant::now();
        if let Some(pid) = self.launched.as_ref().map(|l| l.pid as u32) {
            if let Some(l) = self.launched.as_mut() {
                l.release()?;
            }
            // Its maps are the tracer's until it execs and libc is mapped.
            process::wait_exec(pid, Duration::from_millis(500));
            self.watch(pid);
            self.functions.after_exec(pid, &mut self.probes, stop)?;
        }
        self.set_fn_ids(self.functions.ids());
        Ok(())
    }

    /// The launched command, if any.
    pub fn launched(&self) -> Option<&Launched> {
        self.launched.as_ref()
    }

    /// Time since tracing began.
    pub fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }

    /// The tracing loop: drives time only, calling `each` once a turn (the
    /// progress line); returns why it ended. Can be called again with a
    /// later duration (a continuous mode's next period).
    pub fn trace(&mut self, until: &Until, mut each: impl FnMut(&Session)) -> Result<End> {
        loop {
            self.turn()?;
            each(self);
            if until.stop.load(Ordering::Relaxed) {
                return Ok(End::Interrupted);
            }
            if until.duration.is_some_and(|d| self.t0.elapsed() >= d) {
                return Ok(End::Duration);
            }
            if self.open_ended {
                std::thread::sleep(TICK);
                continue;
            }
            let gone = match self.launched.as_mut() {
                Some(l) => !l.running(),
                None => self.given.iter().all(|&p| !process::alive(p)),
            };
            if gone {
                return Ok(End::TargetExited);
            }
            std::thread::sleep(TICK);
        }
    }

    /// One turn of the loop without its wait: kernel events, /proc, the
    /// function probes (a caller with its own loop calls it each turn).
    pub fn turn(&mut self) -> Result<()> {
        self.tick();
        let targets = self.targets();
        self.functions.follow(&targets, &mut self.probes);
        self.functions.tick(&mut self.probes)
    }

    /// Ends the session: the function probes' last window, one snapshot of
    /// the maps and the ring, then the kernel side detached in the
    /// background and the launched command stopped.
    pub fn harvest(mut self) -> Result<Harvest> {
        let duration = self
            .ended
            .map_or_else(|| self.t0.elapsed(), |e| e.duration_since(self.t0));
        let counters = self.counters.take().map(|c| CounterValues {
            values: c.read(),
            hardware: c.hardware.clone(),
        });
        self.functions.finish(&mut self.probes);
        let snap = self.snapshot()?;
        if self.program_stats {
            print_program_stats(&self.probes);
        }
        drop(self.stats_fd.take());
        let all_targets = self.targets();
        let roots = self.processes.roots().to_vec();
        let untraced = roots
            .iter()
            .map(|&r| (r, self.processes.untraced(r)))
            .collect();
        let Session {
            probes,
            processes: Processes { procs, .. },
            mut launched,
            functions,
            start_time,
            ..
        } = self;
        let hooks = probes.hooks.clone();
        let load_attach = probes.load_attach;
        let detach = Detach(std::thread::spawn(move || {
            let t = Instant::now();
            drop(probes);
            log::debug!("detached in {} ms", t.elapsed().as_millis());
        }));
        if let Some(l) = launched.as_mut() {
            l.terminate();
        }
        Ok(Harvest {
            snap,
            procs,
            hooks,
            load_attach,
            roots,
            all_targets,
            untraced,
            launched,
            functions: functions.probes,
            counters,
            start_time,
            duration,
            detach,
        })
    }

    /// One turn of the tracing loop: kernel events (forks, process exits)
    /// and /proc. Exited threads are evicted on the ring's thread.
    fn tick(&mut self) {
        let events: Vec<Event> = self
            .ring
            .as_ref()
            .map(|r| r.events.try_iter().collect())
            .unwrap_or_default();
        for e in events {
            match e {
                Event::Exec { tgid, cgroup, comm } => {
                    if self.processes.is_traced(tgid) {
                        // New maps, a new program: read them again.
                        self.watch(tgid);
                    }
                    if self.execs.len() < EXECS_KEPT {
                        self.execs.push(Exec { tgid, cgroup, comm });
                    } else {
                        self.execs_dropped += 1;
                    }
                }
                e => self.processes.event(e),
            }
        }
        self.processes.tick(&self.probes);
    }

    /// Hands every process this session traces to `next` (a session
    /// attached with an empty target set): `next` begins counting them and
    /// this one stops, pid by pid within microseconds, so consecutive
    /// windows neither overlap nor leave a gap. `also` are more processes
    /// for `next`. Only waits in flight at the handover straddle it.
    pub fn hand_over(&mut self, next: &mut Session, also: &[u32], stop: &AtomicBool) -> Result<()> {
        let mut pids = self.probes.targets();
        pids.extend(self.targets());
        pids.extend(also);
        pids.sort_unstable();
        pids.dedup();
        next.begin(stop)?;
        // The kernel's sets first, back to back; /proc and the unwinder's
        // view of each process after.
        let mut moved = Vec::new();
        for pid in pids {
            if next.probes.add_target(pid).is_ok() {
                self.probes.remove_target(pid);
                moved.push(pid);
            }
        }
        self.ended = Some(Instant::now());
        for pid in moved {
            if process::alive(pid as i32) {
                next.processes.adopt(pid);
                next.watch(pid);
            } else {
                next.probes.remove_target(pid);
            }
        }
        Ok(())
    }

    /// The execs seen since the last call ([`Options::watch_execs`]).
    pub fn take_execs(&mut self) -> Vec<Exec> {
        std::mem::take(&mut self.execs)
    }

    /// Traces one more process from now on (one that exec'd and matches).
    /// False when the target set is full or the process is gone.
    pub fn adopt(&mut self, pid: u32) -> bool {
        if self.processes.is_traced(pid) {
            return true;
        }
        if self.probes.add_target(pid).is_err() {
            return false;
        }
        if !process::alive(pid as i32) {
            self.probes.remove_target(pid);
            return false;
        }
        self.processes.adopt(pid);
        self.watch(pid);
        true
    }

    /// A process changed its memory maps (a launched command exec'd): read
    /// them again now, for unwinding and symbolizing.
    fn watch(&mut self, pid: u32) {
        if let Some(r) = &self.ring {
            r.watch(pid);
        }
        self.processes.refresh_one(pid);
    }

    /// Waits counted so far in entries already moved out of the kernel
    /// (the live ones are in LOCK_THREADS).
    pub fn retired_waits(&self) -> u64 {
        self.ring.as_ref().map_or(0, RingReader::retired_waits)
    }

    /// Every process traced, roots first.
    pub fn targets(&self) -> Vec<u32> {
        self.processes.targets()
    }

    /// What /proc said about every process traced.
    pub fn procs(&self) -> &BTreeMap<u32, ProcessInfo> {
        &self.processes.procs
    }

    /// The probed functions: their calls in flight are evicted with their
    /// threads.
    fn set_fn_ids(&self, ids: Vec<u32>) {
        if let Some(r) = &self.ring {
            r.set_fn_ids(ids);
        }
    }

    /// The run's data: the maps as they are now, the entries moved out of
    /// them, and every unwound sample (the ring is drained to its end).
    fn snapshot(&mut self) -> Result<Snapshot> {
        self.processes.refresh(&self.probes);
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
                    self.processes.event(e);
                }
                snap.unwound = unwinding.take();
                snap.unwind_stats = unwinding.stats;
                snap.cpu = unwinding.take_cpu();
                snap.cpu_stats = unwinding.cpu_stats;
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
}

/// Each attached program's runs and average run time (BPF_ENABLE_STATS).
fn print_program_stats(probes: &Probes) {
    let mut rows: Vec<(String, u64, f64)> = probes
        .bpf
        .programs()
        .filter_map(|(name, p)| {
            let info = p.info().ok()?;
            let runs = info.run_count();
            (runs > 0).then(|| {
                (
                    name.to_string(),
                    runs,
                    info.run_time().as_nanos() as f64 / runs as f64,
                )
            })
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    say!("tracer: program stats (BPF_ENABLE_STATS): PROGRAM RUNS NS/RUN");
    for (name, runs, ns) in rows {
        say!("tracer:   {name:<24} {runs:>12} {ns:>8.0}");
    }
}

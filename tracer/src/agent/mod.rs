//! `tracer agent`: traces the processes a [`Matcher`] picks, continuously,
//! one session per window (the next is attached before the last is
//! harvested, so no time goes untraced), and publishes each window's
//! report as metrics, a pprof mutex profile and JSON for the HTTP thread.
//!
//! Bounded by construction: each window's kernel maps and unwinding state
//! go with its session, the exported series are the top K locks per
//! process (the rest summed as `other`) and go with their process.

mod cpu;
mod http;
mod matcher;
pub mod metrics;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};

use crate::{
    cli::{AgentArgs, Mode},
    cmd::contention::{meta_of, stop_flag},
    exit::{Code, fail},
    kernel::{
        collect, preflight,
        session::{Detach, Harvest, Options, Session, Targets},
        uprobes::FnOptions,
    },
    output::Out,
    report::{self, model},
    say,
    target::{process, symbolize::Symbols},
};
pub use matcher::Matcher;
use metrics::{Exposition, Live};

/// What the HTTP thread serves: the tracing loop's last publication.
pub struct Shared {
    pub state: Mutex<Published>,
    /// `/debug/pprof/profile`: how CPU profiles are taken on request.
    pub cpu: cpu::CpuProfiles,
}

pub struct Published {
    pub metrics: Exposition,
    pub live: Live,
    /// The processes traced now (a CPU profile samples these).
    pub targets: Vec<u32>,
    /// The last window, as a gzip'd pprof mutex profile and as JSON.
    pub pprof: Option<Arc<Vec<u8>>>,
    pub report_json: Option<Arc<String>>,
    /// When the loop last turned, and why it stopped if it failed.
    pub heartbeat: Instant,
    /// Tracing has begun (the first window's programs are attached).
    pub tracing: bool,
    pub failed: Option<String>,
    /// When the first window ends.
    first_end: Instant,
}

impl Published {
    /// Why there is nothing to serve yet.
    fn not_yet(&self) -> String {
        format!(
            "no window has ended yet: the first ends in {:.0} s\n",
            self.first_end
                .saturating_duration_since(Instant::now())
                .as_secs_f64()
        )
    }
}

/// Map fill is counted key by key: this often, not every turn.
const LIVE_EVERY: Duration = Duration::from_secs(1);
/// How often the loop turns.
const TICK: Duration = Duration::from_millis(20);

/// Runs the agent until SIGTERM or Ctrl-C.
pub fn run(args: &AgentArgs, verbose: bool) -> Result<Code> {
    let thresholds = model::Thresholds {
        consider_at: args.consider_at,
        recommend_at: args.recommend_at,
    };
    if !(thresholds.consider_at >= 0.0 && thresholds.consider_at < thresholds.recommend_at) {
        return Err(fail(
            Code::Usage,
            format!(
                "--consider-at ({}) must be at least 0 and below --recommend-at ({})",
                args.consider_at, args.recommend_at
            ),
        ));
    }
    if args.window < Duration::from_secs(1) {
        return Err(fail(Code::Usage, "--window must be at least 1s"));
    }
    if args.top_k == 0 {
        return Err(fail(Code::Usage, "--top-k must be at least 1"));
    }
    let matcher = Matcher::new(&args.pid, args.comm.as_deref(), args.cgroup.as_deref())?;
    preflight::privileges()?;
    // The one file the agent keeps, checked (and written) as every
    // output is: atomically, never through a link (docs/files.md).
    let state = args
        .state_dir
        .as_deref()
        .map(|d| {
            crate::output::create_dir(d, "--state-dir")?;
            Out::prepare(&d.join("report.json"), "last window's report")
        })
        .transpose()?;
    let listener = std::net::TcpListener::bind(args.listen).map_err(|e| {
        fail(
            Code::Environment,
            format!("cannot listen on {}: {e}", args.listen),
        )
    })?;
    let shared = Arc::new(Shared {
        state: Mutex::new(Published {
            metrics: Exposition::default(),
            live: Live::default(),
            targets: Vec::new(),
            pprof: None,
            report_json: None,
            heartbeat: Instant::now(),
            tracing: false,
            failed: None,
            first_end: Instant::now() + args.window,
        }),
        cpu: cpu::CpuProfiles::new(args.frequency, args.max_locks, thresholds, verbose),
    });
    http::serve(listener, Arc::clone(&shared))
        .map_err(|e| fail(Code::Environment, format!("serving HTTP: {e}")))?;
    let stop = stop_flag()?;
    let mut agent = Agent {
        args,
        verbose,
        thresholds,
        matcher,
        shared: Arc::clone(&shared),
        detaching: None,
        state,
    };
    let done = agent.run(&stop);
    if let Err(e) = &done
        && let Ok(mut p) = shared.state.lock()
    {
        p.failed = Some(crate::exit::message(e));
    }
    done.map(|()| Code::Ok)
}

struct Agent<'a> {
    args: &'a AgentArgs,
    verbose: bool,
    thresholds: model::Thresholds,
    matcher: Matcher,
    shared: Arc<Shared>,
    /// The last window's kernel side, being detached.
    detaching: Option<Detach>,
    /// Where the last window's report is kept (--state-dir).
    state: Option<Out>,
}

/// What a session of the agent's is for.
enum SessionKind {
    /// One window's: sched or full mode, with exec pick-up when the
    /// matcher wants it.
    Window { sched_only: bool, watch_execs: bool },
    /// An on-request CPU profile's: the scheduler hooks beside the
    /// sampler (its caller sets the sampling).
    CpuProfile,
}

/// A session of the agent's: followed forks, no function probes (an agent
/// costs nothing on fast paths), open-ended target sets.
fn options(kind: SessionKind, max_locks: u32, verbose: bool) -> Options {
    // A CPU profile keeps no contention report: no futex-wait stacks to
    // unwind (they would share the ring with its samples).
    let (sched_only, watch_execs, unwind_rate) = match kind {
        SessionKind::Window {
            sched_only,
            watch_execs,
        } => (sched_only, watch_execs, 10),
        SessionKind::CpuProfile => (true, false, 0),
    };
    Options {
        sched_only,
        follow_forks: true,
        children: false,
        stack_every: 16,
        unwind_rate,
        max_locks,
        verbose,
        functions: FnOptions {
            uprobes: Vec::new(),
            alloc: false,
            go_mutex: false,
            fn_sites: false,
            allow_hot_probes: false,
            debug_dirs: Vec::new(),
            probe_budget: None,
        },
        program_stats: false,
        sampling: None,
        watch_execs,
        open_ended: true,
    }
}

impl Agent<'_> {
    fn options(&self) -> Options {
        options(
            SessionKind::Window {
                sched_only: self.args.mode == Mode::Sched,
                watch_execs: self.matcher.watches_execs(),
            },
            self.args.max_locks,
            self.verbose,
        )
    }

    /// A new window's session on `pids` (none: it counts nothing until
    /// it is handed the targets).
    fn open(&self, pids: &[u32], stop: &AtomicBool) -> Result<Session> {
        let pids = pids.iter().map(|&p| p as i32).collect();
        Session::start(self.options(), Targets::Pids(pids), stop)
    }

    fn run(&mut self, stop: &AtomicBool) -> Result<()> {
        say!(
            "tracer agent: tracing {} ({} mode, windows of {}); serving http://{}/metrics",
            crate::ui::esc(&self.matcher.describe()),
            match self.args.mode {
                Mode::Sched => "sched",
                Mode::Full => "full",
            },
            humantime::format_duration(self.args.window),
            self.args.listen
        );
        let mut cur = self.open(&self.matcher.scan(), stop)?;
        cur.begin(stop)?;
        let mut targets_full = 0u64;
        let mut last_live: Option<Instant> = None;
        loop {
            cur.turn()?;
            targets_full += self.adopt_execs(&mut cur, None);
            if last_live.is_none_or(|t| t.elapsed() >= LIVE_EVERY) {
                self.publish_live(&cur, targets_full);
                last_live = Some(Instant::now());
            }
            if stop.load(Ordering::Relaxed) {
                let end = SystemTime::now();
                let h = cur.harvest()?;
                self.publish_window(h, end)?;
                if let Some(d) = self.detaching.take() {
                    d.join()?;
                }
                say!("tracer agent: stopped; nothing is left attached");
                return Ok(());
            }
            // The next window loads while this one runs on: started one
            // load time early, a window lasts about --window.
            let lead = cur.probes.load_attach.min(self.args.window / 4);
            if cur.elapsed() + lead >= self.args.window {
                // The next window is loaded and attached with no targets,
                // then takes them over from this one at once.
                let mut next = self.open(&[], stop)?;
                cur.turn()?;
                targets_full += self.adopt_execs(&mut cur, None);
                let scan = self.matcher.scan();
                cur.hand_over(&mut next, &scan, stop)?;
                let end = SystemTime::now();
                let h = cur.harvest()?;
                cur = next;
                self.publish_window(h, end)?;
            }
            std::thread::sleep(TICK);
        }
    }

    /// The processes that exec'd and match join `s` (and `next`, a window
    /// about to take over); returns how many could not (target set full).
    fn adopt_execs(&self, s: &mut Session, next: Option<&mut Session>) -> u64 {
        let mut next = next;
        let mut full = 0;
        for e in s.take_execs() {
            if !self.matcher.exec_matches(&e) {
                continue;
            }
            log::info!("pid {} ({}) exec'd and matches: traced", e.tgid, e.comm);
            for s in std::iter::once(&mut *s).chain(next.as_deref_mut()) {
                if !s.adopt(e.tgid) && process::alive(e.tgid as i32) {
                    full += 1;
                }
            }
        }
        full
    }

    /// The gauges read live: targets, map fill, drops outside windows.
    fn publish_live(&self, s: &Session, targets_full: u64) {
        let targets: Vec<u32> = s
            .targets()
            .into_iter()
            .filter(|&p| process::alive(p as i32))
            .collect();
        let live = Live {
            targets: targets.len(),
            maps: collect::map_entries(&s.probes),
            execs_dropped: s.execs_dropped + targets_full,
            window_s: self.args.window.as_secs_f64(),
            load_attach_s: s.probes.load_attach.as_secs_f64(),
            mode: match self.args.mode {
                Mode::Sched => "sched",
                Mode::Full => "full",
            },
        };
        if let Ok(mut p) = self.shared.state.lock() {
            p.live = live;
            p.targets = targets;
            p.heartbeat = Instant::now();
            p.tracing = true;
        }
    }

    /// One window's report, built and published; its kernel side detaches
    /// meanwhile (joined at the next window).
    fn publish_window(&mut self, h: Harvest, end: SystemTime) -> Result<()> {
        let mode = match self.args.mode {
            Mode::Full => model::Mode::Full,
            Mode::Sched => model::Mode::Sched,
        };
        let meta = meta_of(&h, self.thresholds, mode, self.args.max_locks);
        let report = crate::analyze::build::build(
            &h.snap,
            &h.procs,
            &mut Symbols::with_debug_dirs(&[]),
            meta,
        );
        let json = serde_json::to_string_pretty(&report).context("serializing the report")?;
        let pprof = report::pprof::render(&report, false);
        if let Some(out) = &self.state {
            out.write_str(&json)?;
        }
        let n = self.shared.state.lock().map_or(0, |mut p| {
            p.metrics.add(&report, end, self.args.top_k, |pid| {
                process::alive(pid as i32)
            });
            p.pprof = Some(Arc::new(pprof));
            p.report_json = Some(Arc::new(json));
            p.heartbeat = Instant::now();
            p.metrics.windows()
        });
        say!(
            "tracer agent: window {n} ({:.1} s, {} processes): {}",
            report.duration_s,
            report.targets.len(),
            crate::ui::esc(&report.verdict.text)
        );
        if let Some(d) = self.detaching.replace(h.detach) {
            d.join()?;
        }
        // The window's unwinders and symbolizer are gone: so are the
        // binaries only they held.
        drop(h.snap);
        let mapped = crate::target::elf::evict_unused();
        log::debug!("{mapped} binaries still mapped");
        Ok(())
    }
}

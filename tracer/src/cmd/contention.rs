//! `tracer contention`: check the outputs, start or find the target, run a
//! tracing session until the end (duration, Ctrl-C/SIGTERM/SIGHUP, or
//! target exit), stop what was launched, build and write the report.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};

use crate::{
    analyze::build::{FnMeta, RunMeta},
    cli::{ContentionArgs, Mode},
    exit::{Code, fail},
    kernel::attach::{LoadOptions, Probes},
    kernel::preflight,
    kernel::session::Session,
    kernel::uprobes::{self, FnProbes},
    output::Out,
    progress::Progress,
    report::{self, model},
    say,
    target::process::{self, Launched, ProcessInfo},
    target::symbolize::Symbols,
    ui,
};

/// Runs `tracer contention`; the code is Ok, or Incomplete when a run lost
/// data that can change its verdict (the report is written either way).
pub fn run(args: &ContentionArgs, verbose: bool) -> Result<Code> {
    let thresholds = thresholds(args)?;
    let runs = args.repeat.max(1);
    let outputs: Vec<Outputs> = (1..=runs)
        .map(|k| Outputs::new(args, (runs > 1).then_some(k)))
        .collect::<Result<_>>()?;
    if runs == 1 {
        let report = run_once(args, verbose, thresholds, &outputs[0], true)?;
        return Ok(code_of(&report));
    }
    let mut reports = Vec::new();
    for (k, out) in (1..).zip(&outputs) {
        say!("tracer: run {k} of {runs}");
        let report = run_once(args, verbose, thresholds, out, false)?;
        ui::print(&format!("run {k}: {}\n", ui::esc(&report.verdict.text)))?;
        reports.push(report);
        if stop_flag()?.load(Ordering::Relaxed) {
            say!("tracer: interrupted after run {k}");
            break;
        }
    }
    ui::print(&ui::esc_text(&repeat_table(&reports)))?;
    Ok(reports
        .iter()
        .map(code_of)
        .max_by_key(|c| *c as i32)
        .unwrap_or(Code::Ok))
}

fn code_of(r: &model::Report) -> Code {
    if r.verdict.incomplete.is_some() {
        Code::Incomplete
    } else {
        Code::Ok
    }
}

/// The decision thresholds, checked: consider strictly below recommend.
fn thresholds(args: &ContentionArgs) -> Result<model::Thresholds> {
    let t = model::Thresholds {
        consider_at: args.consider_at,
        recommend_at: args.recommend_at,
    };
    if !(t.consider_at >= 0.0 && t.consider_at < t.recommend_at) {
        return Err(fail(
            Code::Usage,
            format!(
                "--consider-at ({}) must be at least 0 and below --recommend-at ({})",
                t.consider_at, t.recommend_at
            ),
        ));
    }
    Ok(t)
}

/// Set by SIGINT, SIGTERM or SIGHUP (a closed SSH session must still get
/// its report and JSON); registered once per process, so Ctrl-C also ends
/// a series of --repeat runs.
fn stop_flag() -> Result<Arc<AtomicBool>> {
    static STOP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    if let Some(s) = STOP.get() {
        return Ok(Arc::clone(s));
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    Ok(Arc::clone(STOP.get_or_init(|| stop)))
}

/// `run.json` → `run-3.json` for run 3 (`run.html` → `run-3.html`).
fn numbered(path: &Path, k: usize) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| "json".into());
    path.with_file_name(format!("{stem}-{k}.{ext}"))
}

/// Where a run's report goes, checked before anything is traced.
struct Outputs {
    json: Option<Out>,
    html: Option<Out>,
    /// The HTML page also draws the waits that are not locks.
    all_waits: bool,
}

impl Outputs {
    /// The destinations of run `k` of a series (numbered files), or of the
    /// only run.
    fn new(args: &ContentionArgs, k: Option<usize>) -> Result<Self> {
        let stdout = |p: &Option<PathBuf>| p.as_deref().is_some_and(|p| p.as_os_str() == "-");
        if stdout(&args.json) && stdout(&args.html) {
            return Err(fail(
                Code::Usage,
                "only one of --json and --html can go to stdout (-)",
            ));
        }
        let prepare = |p: &Option<PathBuf>, what| -> Result<Option<Out>> {
            p.as_deref()
                .map(|p| match k {
                    Some(k) if p.as_os_str() != "-" => Out::prepare(&numbered(p, k), what),
                    _ => Out::prepare(p, what),
                })
                .transpose()
        };
        Ok(Self {
            json: prepare(&args.json, "JSON report")?,
            html: prepare(&args.html, "HTML page")?,
            all_waits: args.all_waits,
        })
    }

    /// The text report goes to stderr when stdout carries a file format.
    fn text_to_stderr(&self) -> bool {
        [&self.json, &self.html]
            .into_iter()
            .any(|d| d.as_ref().is_some_and(Out::is_stdout))
    }

    /// Writes the text report and every file; one failure does not stop
    /// the others, and the first is returned.
    fn write(&self, report: &model::Report, text: Option<String>) -> Result<()> {
        let mut first: Option<anyhow::Error> = None;
        let mut keep = |r: Result<()>| {
            if let Err(e) = r {
                if first.is_some() {
                    say!("tracer: {}", crate::exit::message(&e));
                } else {
                    first = Some(e);
                }
            }
        };
        if let Some(text) = text {
            let text = ui::esc_text(&text);
            if self.text_to_stderr() {
                use std::io::Write as _;
                let _ = std::io::stderr().write_all(text.as_bytes());
            } else {
                keep(ui::print(&text));
            }
        }
        if let Some(d) = &self.json {
            keep(report::json::write(report, d).map(|()| {
                if !d.is_stdout() {
                    say!("tracer: JSON report written to {}", d.display());
                }
            }));
        }
        if let Some(d) = &self.html {
            keep(
                d.write_str(&report::html::render(report, self.all_waits))
                    .map(|()| {
                        if !d.is_stdout() {
                            say!("tracer: HTML report written to {}", d.display());
                        }
                    }),
            );
        }
        first.map_or(Ok(()), Err)
    }
}

/// Statistics over repeated runs, per entity and metric (the values
/// `tracer compare` compares).
fn repeat_table(reports: &[model::Report]) -> String {
    use std::fmt::Write as _;
    let per_run: Vec<_> = reports.iter().map(crate::compare::run_metrics).collect();
    let mut keys: Vec<(String, String)> = per_run
        .iter()
        .flat_map(|m| m.values.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\nREPEATED RUNS ({} runs): per metric over the runs; variance low < 5% CV ≤ moderate ≤ 15% < high",
        reports.len()
    );
    let _ = writeln!(
        o,
        "  {:<40} {:<18} {:>4} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6}  VARIANCE",
        "ENTITY", "METRIC", "RUNS", "MEAN", "MEDIAN", "STDDEV", "MIN", "MAX", "P95", "P99", "CV"
    );
    let fmt = crate::compare::render::value;
    for key in keys {
        let values: Vec<f64> = per_run
            .iter()
            .filter_map(|m| m.values.get(&key).copied())
            .collect();
        let s = crate::compare::stats::summarize(&values);
        let m = key.1.as_str();
        let entity: String = key.0.chars().take(40).collect();
        let _ = writeln!(
            o,
            "  {:<40} {:<18} {:>4} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6}  {}",
            entity,
            m,
            s.runs,
            fmt(m, s.mean),
            fmt(m, s.median),
            fmt(m, s.stddev),
            fmt(m, s.min),
            fmt(m, s.max),
            fmt(m, s.p95),
            fmt(m, s.p99),
            s.cv.map_or("-".into(), |c| format!("{:.1}%", 100.0 * c)),
            s.variance
        );
    }
    o
}

fn run_once(
    args: &ContentionArgs,
    verbose: bool,
    thresholds: model::Thresholds,
    out: &Outputs,
    print_report: bool,
) -> Result<model::Report> {
    preflight::privileges()?;
    process::check_pids(&args.pid)?;
    let stop = stop_flag()?;

    // Forks are followed with --pid too (a server forking its workers).
    let follow = !args.no_follow;
    let mut launched = if args.command.is_empty() {
        None
    } else {
        Some(Launched::spawn(&args.command, out.text_to_stderr())?)
    };
    let roots: Vec<u32> = match &launched {
        Some(l) => vec![l.pid as u32],
        None => args.pid.iter().map(|&p| p as u32).collect(),
    };
    let sched_only = args.mode == Mode::Sched;
    let opts = LoadOptions {
        sched_only,
        follow_forks: follow,
        first_target: roots.first().copied(),
        single: roots.len() == 1 && !args.children,
        stack_every: args.stack_every,
        unwind_rate: if sched_only { 0 } else { args.unwind_rate },
        max_locks: args.max_locks,
        verbose,
    };
    let mut session = Session::start(&opts, &roots, sched_only, follow)?;
    for &pid in &args.pid {
        if !preflight::alive(pid) {
            return Err(fail(
                Code::Target,
                format!("pid {pid} exited before tracing began"),
            ));
        }
    }
    if args.children && !session.adopt_descendants() {
        say!(
            "tracer: the target set is full ({} processes): some of the target's children are not traced (UNTRACED in the report)",
            tracer_common::limits::TARGETS
        );
    }
    let mut fns = FnSetup::new(args, &roots, launched.is_none(), &mut session.probes, &stop)?;
    // The children taken (--children) get the probes before tracing
    // starts, as the roots do.
    if let Some(f) = fns.probes.as_mut() {
        f.follow(&session.targets(), &mut session.probes);
    }
    // Kept open while tracing: the kernel counts run time while any such
    // fd is open.
    let _stats_fd = if args.program_stats {
        Some(
            aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| {
                fail(
                    Code::Environment,
                    format!("the kernel refused BPF run-time statistics: {e}"),
                )
            })?,
        )
    } else {
        None
    };
    let start_time = SystemTime::now();
    let t0 = Instant::now();
    if let Some(l) = launched.as_mut() {
        l.release()?;
        // Its maps are the tracer's until it execs and libc is mapped.
        process::wait_exec(l.pid as u32, Duration::from_millis(500));
        session.watch(l.pid as u32);
        fns.after_exec(args, l.pid as u32, &mut session.probes, &stop)?;
    }
    session.set_fn_ids(fns.ids());
    say!(
        "tracer: tracing {} {} ({} ms to load and attach)",
        describe(args, launched.as_ref()),
        until(args.duration),
        session.probes.load_attach.as_millis()
    );

    let reason = trace(
        args,
        &mut session,
        &mut fns.probes,
        launched.as_mut(),
        &stop,
        t0,
    )?;
    let duration = t0.elapsed();
    let t_report = Instant::now();
    if let Some(f) = fns.probes.as_mut() {
        f.finish(&mut session.probes);
    }
    let snap = session.harvest()?;
    let hooks: Vec<model::Hook> = session
        .probes
        .hooks
        .iter()
        .map(|h| model::Hook {
            name: h.name.clone(),
            attached: h.attached,
            note: h.note.clone(),
        })
        .collect();
    let load_attach_ms = session.probes.load_attach.as_secs_f64() * 1e3;
    if args.program_stats {
        print_program_stats(&session.probes);
    }
    let all_targets = session.targets();
    let untraced: BTreeMap<u32, Vec<u32>> =
        roots.iter().map(|&r| (r, session.untraced(r))).collect();
    let Session { probes, procs, .. } = session;
    // Detach now, in the background: nothing below needs the kernel side,
    // and each tracepoint's unregistration waits for an RCU grace period
    // (≈ 70 ms each here), so the report is built meanwhile. Joined before
    // returning: nothing is left attached when the tracer exits.
    let detach = std::thread::spawn(move || {
        let t = Instant::now();
        drop(probes);
        log::debug!("detached in {} ms", t.elapsed().as_millis());
    });
    if let Some(l) = launched.as_mut() {
        l.terminate();
    }
    log::info!("stopped: {reason}");

    let meta = RunMeta {
        tracer_args: std::env::args().collect(),
        targets: targets(&roots, &all_targets, &procs, &untraced, launched.as_ref()),
        start_time: humantime::format_rfc3339_seconds(start_time).to_string(),
        duration_s: duration.as_secs_f64(),
        load_attach_ms,
        hooks,
        thresholds,
        stack_every: args.stack_every,
        unwind_rate: args.unwind_rate,
        functions: fns.probes.as_ref().map(|f| fn_meta(f, args.probe_budget)),
        mode: args.mode.name().to_string(),
        max_locks: args.max_locks,
    };
    let report = crate::analyze::build::build(
        &snap,
        &procs,
        &mut Symbols::with_debug_dirs(&args.debug_dir),
        meta,
    );
    log::debug!(
        "report built in {} ms ({} stacks)",
        t_report.elapsed().as_millis(),
        snap.stacks.len()
    );
    let text = print_report.then(|| {
        report::text::render(
            &report,
            report::text::Options {
                top: args.top,
                all_waits: args.all_waits,
                per_process: args.per_process,
            },
        )
    });
    let written = out.write(&report, text);
    detach
        .join()
        .map_err(|_| fail(Code::Internal, "detaching the probes panicked"))?;
    log_own_cost();
    written.map(|()| report)
}

/// The tracing loop: drives time only (the event ring has its own reader);
/// returns why it ended.
fn trace(
    args: &ContentionArgs,
    session: &mut Session,
    fns: &mut Option<FnProbes>,
    mut launched: Option<&mut Launched>,
    stop: &AtomicBool,
    t0: Instant,
) -> Result<&'static str> {
    let mut progress = Progress::new(args.quiet);
    let reason = loop {
        session.tick();
        if let Some(f) = fns.as_mut() {
            f.follow(&session.targets(), &mut session.probes);
            f.tick(&mut session.probes)?;
        }
        if let Some(p) = progress.as_mut() {
            p.tick(
                &session.probes,
                &session.procs,
                session.retired_waits(),
                t0.elapsed(),
            );
        }
        if stop.load(Ordering::Relaxed) {
            break "interrupted";
        }
        if args.duration.is_some_and(|d| t0.elapsed() >= d) {
            break "duration reached";
        }
        let gone = match launched.as_deref_mut() {
            Some(l) => !l.running(),
            None => args.pid.iter().all(|&p| !preflight::alive(p)),
        };
        if gone {
            break "target exited";
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(reason)
}

/// "`cmd` (pid N)" or "pid N,M" for the tracing line.
fn describe(args: &ContentionArgs, launched: Option<&Launched>) -> String {
    match launched {
        Some(l) => format!("`{}` (pid {})", ui::esc(&args.command.join(" ")), l.pid),
        None => format!(
            "pid {}",
            args.pid
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn until(duration: Option<Duration>) -> String {
    match duration {
        Some(d) => format!(
            "for {:.1} s (or until Ctrl-C or the target exits)",
            d.as_secs_f64()
        ),
        None => "until Ctrl-C or the target exits".to_string(),
    }
}

/// The report's targets: the roots, then every followed process.
fn targets(
    roots: &[u32],
    all: &[u32],
    procs: &std::collections::BTreeMap<u32, ProcessInfo>,
    untraced: &BTreeMap<u32, Vec<u32>>,
    launched: Option<&Launched>,
) -> Vec<model::Target> {
    let runtime = |pid: u32| procs.get(&pid).and_then(|p| p.runtime).map(String::from);
    let program = |pid: u32| {
        procs
            .get(&pid)
            .and_then(|p| p.exe.as_ref())
            .map(|e| e.display().to_string())
    };
    let command_line = |pid: u32| {
        procs
            .get(&pid)
            .map(|p| p.cmdline.clone())
            .unwrap_or_default()
    };
    let exit_of = |pid: u32| {
        launched
            .filter(|l| l.pid as u32 == pid)
            .and_then(Launched::describe_status)
    };
    let mut out: Vec<model::Target> = roots
        .iter()
        .map(|&pid| model::Target {
            pid,
            command_line: command_line(pid),
            followed: false,
            exit: exit_of(pid),
            runtime: runtime(pid),
            program: program(pid),
            untraced_children: untraced.get(&pid).cloned().unwrap_or_default(),
        })
        .collect();
    for &pid in all.iter().filter(|p| !roots.contains(p)) {
        out.push(model::Target {
            pid,
            command_line: command_line(pid),
            followed: true,
            exit: None,
            runtime: runtime(pid),
            program: program(pid),
            untraced_children: Vec::new(),
        });
    }
    out
}

fn fn_meta(f: &FnProbes, budget_pct: Option<f64>) -> FnMeta {
    FnMeta {
        planned: f
            .planned
            .iter()
            .map(|p| {
                (
                    p.id,
                    p.func.name.clone(),
                    p.func.binary.display().to_string(),
                    p.func.offset,
                    p.role.to_string(),
                )
            })
            .collect(),
        per_call_ns: f.cost_ns,
        go_per_call_ns: f.go_cost_ns,
        budget_pct,
        attached_s: f.on_time.as_secs_f64(),
        windows: f.windows,
        target_cpu_ns: f.cpu_total,
        detached: f
            .detached
            .iter()
            .map(|d| crate::analyze::build::DetachedFn {
                id: d.id,
                attached_s: d.attached.as_secs_f64(),
                share: d.share,
                calls_per_s: d.calls_per_s,
            })
            .collect(),
    }
}

/// The function probes (--uprobe, --alloc): planned and calibrated before
/// tracing, attached at once for a running target and after exec for a
/// launched command.
struct FnSetup {
    probes: Option<FnProbes>,
    wanted: bool,
    roots: Vec<u32>,
    /// Per-hit costs measured so far (entry + return, entry only).
    costs: Costs,
}

/// What one probe hit costs, per kind of probe, once calibrated.
#[derive(Default)]
struct Costs {
    pair: Option<f64>,
    go: Option<f64>,
}

impl FnSetup {
    fn new(
        args: &ContentionArgs,
        roots: &[u32],
        running: bool,
        probes: &mut Probes,
        stop: &AtomicBool,
    ) -> Result<Self> {
        // Asked for (--uprobe, --alloc), or Go's slow paths if the target
        // turns out to be a Go program.
        let wanted = !args.uprobes.is_empty() || args.alloc || !args.no_go_mutex;
        let mut me = Self {
            probes: None,
            wanted,
            roots: roots.to_vec(),
            costs: Costs::default(),
        };
        if !wanted {
            return Ok(me);
        }
        // A running target's functions resolve now, so a bad spec fails
        // before anything else happens.
        if running {
            let planned = plan_in(args, roots[0], stop)?;
            me.probes = start_fn_probes(args, planned, &me.roots, &mut me.costs, probes)?;
        } else {
            // A launched command waits at the gate while the probes it
            // will need are calibrated, so tracing starts with them
            // attached and the calibration's calls do not compete with it.
            if !args.uprobes.is_empty() || args.alloc {
                me.costs.pair = Some(uprobes::calibrate(probes, "uprobe")?);
            }
            let go = !args.no_go_mutex
                && crate::target::process::which(&args.command[0])
                    .is_some_and(|exe| crate::target::process::runtime_of(&exe) == Some("go"));
            if go {
                me.costs.go = Some(uprobes::calibrate(probes, uprobes::GO_ROLE)?);
            }
        }
        Ok(me)
    }

    /// Functions resolve in a launched command's own binaries: after exec,
    /// once the dynamic loader has mapped libc.
    fn after_exec(
        &mut self,
        args: &ContentionArgs,
        pid: u32,
        probes: &mut Probes,
        stop: &AtomicBool,
    ) -> Result<()> {
        if self.wanted && self.probes.is_none() {
            let planned = plan_in(args, pid, stop)?;
            self.probes = start_fn_probes(args, planned, &self.roots, &mut self.costs, probes)?;
        }
        Ok(())
    }

    fn ids(&self) -> Vec<u32> {
        self.probes
            .as_ref()
            .map(|f| f.planned.iter().map(|p| p.id).collect())
            .unwrap_or_default()
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

/// The tracer's own CPU time and peak RSS (not its children's), for
/// `cargo xtask bench` (TRACER_LOG=tracer::contention=debug) and -v.
fn log_own_cost() {
    // SAFETY: getrusage fills a zeroed struct we own.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    // VmHWM, not ru_maxrss: exec carries the parent's peak into ru_maxrss.
    let hwm_kb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .unwrap_or(ru.ru_maxrss as f64);
    log::debug!(
        "own cost: cpu {:.3} s, peak rss {:.1} MB",
        secs(ru.ru_utime) + secs(ru.ru_stime),
        hwm_kb / 1024.0
    );
}

/// Resolves --uprobe and --alloc in a target's binaries.
fn plan_in(args: &ContentionArgs, pid: u32, stop: &AtomicBool) -> Result<Vec<uprobes::Planned>> {
    let mut info = ProcessInfo {
        pid,
        ..Default::default()
    };
    info.refresh();
    uprobes::plan(args, &info, stop)
}

/// Calibrates what a hit costs for the roles planned (unless it was
/// already), then attaches the planned function probes to the targets.
/// None when nothing is planned.
fn start_fn_probes(
    args: &ContentionArgs,
    planned: Vec<uprobes::Planned>,
    roots: &[u32],
    known: &mut Costs,
    probes: &mut Probes,
) -> Result<Option<FnProbes>> {
    if planned.is_empty() {
        return Ok(None);
    }
    let (go, pairs): (Vec<&uprobes::Planned>, Vec<&uprobes::Planned>) =
        planned.iter().partition(|p| p.role == uprobes::GO_ROLE);
    let mut costs = (0.0, 0.0);
    if !pairs.is_empty() {
        costs.0 = match known.pair {
            Some(c) => c,
            None => *known.pair.insert(uprobes::calibrate(probes, "uprobe")?),
        };
        say!(
            "tracer: a probed function call (entry + return) costs ≈{} here (calibrated now)",
            report::units::human_ns(costs.0 as u64)
        );
        let names: Vec<&str> = pairs.iter().map(|p| p.func.name.as_str()).collect();
        say!(
            "tracer: probing {} function(s) (entry + return): {}{}",
            pairs.len(),
            names.iter().take(8).copied().collect::<Vec<_>>().join(", "),
            if names.len() > 8 { ", …" } else { "" }
        );
    }
    if !go.is_empty() {
        costs.1 = match known.go {
            Some(c) => c,
            None => *known
                .go
                .insert(uprobes::calibrate(probes, uprobes::GO_ROLE)?),
        };
        let names: Vec<&str> = go.iter().map(|p| p.func.name.as_str()).collect();
        say!(
            "tracer: a Go program: probing the entries of its lock slow paths ({}), ≈{} per contended entry (calibrated now; --no-go-mutex to skip)",
            names.join(", "),
            report::units::human_ns(costs.1 as u64)
        );
    }
    if let Some(b) = args.probe_budget {
        say!("tracer: probe budget {b}% of the target's CPU time: probes are duty-cycled");
    }
    let mut f = FnProbes::new(planned, roots.to_vec(), costs, args.probe_budget);
    f.attach(probes)?;
    Ok(Some(f))
}

//! `tracer contention`: check the outputs, start or find the target, run a
//! tracing session until the end (duration, Ctrl-C/SIGTERM/SIGHUP, or
//! target exit), stop what was launched, build and write the report.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::{
    analyze::build::{FnMeta, ProbedFn, RunMeta},
    cli::{ContentionArgs, Mode},
    exit::{Code, fail},
    kernel::{
        session::{Harvest, Options as SessionOptions, Session, Targets, Until},
        uprobes::{FnOptions, FnProbes},
    },
    output::Out,
    progress::Progress,
    report::{self, model},
    say,
    target::{process::Launched, symbolize::Symbols},
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
pub(crate) fn thresholds(args: &ContentionArgs) -> Result<model::Thresholds> {
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
pub(crate) fn stop_flag() -> Result<Arc<AtomicBool>> {
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
pub(crate) fn numbered(path: &Path, k: usize) -> PathBuf {
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

/// One tracing session and its report: trace, harvest, build, write.
fn run_once(
    args: &ContentionArgs,
    verbose: bool,
    thresholds: model::Thresholds,
    out: &Outputs,
    print_report: bool,
) -> Result<model::Report> {
    let stop = stop_flag()?;
    let mut session = Session::start(
        session_options(args, verbose),
        targets_of(args, out.text_to_stderr()),
        &stop,
    )?;
    session.begin(&stop)?;
    say!(
        "tracer: tracing {} {} ({} ms to load and attach)",
        describe(args, session.launched()),
        until(args.duration),
        session.probes.load_attach.as_millis()
    );
    let mut progress = Progress::new(args.quiet);
    let until = Until {
        duration: args.duration,
        stop: &stop,
    };
    let end = session.trace(&until, |s| {
        if let Some(p) = progress.as_mut() {
            p.tick(&s.probes, s.procs(), s.retired_waits(), s.elapsed());
        }
    })?;
    let t_report = Instant::now();
    let harvest = session.harvest()?;
    log::info!("stopped: {}", end.as_str());
    let report = crate::analyze::build::build(
        &harvest.snap,
        &harvest.procs,
        &mut Symbols::with_debug_dirs(&args.debug_dir),
        run_meta(args, thresholds, &harvest),
    );
    log::debug!(
        "report built in {} ms ({} stacks, {} binaries mapped)",
        t_report.elapsed().as_millis(),
        harvest.snap.stacks.len(),
        crate::target::elf::cached()
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
    harvest.detach.join()?;
    log_own_cost();
    written.map(|()| report)
}

/// The session's options, from the command line.
pub(crate) fn session_options(args: &ContentionArgs, verbose: bool) -> SessionOptions {
    SessionOptions {
        sched_only: args.mode == Mode::Sched,
        // Forks are followed with --pid too (a server forking its workers).
        follow_forks: !args.no_follow,
        children: args.children,
        stack_every: args.stack_every,
        unwind_rate: args.unwind_rate,
        max_locks: args.max_locks,
        verbose,
        functions: FnOptions {
            uprobes: args.uprobes.clone(),
            alloc: args.alloc,
            go_mutex: !args.no_go_mutex,
            fn_sites: args.fn_sites,
            allow_hot_probes: args.allow_hot_probes,
            debug_dirs: args.debug_dir.clone(),
            probe_budget: args.probe_budget,
        },
        program_stats: args.program_stats,
        sampling: None,
        watch_execs: false,
        open_ended: false,
    }
}

/// The pids given, or the command to launch.
pub(crate) fn targets_of(args: &ContentionArgs, stdout_to_stderr: bool) -> Targets {
    if args.command.is_empty() {
        Targets::Pids(args.pid.clone())
    } else {
        Targets::Command {
            argv: args.command.clone(),
            stdout_to_stderr,
        }
    }
}

/// What the report says about the run itself.
pub(crate) fn run_meta(
    args: &ContentionArgs,
    thresholds: model::Thresholds,
    h: &Harvest,
) -> RunMeta {
    let mode = match args.mode {
        Mode::Full => crate::report::model::Mode::Full,
        Mode::Sched => crate::report::model::Mode::Sched,
    };
    RunMeta {
        stack_every: args.stack_every,
        unwind_rate: args.unwind_rate,
        functions: h.functions.as_ref().map(|f| fn_meta(f, args.probe_budget)),
        ..meta_of(h, thresholds, mode, args.max_locks)
    }
}

/// The run's description from its harvest (targets, times, hooks) and how
/// it traced; no function probes, and the default call-site sampling.
pub(crate) fn meta_of(
    h: &Harvest,
    thresholds: model::Thresholds,
    mode: crate::report::model::Mode,
    max_locks: u32,
) -> RunMeta {
    RunMeta {
        tracer_args: std::env::args().collect(),
        targets: targets(h),
        start_time: humantime::format_rfc3339_seconds(h.start_time).to_string(),
        duration_s: h.duration.as_secs_f64(),
        load_attach_ms: h.load_attach.as_secs_f64() * 1e3,
        hooks: h
            .hooks
            .iter()
            .map(|k| model::Hook {
                name: k.name.clone(),
                attached: k.attached,
                note: k.note.clone(),
            })
            .collect(),
        thresholds,
        stack_every: 16,
        unwind_rate: 10,
        functions: None,
        mode,
        max_locks,
    }
}

/// "`cmd` (pid N)" or "pid N,M" for the tracing line.
pub(crate) fn describe(args: &ContentionArgs, launched: Option<&Launched>) -> String {
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

pub(crate) fn until(duration: Option<Duration>) -> String {
    match duration {
        Some(d) => format!(
            "for {:.1} s (or until Ctrl-C or the target exits)",
            d.as_secs_f64()
        ),
        None => "until Ctrl-C or the target exits".to_string(),
    }
}

/// The report's targets: the roots, then every followed process.
pub(crate) fn targets(h: &Harvest) -> Vec<model::Target> {
    let (roots, all, procs, untraced) = (&h.roots, &h.all_targets, &h.procs, &h.untraced);
    let launched = h.launched.as_ref();
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
            .map(|p| ProbedFn {
                id: p.id,
                name: p.func.name.clone(),
                binary: p.func.binary.display().to_string(),
                offset: p.func.offset,
                role: p.role,
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

/// The tracer's own CPU time and peak RSS (not its children's), for
/// `cargo xtask bench` (TRACER_LOG=tracer::cmd::contention=debug) and -v.
pub(crate) fn log_own_cost() {
    // SAFETY: getrusage fills a zeroed struct we own.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    // VmHWM, not ru_maxrss: exec carries the parent's peak into ru_maxrss.
    let hwm_kb = crate::target::proc::own_status()
        .and_then(|s| s.vmhwm_kb)
        .map_or(ru.ru_maxrss as f64, |kb| kb as f64);
    log::debug!(
        "own cost: cpu {:.3} s, peak rss {:.1} MB",
        secs(ru.ru_utime) + secs(ru.ru_stime),
        hwm_kb / 1024.0
    );
}

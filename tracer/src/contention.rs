//! `tracer contention`: start or find the target, attach, wait for the end
//! (duration, Ctrl-C/SIGTERM, or target exit), collect, report.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};

use crate::{
    attach::{LoadOptions, Probes},
    cli::{ContentionArgs, Mode},
    collect,
    exit::{Code, fail},
    funcs::{self, FnProbes},
    preflight,
    progress::Progress,
    report::{
        self,
        build::{FnMeta, RunMeta},
        model,
    },
    symbolize::Symbols,
    target::{self, Launched, ProcessInfo},
    unwind::Unwinding,
};

/// /proc is re-read this often at first (to catch a short-lived command's
/// maps after exec), then every second.
const FAST_REFRESH: Duration = Duration::from_millis(50);
const SLOW_REFRESH: Duration = Duration::from_secs(1);
const FAST_PERIOD: Duration = Duration::from_secs(1);

pub fn run(args: &ContentionArgs, verbose: bool) -> Result<()> {
    if args.repeat <= 1 {
        let out = Outputs {
            json: args.json.as_deref(),
            html: args.html.as_deref(),
        };
        return run_once(args, verbose, out, true).map(drop);
    }
    let mut reports = Vec::new();
    for k in 1..=args.repeat {
        eprintln!("tracer: run {k} of {}", args.repeat);
        let json = args.json.as_deref().map(|p| numbered(p, k));
        let html = args.html.as_deref().map(|p| numbered(p, k));
        let out = Outputs {
            json: json.as_deref(),
            html: html.as_deref(),
        };
        let report = run_once(args, verbose, out, false)?;
        println!("run {k}: {}", report.verdict.text);
        reports.push(report);
        if stop_flag()?.load(Ordering::Relaxed) {
            eprintln!("tracer: interrupted after run {k}");
            break;
        }
    }
    print!("{}", repeat_table(&reports));
    Ok(())
}

/// Set by SIGINT or SIGTERM; registered once per process, so Ctrl-C also
/// ends a series of --repeat runs.
fn stop_flag() -> Result<Arc<AtomicBool>> {
    static STOP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    if let Some(s) = STOP.get() {
        return Ok(Arc::clone(s));
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    Ok(Arc::clone(STOP.get_or_init(|| stop)))
}

/// `run.json` → `run-3.json` for run 3 (`run.html` → `run-3.html`).
fn numbered(path: &std::path::Path, k: usize) -> std::path::PathBuf {
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

/// Where a run's report also goes.
#[derive(Clone, Copy)]
struct Outputs<'a> {
    json: Option<&'a std::path::Path>,
    html: Option<&'a std::path::Path>,
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
    out: Outputs<'_>,
    print_report: bool,
) -> Result<model::Report> {
    let thresholds = model::Thresholds {
        consider_at: args.consider_at,
        recommend_at: args.recommend_at,
    };
    if !(thresholds.consider_at >= 0.0 && thresholds.recommend_at >= thresholds.consider_at) {
        return Err(fail(
            Code::Usage,
            format!(
                "--consider-at ({}) must be at least 0 and at most --recommend-at ({})",
                thresholds.consider_at, thresholds.recommend_at
            ),
        ));
    }
    preflight::privileges()?;
    target::check_pids(&args.pid)?;

    let stop = stop_flag()?;

    let follow = !args.command.is_empty() && !args.no_follow;
    let mut launched = if args.command.is_empty() {
        None
    } else {
        Some(Launched::spawn(&args.command)?)
    };
    let roots: Vec<u32> = match &launched {
        Some(l) => vec![l.pid as u32],
        None => args.pid.iter().map(|&p| p as u32).collect(),
    };

    // The first target is checked with a compare before any map lookup; with
    // one target and no following it is the only check.
    let only = (roots.len() == 1).then(|| roots[0]);
    let sched_only = args.mode == Mode::Sched;
    let mut probes = Probes::load(&LoadOptions {
        sched_only,
        follow_forks: follow,
        only_target: only,
        stack_every: args.stack_every,
        unwind_rate: if sched_only { 0 } else { args.unwind_rate },
        verbose,
    })?;
    let mut unwinding = Unwinding::new(&mut probes)?;
    for &pid in &roots {
        probes.add_target(pid)?;
    }
    probes.attach(sched_only, follow)?;
    for &pid in &args.pid {
        if !preflight::alive(pid) {
            return Err(fail(
                Code::Target,
                format!("pid {pid} exited before tracing began"),
            ));
        }
    }
    let want_fns = !args.uprobes.is_empty() || args.alloc;
    // A running target's functions resolve now, so a bad spec fails before
    // anything else happens.
    let mut planned = None;
    if want_fns && launched.is_none() {
        planned = Some(plan_in(args, roots[0])?);
    }
    let cost_ns = if want_fns {
        let c = funcs::calibrate(&mut probes)?;
        eprintln!(
            "tracer: a probed function call (entry + return) costs ≈{} here (calibrated now)",
            report::text::human_ns(c as u64)
        );
        c
    } else {
        0.0
    };
    let start_fns = |planned, probes: &mut Probes| {
        start_fn_probes(args, planned, &roots, cost_ns, probes).map(Some)
    };
    let mut fns: Option<FnProbes> = match planned.take() {
        Some(planned) => start_fns(planned, &mut probes)?,
        None => None,
    };
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
        if want_fns {
            // Functions resolve in the command's own binaries: after exec,
            // once the dynamic loader has mapped libc.
            target::wait_exec(l.pid as u32, Duration::from_millis(500));
            fns = start_fns(plan_in(args, roots[0])?, &mut probes)?;
        }
    }
    let what = match &launched {
        Some(l) => format!("`{}` (pid {})", args.command.join(" "), l.pid),
        None => format!(
            "pid {}",
            args.pid
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
    };
    let until = match args.duration {
        Some(d) => format!(
            "for {:.1} s (or until Ctrl-C or the target exits)",
            d.as_secs_f64()
        ),
        None => "until Ctrl-C or the target exits".to_string(),
    };
    eprintln!(
        "tracer: tracing {what} {until} ({} ms to load and attach)",
        probes.load_attach.as_millis()
    );

    let mut procs: BTreeMap<u32, ProcessInfo> = BTreeMap::new();
    let mut last_refresh = Instant::now() - SLOW_REFRESH;
    let mut progress = Progress::new(args.quiet);
    let reason = loop {
        let every = if t0.elapsed() < FAST_PERIOD {
            FAST_REFRESH
        } else {
            SLOW_REFRESH
        };
        if last_refresh.elapsed() >= every {
            refresh(&probes, &mut procs);
            last_refresh = Instant::now();
        }
        unwinding.drain(&mut procs);
        if let Some(f) = fns.as_mut() {
            f.tick(&mut probes)?;
        }
        if let Some(p) = progress.as_mut() {
            p.tick(&probes, &procs, t0.elapsed());
        }
        if stop.load(Ordering::Relaxed) {
            break "interrupted";
        }
        if args.duration.is_some_and(|d| t0.elapsed() >= d) {
            break "duration reached";
        }
        let gone = match launched.as_mut() {
            Some(l) => !l.running(),
            None => args.pid.iter().all(|&p| !preflight::alive(p)),
        };
        if gone {
            break "target exited";
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let duration = t0.elapsed();
    drop(progress);
    let t_report = Instant::now();
    if let Some(f) = fns.as_mut() {
        f.finish(&mut probes);
    }
    refresh(&probes, &mut procs);
    let mut snap = collect::snapshot(&probes).context("reading the kernel maps")?;
    unwinding.drain(&mut procs);
    snap.unwound = unwinding.take();
    snap.unwind_stats = unwinding.stats;
    let hooks: Vec<model::Hook> = probes
        .hooks
        .iter()
        .map(|h| model::Hook {
            name: h.name.clone(),
            attached: h.attached,
            note: h.note.clone(),
        })
        .collect();
    let load_attach_ms = probes.load_attach.as_secs_f64() * 1e3;
    if args.program_stats {
        print_program_stats(&probes);
    }
    let all_targets = probes.targets();
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

    let exit_of = |pid: u32| {
        launched
            .as_ref()
            .filter(|l| l.pid as u32 == pid)
            .and_then(|l| l.describe_status())
    };
    let mut targets: Vec<model::Target> = roots
        .iter()
        .map(|&pid| model::Target {
            pid,
            command_line: procs
                .get(&pid)
                .map(|p| p.cmdline.clone())
                .unwrap_or_default(),
            followed: false,
            exit: exit_of(pid),
        })
        .collect();
    for pid in all_targets.into_iter().filter(|p| !roots.contains(p)) {
        targets.push(model::Target {
            pid,
            command_line: procs
                .get(&pid)
                .map(|p| p.cmdline.clone())
                .unwrap_or_default(),
            followed: true,
            exit: None,
        });
    }
    let meta = RunMeta {
        tracer_args: std::env::args().collect(),
        targets,
        start_time: humantime::format_rfc3339_seconds(start_time).to_string(),
        duration_s: duration.as_secs_f64(),
        load_attach_ms,
        hooks,
        thresholds,
        stack_every: args.stack_every,
        unwind_rate: args.unwind_rate,
        functions: fns.as_ref().map(|f| FnMeta {
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
            budget_pct: args.probe_budget,
            attached_s: f.on_time.as_secs_f64(),
            windows: f.windows,
            target_cpu_ns: f.cpu_total,
        }),
        mode: args.mode.name().to_string(),
    };
    let report = report::build::build(&snap, &procs, &mut Symbols::new(), meta);
    log::debug!(
        "report built in {} ms ({} stacks)",
        t_report.elapsed().as_millis(),
        snap.stacks.len()
    );
    if print_report {
        print!("{}", report::text::render(&report, args.top));
    }
    let mut written = match out.json {
        Some(path) => report::json::write_atomic(&report, path).map(|()| {
            eprintln!("tracer: JSON report written to {}", path.display());
        }),
        None => Ok(()),
    };
    if let (Ok(()), Some(path)) = (&written, out.html) {
        written = std::fs::write(path, report::html::render(&report))
            .map(|()| eprintln!("tracer: HTML report written to {}", path.display()))
            .map_err(|e| {
                fail(
                    Code::Output,
                    format!("cannot write {}: {e}", path.display()),
                )
            });
    }
    detach
        .join()
        .map_err(|_| fail(Code::Internal, "detaching the probes panicked"))?;
    log_own_cost();
    written.map(|()| report)
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
    eprintln!("tracer: program stats (BPF_ENABLE_STATS): PROGRAM RUNS NS/RUN");
    for (name, runs, ns) in rows {
        eprintln!("tracer:   {name:<24} {runs:>12} {ns:>8.0}");
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
fn plan_in(args: &ContentionArgs, pid: u32) -> Result<Vec<funcs::Planned>> {
    let mut info = ProcessInfo {
        pid,
        ..Default::default()
    };
    info.refresh();
    funcs::plan(args, &info)
}

/// Attaches the planned function probes to the targets.
fn start_fn_probes(
    args: &ContentionArgs,
    planned: Vec<funcs::Planned>,
    roots: &[u32],
    cost_ns: f64,
    probes: &mut Probes,
) -> Result<FnProbes> {
    let names: Vec<&str> = planned.iter().map(|p| p.func.name.as_str()).collect();
    eprintln!(
        "tracer: probing {} function(s) (entry + return): {}{}",
        planned.len(),
        names.iter().take(8).copied().collect::<Vec<_>>().join(", "),
        if names.len() > 8 { ", …" } else { "" }
    );
    if let Some(b) = args.probe_budget {
        eprintln!("tracer: probe budget {b}% of the target's CPU time: probes are duty-cycled");
    }
    let mut f = FnProbes::new(planned, roots.to_vec(), cost_ns, args.probe_budget);
    f.attach(probes)?;
    Ok(f)
}

/// Re-reads /proc for every traced process (followed children included).
fn refresh(probes: &Probes, procs: &mut BTreeMap<u32, ProcessInfo>) {
    for pid in probes.targets() {
        procs
            .entry(pid)
            .or_insert_with(|| ProcessInfo {
                pid,
                ..Default::default()
            })
            .refresh();
    }
}

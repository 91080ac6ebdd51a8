//! `tracer profile`: a tracing session with on-CPU sampling (and, with
//! `--wall`, futex tracing as `tracer contention` does it), then the
//! profile: text, and the JSON and HTML files asked for.

use std::{path::Path, sync::atomic::Ordering, time::Instant};

use anyhow::Result;

use crate::{
    analyze::profile::ProfileMeta,
    cli::{Mode, ProfileArgs},
    cmd::contention as c,
    exit::Code,
    kernel::{
        sampling::SamplingOptions,
        session::{Harvest, Session, Until},
    },
    output::Out,
    progress::Progress,
    report::{self, profile::Profile},
    say,
    target::symbolize::Symbols,
    ui,
};

/// Runs `tracer profile`: Ok, or Incomplete when samples or waits were
/// lost in a way that can change the profile.
pub fn run(args: &ProfileArgs, verbose: bool) -> Result<Code> {
    let runs = args.trace.repeat.max(1);
    let outputs: Vec<Outputs> = (1..=runs)
        .map(|k| Outputs::new(args, (runs > 1).then_some(k)))
        .collect::<Result<_>>()?;
    let mut code = Code::Ok;
    for (k, out) in (1..).zip(&outputs) {
        if runs > 1 {
            say!("tracer: run {k} of {runs}");
        }
        let p = run_once(args, verbose, out)?;
        if p.incomplete.is_some() {
            code = Code::Incomplete;
        }
        if c::stop_flag()?.load(Ordering::Relaxed) && k < runs {
            say!("tracer: interrupted after run {k}");
            break;
        }
    }
    Ok(code)
}

struct Outputs {
    json: Option<Out>,
    html: Option<Out>,
}

impl Outputs {
    fn new(args: &ProfileArgs, k: Option<usize>) -> Result<Self> {
        let t = &args.trace;
        let stdout =
            |p: &Option<std::path::PathBuf>| p.as_deref().is_some_and(|p| p.as_os_str() == "-");
        if stdout(&t.json) && stdout(&t.html) {
            return Err(crate::exit::fail(
                Code::Usage,
                "only one of --json and --html can go to stdout (-)",
            ));
        }
        let prepare = |p: &Option<std::path::PathBuf>, what| -> Result<Option<Out>> {
            p.as_deref()
                .map(|p: &Path| match k {
                    Some(k) if p.as_os_str() != "-" => Out::prepare(&c::numbered(p, k), what),
                    _ => Out::prepare(p, what),
                })
                .transpose()
        };
        Ok(Self {
            json: prepare(&t.json, "JSON profile")?,
            html: prepare(&t.html, "HTML page")?,
        })
    }

    fn text_to_stderr(&self) -> bool {
        [&self.json, &self.html]
            .into_iter()
            .any(|d| d.as_ref().is_some_and(Out::is_stdout))
    }
}

fn run_once(args: &ProfileArgs, verbose: bool, out: &Outputs) -> Result<Profile> {
    let t = &args.trace;
    let thresholds = c::thresholds(t)?;
    let stop = c::stop_flag()?;
    let full = args.wall && t.mode == Mode::Full;
    let mut opts = c::session_options(t, verbose);
    // Without --wall only the scheduler hooks run beside the sampler (each
    // thread's exact CPU time); no futex syscall is traced.
    opts.sched_only = !full;
    if !args.wall {
        opts.functions.go_mutex = false;
        // No contention report is kept: no futex-wait stacks to unwind.
        opts.unwind_rate = 0;
    }
    opts.sampling = Some(SamplingOptions {
        frequency: args.frequency,
    });
    let mut session = Session::start(opts, c::targets_of(t, out.text_to_stderr()), &stop)?;
    session.begin(&stop)?;
    say!(
        "tracer: tracing {}, sampling at {} Hz, {} ({} ms to load and attach)",
        c::describe(t, session.launched()),
        args.frequency,
        c::until(t.duration),
        session.probes.load_attach.as_millis()
    );
    let mut progress = Progress::new(t.quiet);
    let until = Until {
        duration: t.duration,
        stop: &stop,
    };
    session.trace(&until, |s| {
        if let Some(p) = progress.as_mut() {
            p.tick(&s.probes, s.procs(), s.retired_waits(), s.elapsed());
        }
    })?;
    let t_report = Instant::now();
    let harvest = session.harvest()?;
    let mut meta = c::run_meta(t, thresholds, &harvest);
    if !full {
        meta.mode = report::model::Mode::Sched;
    }
    let mut syms = Symbols::with_debug_dirs(&t.debug_dir);
    let contention = crate::analyze::build::build(&harvest.snap, &harvest.procs, &mut syms, meta);
    let profile = profile_of(&harvest, contention, args.frequency, full, &mut syms);
    log::debug!(
        "profile built in {} ms ({} stacks)",
        t_report.elapsed().as_millis(),
        profile.stacks.len()
    );
    let text = report::profile::render_text(
        &profile,
        &report::profile::TextOptions {
            functions: args.functions,
            threads: t.top,
        },
    );
    let written = write(out, &profile, &text);
    harvest.detach.join()?;
    c::log_own_cost();
    written.map(|()| profile)
}

/// The profile of a harvested session that sampled at `frequency`, with
/// its contention report (`wall`: the report traced futex waits, so the
/// wall-clock view is built).
pub(crate) fn profile_of(
    harvest: &Harvest,
    contention: report::model::Report,
    frequency: u64,
    wall: bool,
    syms: &mut Symbols,
) -> Profile {
    crate::analyze::profile::build(
        &harvest.snap,
        &harvest.procs,
        syms,
        contention,
        ProfileMeta {
            tracer_args: std::env::args().collect(),
            targets: c::targets(harvest),
            start_time: humantime::format_rfc3339_seconds(harvest.start_time).to_string(),
            duration_s: harvest.duration.as_secs_f64(),
            load_attach_ms: harvest.load_attach.as_secs_f64() * 1e3,
            hooks: harvest
                .hooks
                .iter()
                .map(|k| report::model::Hook {
                    name: k.name.clone(),
                    attached: k.attached,
                    note: k.note.clone(),
                })
                .collect(),
            frequency,
            cpus: aya::util::online_cpus().map_or(0, |v| v.len() as u32),
            wall,
            counters: harvest.counters.clone(),
        },
    )
}

/// The text report, then each file; the first failure is returned.
fn write(out: &Outputs, p: &Profile, text: &str) -> Result<()> {
    let text = ui::esc_text(text);
    if out.text_to_stderr() {
        use std::io::Write as _;
        let _ = std::io::stderr().write_all(text.as_bytes());
    } else {
        ui::print(&text)?;
    }
    let mut first = None;
    if let Some(d) = &out.json {
        let r = d
            .write_str(&(serde_json::to_string_pretty(p)? + "\n"))
            .map(|()| {
                if !d.is_stdout() {
                    say!("tracer: JSON profile written to {}", d.display());
                }
            });
        first = r.err();
    }
    if let Some(d) = &out.html {
        let r = d.write_str(&report::profile_views::html(p)).map(|()| {
            if !d.is_stdout() {
                say!("tracer: HTML page written to {}", d.display());
            }
        });
        if let Err(e) = r {
            if first.is_some() {
                say!("tracer: {}", crate::exit::message(&e));
            } else {
                first = Some(e);
            }
        }
    }
    first.map_or(Ok(()), Err)
}

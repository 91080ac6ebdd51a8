//! `tracer`: which locks are contended, how badly, where, and whether a
//! lock-free redesign is worth it. See README.md and docs/.

mod agent;
mod analyze;
mod cli;
mod cmd;
mod compare;
mod exit;
mod input;
mod kernel;
mod output;
mod progress;
mod report;
mod store;
mod target;
mod ui;

use clap::Parser as _;

/// `tracer report RUN.json`: any view, rebuilt from the JSON alone.
fn report_cmd(args: &cli::ReportArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    let dest = match &args.output {
        Some(p) => output::Out::prepare(p, "output")?,
        None => output::Out::Stdout,
    };
    let mut r = match input::load_any(&args.run)? {
        input::Saved::Report(r) => *r,
        input::Saved::Profile(p) => return profile_report(args, &p, dest),
    };
    if !args.debug_dir.is_empty() {
        for d in &args.debug_dir {
            if !d.is_dir() {
                return Err(exit::fail(
                    exit::Code::Usage,
                    format!("--debug-dir {}: not a directory", d.display()),
                ));
            }
        }
        let n = report::resymbolize::resymbolize(&mut r, &args.debug_dir)?;
        if n.unnamed == 0 {
            eprintln!("tracer: the run has no unnamed frames: nothing to name");
        } else {
            eprintln!(
                "tracer: named {} of {} unnamed frames{}",
                n.named,
                n.unnamed,
                if n.files.is_empty() {
                    " (no debug file under --debug-dir or /usr/lib/debug matches their modules' build ids)".to_string()
                } else {
                    format!(
                        " from {}",
                        n.files
                            .values()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
        }
    }
    let bytes: Vec<u8> = match args.format {
        cli::ReportFormat::Text => ui::esc_text(&report::text::render(
            &r,
            report::text::Options {
                top: args.top,
                all_waits: args.all_waits,
                per_process: args.per_process,
            },
        ))
        .into_owned()
        .into_bytes(),
        cli::ReportFormat::Json => {
            let mut r = r;
            r.schema_version = report::model::SCHEMA_VERSION.to_string();
            (serde_json::to_string_pretty(&r)? + "\n").into_bytes()
        }
        cli::ReportFormat::Html => report::html::render(&r, args.all_waits).into_bytes(),
        cli::ReportFormat::Folded => report::folded::render(&r, args.all_waits).into_bytes(),
        cli::ReportFormat::Pprof => {
            if dest.is_stdout() && std::io::stdout().is_terminal() {
                return Err(exit::fail(
                    exit::Code::Usage,
                    "a pprof profile is binary: write it to a file with -o FILE (or pipe it)",
                ));
            }
            report::pprof::render(&r, args.all_waits)
        }
        cli::ReportFormat::Speedscope => {
            (serde_json::to_string(&report::folded::speedscope(&r, args.all_waits))? + "\n")
                .into_bytes()
        }
    };
    dest.write(|w| w.write_all(&bytes))
}

/// `tracer report PROFILE.json`: a saved profile in any view.
fn profile_report(
    args: &cli::ReportArgs,
    p: &report::profile::Profile,
    dest: output::Out,
) -> anyhow::Result<()> {
    use report::profile_views as v;
    use std::io::IsTerminal as _;
    if !args.debug_dir.is_empty() {
        return Err(exit::fail(
            exit::Code::Usage,
            "--debug-dir names a contention report's frames; a profile's frames are named when it is taken",
        ));
    }
    let bytes: Vec<u8> = match args.format {
        cli::ReportFormat::Text => ui::esc_text(&report::profile::render_text(
            p,
            &report::profile::TextOptions {
                functions: args.top.max(20),
                threads: args.top,
            },
        ))
        .into_owned()
        .into_bytes(),
        cli::ReportFormat::Json => (serde_json::to_string_pretty(p)? + "\n").into_bytes(),
        cli::ReportFormat::Html => v::html(p).into_bytes(),
        cli::ReportFormat::Folded => v::folded(p).into_bytes(),
        cli::ReportFormat::Pprof => {
            if dest.is_stdout() && std::io::stdout().is_terminal() {
                return Err(exit::fail(
                    exit::Code::Usage,
                    "a pprof profile is binary: write it to a file with -o FILE (or pipe it)",
                ));
            }
            v::pprof(p)
        }
        cli::ReportFormat::Speedscope => {
            (serde_json::to_string(&v::speedscope(p))? + "\n").into_bytes()
        }
    };
    dest.write(|w| w.write_all(&bytes))
}

/// `tracer man [COMMAND]`: the page of tracer or of one of its commands.
fn man(command: Option<&str>) -> anyhow::Result<()> {
    let root = <cli::Cli as clap::CommandFactory>::command();
    let page = match command {
        None => root,
        Some(name) => {
            let names: Vec<String> = root
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .collect();
            let Some(sub) = root.find_subcommand(name) else {
                return Err(exit::fail(
                    exit::Code::Usage,
                    format!("no command '{name}' (one of: {})", names.join(", ")),
                ));
            };
            // The page is named tracer-COMMAND, as git and perf name theirs.
            sub.clone().name(format!("tracer-{name}"))
        }
    };
    ui::stdout(|out| clap_mangen::Man::new(page).render(out))
}

fn main() {
    let cli = cli::Cli::parse();
    env_logger::Builder::new()
        .filter_level(if cli.verbose {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Warn
        })
        .parse_env("TRACER_LOG")
        .format_target(false)
        .target(env_logger::Target::Pipe(Box::new(ui::LogWriter)))
        .write_style(if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            env_logger::WriteStyle::Always
        } else {
            env_logger::WriteStyle::Never
        })
        .init();
    output::set_mode(cli.file_mode);
    input::set_max(cli.max_input_size);
    let result = match &cli.command {
        cli::Command::Contention(args) => cmd::contention::run(args, cli.verbose),
        cli::Command::Profile(args) => cmd::profile::run(args, cli.verbose),
        cli::Command::Compare(args) => cmd::compare::run(args),
        cli::Command::Baseline(cmd) => cmd::baseline::run(cmd).map(|()| exit::Code::Ok),
        cli::Command::Report(args) => report_cmd(args).map(|()| exit::Code::Ok),
        cli::Command::Agent(args) => agent::run(args, cli.verbose),
        cli::Command::Trend(args) => cmd::trend::run(args),
        cli::Command::Completions { shell } => {
            let mut cmd = <cli::Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "tracer", &mut script);
            ui::stdout(|out| out.write_all(&script)).map(|()| exit::Code::Ok)
        }
        cli::Command::Man { command } => man(command.as_deref()).map(|()| exit::Code::Ok),
    };
    match result {
        Ok(code) => std::process::exit(code as i32),
        Err(err) => {
            // A Failure is the one sentence meant for the user; anything
            // else shows its context chain.
            say!("tracer: {}", exit::message(&err));
            std::process::exit(exit::code_of(&err) as i32);
        }
    }
}

//! `tracer`: which locks are contended, how badly, where, and whether a
//! lock-free redesign is worth it. See README.md and docs/.

mod attach;
mod baseline;
mod cli;
mod collect;
mod compare;
mod contention;
mod exit;
mod funcs;
mod kallsyms;
mod preflight;
mod report;
mod resolve;
mod symbolize;
mod syscalls;
mod target;
mod unwind;

use clap::Parser as _;

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
        .init();
    let result = match &cli.command {
        cli::Command::Contention(args) => {
            contention::run(args, cli.verbose).map(|()| exit::Code::Ok)
        }
        cli::Command::Compare(args) => compare::run(args),
        cli::Command::Baseline(cmd) => baseline::run(cmd).map(|()| exit::Code::Ok),
    };
    match result {
        Ok(code) => std::process::exit(code as i32),
        Err(err) => {
            let code = exit::code_of(&err);
            // A Failure is the one sentence meant for the user; anything
            // else shows its context chain.
            match err.chain().find_map(|e| e.downcast_ref::<exit::Failure>()) {
                Some(f) => eprintln!("tracer: {f}"),
                None => eprintln!("tracer: {err:#}"),
            }
            std::process::exit(code as i32);
        }
    }
}

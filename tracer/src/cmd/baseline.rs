//! `tracer baseline`: argument handling. `save RUN.json [--name N]` keeps a
//! checked copy of a run as a named baseline; `show [NAME]` lists them or
//! summarizes one. Where and how baselines are kept is `crate::store`;
//! `tracer compare --baseline N` compares against one.

use std::path::Path;

use anyhow::Result;

use crate::{cli::BaselineCommand, compare, report::units::human_rate, store, ui::esc};

/// Runs one `tracer baseline` subcommand.
pub fn run(cmd: &BaselineCommand) -> Result<()> {
    match cmd {
        BaselineCommand::Save { run, name, dir } => save(run, name.as_deref(), dir.as_deref()),
        BaselineCommand::Show { name: None, dir } => list(dir.as_deref()),
        BaselineCommand::Show {
            name: Some(name),
            dir,
        } => show(name, dir.as_deref()),
    }
}

/// `baseline save`: checks the run, names it (default: the traced
/// program's name, else `baseline`) and stores it.
fn save(run: &Path, name: Option<&str>, dir: Option<&Path>) -> Result<()> {
    let report = compare::load(run)?;
    let name = match name {
        Some(n) => n.to_string(),
        None => Some(compare::program_of(&report))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "baseline".into()),
    };
    let dest = store::save(&store::dir(dir), &name, &report)?;
    crate::say!("tracer: baseline '{name}' saved to {}", dest.display());
    Ok(())
}

/// `baseline show`: the names of the stored baselines, one a line.
fn list(dir: Option<&Path>) -> Result<()> {
    let dir = store::dir(dir);
    let names = store::list(&dir);
    let mut o = String::new();
    if names.is_empty() {
        o.push_str(&format!("no baselines in {}\n", dir.display()));
    }
    for n in names {
        o.push_str(&format!("{}\n", esc(&n)));
    }
    crate::ui::print(&o)
}

/// `baseline show NAME`: where the baseline came from, its verdict and its
/// five worst locks.
fn show(name: &str, dir: Option<&Path>) -> Result<()> {
    let (path, r) = store::load(&store::dir(dir), name)?;
    let mut o = format!(
        "baseline '{name}' ({}): {} on {}, traced {:.1} s at {}\n",
        path.display(),
        esc(&r
            .targets
            .first()
            .map(|t| t.command_line.join(" "))
            .unwrap_or_default()),
        esc(&r.hostname),
        r.duration_s,
        esc(&r.start_time)
    );
    o.push_str(&format!("  verdict: {}\n", esc(&r.verdict.text)));
    for l in r.view_rows(false).into_iter().take(5) {
        o.push_str(&format!(
            "  {} [{}]: {} contentions/s, {:?}\n",
            esc(&l.label),
            esc(&l.kind),
            human_rate(l.contentions_per_s),
            l.decision
        ));
    }
    crate::ui::print(&o)
}

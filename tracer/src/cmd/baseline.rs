//! `tracer baseline`: argument handling. `save RUN.json [--name N]` keeps a
//! checked copy of a run (a report or a profile) as a named baseline;
//! `show [NAME]` lists them or summarizes one. Where and how baselines are
//! kept is `crate::store`; `tracer compare --baseline N` compares against
//! one.

use std::path::Path;

use anyhow::Result;

use crate::{
    cli::BaselineCommand,
    compare,
    input::Saved,
    report::{
        model::{Report, Target},
        profile::{Profile, pct},
        units::{human_ns, human_rate},
    },
    store,
    ui::esc,
};

/// Runs one `tracer baseline` subcommand.
pub fn run(cmd: &BaselineCommand) -> Result<()> {
    match cmd {
        BaselineCommand::Save {
            run,
            name,
            dir,
            commit,
            keep,
        } => save(
            run,
            name.as_deref(),
            dir.as_deref(),
            commit.as_deref(),
            *keep,
        ),
        BaselineCommand::Show { name: None, dir } => list(dir.as_deref()),
        BaselineCommand::Show {
            name: Some(name),
            dir,
        } => show(name, dir.as_deref()),
    }
}

/// `baseline save`: checks the run, names it (default: the traced
/// program's name, else `baseline`) and stores it.
fn save(
    run: &Path,
    name: Option<&str>,
    dir: Option<&Path>,
    commit: Option<&str>,
    keep: u64,
) -> Result<()> {
    let saved = compare::load(run)?;
    let name = match name {
        Some(n) => n.to_string(),
        None => Some(compare::program(&saved))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "baseline".into()),
    };
    let dir = store::dir(dir);
    let dest = store::save(&dir, &name, &saved)?;
    crate::say!("tracer: baseline '{name}' saved to {}", dest.display());
    let commit = store::commit_of(commit);
    let (_, removed) =
        store::append_history(&dir, &name, &saved, commit.as_deref(), keep as usize)?;
    let n = store::history(&dir, &name)?.len();
    crate::say!(
        "tracer: its history holds {n} run{} (commit {}){}",
        if n == 1 { "" } else { "s" },
        commit.as_deref().unwrap_or("unknown"),
        if removed > 0 {
            format!("; {removed} oldest removed (--keep {keep})")
        } else {
            String::new()
        }
    );
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

/// `baseline show NAME`: where the baseline came from, then a report's
/// verdict and five worst locks, or a profile's five hottest functions.
fn show(name: &str, dir: Option<&Path>) -> Result<()> {
    let dir = store::dir(dir);
    let (path, run) = store::load(&dir, name)?;
    let mut o = match &run {
        Saved::Report(r) => show_report(name, &path, r),
        Saved::Profile(p) => show_profile(name, &path, p),
    };
    let hist = store::history(&dir, name)?;
    o.push_str(&format!(
        "  history: {} saved run{} (`tracer trend {}`)\n",
        hist.len(),
        if hist.len() == 1 { "" } else { "s" },
        esc(name)
    ));
    crate::ui::print(&o)
}

/// The first line of `show`: the baseline, what ran, where and when.
fn origin(name: &str, path: &Path, targets: &[Target], host: &str, what: &str) -> String {
    format!(
        "baseline '{name}' ({}): {} on {}, {what}\n",
        path.display(),
        esc(&targets
            .first()
            .map(|t| t.command_line.join(" "))
            .unwrap_or_default()),
        esc(host),
    )
}

fn show_report(name: &str, path: &Path, r: &Report) -> String {
    let traced = format!("traced {:.1} s at {}", r.duration_s, esc(&r.start_time));
    let mut o = origin(name, path, &r.targets, &r.hostname, &traced);
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
    o
}

fn show_profile(name: &str, path: &Path, p: &Profile) -> String {
    let sampled = format!(
        "profiled {:.1} s at {} ({} samples at {} Hz)",
        p.duration_s,
        esc(&p.start_time),
        p.sampling.received,
        p.sampling.frequency_hz
    );
    let mut o = origin(name, path, &p.targets, &p.hostname, &sampled);
    if let Some(why) = &p.incomplete {
        o.push_str(&format!("  INCOMPLETE: {}\n", esc(why)));
    }
    for f in p.functions.iter().filter(|f| f.self_samples > 0).take(5) {
        o.push_str(&format!(
            "  {}: {} self, {} total, {} of CPU\n",
            esc(&f.name),
            pct(f.self_share),
            pct(f.total_share),
            human_ns(f.self_ns)
        ));
    }
    o
}

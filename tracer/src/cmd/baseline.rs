//! Named baselines: `tracer baseline save RUN.json [--name N]` keeps a
//! checked copy under the baseline directory; `tracer compare --baseline N`
//! compares against it. The directory is `--dir`, else
//! $TRACER_BASELINE_DIR, else `.tracer/baselines` (commit it, or cache it in
//! CI: docs/compare.md has a recipe).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::{
    cli::BaselineCommand,
    compare,
    exit::{Code, fail},
    report::units::human_rate,
    ui::esc,
};

pub fn dir(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TRACER_BASELINE_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".tracer/baselines"))
}

/// A baseline name is a file name: letters, digits, `-`, `_`, `.`.
fn check_name(name: &str) -> Result<()> {
    if !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        Ok(())
    } else {
        Err(fail(
            Code::Usage,
            format!("'{name}' is not a baseline name (letters, digits, '-', '_', '.')"),
        ))
    }
}

pub fn path_of(dir: &Path, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    Ok(dir.join(format!("{name}.json")))
}

pub fn run(cmd: &BaselineCommand) -> Result<()> {
    match cmd {
        BaselineCommand::Save { run, name, dir: d } => {
            let report = compare::load(run)?;
            let name = match name {
                Some(n) => n.clone(),
                None => Some(compare::program_of(&report))
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "baseline".into()),
            };
            let dir = dir(d.as_deref());
            let dest = path_of(&dir, &name)?;
            crate::output::create_dir(&dir, "baseline")?;
            let dest = crate::output::Out::prepare(&dest, "baseline")?;
            crate::report::json::write(&report, &dest)?;
            crate::say!("tracer: baseline '{name}' saved to {}", dest.display());
            Ok(())
        }
        BaselineCommand::Show { name: None, dir: d } => {
            let dir = dir(d.as_deref());
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.flatten()
                        .filter_map(|e| {
                            e.file_name()
                                .to_str()?
                                .strip_suffix(".json")
                                .map(String::from)
                        })
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            let mut o = String::new();
            if names.is_empty() {
                o.push_str(&format!("no baselines in {}\n", dir.display()));
            }
            for n in names {
                o.push_str(&format!("{}\n", esc(&n)));
            }
            crate::ui::print(&o)
        }
        BaselineCommand::Show {
            name: Some(name),
            dir: d,
        } => {
            let path = path_of(&dir(d.as_deref()), name)?;
            let r = compare::load(&path)?;
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
    }
}

//! Baseline storage: where named baselines live on disk and how they are
//! written, listed and read back. A baseline is a checked copy of a run's
//! JSON report or profile, kept as `NAME.json` in the baseline directory:
//! an explicit directory (`--dir`, `--baseline-dir`), else
//! $TRACER_BASELINE_DIR, else `.tracer/baselines` (commit it, or cache it
//! in CI: docs/compare.md has a recipe). `tracer baseline` saves and shows
//! them; `tracer compare --baseline NAME` reads one as its base side.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::{
    exit::{Code, fail},
    input::Saved,
    output::{self, Out},
};

/// The baseline directory: `explicit`, else $TRACER_BASELINE_DIR, else
/// `.tracer/baselines` under the current directory.
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

/// The file of baseline `name` in `dir`, once the name is checked.
pub fn path_of(dir: &Path, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    Ok(dir.join(format!("{name}.json")))
}

/// Keeps `run` (a report or a profile) as baseline `name` in `dir`
/// (created if missing), replacing an older one; returns where it went.
pub fn save(dir: &Path, name: &str, run: &Saved) -> Result<Out> {
    let dest = path_of(dir, name)?;
    output::create_dir(dir, "baseline")?;
    let dest = Out::prepare(&dest, "baseline")?;
    match run {
        Saved::Report(r) => crate::report::json::write(r, &dest)?,
        Saved::Profile(p) => crate::report::json::write_profile(p, &dest)?,
    }
    Ok(dest)
}

/// The names of the baselines in `dir`, sorted; none when it cannot be
/// read (e.g. nothing was saved yet).
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
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
    names
}

/// Reads baseline `name` from `dir`, with the file it came from: every way
/// it can be unusable is one sentence and `Code::Input`.
pub fn load(dir: &Path, name: &str) -> Result<(PathBuf, Saved)> {
    let path = path_of(dir, name)?;
    let run = crate::input::load_any(&path)?;
    Ok((path, run))
}

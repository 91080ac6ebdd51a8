//! Baseline storage: where named baselines live on disk and how they are
//! written, listed and read back. A baseline is a checked copy of a run's
//! JSON report or profile, kept as `NAME.json` in the baseline directory:
//! an explicit directory (`--dir`, `--baseline-dir`), else
//! $TRACER_BASELINE_DIR, else `.tracer/baselines` (commit it, or cache it
//! in CI: docs/compare.md has a recipe). `tracer baseline` saves and shows
//! them; `tracer compare --baseline NAME` reads one as its base side.
//! Every run saved under a name is also kept in `NAME.history/` (file
//! names `STAMP-SEQ-COMMIT.json`, oldest removed past `--keep`), for
//! `tracer trend`.

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

/// A saved run in a baseline's history.
#[derive(Clone, Debug)]
pub struct HistoryRun {
    pub path: PathBuf,
    /// When it was saved (UTC, `20261203T141500Z`), from its file name.
    pub saved_at: String,
    /// The commit it was saved with, if any.
    pub commit: Option<String>,
    seq: u64,
}

/// Where baseline `name` keeps every run saved under it.
fn history_dir(dir: &Path, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    Ok(dir.join(format!("{name}.history")))
}

/// The commit a saved run belongs to: `explicit`, else $GITHUB_SHA or
/// $CI_COMMIT_SHA, else `git rev-parse HEAD` here, else none. Only
/// letters and digits are kept (it becomes part of a file name).
pub fn commit_of(explicit: Option<&str>) -> Option<String> {
    let found = explicit
        .map(String::from)
        .or_else(|| std::env::var("GITHUB_SHA").ok())
        .or_else(|| std::env::var("CI_COMMIT_SHA").ok())
        .or_else(|| {
            let out = std::process::Command::new("git")
                .args(["rev-parse", "HEAD"])
                .stderr(std::process::Stdio::null())
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })?;
    let clean: String = found
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(40)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

/// Adds `run` to baseline `name`'s history, keeping the newest `keep`
/// runs; returns where it went and how many old runs were removed.
pub fn append_history(
    dir: &Path,
    name: &str,
    run: &Saved,
    commit: Option<&str>,
    keep: usize,
) -> Result<(Out, usize)> {
    let hist = history_dir(dir, name)?;
    output::create_dir(&hist, "baseline history")?;
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(['-', ':'], "");
    // One more than any run kept: unique, and in order within a second.
    let seq = history(dir, name).map_or(0, |h| h.iter().map(|r| r.seq + 1).max().unwrap_or(0));
    let file = format!("{stamp}-{seq:06}-{}.json", commit.unwrap_or("none"));
    let dest = Out::prepare(&hist.join(file), "baseline history")?;
    match run {
        Saved::Report(r) => crate::report::json::write(r, &dest)?,
        Saved::Profile(p) => crate::report::json::write_profile(p, &dest)?,
    }
    let runs = history(dir, name)?;
    let excess = runs.len().saturating_sub(keep.max(1));
    for old in &runs[..excess] {
        let _ = std::fs::remove_file(&old.path);
    }
    Ok((dest, excess))
}

/// Baseline `name`'s saved runs, oldest first.
pub fn history(dir: &Path, name: &str) -> Result<Vec<HistoryRun>> {
    let hist = history_dir(dir, name)?;
    let mut runs: Vec<HistoryRun> = std::fs::read_dir(&hist)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let file = e.file_name().to_str()?.to_string();
                    let stem = file.strip_suffix(".json")?;
                    let mut parts = stem.splitn(3, '-');
                    let saved_at = parts.next()?.to_string();
                    let seq = parts.next()?.parse().ok()?;
                    let commit = parts.next().filter(|c| *c != "none").map(String::from);
                    Some(HistoryRun {
                        path: e.path(),
                        saved_at,
                        commit,
                        seq,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    // Saved order (the sequence number grows with every save).
    runs.sort_by_key(|r| r.seq);
    Ok(runs)
}

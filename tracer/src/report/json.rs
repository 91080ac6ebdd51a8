//! Versioned JSON: written atomically (temp file + rename), read back with a
//! schema check.

use std::{io::Write as _, path::Path};

use anyhow::{Context as _, Result};

use super::model::{Report, SCHEMA_VERSION};
use crate::exit::{Code, fail};

pub fn write_atomic(report: &Report, path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| {
        fail(
            Code::Output,
            format!("{} is not a file path", path.display()),
        )
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        // Buffered: serde_json writes token by token, and unbuffered that
        // was a write(2) each (3 s of CPU for an 8.6 MB report).
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        serde_json::to_writer_pretty(&mut w, report)?;
        w.write_all(b"\n")?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(
            Code::Output,
            format!("cannot write the JSON report to {}: {e}", path.display()),
        ));
    }
    Ok(())
}

/// Parses a report, refusing other tools' JSON and newer schema majors.
pub fn parse(text: &str) -> Result<Report> {
    let value: serde_json::Value = serde_json::from_str(text).context("not valid JSON")?;
    let version = value
        .get("schema_version")
        .and_then(|v| v.as_str())
        .ok_or_else(|| anyhow::anyhow!("no schema_version: not a tracer report"))?;
    let major = |v: &str| v.split('.').next().and_then(|m| m.parse::<u32>().ok());
    match (major(version), major(SCHEMA_VERSION)) {
        (Some(theirs), Some(ours)) if theirs > ours => anyhow::bail!(
            "report schema {version} is newer than this tracer understands ({SCHEMA_VERSION}): upgrade tracer"
        ),
        (Some(_), _) => {}
        _ => anyhow::bail!("schema_version '{version}' is not major.minor"),
    }
    serde_json::from_value(value).context("JSON does not match the report schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real run at the current schema (1.3).
    const FIXTURE: &str = include_str!("../../../tests/fixtures/report-v1.3.json");
    /// A real run from schema 1.2 (before per-thread site estimates).
    const FIXTURE_1_2: &str = include_str!("../../../tests/fixtures/report-v1.2.json");
    /// A real run from schema 1.1 (before lock kinds and unwound sites).
    const FIXTURE_1_1: &str = include_str!("../../../tests/fixtures/report-v1.1.json");
    /// A real run from schema 1.0: an older minor must still be read.
    const FIXTURE_1_0: &str = include_str!("../../../tests/fixtures/report-v1.0.json");

    #[test]
    fn fixture_round_trips_exactly() {
        let report = parse(FIXTURE).expect("fixture parses");
        let again = serde_json::to_value(&report).unwrap();
        let original: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(again, original, "serializing the parsed fixture changed it");
        assert_eq!(
            report.locks[0].symbol.as_deref(),
            Some("global_seq_batch_seq_mu_")
        );
    }

    /// Every value in `old` is in `new` unchanged (`new` may add fields).
    fn is_subset(old: &serde_json::Value, new: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (old, new) {
            (Value::Object(a), Value::Object(b)) => a
                .iter()
                .all(|(k, v)| b.get(k).is_some_and(|w| is_subset(v, w))),
            (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(v, w)| is_subset(v, w))
            }
            _ => old == new,
        }
    }

    #[test]
    fn older_minor_is_read_without_losing_anything() {
        let report = parse(FIXTURE_1_0).expect("a 1.0 report parses");
        assert_eq!(report.schema_version, "1.0");
        assert!(
            report.threads.iter().all(|t| t.sched.is_none()),
            "1.0 has no scheduler view"
        );
        let again = serde_json::to_value(&report).unwrap();
        let original: serde_json::Value = serde_json::from_str(FIXTURE_1_0).unwrap();
        assert!(
            is_subset(&original, &again),
            "a 1.0 field changed when read by 1.1"
        );
    }

    #[test]
    fn schema_1_1_reads_with_unknown_kinds() {
        let report = parse(FIXTURE_1_1).expect("a 1.1 report parses");
        assert!(report.locks.iter().all(|l| l.kind == "unknown"));
        let again = serde_json::to_value(&report).unwrap();
        let original: serde_json::Value = serde_json::from_str(FIXTURE_1_1).unwrap();
        assert!(
            is_subset(&original, &again),
            "a 1.1 field changed when read by 1.2"
        );
    }

    #[test]
    fn schema_1_2_reads_without_per_thread_sites() {
        let report = parse(FIXTURE_1_2).expect("a 1.2 report parses");
        assert!(
            report
                .locks
                .iter()
                .flat_map(|l| &l.unwound_sites)
                .all(|s| s.threads.is_empty())
        );
        let again = serde_json::to_value(&report).unwrap();
        let original: serde_json::Value = serde_json::from_str(FIXTURE_1_2).unwrap();
        assert!(
            is_subset(&original, &again),
            "a 1.2 field changed when read by 1.3"
        );
    }

    #[test]
    fn current_fixture_has_kinds_and_unwound_sites() {
        let report = parse(FIXTURE).unwrap();
        let top = &report.locks[0];
        assert_eq!(top.kind, "mutex");
        assert_eq!(top.call_site_unwind, "eh_frame");
        assert!(
            top.call_site
                .as_deref()
                .is_some_and(|c| c.starts_with("sequencer_assign"))
        );
        // Per-thread estimates add up to the site's (schema 1.3).
        let site = &top.unwound_sites[0];
        assert!(site.threads.len() > 1);
        assert_eq!(
            site.threads.iter().map(|t| t.count).sum::<u64>(),
            site.count
        );
    }

    #[test]
    fn current_fixture_has_the_scheduler_view() {
        let report = parse(FIXTURE).unwrap();
        assert_eq!(report.schema_version, SCHEMA_VERSION);
        assert!(
            report
                .threads
                .iter()
                .any(|t| t.sched.as_ref().is_some_and(|s| s.oncpu_ns > 0))
        );
    }

    #[test]
    fn newer_major_and_foreign_json_are_refused() {
        let newer = FIXTURE.replacen(
            &format!("\"schema_version\": \"{SCHEMA_VERSION}\""),
            "\"schema_version\": \"2.0\"",
            1,
        );
        assert!(parse(&newer).unwrap_err().to_string().contains("newer"));
        assert!(
            parse("{\"timestamp\": 1}")
                .unwrap_err()
                .to_string()
                .contains("not a tracer report")
        );
        assert!(parse("{").is_err());
    }

    #[test]
    fn write_is_atomic_and_readable() {
        let dir = std::env::temp_dir().join(format!("tracer-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.json");
        let report = parse(FIXTURE).unwrap();
        write_atomic(&report, &path).unwrap();
        assert_eq!(
            parse(&std::fs::read_to_string(&path).unwrap()).unwrap(),
            report
        );
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != "run.json")
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
        let err = write_atomic(&report, Path::new("/nonexistent-dir/run.json")).unwrap_err();
        assert_eq!(crate::exit::code_of(&err), Code::Output);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

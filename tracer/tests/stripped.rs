//! A stripped binary: its frames are `module+0xOFFSET` everywhere, each
//! offset names the right function when addr2line reads the unstripped
//! copy, and the report says the module is stripped, with its build id and
//! how to get symbols.

mod common;

use std::{process::Command, time::Duration};

use common::*;
use serde_json::Value;

const FUTEX_WAIT_PRIVATE: u32 = 128;

/// Distinct (module, file offset) frames.
fn distinct(frames: &[&Value]) -> usize {
    let mut v: Vec<(String, u64)> = frames
        .iter()
        .map(|f| (f["module"].to_string(), f["file_offset"].as_u64().unwrap()))
        .collect();
    v.sort();
    v.dedup();
    v.len()
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn stripped_frames_are_module_offsets_that_addr2line_resolves() {
    let Some(_serial) = privileged() else { return };
    let full = c_workload("heap_mutex");
    let bin = full.with_file_name("heap_mutex.stripped");
    // Stripped as Debian packages are: the debug file split off, a
    // .gnu_debuglink to it, and the debug file moved away (to DIR/.build-id,
    // below) so that nothing finds it without being told.
    let debug = full.with_file_name("heap_mutex.debug");
    let run_ok = |cmd: &mut Command| {
        let st = cmd.status().expect("binutils");
        assert!(st.success(), "{cmd:?}");
    };
    run_ok(
        Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(&full)
            .arg(&debug),
    );
    run_ok(Command::new("strip").arg("-o").arg(&bin).arg(&full));
    let st = Command::new("objcopy")
        .arg(format!("--add-gnu-debuglink={}", debug.display()))
        .arg(&bin)
        .status()
        .expect("objcopy");
    assert!(st.success());
    let away = full.with_file_name("heap_mutex.debug.away");
    std::fs::rename(&debug, &away).unwrap();
    let mut run = PerfRun::start(&bin, &["4", "300000"], FUTEX_WAIT_PRIVATE, "stripped_heap");
    let mutex = run.mutex();
    let mutex_first = mutex.clone();
    let tracer = Tracer::start(&["--pid", &run.work.pid.to_string()], "stripped_heap");
    run.work.go();
    let (_, perf) = run.finish();
    let (text, report) = tracer.finish(Duration::from_secs(30));
    assert!(perf > 100, "the workload contends (perf saw {perf} waits)");
    let lock = lock_at(&report, &mutex);
    assert_eq!(lock["contentions"].as_u64(), Some(perf));

    // The unwound stack's frames in the stripped binary have no name, and
    // a module and file offset instead.
    let unwound = lock["unwound_sites"].as_array().expect("unwound sites");
    let ours: Vec<&Value> = unwound
        .iter()
        .flat_map(|s| s["frames"].as_array().unwrap())
        .filter(|f| {
            f["module"]
                .as_str()
                .is_some_and(|m| m.ends_with("/heap_mutex.stripped"))
        })
        .collect();
    assert!(!ours.is_empty(), "no frame in the binary: {lock:#}");
    let offsets: Vec<String> = ours
        .iter()
        .map(|f| {
            assert!(f["symbol"].is_null(), "a stripped frame has a name: {f}");
            // A return address: the call is the byte before.
            format!("{:#x}", f["file_offset"].as_u64().expect("file_offset") - 1)
        })
        .collect();
    let names = output(
        Command::new("addr2line")
            .arg("-f")
            .arg("-e")
            .arg(&full)
            .args(&offsets),
    );
    let funcs: Vec<String> = String::from_utf8_lossy(&names.stdout)
        .lines()
        .step_by(2)
        .map(String::from)
        .collect();
    assert_eq!(funcs.len(), offsets.len());
    // heap_worker() calls take_heap_lock(), which calls pthread_mutex_lock
    // (heap_mutex.c): the innermost frame in the binary is take_heap_lock.
    assert_eq!(funcs[0], "take_heap_lock", "{funcs:?} at {offsets:?}");
    assert!(funcs.iter().any(|f| f == "heap_worker"), "{funcs:?}");
    for f in &funcs {
        assert!(
            ["take_heap_lock", "heap_worker"].contains(&f.as_str()),
            "{f} is not a function of heap_mutex.c on this path: {funcs:?}"
        );
    }
    // The call site and the stack line name the same offset.
    let site = format!("heap_mutex.stripped+{}", &offsets[0]);
    let call_site = lock["call_site"].as_str().unwrap_or_default();
    let want = format!(
        "heap_mutex.stripped+{:#x}",
        ours[0]["file_offset"].as_u64().unwrap()
    );
    assert_eq!(call_site, want, "{lock:#} ({site})");
    assert!(
        text.contains(&format!("← {want}")) || text.contains(&want),
        "{text}"
    );

    // The module: stripped, with its build id (readelf's), and the hint.
    let module = report["modules"]
        .as_array()
        .expect("modules")
        .iter()
        .find(|m| {
            m["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/heap_mutex.stripped"))
        })
        .expect("the binary's module");
    assert_eq!(module["stripped"], true);
    assert_eq!(module["unnamed"], module["frames"]);
    let notes = output(Command::new("readelf").arg("-n").arg(&bin));
    let readelf = String::from_utf8_lossy(&notes.stdout).to_string();
    let id = module["build_id"].as_str().expect("build id");
    assert!(readelf.contains(&format!("Build ID: {id}")), "{readelf}");
    assert_eq!(module["debug_link"], true);
    assert!(
        text.contains("(stripped) have no name")
            && text.contains(id)
            && text.contains("-dbgsym")
            && text.contains("--debug-dir"),
        "{text}"
    );

    // With the debug file under DIR/.build-id/, --debug-dir names them.
    let dir = full.with_file_name("stripped-debug");
    let sub = dir.join(".build-id").join(&id[..2]);
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::rename(&away, sub.join(format!("{}.debug", &id[2..]))).unwrap();

    // The saved run, named offline: `tracer report --debug-dir DIR`.
    let saved = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("stripped_heap.json");
    let named = output(
        Command::new(tracer_bin())
            .args(["report", "--format", "json", "--debug-dir"])
            .arg(&dir)
            .arg(&saved),
    );
    let err = String::from_utf8_lossy(&named.stderr);
    let again: Value = serde_json::from_slice(&named.stdout).expect("report JSON");
    let lock = lock_at(&again, &mutex_first);
    let call_site = lock["call_site"].as_str().unwrap_or_default();
    assert!(call_site.starts_with("take_heap_lock ("), "{lock:#}\n{err}");
    let frames: Vec<&Value> = lock["unwound_sites"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["frames"].as_array().unwrap())
        .filter(|f| {
            f["module"]
                .as_str()
                .is_some_and(|m| m.ends_with("/heap_mutex.stripped"))
        })
        .collect();
    // Each named as addr2line named its offset on the unstripped copy.
    for f in &frames {
        let off = format!("{:#x}", f["file_offset"].as_u64().unwrap() - 1);
        let i = offsets.iter().position(|o| *o == off);
        if let Some(i) = i {
            assert_eq!(f["symbol"].as_str(), Some(funcs[i].as_str()), "{f}");
        } else {
            assert!(f["symbol"].is_string(), "{f}");
        }
    }
    // Every unnamed frame of the run was named (those of this lock among
    // them).
    let counts: Vec<usize> = err
        .split_once("named ")
        .and_then(|(_, r)| r.split_once(" unnamed"))
        .map(|(n, _)| n.split(" of ").filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default();
    assert!(
        counts.len() == 2 && counts[0] == counts[1] && counts[0] >= distinct(&frames),
        "{err}"
    );
    let text = output(
        Command::new(tracer_bin())
            .args(["report", "--debug-dir"])
            .arg(&dir)
            .arg(&saved),
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("lock@take_heap_lock") && !text.contains("(stripped) have no name"),
        "{text}"
    );
    let mut run = PerfRun::start(&bin, &["4", "300000"], FUTEX_WAIT_PRIVATE, "stripped_named");
    let mutex = run.mutex();
    let tracer = Tracer::start(
        &[
            "--pid",
            &run.work.pid.to_string(),
            "--debug-dir",
            dir.to_str().unwrap(),
        ],
        "stripped_named",
    );
    run.work.go();
    let (_, perf) = run.finish();
    let (text, report) = tracer.finish(Duration::from_secs(30));
    let lock = lock_at(&report, &mutex);
    assert_eq!(lock["contentions"].as_u64(), Some(perf));
    let call_site = lock["call_site"].as_str().unwrap_or_default();
    assert!(call_site.starts_with("take_heap_lock"), "{lock:#}");
    assert!(!text.contains("(stripped) have no name"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

//! Privileged integration tests for true call sites and lock kinds: sampled
//! futex waits unwound with .eh_frame in userspace. Ground truth is the
//! workloads' source (which function takes which lock) and their own
//! counters.

mod common;

use std::{process::Command, time::Duration};

use common::*;

/// The demo's sequencer mutex is taken in sequencer_assign(), which glibc's
/// frame-pointer-less lock path hides from a kernel stack walk.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn sequencer_mutex_call_site_is_sequencer_assign() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("sequencer");
    let bin = bin.to_str().unwrap();
    let tracer = Tracer::start(&["--", bin, "--seconds", "1"], "sequencer_sites");
    let (text, report) = tracer.finish(Duration::from_secs(30));
    let locks = report["locks"].as_array().unwrap();
    let lock = locks
        .iter()
        .find(|l| l["symbol"].as_str() == Some("global_seq_batch_seq_mu_"))
        .unwrap_or_else(|| panic!("no global_seq_batch_seq_mu_: {text}"));
    assert_eq!(lock["call_site_unwind"].as_str(), Some("eh_frame"));
    let call_site = lock["call_site"].as_str().unwrap_or_default();
    assert!(
        call_site.starts_with("sequencer_assign "),
        "call site is the caller of pthread_mutex_lock: {call_site}\n{text}"
    );
    assert_eq!(lock["kind"].as_str(), Some("mutex"));
    let top = &lock["unwound_sites"][0];
    let names: Vec<&str> = top["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["symbol"].as_str())
        .collect();
    let at = |name: &str| names.iter().position(|n| n.contains(name));
    assert!(
        at("pthread_mutex_lock") < at("sequencer_assign")
            && at("sequencer_assign") < at("sequencer_worker"),
        "the whole chain, innermost first: {names:?}"
    );
    // The frame-pointer walk of the same waits misses sequencer_assign.
    let fp: Vec<&str> = lock["sites"][0]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["symbol"].as_str())
        .collect();
    assert!(!fp.contains(&"sequencer_assign"), "{fp:?}");
    assert!(text.contains("call site: sequencer_assign"), "{text}");
    assert_no_drops(&report);
}

/// Condition-variable waits are classified and never counted as lock
/// contention, while the mutex next to them still is.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn condvar_waits_are_not_lock_contention() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("condvar");
    let mut work = Gated::start({
        let mut c = Command::new(&bin);
        c.arg("400");
        c
    });
    let cond = u64::from_str_radix(
        field(&work.first_line, "cond")
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    let tracer = Tracer::start(&["--pid", &work.pid.to_string()], "condvar");
    work.go();
    let rest = work.finish(Duration::from_secs(30));
    assert_eq!(field(&rest, "consumed"), Some("400"));
    let (text, report) = tracer.finish(Duration::from_secs(30));
    let locks = report["locks"].as_array().unwrap();
    let addr = |l: &serde_json::Value| {
        u64::from_str_radix(l["address"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    };
    // glibc waits on words inside the pthread_cond_t (48 bytes).
    let cv: Vec<&serde_json::Value> = locks
        .iter()
        .filter(|l| (cond..cond + 48).contains(&addr(l)))
        .collect();
    assert!(!cv.is_empty(), "no waits on the condvar: {text}");
    let cv_waits: u64 = cv.iter().map(|l| l["contentions"].as_u64().unwrap()).sum();
    assert!(
        cv_waits >= 100,
        "the consumer waited on the condvar: {text}"
    );
    for l in &cv {
        assert_eq!(l["kind"].as_str(), Some("condvar"), "{l:#}");
        assert_eq!(l["decision"].as_str(), Some("not_lock_contention"));
        assert!(
            l["call_site"]
                .as_str()
                .is_some_and(|c| c.starts_with("consume ")),
            "the caller of pthread_cond_wait: {}",
            l["call_site"]
        );
        assert_ne!(report["verdict"]["lock"], l["label"]);
    }
    // Any wait on queue_mu is a mutex wait and keeps its decision.
    for l in locks
        .iter()
        .filter(|l| l["symbol"].as_str() == Some("queue_mu"))
    {
        assert_eq!(l["kind"].as_str(), Some("mutex"), "{l:#}");
        assert_ne!(l["decision"].as_str(), Some("not_lock_contention"));
    }
    assert!(text.contains("not a lock"), "{text}");
    assert_no_drops(&report);
}

//! Privileged integration tests: the real tracer binary loads the real
//! programs and traces real workloads; every number is checked against
//! ground truth the tracer did not produce (perf stat, the workloads' own
//! counters and clocks, the kernel's program list).

mod common;

use std::{collections::BTreeMap, process::Command, time::Duration};

use common::*;

/// glibc's mutex waits with FUTEX_WAIT | FUTEX_PRIVATE_FLAG.
const FUTEX_WAIT_PRIVATE: u32 = 128;
/// Rust std's mutex waits with FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG.
const FUTEX_WAIT_BITSET_PRIVATE: u32 = 9 | 128;

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn pthread_mutex_waits_equal_perf_stat_exactly() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("mutex_count");
    let mut run = PerfRun::start(&bin, &["4", "150000"], FUTEX_WAIT_PRIVATE, "mutex_count");
    let mutex = run.mutex();
    let tracer = Tracer::start(&["--pid", &run.work.pid.to_string()], "mutex_count");
    run.work.go();
    let (rest, perf) = run.finish();
    let (text, report) = tracer.finish(Duration::from_secs(30));
    assert!(
        perf > 100,
        "the workload should contend (perf saw {perf} waits)"
    );
    assert_eq!(
        field(&rest, "acquisitions"),
        Some("600000"),
        "the workload's own count"
    );

    let top = &report["locks"][0];
    assert_eq!(
        top["address"].as_str(),
        Some(mutex.as_str()),
        "top lock is the workload's mutex"
    );
    assert_eq!(
        top["symbol"].as_str(),
        Some("contended_mu"),
        "named static reported by name"
    );
    assert_eq!(top["label"].as_str(), Some("contended_mu"));
    assert_eq!(
        top["contentions"].as_u64(),
        Some(perf),
        "tracer's wait count equals perf stat's"
    );
    let o = &top["outcomes"];
    let sum: u64 = ["slept", "eagain", "timed_out", "interrupted", "error"]
        .iter()
        .map(|k| o[k].as_u64().unwrap())
        .sum();
    assert_eq!(sum, perf, "outcomes add up to the wait count");
    let hist: u64 = top["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(hist, perf, "every wait is in the histogram");
    let waiters = top["threads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["contentions"].as_u64() > Some(0))
        .count();
    assert!(waiters >= 2, "several threads waited ({waiters})");
    assert_no_drops(&report);
    assert!(
        text.contains("contended_mu"),
        "text report names the lock:\n{text}"
    );
    assert!(text.contains("DROPS"), "text report has the drops line");
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn rust_std_mutex_is_seen_with_wait_bitset() {
    let Some(_serial) = privileged() else { return };
    let mut run = PerfRun::start(
        &example("rust_mutex"),
        &["4", "200000"],
        FUTEX_WAIT_BITSET_PRIVATE,
        "rust_mutex",
    );
    let tracer = Tracer::start(&["--pid", &run.work.pid.to_string()], "rust_mutex");
    run.work.go();
    let (rest, perf) = run.finish();
    let (_, report) = tracer.finish(Duration::from_secs(30));
    assert!(
        perf > 100,
        "the workload should contend (perf saw {perf} waits)"
    );
    assert_eq!(field(&rest, "acquisitions"), Some("800000"));
    // Sorted by total wait, the main thread's join may come first: find the
    // mutex by its (demangled) static name.
    let locks = report["locks"].as_array().unwrap();
    let lock = locks
        .iter()
        .find(|l| {
            l["symbol"]
                .as_str()
                .is_some_and(|s| s.starts_with("rust_mutex::SEQUENCER_STATE"))
        })
        .unwrap_or_else(|| panic!("no lock named rust_mutex::SEQUENCER_STATE: {locks:#?}"));
    assert_eq!(
        lock["contentions"].as_u64(),
        Some(perf),
        "tracer's wait count equals perf stat's"
    );
    // Unwound through std's lock_contended (no frame pointers needed): the
    // caller is the worker closure, and the kind comes from std's names.
    assert_eq!(lock["kind"].as_str(), Some("mutex"), "{lock:#}");
    assert_eq!(lock["call_site_unwind"].as_str(), Some("eh_frame"));
    assert!(
        lock["call_site"]
            .as_str()
            .is_some_and(|c| c.starts_with("rust_mutex::main::{{closure}}")),
        "call site: {}",
        lock["call_site"]
    );
    assert_no_drops(&report);
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn heap_mutex_is_labelled_by_its_call_site() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("heap_mutex");
    let mut run = PerfRun::start(&bin, &["4", "300000"], FUTEX_WAIT_PRIVATE, "heap_mutex");
    let mutex = run.mutex();
    let tracer = Tracer::start(&["--pid", &run.work.pid.to_string()], "heap_mutex");
    run.work.go();
    let (_, perf) = run.finish();
    let (_, report) = tracer.finish(Duration::from_secs(30));
    assert!(
        perf > 100,
        "the workload should contend (perf saw {perf} waits)"
    );
    let lock = lock_at(&report, &mutex);
    assert_eq!(
        lock["symbol"],
        serde_json::Value::Null,
        "a heap mutex has no symbol"
    );
    assert_eq!(lock["contentions"].as_u64(), Some(perf));
    // The true caller of pthread_mutex_lock, found by unwinding sampled
    // waits with .eh_frame: glibc keeps no frame pointer, so the kernel's
    // frame-pointer walk skips take_heap_lock and resumes in heap_worker.
    let call_site = lock["call_site"].as_str().unwrap_or_default();
    assert!(
        call_site.starts_with("take_heap_lock"),
        "call site: {lock:#}"
    );
    assert_eq!(lock["call_site_unwind"].as_str(), Some("eh_frame"));
    assert_eq!(lock["kind"].as_str(), Some("mutex"), "{lock:#}");
    assert!(
        call_site.contains("heap_mutex.c:"),
        "file:line from debug info: {call_site}"
    );
    assert_eq!(
        lock["label"].as_str(),
        Some(format!("lock@{call_site}").as_str())
    );
    let site = &lock["sites"][0];
    assert_eq!(site["unwind"].as_str(), Some("frame-pointer"));
    assert!(site["samples"].as_u64() > Some(0));
    // Unwound samples stand for the waits before them: their weights add
    // up to the waits counted up to each pair's last sample (rate-limited,
    // so a short run's tail is not covered), never more than all waits.
    let unwound = lock["unwound_sites"].as_array().expect("unwound sites");
    let est: u64 = unwound.iter().map(|s| s["count"].as_u64().unwrap()).sum();
    assert!(
        est > 0 && est <= perf,
        "unwound sites stand for {est} of {perf} waits"
    );
    assert!(site["samples"].as_u64() > Some(0));
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn several_pids_are_traced_at_once() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("mutex_count");
    let mut a = PerfRun::start(&bin, &["4", "300000"], FUTEX_WAIT_PRIVATE, "multi_a");
    let mut b = PerfRun::start(&bin, &["4", "300000"], FUTEX_WAIT_PRIVATE, "multi_b");
    let pids = format!("{},{}", a.work.pid, b.work.pid);
    let tracer = Tracer::start(&["--pid", &pids], "multi");
    a.work.go();
    b.work.go();
    let (pid_a, pid_b) = (a.work.pid as u64, b.work.pid as u64);
    let ((_, perf_a), (_, perf_b)) = (a.finish(), b.finish());
    let (_, report) = tracer.finish(Duration::from_secs(30));
    // Two processes share two cores, so how much each contends is up to the
    // scheduler (seen: 8 + 8 waits in one CI run, thousands in others). Each
    // must have waited at least once, so its lock is in the report; the
    // check is that every one of those waits is counted, per process.
    assert!(
        perf_a > 0 && perf_b > 0,
        "perf saw {perf_a} + {perf_b} waits"
    );
    let locks = report["locks"].as_array().unwrap();
    for (pid, perf) in [(pid_a, perf_a), (pid_b, perf_b)] {
        // The same binary: the mutex has the same name in both processes.
        let lock = locks
            .iter()
            .find(|l| {
                l["pid"].as_u64() == Some(pid) && l["symbol"].as_str() == Some("contended_mu")
            })
            .unwrap_or_else(|| panic!("no contended_mu for pid {pid}"));
        assert_eq!(
            lock["contentions"].as_u64(),
            Some(perf),
            "pid {pid}: tracer vs perf"
        );
    }
    assert_eq!(report["targets"].as_array().unwrap().len(), 2);
    assert_no_drops(&report);
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn futex2_syscalls_are_traced() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("futex2");
    let mut cmd = Command::new(&bin);
    cmd.arg("50");
    let mut work = Gated::start(cmd);
    let addr = |k: &str| field(&work.first_line, k).unwrap().to_string();
    let (waitv, wait, wake) = (addr("waitv"), addr("wait"), addr("wake"));
    let tracer = Tracer::start(&["--pid", &work.pid.to_string()], "futex2");
    work.go();
    let rest = work.finish(Duration::from_secs(30));
    let (_, report) = tracer.finish(Duration::from_secs(30));
    for key in ["waitv_calls", "wait_calls", "wake_calls"] {
        assert_eq!(field(&rest, key), Some("50"), "{key} in {rest}");
    }
    for (address, name) in [(&waitv, "waitv_word"), (&wait, "wait_word")] {
        let lock = lock_at(&report, address);
        assert_eq!(lock["symbol"].as_str(), Some(name));
        assert_eq!(
            lock["contentions"].as_u64(),
            Some(50),
            "{name}: one wait per call"
        );
        assert_eq!(
            lock["outcomes"]["timed_out"].as_u64(),
            Some(50),
            "{name}: every call timed out"
        );
        let p50 = lock["wait"]["p50_ns"].as_u64().unwrap();
        assert!(
            (900_000..20_000_000).contains(&p50),
            "{name}: 1 ms timeouts, p50 {p50} ns"
        );
    }
    // futex_wake with nobody waiting: counted as wakes, not as a lock.
    let locks = report["locks"].as_array().unwrap();
    assert!(
        locks
            .iter()
            .all(|l| l["address"].as_str() != Some(wake.as_str())),
        "a wake-only futex is not a contended lock"
    );
    assert_eq!(report["events"]["wakes"].as_u64(), Some(50));
    assert_no_drops(&report);
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn context_switches_and_run_queue_time_match_proc() {
    let Some(_serial) = privileged() else { return };
    sched_view_matches_proc("tp_btf");
}

/// The fallback the tracer uses when the kernel refuses BTF-typed
/// tracepoints (forced here): the same numbers through raw tracepoints.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn raw_tracepoint_fallback_gives_the_same_scheduler_view() {
    let Some(_serial) = privileged() else { return };
    sched_view_matches_proc("raw_tp");
}

fn sched_view_matches_proc(flavour: &str) {
    let bin = c_workload("sched_pattern");
    let mut cmd = Command::new(&bin);
    cmd.args(["2", "200", "3", "800"]); // 2 sleepers x 200 x 1 ms, 3 spinners x 0.8 s on 2 cores
    let mut work = Gated::start(cmd);
    let env: &[(&str, &str)] = if flavour == "raw_tp" {
        &[("TRACER_SCHED_HOOKS", "raw_tp")]
    } else {
        &[]
    };
    let tracer = Tracer::start_env(
        &["--pid", &work.pid.to_string()],
        &format!("sched_pattern_{flavour}"),
        env,
    );
    // Every thread is parked in a pipe read: no switches until `go`.
    let before = proc_sched(work.pid);
    work.go();
    assert_eq!(work.line().trim(), "done");
    // Every thread parked again in its pipe read.
    let parked = || {
        std::fs::read_dir(format!("/proc/{}/task", work.pid))
            .unwrap()
            .flatten()
            .all(|t| proc_state(t.file_name().to_str().unwrap().parse().unwrap()) == Some('S'))
    };
    assert!(
        eventually(Duration::from_secs(10), parked),
        "threads did not park again"
    );
    let after = proc_sched(work.pid);
    tracer.signal(libc::SIGINT);
    let (text, report) = tracer.finish(Duration::from_secs(30));
    work.go();
    work.finish(Duration::from_secs(30));
    assert!(text.contains("WHERE THE TIME GOES"), "{text}");
    let hooks = report["hooks"].as_array().unwrap();
    assert!(
        hooks
            .iter()
            .any(|h| h["name"] == format!("{flavour}:sched_switch") && h["attached"] == true),
        "scheduler hooks loaded as {flavour}: {hooks:?}"
    );

    let threads = report["threads"].as_array().unwrap();
    let (mut total_invol, mut runq_truth, mut runq_traced) = (0, 0u64, 0u64);
    let mut spinners = 0;
    for (tid, (vol1, invol1, delay1)) in &after {
        let (vol0, invol0, delay0) = before[tid];
        let sched = threads
            .iter()
            .find(|t| t["tid"].as_u64() == Some(u64::from(*tid)))
            .map(|t| &t["sched"]);
        let get = |k: &str| sched.and_then(|s| s[k].as_u64()).unwrap_or(0);
        assert_eq!(
            get("voluntary_switches"),
            vol1 - vol0,
            "tid {tid}: voluntary switches vs /proc"
        );
        assert_eq!(
            get("involuntary_switches"),
            invol1 - invol0,
            "tid {tid}: involuntary switches vs /proc"
        );
        total_invol += invol1 - invol0;
        runq_truth += delay1 - delay0;
        runq_traced += get("runnable_ns");
        // A spinner (preempted more than it sleeps) is classified as
        // runnable / on-CPU, never as futex or lock waiting.
        if invol1 - invol0 > vol1 - vol0 {
            spinners += 1;
            assert_eq!(
                get("futex_sleep_ns"),
                0,
                "tid {tid}: a spinner never sleeps in a futex"
            );
            assert!(
                get("runnable_ns") > 20_000_000,
                "tid {tid}: 3 spinners on 2 cores wait for a CPU (runnable {} ns)",
                get("runnable_ns")
            );
        }
    }
    // The sleepers' 200 nanosleep(1 ms) each are "other sleep", named by
    // their syscall (glibc's nanosleep is the clock_nanosleep syscall).
    let sleepers: Vec<_> = threads
        .iter()
        .filter(|t| {
            t["sched"]["other_sleep"]
                .as_array()
                .is_some_and(|v| v.iter().any(|x| x["syscall"] == "clock_nanosleep"))
        })
        .collect();
    assert_eq!(sleepers.len(), 2, "two sleeper threads: {threads:#?}");
    for t in sleepers {
        let ns = t["sched"]["other_sleep"].as_array().unwrap();
        let nano = ns
            .iter()
            .find(|x| x["syscall"] == "clock_nanosleep")
            .unwrap();
        // Switch counts are exact (above) and every wakeup is seen; the
        // per-syscall split has been seen to miss up to 3 sleeps in 200 in
        // some runs, cause not yet understood (tracked in the issue note):
        // allow 3%.
        let sleeps = nano["sleeps"].as_u64().unwrap();
        assert!(
            (194..=200).contains(&sleeps),
            "{sleeps} of 200 nanosleeps attributed: {t:#}"
        );
        assert!(nano["sleep_ns"].as_u64().unwrap() >= 200_000_000, "{t:#}");
        assert_eq!(t["sched"]["futex_sleep_ns"].as_u64(), Some(0), "{t:#}");
    }
    assert_eq!(
        spinners, 3,
        "the three spinners are told apart by their involuntary switches"
    );
    eprintln!(
        "involuntary {total_invol}; run queue: traced {runq_traced} ns, schedstat {runq_truth} ns"
    );
    assert!(
        total_invol > 10,
        "the spinners should be preempted ({total_invol} involuntary switches)"
    );
    let err = (runq_traced as f64 - runq_truth as f64).abs() / runq_truth as f64;
    assert!(
        err <= 0.05,
        "run-queue time {runq_traced} ns vs schedstat run_delay {runq_truth} ns: {:.1}% off",
        err * 100.0
    );
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn kernel_lock_contention_matches_perf() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("mmap_storm");
    let perf_out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("mmap_storm.perf");
    let mut work = Gated::start(under_perf_event(
        "lock:contention_begin",
        None,
        &perf_out,
        &bin,
        &["4", "5000"],
    ));
    let tracer = Tracer::start(&["--pid", &work.pid.to_string()], "mmap_storm");
    work.go();
    work.finish(Duration::from_secs(60));
    let (text, report) = tracer.finish(Duration::from_secs(30));
    let perf = perf_count(&perf_out);
    let traced: u64 = report["kernel_locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["contentions"].as_u64().unwrap())
        .sum();
    assert!(
        perf > 100,
        "the workload should contend on kernel locks (perf saw {perf})"
    );
    // perf stops counting a thread inside do_exit, before its last kernel-lock
    // waits (tasklist_lock and friends), which the tracer still sees; and a
    // kernel lock contended inside the tracer's own BPF program (a map's
    // bucket lock) fires a nested tracepoint the kernel does not run BPF
    // for, which perf still counts. Within 1% (+10) either way.
    let slack = perf / 100 + 10;
    assert!(
        traced + slack >= perf && traced <= perf + slack,
        "tracer {traced} vs perf {perf} lock:contention_begin (slack {slack})"
    );
    eprintln!("kernel locks: tracer {traced}, perf {perf}");
    assert!(
        report["kernel_locks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kind"] == "rwsem:W"),
        "mmap_lock write contention is an rwsem:W"
    );
    assert!(text.contains("KERNEL LOCKS"), "{text}");
    assert_no_drops(&report);
}

/// One kernel lock contended by several processes (a directory's inode
/// rwsem, its files created and unlinked by forked workers) is one row,
/// split per process; each process's part equals bpftrace's count of its
/// lock:contention_begin events on that address.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn a_kernel_lock_contended_by_many_processes_is_one_row_split_per_process() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("dir_storm");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dir_storm.d");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(&bin);
    cmd.arg(&dir).args(["4", "20000"]);
    let mut work = Gated::start(cmd);
    let bt = Bpftrace::start(
        "tracepoint:lock:contention_begin /comm == \"dir_storm\"/ { @k[(uint64)args->lock_addr, pid] = count(); }",
    );
    let tracer = Tracer::start(&["--pid", &work.pid.to_string()], "dir_storm");
    work.go();
    let rest = work.finish(Duration::from_secs(120));
    let (text, report) = tracer.finish(Duration::from_secs(60));
    let truth: BTreeMap<(u64, u32), u64> = bt
        .finish()
        .into_iter()
        .filter_map(|(_, key, n)| {
            let (a, p) = key.split_once(',')?;
            let a = a.trim();
            // bpftrace prints the address as a signed integer.
            let addr = match a.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).ok()?,
                None => a.parse::<i64>().ok()? as u64,
            };
            Some(((addr, p.trim().parse().ok()?), n))
        })
        .collect();
    assert!(rest.contains("failed=0"), "{rest}");
    let rows = report["kernel_locks"].as_array().unwrap();
    let mut ids: Vec<(String, String)> = rows
        .iter()
        .map(|k| {
            (
                k["address"].as_str().unwrap().to_string(),
                k["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "one row per kernel lock: {text}");
    let hot = &rows[0];
    let addr = u64::from_str_radix(
        hot["address"].as_str().unwrap().trim_start_matches("0x"),
        16,
    )
    .unwrap();
    let procs = hot["processes"].as_array().expect("processes");
    assert!(
        procs.len() >= 2,
        "the directory's lock is contended by several workers: {text}"
    );
    for p in procs {
        let pid = p["pid"].as_u64().unwrap() as u32;
        // This process's waits on the address, every kind.
        let traced: u64 = rows
            .iter()
            .filter(|k| k["address"] == hot["address"])
            .flat_map(|k| k["processes"].as_array().unwrap())
            .filter(|q| q["pid"] == p["pid"])
            .map(|q| q["contentions"].as_u64().unwrap())
            .sum();
        let want = truth.get(&(addr, pid)).copied().unwrap_or(0);
        // As in kernel_lock_contention_matches_perf: within 1% (+10).
        let slack = want / 100 + 10;
        assert!(
            traced + slack >= want && traced <= want + slack,
            "pid {pid}: tracer {traced} vs bpftrace {want} on {addr:#x}"
        );
    }
    assert_eq!(
        hot["contentions"].as_u64().unwrap(),
        procs
            .iter()
            .map(|p| p["contentions"].as_u64().unwrap())
            .sum::<u64>()
    );
    assert!(
        text.contains("PROCESSES") && text.contains(&format!("{}: pid ", procs.len())),
        "{text}"
    );
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn sched_only_mode_sees_sleeping_waits_on_the_same_lock() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("hold_time");
    let mut cmd = Command::new(&bin);
    cmd.args(["10000", "40"]);
    let mut work = Gated::start(cmd);
    let mutex = field(&work.first_line, "mutex").unwrap().to_string();
    let tracer = Tracer::start(
        &["--mode", "sched", "--pid", &work.pid.to_string()],
        "sched_mode",
    );
    work.go();
    let rest = work.finish(Duration::from_secs(60));
    let (text, report) = tracer.finish(Duration::from_secs(30));
    assert_eq!(report["mode"], "sched");
    let syscall_hooks: Vec<_> = report["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["name"].as_str().unwrap().starts_with("syscalls:") && h["attached"] == true)
        .collect();
    assert!(
        syscall_hooks.is_empty(),
        "no syscall tracepoint in sched mode: {syscall_hooks:?}"
    );
    // The same address the full mode reports (the workload's own &hold_mu),
    // one sleeping wait per round, timed from blocking to running again.
    let lock = lock_at(&report, &mutex);
    assert_eq!(lock["symbol"], "hold_mu");
    assert_eq!(lock["contentions"].as_u64(), Some(40), "{lock:#}");
    let truth: f64 = field(&rest, "median_wait_ns").unwrap().parse().unwrap();
    let p50 = lock["wait"]["p50_ns"].as_f64().unwrap();
    assert!(
        (p50 - truth).abs() / truth <= 0.05,
        "p50 {p50:.0} vs the workload's {truth:.0}"
    );
    assert!(
        text.contains("Sched-only mode"),
        "the report says what it cannot see"
    );
    // The waiter's stack, unwound at its switch-out: the true call site
    // (the function that called pthread_mutex_lock) and the kind.
    assert_eq!(
        lock["call_site_unwind"].as_str(),
        Some("eh_frame"),
        "{lock:#}"
    );
    assert!(
        lock["call_site"]
            .as_str()
            .is_some_and(|c| c.starts_with("waiter") && c.contains("hold_time.c:")),
        "call site: {lock:#}"
    );
    assert_eq!(lock["kind"].as_str(), Some("mutex"), "{lock:#}");
    assert_no_drops(&report);
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn p50_matches_a_known_hold_time() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("hold_time");
    let mut cmd = Command::new(&bin);
    cmd.args(["10000", "40"]); // hold 10 ms, 40 rounds
    let mut work = Gated::start(cmd);
    let mutex = field(&work.first_line, "mutex").unwrap().to_string();
    let work_pid = work.pid as u64;
    let tracer = Tracer::start(&["--pid", &work.pid.to_string()], "hold_time");
    work.go();
    let rest = work.finish(Duration::from_secs(60));
    let (_, report) = tracer.finish(Duration::from_secs(30));
    let truth: f64 = field(&rest, "median_wait_ns").unwrap().parse().unwrap();
    let lock = lock_at(&report, &mutex);
    let p50 = lock["wait"]["p50_ns"].as_f64().unwrap();
    let err = (p50 - truth).abs() / truth;
    assert!(
        err <= 0.05,
        "p50 {p50:.0} ns vs the workload's own median {truth:.0} ns: {:.1}% off (limit 5%)",
        err * 100.0
    );
    assert_eq!(
        lock["outcomes"]["slept"].as_u64(),
        Some(40),
        "one sleeping wait per round"
    );
    // Wakers: the holder (the main thread, tid == pid) issued the wakes that
    // released the waiter. The waiter's own unlocks also call FUTEX_WAKE (the
    // word still says "contended") but wake nobody.
    let pid = work_pid;
    let wakers: Vec<u64> = lock["threads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["woken"].as_u64() > Some(0))
        .map(|t| t["tid"].as_u64().unwrap())
        .collect();
    assert_eq!(wakers, vec![pid], "the holder is the only waker: {lock:#}");
    // Waker call sites: the 40 releasing wakes (fewer than 64 per thread,
    // so every one was sampled) all have a site.
    let waker_wakes: u64 = lock["waker_sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["wakes"].as_u64().unwrap())
        .sum();
    assert_eq!(waker_wakes, 40, "{:#}", lock["waker_sites"]);
    // The scheduler's view of the same waits: 40 futex sleeps, blocked about
    // as long as the waiter measured, and quickly running once woken on an
    // otherwise idle machine.
    let sched = &lock["sched"];
    assert_eq!(sched["sleeps"].as_u64(), Some(40), "{sched}");
    let blocked = sched["blocked_ns"].as_f64().unwrap() / 40.0;
    assert!(
        (blocked - truth).abs() / truth <= 0.10,
        "blocked {blocked:.0} ns per sleep vs {truth:.0}"
    );
    assert!(sched["runnable_share"].as_f64().unwrap() < 0.2, "{sched}");
    // Wakeup → running latency of those 40 wakeups, as a histogram.
    let wl = &sched["wakeup_latency"];
    let n = wl["count"].as_u64().unwrap();
    assert!((38..=40).contains(&n), "{n} wakeups in the histogram: {wl}");
    let in_buckets: u64 = wl["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(in_buckets, n);
    assert!(
        wl["p50_ns"].as_u64().unwrap() < 2_000_000,
        "an idle machine runs a woken thread quickly: {wl}"
    );
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn launched_command_is_traced_from_the_start_with_its_forks() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("sequencer");
    // A shell that forks the workload: the tracer must follow into the child.
    let script = format!("{} --seconds 1 --threads 3", bin.display());
    let mut tracer = Command::new(tracer_bin());
    tracer.args(["contention", "--", "sh", "-c", &format!("{script}; true")]);
    let out = output(&mut tracer);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tracer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("global_seq_batch_seq_mu_"),
        "followed child's lock reported:\n{text}"
    );
    assert!(
        text.contains("followed"),
        "the forked child is listed as followed:\n{text}"
    );
}

fn detaches_on(sig: i32, tag: &str) {
    let bin = c_workload("sequencer");
    let mut work = Command::new(&bin)
        .args(["--seconds", "30"])
        .spawn()
        .unwrap();
    let tracer = Tracer::start(&["--pid", &work.id().to_string()], tag);
    let held = tracer.held.clone();
    assert!(
        still_loaded(&held).0.len() == held.progs.len() && !held.progs.is_empty(),
        "programs are loaded while tracing: {held:?}"
    );
    // Contended waits while traced, then the signal.
    wait_for_switches(work.id(), 200);
    tracer.signal(sig);
    let (text, report) = tracer.finish(Duration::from_secs(20));
    let _ = work.kill();
    let _ = work.wait();
    assert!(
        text.contains("VERDICT"),
        "the full report is printed after the signal:\n{text}"
    );
    assert!(report["locks"].as_array().is_some_and(|l| !l.is_empty()));
    assert_all_detached(&held, &report);
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn sigint_detaches_everything() {
    let Some(_serial) = privileged() else { return };
    detaches_on(libc::SIGINT, "sigint");
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn sigterm_detaches_everything() {
    let Some(_serial) = privileged() else { return };
    detaches_on(libc::SIGTERM, "sigterm");
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn target_exit_detaches_everything() {
    let Some(_serial) = privileged() else { return };
    // 3 s: enough margin for the tracer to attach on a loaded machine
    // before the target ends by itself.
    let bin = c_workload("sequencer");
    let mut work = Command::new(&bin)
        .args(["--seconds", "3"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let tracer = Tracer::start(&["--pid", &work.id().to_string()], "target_exit");
    let held = tracer.held.clone();
    let _ = work.wait();
    let (text, report) = tracer.finish(Duration::from_secs(20));
    assert!(text.contains("VERDICT"));
    assert_all_detached(&held, &report);
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn duration_stops_tracing_and_terminates_a_launched_command() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("sequencer");
    let t0 = std::time::Instant::now();
    let out = output(
        Command::new(tracer_bin())
            .args(["contention", "--duration", "700ms", "--"])
            .arg(&bin)
            .args(["--seconds", "60"]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t0.elapsed()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("traced 0.7"), "duration honoured:\n{text}");
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn bad_targets_fail_with_one_sentence_and_their_code() {
    let Some(_serial) = privileged() else { return };
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--pid", "999999999"], 5, "no process with pid"),
        (&["--pid", "2"], 5, "kernel thread"),
        (&["--", "/nonexistent/program"], 5, "cannot execute"),
        (&["--pid", "1", "--consider-at", "5000"], 2, "--consider-at"),
        (&["--pid", "1", "--duration", "soon"], 2, "duration"),
    ];
    for (args, code, needle) in cases {
        let out = output(Command::new(tracer_bin()).arg("contention").args(*args));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    }
    // The report cannot be written: exit 7, before anything is traced.
    let out = output(Command::new(tracer_bin()).args([
        "contention",
        "--json",
        "/nonexistent-dir/run.json",
        "--",
        "true",
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(err.contains("cannot write the JSON report"), "{err}");
    // A process that has exited but is not reaped yet (a zombie).
    let mut zombie = Command::new("true").spawn().unwrap();
    assert!(eventually(Duration::from_secs(10), || proc_state(
        zombie.id()
    ) == Some('Z')));
    let out =
        output(Command::new(tracer_bin()).args(["contention", "--pid", &zombie.id().to_string()]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("already exited"), "{err}");
    zombie.wait().unwrap();
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn unprivileged_user_is_told_to_use_sudo() {
    let Some(_serial) = privileged() else { return };
    let out = output(Command::new("setpriv").args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        tracer_bin(),
        "contention",
        "--pid",
        "1",
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("sudo"), "{err}");
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn tracefs_is_mounted_when_missing() {
    let Some(_serial) = privileged() else { return };
    let events = std::path::Path::new("/sys/kernel/tracing/events");
    if events.is_dir() {
        let out = output(Command::new("umount").arg("/sys/kernel/tracing"));
        assert!(
            out.status.success(),
            "unmounting tracefs for the test: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!events.is_dir(), "tracefs still mounted");
    let bin = c_workload("sequencer");
    let out = output(
        Command::new(tracer_bin())
            .args(["contention", "--"])
            .arg(&bin)
            .args(["--seconds", "0.3"]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(events.is_dir(), "the tracer mounted tracefs");
    assert!(String::from_utf8_lossy(&out.stdout).contains("global_seq_batch_seq_mu_"));
}

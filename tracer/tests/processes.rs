//! Process trees: a server that forks its workers, traced by --pid (forks
//! followed), with --children (workers already running), and with
//! --no-follow (the untraced children reported). Ground truth: bpftrace's
//! count of each worker's futex waits on its mutex, by pid.

mod common;

use std::{collections::BTreeMap, process::Command, time::Duration};

use common::*;
use serde_json::Value;

/// bpftrace counting FUTEX_WAIT_PRIVATE calls on one address by pid, for
/// the processes named `comm`.
struct WaitsByPid(Bpftrace);

impl WaitsByPid {
    fn start(comm: &str, addr: &str) -> Self {
        Self(Bpftrace::start(&format!(
            "tracepoint:syscalls:sys_enter_futex /comm == \"{comm}\" && args->op == 128 && args->uaddr == {addr}/ {{ @w[pid] = count(); }}"
        )))
    }

    fn finish(self) -> BTreeMap<u32, u64> {
        self.0
            .finish()
            .into_iter()
            .map(|(_, pid, n)| (pid.parse().unwrap(), n))
            .collect()
    }
}

/// The waits on `addr` the report counted in process `pid` (its wait
/// channel there).
fn waits_in(report: &Value, pid: u32, addr: &str) -> u64 {
    report["locks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["pid"].as_u64() == Some(u64::from(pid)) && l["address"] == addr)
        .map(|l| l["contentions"].as_u64().unwrap())
        .sum()
}

fn target(report: &Value, pid: u32) -> Option<&Value> {
    report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["pid"].as_u64() == Some(u64::from(pid)))
}

fn workers_of(rest: &str) -> Vec<u32> {
    rest.lines()
        .filter_map(|l| field(l, "worker")?.parse().ok())
        .collect()
}

/// --pid on a server that forks 3 workers after the tracer attached: every
/// worker is followed and each one's waits equal bpftrace's; with
/// --no-follow the workers are not traced and the report says so.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn a_server_forking_after_attach_is_followed_by_pid() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("forking_server");
    let mut cmd = Command::new(&bin);
    cmd.args(["3", "2", "40000"]);
    let mut work = Gated::start(cmd);
    let addr = field(&work.first_line, "mutex").unwrap().to_string();
    let bt = WaitsByPid::start("forking_server", &addr);
    let tracer = Tracer::start(&["--pid", &work.pid.to_string()], "processes_follow");
    work.go();
    let rest = work.finish(Duration::from_secs(120));
    let (text, report) = tracer.finish(Duration::from_secs(60));
    let truth = bt.finish();
    assert!(rest.contains("failed=0"), "{rest}");
    let workers = workers_of(&rest);
    assert_eq!(workers.len(), 3, "{rest}");
    let mut contended = 0;
    for &w in &workers {
        let t = target(&report, w).unwrap_or_else(|| panic!("worker {w} not traced: {text}"));
        assert_eq!(t["followed"], true);
        let want = truth.get(&w).copied().unwrap_or(0);
        assert_eq!(
            waits_in(&report, w, &addr),
            want,
            "worker {w}: bpftrace {truth:?}"
        );
        contended += u64::from(want > 0);
    }
    assert!(
        contended >= 2,
        "the workers' mutexes were contended: {truth:?}"
    );
    assert!(
        text.contains("PROCESSES 4 traced (1 root, 3 followed)"),
        "{text}"
    );
    assert!(!text.contains("UNTRACED"), "{text}");
    // Each worker's own mutex, one program: one group, its waits the sum
    // of bpftrace's, decided on its busiest worker; --per-process lists
    // each worker's row, told apart by pid.
    let groups = report["lock_groups"].as_array().expect("lock_groups");
    assert_eq!(groups.len(), 1, "{text}");
    let g = &groups[0];
    let want: Vec<u32> = workers
        .iter()
        .copied()
        .filter(|w| truth.get(w).copied().unwrap_or(0) > 0)
        .collect();
    let mut pids: Vec<u32> = g["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u32)
        .collect();
    pids.sort_unstable();
    let mut sorted = want.clone();
    sorted.sort_unstable();
    assert_eq!(pids, sorted, "{g:#}");
    assert_eq!(
        g["contentions"].as_u64().unwrap(),
        want.iter().map(|w| truth[w]).sum::<u64>()
    );
    let busiest = *want
        .iter()
        .max_by_key(|w| (truth[*w], std::cmp::Reverse(**w)))
        .unwrap();
    assert_eq!(g["busiest_pid"].as_u64(), Some(u64::from(busiest)), "{g:#}");
    assert!(
        text.contains(&format!("worker_mu ×{} processes", want.len()))
            && text.contains("--per-process"),
        "{text}"
    );
    let json = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("processes_follow.json");
    let out = Command::new(tracer_bin())
        .args(["report", "--per-process"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success());
    let per = String::from_utf8_lossy(&out.stdout);
    for w in &want {
        assert!(per.contains(&format!("worker_mu [pid {w}]")), "{per}");
    }

    // --no-follow: the same server's workers are not traced, and the
    // report names them (each is seen in /proc: it works for a while, and
    // a zombie waiting to be reaped counts too).
    let mut cmd = Command::new(&bin);
    cmd.args(["3", "2", "200000"]);
    let mut work = Gated::start(cmd);
    let addr = field(&work.first_line, "mutex").unwrap().to_string();
    let tracer = Tracer::start(
        &["--pid", &work.pid.to_string(), "--no-follow"],
        "processes_no_follow",
    );
    work.go();
    let rest = work.finish(Duration::from_secs(120));
    let (text, report) = tracer.finish(Duration::from_secs(60));
    let workers = workers_of(&rest);
    for &w in &workers {
        assert!(target(&report, w).is_none(), "worker {w} traced");
        assert_eq!(waits_in(&report, w, &addr), 0);
    }
    let root = target(&report, work_pid(&report)).unwrap();
    let untraced: Vec<u32> = root["untraced_children"]
        .as_array()
        .expect("untraced_children")
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let mut sorted = workers.clone();
    sorted.sort_unstable();
    assert_eq!(untraced, sorted, "{text}");
    assert!(
        text.contains("UNTRACED pid ")
            && text.contains("3 descendant processes that were not traced")
            && text.contains("without --no-follow"),
        "{text}"
    );
}

fn work_pid(report: &Value) -> u32 {
    report["targets"][0]["pid"].as_u64().unwrap() as u32
}

/// A server whose workers were forked before the tracer started: without
/// --children they are reported untraced; with it each worker's waits
/// equal bpftrace's, and each shows its process title (its rewritten argv)
/// and its program.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn children_takes_the_running_workers_with_their_titles() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("forking_server");
    let mut cmd = Command::new(&bin);
    cmd.args(["3", "2", "40000", "prefork"]);
    let mut work = Gated::start(cmd);
    let addr = field(&work.first_line, "mutex").unwrap().to_string();
    let workers: Vec<u32> = field(&work.line(), "workers")
        .expect("workers=")
        .split(',')
        .map(|p| p.parse().unwrap())
        .collect();
    let pid = work.pid.to_string();

    // The workers wait at their gate: a short run without --children.
    let tracer = Tracer::start(&["--pid", &pid, "--duration", "300ms"], "processes_plain");
    let (text, report) = tracer.finish(Duration::from_secs(60));
    let untraced: Vec<u32> = report["targets"][0]["untraced_children"]
        .as_array()
        .expect("untraced_children")
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(untraced, workers, "{text}");
    assert!(text.contains("--children"), "{text}");

    let bt = WaitsByPid::start("forking_server", &addr);
    let tracer = Tracer::start(&["--pid", &pid, "--children"], "processes_children");
    work.go();
    let rest = work.finish(Duration::from_secs(120));
    let (text, report) = tracer.finish(Duration::from_secs(60));
    let truth = bt.finish();
    assert!(rest.contains("failed=0"), "{rest}");
    for (k, &w) in workers.iter().enumerate() {
        let t = target(&report, w).unwrap_or_else(|| panic!("worker {w} not traced: {text}"));
        assert_eq!(
            t["command_line"].as_array().unwrap().concat_str(),
            format!("forking_server: worker {k}"),
            "{t:#}"
        );
        assert!(
            t["program"].as_str().unwrap().ends_with("/forking_server"),
            "{t:#}"
        );
        assert_eq!(
            waits_in(&report, w, &addr),
            truth.get(&w).copied().unwrap_or(0),
            "worker {w}: bpftrace {truth:?}"
        );
    }
    assert!(
        truth.values().filter(|&&n| n > 0).count() >= 2,
        "contended: {truth:?}"
    );
    assert!(
        report["targets"][0]["untraced_children"].is_null(),
        "{text}"
    );
    assert!(text.contains("forking_server: worker 0"), "{text}");
}

trait ConcatStr {
    fn concat_str(&self) -> String;
}

impl ConcatStr for Vec<Value> {
    fn concat_str(&self) -> String {
        self.iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Forked workers contending one process-shared mutex in shared memory:
/// one lock row (its word keyed by the mapping, as the kernel keys it)
/// whose waits are the sum of each worker's, whose wakes are the waiters
/// woken, with a per-process split equal to bpftrace's per pid.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn a_mutex_in_shared_memory_is_one_lock_across_processes() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("shared_mutex");
    let mut cmd = Command::new(&bin);
    cmd.args(["3", "30000"]);
    let mut work = Gated::start(cmd);
    let addr = field(&work.first_line, "mutex").unwrap().to_string();
    // Not private: op 0 is FUTEX_WAIT, 1 FUTEX_WAKE (what a pshared glibc
    // mutex uses); the woken waiters are the wake calls' return values.
    let bt = Bpftrace::start(&format!(
        "tracepoint:syscalls:sys_enter_futex /comm == \"shared_mutex\" && args->uaddr == {addr}/ {{ if (args->op == 0) {{ @w[pid] = count(); }} if (args->op == 1) {{ @in[tid] = 1; }} }}
         tracepoint:syscalls:sys_exit_futex /@in[tid]/ {{ @woken[pid] = sum(args->ret); delete(@in[tid]); }}"
    ));
    let tracer = Tracer::start(&["--pid", &work.pid.to_string()], "processes_shared");
    work.go();
    let rest = work.finish(Duration::from_secs(120));
    let (text, report) = tracer.finish(Duration::from_secs(60));
    let truth = bt.finish();
    assert!(rest.contains("failed=0"), "{rest}");
    assert_eq!(field(&rest, "count"), field(&rest, "expected"), "{rest}");
    let of = |map: &str| -> BTreeMap<u32, u64> {
        truth
            .iter()
            .filter(|(m, _, _)| m == map)
            .map(|(_, pid, n)| (pid.parse().unwrap(), *n))
            .collect()
    };
    let (waits, woken) = (of("w"), of("woken"));
    let total: u64 = waits.values().sum();
    assert!(
        waits.values().filter(|&&n| n > 0).count() >= 2,
        "contended by at least two workers: {truth:?}"
    );
    let rows: Vec<&Value> = report["locks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| !l["shared"].is_null())
        .collect();
    assert_eq!(rows.len(), 1, "one shared lock: {text}");
    let l = rows[0];
    assert_eq!(
        l["contentions"].as_u64().unwrap(),
        total,
        "{truth:?}\n{text}"
    );
    assert_eq!(
        l["wakes"]["woken"].as_u64().unwrap(),
        woken.values().sum::<u64>(),
        "{truth:?}"
    );
    assert_eq!(
        l["wakes"]["woken"], l["outcomes"]["slept"],
        "every waiter that slept was woken by a wake counted on the row"
    );
    let shared = &l["shared"];
    assert!(
        shared["object"].as_str().unwrap().starts_with("/dev/zero"),
        "{shared:#}"
    );
    for p in shared["processes"].as_array().unwrap() {
        let pid = p["pid"].as_u64().unwrap() as u32;
        assert_eq!(p["address"], addr.as_str());
        assert_eq!(
            p["contentions"].as_u64().unwrap(),
            waits.get(&pid).copied().unwrap_or(0),
            "pid {pid}: {truth:?}"
        );
        assert_eq!(
            p["woken"].as_u64().unwrap(),
            woken.get(&pid).copied().unwrap_or(0),
            "pid {pid}: {truth:?}"
        );
    }
    let listed: Vec<u32> = shared["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap() as u32)
        .collect();
    for pid in waits.keys().chain(woken.keys()) {
        assert!(listed.contains(pid), "pid {pid} missing: {shared:#}");
    }
    assert!(
        text.contains("shared by ") && text.contains("per process: pid "),
        "{text}"
    );
    // No process has a row of its own for the word.
    assert!(
        report["locks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| !(l["shared"].is_null() && l["address"] == addr.as_str())),
        "{text}"
    );
}

/// Function probes reach the processes traced with --children: each of
/// a preforked server's workers calls worker_round() THREADS × ITERS
/// times, and the probes count every call (the workers wait at their gate
/// while the tracer attaches).
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn function_probes_reach_the_children() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("forking_server");
    let mut cmd = Command::new(&bin);
    cmd.args(["3", "2", "3000", "prefork"]);
    let mut work = Gated::start(cmd);
    let _workers = work.line();
    let tracer = Tracer::start(
        &[
            "--pid",
            &work.pid.to_string(),
            "--children",
            "--uprobe",
            "worker_round",
        ],
        "processes_probes",
    );
    work.go();
    let rest = work.finish(Duration::from_secs(120));
    let (text, report) = tracer.finish(Duration::from_secs(60));
    assert!(rest.contains("failed=0"), "{rest}");
    let f = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "worker_round")
        .unwrap_or_else(|| panic!("worker_round not probed: {text}"));
    assert_eq!(f["calls"].as_u64(), Some(3 * 2 * 3000), "{f:#}");
}

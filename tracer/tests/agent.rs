//! `tracer agent` against real components on loopback: a real Prometheus
//! scraping it (rates checked against the workload's own count of its
//! slow-path waits), `go tool pprof` reading its mutex profile over HTTP,
//! processes picked up at exec and evicted at exit, and nothing left
//! loaded after SIGTERM.

mod common;

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use common::*;
use serde_json::Value;

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET over HTTP/1.0 (no chunking): (status, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// A query string's value, percent-encoded.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The agent, stopped (SIGTERM) and reaped when dropped.
struct Agent {
    child: Child,
    port: u16,
}

impl Agent {
    fn start(args: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new(tracer_bin())
            .arg("agent")
            .args(args)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let a = Self { child, port };
        assert!(
            eventually(Duration::from_secs(20), || get(port, "/healthz")
                .is_some_and(|(s, _)| s == 200)),
            "the agent never answered /healthz"
        );
        a
    }

    fn get(&self, path: &str) -> (u16, String) {
        get(self.port, path).unwrap_or_else(|| panic!("GET {path} failed"))
    }

    /// The value of the one sample of `metric` whose labels contain
    /// `with` (e.g. `map="lock_threads"`).
    fn metric(&self, metric: &str, with: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics");
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| {
                l.split(['{', ' ']).next() == Some(metric) && (with.is_empty() || l.contains(with))
            })
            .and_then(|l| {
                // NAME{LABELS} VALUE [TS], or NAME VALUE [TS].
                let rest = &l[metric.len()..];
                let rest = rest.rsplit_once('}').map_or(rest, |(_, v)| v);
                rest.split_whitespace().next()?.parse().ok()
            })
    }

    /// SIGTERM; the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the agent did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The fixture's own log: (unix ms, slept waits) every 100 ms.
fn ground_truth(log: &Path) -> Vec<(f64, f64)> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
}

/// The count at `ms`, interpolated between the log's lines.
fn count_at(log: &[(f64, f64)], ms: f64) -> f64 {
    let i = log
        .iter()
        .position(|&(t, _)| t >= ms)
        .expect("log covers the time");
    assert!(i > 0, "log starts after {ms}");
    let ((t0, c0), (t1, c1)) = (log[i - 1], log[i]);
    c0 + (c1 - c0) * (ms - t0) / (t1 - t0).max(1.0)
}

/// A real Prometheus scrapes the agent: `rate()` of the hot lock's
/// contentions is within 5% of the fixture's own count of the futex waits
/// that slept over the same range, and the decision gauge says 2.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn prometheus_rate_matches_the_workloads_own_count() {
    let Some(_serial) = privileged() else { return };
    let Some(prometheus) = tool("prometheus") else {
        return;
    };
    let bin = c_workload("agent_lock");
    let log = tmp("agent-lock.log");
    let _ = std::fs::remove_file(&log);
    let mut fixture = Command::new(&bin)
        .args(["4", "40"])
        .arg(&log)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = fixture.id().to_string();
    let agent = Agent::start(&["--pid", &pid, "--window", "2s"]);
    let dir = tmp("prometheus");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: tracer\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            agent.port
        ),
    )
    .unwrap();
    let prom_port = free_port();
    let mut prom = Command::new(&prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .unwrap();
    let query = |q: &str, at: f64| -> Value {
        let (status, body) = get(
            prom_port,
            &format!("/api/v1/query?query={}&time={at:.3}", enc(q)),
        )
        .unwrap_or((0, String::new()));
        assert_eq!(status, 200, "{q}: {body}");
        serde_json::from_str(&body).unwrap()
    };
    let series = r#"tracer_lock_contentions_total{lock="hot_lock"}"#;
    // Ten windows of scrapes.
    std::thread::sleep(Duration::from_secs(22));
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // A range whose windows have all ended and been scraped.
    let (at, range) = (now - 3.0, 14.0);
    let v = query(&format!("rate({series}[{range}s])"), at);
    let result = v["data"]["result"].as_array().unwrap().clone();
    // The windows' own samples in that range (each stamped with its
    // window's end): the fixture's count is taken over the same span.
    let samples = query(&format!("{series}[{range}s]"), at);
    let decision = query(r#"tracer_lock_decision{lock="hot_lock"}"#, at);
    let _ = prom.kill();
    let _ = prom.wait();
    drop(agent);
    let _ = fixture.kill();
    let _ = fixture.wait();
    assert_eq!(result.len(), 1, "one hot_lock series: {v:#}");
    let got: f64 = result[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert_eq!(result[0]["metric"]["pid"], pid.as_str(), "{v:#}");
    let points: Vec<(f64, f64)> = samples["data"]["result"][0]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("{samples:#}"))
        .iter()
        .map(|p| {
            (
                p[0].as_f64().unwrap(),
                p[1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert!(points.len() >= 4, "windows in {range} s: {samples:#}");
    let ((t0, v0), (t1, v1)) = (points[0], points[points.len() - 1]);
    let truth = ground_truth(&log);
    let counted = count_at(&truth, t1 * 1e3) - count_at(&truth, t0 * 1e3);
    let want = counted / (t1 - t0);
    eprintln!(
        "PromQL rate({series}[{range}s]) = {got:.1}/s; the fixture's own over its windows ({:.1} s): {want:.1}/s; counter +{} against the fixture's +{counted:.0}",
        t1 - t0,
        v1 - v0
    );
    assert!(want > 1000.0, "the fixture contends: {want}/s");
    assert!(
        (got - want).abs() <= 0.05 * want,
        "Prometheus says {got:.1}/s, the fixture counted {want:.1}/s"
    );
    let d = decision["data"]["result"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{decision:#}");
    assert_eq!(d[0]["value"][1], "2", "the decision gauge: {decision:#}");
}

/// `go tool pprof -raw` reads /debug/pprof/mutex over HTTP; its totals
/// equal those of /report.json of the same window.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn go_tool_pprof_reads_the_mutex_endpoint() {
    let Some(_serial) = privileged() else { return };
    let Some(go) = tool("go") else { return };
    let bin = c_workload("agent_lock");
    let mut fixture = Command::new(&bin)
        .args(["3", "30"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = fixture.id().to_string();
    // Windows long enough that one covers both reads.
    let agent = Agent::start(&["--pid", &pid, "--window", "4s"]);
    let (s, body) = agent.get("/report.json");
    assert_eq!(s, 503, "no window has ended yet: {body}");
    assert!(body.contains("no window has ended yet"), "{body}");
    assert!(eventually(Duration::from_secs(15), || agent
        .get("/report.json")
        .0
        == 200));
    let url = format!("http://127.0.0.1:{}/debug/pprof/mutex", agent.port);
    let (raw, count, delay, report) = (0..5)
        .find_map(|_| {
            let before = agent.get("/report.json").1;
            let out = output(
                Command::new(&go)
                    .args(["tool", "pprof", "-raw", "-symbolize=none"])
                    .arg(&url)
                    .env("GOCACHE", tmp("gocache"))
                    .env("PPROF_TMPDIR", tmp("pprof")),
            );
            assert!(out.status.success(), "{out:?}");
            let after = agent.get("/report.json").1;
            // The window moved on between the reads: again.
            (before == after).then(|| {
                let raw = String::from_utf8_lossy(&out.stdout).into_owned();
                let (c, d) = pprof_totals(&raw);
                (raw, c, d, serde_json::from_str::<Value>(&after).unwrap())
            })
        })
        .expect("five tries, and each straddled a window's end");
    drop(agent);
    let _ = fixture.kill();
    let _ = fixture.wait();
    let want_count: u64 = view_rows(&report)
        .iter()
        .map(|l| l["contentions"].as_u64().unwrap())
        .sum();
    eprintln!(
        "go tool pprof -raw: {count} contentions, {delay} ns; report.json: {want_count}, {} ns",
        total_wait_ns(&report)
    );
    assert!(want_count > 1000, "the fixture contends: {want_count}");
    assert_eq!(count, want_count, "contentions:\n{raw}");
    assert_eq!(delay, total_wait_ns(&report), "delay");
    assert!(raw.contains("hot_lock"), "{raw}");
}

/// `/debug/pprof/profile?seconds=N`, as a pprof scraper asks for it: `go
/// tool pprof` reads a CPU profile of the traced program (built without
/// frame pointers), whose three functions' self shares are those of the
/// program's own work units (60/30/10, within 5 points) and whose CPU time
/// is the thread's as the kernel accounted it (schedstat); a second
/// request meanwhile is told to come back, a bad one is refused.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn go_tool_pprof_takes_a_cpu_profile_on_request() {
    let Some(_serial) = privileged() else { return };
    let Some(go) = tool("go") else { return };
    let bin = c_workload_with("cpu_mix", "-fomit-frame-pointer");
    let mut fixture = Command::new(&bin)
        .arg("30")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = fixture.id();
    let agent = Agent::start(&["--pid", &pid.to_string(), "-F", "299"]);
    let (s, body) = agent.get("/debug/pprof/profile?seconds=0");
    assert_eq!(s, 400, "{body}");
    assert!(body.starts_with("seconds must be"), "{body}");
    let cpu_ns = || {
        std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let url = format!(
        "http://127.0.0.1:{}/debug/pprof/profile?seconds=4",
        agent.port
    );
    let held_before = held_by(agent.child.id());
    let before = cpu_ns();
    let pprof = std::thread::spawn({
        let go = go.clone();
        move || {
            output(
                Command::new(&go)
                    .args(["tool", "pprof", "-proto", "-symbolize=none"])
                    .arg(&url)
                    .env("GOCACHE", tmp("gocache"))
                    .env("PPROF_TMPDIR", tmp("pprof")),
            )
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    let (s, body) = agent.get("/debug/pprof/profile?seconds=1");
    assert_eq!(s, 429, "a second profile while one is taken: {body}");
    let held_during = held_by(agent.child.id());
    let out = pprof.join().unwrap();
    let after = cpu_ns();
    assert!(out.status.success(), "{out:?}");
    // The profile's own session came and went; the window's stayed.
    let only_during = |a: &std::collections::BTreeSet<u32>, b: &std::collections::BTreeSet<u32>| {
        a.difference(b)
            .copied()
            .collect::<std::collections::BTreeSet<u32>>()
    };
    let profile_held = Held {
        progs: only_during(&held_during.progs, &held_before.progs),
        maps: only_during(&held_during.maps, &held_before.maps),
        links: only_during(&held_during.links, &held_before.links),
        perf_events: 0,
    };
    assert!(
        !profile_held.progs.is_empty() && held_during.perf_events > held_before.perf_events,
        "the profile loaded programs and opened perf events: {held_before:?} → {held_during:?}"
    );
    assert_released(&profile_held);
    assert_eq!(held_by(agent.child.id()).progs, held_before.progs);
    let pb = tmp("agent-cpu.pb.gz");
    std::fs::write(&pb, &out.stdout).unwrap();
    let (raw, samples, ns) = pprof_raw(&go, &pb);
    assert!(
        raw.contains("samples/count cpu/nanoseconds[dflt]"),
        "sample types: {raw}"
    );
    // 4 s of one busy thread's CPU at 299 Hz.
    assert!(samples > 900, "{samples} samples");
    eprintln!(
        "CPU profile over HTTP: {samples} samples, {ns} ns of CPU; the thread ran {} ns \
         over the whole request",
        after - before
    );
    assert!(
        ns <= after - before,
        "{ns} ns sampled, {} ns run",
        after - before
    );
    assert!(
        ns as f64 >= 0.9 * 4e9,
        "{ns} ns sampled over 4 s of a busy thread"
    );
    let top = output(
        Command::new(&go)
            .args(["tool", "pprof", "-top", "-nodecount=50", "-symbolize=none"])
            .arg(&pb)
            .env("GOCACHE", tmp("gocache"))
            .env("PPROF_TMPDIR", tmp("pprof")),
    );
    let top = String::from_utf8_lossy(&top.stdout).into_owned();
    eprintln!("{top}");
    // "   2.41s 60.25% 60.25%      2.41s 60.25%  burn_alpha"
    let flat = |name: &str| -> f64 {
        top.lines()
            .find(|l| l.split_whitespace().last() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1)?.strip_suffix('%')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{top}"))
    };
    for (name, truth) in [
        ("burn_alpha", 60.0),
        ("burn_beta", 30.0),
        ("burn_gamma", 10.0),
    ] {
        let share = flat(name);
        assert!(
            (share - truth).abs() < 5.0,
            "{name}: {share}% of the samples, {truth}% of the work"
        );
    }
    drop(agent);
    let _ = fixture.kill();
    let _ = fixture.wait();
}

/// A process named as `--comm` asks, started after the agent, is traced
/// from its exec; once it exits its map entries are gone again, within
/// the same window.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn comm_match_is_picked_up_at_exec_and_evicted_at_exit() {
    let Some(_serial) = privileged() else { return };
    let src = c_workload("agent_lock");
    let bin = tmp("agentpick");
    std::fs::copy(&src, &bin).unwrap();
    let agent = Agent::start(&["--comm", "^agentpick$", "--window", "60s"]);
    let entries = |map: &str| {
        agent
            .metric("tracer_agent_map_entries", &format!("map=\"{map}\""))
            .unwrap()
    };
    let targets = || agent.metric("tracer_agent_targets", "").unwrap();
    // Live gauges are refreshed every second.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(targets(), 0.0, "nothing matches yet");
    let before = (
        entries("lock_threads"),
        entries("thread_sched"),
        entries("targets"),
    );
    let mut p = Command::new(&bin)
        .args(["2", "3"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(3), || targets() == 1.0),
        "the process that exec'd as agentpick was not picked up"
    );
    assert!(
        eventually(Duration::from_secs(3), || entries("lock_threads")
            > before.0),
        "its waits are not in the maps"
    );
    let during = (entries("lock_threads"), entries("thread_sched"));
    assert!(p.wait().unwrap().success());
    let after = || {
        (
            entries("lock_threads"),
            entries("thread_sched"),
            entries("targets"),
        )
    };
    let back = eventually(Duration::from_secs(5), || after() == before);
    eprintln!(
        "map entries (lock_threads, thread_sched, targets): before {before:?}, during {during:?}, after {:?}",
        after()
    );
    assert!(back, "entries before {before:?}, after exit {:?}", after());
    assert_eq!(targets(), 0.0);
}

/// SIGTERM: the agent ends its window, exits 0, and every program, map
/// and link it held is gone from the kernel.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn sigterm_leaves_nothing_loaded() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("agent_lock");
    let mut fixture = Command::new(&bin)
        .args(["2", "20"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = fixture.id().to_string();
    let state = tmp("agent-state");
    let _ = std::fs::remove_dir_all(&state);
    let mut agent = Agent::start(&[
        "--pid",
        &pid,
        "--mode",
        "full",
        "--window",
        "2s",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    // Past a window's rotation: two sessions' worth were loaded.
    std::thread::sleep(Duration::from_secs(3));
    let held = held_by(agent.child.id());
    let status = agent.stop();
    let _ = fixture.kill();
    let _ = fixture.wait();
    assert!(status.success(), "{status:?}");
    assert_released(&held);
    let last: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("report.json")).unwrap()).unwrap();
    assert_eq!(last["mode"], "full");
    assert!(
        view_rows(&last).iter().any(|l| l["label"] == "hot_lock"),
        "the last window's report in --state-dir"
    );
}

/// Bad input: one sentence, a non-zero exit, no panic (no root needed).
#[test]
fn bad_input_is_refused_in_one_sentence() {
    for (args, code, says) in [
        (vec![], 2, "say what to trace"),
        (vec!["--comm", "("], 2, "is not a regular expression"),
        (vec!["--cgroup", "/no/such/cgroup"], 5, "no cgroup at"),
        (vec!["--pid", "999999999"], 5, "no process"),
        (vec!["--comm", "x", "--window", "10ms"], 2, "--window"),
    ] {
        let out = output(Command::new(tracer_bin()).arg("agent").args(&args));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// `--cgroup`: a process that enters the cgroup and then execs is traced
/// (its exec carries the cgroup's id); one outside it is not.
#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn cgroup_members_are_traced_from_their_exec() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("agent_lock");
    // cgroup v2's mount: /sys/fs/cgroup, or /sys/fs/cgroup/unified on a
    // hybrid layout (this VM's).
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = info
        .lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            (post.split_whitespace().next() == Some("cgroup2"))
                .then(|| PathBuf::from(pre.split_whitespace().nth(4).unwrap()))
        })
        .expect("a cgroup2 mount");
    let cg = root.join(format!("tracer-test-{}", std::process::id()));
    std::fs::create_dir_all(&cg).unwrap();
    let mut agent = Agent::start(&["--cgroup", cg.to_str().unwrap(), "--window", "3s"]);
    // Outside the cgroup: not traced.
    let mut outside = Command::new(&bin)
        .args(["2", "5"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Inside: the shell moves itself in, then execs the workload.
    let mut inside = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec {} 2 5",
            cg.display(),
            bin.display()
        ))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let inside_pid = inside.id().to_string();
    assert!(
        eventually(Duration::from_secs(3), || agent
            .metric("tracer_agent_targets", "")
            == Some(1.0)),
        "the process in the cgroup was not picked up"
    );
    // A window later, its lock is exported under its pid, the other's not.
    assert!(eventually(Duration::from_secs(10), || agent
        .metric("tracer_lock_contentions_total", r#"lock="hot_lock""#)
        .is_some()));
    let (_, body) = agent.get("/metrics");
    let _ = outside.kill();
    let _ = outside.wait();
    let _ = inside.wait();
    assert!(agent.stop().success());
    let _ = std::fs::remove_dir(&cg);
    let pids: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("tracer_lock_contentions_total{"))
        .filter_map(|l| l.split("pid=\"").nth(1)?.split('"').next())
        .collect();
    assert!(
        !pids.is_empty() && pids.iter().all(|p| *p == inside_pid),
        "{pids:?} (inside: {inside_pid}):\n{body}"
    );
}

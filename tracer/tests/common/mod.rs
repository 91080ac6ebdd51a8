//! Helpers for the privileged integration tests: workloads, the tracer
//! binary, ground truth from perf, and waiting with deadlines (a test never
//! hangs: it panics with what it was waiting for).
#![allow(dead_code, reason = "each test file uses a subset")]

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    path::{Path, PathBuf},
    process::{Child, ChildStderr, ChildStdout, Command, Output, Stdio},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

/// Tracing tests run one at a time: they share the machine's two cores and
/// the kernel's program list.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the serial lock for a privileged test. Built for a user who is
/// not root (outside CI, not through `cargo xtask test`), these tests are
/// `#[ignore]`d with a message instead (tracer/build.rs sets the
/// `unprivileged` cfg); reaching here without root is a failure, never a
/// silent pass.
pub fn privileged() -> Option<MutexGuard<'static, ()>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "privileged test run without root (built as root or with CI / TRACER_TESTS_PRIVILEGED set): run `cargo xtask test`"
        );
    }
    Some(SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The tracer under test: this build's, or TRACER_BIN (to check that a
/// test fails on an older build).
pub fn tracer_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("TRACER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tracer").to_string())
    })
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Compiles a C workload from tests/workloads/ (or demo/) with frame pointers.
pub fn c_workload(name: &str) -> PathBuf {
    c_workload_with(name, "-fno-omit-frame-pointer")
}

/// Compiles a C workload with one extra compiler flag (e.g.
/// `-fomit-frame-pointer`), into a directory of its own per flag.
pub fn c_workload_with(name: &str, flag: &str) -> PathBuf {
    let root = repo_root();
    let src = [
        root.join("tests/workloads").join(format!("{name}.c")),
        root.join("demo").join(format!("{name}.c")),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| panic!("no workload source for {name}"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cc{flag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(name);
    let status = Command::new("cc")
        .args(["-O2", "-g", flag, "-pthread", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("cc is needed to build the C workloads");
    assert!(status.success(), "compiling {}", src.display());
    out
}

/// A cargo example of this package (cargo test builds them).
pub fn example(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_tracer"))
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        p.exists(),
        "example {} not built (cargo test builds examples)",
        p.display()
    );
    p
}

/// A workload that printed "pid=P ..." and waits for a byte on stdin.
pub struct Gated {
    pub child: Child,
    pub pid: i32,
    pub first_line: String,
    stdout: BufReader<ChildStdout>,
}

impl Gated {
    pub fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting workload");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first_line = String::new();
        stdout
            .read_line(&mut first_line)
            .expect("workload's first line");
        let pid = field(&first_line, "pid")
            .unwrap_or_else(|| panic!("no pid= in {first_line:?}"))
            .parse()
            .unwrap();
        Self {
            child,
            pid,
            first_line,
            stdout,
        }
    }

    pub fn go(&mut self) {
        self.child.stdin.as_mut().unwrap().write_all(b"x").unwrap();
    }

    /// The next line the workload prints.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("workload output");
        line
    }

    /// Waits for the workload to end; returns the rest of its stdout.
    pub fn finish(mut self, limit: Duration) -> String {
        let status = wait_for(&mut self.child, limit, "workload");
        assert!(status.success(), "workload failed: {status}");
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        rest
    }
}

/// `key=value` from a line of workload output.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// The tracer, started in the background, past its "tracing" line.
pub struct Tracer {
    pub child: Child,
    stderr: BufReader<ChildStderr>,
    pub json: PathBuf,
    /// What it held once tracing: its programs, maps, links, perf events.
    pub held: Held,
}

impl Tracer {
    pub fn start(args: &[&str], tag: &str) -> Self {
        Self::start_env(args, tag, &[])
    }

    /// As `start`, with extra environment variables for the tracer.
    pub fn start_env(args: &[&str], tag: &str, env: &[(&str, &str)]) -> Self {
        Self::start_command("contention", args, tag, env)
    }

    /// `tracer profile ARGS --json TAG.json`, past its "tracing" line.
    pub fn start_profile(args: &[&str], tag: &str) -> Self {
        Self::start_command("profile", args, tag, &[])
    }

    fn start_command(command: &str, args: &[&str], tag: &str, env: &[(&str, &str)]) -> Self {
        let json = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{tag}.json"));
        let _ = std::fs::remove_file(&json);
        let mut child = Command::new(tracer_bin())
            .envs(env.iter().copied())
            .arg(command)
            .arg("--json")
            .arg(&json)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tracer");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut line = String::new();
            let n = stderr.read_line(&mut line).unwrap();
            assert!(n > 0, "tracer exited before attaching: {:?}", child.wait());
            if line.starts_with("tracer: tracing") {
                break;
            }
            assert!(Instant::now() < deadline, "tracer did not attach in 30 s");
        }
        let held = held_by(child.id());
        Self {
            child,
            stderr,
            json,
            held,
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for exit 0 and returns (stdout report, parsed JSON).
    pub fn finish(mut self, limit: Duration) -> (String, serde_json::Value) {
        let status = wait_for(&mut self.child, limit, "tracer");
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let mut err = String::new();
        self.stderr.read_to_string(&mut err).unwrap();
        assert!(status.success(), "tracer failed ({status}):\n{err}\n{out}");
        let json = std::fs::read_to_string(&self.json)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.json.display()));
        (
            out,
            serde_json::from_str(&json).expect("tracer JSON parses"),
        )
    }
}

pub fn wait_for(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Mounts tracefs if it is not (a fresh machine boots without it): perf
/// needs it, independently of the tracer.
pub fn ensure_tracefs() {
    if !Path::new("/sys/kernel/tracing/events").is_dir() {
        let out =
            output(Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]));
        assert!(
            out.status.success(),
            "mounting tracefs for perf: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `perf stat` of sys_enter_futex with a filter, wrapping `cmd`: counts from
/// exec to exit, in every thread, independently of the tracer.
pub fn under_perf_stat(filter: &str, out: &Path, program: &Path, args: &[&str]) -> Command {
    under_perf_event("syscalls:sys_enter_futex", Some(filter), out, program, args)
}

/// `perf stat -e EVENT [--filter F] -- program args`.
pub fn under_perf_event(
    event: &str,
    filter: Option<&str>,
    out: &Path,
    program: &Path,
    args: &[&str],
) -> Command {
    ensure_tracefs();
    let mut cmd = Command::new("perf");
    cmd.args(["stat", "-x", ",", "-o"])
        .arg(out)
        .args(["-e", event]);
    if let Some(f) = filter {
        cmd.args(["--filter", f]);
    }
    cmd.arg("--").arg(program).args(args);
    cmd
}

/// The count from `perf stat -x,` output.
pub fn perf_count(out: &Path) -> u64 {
    let text = std::fs::read_to_string(out).expect("perf stat output");
    text.lines()
        .find(|l| l.contains(",syscalls:") || l.contains(",lock:"))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in perf output:\n{text}"))
}

/// The lock with this address in a JSON report.
pub fn lock_at<'a>(report: &'a serde_json::Value, addr: &str) -> &'a serde_json::Value {
    report["locks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["address"].as_str() == Some(addr))
        .unwrap_or_else(|| panic!("no lock at {addr} in {:#}", report["locks"]))
}

/// Every drop counter is 0, except `klock_unmatched`: kernel-lock waits in
/// progress when tracing began end without a begin (threads spinning in
/// sched_yield fight over run-queue locks right up to the start gate).
pub fn assert_no_drops(report: &serde_json::Value) {
    for (k, v) in report["drops"].as_object().unwrap() {
        if k != "klock_unmatched" {
            assert_eq!(v.as_u64(), Some(0), "drop counter {k} is {v}");
        }
    }
}

/// Runs a command to completion and returns its output.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// A gated workload running under `perf stat` (futex enters filtered on one
/// op): the independent count the tracer is checked against.
pub struct PerfRun {
    pub work: Gated,
    perf_out: PathBuf,
}

impl PerfRun {
    pub fn start(program: &Path, args: &[&str], futex_op: u32, tag: &str) -> Self {
        Self::start_filter(program, args, &format!("op == {futex_op}"), tag)
    }

    /// As `start`, counting the futex enters that match `filter`.
    pub fn start_filter(program: &Path, args: &[&str], filter: &str, tag: &str) -> Self {
        let perf_out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{tag}.perf"));
        let work = Gated::start(under_perf_stat(filter, &perf_out, program, args));
        Self { work, perf_out }
    }

    /// The address the workload printed as `mutex=`.
    pub fn mutex(&self) -> String {
        field(&self.work.first_line, "mutex")
            .expect("mutex= in workload output")
            .to_string()
    }

    /// Waits for the workload; returns (its remaining stdout, perf's count).
    pub fn finish(self) -> (String, u64) {
        let rest = self.work.finish(Duration::from_secs(120));
        (rest, perf_count(&self.perf_out))
    }
}

/// Per thread of a process, from /proc: (voluntary, nonvoluntary context
/// switches, run_delay ns from schedstat).
pub fn proc_sched(pid: i32) -> std::collections::BTreeMap<u32, (u64, u64, u64)> {
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let tid: u32 = entry.file_name().to_str().unwrap().parse().unwrap();
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap();
        let get = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        let schedstat = std::fs::read_to_string(entry.path().join("schedstat")).unwrap();
        let run_delay = schedstat
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        out.insert(
            tid,
            (
                get("voluntary_ctxt_switches:"),
                get("nonvoluntary_ctxt_switches:"),
                run_delay,
            ),
        );
    }
    out
}

/// The demo built with `-DWORK=N` (the work done under its lock) into its
/// own directory, so the program keeps its name.
pub fn sequencer_with_work(work: u32) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("seq-work-{work}"));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("sequencer");
    let status = Command::new("cc")
        .args(["-O2", "-g", "-fno-omit-frame-pointer", "-pthread"])
        .arg(format!("-DWORK={work}"))
        .arg("-o")
        .arg(&out)
        .arg(repo_root().join("demo/sequencer.c"))
        .status()
        .unwrap();
    assert!(status.success(), "building the demo with -DWORK={work}");
    out
}

/// The rows the views draw by default (JSON): the logical locks that are
/// locks (schema 1.5), or the wait channels that are locks in an older
/// report.
pub fn view_rows(report: &serde_json::Value) -> Vec<&serde_json::Value> {
    let rows = match report["logical_locks"].as_array() {
        Some(rows) if !rows.is_empty() => rows,
        _ => report["locks"].as_array().unwrap(),
    };
    rows.iter()
        .filter(|l| l["decision"].as_str() != Some("not_lock_contention"))
        .collect()
}

/// The sum of the drawn rows' wait times (JSON).
pub fn total_wait_ns(report: &serde_json::Value) -> u64 {
    view_rows(report)
        .iter()
        .map(|l| l["wait"]["total_ns"].as_u64().unwrap())
        .sum()
}

/// The sum of the weights of folded stacks ("frame;frame;… weight").
pub fn folded_total(text: &str) -> u64 {
    text.lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum()
}

/// bpftrace running a script, as independent ground truth: started past
/// its "Attaching" line, ended with SIGINT, its maps read back.
pub struct Bpftrace {
    bt: Child,
    out: BufReader<ChildStdout>,
}

impl Bpftrace {
    pub fn start(script: &str) -> Self {
        let mut bt = Command::new("bpftrace")
            .arg("-e")
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bpftrace");
        let mut out = BufReader::new(bt.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("Attaching"), "bpftrace: {line}");
        Self { bt, out }
    }

    /// Every map entry printed at exit: (map, key, count), the key empty
    /// for a map without one (`@n: 5`, `@w[1234]: 56`).
    pub fn finish(mut self) -> Vec<(String, String, u64)> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.bt.id() as i32, libc::SIGINT) };
        let mut out = Vec::new();
        for l in (&mut self.out).lines().map_while(Result::ok) {
            let Some((head, n)) = l.strip_prefix('@').and_then(|r| r.rsplit_once(": ")) else {
                continue;
            };
            let Ok(n) = n.trim().parse() else { continue };
            let (map, key) = match head.split_once('[') {
                Some((m, k)) => (m, k.trim_end_matches(']')),
                None => (head, ""),
            };
            out.push((map.to_string(), key.to_string(), n));
        }
        let _ = self.bt.wait();
        out
    }
}

/// Polls `done` every 10 ms for up to `limit`; whether it became true.
/// (Tests wait for a state, never for a guessed time.)
pub fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Voluntary context switches of all of a process's threads (each blocking
/// futex wait is one): 0 for a process that is gone.
pub fn voluntary_switches(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}

/// Waits until the process has blocked `n` more times (it is contending
/// while traced), for at most 20 s.
pub fn wait_for_switches(pid: u32, n: u64) {
    let from = voluntary_switches(pid);
    assert!(
        eventually(Duration::from_secs(20), || voluntary_switches(pid)
            >= from + n),
        "pid {pid} did not block {n} times in 20 s"
    );
}

/// The state letter of /proc/PID/stat (after the comm's last ')').
pub fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 1..].trim_start().chars().next()
}

/// The kernel objects a live process holds through its fds: BPF programs,
/// maps and links by id (from fdinfo), and perf events.
#[derive(Clone, Debug, Default)]
pub struct Held {
    pub progs: std::collections::BTreeSet<u32>,
    pub maps: std::collections::BTreeSet<u32>,
    pub links: std::collections::BTreeSet<u32>,
    pub perf_events: usize,
}

pub fn held_by(pid: u32) -> Held {
    let mut held = Held::default();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return held;
    };
    for e in dir.flatten() {
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        let fdinfo = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            e.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        let id = |key: &str| {
            fdinfo
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse::<u32>().ok())
        };
        match target.to_string_lossy().as_ref() {
            "anon_inode:bpf-prog" => held.progs.extend(id("prog_id:")),
            "anon_inode:bpf-map" => held.maps.extend(id("map_id:")),
            "anon_inode:bpf_link" => held.links.extend(id("link_id:")),
            "anon_inode:[perf_event]" => held.perf_events += 1,
            _ => {}
        }
    }
    held
}

/// What of `held` the kernel still has loaded: (programs, maps, links).
pub fn still_loaded(held: &Held) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let progs = aya::programs::loaded_programs()
        .flatten()
        .map(|p| p.id())
        .filter(|id| held.progs.contains(id))
        .collect();
    let maps = aya::maps::loaded_maps()
        .flatten()
        .map(|m| m.id())
        .filter(|id| held.maps.contains(id))
        .collect();
    let links = aya::programs::loaded_links()
        .flatten()
        .map(|l| l.id())
        .filter(|id| held.links.contains(id))
        .collect();
    (progs, maps, links)
}

/// Every program, map and link the tracer held while live is gone from
/// the kernel once it has exited (freed asynchronously: polled for 5 s).
pub fn assert_released(held: &Held) {
    assert!(
        !held.progs.is_empty() && !held.maps.is_empty(),
        "nothing was recorded as held: {held:?}"
    );
    let mut left = still_loaded(held);
    eventually(Duration::from_secs(5), || {
        left = still_loaded(held);
        left.0.is_empty() && left.1.is_empty() && left.2.is_empty()
    });
    assert_eq!(
        left,
        (Vec::new(), Vec::new(), Vec::new()),
        "(programs, maps, links) left loaded after the tracer exited"
    );
}

/// The hooks a report or profile says were attached.
pub fn attached_hooks(report: &serde_json::Value) -> usize {
    report["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["attached"] == true)
        .count()
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A peer tool; off CI a missing one skips the test, in CI it fails it
/// (`cargo xtask setup` installs them).
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !in_ci(),
            "{name} is missing in CI: `cargo xtask setup` installs it"
        );
        eprintln!("SKIPPED: {name} not installed (cargo xtask setup installs it)");
    }
    found
}

/// `go tool pprof -raw` of a profile: its text, and the sums of the two
/// values of every sample ("  V1  V2: LOCATION-IDS" lines).
pub fn pprof_raw(go: &Path, pb: &Path) -> (String, u64, u64) {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let out = output(
        Command::new(go)
            .args(["tool", "pprof", "-raw", "-symbolize=none"])
            .arg(pb)
            .env("GOCACHE", tmp.join("gocache"))
            .env("PPROF_TMPDIR", tmp.join("pprof")),
    );
    assert!(out.status.success(), "{out:?}");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let (a, b) = pprof_totals(&raw);
    (raw, a, b)
}

/// The sums of the two values of every sample line of `go tool pprof
/// -raw` output ("  V1  V2: LOCATION-IDS").
pub fn pprof_totals(raw: &str) -> (u64, u64) {
    let (mut a, mut b) = (0u64, 0u64);
    for line in raw.lines() {
        let Some((values, _)) = line.split_once(':') else {
            continue;
        };
        let nums: Vec<u64> = values
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        if nums.len() == 2 && values.split_whitespace().count() == 2 {
            a += nums[0];
            b += nums[1];
        }
    }
    (a, b)
}

/// While tracing, the tracer held an attachment (a perf event or a link)
/// per hook it reports attached and per probed function; once it has
/// exited, every program, map and link it held is gone from the kernel.
pub fn assert_all_detached(held: &Held, report: &serde_json::Value) {
    let hooks = attached_hooks(report);
    let functions = report["functions"].as_array().map_or(0, Vec::len);
    assert!(
        held.perf_events + held.links.len() >= hooks + functions,
        "{hooks} hooks and {functions} functions probed, but the tracer held {held:?}"
    );
    assert_released(held);
}

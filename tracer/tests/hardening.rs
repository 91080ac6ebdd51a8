//! Privileged integration tests of the tracer as a hostile or unlucky user
//! meets it: outputs planted as links or devices by another user, a full
//! disk, a map that fills, an SSH hang-up, escape sequences in thread
//! names, inputs that never end, closed pipes, a launched command that
//! leaves children behind, thread churn. Each of these failed on the
//! tracer before the hardening it checks.

mod common;

use std::{
    io::Read as _,
    os::{
        fd::{FromRawFd as _, OwnedFd},
        unix::{fs::MetadataExt as _, process::CommandExt as _},
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;

/// glibc's mutex waits with FUTEX_WAIT | FUTEX_PRIVATE_FLAG.
const FUTEX_WAIT_PRIVATE: u32 = 128;
/// The churn and word workloads wait with FUTEX_WAIT_BITSET | PRIVATE.
const FUTEX_WAIT_BITSET_PRIVATE: u32 = 9 | 128;

/// A real report, to feed the commands that read one.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/report-v1.4.json")
}

/// A fresh directory that any user may write to, as /tmp is (sticky,
/// world-writable): where another user can plant links for root.
fn shared_dir(tag: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("shared-{tag}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    output(Command::new("chmod").arg("1777").arg(&d));
    // The tmpdir's parents must be searchable by the other user.
    let mut p = d.parent();
    while let Some(dir) = p {
        let _ = output(Command::new("chmod").arg("o+x").arg(dir));
        p = dir.parent();
    }
    d
}

/// Runs a command as user nobody (65534), as another user of the host.
fn as_nobody(args: &[&str]) {
    let out = output(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(args),
    );
    assert!(out.status.success(), "as nobody {args:?}: {out:?}");
}

/// Runs the tracer to its end, or panics after a minute (a regression
/// here can be a hang: a FIFO read forever).
fn tracer(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(tracer_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let readers = (
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = out.read_to_end(&mut b);
            b
        }),
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err.read_to_end(&mut b);
            b
        }),
    );
    let status = wait_for(
        &mut child,
        Duration::from_secs(60),
        &format!("tracer {args:?}"),
    );
    std::process::Output {
        status,
        stdout: readers.0.join().unwrap(),
        stderr: readers.1.join().unwrap(),
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One sentence, the given code, no panic.
fn assert_fails(o: &std::process::Output, code: i32, needle: &str, what: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{what}: {err}");
    assert!(err.contains(needle), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what} panicked: {err}");
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn outputs_never_follow_a_planted_link_nor_replace_a_device() {
    let Some(_serial) = privileged() else { return };
    let dir = shared_dir("links");
    // Root's file that another user wants overwritten.
    let victim = dir.join("victim");
    std::fs::write(&victim, "root's data").unwrap();
    let link = dir.join("planted.json");
    as_nobody(&["ln", "-s", victim.to_str().unwrap(), link.to_str().unwrap()]);
    let fx = fixture();
    let fx = fx.to_str().unwrap();
    let l = link.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["contention", "--json", l, "--", "true"], "--json"),
        (vec!["contention", "--html", l, "--", "true"], "--html"),
        (
            vec!["contention", "--json", "/dev/null", "--", "true"],
            "--json /dev/null",
        ),
        (
            vec!["contention", "--html", "/dev/full", "--", "true"],
            "--html /dev/full",
        ),
        (vec!["report", fx, "-o", l], "report -o"),
        (
            vec!["report", fx, "--format", "html", "-o", "/dev/null"],
            "report -o /dev/null",
        ),
        (vec!["compare", fx, fx, "--json", l], "compare --json"),
        (
            vec!["compare", fx, fx, "--markdown", "/dev/null"],
            "compare --markdown",
        ),
        (vec!["compare", fx, fx, "--html", l], "compare --html"),
    ];
    for (args, what) in &cases {
        let t = Instant::now();
        let o = tracer(args);
        assert_fails(&o, 7, "refusing to write", what);
        assert!(
            !stderr(&o).contains("tracer: tracing"),
            "{what}: traced before checking its output: {}",
            stderr(&o)
        );
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what} took {:?}",
            t.elapsed()
        );
    }
    // A baseline whose name another user planted as a link.
    let bdir = dir.join("baselines");
    std::fs::create_dir_all(&bdir).unwrap();
    output(Command::new("chmod").arg("1777").arg(&bdir));
    let blink = bdir.join("app.json");
    as_nobody(&[
        "ln",
        "-s",
        victim.to_str().unwrap(),
        blink.to_str().unwrap(),
    ]);
    let o = tracer(&[
        "baseline",
        "save",
        fx,
        "--name",
        "app",
        "--dir",
        bdir.to_str().unwrap(),
    ]);
    assert_fails(&o, 7, "refusing to write", "baseline save");

    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's data");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    for dev in ["/dev/null", "/dev/full"] {
        use std::os::unix::fs::FileTypeExt as _;
        assert!(
            std::fs::metadata(dev).unwrap().file_type().is_char_device(),
            "{dev} was replaced"
        );
    }
    // Links sprayed under the temp names the tracer used to pick
    // (.NAME.tmpPID) for the next pids: a write still succeeds and goes
    // nowhere else.
    let out = dir.join("run.json");
    let next_pid: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .map(|s| s.trim().parse().unwrap_or(1))
        .unwrap_or(1);
    for pid in next_pid..next_pid + 200 {
        let trap = dir.join(format!(".run.json.tmp{pid}"));
        as_nobody(&["ln", "-s", victim.to_str().unwrap(), trap.to_str().unwrap()]);
    }
    let o = tracer(&[
        "report",
        fx,
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's data");
    assert!(std::fs::metadata(&out).unwrap().is_file());
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn outputs_are_0600_and_belong_to_the_sudo_user() {
    let Some(_serial) = privileged() else { return };
    let dir = shared_dir("owner");
    let out = dir.join("page.html");
    let o = output(
        Command::new(tracer_bin())
            .env("SUDO_UID", "65534")
            .env("SUDO_GID", "65534")
            .args([
                "report",
                fixture().to_str().unwrap(),
                "--format",
                "html",
                "-o",
            ])
            .arg(&out),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m = std::fs::metadata(&out).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (65534, 65534),
        "handed to the sudo user"
    );
    assert_eq!(m.mode() & 0o777, 0o600, "reports hold command lines: 0600");
    let o = tracer(&[
        "--file-mode",
        "644",
        "report",
        fixture().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(&out).unwrap().mode() & 0o777, 0o644);
    // A baseline directory created under sudo is the user's too.
    let bdir = dir.join("repo/.tracer/baselines");
    let o = output(
        Command::new(tracer_bin())
            .env("SUDO_UID", "65534")
            .env("SUDO_GID", "65534")
            .args(["baseline", "save", fixture().to_str().unwrap(), "--dir"])
            .arg(&bdir),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::metadata(dir.join("repo/.tracer")).unwrap().uid(),
        65534
    );
    assert_eq!(std::fs::metadata(&bdir).unwrap().uid(), 65534);
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn a_full_disk_leaves_the_previous_file_whole() {
    let Some(_serial) = privileged() else { return };
    let mnt = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tiny-fs");
    std::fs::create_dir_all(&mnt).unwrap();
    let _ = output(Command::new("umount").arg(&mnt));
    let o = output(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tracer-test"])
            .arg(&mnt),
    );
    assert!(o.status.success(), "mounting a 64 KiB tmpfs: {o:?}");
    let page = mnt.join("page.html");
    std::fs::write(&page, "previous page").unwrap();
    // The fixture's page is far larger than the file system.
    let o = tracer(&[
        "report",
        fixture().to_str().unwrap(),
        "--format",
        "html",
        "-o",
        page.to_str().unwrap(),
    ]);
    let left: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let previous = std::fs::read_to_string(&page).unwrap();
    let _ = output(Command::new("umount").arg(&mnt));
    assert_fails(&o, 7, "No space left", "a page on a full disk");
    assert_eq!(previous, "previous page", "the previous page was destroyed");
    assert_eq!(
        left,
        vec!["page.html".to_string()],
        "temp files left behind"
    );
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn outputs_are_checked_before_anything_is_traced() {
    let Some(_serial) = privileged() else { return };
    let t = Instant::now();
    let o = tracer(&[
        "contention",
        "--json",
        "/nonexistent-dir/x.json",
        "--",
        "sleep",
        "5",
    ]);
    assert_fails(&o, 7, "/nonexistent-dir", "--json into a missing directory");
    assert!(!stderr(&o).contains("tracer: tracing"), "{}", stderr(&o));
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "traced first: {:?}",
        t.elapsed()
    );
    // Two outputs on stdout cannot both be read.
    let o = tracer(&["contention", "--json", "-", "--html", "-", "--", "true"]);
    assert_fails(&o, 2, "only one of", "--json - --html -");
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn dash_writes_json_to_stdout_and_the_text_report_to_stderr() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("sequencer");
    let o = output(
        Command::new(tracer_bin())
            .args(["contention", "--json", "-", "--"])
            .arg(&bin)
            .args(["--seconds", "0.5"]),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("stdout is the JSON report alone");
    assert!(json["locks"].as_array().is_some_and(|l| !l.is_empty()));
    assert!(stderr(&o).contains("VERDICT"), "{}", stderr(&o));
    let o = tracer(&[
        "report",
        fixture().to_str().unwrap(),
        "--format",
        "folded",
        "-o",
        "-",
    ]);
    assert!(o.status.success() && !o.stdout.is_empty(), "{}", stderr(&o));
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn a_full_lock_map_makes_the_run_incomplete_and_ci_refuse_it() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("futex_words");
    // 40,000 futex words fill the default 16,384-entry map; the hot mutex
    // comes after them.
    let run = |tag: &str, extra: &[&str]| {
        let mut work = PerfRun::start(&bin, &["40000", "4", "50000"], FUTEX_WAIT_PRIVATE, tag);
        let mut args = vec!["--pid".to_string(), work.work.pid.to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let tracer = Tracer::start(&args, tag);
        work.work.go();
        let (rest, perf) = work.finish();
        assert_eq!(field(&rest, "eagain"), Some("40000"), "{rest}");
        (tracer, perf)
    };
    let (tracer, _) = run("words_full", &[]);
    let status = wait_for(&mut { tracer.child }, Duration::from_secs(60), "tracer");
    assert_eq!(status.code(), Some(10), "an incomplete run exits 10");
    let lost =
        std::fs::read_to_string(Path::new(env!("CARGO_TARGET_TMPDIR")).join("words_full.json"))
            .unwrap();
    let lost: serde_json::Value = serde_json::from_str(&lost).unwrap();
    let v = &lost["verdict"];
    assert!(
        v["text"].as_str().unwrap().starts_with("INCOMPLETE: "),
        "the verdict says so first: {v}"
    );
    assert!(
        v["text"].as_str().unwrap().contains("--max-locks 65536"),
        "{v}"
    );
    assert!(v["incomplete"]["lost_waits"].as_u64() > Some(10_000), "{v}");
    assert!(lost["drops"]["lock_map_full"].as_u64() > Some(10_000));

    let (tracer, perf) = run("words_ok", &["--max-locks", "65536"]);
    let (_, good) = tracer.finish(Duration::from_secs(60));
    assert!(
        good["verdict"]["incomplete"].is_null(),
        "{}",
        good["verdict"]
    );
    let hot = good["locks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["symbol"] == "hot_mu")
        .expect("the hot lock is seen once the map is large enough");
    assert_eq!(
        hot["contentions"].as_u64(),
        Some(perf),
        "every wait counted (perf stat)"
    );
    assert_eq!(hot["decision"], "recommended", "{hot:#}");
    assert_no_drops(&good);

    // CI refuses to pass a comparison with an incomplete run, either side.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let (g, l) = (dir.join("words_ok.json"), dir.join("words_full.json"));
    for (b, c) in [(&g, &l), (&l, &g)] {
        let o = output(
            Command::new(tracer_bin())
                .arg("compare")
                .arg(b)
                .arg(c)
                .arg("--ci"),
        );
        assert_eq!(
            o.status.code(),
            Some(10),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        assert!(String::from_utf8_lossy(&o.stdout).contains("INCOMPLETE"));
    }
}

/// A map's live entries at the end of a run, from the report.
fn map_entries(report: &serde_json::Value, name: &str) -> u64 {
    report["maps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["entries"].as_u64())
        .unwrap_or_else(|| panic!("no map {name} in {}", report["maps"]))
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn thread_churn_never_fills_the_maps() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("thread_churn");
    // 40,000 threads, each waiting once: more than the per-thread map
    // (16,384) and the lock map (16,384) hold, so without eviction both
    // fill; thread ids are reused (pid_max is 32,768 here).
    let mut run = PerfRun::start(&bin, &["40000"], FUTEX_WAIT_BITSET_PRIVATE, "churn");
    let tracer = Tracer::start(&["--pid", &run.work.pid.to_string()], "churn");
    run.work.go();
    let (rest, perf) = run.finish();
    let (_, report) = tracer.finish(Duration::from_secs(120));
    assert_eq!(field(&rest, "threads"), Some("40000"), "{rest}");
    assert_eq!(perf, 40_000, "perf counts one wait per thread");
    let word = report["locks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["symbol"] == "word")
        .unwrap_or_else(|| panic!("no lock `word`: {}", report["locks"]));
    assert_eq!(
        word["contentions"].as_u64(),
        Some(perf),
        "every wait of every short-lived thread is counted"
    );
    assert!(
        report["events"]["threads_exited"].as_u64() >= Some(40_000),
        "{}",
        report["events"]
    );
    assert_no_drops(&report);
    assert!(report["verdict"]["incomplete"].is_null());
    // What is left in the kernel at the end is what lives, not what ran.
    for map in ["lock_threads", "thread_sched", "runq_hist"] {
        let n = map_entries(&report, map);
        assert!(n < 2_000, "{map} holds {n} entries after the churn");
    }
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn sighup_ends_tracing_with_the_report_written() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("sequencer");
    let mut work = Command::new(&bin)
        .args(["--seconds", "30"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let json = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sighup.json");
    let _ = std::fs::remove_file(&json);
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors into valid pointers.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0);
    // The tracer must not inherit the master: closing ours is the hang-up.
    // SAFETY: fcntl on a descriptor we own.
    assert_eq!(
        unsafe { libc::fcntl(master, libc::F_SETFD, libc::FD_CLOEXEC) },
        0
    );
    // SAFETY: both were just opened and are owned here only.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut cmd = Command::new(tracer_bin());
    cmd.args(["contention", "--pid", &work.id().to_string(), "--json"])
        .arg(&json)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    // SAFETY: only async-signal-safe calls between fork and exec: the
    // tracer leads a session whose controlling terminal is the pty, as a
    // login shell's command does.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut tracer = cmd.spawn().unwrap();
    drop(cmd);
    let mut term = std::fs::File::from(master);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&seen).contains("tracer: tracing") {
        let mut b = [0u8; 512];
        let n = term.read(&mut b).unwrap_or(0);
        seen.extend_from_slice(&b[..n]);
        assert!(
            n > 0 && Instant::now() < deadline,
            "no tracing line: {seen:?}"
        );
    }
    // Contended waits while traced, then the hang-up.
    wait_for_switches(work.id(), 200);
    // The SSH session goes away: the terminal hangs up.
    drop(term);
    let status = wait_for(&mut tracer, Duration::from_secs(30), "tracer after SIGHUP");
    let _ = work.kill();
    let _ = work.wait();
    assert!(
        status.success(),
        "the tracer ended with {status} after a hang-up"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("JSON written after SIGHUP"))
            .unwrap();
    assert!(report["locks"].as_array().is_some_and(|l| !l.is_empty()));
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn control_characters_in_thread_names_are_escaped() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("evil_name");
    let mut work = Gated::start({
        let mut c = Command::new(&bin);
        c.arg("200000");
        c
    });
    let tracer = Tracer::start(&["--pid", &work.pid.to_string()], "evil_name");
    work.go();
    work.finish(Duration::from_secs(60));
    let (text, report) = tracer.finish(Duration::from_secs(30));
    // The JSON keeps the name as the kernel has it.
    assert!(
        report["threads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("\x1b[2J\n"))),
        "{}",
        report["threads"]
    );
    assert!(!text.contains('\x1b'), "a raw ESC reached the terminal");
    assert!(
        text.contains("\\x1b[2J\\nVERDICT ok"),
        "the name, escaped:\n{text}"
    );
    let verdicts = text.lines().filter(|l| l.starts_with("VERDICT")).count();
    assert_eq!(verdicts, 1, "a thread name started a report line:\n{text}");
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn inputs_that_are_not_regular_files_or_too_large_are_refused() {
    let Some(_serial) = privileged() else { return };
    let dir = shared_dir("inputs");
    let fifo = dir.join("run.json");
    let o = output(Command::new("mkfifo").arg(&fifo));
    assert!(o.status.success());
    let f = fifo.to_str().unwrap();
    let fx = fixture();
    let fx = fx.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec!["report", f], "not a regular file", "report FIFO"),
        (
            vec!["report", "/dev/zero"],
            "not a regular file",
            "report /dev/zero",
        ),
        (vec!["compare", fx, f], "not a regular file", "compare FIFO"),
        (
            vec!["baseline", "save", f],
            "not a regular file",
            "baseline save FIFO",
        ),
        (
            vec!["compare", fx, fx, "--thresholds", "/dev/zero"],
            "not a regular file",
            "thresholds /dev/zero",
        ),
        (
            vec!["--max-input-size", "1K", "report", fx],
            "--max-input-size",
            "an oversized report",
        ),
    ];
    for (args, needle, what) in &cases {
        let t = Instant::now();
        let o = tracer(args);
        assert_fails(&o, 8, needle, what);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what} took {:?}",
            t.elapsed()
        );
    }
    // A report that claims a negative duration.
    let neg = dir.join("negative.json");
    let text = std::fs::read_to_string(fixture()).unwrap().replacen(
        "\"duration_s\": ",
        "\"duration_s\": -",
        1,
    );
    std::fs::write(&neg, text).unwrap();
    let o = tracer(&["report", neg.to_str().unwrap()]);
    assert_fails(&o, 8, "duration_s", "a negative duration");
}

/// Runs the tracer with stdout on a pipe whose reader is already gone.
fn with_closed_stdout(args: &[&str]) -> std::process::Output {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both were just opened and are owned here only.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(r);
    Command::new(tracer_bin())
        .args(args)
        .stdout(Stdio::from(w))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn a_closed_pipe_ends_every_command_quietly() {
    let Some(_serial) = privileged() else { return };
    let fx = fixture();
    let fx = fx.to_str().unwrap();
    let bdir = shared_dir("pipe-baselines");
    let b = bdir.to_str().unwrap();
    assert!(
        tracer(&["baseline", "save", fx, "--name", "app", "--dir", b])
            .status
            .success()
    );
    let cases: Vec<Vec<&str>> = vec![
        vec!["report", fx],
        vec!["report", fx, "--format", "json"],
        vec!["report", fx, "--format", "html"],
        vec!["report", fx, "--format", "folded"],
        vec!["report", fx, "--format", "speedscope"],
        vec!["compare", fx, fx],
        vec!["compare", fx, fx, "--json", "-"],
        vec!["completions", "bash"],
        vec!["man"],
        vec!["man", "contention"],
        vec!["baseline", "show", "--dir", b],
        vec!["baseline", "show", "app", "--dir", b],
        vec!["--help"],
        vec!["contention", "--", "true"],
    ];
    for args in &cases {
        let o = with_closed_stdout(args);
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert_ne!(o.status.code(), Some(101), "{args:?}: {err}");
        assert!(
            o.status.code().is_some(),
            "{args:?} died of a signal: {:?}",
            o.status
        );
        assert!(
            matches!(o.status.code(), Some(0) | Some(2)),
            "{args:?}: {:?} {err}",
            o.status
        );
    }
}

/// Processes whose command line contains `marker`.
fn with_marker(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                // Arguments are NUL-separated.
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(marker)
            })
        })
        .collect()
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn a_launched_command_is_stopped_with_everything_it_started() {
    let Some(_serial) = privileged() else { return };
    // A background job and a daemon that left the session: both outlive
    // the shell unless the tracer stops the whole tree.
    // (Their output goes elsewhere: a survivor must not hold our pipes.)
    let script = "exec >/dev/null 2>&1; sleep 311 & setsid sleep 312 & sleep 313";
    let o = tracer(&["contention", "--duration", "1s", "--", "sh", "-c", script]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Killed processes disappear from /proc once reaped: poll for it.
    for m in ["sleep 311", "sleep 312", "sleep 313"] {
        eventually(Duration::from_secs(5), || with_marker(m).is_empty());
        assert_eq!(with_marker(m), Vec::<u32>::new(), "`{m}` still runs");
    }
    // The command ends by itself and leaves a daemon behind.
    let o = tracer(&[
        "contention",
        "--",
        "sh",
        "-c",
        "exec >/dev/null 2>&1; setsid sleep 314 &",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    eventually(Duration::from_secs(5), || {
        with_marker("sleep 314").is_empty()
    });
    assert_eq!(
        with_marker("sleep 314"),
        Vec::<u32>::new(),
        "the daemon still runs"
    );
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn two_pids_show_no_phantom_thread_0() {
    let Some(_serial) = privileged() else { return };
    // Two mostly idle processes: the CPUs run their idle task (pid 0)
    // most of the time, which a filter comparing with an unset single
    // target (0) took for a target.
    let spawn = || {
        Command::new("sh")
            .args(["-c", "while :; do sleep 0.05; done"])
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn(), spawn());
    let pids = format!("{},{}", a.id(), b.id());
    // Their sleeps are forks: not followed, so the threads are the shells'.
    let tracer = Tracer::start(
        &["--pid", &pids, "--duration", "1s", "--no-follow"],
        "two_pids",
    );
    let (_, report) = tracer.finish(Duration::from_secs(30));
    for c in [&mut a, &mut b] {
        let _ = c.kill();
        let _ = c.wait();
    }
    let tids: Vec<u64> = report["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tid"].as_u64().unwrap())
        .collect();
    let mut want = vec![u64::from(a.id()), u64::from(b.id())];
    want.sort();
    let mut got = tids.clone();
    got.sort();
    assert_eq!(
        got, want,
        "the two shells and nothing else (a phantom TID 0?)"
    );
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn bad_numbers_and_long_patterns_fail_fast_with_one_sentence() {
    let Some(_serial) = privileged() else { return };
    let long = format!("--uprobe={}", "a*".repeat(10_000));
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec![
                "contention",
                "--duration",
                "18446744073709551615",
                "--pid",
                "1",
            ],
            2,
            "longer than a year",
        ),
        (
            vec!["contention", "--repeat", "0", "--", "true"],
            2,
            "from 1 to 1000",
        ),
        (
            vec!["contention", "--recommend-at", "inf", "--pid", "1"],
            2,
            "not a rate",
        ),
        (
            vec!["contention", "--consider-at", "1000", "--pid", "1"],
            2,
            "below --recommend-at",
        ),
        (
            vec!["contention", &long, "--", "true"],
            2,
            "at most 512 bytes",
        ),
    ];
    for (args, code, needle) in &cases {
        let t = Instant::now();
        let o = tracer(args);
        let what = format!("{:?}", &args[..args.len().min(3)]);
        assert_fails(&o, *code, needle, &what);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what} took {:?}",
            t.elapsed()
        );
    }
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn compare_without_a_gate_never_calls_regressions_ok() {
    let Some(_serial) = privileged() else { return };
    let dir = shared_dir("gate");
    let base = dir.join("base.json");
    let cur = dir.join("cur.json");
    let text = std::fs::read_to_string(fixture()).unwrap();
    let mut r: serde_json::Value = serde_json::from_str(&text).unwrap();
    std::fs::write(&base, serde_json::to_string(&r).unwrap()).unwrap();
    // Three times the contention on the same locks and threads.
    for l in r["locks"].as_array_mut().unwrap() {
        let v = l["contentions_per_s"].as_f64().unwrap();
        l["contentions_per_s"] = (v * 3.0).into();
        let c = l["contentions"].as_u64().unwrap() * 3;
        l["contentions"] = c.into();
        for k in ["slept", "eagain", "timed_out", "interrupted", "error"] {
            let v = l["outcomes"][k].as_u64().unwrap() * 3;
            l["outcomes"][k] = v.into();
        }
    }
    std::fs::write(&cur, serde_json::to_string(&r).unwrap()).unwrap();
    let o = output(
        Command::new(tracer_bin())
            .arg("compare")
            .arg(&base)
            .arg(&cur),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let verdict = out.lines().find(|l| l.starts_with("VERDICT")).unwrap();
    assert!(
        verdict.contains("REGRESSION") && !verdict.contains(" OK "),
        "{verdict}"
    );
    let o = output(
        Command::new(tracer_bin())
            .arg("compare")
            .arg(&base)
            .arg(&cur)
            .arg("--ci"),
    );
    assert_eq!(o.status.code(), Some(9));
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn unwind_samples_are_not_lost_while_probes_detach() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("pairs");
    // 256 (lock, thread) pairs ask for samples at the CPUs' budget
    // (100/s each) for 6 s, while 13 probed functions are attached and
    // detached by the budget (each detach takes seconds here).
    let mut work = Gated::start({
        let mut c = Command::new(&bin);
        c.args(["4", "64", "6"]);
        c
    });
    let tracer = Tracer::start(
        &[
            "--pid",
            &work.pid.to_string(),
            "--uprobe",
            "pairs:hot_fn",
            "--uprobe",
            "pairs:cold_*",
            "--probe-budget",
            "1%",
        ],
        "pairs",
    );
    work.go();
    work.finish(Duration::from_secs(60));
    let (_, report) = tracer.finish(Duration::from_secs(60));
    assert_eq!(report["functions"].as_array().unwrap().len(), 13);
    let samples = report["events"]["unwind_samples"].as_u64().unwrap();
    assert!(samples >= 600, "the pairs were sampled: {samples}");
    assert_eq!(
        report["drops"]["unwind_ring_full"].as_u64(),
        Some(0),
        "samples lost: {}",
        report["events"]
    );
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn followed_processes_that_exit_leave_the_target_set() {
    let Some(_serial) = privileged() else { return };
    // 3,000 short-lived children one after another: more than the target
    // set holds (1,024) if the dead stayed in it.
    let o = tracer(&[
        "contention",
        "--json",
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("forks.json")
            .to_str()
            .unwrap(),
        "--",
        "sh",
        "-c",
        "i=0; while [ $i -lt 3000 ]; do /bin/true; i=$((i+1)); done",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_TARGET_TMPDIR")).join("forks.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        report["drops"]["targets_map_full"].as_u64(),
        Some(0),
        "{}",
        report["drops"]
    );
    let followed = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["followed"] == true)
        .count();
    assert!(
        followed >= 3000,
        "every child is listed as followed: {followed}"
    );
    assert!(report["verdict"]["incomplete"].is_null());
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn a_harvest_during_thread_churn_counts_each_wait_once() {
    let Some(_serial) = privileged() else { return };
    let bin = c_workload("thread_churn");
    // 3,000 threads (fewer than the pid space, so no id is reused), each
    // waiting exactly once and exiting 2 ms later; tracing stops while they
    // still come and go, so threads whose entries were just read exit
    // while the report is gathered.
    let mut work = Gated::start({
        let mut c = Command::new(&bin);
        c.args(["3000", "2000"]);
        c
    });
    let tracer = Tracer::start(
        &["--pid", &work.pid.to_string(), "--duration", "250ms"],
        "churn_harvest",
    );
    work.go();
    let (_, report) = tracer.finish(Duration::from_secs(60));
    let rest = work.finish(Duration::from_secs(60));
    assert_eq!(field(&rest, "threads"), Some("3000"), "{rest}");
    let word = report["locks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["symbol"] == "word")
        .unwrap_or_else(|| panic!("no lock `word`: {}", report["locks"]));
    let rows = word["threads"].as_array().unwrap();
    assert!(
        rows.len() > 100,
        "threads came and went while traced: {}",
        rows.len()
    );
    let twice: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|t| t["contentions"].as_u64() != Some(1))
        .collect();
    assert!(
        twice.is_empty(),
        "a thread's one wait counted {} times: {:?}",
        twice.len(),
        &twice[..twice.len().min(3)]
    );
    assert_eq!(word["contentions"].as_u64(), Some(rows.len() as u64));
}

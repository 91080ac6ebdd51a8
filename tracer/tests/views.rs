//! The views of a real traced run, checked by tools the tracer does not
//! contain: the HTML pages in a real headless Chromium (charts laid out
//! with non-zero size, the flame graph drawn, nothing fetched), the pprof
//! profile decoded by `go tool pprof` (totals equal the JSON report's), the
//! folded stacks' total, and the live progress line on a pseudo-terminal
//! (and not when piped).

mod common;

use std::{
    io::Read as _,
    os::fd::{FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use common::*;

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// One traced run of the demo, shared by the tests of this file. Its
/// sleeps (nanosleep, ≈150 calls/s from the reporter and main threads) are
/// probed too, so the page has a function latency histogram.
fn demo_run() -> &'static (PathBuf, serde_json::Value) {
    static RUN: OnceLock<(PathBuf, serde_json::Value)> = OnceLock::new();
    RUN.get_or_init(|| {
        let bin = c_workload("sequencer");
        let json = tmp("views-demo.json");
        let out = output(
            Command::new(tracer_bin())
                .args(["contention", "--json"])
                .arg(&json)
                .arg("--html")
                .arg(tmp("views-live.html"))
                .args(["--uprobe", "nanosleep"])
                .arg("--")
                .arg(&bin)
                .args(["--seconds", "2"]),
        );
        assert!(out.status.success(), "{out:?}");
        let v = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        (json, v)
    })
}

fn report(run: &Path, format: &str, out: &Path) {
    let o = output(
        Command::new(tracer_bin())
            .arg("report")
            .arg(run)
            .args(["--format", format, "-o"])
            .arg(out),
    );
    assert!(o.status.success(), "{o:?}");
}

/// Chromium started headless, sandbox off (root), and kept off the
/// network: no background services, and every host name resolves nowhere.
fn chromium(bin: &Path, profile: &str) -> Command {
    let mut c = Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--allow-file-access-from-files",
    ])
    .arg(format!(
        "--user-data-dir={}",
        tmp(&format!("chromium-{profile}")).display()
    ));
    c
}

/// What the page looked like once loaded: every chart's box, the flame
/// graph's box and frames, and any resource the page fetched. Measured by a
/// script appended to a copy of the page; read back with --dump-dom.
fn measure(browser: &Path, html: &Path) -> serde_json::Value {
    const PROBE: &str = r#"<script>
window.addEventListener('load', () => {
  const box = e => { const b = e.getBoundingClientRect(); return [b.width, b.height]; };
  const r = { charts: [], resources: performance.getEntriesByType('resource').map(e => e.name) };
  for (const s of document.querySelectorAll('svg.chart')) {
    r.charts.push({ id: s.id, size: box(s), bars: [...s.querySelectorAll('rect.bar')].filter(b => b.getBoundingClientRect().width > 0).length,
                    markers: s.querySelectorAll('.pmark, .threshold').length });
  }
  const f = document.getElementById('flamegraph');
  if (f) {
    const d = f.contentDocument, svg = d && d.querySelector('svg');
    r.flame = { size: box(f), svg: svg ? box(svg) : [0, 0], frames: d ? d.querySelectorAll('#frames > g').length : 0 };
    // Its own script works: clicking a frame zooms (its callers below it
    // become the "parent" frames, frames elsewhere are hidden).
    const g = d && [...d.querySelectorAll('#frames > g')].find(g => g.textContent.includes('sequencer_assign'));
    if (g) {
      try { g.dispatchEvent(new MouseEvent('click', { bubbles: true })); } catch (e) { r.flame.error = String(e); }
      r.flame.parents_after_zoom = d.querySelectorAll('#frames > g.parent').length;
    }
  }
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = '@@PROBE@@' + JSON.stringify(r) + '@@END@@';
  document.body.appendChild(pre);
});
</script>"#;
    let page = std::fs::read_to_string(html).unwrap();
    let probed = html.with_extension("probe.html");
    std::fs::write(&probed, page.replace("</body>", &format!("{PROBE}</body>"))).unwrap();
    let out = output(
        chromium(browser, "dump")
            .args(["--virtual-time-budget=5000", "--dump-dom"])
            .arg(format!("file://{}", probed.display())),
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    // The last marker: the first ones are in the script's own text.
    let json = dom
        .rsplit_once("@@PROBE@@")
        .and_then(|(_, rest)| rest.split_once("@@END@@"))
        .map(|(j, _)| {
            j.replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
        })
        .unwrap_or_else(|| panic!("the probe did not run: {out:?}"));
    serde_json::from_str(&json).unwrap()
}

fn screenshot(browser: &Path, html: &Path, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join(name);
    let _ = std::fs::remove_file(&png);
    let out = output(
        chromium(browser, "shot")
            .arg("--window-size=1280,2400")
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("file://{}", html.display())),
    );
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "no screenshot ({size} bytes): {out:?}");
    png
}

fn chart<'a>(m: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    m["charts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no chart {id}: {m:#}"))
}

fn assert_drawn(m: &serde_json::Value, id: &str, min_bars: u64, markers: u64) {
    let c = chart(m, id);
    let (w, h) = (
        c["size"][0].as_f64().unwrap(),
        c["size"][1].as_f64().unwrap(),
    );
    // (A chart of one lock is one bar: short, never collapsed.)
    assert!(w > 100.0 && h > 25.0, "{id} laid out at {w}×{h}");
    assert!(
        c["bars"].as_u64().unwrap() >= min_bars,
        "{id} has too few visible bars: {c}"
    );
    assert_eq!(c["markers"].as_u64(), Some(markers), "{id}: {c}");
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn html_report_renders_in_headless_chromium() {
    let Some(_serial) = privileged() else { return };
    let Some(browser) = tool("chromium") else {
        return;
    };
    let (run, v) = demo_run();
    let html = tmp("views-report.html");
    report(run, "html", &html);
    // The page re-rendered from the JSON is the page the run wrote.
    assert_eq!(
        std::fs::read_to_string(&html).unwrap(),
        std::fs::read_to_string(tmp("views-live.html")).unwrap(),
        "tracer report --format html differs from contention --html"
    );
    let m = measure(&browser, &html);
    assert_eq!(m["resources"], serde_json::json!([]), "fetched something");
    let locks = view_rows(v).len() as u64;
    // Rates with the two decision lines, one histogram per lock with
    // p50/p95/p99, the threads' time, nanosleep's latency histogram with
    // p50/p95/p99, and the flame graph.
    assert_drawn(&m, "rates", locks, 2);
    assert_drawn(&m, "wait-hist-0", 1, 3);
    assert_drawn(&m, "offcpu", 4, 0);
    assert_drawn(&m, "fn-hist-0", 1, 3);
    let f = &m["flame"];
    assert!(f["size"][0].as_f64().unwrap() > 500.0, "{f}");
    assert!(f["svg"][1].as_f64().unwrap() > 100.0, "{f}");
    assert!(
        f["frames"].as_u64().unwrap() >= 5,
        "flame graph frames: {f}"
    );
    // Zoomed into sequencer_assign: sequencer_worker, start_thread and
    // clone3 below it are its parents.
    assert!(
        f["parents_after_zoom"].as_u64().unwrap_or(0) >= 3,
        "zoom did nothing: {f}"
    );
    let png = screenshot(&browser, &html, "report.png");
    eprintln!("screenshot: {}", png.display());
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn compare_html_shows_both_runs_in_headless_chromium() {
    let Some(_serial) = privileged() else { return };
    let Some(browser) = tool("chromium") else {
        return;
    };
    let (run, _) = demo_run();
    // The same program with twenty times the work under its lock.
    let slow = sequencer_with_work(4000);
    let slow_json = tmp("views-slow.json");
    let out = output(
        Command::new(tracer_bin())
            .args(["contention", "--json"])
            .arg(&slow_json)
            .arg("--")
            .arg(&slow)
            .args(["--seconds", "2"]),
    );
    assert!(out.status.success(), "{out:?}");
    let html = tmp("views-compare.html");
    let out = output(
        Command::new(tracer_bin())
            .arg("compare")
            .arg(run)
            .arg(&slow_json)
            .args(["--allow-different-programs", "--html"])
            .arg(&html),
    );
    assert!(
        out.status.code().is_some_and(|c| c == 0 || c == 9),
        "{out:?}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    // The p99 wait grew far past 50%: a critical regression, coloured so.
    assert!(
        page.contains("badge b-critical\">regression (critical)"),
        "no critical regression on the page"
    );
    let m = measure(&browser, &html);
    assert_eq!(m["resources"], serde_json::json!([]), "fetched something");
    // Paired bars (base and current) and each side's own rate chart.
    assert_drawn(&m, "cmp-rates", 2, 0);
    assert_drawn(&m, "cmp-p99", 2, 0);
    assert_drawn(&m, "base-rates", 1, 2);
    assert_drawn(&m, "current-rates", 1, 2);
    screenshot(&browser, &html, "compare.png");
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn pprof_totals_equal_the_json_report_in_go_tool_pprof() {
    let Some(_serial) = privileged() else { return };
    let Some(go) = tool("go") else { return };
    let (run, v) = demo_run();
    let pb = tmp("views.pb.gz");
    report(run, "pprof", &pb);
    let (raw, count, delay) = pprof_raw(&go, &pb);
    let want_count: u64 = view_rows(v)
        .iter()
        .map(|l| l["contentions"].as_u64().unwrap())
        .sum();
    let want_delay = total_wait_ns(v);
    assert!(want_count > 1000, "the demo contends: {want_count}");
    assert_eq!(count, want_count, "contentions");
    assert_eq!(delay, want_delay, "delay");
    // Labels name the lock, its kind and the waiting thread; the stacks
    // reach the demo's own function.
    for label in [
        "lock:[global_seq_batch_seq_mu_]",
        "lock_kind:[mutex]",
        "thread:[sequencer-0]",
    ] {
        assert!(raw.contains(label), "{label} missing:\n{raw}");
    }
    assert!(raw.contains("sequencer_assign"), "{raw}");
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn folded_total_equals_the_report_total_wait() {
    let Some(_serial) = privileged() else { return };
    let (run, v) = demo_run();
    let folded = tmp("views.folded");
    report(run, "folded", &folded);
    let want = total_wait_ns(v);
    assert!(want > 0);
    assert_eq!(
        folded_total(&std::fs::read_to_string(&folded).unwrap()),
        want
    );
}

/// Runs the tracer on the demo with stderr on a fresh pseudo-terminal (or
/// a pipe) and returns what stderr got.
fn stderr_of_run(pty: bool, extra: &[&str]) -> String {
    let bin = c_workload("sequencer");
    let mut cmd = Command::new(tracer_bin());
    cmd.args(["contention", "--duration", "3s"])
        .args(extra)
        .arg("--")
        .arg(&bin)
        .args(["--seconds", "10"])
        .stdout(Stdio::null());
    if !pty {
        let out = output(cmd.stderr(Stdio::piped()));
        assert!(out.status.success(), "{out:?}");
        return String::from_utf8_lossy(&out.stderr).into_owned();
    }
    let (mut master, mut slave) = (0, 0);
    let ws = libc::winsize {
        ws_row: 40,
        ws_col: 250,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors into valid pointers; the
    // winsize is read only.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    assert_eq!(rc, 0, "openpty failed");
    // SAFETY: both descriptors were just opened and are owned here only.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut child = cmd.stderr(Stdio::from(slave)).spawn().unwrap();
    // The parent's copy of the slave is gone with `cmd`'s: reading the
    // master ends (EIO) when the tracer exits.
    drop(cmd);
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(master);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match f.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    let status = wait_for(&mut child, Duration::from_secs(60), "tracer on a pty");
    assert!(status.success());
    reader.join().unwrap()
}

#[test]
#[cfg_attr(
    unprivileged,
    ignore = "loads eBPF programs: run as root, or `cargo xtask test`"
)]
fn progress_line_appears_on_a_terminal_and_not_when_piped() {
    let Some(_serial) = privileged() else { return };
    let tty = stderr_of_run(true, &[]);
    let line = tty
        .split("\r\x1b[K")
        .find(|l| l.starts_with("tracer: ") && l.contains("waits/s"))
        .unwrap_or_else(|| panic!("no progress line on the terminal:\n{tty:?}"));
    for part in ["waits ·", "drops ", "top global_seq_batch_seq_mu_"] {
        assert!(line.contains(part), "{part} missing from {line:?}");
    }
    // The line is erased before the tracer's last words.
    assert!(tty.contains("\r\x1b[K"), "{tty:?}");
    let piped = stderr_of_run(false, &[]);
    assert!(
        !piped.contains("waits/s") && !piped.contains('\x1b'),
        "progress on a pipe:\n{piped}"
    );
    let quiet = stderr_of_run(true, &["-q"]);
    assert!(!quiet.contains("waits/s"), "progress with -q:\n{quiet:?}");
}

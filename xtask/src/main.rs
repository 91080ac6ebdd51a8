//! `cargo xtask setup|demo|test`: everything a fresh machine needs, then the
//! job. Setup is idempotent and takes well under a second when all is there.
//!
//! - setup: llvm-22-dev and linux-perf (apt), rust-src for the nightly
//!   toolchain, bpf-linker built against LLVM 22.
//! - demo:  setup, build, trace the built-in sequencer workload, print the
//!   report (JSON in target/demo/run.json).
//! - test:  setup, then every test, privileged ones included (through sudo
//!   when not root).
//! - bench: setup, then the benchmark harness (bench.rs), which writes
//!   docs/BENCHMARKS.md and docs/benchmarks.json.

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

mod bench;

const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPF_LINKER_VERSION: &str = "0.13.0";
/// Debian packages: llvm-22-dev for bpf-linker; linux-perf is the ground
/// truth of the integration tests (perf stat); g++ builds the C++ uprobe
/// fixture; bpftrace is the benchmark's peer and limit.
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "linux-perf",
    "g++",
    "bpftrace",
    // Peers for the views' tests: the HTML pages in a real browser, the
    // pprof profile in `go tool pprof`.
    "chromium",
    "golang-go",
    // Lock implementations for the lock-model tests: the JVM (javac, jcmd),
    // Abseil, musl for a static binary.
    "openjdk-17-jdk-headless",
    "libabsl-dev",
    "musl-tools",
    "pkg-config",
    // `tracer agent`'s tests: a real Prometheus scraping it; bpftool lists
    // what is left loaded after it stops.
    "prometheus",
    "bpftool",
];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("demo") => setup().and_then(|()| demo(&args[1..])),
        Some("test") => setup().and_then(|()| test(&args[1..])),
        Some("bench") => setup().and_then(|()| bench::bench(&args[1..])),
        _ => {
            eprintln!(
                "usage: cargo xtask setup | demo [-- TRACER ARGS] | test [-- CARGO TEST ARGS] | bench [--rounds N] [--quick] [--out DIR]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `cmd` as root: directly when we are root, else through sudo.
fn privileged(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg(program);
        c
    }
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn setup() -> Result<()> {
    let t0 = Instant::now();
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if !missing.is_empty() {
        run(privileged("apt-get").arg("update").arg("-q"))?;
        run(privileged("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    let components = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", "nightly"])
        .output()
        .context("rustup is needed (the nightly toolchain builds the eBPF programs)")?;
    if !String::from_utf8_lossy(&components.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    let clippy_ok = Command::new("cargo")
        .args(["clippy", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !clippy_ok {
        run(Command::new("rustup").args(["component", "add", "clippy"]))?;
    }
    let linker_ok = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION)
        });
    if !linker_ok {
        // Plain `cargo install bpf-linker` wants LLVM 23; pin to the LLVM 22 build.
        run(Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args(["--no-default-features", "--features", "llvm-22"])
            .env("LLVM_PREFIX", LLVM_PREFIX))?;
    }
    eprintln!(
        "xtask: setup complete in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Asks dpkg, not the file system: a package's files can outlive it (llvm-22
/// keeps llvm-config when llvm-22-dev is removed).
fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "install ok installed")
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn demo(extra: &[String]) -> Result<()> {
    let root = workspace_root();
    run(Command::new("cargo")
        .current_dir(&root)
        .args(["build", "--release", "-p", "tracer"]))?;
    let out = root.join("target/demo");
    std::fs::create_dir_all(&out)?;
    let bin = out.join("sequencer");
    run(Command::new("cc")
        .args(["-O2", "-g", "-fno-omit-frame-pointer", "-pthread", "-o"])
        .arg(&bin)
        .arg(root.join("demo/sequencer.c")))?;
    let tracer = root.join("target/release/tracer");
    let json = out.join("run.json");
    let html = out.join("report.html");
    let extra: Vec<&String> = extra.iter().skip_while(|a| *a == "--").collect();
    let mut cmd = privileged(tracer.to_str().context("non-UTF-8 path")?);
    cmd.args(["contention", "--json"])
        .arg(&json)
        .arg("--html")
        .arg(&html)
        .args(&extra)
        .arg("--")
        .arg(&bin)
        .args(["--seconds", "5"]);
    run(&mut cmd)?;
    eprintln!(
        "xtask: the JSON report is in {}, the HTML page in {}",
        json.display(),
        html.display()
    );
    Ok(())
}

fn test(extra: &[String]) -> Result<()> {
    let root = workspace_root();
    let extra: Vec<&String> = extra.iter().skip_while(|a| *a == "--").collect();
    // Lints first: a warning fails the run. The default members only:
    // tracer-ebpf builds for the BPF target alone (through tracer/build.rs).
    run(Command::new("cargo").current_dir(&root).args([
        "clippy",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&root)
        .args(["test", "-p", "tracer-common", "-p", "tracer", "-p", "xtask"]);
    if !is_root() {
        // The integration tests load eBPF programs: run the test binaries
        // (not the build) as root.
        cmd.env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER", "sudo -E");
        // Built as this user, run as root: the privileged tests are not
        // ignored (tracer/build.rs).
        cmd.env("TRACER_TESTS_PRIVILEGED", "1");
    }
    cmd.arg("--").args(&extra);
    run(&mut cmd)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dpkg_query_tells_installed_from_missing() {
        // dpkg itself is installed on every Debian system; this name is not a package.
        assert!(super::dpkg_installed("dpkg"));
        assert!(!super::dpkg_installed("no-such-package-tracer-test"));
    }
}

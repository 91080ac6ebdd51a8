use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

/// Builds the kernel programs (`tracer-ebpf`) with the nightly toolchain and
/// bpf-linker, for `include_bytes_aligned!` in `attach/`. With AYA_BUILD_SKIP
/// set (unit tests, docs), writes an empty placeholder instead; loading it
/// then fails with a sentence that says so.
fn main() -> anyhow::Result<()> {
    privileged_tests_cfg();
    let out_dir = std::env::var("OUT_DIR").context("OUT_DIR not set")?;
    let skip = std::env::var_os("AYA_BUILD_SKIP")
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        std::fs::write(format!("{out_dir}/tracer"), [])
            .context("writing the placeholder object")?;
        println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
        return Ok(());
    }
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "tracer-ebpf")
        .ok_or_else(|| anyhow!("tracer-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent"))?;
    aya_build::build_ebpf(
        [Package {
            name: "tracer-ebpf",
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        Toolchain::default(),
    )
}

/// Sets the `unprivileged` cfg, which `#[ignore]`s the privileged
/// integration tests with a message, when the tests are built by a user who
/// cannot load eBPF programs: not root, not in CI (where a skip is a
/// failure), and not through `cargo xtask test` (which runs them through
/// `sudo -E` and says so with TRACER_TESTS_PRIVILEGED=1).
fn privileged_tests_cfg() {
    println!("cargo::rustc-check-cfg=cfg(unprivileged)");
    // The user is in the environment: a build as another user reruns this.
    for var in ["CI", "TRACER_TESTS_PRIVILEGED", "USER", "SUDO_UID"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let set =
        |var: &str| std::env::var(var).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    // The effective uid: the second field of /proc/self/status's Uid line.
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().nth(1))
            == Some("0")
    });
    if !root && !set("CI") && !set("TRACER_TESTS_PRIVILEGED") {
        println!("cargo::rustc-cfg=unprivileged");
    }
}

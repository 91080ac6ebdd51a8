use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

/// Builds the kernel programs (`tracer-ebpf`) with the nightly toolchain and
/// bpf-linker, for `include_bytes_aligned!` in `attach/`. With AYA_BUILD_SKIP
/// set (unit tests, docs), writes an empty placeholder instead; loading it
/// then fails with a sentence that says so.
fn main() -> anyhow::Result<()> {
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

use which::which;

/// Rebuild the eBPF object whenever bpf-linker changes (aya-template does the
/// same): cargo does not track the linker otherwise.
fn main() {
    let bpf_linker = which("bpf-linker").expect(
        "bpf-linker not found on PATH: run `cargo xtask setup` (it installs bpf-linker built against LLVM 22)",
    );
    println!(
        "cargo:rerun-if-changed={}",
        bpf_linker.to_str().expect("bpf-linker path is UTF-8")
    );
}

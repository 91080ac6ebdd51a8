//! Addresses → names. Code addresses (stack frames) go through blazesym, by
//! file offset into the mapped binary, using memory maps captured while the
//! target was alive, so it works after the target has exited. Data
//! addresses (a mutex that is a named static, e.g. `global_seq_batch_seq_mu_`)
//! are looked up in the ELF symbol table here: blazesym resolves functions.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use blazesym::symbolize::{
    Input, Symbolized, Symbolizer,
    source::{Elf, Source},
};
use object::{Object as _, ObjectSegment as _, ObjectSymbol as _, SymbolKind};

use crate::{report::model::Frame, target::ProcessInfo};

const PAGE: u64 = 4096;

/// A loaded ELF's segments and data symbols.
struct ElfData {
    /// (vaddr, memsz, file offset, filesz) of each PT_LOAD.
    loads: Vec<(u64, u64, u64, u64)>,
    /// (vaddr, size, demangled name), sorted by vaddr.
    objects: Vec<(u64, u64, String)>,
}

pub struct Symbols {
    blaze: Symbolizer,
    elves: HashMap<PathBuf, Option<ElfData>>,
}

impl Default for Symbols {
    fn default() -> Self {
        Self::new()
    }
}

impl Symbols {
    pub fn new() -> Self {
        Self {
            blaze: Symbolizer::builder().enable_demangling(true).build(),
            elves: HashMap::new(),
        }
    }

    /// Symbolizes one user stack, innermost frame first. Return addresses
    /// (every frame but the first) are looked up at `ip - 1`, inside the
    /// call instruction, so the line is the call's line.
    pub fn stack(&mut self, proc_: &ProcessInfo, ips: &[u64]) -> Vec<Frame> {
        ips.iter()
            .enumerate()
            .map(|(i, &ip)| self.code(proc_, if i == 0 { ip } else { ip.saturating_sub(1) }, ip))
            .collect()
    }

    /// Symbolizes a return address (looked up inside its call instruction).
    pub fn return_addr(&mut self, proc_: &ProcessInfo, addr: u64) -> Frame {
        self.code(proc_, addr.saturating_sub(1), addr)
    }

    fn code(&mut self, proc_: &ProcessInfo, lookup: u64, ip: u64) -> Frame {
        let mut frame = Frame {
            addr: format!("{ip:#x}"),
            ..Default::default()
        };
        let Some(map) = proc_.mapping(lookup) else {
            return frame;
        };
        let Some(path) = &map.path else {
            return frame;
        };
        frame.module = Some(path.display().to_string());
        frame.file_offset = Some(ip - map.start + map.offset);
        let file_off = lookup - map.start + map.offset;
        let src = Source::Elf(Elf::new(path));
        if let Ok(Symbolized::Sym(sym)) = self
            .blaze
            .symbolize_single(&src, Input::FileOffset(file_off))
        {
            frame.symbol = Some(sym.name.to_string());
            frame.offset = Some(sym.offset as u64);
            if let Some(ci) = &sym.code_info {
                frame.file = Some(ci.to_path().display().to_string());
                frame.line = ci.line;
            }
        }
        frame
    }

    /// The named static object containing `addr`, as `name` or `name+off`.
    pub fn data(&mut self, proc_: &ProcessInfo, addr: u64) -> Option<String> {
        // The mapping holding the address may be anonymous (.bss past the end
        // of the file): use a file-backed mapping just before it for the bias.
        let idx = proc_
            .maps
            .iter()
            .position(|m| m.start <= addr && addr < m.end)?;
        let with_file = proc_.maps[..=idx]
            .iter()
            .rev()
            .take(4)
            .find(|m| m.path.is_some())?;
        let path = with_file.path.clone()?;
        let elf = self.elf(&path)?;
        // Bias: where the file's vaddr 0 sits in this process, from the
        // module's mapping at file offset 0 (its first PT_LOAD). Segments can
        // share file pages, so a later mapping's offset alone is ambiguous.
        let page = |v: u64| v & !(PAGE - 1);
        let base = proc_
            .maps
            .iter()
            .find(|m| m.offset == 0 && m.path.as_deref() == Some(path.as_path()))?;
        let (seg_vaddr, _, _, _) = *elf.loads.iter().find(|(_, _, off, _)| *off == 0)?;
        let bias = base.start.wrapping_sub(page(seg_vaddr));
        let vaddr = addr.wrapping_sub(bias);
        if !elf
            .loads
            .iter()
            .any(|(v, memsz, _, _)| *v <= vaddr && vaddr < v + memsz)
        {
            return None;
        }
        let i = elf.objects.partition_point(|(start, _, _)| *start <= vaddr);
        let (start, size, name) = elf.objects.get(i.checked_sub(1)?)?;
        (vaddr < start + size).then(|| {
            if vaddr == *start {
                name.clone()
            } else {
                format!("{name}+{:#x}", vaddr - start)
            }
        })
    }

    fn elf(&mut self, path: &Path) -> Option<&ElfData> {
        self.elves
            .entry(path.to_path_buf())
            .or_insert_with(|| load_elf(path))
            .as_ref()
    }
}

fn load_elf(path: &Path) -> Option<ElfData> {
    let bytes = std::fs::read(path).ok()?;
    let file = object::File::parse(&*bytes).ok()?;
    let loads = file
        .segments()
        .map(|s| {
            let (off, filesz) = s.file_range();
            (s.address(), s.size(), off, filesz)
        })
        .collect();
    let mut objects: Vec<(u64, u64, String)> = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| s.kind() == SymbolKind::Data && s.size() > 0)
        .filter_map(|s| Some((s.address(), s.size(), demangle(s.name().ok()?))))
        .collect();
    objects.sort();
    objects.dedup_by(|a, b| a.0 == b.0);
    Some(ElfData { loads, objects })
}

/// Rust (legacy and v0) and C++ demangling; other names unchanged.
pub fn demangle(name: &str) -> String {
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        return format!("{d:#}");
    }
    if name.starts_with("_Z")
        && let Ok(sym) = cpp_demangle::Symbol::new(name)
        && let Ok(d) = sym.demangle(&cpp_demangle::DemangleOptions::default())
    {
        return d;
    }
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[unsafe(no_mangle)]
    static TRACER_TEST_NAMED_STATIC: [u64; 4] = [1, 2, 3, 4];

    #[inline(never)]
    fn a_function_to_find() -> u64 {
        std::hint::black_box(42)
    }

    fn me() -> ProcessInfo {
        let mut me = ProcessInfo {
            pid: std::process::id(),
            ..Default::default()
        };
        me.refresh();
        me
    }

    #[test]
    fn named_static_is_found_by_address() {
        let mut s = Symbols::new();
        let base = std::ptr::addr_of!(TRACER_TEST_NAMED_STATIC) as u64;
        assert_eq!(
            s.data(&me(), base).as_deref(),
            Some("TRACER_TEST_NAMED_STATIC")
        );
        assert_eq!(
            s.data(&me(), base + 8).as_deref(),
            Some("TRACER_TEST_NAMED_STATIC+0x8")
        );
    }

    #[test]
    fn heap_address_has_no_symbol() {
        let b = Box::new([0u64; 64]);
        assert_eq!(Symbols::new().data(&me(), b.as_ptr() as u64), None);
    }

    #[test]
    fn function_address_symbolizes() {
        let f = a_function_to_find as *const () as u64;
        let frames = Symbols::new().stack(&me(), &[f]);
        let name = frames[0].symbol.clone().unwrap_or_default();
        assert!(name.contains("a_function_to_find"), "{name}");
    }

    #[test]
    fn demangles_rust_and_cpp() {
        assert_eq!(
            demangle("_ZN4core3ptr13drop_in_place17h0123456789abcdefE"),
            "core::ptr::drop_in_place"
        );
        assert_eq!(
            demangle("_ZN3seq9Sequencer6assignEv"),
            "seq::Sequencer::assign()"
        );
        assert_eq!(
            demangle("global_seq_batch_seq_mu_"),
            "global_seq_batch_seq_mu_"
        );
    }
}

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

use crate::{report::model::Frame, target::process::ProcessInfo};

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
    /// Data symbols per file, by the path it was opened by.
    /// Data symbols per file (the cache's entry: files stay mapped).
    elves: HashMap<*const crate::target::elf::ElfFile, Option<ElfData>>,
    perf_maps: HashMap<u32, PerfMap>,
}

/// A JIT's map of the code it generated (`/tmp/perf-PID.map`, the format
/// perf reads: `START SIZE NAME` per line, hex): HotSpot writes one with
/// `-XX:+DumpPerfMapAtExit` or `jcmd PID Compiler.perfmap`.
#[derive(Default)]
struct PerfMap {
    /// Where it was read, as the tracer sees it, and as the target names it.
    path: Option<(PathBuf, String)>,
    /// Its size and modification time when read: re-read when they change.
    stamp: Option<(u64, std::time::SystemTime)>,
    /// (start, end, name), sorted by start.
    entries: Vec<(u64, u64, String)>,
}

impl PerfMap {
    /// The map's paths for a process: through its root (a container's
    /// /tmp, under its own pid), then the host's /tmp.
    fn candidates(p: &ProcessInfo) -> Vec<(PathBuf, String)> {
        let mut v = Vec::new();
        let ns = p.nspid.unwrap_or(p.pid);
        let inside = format!("/tmp/perf-{ns}.map");
        v.push((
            PathBuf::from(format!("/proc/{}/root{inside}", p.pid)),
            inside,
        ));
        let host = format!("/tmp/perf-{}.map", p.pid);
        v.push((PathBuf::from(&host), host));
        v
    }

    /// Reads (or re-reads, when it changed) the process's map.
    fn refresh(&mut self, p: &ProcessInfo) {
        for (path, name) in Self::candidates(p) {
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let stamp = (meta.len(), meta.modified().unwrap_or(std::time::UNIX_EPOCH));
            if self.stamp == Some(stamp) && self.path.as_ref().is_some_and(|x| x.0 == path) {
                return;
            }
            // Bounded: a map is a few MB for a large service.
            let Some(text) = crate::input::read_untrusted(&path, p.uid, PERF_MAP_MAX) else {
                continue;
            };
            self.entries = parse_perf_map(&text);
            self.stamp = Some(stamp);
            self.path = Some((path, name));
            return;
        }
    }

    fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self.entries.partition_point(|e| e.0 <= addr);
        let (start, end, name) = self.entries.get(i.checked_sub(1)?)?;
        (addr < *end).then(|| (name.as_str(), addr - start))
    }
}

/// Perf maps larger than this are not read.
const PERF_MAP_MAX: u64 = 256 << 20;

/// `START SIZE NAME` lines (hex, with or without 0x); bad lines skipped.
fn parse_perf_map(text: &str) -> Vec<(u64, u64, String)> {
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let mut v: Vec<(u64, u64, String)> = text
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ' ');
            let start = hex(it.next()?)?;
            let size = hex(it.next()?)?;
            let name = it.next()?.trim();
            (size > 0 && !name.is_empty())
                .then(|| (start, start.saturating_add(size), java_name(name)))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    v
}

/// HotSpot names compiled methods `RET CLASS.METHOD(PARAMS)`: the return
/// type is dropped (`void LockHot.cachePut()` → `LockHot.cachePut()`);
/// other names (stubs, `Interpreter`) are kept.
fn java_name(name: &str) -> String {
    match name.split_once(' ') {
        Some((ret, rest)) if rest.contains('(') && !ret.contains('(') => rest.to_string(),
        _ => name.to_string(),
    }
}

impl Default for Symbols {
    fn default() -> Self {
        Self::new()
    }
}

impl Symbols {
    pub fn new() -> Self {
        Self::with_debug_dirs(&[])
    }

    /// Debug files are also looked for under each of `dirs` (and its
    /// `.build-id/`), then /usr/lib/debug.
    pub fn with_debug_dirs(dirs: &[std::path::PathBuf]) -> Self {
        let mut b = Symbolizer::builder().enable_demangling(true);
        if !dirs.is_empty() {
            let mut all = dirs.to_vec();
            all.push("/usr/lib/debug".into());
            b = b.set_debug_dirs(Some(all));
        }
        Self {
            blaze: b.build(),
            elves: HashMap::new(),
            perf_maps: HashMap::new(),
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
        let Some(map) = proc_.mapping(lookup).filter(|m| m.path.is_some()) else {
            // Code in no file: a JIT's, named by its perf map if it has one.
            let pm = self.perf_maps.entry(proc_.pid).or_default();
            pm.refresh(proc_);
            if let Some((name, off)) = pm.lookup(lookup) {
                frame.symbol = Some(name.to_string());
                frame.offset = Some(off + (ip - lookup));
                frame.module = pm.path.as_ref().map(|p| p.1.clone());
            }
            return frame;
        };
        let Some(path) = &map.path else {
            return frame;
        };
        frame.module = Some(path.display().to_string());
        frame.file_offset = Some(ip - map.start + map.offset);
        let file_off = lookup - map.start + map.offset;
        // Through the process's root when that is another file (a
        // container's); blazesym opens and caches files by path.
        let src = Source::Elf(Elf::new(crate::target::elf::path_in(proc_.pid, path)));
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
        let elf = self.elf(proc_.pid, &path)?;
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

    fn elf(&mut self, pid: u32, path: &Path) -> Option<&ElfData> {
        let file = crate::target::elf::open_in(pid, path)?;
        self.elves
            .entry(std::sync::Arc::as_ptr(&file))
            .or_insert_with(|| load_elf(&file))
            .as_ref()
    }
}

fn load_elf(elf: &crate::target::elf::ElfFile) -> Option<ElfData> {
    let file = elf.parse()?;
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
    fn perf_map_lines_parse_and_java_names_lose_their_return_type() {
        let map = parse_perf_map(
            "0x7f0000001000 0x80 void LockHot.cachePut()\n\
             7f0000002000 40 Interpreter\n\
             garbage\n\
             0x7f0000003000 0x0 empty\n",
        );
        assert_eq!(
            map,
            vec![
                (
                    0x7f0000001000,
                    0x7f0000001080,
                    "LockHot.cachePut()".to_string()
                ),
                (0x7f0000002000, 0x7f0000002040, "Interpreter".to_string()),
            ]
        );
        let pm = PerfMap {
            entries: map,
            ..Default::default()
        };
        assert_eq!(
            pm.lookup(0x7f0000001010),
            Some(("LockHot.cachePut()", 0x10))
        );
        assert_eq!(pm.lookup(0x7f0000001080), None);
        assert_eq!(pm.lookup(0x7f0000000fff), None);
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

//! True call sites through libc: sampled futex waits arrive from the kernel
//! with their user registers and a copy of the stack (records of the event
//! ring, see `tracer_common::UnwindSample`, read by `ring.rs`), and are
//! unwound here with the binaries' .eh_frame (framehop). glibc has no frame
//! pointers, so the kernel's own walk loses the function that called
//! pthread_mutex_lock.
//!
//! Samples are unwound as they arrive, while the target's modules are
//! mapped, and kept only as address lists aggregated per (lock, stack).

use std::{
    collections::{BTreeMap, HashMap},
    ops::Range,
    path::{Path, PathBuf},
};

use framehop::{
    ExplicitModuleSectionInfo, Module, Unwinder as _,
    x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64},
};
use object::{Object as _, ObjectSection as _, ObjectSegment as _};
use tracer_common::{
    CPU_HEADER, CPU_KSTACK_DEPTH, CpuSample, UNWIND_HEADER, UNWIND_STACK, UnwindSample,
};

use crate::target::process::ProcessInfo;

/// Frames kept per unwound stack.
const MAX_FRAMES: usize = 64;

/// One distinct unwound stack of one lock, with what its samples stand for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unwound {
    /// Innermost first: the instruction pointer, then return addresses.
    pub frames: Vec<u64>,
    /// Samples taken with this stack.
    pub samples: u64,
    /// Waits they stand for (each sample's weight summed).
    pub waits: u64,
    /// Estimated wait time: each sample's duration × its weight.
    pub wait_ns: u64,
    /// The same estimates per waiting thread: tid → (waits, wait ns).
    pub threads: BTreeMap<u32, (u64, u64)>,
}

/// Unwound stacks per lock: (futex word, tgid) → stack → totals.
pub type UnwoundByLock = BTreeMap<(u64, u32), Vec<Unwound>>;

/// On-CPU samples of one thread with one stack (`tracer profile`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuStack {
    pub tgid: u32,
    pub tid: u32,
    /// Kernel frames, innermost first (empty: the sample was in user mode).
    pub kernel: Vec<u64>,
    /// User frames, innermost first.
    pub user: Vec<u64>,
    pub samples: u64,
    /// The samples' periods summed: CPU time, nanoseconds.
    pub period_ns: u64,
    /// Samples whose user stack was walked with frame pointers (.eh_frame
    /// gave one frame): the method, per stack.
    pub frame_pointers: u64,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct CpuStats {
    pub received: u64,
    /// Samples whose user stack unwound to a single frame.
    pub one_frame: u64,
    /// Samples unwound by .eh_frame, and by frame pointers (the fallback).
    pub eh_frame: u64,
    pub frame_pointers: u64,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct UnwindStats {
    pub received: u64,
    /// Samples whose unwinding gave only the first frame.
    pub failed: u64,
}

struct ProcUnwinder {
    unwinder: UnwinderX86_64<Vec<u8>>,
    cache: CacheX86_64,
    /// The executable file mappings the modules were built from: rebuilt
    /// when these change (dlopen), not when a thread stack is mapped.
    modules_key: Vec<(u64, PathBuf)>,
}

/// Unwinds samples with its own view of the target processes (their
/// memory maps, re-read when a sample's code is not mapped in it yet).
#[derive(Default)]
pub struct Unwinding {
    procs: HashMap<u32, ProcessInfo>,
    unwinders: HashMap<u32, ProcUnwinder>,
    stacks: HashMap<(u64, u32), HashMap<Vec<u64>, Unwound>>,
    pub stats: UnwindStats,
    /// On-CPU samples: (tid, kernel frames, user frames) → totals.
    cpu: HashMap<(u32, Vec<u64>, Vec<u64>), CpuStack>,
    pub cpu_stats: CpuStats,
    /// Modules carry their .text, for unwinding from any instruction
    /// (prologues and epilogues included): on-CPU samples land anywhere.
    pub with_text: bool,
}

impl Unwinding {
    /// `with_text`: on-CPU samples will be unwound (see the field).
    pub fn new(with_text: bool) -> Self {
        Self {
            with_text,
            ..Default::default()
        }
    }

    /// Unwinds one sample record (its bytes as the ring holds them).
    pub fn sample(&mut self, item: &[u8]) {
        let Self {
            procs,
            unwinders,
            stacks,
            stats,
            with_text,
            ..
        } = self;
        let Some(sample) = Header::parse(item) else {
            return;
        };
        stats.received += 1;
        let stack = &item[HEADER..HEADER + sample.stack_len.min(UNWIND_STACK)];
        let info = procs.entry(sample.tgid).or_insert_with(|| {
            let mut p = ProcessInfo {
                pid: sample.tgid,
                ..Default::default()
            };
            p.refresh();
            p
        });
        let frames = unwind(unwinders, info, &sample, stack, *with_text).0;
        if frames.len() < 2 {
            stats.failed += 1;
            log::debug!(
                "unwinding a wait on {:#x} in pid {} gave one frame (ip {:#x}, sp {:#x}, {} stack bytes; ip mapped: {:?}, {} maps)",
                sample.uaddr,
                sample.tgid,
                sample.ip,
                sample.sp,
                stack.len(),
                info.mapping(sample.ip).map(|m| m.path.clone()),
                info.maps.len()
            );
        }
        let agg = stacks
            .entry((sample.uaddr, sample.tgid))
            .or_default()
            .entry(frames.clone())
            .or_insert_with(|| Unwound {
                frames,
                ..Default::default()
            });
        let wait_ns = sample.wait_ns.saturating_mul(sample.weight);
        agg.samples += 1;
        agg.waits += sample.weight;
        agg.wait_ns += wait_ns;
        let t = agg.threads.entry(sample.tid).or_default();
        t.0 += sample.weight;
        t.1 += wait_ns;
    }

    /// Reads a process's memory maps now, before any of its samples: a
    /// process may exit right after its last wait (a main thread's join),
    /// before a sample would have read them.
    pub fn watch(&mut self, pid: u32) {
        let p = self.procs.entry(pid).or_insert_with(|| ProcessInfo {
            pid,
            ..Default::default()
        });
        p.refresh();
        // Its binaries' unwind tables too, while they can be opened through
        // its root.
        current_modules(&mut self.unwinders, p, self.with_text);
    }

    /// A process is gone: its memory maps are no longer needed.
    pub fn forget(&mut self, tgid: u32) {
        self.procs.remove(&tgid);
        self.unwinders.remove(&tgid);
    }
}

/// The process's unwinder, rebuilt when its executable mappings changed
/// (not when a thread stack is mapped).
fn current_modules<'a>(
    unwinders: &'a mut HashMap<u32, ProcUnwinder>,
    info: &ProcessInfo,
    with_text: bool,
) -> &'a mut ProcUnwinder {
    let pu = unwinders.entry(info.pid).or_insert_with(|| ProcUnwinder {
        unwinder: UnwinderX86_64::new(),
        cache: CacheX86_64::new(),
        modules_key: Vec::new(),
    });
    let key: Vec<(u64, PathBuf)> = info
        .maps
        .iter()
        .filter(|m| m.exec)
        .filter_map(|m| Some((m.start, m.path.clone()?)))
        .collect();
    if pu.modules_key != key {
        pu.unwinder = modules(info, with_text);
        pu.modules_key = key;
    }
    pu
}

fn unwind(
    unwinders: &mut HashMap<u32, ProcUnwinder>,
    info: &mut ProcessInfo,
    s: &Header,
    stack: &[u8],
    with_text: bool,
) -> (Vec<u64>, Method) {
    // A sample from code mapped after our last look (dlopen, or a library
    // whose code the loader had not yet mapped over its span): re-read.
    if !info.mapping(s.ip).is_some_and(|m| m.exec) {
        info.refresh();
    }
    let pu = current_modules(unwinders, info, with_text);
    let read = |addr: u64| -> Result<u64, ()> {
        let off = addr.checked_sub(s.sp).ok_or(())? as usize;
        let bytes = stack.get(off..off + 8).ok_or(())?;
        Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| ())?))
    };
    let mut frames = walk(pu, s.ip, s.sp, s.bp, &read);
    let mut method = Method::EhFrame;
    if frames.len() < SCAN_BELOW {
        // Code without unwind tables (musl is built with none): find the
        // return addresses on the stack instead, and go on unwinding from
        // the first one whose code has them.
        if let Some(f) = scan(pu, info, s, stack, &read) {
            frames = f;
            method = Method::StackScan;
        }
    }
    if frames.len() < 2 {
        // The frame-pointer chain, as the kernel would walk it.
        let fp = frame_pointers(s, &read);
        if fp.len() > frames.len().max(1) {
            frames = fp;
            method = Method::FramePointers;
        }
    }
    if frames.is_empty() {
        frames.push(s.ip);
    }
    (frames, method)
}

/// How a user stack was unwound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    EhFrame,
    StackScan,
    FramePointers,
}

/// The frame-pointer chain from (ip, bp), within the copied stack.
fn frame_pointers(s: &Header, read: &dyn Fn(u64) -> Result<u64, ()>) -> Vec<u64> {
    let mut frames = vec![s.ip];
    let mut bp = s.bp;
    while frames.len() < MAX_FRAMES {
        let (Ok(next), Ok(ret)) = (read(bp), read(bp.wrapping_add(8))) else {
            break;
        };
        if ret == 0 || next <= bp {
            if ret != 0 {
                frames.push(ret);
            }
            break;
        }
        frames.push(ret);
        bp = next;
    }
    frames
}

/// Fewer frames than this from .eh_frame and the stack is scanned.
const SCAN_BELOW: usize = 3;
/// Stack words scanned for return addresses.
const SCAN_WORDS: usize = 512;

/// .eh_frame unwinding from (ip, sp, bp).
fn walk(
    pu: &mut ProcUnwinder,
    ip: u64,
    sp: u64,
    bp: u64,
    read: &dyn Fn(u64) -> Result<u64, ()>,
) -> Vec<u64> {
    let mut frames = Vec::new();
    let mut read_stack = |a: u64| read(a);
    let mut it = pu.unwinder.iter_frames(
        ip,
        UnwindRegsX86_64::new(ip, sp, bp),
        &mut pu.cache,
        &mut read_stack,
    );
    while let Ok(Some(f)) = it.next() {
        frames.push(f.address());
        if frames.len() >= MAX_FRAMES {
            break;
        }
    }
    frames
}

/// A stack scan: each word that points just after a call instruction in
/// an executable mapping is a return address (a frame); at the first one
/// whose code .eh_frame can unwind from, unwinding resumes. None when no
/// such frame is found.
fn scan(
    pu: &mut ProcUnwinder,
    info: &ProcessInfo,
    s: &Header,
    stack: &[u8],
    read: &dyn Fn(u64) -> Result<u64, ()>,
) -> Option<Vec<u64>> {
    let mut frames = vec![s.ip];
    for slot in 0..(stack.len() / 8).min(SCAN_WORDS) {
        let at = s.sp + 8 * slot as u64;
        let Ok(w) = read(at) else { break };
        if !after_call(info, w) {
            continue;
        }
        // The frame whose call pushed `w`: its caller runs from `w` with
        // the stack just above the slot.
        let rest = walk(pu, w - 1, at + 8, 0, read);
        if rest.len() >= 2 {
            frames.push(w);
            frames.extend(&rest[1..]);
            frames.truncate(MAX_FRAMES);
            return Some(frames);
        }
        frames.push(w);
        if frames.len() >= MAX_FRAMES {
            break;
        }
    }
    None
}

/// Whether `addr` follows a call instruction in an executable file mapping
/// (a direct `call rel32`, or an indirect `call` through a register or
/// memory).
fn after_call(info: &ProcessInfo, addr: u64) -> bool {
    let Some(m) = info.mapping(addr).filter(|m| m.exec) else {
        return false;
    };
    let Some(path) = &m.path else { return false };
    let off = m.offset + (addr - m.start);
    if off < 7 {
        return false;
    }
    let Some(file) = crate::target::elf::open_in(info.pid, path) else {
        return false;
    };
    let Some(b) = file
        .bytes()
        .get((off - 7) as usize..off as usize)
        .and_then(|b| <[u8; 7]>::try_from(b).ok())
    else {
        return false;
    };
    // b[6] is the byte just before `addr`.
    b[2] == 0xe8 // call rel32
        || (b[5] == 0xff && (0xd0..=0xd7).contains(&b[6])) // call reg
        || (b[4] == 0xff && matches!(b[5] & 0x38, 0x10)) // call [reg+disp8]
        || (b[1] == 0xff && b[2] == 0x15) // call [rip+disp32]
        || (b[0] == 0xff && matches!(b[1] & 0x38, 0x10)) // call [reg+disp32]+sib
}

impl Unwinding {
    /// Unwinds one on-CPU sample record (its bytes as the ring holds them).
    pub fn cpu_sample(&mut self, item: &[u8]) {
        let Some((sample, kernel)) = cpu_header(item) else {
            return;
        };
        self.cpu_stats.received += 1;
        let stack = &item[CPU_HEADER..CPU_HEADER + sample.stack_len.min(UNWIND_STACK)];
        let info = self.procs.entry(sample.tgid).or_insert_with(|| {
            let mut p = ProcessInfo {
                pid: sample.tgid,
                ..Default::default()
            };
            p.refresh();
            p
        });
        let (user, method) = if sample.ip == 0 {
            (Vec::new(), Method::EhFrame)
        } else {
            unwind(&mut self.unwinders, info, &sample, stack, self.with_text)
        };
        let st = &mut self.cpu_stats;
        if user.len() < 2 {
            st.one_frame += 1;
        }
        let fp = method == Method::FramePointers;
        if fp {
            st.frame_pointers += 1;
        } else {
            st.eh_frame += 1;
        }
        let agg = self
            .cpu
            .entry((sample.tid, kernel.clone(), user.clone()))
            .or_insert_with(|| CpuStack {
                tgid: sample.tgid,
                tid: sample.tid,
                kernel,
                user,
                ..Default::default()
            });
        agg.samples += 1;
        agg.period_ns += sample.weight;
        agg.frame_pointers += u64::from(fp);
    }

    /// The on-CPU samples gathered so far, by thread then most samples.
    pub fn take_cpu(&mut self) -> Vec<CpuStack> {
        let mut v: Vec<CpuStack> = self.cpu.drain().map(|(_, s)| s).collect();
        v.sort_by(|a, b| {
            (a.tid, std::cmp::Reverse(a.samples), &a.kernel, &a.user).cmp(&(
                b.tid,
                std::cmp::Reverse(b.samples),
                &b.kernel,
                &b.user,
            ))
        });
        v
    }

    /// The stacks gathered so far, largest (by waits) first per lock.
    pub fn take(&mut self) -> UnwoundByLock {
        self.stacks
            .drain()
            .map(|(k, m)| {
                let mut v: Vec<Unwound> = m.into_values().collect();
                v.sort_by(|a, b| b.waits.cmp(&a.waits).then(a.frames.cmp(&b.frames)));
                (k, v)
            })
            .collect()
    }
}

/// The fixed part of an `UnwindSample`, read from the record's bytes.
struct Header {
    uaddr: u64,
    weight: u64,
    wait_ns: u64,
    ip: u64,
    sp: u64,
    bp: u64,
    tgid: u32,
    tid: u32,
    stack_len: usize,
}

const HEADER: usize = UNWIND_HEADER;

/// A `CpuSample`'s header as an unwinding header (weight: its period),
/// and its kernel frames.
fn cpu_header(b: &[u8]) -> Option<(Header, Vec<u64>)> {
    let u64_at = |o: usize| Some(u64::from_ne_bytes(b.get(o..o + 8)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_ne_bytes(b.get(o..o + 4)?.try_into().ok()?));
    use std::mem::offset_of as off;
    let h = Header {
        uaddr: 0,
        weight: u64_at(off!(CpuSample, period))?,
        wait_ns: 0,
        ip: u64_at(off!(CpuSample, ip))?,
        sp: u64_at(off!(CpuSample, sp))?,
        bp: u64_at(off!(CpuSample, bp))?,
        tgid: u32_at(off!(CpuSample, tgid))?,
        tid: u32_at(off!(CpuSample, tid))?,
        stack_len: u32_at(off!(CpuSample, stack_len))? as usize,
    };
    let klen = (u32_at(off!(CpuSample, kstack_len))? as usize).min(CPU_KSTACK_DEPTH);
    let base = off!(CpuSample, kstack);
    let kernel = (0..klen)
        .filter_map(|i| u64_at(base + 8 * i))
        .filter(|&ip| ip != 0)
        .collect();
    (b.len() >= CPU_HEADER + h.stack_len.min(UNWIND_STACK)).then_some((h, kernel))
}

impl Header {
    fn parse(b: &[u8]) -> Option<Self> {
        let u64_at = |o: usize| Some(u64::from_ne_bytes(b.get(o..o + 8)?.try_into().ok()?));
        let u32_at = |o: usize| Some(u32::from_ne_bytes(b.get(o..o + 4)?.try_into().ok()?));
        use std::mem::offset_of as off;
        let h = Self {
            uaddr: u64_at(off!(UnwindSample, uaddr))?,
            weight: u64_at(off!(UnwindSample, weight))?,
            wait_ns: u64_at(off!(UnwindSample, wait_ns))?,
            ip: u64_at(off!(UnwindSample, ip))?,
            sp: u64_at(off!(UnwindSample, sp))?,
            bp: u64_at(off!(UnwindSample, bp))?,
            tgid: u32_at(off!(UnwindSample, tgid))?,
            tid: u32_at(off!(UnwindSample, tid))?,
            stack_len: u32_at(off!(UnwindSample, stack_len))? as usize,
        };
        (b.len() >= HEADER + h.stack_len.min(UNWIND_STACK)).then_some(h)
    }
}

/// A framehop unwinder with one module per mapped ELF file that has
/// executable mappings.
fn modules(info: &ProcessInfo, with_text: bool) -> UnwinderX86_64<Vec<u8>> {
    let mut unwinder = UnwinderX86_64::new();
    let mut files: BTreeMap<&Path, Vec<&crate::target::process::Mapping>> = BTreeMap::new();
    for m in &info.maps {
        if let Some(p) = &m.path {
            files.entry(p.as_path()).or_default().push(m);
        }
    }
    for (path, maps) in files {
        let Some(exec) = maps.iter().find(|m| m.exec) else {
            continue;
        };
        let avma = maps.iter().map(|m| m.start).min().unwrap_or(exec.start)
            ..maps.iter().map(|m| m.end).max().unwrap_or(exec.end);
        match module(info.pid, path, exec, avma, with_text) {
            Some(m) => unwinder.add_module(m),
            None => log::debug!("no unwind data from {}", path.display()),
        }
    }
    unwinder
}

fn module(
    pid: u32,
    name: &Path,
    exec: &crate::target::process::Mapping,
    avma: Range<u64>,
    with_text: bool,
) -> Option<Module<Vec<u8>>> {
    // Through the process's root while it lives (containers); a process
    // that exits meanwhile takes its root with it, so fall back to the path.
    let file = crate::target::elf::open_in(pid, name)?;
    let elf = file.parse()?;
    // The load bias, from the PT_LOAD that holds the executable mapping's
    // file offset.
    // Mappings start on page boundaries and segments need not: compare
    // page-aligned, and prefer the executable segment (lld puts a read-only
    // one on the same page).
    let page = |v: u64| v & !0xfff;
    let holds = |s: &object::Segment| {
        let (off, size) = s.file_range();
        page(off) <= exec.offset && exec.offset < off + size.max(1)
    };
    let is_exec = |s: &object::Segment| matches!(s.flags(), object::SegmentFlags::Elf { p_flags } if p_flags & object::elf::PF_X != 0);
    let seg = elf
        .segments()
        .find(|s| holds(s) && is_exec(s))
        .or_else(|| elf.segments().find(holds))?;
    let (seg_off, _) = seg.file_range();
    let svma_at_map = seg
        .address()
        .wrapping_sub(seg_off)
        .wrapping_add(exec.offset);
    let bias = exec.start.wrapping_sub(svma_at_map);
    let section = |n: &str| {
        let s = elf.section_by_name(n)?;
        Some((s.address()..s.address() + s.size(), s.data().ok()?.to_vec()))
    };
    // .text only for on-CPU samples: framehop reads instructions only to
    // unwind from inside a prologue or epilogue, and a sampled wait's
    // first frame is always just after a syscall instruction.
    let (text_svma, text) = if with_text {
        section(".text").unzip()
    } else {
        (None, None)
    };
    let (eh_frame_svma, eh_frame) = section(".eh_frame").unzip();
    let (eh_frame_hdr_svma, eh_frame_hdr) = section(".eh_frame_hdr").unzip();
    let debug_frame = section(".debug_frame").map(|(_, d)| d);
    log::debug!(
        "unwind module {}: bias {bias:#x}, avma {:#x}..{:#x}, eh_frame {:?}, eh_frame_hdr {:?}",
        name.display(),
        avma.start,
        avma.end,
        eh_frame_svma,
        eh_frame_hdr_svma
    );
    let info = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma,
        text,
        eh_frame_svma,
        eh_frame,
        eh_frame_hdr_svma,
        eh_frame_hdr,
        debug_frame,
        ..Default::default()
    };
    Some(Module::new(name.display().to_string(), avma, bias, info))
}

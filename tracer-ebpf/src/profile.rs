//! On-CPU samples of the target's threads (`tracer profile`): a perf event
//! per CPU (the `cpu-clock` software event at a frequency) runs this
//! program; a sample of a target thread is sent through the event ring
//! with its user registers and a copy of its user stack (unwound in
//! userspace with .eh_frame, as sampled futex waits are) and, when it
//! interrupted kernel code, its kernel stack.
//!
//! match-proto: perf_event programs get `struct bpf_perf_event_data`
//! (`regs`: the interrupted registers, `sample_period`).
//! https://github.com/torvalds/linux/blob/v6.18/kernel/trace/bpf_trace.c

use aya_ebpf::{
    EbpfContext as _,
    bindings::bpf_perf_event_data,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task_btf, bpf_get_smp_processor_id,
        bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_task_pt_regs, generated,
    },
    macros::{map, perf_event},
    maps::PerCpuArray,
    programs::PerfEventContext,
};
use tracer_common::{
    CPU_HEADER, CPU_KSTACK_DEPTH, CpuSample, UNWIND_CHUNK, UNWIND_STACK, counter, pt_regs, record,
};

use crate::maps::{EVENTS, bulk_flags, count, is_target};

/// Per CPU: where a sample is assembled. Not the futex path's scratch: a
/// perf event's interrupt can land while a futex program on the same CPU
/// is filling that one.
#[map]
pub static CPU_SCRATCH: PerCpuArray<CpuSample> = PerCpuArray::with_max_entries(1, 0);

#[perf_event]
pub fn cpu_sample(ctx: PerfEventContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((id >> 32) as u32, id as u32);
    if tgid == 0 || !is_target(tgid) {
        return 0;
    }
    count(counter::CPU_SAMPLES);
    sample(&ctx, tgid, tid);
    0
}

#[inline(always)]
fn sample(ctx: &PerfEventContext, tgid: u32, tid: u32) {
    let data = ctx.as_ptr().cast::<bpf_perf_event_data>();
    // SAFETY: the context is the kernel's bpf_perf_event_data; direct
    // reads of its fields are allowed (the verifier checks the bounds).
    let (period, cs) = unsafe { ((*data).sample_period, (*data).regs.cs) };
    let in_kernel = cs & 3 == 0;
    // The user registers: the interrupted ones in user mode; in the
    // kernel, the ones the task saved at its entry.
    // SAFETY: helpers on the current task; read through probe_read_kernel.
    let regs = unsafe {
        let base = bpf_task_pt_regs(bpf_get_current_task_btf()) as u64;
        let r = |off: usize| bpf_probe_read_kernel((base + off as u64) as *const u64);
        match (r(pt_regs::IP), r(pt_regs::SP), r(pt_regs::BP)) {
            (Ok(ip), Ok(sp), Ok(bp)) => (ip, sp, bp),
            _ => {
                count(counter::UNWIND_REGS);
                return;
            }
        }
    };
    let Some(p) = CPU_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: `p` is this CPU's scratch slot (a perf event program does
    // not nest on its CPU); every header field is written, and only the
    // bytes copied are sent.
    unsafe {
        (*p).record = record::CPU_SAMPLE;
        (*p).tgid = tgid;
        (*p).tid = tid;
        (*p).cpu = bpf_get_smp_processor_id();
        (*p).period = period;
        (*p).ip = regs.0;
        (*p).sp = regs.1;
        (*p).bp = regs.2;
        (*p).time_ns = bpf_ktime_get_ns();
        (*p).kstack_len = 0;
        if in_kernel {
            let n = generated::bpf_get_stack(
                ctx.as_ptr(),
                (&raw mut (*p).kstack).cast(),
                (CPU_KSTACK_DEPTH * 8) as u32,
                0,
            );
            if n > 0 {
                (*p).kstack_len = (n as u32 / 8).min(CPU_KSTACK_DEPTH as u32);
            }
        }
        let dst = (&raw mut (*p).stack).cast::<u8>();
        let mut len = 0u32;
        let mut i = 0;
        while i < UNWIND_STACK / UNWIND_CHUNK {
            let off = i * UNWIND_CHUNK;
            let rc = generated::bpf_probe_read_user(
                dst.add(off).cast(),
                UNWIND_CHUNK as u32,
                (regs.1 + off as u64) as *const core::ffi::c_void,
            );
            if rc != 0 {
                break;
            }
            len += UNWIND_CHUNK as u32;
            i += 1;
        }
        (*p).stack_len = len;
        let size =
            (CPU_HEADER as u64 + u64::from(len)).min(CPU_HEADER as u64 + UNWIND_STACK as u64);
        let bytes = core::slice::from_raw_parts(p.cast::<u8>(), size as usize);
        if EVENTS.output::<[u8]>(bytes, bulk_flags()).is_err() {
            count(counter::CPU_RING_FULL);
        }
    }
}

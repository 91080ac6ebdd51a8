//! On-CPU sampling (`tracer profile`): the `cpu_sample` program on a
//! `cpu-clock` perf event per target thread at a frequency. The program
//! keeps only the target set's threads (a child a target forks inherits the
//! events, followed or not); their samples come back through the event ring
//! and are unwound by its reader.

use std::collections::HashSet;

use anyhow::{Context as _, Result};
use aya::programs::{
    PerfEvent, ProgramError,
    perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent},
};
use tracer_common::names;

use crate::{
    exit::{Code, fail},
    kernel::attach::{HookState, Probes},
};

/// How to sample.
#[derive(Clone, Copy, Debug)]
pub struct SamplingOptions {
    /// Samples per second per CPU.
    pub frequency: u64,
}

/// Attaches the sampler to every thread of `pids`: one `cpu-clock` perf
/// event per thread, inherited by the threads and processes it creates
/// later. Per thread, not per CPU: a per-thread event keeps what is left
/// of its period when the thread is switched out (the kernel's
/// `period_left`), so samples are proportional to the thread's CPU time.
/// A per-CPU event's timer on this kind of VM does not run while its CPU
/// idles and restarts at the next wakeup, which ties samples to wakeups: a
/// thread spinning 5 ms and sleeping 5 ms got 0 samples in one run and
/// nearly twice its share in another (measured; perf's `profile:hz`
/// probe in bpftrace shows the same).
pub fn attach(probes: &mut Probes, opts: SamplingOptions, pids: &[u32]) -> Result<()> {
    raise_fd_limit();
    let prog: &mut PerfEvent = probes
        .bpf
        .program_mut(names::CPU_SAMPLE)
        .context("program missing from the object")?
        .try_into()?;
    let mut opened: HashSet<u32> = HashSet::new();
    // Twice over: a thread created while the first pass ran was created by
    // a thread without its event yet.
    for _ in 0..2 {
        for &pid in pids {
            for tid in crate::target::proc::thread_ids(pid) {
                if !opened.insert(tid) {
                    continue;
                }
                match prog.attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::OneProcess {
                        pid: tid,
                        cpu: None,
                    },
                    SamplePolicy::Frequency(opts.frequency),
                    true,
                ) {
                    Ok(_) => {}
                    // It exited meanwhile.
                    Err(ProgramError::SyscallError(e))
                        if e.io_error.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(e) => {
                        return Err(fail(
                            Code::Load,
                            format!("opening the cpu-clock perf event of thread {tid} failed: {e}"),
                        ));
                    }
                }
            }
        }
    }
    probes.hooks.push(HookState {
        name: "perf_event:cpu-clock".into(),
        attached: true,
        note: format!(
            "on-CPU samples at {} Hz of CPU time, per thread ({} threads at the start, inherited by those created later)",
            opts.frequency,
            opened.len()
        ),
    });
    Ok(())
}

/// One perf event per thread is one file descriptor: take the hard limit.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// Whether this machine has a hardware PMU the kernel exposes (perf's
/// `cpu` event source): without one, hardware counters are not available.
pub fn has_pmu() -> bool {
    ["cpu", "cpu_core", "cpu_atom", "armv8_pmuv3_0"]
        .iter()
        .any(|d| {
            std::path::Path::new("/sys/bus/event_source/devices")
                .join(d)
                .exists()
        })
}

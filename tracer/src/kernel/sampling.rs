//! On-CPU sampling (`tracer profile`): the `cpu_sample` program on one
//! `cpu-clock` perf event per online CPU at a frequency. The program keeps
//! only the target's threads; their samples come back through the event
//! ring and are unwound by its reader. Hardware counters are opened here
//! too when the machine has a PMU.

use anyhow::{Context as _, Result};
use aya::programs::{
    PerfEvent,
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

/// Attaches the sampler on every online CPU.
pub fn attach(probes: &mut Probes, opts: SamplingOptions) -> Result<()> {
    let cpus = aya::util::online_cpus().map_err(|(what, e)| {
        fail(
            Code::Environment,
            format!("cannot list the online CPUs ({what}: {e})"),
        )
    })?;
    let prog: &mut PerfEvent = probes
        .bpf
        .program_mut(names::CPU_SAMPLE)
        .context("program missing from the object")?
        .try_into()?;
    for &cpu in &cpus {
        prog.attach(
            PerfEventConfig::Software(SoftwareEvent::CpuClock),
            PerfEventScope::AllProcessesOneCpu { cpu },
            SamplePolicy::Frequency(opts.frequency),
            false,
        )
        .map_err(|e| {
            fail(
                Code::Load,
                format!("opening the cpu-clock perf event on CPU {cpu} failed: {e}"),
            )
        })?;
    }
    probes.hooks.push(HookState {
        name: "perf_event:cpu-clock".into(),
        attached: true,
        note: format!(
            "on-CPU samples at {} Hz on {} CPUs",
            opts.frequency,
            cpus.len()
        ),
    });
    Ok(())
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

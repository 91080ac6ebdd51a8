//! Counting perf events per thread (`tracer profile`): software counters
//! always (task clock, context switches, CPU migrations, page faults), and
//! hardware counters when the machine has a PMU (cycles, instructions,
//! cache references and misses, branches and branch misses). Each is one
//! counting event per thread that exists at the start, inherited by the
//! threads it creates later (their counts fold into it), read once at the
//! end. Nothing is sampled and no program runs: a counter costs the
//! target nothing measurable.

use std::{
    collections::BTreeMap,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

/// One counter: perf's type and config, and its name in the report.
#[derive(Clone, Copy, Debug)]
pub struct Kind {
    pub name: &'static str,
    type_: u32,
    config: u64,
    pub hardware: bool,
}

const PERF_TYPE_HARDWARE: u32 = 0;
const PERF_TYPE_SOFTWARE: u32 = 1;

pub const SOFTWARE: [Kind; 5] = [
    sw("task_clock_ns", 1),
    sw("context_switches", 3),
    sw("cpu_migrations", 4),
    sw("minor_faults", 5),
    sw("major_faults", 6),
];

pub const HARDWARE: [Kind; 6] = [
    hw("cycles", 0),
    hw("instructions", 1),
    hw("cache_references", 2),
    hw("cache_misses", 3),
    hw("branches", 4),
    hw("branch_misses", 5),
];

const fn sw(name: &'static str, config: u64) -> Kind {
    Kind {
        name,
        type_: PERF_TYPE_SOFTWARE,
        config,
        hardware: false,
    }
}

const fn hw(name: &'static str, config: u64) -> Kind {
    Kind {
        name,
        type_: PERF_TYPE_HARDWARE,
        config,
        hardware: true,
    }
}

/// `struct perf_event_attr` up to PERF_ATTR_SIZE_VER0 (64 bytes), which
/// every kernel accepts.
#[repr(C)]
#[derive(Default)]
struct Attr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    /// Bit 1: inherit; bit 6: exclude_hv.
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}
const _: () = assert!(size_of::<Attr>() == 64);

const INHERIT: u64 = 1 << 1;
/// include/uapi/linux/perf_event.h.
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
const EXCLUDE_HV: u64 = 1 << 6;

fn open(kind: Kind, tid: u32) -> std::io::Result<OwnedFd> {
    let attr = Attr {
        type_: kind.type_,
        size: size_of::<Attr>() as u32,
        config: kind.config,
        flags: INHERIT | EXCLUDE_HV,
        ..Default::default()
    };
    // SAFETY: perf_event_open with a valid attr for a thread, any CPU, no
    // group; the fd returned is ours.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const Attr,
            tid as libc::pid_t,
            -1i32,
            -1i32,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// What the counters read at the end of a session.
#[derive(Clone, Debug)]
pub struct CounterValues {
    /// (pid, tid) → counter name → count.
    pub values: BTreeMap<(u32, u32), BTreeMap<&'static str, u64>>,
    /// Hardware counters were counted; else why not, in one sentence.
    pub hardware: Result<(), String>,
}

/// The counters of a session: per thread at the start, per kind.
pub struct Counters {
    events: Vec<(u32, u32, Kind, OwnedFd)>,
    /// Hardware counters are counted; else why not, in one sentence.
    pub hardware: Result<(), String>,
}

impl Counters {
    /// Opens every counter on every thread of `pids` (twice over, as the
    /// sampler does, for threads created meanwhile).
    pub fn open(pids: &[u32], has_pmu: bool) -> Self {
        let mut hardware = if has_pmu {
            Ok(())
        } else {
            Err("this machine has no hardware PMU (perf cannot count cycles or instructions here), so IPC, cache and branch miss rates are not measured".to_string())
        };
        let mut events = Vec::new();
        let mut opened = std::collections::HashSet::new();
        for _ in 0..2 {
            for &pid in pids {
                for tid in crate::target::proc::thread_ids(pid) {
                    if !opened.insert(tid) {
                        continue;
                    }
                    for kind in SOFTWARE {
                        if let Ok(fd) = open(kind, tid) {
                            events.push((pid, tid, kind, fd));
                        }
                    }
                    if hardware.is_err() {
                        continue;
                    }
                    for kind in HARDWARE {
                        match open(kind, tid) {
                            Ok(fd) => events.push((pid, tid, kind, fd)),
                            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => break,
                            Err(e) => {
                                hardware = Err(format!(
                                    "the kernel refused the {} counter ({e}): hardware counters are not measured",
                                    kind.name
                                ));
                                events.retain(|(_, _, k, _)| !k.hardware);
                                break;
                            }
                        }
                    }
                }
            }
        }
        Self { events, hardware }
    }

    /// Every counter's value now: (pid, tid) → name → count. A thread's
    /// counts include those of the threads it created after the start.
    pub fn read(&self) -> BTreeMap<(u32, u32), BTreeMap<&'static str, u64>> {
        let mut out: BTreeMap<(u32, u32), BTreeMap<&'static str, u64>> = BTreeMap::new();
        for (pid, tid, kind, fd) in &self.events {
            let mut v = 0u64;
            // SAFETY: reading 8 bytes into a u64 we own from an fd we own.
            let n = unsafe { libc::read(fd.as_raw_fd(), (&raw mut v).cast(), 8) };
            if n == 8 {
                out.entry((*pid, *tid)).or_default().insert(kind.name, v);
            }
        }
        out
    }
}

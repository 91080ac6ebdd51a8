//! Loading and attaching the kernel programs: preflight → load → set globals
//! → fill targets → attach. Everything is fd-based (no pinning), so it all
//! detaches when `Probes` is dropped or the process dies, however it dies.

use std::time::{Duration, Instant};
use tracer_common::names;

use anyhow::{Context as _, Result};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::HashMap,
    programs::{BtfTracePoint, PerfEvent, ProgramError, RawTracePoint, TracePoint, UProbe},
};
use tracer_common::tp;

use crate::{
    exit::{Code, fail},
    kernel::preflight,
};

/// The kernel programs, built by build.rs from `tracer-ebpf`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

/// One hook: a program on a tracepoint.
struct HookSpec {
    program: &'static str,
    event: &'static str,
    /// Without it the report would be wrong, not just narrower.
    required: bool,
    why: &'static str,
}

const HOOKS: &[HookSpec] = &[
    HookSpec {
        program: names::SYS_ENTER_FUTEX,
        event: "syscalls/sys_enter_futex",
        required: true,
        why: "futex(2) waits and wakes",
    },
    HookSpec {
        program: names::SYS_EXIT_FUTEX,
        event: "syscalls/sys_exit_futex",
        required: true,
        why: "futex(2) waits and wakes",
    },
    HookSpec {
        program: names::SYS_ENTER_FUTEX_WAIT,
        event: "syscalls/sys_enter_futex_wait",
        required: false,
        why: "futex_wait(2), Linux 6.7+",
    },
    HookSpec {
        program: names::SYS_EXIT_FUTEX,
        event: "syscalls/sys_exit_futex_wait",
        required: false,
        why: "futex_wait(2), Linux 6.7+",
    },
    HookSpec {
        program: names::SYS_ENTER_FUTEX_WAITV,
        event: "syscalls/sys_enter_futex_waitv",
        required: false,
        why: "futex_waitv(2), Linux 5.16+",
    },
    HookSpec {
        program: names::SYS_EXIT_FUTEX,
        event: "syscalls/sys_exit_futex_waitv",
        required: false,
        why: "futex_waitv(2), Linux 5.16+",
    },
    HookSpec {
        program: names::SYS_ENTER_FUTEX_WAKE,
        event: "syscalls/sys_enter_futex_wake",
        required: false,
        why: "futex_wake(2), Linux 6.7+",
    },
    HookSpec {
        program: names::SYS_EXIT_FUTEX,
        event: "syscalls/sys_exit_futex_wake",
        required: false,
        why: "futex_wake(2), Linux 6.7+",
    },
    HookSpec {
        program: names::CONTENTION_BEGIN,
        event: "lock/contention_begin",
        required: false,
        why: "kernel-lock contention",
    },
    HookSpec {
        program: names::CONTENTION_END,
        event: "lock/contention_end",
        required: false,
        why: "kernel-lock contention",
    },
    HookSpec {
        program: names::TASK_NEWTASK,
        event: "task/task_newtask",
        required: false,
        why: "following forked children",
    },
    HookSpec {
        program: names::SCHED_PROCESS_EXEC,
        event: "sched/sched_process_exec",
        required: false,
        why: "processes that exec and match are traced (tracer agent)",
    },
    HookSpec {
        program: names::SCHED_PROCESS_FREE,
        event: "sched/sched_process_free",
        required: false,
        why: "processes that are gone leave the target set",
    },
];

/// The record fields the kernel programs read at fixed offsets.
const LAYOUT: &[(&str, &str, usize)] = &[
    ("syscalls/sys_enter_futex", "uaddr", tp::SYSCALL_ARG0),
    ("syscalls/sys_enter_futex", "op", tp::SYSCALL_ARG1),
    ("syscalls/sys_exit_futex", "ret", tp::SYSCALL_RET),
    ("syscalls/sys_enter_futex_wait", "uaddr", tp::SYSCALL_ARG0),
    ("syscalls/sys_enter_futex_wait", "flags", tp::SYSCALL_ARG3),
    ("syscalls/sys_exit_futex_wait", "ret", tp::SYSCALL_RET),
    (
        "syscalls/sys_enter_futex_waitv",
        "waiters",
        tp::SYSCALL_ARG0,
    ),
    (
        "syscalls/sys_enter_futex_waitv",
        "nr_futexes",
        tp::SYSCALL_ARG1,
    ),
    ("syscalls/sys_exit_futex_waitv", "ret", tp::SYSCALL_RET),
    ("syscalls/sys_enter_futex_wake", "uaddr", tp::SYSCALL_ARG0),
    ("syscalls/sys_enter_futex_wake", "flags", tp::SYSCALL_ARG3),
    ("syscalls/sys_exit_futex_wake", "ret", tp::SYSCALL_RET),
    ("lock/contention_begin", "lock_addr", tp::LOCK_ADDR),
    ("lock/contention_begin", "flags", tp::LOCK_FLAGS),
    ("lock/contention_end", "lock_addr", tp::LOCK_ADDR),
    ("task/task_newtask", "pid", tp::NEWTASK_PID),
    ("task/task_newtask", "clone_flags", tp::NEWTASK_CLONE_FLAGS),
    ("sched/sched_process_free", "pid", tp::PROCESS_FREE_PID),
];

/// Scheduler hooks, BTF-typed tracepoints named after their kernel event.
use names::SCHED_HOOKS;

/// Kernel struct offsets the programs need, read from BTF (Rust eBPF has no
/// CO-RE).
struct TaskOffsets {
    pid: u64,
    tgid: u64,
}

fn task_offsets() -> Result<TaskOffsets> {
    // Mmap parses lazily; fall back to the default (Cache) backend where
    // the mapping is refused.
    let path = "/sys/kernel/btf/vmlinux";
    let btf = btf_rs::Btf::from_file_with_backend(path, btf_rs::Backend::Mmap)
        .or_else(|_| btf_rs::Btf::from_file(path))
        .map_err(|e| {
            fail(
                Code::Environment,
                format!("cannot parse the kernel's BTF: {e}"),
            )
        })?;
    let offset = |strukt: &str, field: &str| -> Result<u64> {
        let types = btf.resolve_types_by_name(strukt).unwrap_or_default();
        let s = types
            .iter()
            .find_map(|t| match t {
                btf_rs::Type::Struct(s) => Some(s),
                _ => None,
            })
            .ok_or_else(|| {
                fail(
                    Code::Environment,
                    format!("the kernel's BTF has no struct {strukt}"),
                )
            })?;
        s.members
            .iter()
            .find(|m| btf.resolve_name(*m).is_ok_and(|n| n == field))
            .map(|m| u64::from(m.bit_offset() / 8))
            .ok_or_else(|| {
                fail(
                    Code::Environment,
                    format!("{strukt} has no field '{field}' in this kernel's BTF"),
                )
            })
    };
    let offsets = TaskOffsets {
        pid: offset("task_struct", "pid")?,
        tgid: offset("task_struct", "tgid")?,
    };
    // The kernel side reads both ids with one 8-byte read.
    if offsets.tgid != offsets.pid + 4 {
        return Err(fail(
            Code::Environment,
            format!(
                "task_struct.tgid (at {}) does not follow pid (at {}) in this kernel: not supported yet",
                offsets.tgid, offsets.pid
            ),
        ));
    }
    Ok(offsets)
}

/// A hook as the report shows it.
#[derive(Clone, Debug)]
pub struct HookState {
    pub name: String,
    pub attached: bool,
    pub note: String,
}

/// What `Probes::load` sets in the kernel programs before loading them.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    pub sched_only: bool,
    pub follow_forks: bool,
    /// The first root process traced: the kernel checks it with a compare
    /// first.
    pub first_target: Option<u32>,
    /// Whether it is the only root (then the compare is the whole filter
    /// until it forks a followed child).
    pub single: bool,
    pub stack_every: u64,
    /// Unwind samples per second per (lock, thread); 0 = frame pointers only.
    pub unwind_rate: u64,
    /// Capacity of LOCK_THREADS (`--max-locks`); the other per-lock maps
    /// are sized from it.
    pub max_locks: u32,
    pub verbose: bool,
    /// Report every exec on the system ([`Event::Exec`]): `tracer agent`
    /// picks up the processes that match.
    ///
    /// [`Event::Exec`]: crate::kernel::ring::Event::Exec
    pub watch_execs: bool,
}

/// The function-probe programs (uprobe.rs), attached per function.
pub const UPROBES: [&str; 2] = [names::FN_ENTRY, names::FN_RETURN];
/// The entry-only program for Go's lock slow paths.
pub const GO_UPROBE: &str = names::GO_LOCK_ENTRY;

pub struct Probes {
    pub bpf: Ebpf,
    tracefs: &'static str,
    /// How the scheduler hooks were loaded: "tp_btf" or "raw_tp".
    sched_flavour: &'static str,
    pub hooks: Vec<HookState>,
    pub load_attach: Duration,
    watch_execs: bool,
}

impl Probes {
    /// Checks the environment and loads (verifies) every program. Nothing
    /// is attached yet.
    pub fn load(opts: &LoadOptions) -> Result<Self> {
        let &LoadOptions {
            sched_only,
            follow_forks,
            first_target,
            single,
            stack_every,
            unwind_rate,
            max_locks,
            verbose,
            watch_execs,
        } = opts;
        let t0 = Instant::now();
        preflight::privileges()?;
        let tracefs = preflight::tracefs()?;
        preflight::btf()?;
        preflight::tracepoint_layouts(tracefs, LAYOUT)?;
        if OBJECT.is_empty() {
            return Err(fail(
                Code::Internal,
                "this tracer binary was built with AYA_BUILD_SKIP and has no kernel programs: rebuild without it",
            ));
        }
        let follow: u32 = follow_forks.into();
        let t_btf = Instant::now();
        let task = task_offsets()?;
        log::debug!("btf-rs offsets in {} ms", t_btf.elapsed().as_millis());
        log::debug!(
            "task_struct offsets from BTF: pid {}, tgid {}",
            task.pid,
            task.tgid
        );
        let first = first_target.unwrap_or(tracer_common::NO_TGID);
        // With following on, the fork hook turns it off when a child joins.
        let only_first = u32::from(first_target.is_some() && single);
        let hist = max_locks.saturating_mul(tracer_common::limits::HIST_PER_LOCK);
        let mut bpf = EbpfLoader::new()
            .override_global(names::FOLLOW_FORKS, &follow, true)
            .override_global(names::STACK_EVERY, &stack_every, true)
            .override_global(names::TARGET_TGID, &first, true)
            .override_global(names::ONLY_FIRST, &only_first, true)
            .override_global(names::TASK_PID_OFFSET, &task.pid, true)
            .override_global(names::SCHED_ONLY, &u32::from(sched_only), true)
            .override_global(names::UNWIND_RATE, &unwind_rate, true)
            .map_max_entries(names::LOCK_THREADS, max_locks)
            .map_max_entries(names::LOCK_SCHED, max_locks)
            .map_max_entries(names::LOCK_SITES, max_locks)
            .map_max_entries(names::WAKE_SITES, max_locks)
            .map_max_entries(names::LOCK_HIST, hist)
            .map_max_entries(names::RUNQ_HIST, hist)
            .load(OBJECT)
            .map_err(|e| {
                fail(
                    Code::Load,
                    format!("the kernel refused the tracer's maps or object: {e}"),
                )
            })?;
        let t_btf = Instant::now();
        let btf = Btf::from_sys_fs().map_err(|e| {
            fail(
                Code::Environment,
                format!("cannot read the kernel's BTF: {e}"),
            )
        })?;
        log::debug!("aya BTF in {} ms", t_btf.elapsed().as_millis());
        let names: Vec<String> = bpf.programs().map(|(n, _)| n.to_string()).collect();
        let t_load = Instant::now();
        for name in names {
            // Scheduler hooks are loaded below, one flavour each.
            if SCHED_HOOKS.contains(&name.as_str()) || name.ends_with(names::RAW_SUFFIX) {
                continue;
            }
            if name == names::CPU_SAMPLE {
                let prog: &mut PerfEvent = bpf
                    .program_mut(&name)
                    .context("program vanished")?
                    .try_into()
                    .with_context(|| format!("{name} is not a perf_event program"))?;
                if let Err(e) = prog.load() {
                    return Err(load_error(&name, e, verbose));
                }
                continue;
            }
            if UPROBES.contains(&name.as_str()) || name == GO_UPROBE {
                let prog: &mut UProbe = bpf
                    .program_mut(&name)
                    .context("program vanished")?
                    .try_into()
                    .with_context(|| format!("{name} is not a uprobe program"))?;
                if let Err(e) = prog.load() {
                    return Err(load_error(&name, e, verbose));
                }
                continue;
            }
            let prog: &mut TracePoint = bpf
                .program_mut(&name)
                .context("program vanished")?
                .try_into()
                .with_context(|| format!("{name} is not a tracepoint program"))?;
            if let Err(e) = prog.load() {
                return Err(load_error(&name, e, verbose));
            }
        }
        log::debug!(
            "tracepoint and uprobe programs verified in {} ms",
            t_load.elapsed().as_millis()
        );
        let t_sched = Instant::now();
        let sched_flavour = load_sched_hooks(&mut bpf, &btf, verbose)?;
        log::debug!(
            "scheduler programs verified in {} ms",
            t_sched.elapsed().as_millis()
        );
        Ok(Self {
            bpf,
            tracefs,
            sched_flavour,
            hooks: Vec::new(),
            load_attach: t0.elapsed(),
            watch_execs,
        })
    }

    /// Adds a process to the target set.
    pub fn add_target(&mut self, tgid: u32) -> Result<()> {
        let mut targets: HashMap<_, u32, u32> = HashMap::try_from(
            self.bpf
                .map_mut(names::TARGETS)
                .context("TARGETS map missing")?,
        )?;
        targets.insert(tgid, 1, 0).context("adding a target pid")
    }

    /// Takes a process out of the target set (best effort).
    pub fn remove_target(&mut self, tgid: u32) {
        if let Some(Ok(mut targets)) = self
            .bpf
            .map_mut(names::TARGETS)
            .map(HashMap::<_, u32, u32>::try_from)
        {
            let _ = targets.remove(&tgid);
        }
    }

    /// Tells the programs that the final read of the maps begins: exits
    /// leave their entries in place from now on.
    pub fn begin_harvest(&mut self) -> Result<()> {
        let mut control: aya::maps::Array<_, u32> = aya::maps::Array::try_from(
            self.bpf
                .map_mut(names::CONTROL)
                .context("CONTROL map missing")?,
        )?;
        control
            .set(tracer_common::CONTROL_HARVESTING, 1, 0)
            .context("setting the harvest flag")
    }

    /// Every tgid in the target set now, including followed children
    /// (processes that exited have left it).
    pub fn targets(&self) -> Vec<u32> {
        self.bpf
            .map(names::TARGETS)
            .and_then(|m| HashMap::<_, u32, u32>::try_from(m).ok())
            .map(|t| t.keys().flatten().collect())
            .unwrap_or_default()
    }

    /// Attaches every hook this kernel has; a missing optional one is noted
    /// in the report, a missing required one is an error.
    pub fn attach(&mut self, sched_only: bool, follow_forks: bool) -> Result<()> {
        let t0 = Instant::now();
        let tracefs = self.tracefs;
        for spec in HOOKS {
            let name = spec.event.replace('/', ":");
            if spec.program == names::TASK_NEWTASK && !follow_forks {
                continue;
            }
            if spec.program == names::SCHED_PROCESS_EXEC && !self.watch_execs {
                continue;
            }
            if sched_only && spec.event.starts_with("syscalls/") {
                self.hooks.push(HookState {
                    name,
                    attached: false,
                    note: "not attached in --mode sched".into(),
                });
                continue;
            }
            if !preflight::has_event(tracefs, spec.event) {
                if spec.required {
                    return Err(fail(
                        Code::Environment,
                        format!(
                            "this kernel has no {name} tracepoint (needed for {})",
                            spec.why
                        ),
                    ));
                }
                self.hooks.push(HookState {
                    name,
                    attached: false,
                    note: format!("not in this kernel ({})", spec.why),
                });
                continue;
            }
            let (category, event) = spec
                .event
                .split_once('/')
                .context("hook event without category")?;
            let prog: &mut TracePoint = self
                .bpf
                .program_mut(spec.program)
                .context("program missing from the object")?
                .try_into()?;
            match prog.attach(category, event) {
                Ok(_) => self.hooks.push(HookState {
                    name,
                    attached: true,
                    note: spec.why.to_string(),
                }),
                Err(e) if !spec.required => {
                    log::warn!("could not attach {name}: {e}");
                    self.hooks.push(HookState {
                        name,
                        attached: false,
                        note: format!("attach failed: {e}"),
                    });
                }
                Err(e) => {
                    return Err(fail(Code::Load, format!("attaching {name} failed: {e}")));
                }
            }
        }
        let flavour = self.sched_flavour;
        for name in SCHED_HOOKS {
            let attached = if flavour == "tp_btf" {
                let prog: &mut BtfTracePoint = self
                    .bpf
                    .program_mut(name)
                    .context("program missing from the object")?
                    .try_into()?;
                prog.attach().map(drop)
            } else {
                let prog: &mut RawTracePoint = self
                    .bpf
                    .program_mut(&format!("{name}{}", names::RAW_SUFFIX))
                    .context("program missing from the object")?
                    .try_into()?;
                prog.attach(name).map(drop)
            };
            attached.map_err(|e| {
                fail(
                    Code::Load,
                    format!("attaching {flavour}:{name} failed: {e}"),
                )
            })?;
            self.hooks.push(HookState {
                name: format!("{flavour}:{name}"),
                attached: true,
                note: "where threads' time goes (on CPU, blocked, runnable)".into(),
            });
        }
        self.load_attach += t0.elapsed();
        Ok(())
    }
}

/// Loads the scheduler hooks as BTF-typed tracepoints, or, if the kernel
/// refuses one (or TRACER_SCHED_HOOKS=raw_tp asks for it), all of them as
/// raw tracepoints. Returns which flavour was loaded.
fn load_sched_hooks(bpf: &mut Ebpf, btf: &Btf, verbose: bool) -> Result<&'static str> {
    let forced_raw = std::env::var("TRACER_SCHED_HOOKS").is_ok_and(|v| v == "raw_tp");
    if !forced_raw {
        let mut refused = None;
        for name in SCHED_HOOKS {
            let prog: &mut BtfTracePoint = bpf
                .program_mut(name)
                .context("program vanished")?
                .try_into()?;
            if let Err(e) = prog.load(name, btf) {
                refused = Some((name, e));
                break;
            }
        }
        match refused {
            None => return Ok("tp_btf"),
            Some((name, e)) => log::warn!("tp_btf:{name} refused ({e}); using raw tracepoints"),
        }
    }
    for name in SCHED_HOOKS {
        let raw = format!("{name}{}", names::RAW_SUFFIX);
        let prog: &mut RawTracePoint = bpf
            .program_mut(&raw)
            .context("program vanished")?
            .try_into()?;
        if let Err(e) = prog.load() {
            return Err(load_error(&raw, e, verbose));
        }
    }
    Ok("raw_tp")
}

/// One sentence for a rejected program; the verifier log with -v.
fn load_error(name: &str, e: ProgramError, verbose: bool) -> anyhow::Error {
    if let ProgramError::LoadError {
        io_error,
        verifier_log,
    } = &e
    {
        if verbose {
            crate::say!("verifier log for {name}:\n{verifier_log}");
            return fail(
                Code::Load,
                format!(
                    "the kernel's verifier rejected program {name} ({io_error}); its log is above"
                ),
            );
        }
        return fail(
            Code::Load,
            format!(
                "the kernel's verifier rejected program {name} ({io_error}): run with -v to see the verifier log"
            ),
        );
    }
    fail(Code::Load, format!("loading program {name} failed: {e}"))
}

#[cfg(test)]
mod tests {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

    use super::*;

    /// The names userspace looks up (tracer_common::names) are the names
    /// the kernel object declares, and every program in it is known.
    #[test]
    fn names_match_the_object() {
        let obj = object::File::parse(OBJECT).expect("the embedded object parses");
        let section_of = |sym: &object::Symbol| {
            sym.section_index()
                .and_then(|i| obj.section_by_index(i).ok())
                .and_then(|s| s.name().ok().map(str::to_string))
                .unwrap_or_default()
        };
        let mut programs = Vec::new();
        let mut others = Vec::new();
        for sym in obj.symbols() {
            let Ok(name) = sym.name() else { continue };
            let section = section_of(&sym);
            // Programs live in sections named for their hook; helpers the
            // compiler emitted (memcpy, …) live in .text.
            if sym.kind() == object::SymbolKind::Text && sym.is_global() && section != ".text" {
                programs.push(name.to_string());
            } else if !section.is_empty() {
                others.push(name.to_string());
            }
        }
        programs.sort();
        let mut want: Vec<String> = names::PROGRAMS.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(
            programs, want,
            "the object's programs are tracer_common::names::PROGRAMS"
        );
        for n in [
            names::TARGETS,
            names::CONTROL,
            names::COUNTERS,
            names::EVENTS,
            names::STACKS,
            names::LOCK_THREADS,
            names::LOCK_HIST,
            names::LOCK_SITES,
            names::WAKE_SITES,
            names::LOCK_SCHED,
            names::THREAD_SCHED,
            names::SYSCALL_SLEEP,
            names::RUNQ_HIST,
            names::KLOCKS,
            names::FN_START,
            names::FN_STATS,
            names::FN_SITES,
            names::FN_HIST,
            names::TARGET_TGID,
            names::ONLY_FIRST,
            names::FOLLOW_FORKS,
            names::STACK_EVERY,
            names::UNWIND_RATE,
            names::SCHED_ONLY,
            names::TASK_PID_OFFSET,
        ] {
            assert!(
                others.iter().any(|o| o == n),
                "{n} is not in the object: {others:?}"
            );
        }
    }
}

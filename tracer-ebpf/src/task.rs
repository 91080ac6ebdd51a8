//! Following the processes a target forks (`tracer contention -- CMD`, as
//! `perf record -- CMD` does).
//!
//! match-format: task:task_newtask, include/trace/events/task.h
//! https://github.com/torvalds/linux/blob/v6.18/include/trace/events/task.h
//!   pid_t pid @8; char comm[16] @12; u64 clone_flags @32; short oom_score_adj @40
//! It fires in copy_process() in the parent's context, so the current tgid
//! is the parent's.

use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid},
    programs::TracePointContext,
};
use tracer_common::{ExecRecord, ForkRecord, counter, record, tp};

use crate::maps::{EVENTS, TARGETS, count, follow_forks, is_target, more_than_first, read_ctx};

const CLONE_THREAD: u64 = 0x0001_0000;

#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/task/task_newtask")]
pub extern "C" fn task_newtask(ctx: *mut core::ffi::c_void) -> u32 {
    let ctx = TracePointContext::new(ctx);
    let _ = try_task_newtask(&ctx);
    // Non-zero keeps the event visible to perf and other tracepoint users.
    1
}

fn try_task_newtask(ctx: &TracePointContext) -> Result<(), i64> {
    if !follow_forks() {
        return Ok(());
    }
    let parent_tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !is_target(parent_tgid) {
        return Ok(());
    }
    // SAFETY: constant offsets inside the task_newtask record (checked against
    // its format file by userspace before load).
    let flags = unsafe { read_ctx::<u64>(ctx, tp::NEWTASK_CLONE_FLAGS) };
    if flags & CLONE_THREAD != 0 {
        // A thread: already covered by its process's tgid.
        return Ok(());
    }
    // SAFETY: as above.
    let child = unsafe { read_ctx::<i32>(ctx, tp::NEWTASK_PID) } as u32;
    more_than_first();
    if TARGETS.insert(child, 1, 0).is_err() {
        count(counter::TARGETS_FULL);
        return Ok(());
    }
    // Userspace learns of the child at once (it may be gone by the next
    // look at the target set). Best effort: the set is also read.
    let fork = ForkRecord {
        record: record::FORK,
        parent: parent_tgid,
        child,
        _pad: 0,
    };
    if EVENTS.output::<ForkRecord>(&fork, 0).is_err() {
        count(counter::PROCESS_RECORD_LOST);
    }
    Ok(())
}

/// Every exec on the system (attached only for `tracer agent --comm` or
/// `--cgroup`): userspace decides whether the process is one to trace. It
/// fires in the exec'ing task once its new name is set.
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/sched/sched_process_exec")]
pub extern "C" fn sched_process_exec(_ctx: *mut core::ffi::c_void) -> u32 {
    let exec = ExecRecord {
        record: record::EXEC,
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        // SAFETY: a helper without arguments.
        cgroup: unsafe { bpf_get_current_cgroup_id() },
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    if EVENTS.output::<ExecRecord>(&exec, 0).is_err() {
        count(counter::PROCESS_RECORD_LOST);
    }
    1
}

//! The one reader of /proc. Structured files (`stat`, `status`, the task
//! list, `schedstat`) go through the `procfs` crate, which knows their
//! quirks (a comm with spaces and parentheses, fields added by newer
//! kernels). Two are read raw, on purpose: `maps`, because
//! [`crate::target::process::parse_maps`] keeps the device and inode of
//! each mapping for shared-memory keys and is tested against odd paths
//! ("(deleted)", spaces), and `cmdline`, whose NUL-separated bytes need no
//! parser; and thread names come from each task's `comm` file (see
//! [`threads`]). Every reader returns `None` (or nothing) for a process that is
//! gone: callers keep what they last saw.

use std::path::{Path, PathBuf};

use procfs::process::Process;

/// The fields of /proc/PID/stat the tracer uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub ppid: u32,
    /// The kernel's PF_* flags (PF_KTHREAD for a kernel thread).
    pub flags: u32,
    /// CPU time, in clock ticks ([`ticks_per_second`]).
    pub utime: u64,
    pub stime: u64,
    /// Start time after boot, in clock ticks: with the pid, a process's
    /// identity (pids are reused).
    pub starttime: u64,
}

impl Stat {
    /// Present and not a zombie.
    pub fn alive(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }
}

/// The fields of /proc/PID/status the tracer uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub tgid: i32,
    pub euid: u32,
    /// The pid in the process's own (innermost) pid namespace.
    pub nspid: Option<u32>,
    /// Effective capabilities.
    pub capeff: u64,
    /// Peak resident set size, kB.
    pub vmhwm_kb: Option<u64>,
}

fn process(pid: u32) -> Option<Process> {
    Process::new(i32::try_from(pid).ok()?).ok()
}

fn stat_of(p: &procfs::process::Stat) -> Stat {
    Stat {
        state: p.state,
        ppid: u32::try_from(p.ppid).unwrap_or(0),
        flags: p.flags,
        utime: p.utime,
        stime: p.stime,
        starttime: p.starttime,
    }
}

fn status_of(s: procfs::process::Status) -> Status {
    Status {
        tgid: s.tgid,
        euid: s.euid,
        nspid: s
            .nspid
            .and_then(|v| v.last().copied())
            .and_then(|p| u32::try_from(p).ok()),
        capeff: s.capeff,
        vmhwm_kb: s.vmhwm,
    }
}

pub fn stat(pid: u32) -> Option<Stat> {
    Some(stat_of(&process(pid)?.stat().ok()?))
}

pub fn status(pid: u32) -> Option<Status> {
    Some(status_of(process(pid)?.status().ok()?))
}

/// The tracer's own status.
pub fn own_status() -> Option<Status> {
    Some(status_of(Process::myself().ok()?.status().ok()?))
}

/// Present and not a zombie.
pub fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s.alive())
}

/// Every process on the system with its stat (one pass over /proc).
pub fn all() -> Vec<(u32, Stat)> {
    let Ok(iter) = procfs::process::all_processes() else {
        return Vec::new();
    };
    iter.flatten()
        .filter_map(|p| {
            let pid = u32::try_from(p.pid).ok()?;
            Some((pid, stat_of(&p.stat().ok()?)))
        })
        .collect()
}

/// Each thread's id.
pub fn thread_ids(pid: u32) -> Vec<u32> {
    let Some(tasks) = process(pid).and_then(|p| p.tasks().ok()) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| u32::try_from(t.tid).ok())
        .collect()
}

/// Each thread's id and name.
pub fn threads(pid: u32) -> Vec<(u32, String)> {
    let Some(tasks) = process(pid).and_then(|p| p.tasks().ok()) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let tid = u32::try_from(t.tid).ok()?;
            // The comm file, not procfs's task stat: read through stat,
            // the threads hardening.rs names with an escape sequence and a
            // newline came back unnamed (and unescapable).
            let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).ok()?;
            Some((tid, comm.trim_end().to_string()))
        })
        .collect()
}

/// On-CPU time of the live threads, ns (schedstat; exited threads are not
/// there).
pub fn threads_cpu_ns(pid: u32) -> u64 {
    let Some(tasks) = process(pid).and_then(|p| p.tasks().ok()) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| t.schedstat().ok())
        .map(|s| s.sum_exec_runtime)
        .sum()
}

pub fn ticks_per_second() -> u64 {
    procfs::ticks_per_second().max(1)
}

/// The arguments, or `None` for a kernel thread, a zombie or a process
/// that is gone (their cmdline is empty).
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (!args.is_empty()).then_some(args)
}

pub fn maps_text(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()
}

pub fn own_maps_text() -> Option<String> {
    std::fs::read_to_string("/proc/self/maps").ok()
}

pub fn exe(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

pub fn own_exe() -> Option<PathBuf> {
    std::fs::read_link("/proc/self/exe").ok()
}

pub fn os_release() -> Option<String> {
    let s = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    Some(s.trim().to_string())
}

pub fn hostname() -> Option<String> {
    let s = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(s.trim().to_string())
}

/// A process's path under its root, /proc/PID/root (its mount namespace).
pub fn in_root(pid: u32, path: &Path) -> PathBuf {
    Path::new(&format!("/proc/{pid}/root")).join(path.strip_prefix("/").unwrap_or(path))
}

/// Where a process's file is, seen from here: through /proc/PID/root while
/// the process lives (its mount namespace may differ), else the path.
pub fn host_path(pid: u32, path: &Path) -> PathBuf {
    let inside = in_root(pid, path);
    if inside.exists() {
        inside
    } else {
        path.to_path_buf()
    }
}

/// Every pid in /proc now (no per-process reads).
pub fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The process's name (comm, at most 15 bytes).
pub fn comm(pid: u32) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(s.trim_end_matches('\n').to_string())
}

/// Its cgroup v2 path (the `0::` line of /proc/PID/cgroup).
pub fn cgroup(pid: u32) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// The tracer's resident memory now, in bytes (VmRSS).
pub fn own_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    Some(pages * page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_reads() {
        let me = std::process::id();
        let s = stat(me).expect("own stat");
        assert!(s.alive());
        assert_eq!(s.ppid, std::os::unix::process::parent_id());
        let st = status(me).expect("own status");
        assert_eq!(st.tgid as u32, me);
        // SAFETY: geteuid has no preconditions.
        assert_eq!(st.euid, unsafe { libc::geteuid() });
        assert!(own_status().is_some_and(|s| s.vmhwm_kb.is_some_and(|kb| kb > 0)));
        assert!(threads(me).iter().any(|&(tid, _)| tid == me));
        assert!(cmdline(me).is_some_and(|a| !a.is_empty()));
        assert_eq!(exe(me), own_exe());
        assert!(all().iter().any(|&(pid, _)| pid == me));
    }

    #[test]
    fn gone_processes_read_as_nothing() {
        // Above the kernel's pid_max limit (4,194,304): never a process.
        let pid = 5_000_000;
        assert!(stat(pid).is_none() && status(pid).is_none() && !alive(pid));
        assert!(threads(pid).is_empty() && cmdline(pid).is_none() && exe(pid).is_none());
        assert_eq!(threads_cpu_ns(pid), 0);
    }

    #[test]
    fn a_comm_with_parentheses_and_control_characters_reads() {
        // A thread named like a stat line's trap, with a newline.
        let t = std::thread::spawn(|| {
            let name = c"\x1b[2J\nVERDICT) S";
            // SAFETY: a NUL-terminated name under 16 bytes for this thread.
            unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() } as u32;
            let found = threads(std::process::id())
                .into_iter()
                .find(|&(t, _)| t == tid);
            assert_eq!(
                found.map(|(_, c)| c).as_deref(),
                Some("\x1b[2J\nVERDICT) S")
            );
        });
        t.join().unwrap();
    }
}

//! Checks before anything is loaded, each failing with one actionable
//! sentence and its own exit code.

use std::{fs, path::Path};

use anyhow::Result;

use crate::exit::{Code, fail};

pub const TRACEFS: &str = "/sys/kernel/tracing";
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";
const BTF: &str = "/sys/kernel/btf/vmlinux";
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Root, or CAP_BPF and CAP_PERFMON in the effective set.
pub fn privileges() -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let caps = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    let has = |cap: u32| caps & (1 << cap) != 0;
    if has(CAP_BPF) && has(CAP_PERFMON) {
        return Ok(());
    }
    Err(fail(
        Code::Permission,
        "tracer needs root (or CAP_BPF and CAP_PERFMON) to load eBPF programs: run it with sudo",
    ))
}

/// The tracefs mount point, mounting it at /sys/kernel/tracing if no
/// tracefs is mounted (as root can).
pub fn tracefs() -> Result<&'static str> {
    for dir in [TRACEFS, DEBUGFS_TRACING] {
        if Path::new(dir).join("events").is_dir() {
            return Ok(dir);
        }
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: valid NUL-terminated strings; a failed mount changes nothing.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 && Path::new(TRACEFS).join("events").is_dir() {
        log::info!("mounted tracefs at {TRACEFS} (it was not mounted)");
        return Ok(TRACEFS);
    }
    Err(fail(
        Code::Environment,
        format!(
            "tracefs is not mounted and mounting it failed ({}): run `mount -t tracefs nodev {TRACEFS}`",
            std::io::Error::last_os_error()
        ),
    ))
}

/// Kernel BTF, which the scheduler and uprobe work reads struct layouts from.
pub fn btf() -> Result<()> {
    if Path::new(BTF).is_file() {
        return Ok(());
    }
    Err(fail(
        Code::Environment,
        format!("this kernel exposes no BTF ({BTF} is missing): it needs CONFIG_DEBUG_INFO_BTF=y"),
    ))
}

/// Offset of `field` in a tracepoint's record, from its format file.
pub fn field_offset(tracefs: &str, event: &str, field: &str) -> Option<usize> {
    let text = fs::read_to_string(format!("{tracefs}/events/{event}/format")).ok()?;
    text.lines().find_map(|line| {
        let decl = line.trim().strip_prefix("field:")?;
        let (decl, rest) = decl.split_once(';')?;
        let name = decl.trim().rsplit([' ', '*']).next()?;
        let name = name.split('[').next()?;
        if name != field {
            return None;
        }
        rest.trim()
            .strip_prefix("offset:")?
            .split(';')
            .next()?
            .trim()
            .parse()
            .ok()
    })
}

/// Does this tracepoint exist on this kernel?
pub fn has_event(tracefs: &str, event: &str) -> bool {
    Path::new(tracefs)
        .join("events")
        .join(event)
        .join("format")
        .is_file()
}

/// The kernel programs read these fields at fixed offsets: refuse to run
/// on a kernel whose layout differs rather than report garbage.
pub fn tracepoint_layouts(tracefs: &str, events: &[(&str, &str, usize)]) -> Result<()> {
    for &(event, field, expected) in events {
        if !has_event(tracefs, event) {
            continue;
        }
        match field_offset(tracefs, event, field) {
            Some(off) if off == expected => {}
            found => {
                return Err(fail(
                    Code::Environment,
                    format!(
                        "tracepoint {event} has field '{field}' at offset {found:?}, not {expected}: this kernel's layout is not supported yet"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// What /proc says about a pid we were asked to trace.
pub fn check_pid(pid: i32) -> Result<()> {
    if pid <= 0 {
        return Err(fail(Code::Target, format!("{pid} is not a process id")));
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|_| fail(Code::Target, format!("no process with pid {pid}")))?;
    let (state, flags) = parse_stat_state_flags(&stat)
        .ok_or_else(|| fail(Code::Target, format!("cannot parse /proc/{pid}/stat")))?;
    if flags & PF_KTHREAD != 0 {
        return Err(fail(
            Code::Target,
            format!("pid {pid} is a kernel thread: it makes no futex calls to trace"),
        ));
    }
    if state == 'Z' || state == 'X' {
        return Err(fail(
            Code::Target,
            format!("pid {pid} has already exited (zombie)"),
        ));
    }
    // A thread id given instead of a process id: trace its process.
    if let Some(tgid) = tgid_of(pid)
        && tgid != pid
    {
        return Err(fail(
            Code::Target,
            format!("{pid} is a thread of process {tgid}: pass --pid {tgid}"),
        ));
    }
    Ok(())
}

const PF_KTHREAD: u64 = 0x0020_0000;

/// (state, flags) from /proc/PID/stat; the comm field may contain spaces
/// and parentheses, so split after its last ')'.
pub fn parse_stat_state_flags(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields after state: ppid pgrp session tty_nr tpgid flags
    let flags = fields.nth(5)?.parse().ok()?;
    Some((state, flags))
}

/// Is the process alive (present and not a zombie)?
pub fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat_state_flags(&s))
        .is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

fn tgid_of(pid: i32) -> Option<i32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_comm_parses() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0";
        assert_eq!(parse_stat_state_flags(stat), Some(('S', 4194560)));
    }

    #[test]
    fn bad_pids_get_target_code() {
        use crate::exit::code_of;
        assert_eq!(code_of(&check_pid(0).unwrap_err()), Code::Target);
        assert_eq!(code_of(&check_pid(i32::MAX).unwrap_err()), Code::Target);
    }

    #[test]
    fn kernel_thread_is_refused() {
        // kthreadd is pid 2 on every Linux system with a normal pid namespace.
        if let Ok(stat) = fs::read_to_string("/proc/2/stat")
            && stat.contains("(kthreadd)")
        {
            let err = check_pid(2).unwrap_err();
            assert!(err.to_string().contains("kernel thread"), "{err}");
        }
    }
}

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
    let caps = crate::target::proc::own_status().map_or(0, |s| s.capeff);
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

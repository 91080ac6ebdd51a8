//! Which processes the agent traces: the pids given, the processes whose
//! name matches `--comm`, the processes in the `--cgroup` — those running
//! when a window starts, and those that exec while it runs.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use anyhow::Result;
use regex::Regex;

use crate::{
    exit::{Code, fail},
    kernel::session::Exec,
    target::{proc, process},
};

/// Where cgroup v2 is mounted: /sys/fs/cgroup, or on a hybrid layout
/// /sys/fs/cgroup/unified (from /proc/self/mountinfo).
pub fn cgroup2_root() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let mount = pre.split_whitespace().nth(4)?;
        (post.split_whitespace().next() == Some("cgroup2")).then(|| PathBuf::from(mount))
    })
}

pub struct Matcher {
    pids: Vec<u32>,
    comm: Option<Regex>,
    cgroup: Option<Cgroup>,
    /// The agent itself never matches.
    own: u32,
}

struct Cgroup {
    /// As /proc/PID/cgroup writes it: `/system.slice/redis.service`.
    path: String,
    /// Its id as the kernel gives it to BPF (the directory's inode).
    id: u64,
}

impl Matcher {
    /// Checks the patterns: a bad regex or a cgroup that is not there is
    /// one sentence and exit 2 / 3.
    pub fn new(pids: &[i32], comm: Option<&str>, cgroup: Option<&Path>) -> Result<Self> {
        if pids.is_empty() && comm.is_none() && cgroup.is_none() {
            return Err(fail(
                Code::Usage,
                "say what to trace: --pid, --comm REGEX or --cgroup PATH",
            ));
        }
        for &p in pids {
            process::check_pid(p)?;
        }
        let comm = comm
            .map(|c| {
                Regex::new(c).map_err(|e| {
                    fail(
                        Code::Usage,
                        format!(
                            "--comm '{c}' is not a regular expression: {}",
                            e.to_string().lines().last().unwrap_or("")
                        ),
                    )
                })
            })
            .transpose()?;
        let cgroup = cgroup.map(resolve_cgroup).transpose()?;
        Ok(Self {
            pids: pids.iter().map(|&p| p as u32).collect(),
            comm,
            cgroup,
            own: std::process::id(),
        })
    }

    /// Whether execs must be watched (a name or a cgroup to match).
    pub fn watches_execs(&self) -> bool {
        self.comm.is_some() || self.cgroup.is_some()
    }

    /// What is traced, in words: `pid 42, comm ~ /^pg/`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.pids.is_empty() {
            let p: Vec<String> = self.pids.iter().map(u32::to_string).collect();
            parts.push(format!("pid {}", p.join(",")));
        }
        if let Some(r) = &self.comm {
            parts.push(format!("processes named /{}/", r.as_str()));
        }
        if let Some(c) = &self.cgroup {
            parts.push(format!("cgroup {}", c.path));
        }
        parts.join(", ")
    }

    /// Every process that matches now (the given pids still alive first).
    pub fn scan(&self) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .pids
            .iter()
            .copied()
            .filter(|&p| process::alive(p as i32))
            .collect();
        if !self.watches_execs() {
            return out;
        }
        for pid in proc::pids() {
            if pid == self.own || out.contains(&pid) {
                continue;
            }
            let comm = proc::comm(pid).unwrap_or_default();
            if self.matches(pid, &comm) && process::check_pid(pid as i32).is_ok() {
                out.push(pid);
            }
        }
        out
    }

    /// Whether a process that just exec'd is one to trace.
    pub fn exec_matches(&self, e: &Exec) -> bool {
        if e.tgid == self.own {
            return false;
        }
        if let Some(c) = &self.cgroup
            && e.cgroup == c.id
        {
            return self.comm.as_ref().is_none_or(|r| r.is_match(&e.comm));
        }
        self.matches(e.tgid, &e.comm)
    }

    /// Name and cgroup, both when both are given.
    fn matches(&self, pid: u32, comm: &str) -> bool {
        if !self.watches_execs() {
            return false;
        }
        let name_ok = self.comm.as_ref().is_none_or(|r| r.is_match(comm));
        name_ok
            && self.cgroup.as_ref().is_none_or(|c| {
                proc::cgroup(pid).is_some_and(|p| {
                    p == c.path || p.strip_prefix(&c.path).is_some_and(|r| r.starts_with('/'))
                })
            })
    }
}

/// A cgroup directory, absolute under the cgroup v2 mount or relative to
/// it (as /proc/PID/cgroup and systemd write it).
fn resolve_cgroup(p: &Path) -> Result<Cgroup> {
    let root = cgroup2_root().ok_or_else(|| {
        fail(
            Code::Environment,
            "--cgroup needs cgroup v2, and no cgroup2 file system is mounted",
        )
    })?;
    let root = root.as_path();
    let dir: PathBuf = if p.starts_with(root) {
        p.to_path_buf()
    } else {
        root.join(p.strip_prefix("/").unwrap_or(p))
    };
    let meta = std::fs::metadata(&dir).map_err(|e| {
        fail(
            Code::Target,
            format!("no cgroup at {} ({e})", dir.display()),
        )
    })?;
    if !meta.is_dir() || !dir.join("cgroup.procs").exists() {
        return Err(fail(
            Code::Target,
            format!("{} is not a cgroup v2 directory", dir.display()),
        ));
    }
    let rel = dir.strip_prefix(root).unwrap_or(&dir);
    Ok(Cgroup {
        path: format!("/{}", rel.display()).replace("//", "/"),
        id: meta.ino(),
    })
}

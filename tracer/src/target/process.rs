//! The processes being traced: given pids, or a command we launch held at a
//! gate until the probes are attached (so nothing it does is missed), and
//! what /proc tells about them while they live (memory maps for
//! symbolization, thread names, command lines).

use std::{
    collections::BTreeMap,
    ffi::CString,
    fs,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::PathBuf,
};

use anyhow::{Context as _, Result};

use crate::{
    exit::{Code, fail},
    target::proc,
};

/// A launched command waiting at the gate: it has forked but not exec'd.
pub struct Launched {
    pub pid: i32,
    gate: Option<OwnedFd>,
    /// Read end of a close-on-exec pipe: EOF means exec succeeded, 4 bytes
    /// are the errno of a failed exec.
    exec_status: Option<OwnedFd>,
    program: String,
    pub status: Option<i32>,
}

impl Launched {
    /// The program it runs (argv[0], as given).
    pub fn program(&self) -> &str {
        &self.program
    }

    /// Forks a child that waits for [`Launched::release`] before exec'ing
    /// `argv`. The child keeps our stdio, environment and privileges (as
    /// `perf record -- CMD` does); with `stdout_to_stderr` its stdout is our
    /// stderr (our stdout carries a report).
    pub fn spawn(argv: &[String], stdout_to_stderr: bool) -> Result<Self> {
        let cargs: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| fail(Code::Target, "the command contains a NUL byte"))?;
        let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        // Orphans of the command (a daemonized child, a shell's background
        // job) are reparented to the tracer, not to init, so that the whole
        // tree can be stopped at the end.
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let mut fds = [0; 2];
        let mut errfds = [0; 2];
        // SAFETY: fds and errfds are valid 2-int arrays.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0
            || unsafe { libc::pipe2(errfds.as_mut_ptr(), libc::O_CLOEXEC) } != 0
        {
            return Err(std::io::Error::last_os_error()).context("creating the launch pipes");
        }
        // SAFETY: fork in a process whose other threads (if any) hold no locks
        // the child needs: between fork and exec the child only calls
        // async-signal-safe functions (read, close, execvp, write, _exit).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error()).context("fork");
        }
        if pid == 0 {
            // SAFETY: child side, async-signal-safe calls only.
            unsafe {
                libc::close(fds[1]);
                libc::close(errfds[0]);
                let mut b = 0u8;
                let n = libc::read(fds[0], (&raw mut b).cast(), 1);
                if n != 1 {
                    // The tracer gave up (attach failed): never run the command.
                    libc::_exit(127);
                }
                if stdout_to_stderr {
                    libc::dup2(2, 1);
                }
                libc::execvp(ptrs[0], ptrs.as_ptr());
                let errno = *libc::__errno_location();
                libc::write(errfds[1], (&raw const errno).cast(), 4);
                libc::_exit(127);
            }
        }
        // SAFETY: we own these ends; the others are the child's.
        unsafe {
            libc::close(fds[0]);
            libc::close(errfds[1]);
        }
        // SAFETY: open descriptors nobody else owns.
        let (gate, exec_status) = unsafe {
            (
                OwnedFd::from_raw_fd(fds[1]),
                OwnedFd::from_raw_fd(errfds[0]),
            )
        };
        Ok(Self {
            pid,
            gate: Some(gate),
            exec_status: Some(exec_status),
            program: argv[0].clone(),
            status: None,
        })
    }

    /// Lets the command exec.
    pub fn release(&mut self) -> Result<()> {
        if let Some(gate) = self.gate.take() {
            let b = [1u8];
            // SAFETY: valid fd and buffer.
            let n = unsafe { libc::write(gate.as_raw_fd(), b.as_ptr().cast(), 1) };
            if n != 1 {
                return Err(std::io::Error::last_os_error()).context("releasing the command");
            }
        }
        if let Some(status) = self.exec_status.take() {
            let mut errno = 0i32;
            // SAFETY: valid fd and a 4-byte buffer; blocks only until the
            // child's exec closes the pipe or it writes the errno.
            let n = unsafe { libc::read(status.as_raw_fd(), (&raw mut errno).cast(), 4) };
            if n == 4 {
                self.terminate();
                return Err(fail(
                    Code::Target,
                    format!(
                        "cannot execute `{}`: {}",
                        self.program,
                        std::io::Error::from_raw_os_error(errno)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Reaps the child if it exited (and any orphan of its tree that was
    /// reparented to the tracer); returns true while it runs.
    pub fn running(&mut self) -> bool {
        self.reap();
        if self.status.is_some() {
            return false;
        }
        let mut status = 0;
        // SAFETY: our own child; WNOHANG never blocks.
        let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        if r == self.pid {
            self.status = Some(status);
            return false;
        }
        r == 0
    }

    /// Stops the command and everything it started — its children, and
    /// orphans reparented to the tracer — as `timeout` stops a process
    /// group: SIGTERM, then SIGKILL after a grace period; reaps them all.
    pub fn terminate(&mut self) {
        let me = std::process::id();
        for sig in [libc::SIGTERM, libc::SIGKILL] {
            let tree = descendants(me);
            if tree.is_empty() {
                break;
            }
            for &(pid, started) in &tree {
                signal_if_same(pid, started, sig);
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
            while std::time::Instant::now() < deadline {
                self.reap();
                if descendants(me).is_empty() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        self.reap();
    }

    /// Reaps every exited child (the command's status is kept).
    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: non-blocking reap of any child of ours.
            let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if r <= 0 {
                return;
            }
            if r == self.pid {
                self.status = Some(status);
            }
        }
    }

    /// "exited with status N" or "killed by signal N".
    pub fn describe_status(&self) -> Option<String> {
        let s = self.status?;
        Some(if libc::WIFEXITED(s) {
            format!("exited with status {}", libc::WEXITSTATUS(s))
        } else if libc::WIFSIGNALED(s) {
            format!("killed by signal {}", libc::WTERMSIG(s))
        } else {
            format!("ended (wait status {s})")
        })
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        // Never leave a gated child waiting forever (closing the gate makes
        // it exit without running the command), nor a command running after
        // the tracer gave up (an error after it was released), nor zombies.
        let released = self.gate.is_none();
        self.gate = None;
        if released && self.running() {
            self.terminate();
        }
        self.reap();
    }
}

/// Sends `sig` to `pid` if it is still the process that started at
/// `started` (clock ticks since boot): through a pidfd, so a pid reused
/// between the look at /proc and the signal is never hit.
fn signal_if_same(pid: u32, started: u64, sig: i32) {
    // SAFETY: pidfd_open takes a pid and flags; the fd is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return;
    }
    // SAFETY: a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let same = proc::stat(pid).is_some_and(|s| s.starttime == started);
    if same {
        // SAFETY: a valid pidfd; no siginfo.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }
}

/// One line of /proc/PID/maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub exec: bool,
    /// File path for file-backed mappings; None for anonymous ones and
    /// pseudo-files ([heap], [stack], [vdso]).
    pub path: Option<PathBuf>,
    /// MAP_SHARED (`s` in the permissions): processes mapping the same
    /// object share its memory, and the kernel keys a non-private futex in
    /// it by the object and offset, not by the address.
    pub shared: bool,
    /// The mapped object: device (`major << 20 | minor`, as the kernel's
    /// `dev_t`) and inode; 0 for anonymous private memory.
    pub dev: u64,
    pub inode: u64,
    /// The pathname column as printed (`/dev/zero (deleted)` for shared
    /// anonymous memory, `/SYSV…` for SysV segments), empty when none.
    pub name: String,
}

impl Mapping {
    /// The shared object and offset a futex word at `addr` in this mapping
    /// is keyed by: (dev, inode, offset in the object).
    pub fn shared_key(&self, addr: u64) -> Option<(u64, u64, u64)> {
        (self.shared && self.inode != 0 && (self.start..self.end).contains(&addr))
            .then(|| (self.dev, self.inode, self.offset + (addr - self.start)))
    }
}

/// `fd:01` (hex major:minor) as a kernel `dev_t`.
fn parse_dev(s: &str) -> Option<u64> {
    let (maj, min) = s.split_once(':')?;
    Some(u64::from_str_radix(maj, 16).ok()? << 20 | u64::from_str_radix(min, 16).ok()?)
}

pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (range, perms, offset) = (f.next()?, f.next()?, f.next()?);
            let dev = parse_dev(f.next()?)?;
            let inode: u64 = f.next()?.parse().ok()?;
            let name: String = f.collect::<Vec<_>>().join(" ");
            let (s, e) = range.split_once('-')?;
            let path = (name.starts_with('/') && !name.ends_with("(deleted)"))
                .then(|| PathBuf::from(&name));
            Some(Mapping {
                start: u64::from_str_radix(s, 16).ok()?,
                end: u64::from_str_radix(e, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                exec: perms.as_bytes().get(2) == Some(&b'x'),
                path,
                shared: perms.as_bytes().get(3) == Some(&b's'),
                dev,
                inode,
                name,
            })
        })
        .collect()
}

/// What we know about one traced process, refreshed while it lives and kept
/// after it exits (symbolization happens at the end).
#[derive(Clone, Debug, Default)]
pub struct ProcessInfo {
    pub pid: u32,
    pub cmdline: Vec<String>,
    pub maps: Vec<Mapping>,
    pub threads: BTreeMap<u32, String>,
    /// `go` for a Go program (from its executable's ELF sections).
    pub runtime: Option<&'static str>,
    /// The executable the runtime was read from.
    pub exe: Option<PathBuf>,
    /// Its pid in its own pid namespace (a container's), which names its
    /// perf map there (`/tmp/perf-NSPID.map`).
    pub nspid: Option<u32>,
    /// Its effective uid: files it writes for tools (a perf map) are read
    /// only when it or root owns them.
    pub uid: Option<u32>,
}

impl ProcessInfo {
    /// Re-reads /proc for this process; keeps what it had if the process is
    /// gone.
    pub fn refresh(&mut self) {
        // Re-read every time: a launched command's first reading may predate
        // its exec.
        if let Some(cmdline) = proc::cmdline(self.pid) {
            self.cmdline = cmdline;
        }
        if let Some(text) = proc::maps_text(self.pid) {
            let maps = parse_maps(&text);
            if !maps.is_empty() {
                self.maps = maps;
            }
        }
        if let Some(status) = proc::status(self.pid) {
            if status.nspid.is_some() {
                self.nspid = status.nspid;
            }
            self.uid = Some(status.euid);
        }
        if let Some(exe) = proc::exe(self.pid)
            && self.exe.as_ref() != Some(&exe)
        {
            // Read through the process's root (containers), once per exec.
            self.runtime = runtime_in(self.pid, &exe);
            self.exe = Some(exe);
        }
        for (tid, comm) in proc::threads(self.pid) {
            self.threads.insert(tid, comm);
        }
    }

    pub fn mapping(&self, addr: u64) -> Option<&Mapping> {
        self.maps.iter().find(|m| m.start <= addr && addr < m.end)
    }
}

/// The file `execvp` would run for `program`: itself when it names a
/// path, else the first executable regular file of that name on PATH.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let runnable = |p: &std::path::Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = std::path::PathBuf::from(program);
        return runnable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| runnable(p))
}

/// The runtime an executable was built with, when it matters to futex
/// tracing: `go` for a Go binary (its `.go.buildinfo` section, or its
/// `.note.go.buildid`).
pub fn runtime_of(exe: &std::path::Path) -> Option<&'static str> {
    runtime_from(&*crate::target::elf::open(exe)?)
}

/// [`runtime_of`] a process's executable, read through its root.
fn runtime_in(pid: u32, exe: &std::path::Path) -> Option<&'static str> {
    runtime_from(&*crate::target::elf::open_in(pid, exe)?)
}

fn runtime_from(file: &crate::target::elf::ElfFile) -> Option<&'static str> {
    use object::{Object as _, ObjectSection as _};
    let elf = file.parse()?;
    elf.sections()
        .any(|s| matches!(s.name(), Ok(".go.buildinfo" | ".note.go.buildid")))
        .then_some("go")
}

/// Every process's parent, from one pass over /proc: pid → (ppid,
/// zombie). The tracer itself and its ancestors are left out (a root
/// above the tracer, `--pid 1`, must not take the tracer for its child).
pub fn process_tree() -> std::collections::HashMap<u32, (u32, bool)> {
    let mut tree = std::collections::HashMap::new();
    for (pid, stat) in proc::all() {
        if stat.state != 'X' {
            tree.insert(pid, (stat.ppid, stat.state == 'Z'));
        }
    }
    let mut me = std::process::id();
    while me > 1 {
        match tree.remove(&me) {
            Some((ppid, _)) => me = ppid,
            None => break,
        }
    }
    tree
}

/// The descendants of each root in a tree from [`process_tree`] (zombies
/// included: they ran), without the roots themselves.
pub fn descendants_in(
    tree: &std::collections::HashMap<u32, (u32, bool)>,
    roots: &[u32],
) -> std::collections::BTreeMap<u32, std::collections::BTreeSet<u32>> {
    let mut children: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
    for (&pid, &(ppid, _)) in tree {
        children.entry(ppid).or_default().push(pid);
    }
    roots
        .iter()
        .map(|&root| {
            let mut out = std::collections::BTreeSet::new();
            let mut todo = vec![root];
            while let Some(p) = todo.pop() {
                for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
                    if !roots.contains(&c) && out.insert(c) {
                        todo.push(c);
                    }
                }
            }
            (root, out)
        })
        .collect()
}

/// Every live descendant of `root` (zombies excluded), from /proc, with
/// its start time.
pub fn descendants(root: u32) -> Vec<(u32, u64)> {
    let mut children: BTreeMap<u32, Vec<(u32, u64)>> = BTreeMap::new();
    for (pid, stat) in proc::all() {
        if stat.alive() {
            children
                .entry(stat.ppid)
                .or_default()
                .push((pid, stat.starttime));
        }
    }
    let mut out: Vec<(u32, u64)> = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &(c, started) in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if c != root && !out.iter().any(|&(o, _)| o == c) {
                out.push((c, started));
                todo.push(c);
            }
        }
    }
    out
}

/// Waits until a just-released command has exec'd (its exe is no longer
/// ours) and its dynamic loader has mapped libc, or until `limit`.
pub fn wait_exec(pid: u32, limit: std::time::Duration) {
    let t = std::time::Instant::now();
    let ours = proc::own_exe();
    while t.elapsed() < limit {
        let exe = proc::exe(pid);
        if exe.is_some() && exe != ours {
            // Its executable mapping, not only the name: the loader maps a
            // library's whole span read-only first and its code over it
            // after, and maps read in between have no libc code.
            let maps = proc::maps_text(pid).unwrap_or_default();
            let libc_code = maps.lines().any(|l| {
                let mut f = l.split_whitespace();
                let perms = f.nth(1).unwrap_or("");
                perms.contains('x') && (l.contains("/libc.so") || l.contains("/libc-"))
            });
            if libc_code {
                return;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Confirms every requested pid can be traced.
pub fn check_pids(pids: &[i32]) -> Result<()> {
    for &pid in pids {
        check_pid(pid)?;
    }
    Ok(())
}

/// What /proc says about a pid we were asked to trace.
pub fn check_pid(pid: i32) -> Result<()> {
    if pid <= 0 {
        return Err(fail(Code::Target, format!("{pid} is not a process id")));
    }
    let stat = proc::stat(pid as u32)
        .ok_or_else(|| fail(Code::Target, format!("no process with pid {pid}")))?;
    if stat.flags & PF_KTHREAD != 0 {
        return Err(fail(
            Code::Target,
            format!("pid {pid} is a kernel thread: it makes no futex calls to trace"),
        ));
    }
    if !stat.alive() {
        return Err(fail(
            Code::Target,
            format!("pid {pid} has already exited (zombie)"),
        ));
    }
    // A thread id given instead of a process id: trace its process.
    if let Some(tgid) = proc::status(pid as u32).map(|s| s.tgid)
        && tgid != pid
    {
        return Err(fail(
            Code::Target,
            format!("{pid} is a thread of process {tgid}: pass --pid {tgid}"),
        ));
    }
    Ok(())
}

const PF_KTHREAD: u32 = 0x0020_0000;

/// Is the process alive (present and not a zombie)?
pub fn alive(pid: i32) -> bool {
    pid > 0 && proc::alive(pid as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_parse() {
        let text = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 fe:01 123 /usr/bin/demo
55d0c0a01000-55d0c0a02000 r-xp 00001000 fe:01 123 /usr/bin/demo
7ffd1000-7ffd2000 rw-p 00000000 00:00 0 [stack]
7f0000000000-7f0000001000 rw-p 00000000 00:00 0
7f0000002000-7f0000003000 r-xp 00000000 fe:01 9 /tmp/a b (deleted)
";
        let maps = parse_maps(text);
        assert_eq!(maps.len(), 5);
        assert_eq!(maps[1].start, 0x55d0c0a01000);
        assert_eq!(maps[1].offset, 0x1000);
        assert!(maps[1].exec && !maps[0].exec);
        assert_eq!(
            maps[1].path.as_deref(),
            Some(std::path::Path::new("/usr/bin/demo"))
        );
        assert_eq!(maps[2].path, None);
        assert_eq!(maps[4].path, None);
    }

    #[test]
    fn a_shared_mapping_keys_a_word_by_object_and_offset() {
        let text = "\
7f0000000000-7f0000004000 rw-s 00002000 00:01 4711 /dev/zero (deleted)
7f0000004000-7f0000005000 rw-p 00000000 00:00 0
";
        let maps = parse_maps(text);
        assert!(maps[0].shared && !maps[1].shared);
        assert_eq!(maps[0].dev, 1);
        assert_eq!(maps[0].name, "/dev/zero (deleted)");
        assert_eq!(maps[0].shared_key(0x7f0000000040), Some((1, 4711, 0x2040)));
        assert_eq!(maps[0].shared_key(0x7f0000004000), None);
        assert_eq!(maps[1].shared_key(0x7f0000004000), None);
        assert_eq!(parse_dev("fe:01"), Some(0xfe << 20 | 1));
    }

    #[test]
    fn descendants_are_found_through_proc() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pids = || -> Vec<u32> {
            descendants(std::process::id())
                .iter()
                .map(|d| d.0)
                .collect()
        };
        assert!(pids().contains(&child.id()), "{:?}", pids());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!pids().contains(&child.id()));
    }

    #[test]
    fn a_tree_never_holds_the_tracer_nor_its_ancestors() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let tree = process_tree();
        let me = std::process::id();
        assert!(!tree.contains_key(&me));
        // Our child is there, a root of its own; pid 1's descendants hold
        // neither us nor it (its parent, us, is cut off).
        let of_child = descendants_in(&tree, &[child.id()]);
        assert!(of_child[&child.id()].is_empty());
        let of_init = descendants_in(&tree, &[1]);
        assert!(!of_init[&1].contains(&me) && !of_init[&1].contains(&child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn own_process_info_reads() {
        let mut me = ProcessInfo {
            pid: std::process::id(),
            ..Default::default()
        };
        me.refresh();
        assert!(!me.cmdline.is_empty());
        assert!(me.threads.contains_key(&std::process::id()));
        let here = own_process_info_reads as *const () as u64;
        assert!(me.mapping(here).is_some_and(|m| m.exec && m.path.is_some()));
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

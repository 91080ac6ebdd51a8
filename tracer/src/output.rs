//! The one way every output file is written (JSON, HTML, `report -o`,
//! compare outputs, baselines): the tracer runs as root next to files and
//! directories other users own, so it never follows a link, never replaces
//! anything but a regular file, never leaves a half-written file, and
//! hands what it writes to the user who ran `sudo`.
//!
//! An output is prepared before any work is done ([`Out::prepare`]): its
//! directory is opened once, and every later step — the checks, the temp
//! file (O_CREAT|O_EXCL|O_NOFOLLOW, an unpredictable name), the rename
//! over the destination (which replaces a link planted meanwhile instead
//! of following it), the directory's fsync — is relative to that open
//! directory, so swapping a path component afterwards changes nothing.
//! `-` is stdout.

use std::{
    ffi::{CStr, CString},
    fs::File,
    io::{self, Write},
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::Result;

use crate::exit::{Code, fail};

/// Permission bits of files the tracer writes: 0600 unless `--file-mode`
/// says otherwise (reports hold the target's command line).
static MODE: AtomicU32 = AtomicU32::new(0o600);

pub fn set_mode(mode: u32) {
    MODE.store(mode & 0o777, Ordering::Relaxed);
}

/// Where an output goes, checked and with its directory held open.
pub enum Out {
    Stdout,
    File(FileOut),
}

pub struct FileOut {
    path: PathBuf,
    /// The destination's directory, opened when the output was prepared.
    dir: OwnedFd,
    name: CString,
    what: &'static str,
}

fn cstring(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))
}

fn last_error<T>() -> io::Result<T> {
    Err(io::Error::last_os_error())
}

impl Out {
    /// Checks that `path` can be written, before any work is done: its
    /// directory exists and takes a new file, and the path is missing or a
    /// regular file (never a link, a device, a directory or a FIFO). One
    /// sentence and exit 7 otherwise.
    pub fn prepare(path: &Path, what: &'static str) -> Result<Out> {
        if path.as_os_str() == "-" {
            return Ok(Out::Stdout);
        }
        let cannot = |why: String| {
            fail(
                Code::Output,
                format!("cannot write the {what} to {}: {why}", path.display()),
            )
        };
        let Some(name) = path.file_name() else {
            return Err(cannot("the path names no file".into()));
        };
        let dir_path = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let c = cstring(dir_path.as_os_str().as_bytes()).map_err(|e| cannot(e.to_string()))?;
        // SAFETY: a valid NUL-terminated path; the fd is owned below.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(cannot(format!("directory {}: {e}", dir_path.display())));
        }
        let out = FileOut {
            path: path.to_path_buf(),
            // SAFETY: a fresh fd nobody else owns.
            dir: unsafe { OwnedFd::from_raw_fd(fd) },
            name: cstring(name.as_bytes()).map_err(|e| cannot(e.to_string()))?,
            what,
        };
        out.replaceable()?;
        // The one reliable test that a new file can be made there (read-only
        // file systems, ACLs, root squash): make one, then remove it.
        let (_, tmp) = out.create_temp().map_err(|e| {
            cannot(format!(
                "cannot create a file in {}: {e}",
                dir_path.display()
            ))
        })?;
        out.unlink(&tmp);
        Ok(Out::File(out))
    }

    pub fn is_stdout(&self) -> bool {
        matches!(self, Out::Stdout)
    }

    pub fn display(&self) -> String {
        match self {
            Out::Stdout => "stdout".into(),
            Out::File(f) => f.path.display().to_string(),
        }
    }

    /// Writes the output: to stdout, or atomically to the file. A failure
    /// leaves any previous file untouched and is one sentence, exit 7.
    pub fn write(&self, body: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<()> {
        match self {
            Out::Stdout => crate::ui::stdout(|out| body(out)),
            Out::File(f) => f.write(body),
        }
    }

    pub fn write_str(&self, text: &str) -> Result<()> {
        self.write(|w| w.write_all(text.as_bytes()))
    }
}

impl FileOut {
    fn refuse(&self, it_is: &str) -> anyhow::Error {
        fail(
            Code::Output,
            format!(
                "refusing to write the {} to {}: it is {it_is}; give a new path or a regular file, or - for stdout",
                self.what,
                self.path.display()
            ),
        )
    }

    /// The destination, if it exists, must be a regular file (not followed).
    fn replaceable(&self) -> Result<()> {
        // SAFETY: an all-zero stat is a valid value to be overwritten.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid dir fd, a NUL-terminated name and a stat we own.
        let rc = unsafe {
            libc::fstatat(
                self.dir.as_raw_fd(),
                self.name.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::NotFound {
                return Ok(());
            }
            return Err(fail(
                Code::Output,
                format!(
                    "cannot write the {} to {}: {e}",
                    self.what,
                    self.path.display()
                ),
            ));
        }
        let it_is = match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => return Ok(()),
            libc::S_IFLNK => "a symbolic link (not followed)",
            libc::S_IFDIR => "a directory",
            libc::S_IFCHR | libc::S_IFBLK => "a device",
            libc::S_IFIFO => "a FIFO",
            libc::S_IFSOCK => "a socket",
            _ => "not a regular file",
        };
        Err(self.refuse(it_is))
    }

    /// A new file under an unpredictable name in the directory, created
    /// O_EXCL|O_NOFOLLOW with the output mode: (file, its name).
    fn create_temp(&self) -> io::Result<(File, CString)> {
        let base = String::from_utf8_lossy(self.name.as_bytes()).into_owned();
        let mode = MODE.load(Ordering::Relaxed);
        for _ in 0..16 {
            let tmp = cstring(format!(".{base}.{:016x}.tmp", random_u64()?).as_bytes())?;
            // SAFETY: a valid dir fd and NUL-terminated name; the returned
            // fd is owned below.
            let fd = unsafe {
                libc::openat(
                    self.dir.as_raw_fd(),
                    tmp.as_ptr(),
                    libc::O_WRONLY
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    mode as libc::c_uint,
                )
            };
            if fd >= 0 {
                // The umask may have cleared bits the user asked for.
                // SAFETY: a valid fd of ours.
                unsafe { libc::fchmod(fd, mode as libc::mode_t) };
                // SAFETY: a fresh fd nobody else owns.
                return Ok((unsafe { File::from_raw_fd(fd) }, tmp));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(e);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no unused temporary name",
        ))
    }

    fn unlink(&self, name: &CStr) {
        // SAFETY: a valid dir fd and NUL-terminated name.
        unsafe { libc::unlinkat(self.dir.as_raw_fd(), name.as_ptr(), 0) };
    }

    fn write(&self, body: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<()> {
        self.replaceable()?;
        let cannot = |e: io::Error| {
            fail(
                Code::Output,
                format!(
                    "cannot write the {} to {}: {e}",
                    self.what,
                    self.path.display()
                ),
            )
        };
        let (file, tmp) = self.create_temp().map_err(cannot)?;
        let result = (|| -> io::Result<()> {
            // Buffered: serde_json writes token by token, and unbuffered that
            // was a write(2) each (3 s of CPU for an 8.6 MB report).
            let mut w = io::BufWriter::with_capacity(1 << 16, file);
            body(&mut w)?;
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            hand_over_fd(&f, &self.path);
            drop(f);
            // SAFETY: a valid dir fd and NUL-terminated names; renameat
            // replaces the destination's directory entry, never following
            // a link there.
            if unsafe {
                libc::renameat(
                    self.dir.as_raw_fd(),
                    tmp.as_ptr(),
                    self.dir.as_raw_fd(),
                    self.name.as_ptr(),
                )
            } != 0
            {
                return last_error();
            }
            // The rename itself durable, as the data is.
            // SAFETY: a valid fd of ours.
            unsafe { libc::fsync(self.dir.as_raw_fd()) };
            Ok(())
        })();
        if let Err(e) = result {
            self.unlink(&tmp);
            return Err(cannot(e));
        }
        Ok(())
    }
}

fn random_u64() -> io::Result<u64> {
    let mut b = [0u8; 8];
    // SAFETY: getrandom fills the 8-byte buffer we own.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 8 {
        Ok(u64::from_ne_bytes(b))
    } else {
        last_error()
    }
}

/// Under sudo, the invoking user (SUDO_UID/SUDO_GID), so that reports and
/// baselines are theirs, not root's.
fn sudo_owner() -> Option<(libc::uid_t, libc::gid_t)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let id = |v: &str| std::env::var(v).ok()?.trim().parse::<u32>().ok();
    let (uid, gid) = (id("SUDO_UID")?, id("SUDO_GID")?);
    (uid != 0).then_some((uid, gid))
}

/// Gives a file the tracer wrote to the sudo user; a file system that
/// refuses (root-squashed NFS) leaves it root's, with a warning.
fn hand_over_fd(f: &File, path: &Path) {
    if let Some((uid, gid)) = sudo_owner() {
        // SAFETY: a valid fd of the file we created.
        if unsafe { libc::fchown(f.as_raw_fd(), uid, gid) } != 0 {
            log::warn!(
                "{} stays root's: handing it to uid {uid} failed ({})",
                path.display(),
                io::Error::last_os_error()
            );
        }
    }
}

/// Creates a directory (and its parents) for outputs, handing the levels
/// it creates — only those — to the sudo user.
pub fn create_dir(dir: &Path, what: &str) -> Result<()> {
    let mut built = PathBuf::new();
    for part in dir.components() {
        built.push(part);
        match std::fs::create_dir(&built) {
            Ok(()) => {
                if let (Some((uid, gid)), Ok(c)) =
                    (sudo_owner(), cstring(built.as_os_str().as_bytes()))
                {
                    // SAFETY: a valid path; lchown never follows a link,
                    // and this directory was just created by us.
                    unsafe { libc::lchown(c.as_ptr(), uid, gid) };
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && built.is_dir() => {}
            Err(e) => {
                return Err(fail(
                    Code::Output,
                    format!("cannot create the {what} directory {}: {e}", dir.display()),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tracer-out-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn writes_atomically_with_the_output_mode_and_no_leftovers() {
        let d = scratch("atomic");
        let p = d.join("run.json");
        Out::prepare(&p, "report")
            .unwrap()
            .write_str("one\n")
            .unwrap();
        Out::prepare(&p, "report")
            .unwrap()
            .write_str("two\n")
            .unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two\n");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("run.json")]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn links_devices_and_directories_are_refused_untouched() {
        let d = scratch("refuse");
        let victim = d.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let link = d.join("link.json");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for (dest, needle) in [
            (link.clone(), "symbolic link"),
            (PathBuf::from("/dev/null"), "a device"),
            (d.clone(), "a directory"),
        ] {
            let Err(e) = Out::prepare(&dest, "report") else {
                panic!("{} accepted", dest.display());
            };
            assert_eq!(crate::exit::code_of(&e), Code::Output);
            assert!(e.to_string().contains(needle), "{e}");
        }
        // A link planted after the check is refused at the write.
        let late = d.join("late.json");
        let out = Out::prepare(&late, "report").unwrap();
        std::os::unix::fs::symlink(&victim, &late).unwrap();
        let e = out.write_str("x").unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(
            std::fs::metadata("/dev/null")
                .unwrap()
                .file_type()
                .is_char_device()
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_checked_directory_is_the_one_written_to() {
        let d = scratch("pinned");
        let (a, b) = (d.join("a"), d.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let out = Out::prepare(&a.join("run.json"), "report").unwrap();
        // The directory is swapped for a link to another one after the check.
        std::fs::rename(&a, d.join("a-old")).unwrap();
        std::os::unix::fs::symlink(&b, &a).unwrap();
        out.write_str("x").unwrap();
        assert!(d.join("a-old/run.json").exists(), "written where checked");
        assert!(!b.join("run.json").exists(), "followed the swapped link");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failed_write_keeps_the_previous_file() {
        let d = scratch("keep");
        let p = d.join("page.html");
        std::fs::write(&p, "previous").unwrap();
        let e = Out::prepare(&p, "HTML page")
            .unwrap()
            .write(|w| {
                w.write_all(b"partial")?;
                Err(io::Error::other("disk full"))
            })
            .unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "previous");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1, "temp file left");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_directories_fail_the_check() {
        let Err(e) = Out::prepare(Path::new("/nonexistent-dir/run.json"), "JSON report") else {
            panic!("accepted");
        };
        assert_eq!(crate::exit::code_of(&e), Code::Output);
        assert!(e.to_string().contains("/nonexistent-dir"), "{e}");
        assert!(
            Out::prepare(Path::new("-"), "JSON report")
                .unwrap()
                .is_stdout()
        );
    }
}

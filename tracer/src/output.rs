//! The one way every output file is written (JSON, HTML, `report -o`,
//! compare outputs, baselines): the tracer runs as root next to files and
//! directories other users own, so it never follows a link, never replaces
//! anything but a regular file, never leaves a half-written file, and
//! hands what it writes to the user who ran `sudo`.
//!
//! A file is written to a temp file created with O_CREAT|O_EXCL|O_NOFOLLOW
//! under an unpredictable name in the destination's directory, synced,
//! then renamed over the destination (rename replaces a link planted
//! meanwhile instead of following it). `-` is stdout. Every destination is
//! checked with [`check`] before anything is traced.

use std::{
    ffi::CString,
    fs::File,
    io::{self, Write},
    os::{
        fd::FromRawFd as _,
        unix::{ffi::OsStrExt as _, fs::FileTypeExt as _},
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
    MODE.store(mode & 0o7777, Ordering::Relaxed);
}

/// Where an output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    Stdout,
    File(PathBuf),
}

impl Dest {
    pub fn new(path: &Path) -> Self {
        if path.as_os_str() == "-" {
            Dest::Stdout
        } else {
            Dest::File(path.to_path_buf())
        }
    }

    pub fn is_stdout(&self) -> bool {
        *self == Dest::Stdout
    }

    pub fn display(&self) -> String {
        match self {
            Dest::Stdout => "stdout".into(),
            Dest::File(p) => p.display().to_string(),
        }
    }
}

/// The directory a destination file lives in.
fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Checks that `dest` can be written, before any work is done: its
/// directory exists and takes a new file, and the path is missing or a
/// regular file (never a link, a device, a directory or a FIFO).
pub fn check(dest: &Dest, what: &str) -> Result<()> {
    let Dest::File(path) = dest else {
        return Ok(());
    };
    if path.file_name().is_none() {
        return Err(fail(
            Code::Output,
            format!("the {what} path {} names no file", path.display()),
        ));
    }
    existing_is_replaceable(path, what)?;
    let dir = dir_of(path);
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(fail(
                Code::Output,
                format!(
                    "cannot write the {what} to {}: {} is not a directory",
                    path.display(),
                    dir.display()
                ),
            ));
        }
        Err(e) => {
            return Err(fail(
                Code::Output,
                format!(
                    "cannot write the {what} to {}: directory {}: {e}",
                    path.display(),
                    dir.display()
                ),
            ));
        }
    }
    // The one reliable test that a new file can be made there (read-only
    // file systems, ACLs, root squash): make one, then remove it.
    let probe = create_temp(dir, path).map_err(|e| {
        fail(
            Code::Output,
            format!(
                "cannot write the {what} to {}: cannot create a file in {}: {e}",
                path.display(),
                dir.display()
            ),
        )
    })?;
    let _ = std::fs::remove_file(&probe.1);
    Ok(())
}

/// The destination, if it exists, must be a regular file (not followed).
fn existing_is_replaceable(path: &Path, what: &str) -> Result<()> {
    let kind = match std::fs::symlink_metadata(path) {
        Ok(m) => m.file_type(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(fail(
                Code::Output,
                format!("cannot write the {what} to {}: {e}", path.display()),
            ));
        }
    };
    let what_it_is = if kind.is_file() {
        return Ok(());
    } else if kind.is_symlink() {
        "a symbolic link (not followed)"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(fail(
        Code::Output,
        format!(
            "refusing to write the {what} to {}: it is {what_it_is}; give a new path or a regular file, or - for stdout",
            path.display()
        ),
    ))
}

/// An unpredictable name next to `path`, created O_EXCL|O_NOFOLLOW with the
/// output mode: (file, its path).
fn create_temp(dir: &Path, path: &Path) -> io::Result<(File, PathBuf)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mode = MODE.load(Ordering::Relaxed);
    for _ in 0..16 {
        let tmp = dir.join(format!(".{name}.{:016x}.tmp", random_u64()?));
        let c = CString::new(tmp.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        // SAFETY: a valid NUL-terminated path; the returned fd is owned below.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        };
        if fd >= 0 {
            // SAFETY: a fresh fd nobody else owns.
            let f = unsafe { File::from_raw_fd(fd) };
            // The umask may have cleared bits the user asked for.
            // SAFETY: a valid fd.
            unsafe { libc::fchmod(fd, mode as libc::mode_t) };
            return Ok((f, tmp));
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

fn random_u64() -> io::Result<u64> {
    let mut b = [0u8; 8];
    // SAFETY: getrandom fills the 8-byte buffer we own.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 8 {
        Ok(u64::from_ne_bytes(b))
    } else {
        Err(io::Error::last_os_error())
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

/// Gives a file or directory the tracer created to the sudo user, if any.
pub fn hand_over(path: &Path) {
    if let Some((uid, gid)) = sudo_owner()
        && let Ok(c) = CString::new(path.as_os_str().as_bytes())
    {
        // SAFETY: a valid path; lchown never follows a link.
        unsafe { libc::lchown(c.as_ptr(), uid, gid) };
    }
}

/// Creates a directory (and its parents) for outputs, handing new ones to
/// the sudo user.
pub fn create_dir(dir: &Path, what: &str) -> Result<()> {
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.as_os_str().is_empty() && !d.exists() {
        missing.push(d.to_path_buf());
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        fail(
            Code::Output,
            format!("cannot create the {what} directory {}: {e}", dir.display()),
        )
    })?;
    for m in missing {
        hand_over(&m);
    }
    Ok(())
}

/// Writes one output: to stdout, or atomically to a file (see the module
/// comment). A failure leaves any previous file untouched and is one
/// sentence with exit code 7.
pub fn write(
    dest: &Dest,
    what: &str,
    body: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    let path = match dest {
        Dest::Stdout => {
            return crate::ui::stdout(|out| body(out));
        }
        Dest::File(p) => p,
    };
    existing_is_replaceable(path, what)?;
    let cannot = |e: io::Error| {
        fail(
            Code::Output,
            format!("cannot write the {what} to {}: {e}", path.display()),
        )
    };
    let dir = dir_of(path);
    let (file, tmp) = create_temp(dir, path).map_err(cannot)?;
    let result = (|| -> io::Result<()> {
        // Buffered: serde_json writes token by token, and unbuffered that
        // was a write(2) each (3 s of CPU for an 8.6 MB report).
        let mut w = io::BufWriter::with_capacity(1 << 16, file);
        body(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        if let Some((uid, gid)) = sudo_owner() {
            use std::os::fd::AsRawFd as _;
            // SAFETY: a valid fd of the file we created.
            if unsafe { libc::fchown(f.as_raw_fd(), uid, gid) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename itself durable, as the data is.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(cannot(e));
    }
    Ok(())
}

/// `write` for text.
pub fn write_str(dest: &Dest, what: &str, text: &str) -> Result<()> {
    write(dest, what, |w| w.write_all(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

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
        write_str(&Dest::File(p.clone()), "report", "one\n").unwrap();
        write_str(&Dest::File(p.clone()), "report", "two\n").unwrap();
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
            let dest = Dest::File(dest);
            let e = check(&dest, "report").unwrap_err();
            assert_eq!(crate::exit::code_of(&e), Code::Output);
            assert!(e.to_string().contains(needle), "{e}");
            let e = write_str(&dest, "report", "x").unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
        }
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
    fn a_failed_write_keeps_the_previous_file() {
        let d = scratch("keep");
        let p = d.join("page.html");
        std::fs::write(&p, "previous").unwrap();
        let e = write(&Dest::File(p.clone()), "HTML page", |w| {
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
        let e = check(
            &Dest::File("/nonexistent-dir/run.json".into()),
            "JSON report",
        )
        .unwrap_err();
        assert_eq!(crate::exit::code_of(&e), Code::Output);
        assert!(e.to_string().contains("/nonexistent-dir"), "{e}");
        assert!(check(&Dest::Stdout, "JSON report").is_ok());
        assert!(Dest::new(Path::new("-")).is_stdout());
    }
}

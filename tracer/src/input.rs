//! Reading the files `report`, `compare` and `baseline` are given: only
//! regular files (a FIFO would block forever, /dev/zero would never end),
//! up to a size limit (`--max-input-size`), opened without blocking.

use std::{
    fs::File,
    io::Read as _,
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

use anyhow::Result;

use crate::{
    exit::{Code, fail},
    report::{json, model::Report},
};

/// Default for `--max-input-size`: well above a run with thousands of
/// locks and stacks (tens of MB), far below what a machine can hold.
pub const DEFAULT_MAX: u64 = 512 << 20;

static MAX: AtomicU64 = AtomicU64::new(DEFAULT_MAX);

pub fn set_max(bytes: u64) {
    MAX.store(bytes, Ordering::Relaxed);
}

/// Opens an input file: it must be a regular file no larger than the
/// limit, and no more than the limit is ever read from it (a file that
/// grows, or a pseudo-file that claims size 0). Every refusal is one
/// sentence with exit code 8.
pub fn open(path: &Path, what: &str) -> Result<Limited> {
    let max = MAX.load(Ordering::Relaxed);
    Ok(Limited {
        file: open_limited(path, what, max)?,
        left: max,
        max,
    })
}

/// A file read up to a limit: past it, reads fail.
pub struct Limited {
    file: File,
    left: u64,
    max: u64,
}

impl std::io::Read for Limited {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other(format!(
                "it is over the {} MB limit (raise it with --max-input-size)",
                self.max >> 20
            )));
        }
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let got = self.file.read(&mut buf[..n])?;
        self.left -= got as u64;
        Ok(got)
    }
}

impl std::io::Seek for Limited {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        let at = self.file.seek(pos)?;
        self.left = self.max.saturating_sub(at);
        Ok(at)
    }
}

fn open_limited(path: &Path, what: &str, max: u64) -> Result<File> {
    let refuse = |why: String| {
        fail(
            Code::Input,
            format!("cannot read {what} {}: {why}", path.display()),
        )
    };
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused
    // below); it changes nothing for a regular file.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| refuse(e.to_string()))?;
    let m = f.metadata().map_err(|e| refuse(e.to_string()))?;
    if !m.is_file() {
        return Err(refuse("it is not a regular file".into()));
    }
    if m.len() > max {
        return Err(refuse(format!(
            "it is {} MB, over the {} MB limit (raise it with --max-input-size)",
            m.len().div_ceil(1 << 20),
            max >> 20
        )));
    }
    Ok(f)
}

/// A file a traced process wrote for tools (a JIT's perf map): read only
/// if it is a regular file, not a link, owned by `owner` or root, and no
/// larger than `max`. None otherwise (it is optional).
pub fn read_untrusted(path: &Path, owner: Option<u32>, max: u64) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let m = f.metadata().ok()?;
    if !m.is_file() || m.len() > max || !(m.uid() == 0 || Some(m.uid()) == owner) {
        return None;
    }
    let mut s = String::new();
    f.take(max).read_to_string(&mut s).ok()?;
    Some(s)
}

/// A small text file (a thresholds file): regular, at most 1 MiB.
pub fn read_text(path: &Path, what: &str) -> Result<String> {
    let mut f = open_limited(path, what, 1 << 20)?;
    let mut s = String::new();
    f.read_to_string(&mut s).map_err(|e| {
        fail(
            Code::Input,
            format!("cannot read {what} {}: {e}", path.display()),
        )
    })?;
    Ok(s)
}

/// A saved run: a contention report or a profile.
#[derive(Debug)]
pub enum Saved {
    Report(Box<Report>),
    Profile(Box<crate::report::profile::Profile>),
}

/// Loads a saved run of either kind: every way it can be unusable is one
/// sentence and `Code::Input`.
pub fn load_any(path: &Path) -> Result<Saved> {
    let mut f = open(path, "the run")?;
    let unusable = |e: anyhow::Error| {
        fail(
            Code::Input,
            format!("{} is not a usable tracer report: {e:#}", path.display()),
        )
    };
    if json::is_profile(&mut f).map_err(unusable)? {
        return json::parse_profile_reader(f)
            .map(|p| Saved::Profile(Box::new(p)))
            .map_err(unusable);
    }
    json::parse_reader(f)
        .map(|r| Saved::Report(Box::new(r)))
        .map_err(unusable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_devices_directories_and_big_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("tracer-in-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo.json");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let t = std::time::Instant::now();
        for p in [fifo.as_path(), Path::new("/dev/zero"), dir.as_path()] {
            let e = load_any(p).unwrap_err();
            assert_eq!(crate::exit::code_of(&e), Code::Input);
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        assert!(t.elapsed().as_secs() < 2, "a FIFO blocked the loader");
        let big = dir.join("big.json");
        std::fs::write(&big, vec![b' '; 4096]).unwrap();
        let e = open_limited(&big, "the report", 1024).unwrap_err();
        assert!(e.to_string().contains("--max-input-size"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

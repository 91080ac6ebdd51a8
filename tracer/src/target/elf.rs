//! One cache of mapped ELF files, shared by symbolization, unwinding,
//! function resolution and runtime detection, so each binary is opened and
//! mapped once per run however many processes map it and whichever stage
//! asks first. A file is known by its device, inode, size and mtime: a
//! binary rebuilt in place during a run is a new entry, and the same file
//! reached by two paths (a container's root and the host's) is one.
//! Entries live for the run (a report reads the same few binaries again
//! and again); a long-running `tracer agent` drops those nobody holds at
//! the end of each window ([`evict_unused`]).

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

/// A mapped file.
pub struct ElfFile {
    map: memmap2::Mmap,
}

impl ElfFile {
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The file as an object, or `None` if it is not one `object` reads.
    pub fn parse(&self) -> Option<object::File<'_>> {
        object::File::parse(self.bytes()).ok()
    }
}

#[derive(Hash, PartialEq, Eq, Clone, Copy)]
struct Key {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

fn key(meta: &std::fs::Metadata) -> Key {
    Key {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
    }
}

static CACHE: Mutex<Option<HashMap<Key, Arc<ElfFile>>>> = Mutex::new(None);

/// Unmaps the files no unwinder, symbolizer or resolver holds any more
/// (binaries replaced by upgrades, programs that ran once); returns how
/// many remain.
pub fn evict_unused() -> usize {
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(cache) = cache.as_mut() else {
        return 0;
    };
    cache.retain(|_, f| Arc::strong_count(f) > 1);
    cache.len()
}

/// The file at `path`, mapped once per run.
pub fn open(path: &Path) -> Option<Arc<ElfFile>> {
    let file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() == 0 {
        return None;
    }
    let k = key(&meta);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(f) = cache.get(&k) {
        return Some(f.clone());
    }
    // SAFETY: a read-only private mapping; a file truncated under us makes
    // parsing fail or read zeros (SIGBUS aside, as for every mmap reader of
    // binaries: perf, blazesym), never our memory.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    let f = Arc::new(ElfFile { map });
    cache.insert(k, f.clone());
    Some(f)
}

/// The path a process's file is read by: through /proc/PID/root when that
/// is another file than the same path here (a container's), else the path
/// itself — which stays readable after the process exits and takes its
/// root with it.
pub fn path_in(pid: u32, path: &Path) -> PathBuf {
    let inside = crate::target::proc::in_root(pid, path);
    match (std::fs::metadata(&inside), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) if a.dev() == b.dev() && a.ino() == b.ino() => path.to_path_buf(),
        (Ok(_), _) => inside,
        _ => path.to_path_buf(),
    }
}

/// [`open`] a file as process `pid` sees it (see [`path_in`]); the path
/// itself if the process is gone.
pub fn open_in(pid: u32, path: &Path) -> Option<Arc<ElfFile>> {
    open(&path_in(pid, path)).or_else(|| open(path))
}

/// What identifies an ELF file and its debug file.
#[derive(Default)]
pub struct Identity {
    /// GNU build id, hex.
    pub build_id: Option<String>,
    /// It has a symbol table.
    pub symtab: bool,
    /// The file name its .gnu_debuglink names.
    pub debug_link: Option<String>,
    /// PT_LOAD segments: [file offset, vaddr, file size].
    pub segments: Vec<[u64; 3]>,
}

pub fn identity(path: &Path) -> Identity {
    use object::{Object as _, ObjectSegment as _};
    let Some(file) = open(path) else {
        return Identity::default();
    };
    let Some(elf) = file.parse() else {
        return Identity::default();
    };
    Identity {
        build_id: elf
            .build_id()
            .ok()
            .flatten()
            .map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        symtab: elf.section_by_name(".symtab").is_some(),
        debug_link: elf
            .gnu_debuglink()
            .ok()
            .flatten()
            .map(|(name, _)| String::from_utf8_lossy(name).into_owned()),
        segments: elf
            .segments()
            .filter_map(|s| {
                let (off, size) = s.file_range();
                (size > 0).then_some([off, s.address(), size])
            })
            .collect(),
    }
}

/// How many files are mapped.
pub fn cached() -> usize {
    CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map_or(0, HashMap::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_is_mapped_once_by_any_path() {
        let me = std::fs::read_link("/proc/self/exe").unwrap();
        let a = open(&me).expect("own executable");
        assert!(a.parse().is_some());
        // The same file through our own root: one entry.
        let b = open_in(std::process::id(), &me).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = open(Path::new(&format!(
            "/proc/{}/root{}",
            std::process::id(),
            me.display()
        )))
        .unwrap();
        assert!(Arc::ptr_eq(&a, &c));
        assert_eq!(path_in(std::process::id(), &me), me);
    }

    #[test]
    fn a_rewritten_file_is_a_new_entry() {
        let dir = std::env::temp_dir().join(format!("tracer-elf-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bin");
        let me = std::fs::read_link("/proc/self/exe").unwrap();
        std::fs::copy(&me, &p).unwrap();
        let a = open(&p).unwrap();
        // A rebuild: a new file renamed over the old (as linkers do).
        std::fs::write(dir.join("new"), b"\x7fELF not really").unwrap();
        std::fs::rename(dir.join("new"), &p).unwrap();
        let b = open(&p).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(b.parse().is_none() && a.parse().is_some());
        assert!(open(&dir).is_none() && open(&dir.join("none")).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

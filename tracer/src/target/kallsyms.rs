//! Kernel data symbols from /proc/kallsyms (root sees real addresses), to
//! name kernel locks that are statics, and lock kinds from the
//! lock:contention_begin flags.

/// Sorted (address, name) of kernel data symbols.
pub struct Kallsyms(Vec<(u64, String)>);

impl Kallsyms {
    /// Data symbols (statics a kernel lock can be).
    pub fn load() -> Self {
        Self::load_kinds(&["d", "D", "b", "B"])
    }

    /// Code symbols (functions in kernel stacks).
    pub fn load_code() -> Self {
        Self::load_kinds(&["t", "T", "w", "W"])
    }

    /// No symbols (nothing to name).
    pub fn empty() -> Self {
        Self(Vec::new())
    }

    fn load_kinds(kinds: &[&str]) -> Self {
        let text = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let addr = u64::from_str_radix(f.next()?, 16).ok()?;
                let kind = f.next()?;
                let name = f.next()?;
                (addr != 0 && kinds.contains(&kind)).then(|| (addr, name.to_string()))
            })
            .collect();
        syms.sort();
        Self(syms)
    }

    /// The code symbol holding `addr` and the offset in it.
    pub fn function(&self, addr: u64) -> Option<(String, u64)> {
        let i = self.0.partition_point(|(a, _)| *a <= addr).checked_sub(1)?;
        let (start, name) = &self.0[i];
        let off = addr - start;
        (off < 1 << 20).then(|| (name.clone(), off))
    }

    /// `name` or `name+0xoff` when `addr` is within 4 KiB after a data symbol
    /// (kallsyms has no sizes; a lock inside a static struct is named by it).
    pub fn name(&self, addr: u64) -> Option<String> {
        let i = self.0.partition_point(|(a, _)| *a <= addr).checked_sub(1)?;
        let (start, name) = &self.0[i];
        let off = addr - start;
        (off < 4096).then(|| {
            if off == 0 {
                name.clone()
            } else {
                format!("{name}+{off:#x}")
            }
        })
    }
}

/// The lock type from LCB_F_* flags (include/trace/events/lock.h), named as
/// perf lock contention names them.
pub fn lock_kind(flags: u32) -> String {
    const SPIN: u32 = 1;
    const READ: u32 = 2;
    const WRITE: u32 = 4;
    const RT: u32 = 8;
    const PERCPU: u32 = 16;
    const MUTEX: u32 = 32;
    let rw = if flags & READ != 0 {
        ":R"
    } else if flags & WRITE != 0 {
        ":W"
    } else {
        ""
    };
    let base = if flags & PERCPU != 0 {
        "pcpu-sem"
    } else if flags & RT != 0 {
        "rt-mutex"
    } else if flags & MUTEX != 0 {
        "mutex"
    } else if flags & SPIN != 0 {
        if rw.is_empty() { "spinlock" } else { "rwlock" }
    } else if !rw.is_empty() {
        "rwsem"
    } else {
        "unknown"
    };
    format!("{base}{rw}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_perf_lock() {
        assert_eq!(lock_kind(1), "spinlock");
        assert_eq!(lock_kind(1 | 2), "rwlock:R");
        assert_eq!(lock_kind(2), "rwsem:R");
        assert_eq!(lock_kind(4), "rwsem:W");
        assert_eq!(lock_kind(32), "mutex");
        assert_eq!(lock_kind(16 | 2), "pcpu-sem:R");
        assert_eq!(lock_kind(8), "rt-mutex");
    }

    #[test]
    fn names_are_found_by_containing_symbol() {
        let k = Kallsyms(vec![(0x1000, "a".into()), (0x2000, "b".into())]);
        assert_eq!(k.name(0x1000).as_deref(), Some("a"));
        assert_eq!(k.name(0x1010).as_deref(), Some("a+0x10"));
        assert_eq!(k.name(0x2fff).as_deref(), Some("b+0xfff"));
        assert_eq!(k.name(0x3000), None);
        assert_eq!(k.name(0x10), None);
    }
}

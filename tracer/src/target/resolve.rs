//! Function specs → (binary, file offset): `SYMBOL`, `GLOB` or
//! `BINARY:SYMBOL`, matched against raw and demangled names in the target's
//! executable and mapped libraries, including symbols that exist only in a
//! separate debug file (/usr/lib/debug/.build-id/xx/rest.debug or a
//! .gnu_debuglink). Offsets are computed here from the binary's own program
//! headers, so aya never has to find a symbol.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use object::{Object as _, ObjectSegment as _, ObjectSymbol as _, SymbolKind};

use crate::{target::process::ProcessInfo, target::symbolize::demangle};

/// One probe-able function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Func {
    /// Demangled name.
    pub name: String,
    /// The binary as the target maps it.
    pub binary: PathBuf,
    /// The same file as seen from the tracer (through /proc/PID/root).
    pub host_path: PathBuf,
    /// File offset of the first instruction: what the uprobe attaches to.
    pub offset: u64,
}

/// Function symbols of one ELF file: (demangled, raw, vaddr).
struct Symtab {
    funcs: Vec<(String, String, u64)>,
    /// (vaddr, memsz, file offset) of each PT_LOAD.
    loads: Vec<(u64, u64, u64)>,
}

/// The target's mapped ELF files with executable code, executable first.
pub fn binaries(p: &ProcessInfo) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for m in p.maps.iter().filter(|m| m.exec) {
        if let Some(path) = &m.path
            && !out.contains(path)
        {
            out.push(path.clone());
        }
    }
    let exe = crate::target::proc::exe(p.pid);
    out.sort_by_key(|b| Some(b) != exe.as_ref());
    out
}

/// Splits `BINARY:SYMBOL` at a lone ':' (C++ and Rust paths use "::").
pub fn split_spec(spec: &str) -> (Option<&str>, &str) {
    let b = spec.as_bytes();
    for i in 0..b.len() {
        if b[i] == b':' && b.get(i + 1) != Some(&b':') && (i == 0 || b[i - 1] != b':') {
            return (Some(&spec[..i]), &spec[i + 1..]);
        }
    }
    (None, spec)
}

/// Shell-style glob: `*` any run, `?` one character, everything else
/// literal. Hand-written rather than `globset`: symbol names are full of
/// what a path glob gives meaning to — C++'s `operator[]`, Rust's
/// `{{closure}}`, `/` in lambdas — and a user's pattern must match them as
/// written.
pub fn glob(pat: &str, s: &str) -> bool {
    if !pat.contains(['*', '?']) {
        return pat == s;
    }
    let (p, t): (Vec<char>, Vec<char>) = (pat.chars().collect(), s.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Does a symbol match the pattern: raw name, demangled name, or the
/// demangled name without its C++ parameter list.
fn matches(pat: &str, demangled: &str, raw: &str) -> bool {
    let bare = demangled.split('(').next().unwrap_or(demangled);
    glob(pat, demangled) || glob(pat, raw) || glob(pat, bare)
}

pub struct Resolver {
    pid: u32,
    debug_dirs: Vec<PathBuf>,
    tabs: BTreeMap<PathBuf, Option<Symtab>>,
}

impl Resolver {
    pub fn new(pid: u32, debug_dirs: Vec<PathBuf>) -> Self {
        Self {
            pid,
            debug_dirs,
            tabs: BTreeMap::new(),
        }
    }

    /// Every function in `binaries` matching `pattern`, deduplicated by
    /// offset (aliases such as `__libc_malloc`/`malloc` probe once).
    pub fn find(&mut self, binaries: &[PathBuf], pattern: &str) -> Vec<Func> {
        let mut out: Vec<Func> = Vec::new();
        for bin in binaries {
            let host = crate::target::proc::host_path(self.pid, bin);
            let Some(tab) = self.symtab(&host) else {
                continue;
            };
            for (name, raw, vaddr) in &tab.funcs {
                if !matches(pattern, name, raw) {
                    continue;
                }
                let Some(offset) = file_offset(&tab.loads, *vaddr) else {
                    continue;
                };
                if out.iter().any(|f| f.binary == *bin && f.offset == offset) {
                    continue;
                }
                out.push(Func {
                    name: name.clone(),
                    binary: bin.clone(),
                    host_path: host.clone(),
                    offset,
                });
            }
        }
        out
    }

    /// The names closest to `pattern` (edit distance), for an error message.
    pub fn closest(&mut self, binaries: &[PathBuf], pattern: &str, n: usize) -> Vec<String> {
        let want = pattern.replace(['*', '?'], "");
        let mut all: Vec<(usize, String)> = Vec::new();
        for bin in binaries {
            let host = crate::target::proc::host_path(self.pid, bin);
            if let Some(tab) = self.symtab(&host) {
                for (name, _, _) in &tab.funcs {
                    let bare = name.split('(').next().unwrap_or(name);
                    all.push((distance(&want, bare), bare.to_string()));
                }
            }
        }
        all.sort();
        all.dedup_by(|a, b| a.1 == b.1);
        all.into_iter().take(n).map(|(_, s)| s).collect()
    }

    fn symtab(&mut self, host: &Path) -> Option<&Symtab> {
        let dirs = self.debug_dirs.clone();
        self.tabs
            .entry(host.to_path_buf())
            .or_insert_with(|| load_symtab(host, &dirs))
            .as_ref()
    }
}

fn load_symtab(path: &Path, debug_dirs: &[PathBuf]) -> Option<Symtab> {
    let file = crate::target::elf::open(path)?;
    let elf = file.parse()?;
    let loads = elf
        .segments()
        .map(|s| (s.address(), s.size(), s.file_range().0))
        .collect();
    let mut funcs = Vec::new();
    let mut add = |f: &object::File| {
        for s in f.symbols().chain(f.dynamic_symbols()) {
            if s.kind() == SymbolKind::Text
                && s.is_definition()
                && s.address() != 0
                && let Ok(raw) = s.name()
                && !raw.is_empty()
            {
                funcs.push((demangle(raw), raw.to_string(), s.address()));
            }
        }
    };
    add(&elf);
    // Symbols stripped into a separate debug file share the binary's vaddrs.
    if let Some(dbg) = debug_file(&elf, path, debug_dirs)
        && let Some(dfile) = crate::target::elf::open(&dbg)
        && let Some(delf) = dfile.parse()
    {
        log::debug!("symbols of {} also from {}", path.display(), dbg.display());
        add(&delf);
    }
    funcs.sort_by(|a, b| a.2.cmp(&b.2).then(a.0.cmp(&b.0)));
    funcs.dedup();
    Some(Symtab { funcs, loads })
}

/// The separate debug file of an ELF: by build id under each debug dir's
/// `.build-id/xx/rest.debug`, else by .gnu_debuglink next to it or under
/// the debug dir.
fn debug_file(elf: &object::File, path: &Path, dirs: &[PathBuf]) -> Option<PathBuf> {
    if let Ok(Some(id)) = elf.build_id()
        && id.len() > 1
    {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        for d in dirs {
            let p = d
                .join(".build-id")
                .join(&hex[..2])
                .join(format!("{}.debug", &hex[2..]));
            if p.exists() {
                return Some(p);
            }
        }
    }
    if let Ok(Some((name, _crc))) = elf.gnu_debuglink() {
        let name = String::from_utf8_lossy(name).into_owned();
        let dir = path.parent()?;
        let mut cands = vec![dir.join(&name), dir.join(".debug").join(&name)];
        for d in dirs {
            cands.push(d.join(dir.strip_prefix("/").unwrap_or(dir)).join(&name));
        }
        return cands.into_iter().find(|p| p.exists() && p != path);
    }
    None
}

/// The file offset of a vaddr, from the PT_LOAD holding it.
fn file_offset(loads: &[(u64, u64, u64)], vaddr: u64) -> Option<u64> {
    loads
        .iter()
        .find(|(v, size, _)| *v <= vaddr && vaddr < v + size)
        .map(|(v, _, off)| vaddr - v + off)
}

/// Levenshtein distance (for "did you mean").
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_takes_symbol_punctuation_literally() {
        assert!(glob(
            "std::vector<int>::operator[]*",
            "std::vector<int>::operator[](unsigned long)"
        ));
        assert!(glob("app::main::{{closure}}", "app::main::{{closure}}"));
        assert!(!glob("app::main::{{closure}}", "app::main::x"));
        assert!(glob("orders::*::assign", "orders::book::assign"));
        assert!(glob("f?o", "foo") && !glob("f?o", "fo"));
    }

    #[test]
    fn specs_split_at_a_lone_colon() {
        assert_eq!(split_spec("malloc"), (None, "malloc"));
        assert_eq!(split_spec("libc:malloc"), (Some("libc"), "malloc"));
        assert_eq!(split_spec("ns::Widget::run"), (None, "ns::Widget::run"));
        assert_eq!(
            split_spec("/opt/app:ns::Widget::*"),
            (Some("/opt/app"), "ns::Widget::*")
        );
    }

    #[test]
    fn globs() {
        assert!(glob("sequencer_*", "sequencer_assign"));
        assert!(glob("*::process", "orders::Book::process"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("*", ""));
        assert!(!glob("seq", "sequencer"));
        assert!(matches(
            "orders::Book::process",
            "orders::Book::process(int)",
            "_ZN…"
        ));
    }

    #[test]
    fn closest_names_by_edit_distance() {
        assert_eq!(distance("sequencer_asign", "sequencer_assign"), 1);
        assert_eq!(distance("", "abc"), 3);
    }

    #[test]
    fn own_function_resolves_to_its_file_offset() {
        // Referenced, so the linker keeps it in the test binary.
        std::hint::black_box(crate::kernel::uprobes::tracer_calibration_target(1));
        let me = ProcessInfo {
            pid: std::process::id(),
            maps: crate::target::process::parse_maps(
                &std::fs::read_to_string("/proc/self/maps").unwrap(),
            ),
            ..Default::default()
        };
        let bins = binaries(&me);
        let mut r = Resolver::new(me.pid, vec![]);
        let found = r.find(&bins, "tracer_calibration_target");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].offset > 0);
        let near = r.closest(&bins, "tracer_calibration_targe", 3);
        assert_eq!(near[0], "tracer_calibration_target");
    }
}

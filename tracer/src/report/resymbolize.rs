//! Naming a saved run's unnamed frames offline (`tracer report
//! --debug-dir DIR`): each `module+0xOFFSET` frame is looked up in the
//! module's separate debug file, found under DIR by build id, debug-link
//! name or file name (and checked by build id), at the virtual address
//! the module's recorded segments give its file offset. The names then
//! replace `module+0xOFFSET` wherever the report used it (labels, call
//! sites, the verdict).

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

use blazesym::symbolize::{Input, Symbolized, Symbolizer, source::Elf, source::Source};
use serde_json::Value;

use super::model::{Frame, Module, Report};
use crate::analyze::build::{frame_label, stripped_note};

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Named {
    /// Distinct unnamed frames (module, offset) before, and those named.
    pub unnamed: usize,
    pub named: usize,
    /// The debug file used per module.
    pub files: BTreeMap<String, PathBuf>,
}

/// The debug file for `m` under `dirs` (then /usr/lib/debug): by build id
/// (`.build-id/ab/cdef….debug`), by its debug-link name, or by the
/// module's file name (an unstripped copy). A candidate with a build id
/// other than the module's is not it.
fn debug_file(m: &Module, dirs: &[PathBuf]) -> Option<PathBuf> {
    let name = Path::new(&m.path).file_name()?.to_owned();
    let mut all: Vec<PathBuf> = dirs.to_vec();
    all.push("/usr/lib/debug".into());
    let mut candidates = Vec::new();
    for d in &all {
        // A build id from the JSON is used only if it is hex.
        if let Some(id) = m
            .build_id
            .as_deref()
            .filter(|id| id.len() > 2 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            candidates.push(
                d.join(".build-id")
                    .join(&id[..2])
                    .join(format!("{}.debug", &id[2..])),
            );
        }
        if let Some(link) = &m.debug_link_name {
            candidates.push(d.join(link));
        }
        candidates.push(d.join(&name));
        let mut debug = name.clone();
        debug.push(".debug");
        candidates.push(d.join(debug));
    }
    candidates.into_iter().find(|c| {
        if !c.is_file() {
            return false;
        }
        let id = crate::target::elf::identity(c);
        id.symtab && (m.build_id.is_none() || id.build_id == m.build_id)
    })
}

/// The virtual address of `file_offset` in a module, from its segments.
fn vaddr(m: &Module, file_offset: u64) -> Option<u64> {
    m.segments
        .iter()
        .find(|[off, _, size]| *off <= file_offset && file_offset < off.saturating_add(*size))
        .and_then(|[off, va, _]| va.checked_add(file_offset - off))
}

/// Names every unnamed frame it can, in place.
pub fn resymbolize(r: &mut Report, dirs: &[PathBuf]) -> anyhow::Result<Named> {
    let mut v = serde_json::to_value(&*r)?;
    let modules: HashMap<String, Module> = r
        .modules
        .iter()
        .map(|m| (m.path.clone(), m.clone()))
        .collect();
    let mut files: HashMap<String, Option<PathBuf>> = HashMap::new();
    let blaze = Symbolizer::builder().enable_demangling(true).build();
    // (module, file offset, return address?) → the frame named.
    let mut found: HashMap<(String, u64, bool), Option<Frame>> = HashMap::new();
    // The old name → its new label, for the strings that used it.
    let mut renamed: BTreeMap<String, String> = BTreeMap::new();
    walk_frames(&mut v, &mut |f: &mut Frame, ret: bool| {
        let (Some(module), Some(off), None) = (f.module.clone(), f.file_offset, &f.symbol) else {
            return;
        };
        let key = (module.clone(), off, ret);
        let named = found
            .entry(key)
            .or_insert_with(|| {
                let m = modules.get(&module)?;
                let file = files
                    .entry(module.clone())
                    .or_insert_with(|| debug_file(m, dirs))
                    .clone()?;
                // A return address is looked up inside its call.
                let lookup = if ret { off.checked_sub(1)? } else { off };
                let va = vaddr(m, lookup)?;
                let src = Source::Elf(Elf::new(&file));
                let Ok(Symbolized::Sym(sym)) = blaze.symbolize_single(&src, Input::VirtOffset(va))
                else {
                    return None;
                };
                let mut g = f.clone();
                g.symbol = Some(sym.name.to_string());
                g.offset = Some(sym.offset as u64 + (off - lookup));
                if let Some(ci) = &sym.code_info {
                    g.file = Some(ci.to_path().display().to_string());
                    g.line = ci.line;
                }
                Some(g)
            })
            .clone();
        if let Some(g) = named {
            renamed.insert(f.name(), frame_label(&g));
            *f = g;
        }
    });
    let unnamed = found.len();
    let named = found.values().filter(|f| f.is_some()).count();
    // Labels, call sites, the verdict: the old names, replaced (longest
    // first, and only whole: `x+0x11` is not in `x+0x112`).
    let mut order: Vec<(&String, &String)> = renamed.iter().collect();
    order.sort_by_key(|a| std::cmp::Reverse(a.0.len()));
    walk_strings(&mut v, &mut |s: &mut String| {
        for (old, new) in &order {
            if s.contains(old.as_str()) {
                *s = replace_whole(s, old, new);
            }
        }
    });
    let mut out: Report = serde_json::from_value(v)?;
    // The modules' counts and notes, again.
    let old_notes: Vec<String> = out.modules.iter().filter_map(stripped_note).collect();
    out.limitations.retain(|l| !old_notes.contains(l));
    let mut per: BTreeMap<String, BTreeMap<u64, bool>> = BTreeMap::new();
    let mut again = serde_json::to_value(&out)?;
    walk_frames(&mut again, &mut |f: &mut Frame, _| {
        if let (Some(m), Some(off)) = (&f.module, f.file_offset) {
            let e = per
                .entry(m.clone())
                .or_default()
                .entry(off)
                .or_insert(false);
            *e |= f.symbol.is_some();
        }
    });
    for m in &mut out.modules {
        if let Some(frames) = per.get(&m.path) {
            m.unnamed = frames.values().filter(|n| !**n).count() as u64;
        }
        if files.get(&m.path).is_some_and(Option::is_some) {
            m.stripped = false;
        }
    }
    out.limitations
        .extend(out.modules.iter().filter_map(stripped_note));
    let used: BTreeMap<String, PathBuf> = files
        .into_iter()
        .filter_map(|(m, f)| Some((m, f?)))
        .collect();
    if named > 0 {
        out.limitations.push(format!(
            "{named} of {unnamed} unnamed frames were named afterwards from debug files ({}); lock kinds, call sites and decisions are those the run was reported with.",
            used.values()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    *r = out;
    Ok(Named {
        unnamed,
        named,
        files: used,
    })
}

/// `s` with every whole occurrence of `old` (not followed by another hex
/// digit or name character) replaced by `new`.
fn replace_whole(s: &str, old: &str, new: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(old) {
        let after = rest[i + old.len()..].chars().next();
        out.push_str(&rest[..i]);
        if after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push_str(old);
        } else {
            out.push_str(new);
        }
        rest = &rest[i + old.len()..];
    }
    out.push_str(rest);
    out
}

/// Calls `f` on every frame of every stack (`frames` arrays), with
/// whether it is a return address (every frame but the innermost).
fn walk_frames(v: &mut Value, f: &mut impl FnMut(&mut Frame, bool)) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "frames"
                    && let Value::Array(a) = x
                {
                    for (i, fr) in a.iter_mut().enumerate() {
                        if let Ok(mut frame) = serde_json::from_value::<Frame>(fr.clone()) {
                            f(&mut frame, i > 0);
                            if let Ok(n) = serde_json::to_value(&frame) {
                                *fr = n;
                            }
                        }
                    }
                } else {
                    walk_frames(x, f);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| walk_frames(x, f)),
        _ => {}
    }
}

/// Calls `f` on every string outside the stacks' frames.
fn walk_strings(v: &mut Value, f: &mut impl FnMut(&mut String)) {
    match v {
        Value::String(s) => f(s),
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k != "frames" {
                    walk_strings(x, f);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| walk_strings(x, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_names_are_replaced() {
        assert_eq!(
            replace_whole("lock@x+0x11 ← x+0x112", "x+0x11", "f (a.c:3)"),
            "lock@f (a.c:3) ← x+0x112"
        );
        assert_eq!(replace_whole("none here", "x+0x1", "y"), "none here");
    }

    #[test]
    fn file_offsets_map_to_addresses_through_the_segments() {
        let m = Module {
            segments: vec![[0, 0, 0x978], [0x1000, 0x401000, 0x47d]],
            ..Default::default()
        };
        assert_eq!(vaddr(&m, 0x11a9), Some(0x4011a9));
        assert_eq!(vaddr(&m, 0x2000), None);
    }
}

//! The report as a pprof mutex profile: gzip'd profile.proto with sample
//! types `contentions/count` and `delay/nanoseconds` (what Go's mutex
//! profile carries), so `go tool pprof`, Pyroscope and Parca open it.
//! Format: https://github.com/google/pprof/blob/main/proto/profile.proto
//!
//! Every sample is (lock, thread, call stack) with labels `lock`,
//! `lock_address`, `lock_kind`, `thread`, and numeric `tid` and `pid`. The
//! exact per-(lock, thread) counts and wait times are spread over that
//! thread's sampled call stacks in proportion to their estimates, and what
//! no stack accounts for goes to an `[unattributed]` frame, so the profile's
//! totals equal the report's exactly. Sites without a per-thread breakdown
//! (frame-pointer sites, reports before schema 1.3) are split per lock and
//! carry no thread label; a lock without call sites (--mode sched) gets one
//! `[unattributed]` sample per thread.

use std::{collections::HashMap, io::Write as _};

use super::{
    folded::parts,
    model::{Frame, Report},
};

/// profile.proto, the messages and fields this writer uses.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub mapping: Vec<Mapping>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
        #[prost(int64, repeated, tag = "13")]
        pub comment: Vec<i64>,
        #[prost(int64, tag = "14")]
        pub default_sample_type: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        /// Leaf first.
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
        #[prost(int64, tag = "3")]
        pub num: i64,
    }

    /// A module as one process mapped it: `memory_start` is where its file
    /// offset `file_offset` was, so pprof turns an address back into the
    /// file offset a symbol file is looked up by.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Mapping {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub memory_start: u64,
        #[prost(uint64, tag = "3")]
        pub memory_limit: u64,
        #[prost(uint64, tag = "4")]
        pub file_offset: u64,
        #[prost(int64, tag = "5")]
        pub filename: i64,
        #[prost(int64, tag = "6")]
        pub build_id: i64,
        #[prost(bool, tag = "7")]
        pub has_functions: bool,
        #[prost(bool, tag = "8")]
        pub has_filenames: bool,
        #[prost(bool, tag = "9")]
        pub has_line_numbers: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub mapping_id: u64,
        #[prost(uint64, tag = "3")]
        pub address: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
    }
}

#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        let mut s = Self::default();
        s.id("");
        s
    }

    fn id(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

fn addr_of(f: &Frame) -> u64 {
    u64::from_str_radix(f.addr.trim_start_matches("0x"), 16).unwrap_or(0)
}

/// The profile message (not yet encoded).
pub fn profile(r: &Report, all_waits: bool) -> proto::Profile {
    let mut b = Builder::new(r);
    for part in parts(r, all_waits) {
        let location_id = match part.frames {
            Some(frames) => frames.iter().map(|f| b.location(Some(f))).collect(),
            None => vec![b.location(None)],
        };
        let label = b.labels(part.lock, part.thread);
        b.p.sample.push(proto::Sample {
            location_id,
            value: vec![part.contentions as i64, part.delay_ns as i64],
            label,
        });
    }
    b.p.string_table = b.strings.table;
    b.p
}

/// A profile being filled: its string table, and one mapping per (module,
/// load bias), one function per (name, file) and one location per
/// distinct frame.
struct Builder<'r> {
    p: proto::Profile,
    strings: Strings,
    build_ids: HashMap<&'r str, &'r str>,
    mappings: HashMap<(String, u64), usize>,
    functions: HashMap<(String, String), u64>,
    locations: HashMap<(String, String, u32), u64>,
}

impl<'r> Builder<'r> {
    /// The profile's sample types, times and comments.
    fn new(r: &'r Report) -> Self {
        let mut strings = Strings::new();
        let mut p = proto::Profile {
            sample_type: vec![
                proto::ValueType {
                    r#type: strings.id("contentions"),
                    unit: strings.id("count"),
                },
                proto::ValueType {
                    r#type: strings.id("delay"),
                    unit: strings.id("nanoseconds"),
                },
            ],
            period: 1,
            ..Default::default()
        };
        p.period_type = Some(p.sample_type[0].clone());
        p.default_sample_type = p.sample_type[1].r#type;
        p.time_nanos = humantime::parse_rfc3339_weak(&r.start_time)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i64);
        p.duration_nanos = (r.duration_s * 1e9) as i64;
        let program = r
            .targets
            .first()
            .map(|t| t.command_line.join(" "))
            .unwrap_or_default();
        for c in [
            format!(
                "tracer {}: futex lock contention of {program}",
                r.tool.version
            ),
            format!("verdict: {}", r.verdict.text),
        ] {
            p.comment.push(strings.id(&c));
        }
        Self {
            p,
            strings,
            build_ids: r
                .modules
                .iter()
                .filter_map(|m| Some((m.path.as_str(), m.build_id.as_deref()?)))
                .collect(),
            mappings: HashMap::new(),
            functions: HashMap::new(),
            locations: HashMap::new(),
        }
    }

    /// The mapping of a frame: its module at one place in one or more
    /// processes, with its build id; 0 for a frame without a module.
    fn mapping(&mut self, f: &Frame) -> u64 {
        let (Some(module), Some(off)) = (&f.module, f.file_offset) else {
            return 0;
        };
        let addr = addr_of(f);
        let Some(bias) = addr.checked_sub(off) else {
            return 0;
        };
        let (p, strings, build_ids) = (&mut self.p, &mut self.strings, &self.build_ids);
        let i = *self
            .mappings
            .entry((module.clone(), bias))
            .or_insert_with(|| {
                p.mapping.push(proto::Mapping {
                    id: p.mapping.len() as u64 + 1,
                    memory_start: bias,
                    memory_limit: addr.saturating_add(1),
                    file_offset: 0,
                    filename: strings.id(module),
                    build_id: strings.id(build_ids.get(module.as_str()).copied().unwrap_or("")),
                    ..Default::default()
                });
                p.mapping.len() - 1
            });
        let m = &mut self.p.mapping[i];
        m.memory_limit = m.memory_limit.max(addr.saturating_add(1));
        m.has_functions |= f.symbol.is_some();
        m.has_filenames |= f.file.is_some();
        m.has_line_numbers |= f.line.is_some();
        m.id
    }

    /// The location of a frame (`None`: the unattributed rest).
    fn location(&mut self, f: Option<&Frame>) -> u64 {
        let (name, file, line, addr) = match f {
            Some(f) => (
                f.name(),
                f.file.clone().unwrap_or_default(),
                f.line.unwrap_or(0),
                addr_of(f),
            ),
            None => ("[unattributed]".to_string(), String::new(), 0, 0),
        };
        let addr_key = f.map(|f| f.addr.clone()).unwrap_or_default();
        if let Some(&id) = self.locations.get(&(addr_key.clone(), name.clone(), line)) {
            return id;
        }
        let (p, strings) = (&mut self.p, &mut self.strings);
        let fid = *self
            .functions
            .entry((name.clone(), file.clone()))
            .or_insert_with(|| {
                let id = p.function.len() as u64 + 1;
                p.function.push(proto::Function {
                    id,
                    name: strings.id(&name),
                    system_name: strings.id(&name),
                    filename: strings.id(&file),
                });
                id
            });
        let id = self.p.location.len() as u64 + 1;
        let mapping_id = f.map_or(0, |f| self.mapping(f));
        self.p.location.push(proto::Location {
            id,
            mapping_id,
            address: addr,
            line: vec![proto::Line {
                function_id: fid,
                line: i64::from(line),
            }],
        });
        self.locations.insert((addr_key, name, line), id);
        id
    }

    /// A sample's labels: its lock, and its thread when it has one.
    fn labels(&mut self, l: &super::model::Lock, thread: Option<(u32, &str)>) -> Vec<proto::Label> {
        let strings = &mut self.strings;
        let mut label = vec![
            proto::Label {
                key: strings.id("lock"),
                str: strings.id(&l.label),
                num: 0,
            },
            proto::Label {
                key: strings.id("lock_address"),
                str: strings.id(&l.address),
                num: 0,
            },
            proto::Label {
                key: strings.id("lock_kind"),
                str: strings.id(&l.kind),
                num: 0,
            },
            proto::Label {
                key: strings.id("pid"),
                str: 0,
                num: i64::from(l.pid),
            },
        ];
        if let Some((tid, name)) = thread {
            label.push(proto::Label {
                key: strings.id("thread"),
                str: strings.id(name),
                num: 0,
            });
            label.push(proto::Label {
                key: strings.id("tid"),
                str: 0,
                num: i64::from(tid),
            });
        }
        label
    }
}

/// The gzip'd profile, as pprof files are stored.
pub fn render(r: &Report, all_waits: bool) -> Vec<u8> {
    let bytes = prost::Message::encode_to_vec(&profile(r, all_waits));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(&bytes);
    gz.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    const FIXTURE: &str = include_str!("../../../tests/fixtures/report-v1.8.json");

    fn decode(bytes: &[u8]) -> proto::Profile {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut raw)
            .unwrap();
        <proto::Profile as prost::Message>::decode(raw.as_slice()).unwrap()
    }

    #[test]
    fn totals_equal_the_reports_and_labels_name_lock_and_thread() {
        let r = crate::report::json::parse(FIXTURE).unwrap();
        let p = decode(&render(&r, false));
        let s = |i: i64| p.string_table[i as usize].as_str();
        assert_eq!(s(0), "");
        let types: Vec<(&str, &str)> = p
            .sample_type
            .iter()
            .map(|t| (s(t.r#type), s(t.unit)))
            .collect();
        assert_eq!(types, [("contentions", "count"), ("delay", "nanoseconds")]);
        let sum = |i: usize| p.sample.iter().map(|x| x.value[i]).sum::<i64>() as u64;
        assert_eq!(
            sum(0),
            r.view_rows(false)
                .into_iter()
                .map(|l| l.contentions)
                .sum::<u64>()
        );
        assert_eq!(
            sum(1),
            r.view_rows(false)
                .into_iter()
                .map(|l| l.wait.total_ns)
                .sum::<u64>()
        );
        // Per lock and per thread too.
        for l in r.view_rows(false) {
            let of_lock = |x: &&proto::Sample| {
                x.label
                    .iter()
                    .any(|lb| s(lb.key) == "lock_address" && s(lb.str) == l.address)
            };
            let delay: i64 = p.sample.iter().filter(of_lock).map(|x| x.value[1]).sum();
            assert_eq!(delay as u64, l.wait.total_ns, "{}", l.label);
            for t in &l.threads {
                let c: i64 = p
                    .sample
                    .iter()
                    .filter(of_lock)
                    .filter(|x| {
                        x.label
                            .iter()
                            .any(|lb| s(lb.key) == "tid" && lb.num == i64::from(t.tid))
                    })
                    .map(|x| x.value[0])
                    .sum();
                assert_eq!(c as u64, t.contentions, "{} tid {}", l.label, t.tid);
            }
        }
        // Stacks resolve to functions, leaf first.
        let fname = |loc: u64| {
            let l = &p.location[loc as usize - 1];
            assert_eq!(l.id, loc);
            let f = &p.function[l.line[0].function_id as usize - 1];
            s(f.name).to_string()
        };
        let stack: Vec<String> = p
            .sample
            .iter()
            .find(|x| x.location_id.len() > 2)
            .unwrap()
            .location_id
            .iter()
            .map(|&id| fname(id))
            .collect();
        let assign = stack.iter().position(|f| f == "sequencer_assign").unwrap();
        let worker = stack.iter().position(|f| f == "sequencer_worker").unwrap();
        assert!(assign < worker, "{stack:?}");
        assert!(p.duration_nanos > 0 && p.time_nanos > 0);
    }

    /// Every location in a file has a mapping naming the file and its
    /// build id, whose start turns the location's address back into the
    /// frame's file offset (what pprof symbolizes by).
    #[test]
    fn locations_carry_mappings_with_build_ids() {
        let r = crate::report::json::parse(FIXTURE).unwrap();
        let p = decode(&render(&r, false));
        assert!(!p.mapping.is_empty());
        let frames: Vec<&Frame> = r
            .locks
            .iter()
            .chain(&r.logical_locks)
            .flat_map(|l| l.unwound_sites.iter().chain(&l.sites))
            .flat_map(|s| &s.frames)
            .filter(|f| f.file_offset.is_some())
            .collect();
        let mut checked = 0;
        for loc in p.location.iter().filter(|l| l.mapping_id > 0) {
            let f = frames
                .iter()
                .find(|f| addr_of(f) == loc.address)
                .expect("a frame per mapped location");
            let m = &p.mapping[loc.mapping_id as usize - 1];
            assert_eq!(
                &p.string_table[m.filename as usize],
                f.module.as_ref().unwrap()
            );
            assert_eq!(
                loc.address - m.memory_start + m.file_offset,
                f.file_offset.unwrap()
            );
            let module = r
                .modules
                .iter()
                .find(|x| Some(&x.path) == f.module.as_ref())
                .unwrap();
            assert_eq!(
                Some(p.string_table[m.build_id as usize].as_str()).filter(|s| !s.is_empty()),
                module.build_id.as_deref()
            );
            checked += 1;
        }
        assert!(checked > 3, "{checked} locations in files");
    }

    #[test]
    fn without_call_sites_every_thread_keeps_its_totals() {
        let mut r = crate::report::json::parse(FIXTURE).unwrap();
        for l in r.locks.iter_mut().chain(r.logical_locks.iter_mut()) {
            l.sites.clear();
            l.unwound_sites.clear();
        }
        let p = decode(&render(&r, false));
        let s = |i: i64| p.string_table[i as usize].as_str();
        for x in &p.sample {
            assert_eq!(x.location_id.len(), 1, "one [unattributed] frame");
            assert!(x.label.iter().any(|lb| s(lb.key) == "tid"));
        }
        let delay: i64 = p.sample.iter().map(|x| x.value[1]).sum();
        assert_eq!(
            delay as u64,
            r.view_rows(false)
                .into_iter()
                .map(|l| l.wait.total_ns)
                .sum::<u64>()
        );
    }
}

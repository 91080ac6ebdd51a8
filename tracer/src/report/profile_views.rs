//! The profile's other views: folded stacks (on-CPU samples, or the
//! wall-clock view in nanoseconds), a pprof CPU profile (`samples/count`,
//! `cpu/nanoseconds`, what `go tool pprof` reads from a Go CPU profile),
//! speedscope, and one self-contained HTML page.

use std::{collections::HashMap, fmt::Write as _, io::Write as _};

use super::{
    chart::esc,
    html::{flame_frame, page, table},
    pprof::proto,
    profile::{Profile, pct},
    units::human_ns,
};

/// A frame name as one folded-stack field (no separator or whitespace).
fn field(s: &str) -> String {
    s.replace(
        |c: char| c == ';' || c.is_whitespace() || c.is_control(),
        "_",
    )
}

/// On-CPU stacks, outermost first under their thread, by samples.
pub fn cpu_stacks(p: &Profile) -> Vec<(Vec<String>, u64)> {
    p.stacks
        .iter()
        .map(|s| {
            let mut path = vec![field(&format!("{} ({})", s.thread, s.tid))];
            path.extend(s.names_root_first().iter().map(|n| field(n)));
            (path, s.samples)
        })
        .collect()
}

/// The wall-clock view's stacks, under their thread, in nanoseconds.
pub fn wall_stacks(p: &Profile) -> Vec<(Vec<String>, u64)> {
    let Some(w) = &p.wall else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in &w.threads {
        for part in t.parts.iter().filter(|x| x.ns > 0) {
            let mut path = vec![field(&format!("{} ({})", t.name, t.tid))];
            path.extend(part.path.iter().map(|n| field(n)));
            out.push((path, part.ns));
        }
    }
    out
}

fn folded_of(stacks: Vec<(Vec<String>, u64)>) -> String {
    let mut o = String::new();
    for (path, w) in stacks {
        let _ = writeln!(o, "{} {w}", path.join(";"));
    }
    o
}

/// Folded stacks: the wall-clock view (ns) when the run has one, else the
/// on-CPU samples (counts).
pub fn folded(p: &Profile) -> String {
    if p.wall.is_some() {
        folded_of(wall_stacks(p))
    } else {
        folded_of(cpu_stacks(p))
    }
}

/// A speedscope file: the on-CPU samples, and the wall-clock view when
/// there is one.
pub fn speedscope(p: &Profile) -> serde_json::Value {
    let mut names: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut profile = |name: &str, unit: &str, stacks: Vec<(Vec<String>, u64)>| {
        let mut samples = Vec::new();
        let mut weights = Vec::new();
        for (path, w) in stacks {
            let ids: Vec<usize> = path
                .into_iter()
                .map(|f| {
                    *index.entry(f.clone()).or_insert_with(|| {
                        names.push(f);
                        names.len() - 1
                    })
                })
                .collect();
            samples.push(ids);
            weights.push(w);
        }
        let total: u64 = weights.iter().fold(0u64, |a, &w| a.saturating_add(w));
        serde_json::json!({
            "type": "sampled", "name": name, "unit": unit,
            "startValue": 0, "endValue": total,
            "samples": samples, "weights": weights,
        })
    };
    let mut profiles = vec![profile("on-CPU samples", "none", cpu_stacks(p))];
    if p.wall.is_some() {
        profiles.push(profile(
            "wall-clock time by thread",
            "nanoseconds",
            wall_stacks(p),
        ));
    }
    serde_json::json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "exporter": format!("tracer {}", p.tool.version),
        "name": format!("CPU profile, {}", p.start_time),
        "activeProfileIndex": 0,
        "shared": { "frames": names.iter().map(|n| serde_json::json!({"name": n})).collect::<Vec<_>>() },
        "profiles": profiles,
    })
}

/// The pprof CPU profile message: one sample per (thread, stack) with
/// values [samples, CPU ns] and labels `thread`, `tid`, `pid`.
pub fn pprof_profile(p: &Profile) -> proto::Profile {
    let mut strings: Vec<String> = vec![String::new()];
    let mut sidx: HashMap<String, i64> = HashMap::new();
    let mut id = |s: &str| -> i64 {
        if s.is_empty() {
            return 0;
        }
        *sidx.entry(s.to_string()).or_insert_with(|| {
            strings.push(s.to_string());
            strings.len() as i64 - 1
        })
    };
    let mut out = proto::Profile {
        sample_type: vec![
            proto::ValueType {
                r#type: id("samples"),
                unit: id("count"),
            },
            proto::ValueType {
                r#type: id("cpu"),
                unit: id("nanoseconds"),
            },
        ],
        period_type: Some(proto::ValueType {
            r#type: id("cpu"),
            unit: id("nanoseconds"),
        }),
        period: p.sampling.period_ns as i64,
        duration_nanos: (p.duration_s * 1e9) as i64,
        time_nanos: humantime::parse_rfc3339(&p.start_time)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i64),
        ..Default::default()
    };
    // What pprof shows first: CPU time, as in a Go CPU profile.
    out.default_sample_type = id("cpu");
    let mut functions: HashMap<(String, String), u64> = HashMap::new();
    let mut locations: HashMap<(String, String, String), u64> = HashMap::new();
    let (thread_k, tid_k, pid_k) = (id("thread"), id("tid"), id("pid"));
    for s in &p.stacks {
        let mut location_id = Vec::new();
        for f in &s.frames {
            let name = f.name();
            let module = f.module.clone().unwrap_or_default();
            let fkey = (name.clone(), f.file.clone().unwrap_or_default());
            let next = functions.len() as u64 + 1;
            let fid = *functions.entry(fkey.clone()).or_insert(next);
            if fid == next {
                out.function.push(proto::Function {
                    id: fid,
                    name: id(&name),
                    system_name: id(&name),
                    filename: id(&fkey.1),
                });
            }
            let lkey = (f.addr.clone(), module, name);
            let next = locations.len() as u64 + 1;
            let lid = *locations.entry(lkey).or_insert(next);
            if lid == next {
                out.location.push(proto::Location {
                    id: lid,
                    mapping_id: 0,
                    address: u64::from_str_radix(f.addr.trim_start_matches("0x"), 16).unwrap_or(0),
                    line: vec![proto::Line {
                        function_id: fid,
                        line: f.line.map_or(0, i64::from),
                    }],
                });
            }
            location_id.push(lid);
        }
        let thread = id(&s.thread);
        out.sample.push(proto::Sample {
            location_id,
            value: vec![s.samples as i64, s.cpu_ns as i64],
            label: vec![
                proto::Label {
                    key: thread_k,
                    str: thread,
                    num: 0,
                },
                proto::Label {
                    key: tid_k,
                    str: 0,
                    num: i64::from(s.tid),
                },
                proto::Label {
                    key: pid_k,
                    str: 0,
                    num: i64::from(s.pid),
                },
            ],
        });
    }
    out.string_table = strings;
    out
}

/// The pprof CPU profile, gzip'd profile.proto.
pub fn pprof(p: &Profile) -> Vec<u8> {
    let bytes = prost::Message::encode_to_vec(&pprof_profile(p));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = gz.write_all(&bytes);
    gz.finish().unwrap_or_default()
}

/// One self-contained page: findings, the top functions, threads, the
/// on-CPU flame graph, the wall-clock flame graph, counters.
pub fn html(p: &Profile) -> String {
    let mut o = String::new();
    let prog = p
        .targets
        .first()
        .map(|t| t.command_line.join(" "))
        .unwrap_or_default();
    let _ = write!(
        o,
        "<h1>CPU profile: {}</h1><p class=\"meta\">{} · {:.1} s · {} samples at {} Hz on {} CPUs · {} lost · tracer {}</p>",
        esc(&prog),
        esc(&p.start_time),
        p.duration_s,
        p.sampling.received,
        p.sampling.frequency_hz,
        p.sampling.cpus,
        p.sampling.lost,
        esc(&p.tool.version)
    );
    if let Some(why) = &p.incomplete {
        let _ = write!(o, "<p class=\"warn\"><b>INCOMPLETE:</b> {}</p>", esc(why));
    }
    o.push_str("<h2>Findings</h2><ul>");
    if p.findings.is_empty() {
        o.push_str("<li>No function over 20% of the CPU time sampled.</li>");
    }
    for f in &p.findings {
        let _ = write!(o, "<li>{}</li>", esc(&f.text));
    }
    o.push_str("</ul><h2>Top functions</h2>");
    let rows: Vec<Vec<String>> = p
        .functions
        .iter()
        .take(50)
        .map(|f| {
            vec![
                pct(f.self_share),
                pct(f.total_share),
                human_ns(f.self_ns),
                esc(&f.name),
                esc(f.module.as_deref().unwrap_or("-")),
                esc(&f
                    .callers
                    .iter()
                    .take(3)
                    .map(|c| format!("{} {}", c.name, pct(c.share)))
                    .collect::<Vec<_>>()
                    .join(", ")),
            ]
        })
        .collect();
    table(
        &mut o,
        "functions",
        &[
            ("self", ""),
            ("total", ""),
            ("self CPU", ""),
            ("function", "l"),
            ("module", "l"),
            ("callers", "l"),
        ],
        &rows,
    );
    o.push_str("<h2>Threads</h2>");
    let rows: Vec<Vec<String>> = p
        .threads
        .iter()
        .map(|t| {
            vec![
                t.tid.to_string(),
                esc(&t.name),
                t.samples.to_string(),
                pct(t.share),
                human_ns(t.sampled_ns),
                t.oncpu_ns.map_or("-".into(), human_ns),
            ]
        })
        .collect();
    table(
        &mut o,
        "threads",
        &[
            ("tid", ""),
            ("name", "l"),
            ("samples", ""),
            ("share", ""),
            ("sampled", ""),
            ("on CPU (exact)", ""),
        ],
        &rows,
    );
    o.push_str("<h2>On-CPU flame graph</h2>");
    match flame_frame(
        &folded_of(cpu_stacks(p)),
        "On-CPU samples",
        "samples",
        "cpu-flamegraph",
    ) {
        Some(f) => o.push_str(&f),
        None => o.push_str("<p>No samples.</p>"),
    }
    if let Some(w) = &p.wall {
        let _ = write!(
            o,
            "<h2>Wall-clock flame graph</h2><p class=\"meta\">{}</p>",
            esc(&w.note)
        );
        if let Some(f) = flame_frame(
            &folded_of(wall_stacks(p)),
            "Wall-clock time by thread",
            "ns",
            "wall-flamegraph",
        ) {
            o.push_str(&f);
        }
    }
    o.push_str("<h2>Counters</h2>");
    if !p.counters.note.is_empty() {
        let _ = write!(o, "<p>{}</p>", esc(&p.counters.note));
    }
    let rows: Vec<Vec<String>> = p
        .counters
        .processes
        .iter()
        .chain(&p.counters.threads)
        .map(|c| {
            let v = |k: &str| c.values.get(k).map_or("-".into(), u64::to_string);
            vec![
                c.pid.to_string(),
                if c.tid == 0 {
                    "(process)".into()
                } else {
                    c.tid.to_string()
                },
                esc(&c.name),
                c.values
                    .get("task_clock_ns")
                    .map_or("-".into(), |n| human_ns(*n)),
                v("context_switches"),
                v("cpu_migrations"),
                v("minor_faults"),
                v("major_faults"),
                c.ipc.map_or("-".into(), |x| format!("{x:.2}")),
                c.cache_miss_rate.map_or("-".into(), pct),
                c.branch_miss_rate.map_or("-".into(), pct),
            ]
        })
        .collect();
    table(
        &mut o,
        "counters",
        &[
            ("pid", ""),
            ("tid", ""),
            ("name", "l"),
            ("task clock", ""),
            ("context switches", ""),
            ("migrations", ""),
            ("minor faults", ""),
            ("major faults", ""),
            ("IPC", ""),
            ("cache misses", ""),
            ("branch misses", ""),
        ],
        &rows,
    );
    page(&format!("tracer profile: {prog}"), &o)
}

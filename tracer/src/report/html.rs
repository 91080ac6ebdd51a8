//! The report as one self-contained HTML page: verdict, per-lock rate chart
//! with the decision lines, wait histograms with p50/p95/p99, where the
//! threads' time went, function latency histograms, and a flame graph of
//! the contended stacks weighted by wait time (inferno). Nothing is fetched
//! at view time: styles and SVG are inline, the flame graph (with its own
//! script, for zoom and search) sits in an `<iframe srcdoc>`.

use std::fmt::Write as _;

use super::{
    chart::{self, Bar, esc},
    folded,
    model::{Decision, Durations, Lock, Report},
    units::{human_count, human_ns, human_rate},
};

pub const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 24px auto; max-width: 1220px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 16px 0 4px; font-family: ui-monospace, monospace; }
.meta { color: #666; font-size: 12.5px; }
.verdict { padding: 12px 16px; border-radius: 6px; margin: 16px 0; border-left: 6px solid; }
.d-recommended { background: #fdecea; border-color: #c9302c; } .d-consider { background: #fff4e0; border-color: #e08e0b; }
.d-not_needed { background: #eaf6ea; border-color: #3c963c; } .d-not_lock_contention { background: #f2f2f2; border-color: #999; }
table { border-collapse: collapse; margin: 6px 0; font-size: 13px; display: block; max-width: 100%; overflow-x: auto; }
th, td { padding: 3px 10px; text-align: right; border-bottom: 1px solid #eee; white-space: nowrap; }
th { background: #f6f6f6; font-weight: 600; } td.l, th.l { text-align: left; }
td.mono { font-family: ui-monospace, monospace; font-size: 12px; white-space: normal; text-align: left; overflow-wrap: anywhere; min-width: 12em; }
td.name { text-align: left; white-space: normal; min-width: 10em; max-width: 20em; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; color: #fff; }
.b-recommended, .b-critical { background: #c9302c; } .b-consider, .b-major { background: #e08e0b; } .b-minor { background: #d4b106; }
.b-not_needed, .b-none { background: #3c963c; } .b-not_lock_contention { background: #999; } .b-warning { background: #5b8fd6; }
.b-improvement { background: #3c963c; } .b-neutral { background: #999; }
svg.chart { max-width: 100%; height: auto; }
.chart text { font: 11px system-ui, sans-serif; fill: #333; } .chart .tick { fill: #777; font-size: 10px; } .chart .marker { font-weight: 600; fill: #444; }
.grid { display: flex; flex-wrap: wrap; gap: 8px 24px; } .cell { flex: 0 1 auto; min-width: 0; }
.flame { width: 100%; border: 1px solid #ddd; box-sizing: border-box; }
.lost { color: #c9302c; }
.note { color: #555; font-size: 12.5px; } ul.notes li { margin: 2px 0; }
.cols { display: flex; gap: 24px; } .cols > div { flex: 1 1 0; min-width: 0; overflow-x: auto; }
"#;

/// Locks in the table (by total wait); charts show fewer.
const TABLE_LOCKS: usize = 50;

pub fn decision_key(d: Decision) -> &'static str {
    match d {
        Decision::Recommended => "recommended",
        Decision::Consider => "consider",
        Decision::NotNeeded => "not_needed",
        Decision::NotLockContention => "not_lock_contention",
    }
}

pub fn decision_text(d: Decision) -> &'static str {
    match d {
        Decision::Recommended => "lock-free recommended",
        Decision::Consider => "consider lock-free",
        Decision::NotNeeded => "lock-free not needed",
        Decision::NotLockContention => "not a lock",
    }
}

pub fn decision_color(d: Decision) -> &'static str {
    match d {
        Decision::Recommended => "#c9302c",
        Decision::Consider => "#e08e0b",
        Decision::NotNeeded => "#3c963c",
        Decision::NotLockContention => "#999999",
    }
}

/// A table: `head` gives each column's title and cell class ("" for a
/// number, right-aligned; "l" left; "mono" code; "name" a wrapping name);
/// the cells are HTML (escape text with `esc`).
pub fn table(o: &mut String, id: &str, head: &[(&str, &str)], rows: &[Vec<String>]) {
    if id.is_empty() {
        o.push_str("<table><tr>");
    } else {
        let _ = write!(o, "<table id=\"{id}\"><tr>");
    }
    for (title, class) in head {
        if class.is_empty() {
            let _ = write!(o, "<th>{}</th>", esc(title));
        } else {
            let _ = write!(o, "<th class=\"l\">{}</th>", esc(title));
        }
    }
    o.push_str("</tr>");
    for row in rows {
        o.push_str("<tr>");
        for (cell, (_, class)) in row.iter().zip(head) {
            if class.is_empty() {
                let _ = write!(o, "<td>{cell}</td>");
            } else {
                let _ = write!(o, "<td class=\"{class}\">{cell}</td>");
            }
        }
        o.push_str("</tr>");
    }
    o.push_str("</table>");
}

/// A decision as a coloured badge (HTML).
pub fn decision_badge(d: Decision) -> String {
    format!(
        "<span class=\"badge b-{}\">{}</span>",
        decision_key(d),
        decision_text(d)
    )
}

/// A whole page around `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n",
        esc(title)
    )
}

pub fn program(r: &Report) -> String {
    command_of(&r.targets)
}

/// The first target's command line, for a title.
pub fn command_of(targets: &[super::model::Target]) -> String {
    targets
        .first()
        .map(|t| t.command_line.join(" "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "(unknown program)".into())
}

fn meta(r: &Report) -> String {
    let pids: Vec<String> = r.targets.iter().map(|t| t.pid.to_string()).collect();
    format!(
        "pid {} · traced {:.1} s from {} · {} · kernel {} · mode {} · tracer {} · schema {}",
        pids.join(","),
        r.duration_s,
        r.start_time,
        r.hostname,
        r.kernel,
        r.mode,
        r.tool.version,
        r.schema_version
    )
}

/// Contentions/s per lock on a log axis, with the two decision lines.
pub fn rate_chart(id: &str, locks: &[&Lock], r: &Report) -> String {
    let bars: Vec<Bar> = locks
        .iter()
        .map(|l| Bar {
            label: l.label.clone(),
            values: vec![(l.contentions_per_s, decision_color(l.decision))],
            title: format!(
                "{}: {}/s, {} ({})",
                l.label,
                human_rate(l.contentions_per_s),
                decision_text(l.decision),
                l.kind
            ),
        })
        .collect();
    chart::hbars(
        id,
        &bars,
        true,
        &[
            (
                r.thresholds.consider_at,
                format!("consider {}/s", human_rate(r.thresholds.consider_at)),
            ),
            (
                r.thresholds.recommend_at,
                format!("recommend {}/s", human_rate(r.thresholds.recommend_at)),
            ),
        ],
        &|v| format!("{}/s", human_rate(v)),
    )
}

/// Table cells of a distribution: total, p50, p95, p99, max.
fn duration_cells(d: &Durations) -> impl Iterator<Item = String> {
    [d.total_ns, d.p50_ns, d.p95_ns, d.p99_ns, d.max_ns]
        .into_iter()
        .map(human_ns)
}

fn locks_table(o: &mut String, locks: &[&Lock]) {
    let rows: Vec<Vec<String>> = locks
        .iter()
        .map(|l| {
            let mut row = vec![
                esc(&l.label),
                esc(&kind_cell(l)),
                human_rate(l.contentions_per_s),
                human_count(l.contentions),
            ];
            row.extend(duration_cells(&l.wait));
            row.extend([
                decision_badge(l.decision),
                esc(l.call_site.as_deref().unwrap_or("-")),
            ]);
            row
        })
        .collect();
    table(
        o,
        "locks",
        &[
            ("lock", "name"),
            ("kind", "l"),
            ("contentions/s", ""),
            ("contentions", ""),
            ("total wait", ""),
            ("p50", ""),
            ("p95", ""),
            ("p99", ""),
            ("max", ""),
            ("decision", "l"),
            ("call site", "mono"),
        ],
        &rows,
    );
}

/// A lock's kind, with its implementation and how many wait channels it
/// spans when it is not one word.
fn kind_cell(l: &Lock) -> String {
    let mut s = l.kind.clone();
    if !l.implementation.is_empty() && l.implementation != "generic" {
        s = format!("{s} ({})", l.implementation);
    }
    if l.channels.len() > 1 {
        s = format!("{s}, {} channels", l.channels.len());
    }
    s
}

/// Where a lock is: its word, or the wait channels of a parked lock.
fn lock_place(l: &Lock) -> String {
    if l.address.is_empty() {
        format!("{} wait channel(s)", l.channels.len())
    } else {
        l.address.clone()
    }
}

fn go_locks_table(o: &mut String, r: &Report) {
    if r.go_locks.is_empty() {
        return;
    }
    o.push_str("<h2>Go locks</h2><p class=\"note\">Goroutine level: contended acquisitions of sync.Mutex and sync.RWMutex per call site, from entry probes on their slow paths (frame-pointer stacks); wait time is not measured.</p>");
    let rows: Vec<Vec<String>> = r
        .go_locks
        .iter()
        .map(|g| {
            vec![
                esc(&g.label),
                human_rate(g.contentions_per_s),
                human_count(g.contentions),
                human_count(g.semaphore),
                decision_badge(g.decision),
                esc(&crate::report::text::stack_path(&g.frames)),
            ]
        })
        .collect();
    table(
        o,
        "go-locks",
        &[
            ("lock", "name"),
            ("contentions/s", ""),
            ("contentions", ""),
            ("to the semaphore", ""),
            ("decision", "l"),
            ("stack", "mono"),
        ],
        &rows,
    );
}

fn classes_table(o: &mut String, r: &Report) {
    if r.lock_classes.is_empty() {
        return;
    }
    o.push_str("<h2>Lock classes</h2><p class=\"note\">Many locks of one type taken at one call site (a sharded table, page latches): decided on their summed rate as well as one by one.</p>");
    let rows: Vec<Vec<String>> = r
        .lock_classes
        .iter()
        .map(|c| {
            let mut row = vec![
                esc(&c.label),
                human_count(c.locks as u64),
                human_rate(c.contentions_per_s),
                human_count(c.contentions),
            ];
            row.extend(duration_cells(&c.wait));
            row.extend([
                decision_badge(c.decision),
                esc(&format!(
                    "{} ({}/s)",
                    c.busiest,
                    human_rate(c.busiest_per_s)
                )),
            ]);
            row
        })
        .collect();
    table(
        o,
        "classes",
        &[
            ("class", "name"),
            ("locks", ""),
            ("contentions/s", ""),
            ("contentions", ""),
            ("total wait", ""),
            ("p50", ""),
            ("p95", ""),
            ("p99", ""),
            ("max", ""),
            ("decision", "l"),
            ("busiest", "mono"),
        ],
        &rows,
    );
}

fn lock_detail(o: &mut String, i: usize, l: &Lock) {
    let _ = write!(
        o,
        "<h3>{} {}</h3><p class=\"note\">{} at {} ({}) · {} waits ({} slept, {} EAGAIN) · {} wake calls{}</p><div class=\"grid\"><div class=\"cell\">",
        esc(&l.label),
        decision_badge(l.decision),
        esc(&kind_cell(l)),
        esc(&lock_place(l)),
        match &l.shared {
            Some(w) => format!(
                "shared memory {} offset {:#x}, by {}",
                esc(w.object.trim_end_matches(" (deleted)")),
                w.offset,
                w.processes
                    .iter()
                    .map(|p| format!("pid {} {} waits, woke {}", p.pid, human_count(p.contentions), human_count(p.woken)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!("pid {}", l.pid),
        },
        human_count(l.contentions),
        human_count(l.outcomes.slept),
        human_count(l.outcomes.eagain),
        human_count(l.wakes.calls),
        // The sleeping waits from the scheduler's view: waiting for the
        // lock, or for a CPU once woken.
        l.sched.as_ref().filter(|s| s.sleeps > 0).map_or(String::new(), |s| format!(
            "<br>sleeping waits: {} · blocked until woken {} · then runnable, waiting for a CPU, {} ({:.0}%) · wake→run p99 {}",
            human_count(s.sleeps),
            human_ns(s.blocked_ns),
            human_ns(s.runnable_ns),
            100.0 * s.runnable_share,
            human_ns(s.wakeup_latency.p99_ns)
        ))
    );
    o.push_str(&chart::histogram(
        &format!("wait-hist-{i}"),
        &l.histogram,
        &[
            (l.wait.p50_ns, "p50"),
            (l.wait.p95_ns, "p95"),
            (l.wait.p99_ns, "p99"),
        ],
        &human_ns,
        decision_color(l.decision),
    ));
    o.push_str("</div><div class=\"cell\">");
    lock_threads_table(o, l);
    o.push_str("</div></div>");
    lock_sites_table(o, l);
}

/// The lock's busiest threads.
fn lock_threads_table(o: &mut String, l: &Lock) {
    let rows: Vec<Vec<String>> = l
        .threads
        .iter()
        .take(6)
        .map(|t| {
            vec![
                esc(&t.name),
                t.tid.to_string(),
                human_count(t.contentions),
                human_ns(t.wait_ns),
                human_ns(t.max_wait_ns),
                human_count(t.wake_calls),
            ]
        })
        .collect();
    table(
        o,
        "",
        &[
            ("thread", "l"),
            ("tid", ""),
            ("waits", ""),
            ("wait", ""),
            ("max", ""),
            ("wakes", ""),
        ],
        &rows,
    );
    if l.threads.len() > 6 {
        let _ = write!(
            o,
            "<p class=\"note\">… and {} more threads</p>",
            l.threads.len() - 6
        );
    }
}

/// The lock's top call sites (the unwound ones when there are any).
fn lock_sites_table(o: &mut String, l: &Lock) {
    let sites = if l.unwound_sites.is_empty() {
        &l.sites
    } else {
        &l.unwound_sites
    };
    let est: u64 = sites.iter().fold(0u64, |a, s| a.saturating_add(s.count));
    let rows: Vec<Vec<String>> = sites
        .iter()
        .take(3)
        .map(|s| {
            let stack: Vec<String> = s
                .frames
                .iter()
                .take(6)
                .map(crate::report::model::Frame::name)
                .collect();
            vec![
                esc(s.call_site.as_deref().unwrap_or("-")),
                format!("{:.0}%", 100.0 * s.count as f64 / est.max(1) as f64),
                s.samples.to_string(),
                esc(&stack.join(" ← ")),
            ]
        })
        .collect();
    if !rows.is_empty() {
        table(
            o,
            "",
            &[
                ("call site", "mono"),
                ("share of waits", ""),
                ("samples", ""),
                ("stack", "mono"),
            ],
            &rows,
        );
    }
}

/// Where each traced thread's time went (scheduler view).
fn offcpu(o: &mut String, r: &Report) {
    let rows: Vec<(String, Vec<f64>)> = r
        .threads
        .iter()
        .filter_map(|t| {
            let s = t.sched.as_ref()?;
            let other = s.sleep_ns.saturating_sub(s.futex_sleep_ns);
            Some((
                format!("{} ({})", t.name, t.tid),
                vec![
                    s.oncpu_ns as f64,
                    s.futex_sleep_ns as f64,
                    other as f64,
                    s.runnable_ns as f64,
                ],
            ))
        })
        .take(24)
        .collect();
    if rows.is_empty() {
        o.push_str("<p class=\"note\">No scheduler view in this run.</p>");
        return;
    }
    o.push_str(&chart::stacked(
        "offcpu",
        &rows,
        &[
            ("on CPU", "#4a7bd0"),
            ("futex wait (sleeping)", "#c9302c"),
            ("other sleep", "#b9b9b9"),
            ("runnable (waiting for a CPU)", "#e08e0b"),
        ],
    ));
    let rows: Vec<Vec<String>> = r
        .threads
        .iter()
        .filter_map(|t| {
            let s = t.sched.as_ref()?;
            let other: Vec<String> = s
                .other_sleep
                .iter()
                .take(3)
                .map(|x| format!("{} {}", x.syscall, human_ns(x.sleep_ns)))
                .collect();
            Some(vec![
                esc(&t.name),
                t.tid.to_string(),
                human_ns(s.oncpu_ns),
                human_ns(s.futex_sleep_ns),
                human_ns(s.sleep_ns.saturating_sub(s.futex_sleep_ns)),
                human_ns(s.runnable_ns),
                human_ns(s.wakeup_latency.p99_ns),
                esc(&other.join(", ")),
            ])
        })
        .collect();
    table(
        o,
        "threads",
        &[
            ("thread", "l"),
            ("tid", ""),
            ("on CPU", ""),
            ("futex sleep", ""),
            ("other sleep", ""),
            ("runnable", ""),
            ("wake→run p99", ""),
            ("other sleep in", "mono"),
        ],
        &rows,
    );
}

fn functions(o: &mut String, r: &Report) {
    let fns: Vec<_> = r.functions.iter().filter(|f| f.calls > 0).collect();
    if fns.is_empty() {
        return;
    }
    o.push_str("<h2>Probed functions</h2>");
    let rows: Vec<Vec<String>> = fns
        .iter()
        .map(|f| {
            let mut row = vec![
                esc(&f.name),
                esc(&f.role),
                human_count(f.calls),
                human_rate(f.calls_per_s),
            ];
            row.extend(duration_cells(&f.latency));
            row.push(f.bytes.map_or("-".into(), human_count));
            row
        })
        .collect();
    table(
        o,
        "functions",
        &[
            ("function", "mono"),
            ("role", "l"),
            ("calls", ""),
            ("calls/s", ""),
            ("total", ""),
            ("p50", ""),
            ("p95", ""),
            ("p99", ""),
            ("max", ""),
            ("bytes", ""),
        ],
        &rows,
    );
    if let Some(c) = &r.probe_cost {
        let _ = write!(
            o,
            "<p class=\"note\">Probe cost: ≈{} per probed call (entry + return, measured at start-up) × {} calls ≈ {} of the targets' {} on-CPU time ({:.1}%); attached {:.0}% of the run in {} window(s).</p>",
            human_ns(c.per_call_ns as u64),
            human_count(c.calls),
            human_ns(c.estimated_overhead_ns),
            human_ns(c.target_cpu_ns),
            100.0 * c.estimated_share,
            100.0 * c.attached_fraction,
            c.windows
        );
    }
    o.push_str("<div class=\"grid\">");
    for (i, f) in fns.iter().take(12).enumerate() {
        let _ = write!(o, "<div class=\"cell\"><h3>{}</h3>", esc(&f.name));
        o.push_str(&chart::histogram(
            &format!("fn-hist-{i}"),
            &f.histogram,
            &[
                (f.latency.p50_ns, "p50"),
                (f.latency.p95_ns, "p95"),
                (f.latency.p99_ns, "p99"),
            ],
            &human_ns,
            "#4a7bd0",
        ));
        o.push_str("</div>");
    }
    o.push_str("</div>");
}

/// The contended stacks as an inferno flame graph in an `<iframe srcdoc>`
/// (its script finds "the first svg" and fixed element ids, so it gets a
/// document of its own). None when no lock waited.
pub fn flamegraph(r: &Report, title: &str, all_waits: bool) -> Option<String> {
    flame_frame(
        &folded::render(r, all_waits),
        title,
        "ns of wait",
        "flamegraph",
    )
}

/// Folded stacks ("a;b;c weight" lines) as an inferno flame graph in an
/// `<iframe srcdoc>` with element id `id`; `unit` names the weights.
pub fn flame_frame(folded: &str, title: &str, unit: &str, id: &str) -> Option<String> {
    if folded.is_empty() {
        return None;
    }
    // inferno adds the weights in a usize: scale them so that the total
    // fits (a run's total wait is far below this; a crafted report is not).
    const LIMIT: u128 = 1 << 62;
    let weight = |l: &str| {
        l.rsplit_once(' ')
            .and_then(|(_, w)| w.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let total: u128 = folded.lines().map(|l| u128::from(weight(l))).sum();
    let (folded, unit) = if total > LIMIT {
        let div = (total / LIMIT + 1) as u64;
        let scaled: String = folded
            .lines()
            .filter_map(|l| {
                let (stack, w) = l.rsplit_once(' ')?;
                Some(format!("{stack} {}\n", w.parse::<u64>().ok()? / div))
            })
            .collect();
        (scaled, format!("× {div} {unit}"))
    } else {
        (folded.to_string(), unit.to_string())
    };
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title.to_string();
    opts.count_name = unit;
    opts.image_width = Some(1180);
    opts.hash = true;
    // Frames under half a pixel are invisible: leaving them out keeps a
    // run with thousands of locks to a page of reasonable size.
    opts.min_width = 0.5;
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut opts, folded.lines(), &mut svg).ok()?;
    let svg = String::from_utf8(svg).ok()?;
    let start = svg.find("<svg")?;
    let svg = &svg[start..];
    let height = svg
        .split_once("height=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .and_then(|(h, _)| h.parse::<f64>().ok())
        .unwrap_or(400.0);
    let doc = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>body{{margin:0}}</style></head><body>{svg}</body></html>"
    );
    Some(format!(
        "<iframe class=\"flame\" id=\"{id}\" title=\"flame graph\" style=\"height:{}px\" srcdoc=\"{}\"></iframe>",
        height.ceil() + 4.0,
        esc(&doc)
    ))
}

pub fn render(r: &Report, all_waits: bool) -> String {
    let mut o = String::new();
    let prog = program(r);
    heading(&mut o, r, &prog);
    go_locks_table(&mut o, r);
    classes_table(&mut o, r);
    locks_section(&mut o, r, all_waits);
    o.push_str("<h2>Where the time goes</h2><p class=\"note\">Each traced thread's time from the scheduler hooks: on CPU, asleep in a futex wait, asleep elsewhere, and runnable but waiting for a CPU.</p>");
    offcpu(&mut o, r);

    functions(&mut o, r);

    if let Some(f) = flamegraph(r, "Lock wait by call stack", all_waits) {
        o.push_str("<h2>Flame graph</h2><p class=\"note\">Contended call stacks weighted by wait time: each lock's total wait spread over its sampled call sites, the rest under [unattributed]. Click to zoom, Ctrl-F to search.</p>");
        o.push_str(&f);
    }
    kernel_locks_table(&mut o, r);
    events_and_notes(&mut o, r);
    page(&format!("tracer: {prog}"), &o)
}

/// The title, the run's facts, the verdict and what was not traced.
fn heading(o: &mut String, r: &Report, prog: &str) {
    let _ = write!(
        o,
        "<h1>Lock contention: {}</h1><div class=\"meta\">{}</div>",
        esc(prog),
        esc(&meta(r))
    );
    let _ = write!(
        o,
        "<div class=\"verdict d-{}\" id=\"verdict\"><b>{}</b><br>{}</div>",
        decision_key(r.verdict.decision),
        esc(decision_text(r.verdict.decision)),
        esc(&r.verdict.text)
    );
    for note in r.untraced_notes() {
        let _ = write!(
            o,
            "<p class=\"untraced\"><b>Untraced:</b> {}</p>",
            esc(&note)
        );
    }
}

/// The locks: rate chart, table, per-program groups and each top lock's
/// wait times.
fn locks_section(o: &mut String, r: &Report, all_waits: bool) {
    o.push_str("<h2>Locks</h2>");
    let locks: Vec<&Lock> = r.view_rows(all_waits);
    let hidden: Vec<&Lock> = r
        .lock_rows()
        .iter()
        .filter(|l| !all_waits && l.decision == Decision::NotLockContention)
        .collect();
    if !hidden.is_empty() {
        let waits: u64 = hidden.iter().map(|l| l.contentions).sum();
        let _ = write!(
            o,
            "<p class=\"note\" id=\"not-locks\">Not locks: {} waits on {} condition, event or runtime channels, not contention (drawn with --all-waits; all in the JSON report).</p>",
            human_count(waits),
            human_count(hidden.len() as u64)
        );
    }
    if locks.is_empty() {
        o.push_str("<p>No futex waits were seen: nothing was contended.</p>");
    } else {
        let _ = write!(
            o,
            "<p class=\"note\">Contentions per second (log scale), coloured by decision: under {}/s lock-free is not needed, {}–{}/s consider it, over {}/s it is recommended.</p>",
            human_rate(r.thresholds.consider_at),
            human_rate(r.thresholds.consider_at),
            human_rate(r.thresholds.recommend_at),
            human_rate(r.thresholds.recommend_at)
        );
        let charted: Vec<&Lock> = locks.iter().copied().take(20).collect();
        o.push_str(&rate_chart("rates", &charted, r));
        locks_table(o, &locks[..locks.len().min(TABLE_LOCKS)]);
        if locks.len() > TABLE_LOCKS {
            let _ = write!(
                o,
                "<p class=\"note\">… and {} more locks, lower in decision or rate (all of them are in the JSON report).</p>",
                locks.len() - TABLE_LOCKS
            );
        }
        lock_groups_table(o, r);
        o.push_str("<h2>Wait times</h2><p class=\"note\">Per lock: how long each futex wait lasted, with p50, p95 and p99 marked; the threads that waited and the call sites they waited from.</p>");
        for (i, l) in locks.iter().take(8).enumerate() {
            lock_detail(o, i, l);
        }
    }
}

/// Locks every process of a program has its own copy of (forked workers).
fn lock_groups_table(o: &mut String, r: &Report) {
    if r.lock_groups.is_empty() {
        return;
    }
    o.push_str("<h3>One lock in many processes</h3><p class=\"note\">Each process of these programs has its own copy of the lock (forked workers): the rows above are per process; each group is decided on its busiest process, not on the sum.</p>");
    let rows: Vec<Vec<String>> = r
        .lock_groups
        .iter()
        .map(|g| {
            vec![
                esc(&g.label),
                esc(g.program_name()),
                human_rate(g.contentions_per_s),
                format!("pid {} at {}/s", g.busiest_pid, human_rate(g.busiest_per_s)),
                decision_badge(g.decision),
            ]
        })
        .collect();
    table(
        o,
        "lock-groups",
        &[
            ("lock", "name"),
            ("program", "l"),
            ("contentions/s, all", ""),
            ("busiest", "l"),
            ("decision", "l"),
        ],
        &rows,
    );
}

fn kernel_locks_table(o: &mut String, r: &Report) {
    if r.kernel_locks.is_empty() {
        return;
    }
    o.push_str("<h2>Kernel locks</h2>");
    let rows: Vec<Vec<String>> = r
        .kernel_locks
        .iter()
        .take(15)
        .map(|k| {
            vec![
                esc(k.symbol.as_deref().unwrap_or(&k.address)),
                esc(&k.kind),
                human_count(k.contentions),
                human_ns(k.total_ns),
                human_ns(k.avg_ns),
                human_ns(k.max_ns),
                esc(&super::text::kernel_lock_processes(k)),
            ]
        })
        .collect();
    table(
        o,
        "kernel-locks",
        &[
            ("lock", "l"),
            ("kind", "l"),
            ("contentions", ""),
            ("total", ""),
            ("avg", ""),
            ("max", ""),
            ("processes", "l"),
        ],
        &rows,
    );
}

/// Every event and drop counter, and the limitations.
fn events_and_notes(o: &mut String, r: &Report) {
    o.push_str("<h2>Events and drops</h2><p class=\"note\">Every drop counter, always: a non-zero one is measured data that was lost or left unattributed.</p><div class=\"grid\"><div class=\"cell\">");
    let counts = |m: &std::collections::BTreeMap<String, u64>, flag: bool| -> Vec<Vec<String>> {
        m.iter()
            .map(|(k, v)| {
                let n = human_count(*v);
                let n = if flag && *v > 0 {
                    format!("<b class=\"lost\">{n}</b>")
                } else {
                    n
                };
                vec![esc(k), n]
            })
            .collect()
    };
    table(
        o,
        "events",
        &[("event", "l"), ("count", "")],
        &counts(&r.events, false),
    );
    o.push_str("</div><div class=\"cell\">");
    table(
        o,
        "drops",
        &[("drop", "l"), ("count", "")],
        &counts(&r.drops, true),
    );
    o.push_str("</div></div>");
    o.push_str("<ul class=\"notes\">");
    for n in &r.limitations {
        let _ = write!(o, "<li class=\"note\">{}</li>", esc(n));
    }
    o.push_str("</ul>");
}

#[cfg(test)]
mod tests {
    const FIXTURE: &str = include_str!("../../../tests/fixtures/report-v1.8.json");

    #[test]
    fn page_has_every_chart_and_no_outside_reference() {
        let r = crate::report::json::parse(FIXTURE).unwrap();
        let html = super::render(&r, false);
        for id in [
            "id=\"rates\"",
            "id=\"wait-hist-0\"",
            "id=\"offcpu\"",
            "id=\"fn-hist-0\"",
            "id=\"flamegraph\"",
            "id=\"drops\"",
        ] {
            assert!(html.contains(id), "{id} missing");
        }
        // The decision lines are drawn at the thresholds.
        assert!(html.contains("consider 100/s") && html.contains("recommend 1,000/s"));
        // No network at view time: nothing loads from elsewhere.
        for bad in ["src=\"http", "href=\"http", "url(http", "@import"] {
            assert!(!html.contains(bad), "{bad}");
        }
        // Every lock is in the table; the joins are not locks, summed up
        // in one line unless every wait is asked for.
        for l in r.view_rows(false) {
            assert!(html.contains(&super::esc(&l.label)), "{}", l.label);
        }
        let join = r.logical_locks.iter().find(|l| l.kind == "wait").unwrap();
        assert!(html.contains("id=\"not-locks\""));
        assert!(!html.contains(&super::esc(&join.label)), "{}", join.label);
        let all = super::render(&r, true);
        assert!(all.contains(&super::esc(&join.label)));
        assert!(!all.contains("id=\"not-locks\""));
    }
}

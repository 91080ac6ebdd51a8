//! Command-line interface (clap derive): doc comments are the help text.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "tracer",
    version,
    about = "Which locks in a program are contended, how badly, where, and whether a lock-free redesign is worth it.",
    after_help = "Run `tracer contention --help` for the main command.\nExit codes: docs/exit-codes.md."
)]
pub struct Cli {
    /// More detail on stderr: debug logs, and the verifier log when the
    /// kernel rejects a program.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Permission bits (octal) of the files tracer writes: reports, pages,
    /// baselines. They hold the target's command line, so 600 by default.
    #[arg(long, global = true, value_name = "MODE", default_value = "600", value_parser = parse_mode)]
    pub file_mode: u32,

    /// The largest report `report`, `compare` and `baseline` read, e.g.
    /// 512M or 2G (suffixes K, M, G).
    #[arg(long, global = true, value_name = "SIZE", default_value = "512M", value_parser = parse_size)]
    pub max_input_size: u64,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Trace futex contention of a running process or a command, and print a
    /// contention decision report.
    #[command(after_help = CONTENTION_EXAMPLES)]
    Contention(ContentionArgs),
    /// Sample where the target's CPU time goes (on-CPU stacks, unwound
    /// with .eh_frame), and with --wall where all of its time goes.
    #[command(after_help = PROFILE_EXAMPLES)]
    Profile(ProfileArgs),
    /// Compare runs (JSON reports, or JSON profiles) and give a regression
    /// verdict, with an exit code for CI.
    #[command(after_help = COMPARE_EXAMPLES)]
    Compare(CompareArgs),
    /// Keep baseline runs (reports or profiles) under a name, to compare
    /// later runs with.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Re-render a saved run (JSON report) in another format.
    Report(ReportArgs),
    /// Trace matching processes continuously, in windows, and serve the
    /// numbers over HTTP: Prometheus metrics, pprof mutex profiles and the
    /// last window's report.
    #[command(after_help = AGENT_EXAMPLES)]
    Agent(AgentArgs),
    /// Each metric over a baseline's last saved runs, with its noise band,
    /// flagging drift: a monotonic slide no single comparison catches.
    Trend(TrendArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a man page (roff): tracer(1), or with COMMAND that command's
    /// page, e.g. `tracer man contention > tracer-contention.1`.
    Man {
        /// contention, compare, baseline, report or completions.
        command: Option<String>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// The run, as written by `tracer contention --json`.
    pub run: PathBuf,
    /// text: the contention decision report; json: the report re-serialized
    /// at this tracer's schema; html: one self-contained page with charts
    /// and a flame graph; folded: stacks weighted by wait time (ns) for
    /// flamegraph.pl and inferno; pprof: a gzip'd profile.proto mutex
    /// profile (contentions/count, delay/nanoseconds) for go tool pprof,
    /// Pyroscope and Parca; speedscope: the folded stacks as a speedscope
    /// file.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Write to FILE instead of stdout (atomically; never through a link).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Locks and threads listed in the text report.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = parse_top)]
    pub top: usize,
    /// Also list the condition-variable, join, park and runtime waits that
    /// are not locks (text: otherwise one line; folded and pprof:
    /// otherwise locks only).
    #[arg(long)]
    pub all_waits: bool,
    /// One row per process for a lock every process of a program has its
    /// own copy of (forked workers); otherwise one row per program, decided
    /// on its busiest process.
    #[arg(long)]
    pub per_process: bool,
    /// Name the run's unnamed (`module+0xOFFSET`) frames from separate
    /// debug files under DIR (by build id in DIR/.build-id/, by debug-link
    /// name, or an unstripped copy by file name); /usr/lib/debug is always
    /// searched. Repeatable.
    #[arg(long, value_name = "DIR")]
    pub debug_dir: Vec<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Json,
    Html,
    Folded,
    Pprof,
    Speedscope,
}

const COMPARE_EXAMPLES: &str = "\
EXAMPLES:
    tracer compare base.json current.json                 one run per side
    tracer compare -b b1.json -b b2.json -b b3.json -c c1.json -c c2.json -c c3.json
    tracer compare --baseline main current.json --ci      fail (exit 9) on a minor or worse regression
    tracer compare base.json current.json --markdown pr-comment.md --json compare.json
    tracer compare base.json current.json --html compare.html
    tracer compare base-profile.json current-profile.json --ci   profiles: per-function CPU shares

Severity of a change: warning 5–10%, minor 10–20%, major 20–50%, critical over
50% (--warning/--minor/--major/--critical, or per metric in --thresholds FILE).
With several runs per side a change must also stand out of the noise
(Mann-Whitney U p < 0.05 and a shift larger than either side's CV).
Exit codes: 0 no regression at or above --fail-on, 9 a regression, 8 an
unusable input, 2 a bad command line.";

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// BASE.json CURRENT.json (one run per side). For several runs per side
    /// use --base and --current.
    #[arg(value_name = "FILE", num_args = 0..=2)]
    pub files: Vec<PathBuf>,

    /// A base run (repeatable).
    #[arg(short, long = "base", value_name = "FILE")]
    pub base: Vec<PathBuf>,

    /// A current run (repeatable).
    #[arg(short, long = "current", value_name = "FILE")]
    pub current: Vec<PathBuf>,

    /// Use the named baseline (`tracer baseline save`) as the base side.
    #[arg(long, value_name = "NAME", conflicts_with = "base")]
    pub baseline: Option<String>,

    /// Exit 9 when a regression at or above this severity is found.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<crate::compare::Severity>,

    /// CI mode: --fail-on minor (a warning alone does not fail).
    #[arg(long, conflicts_with = "fail_on")]
    pub ci: bool,

    /// Percent change from which a change is a warning.
    #[arg(long, default_value_t = 5.0)]
    pub warning: f64,
    /// Percent change from which it is minor.
    #[arg(long, default_value_t = 10.0)]
    pub minor: f64,
    /// Percent change from which it is major (up to --critical inclusive).
    #[arg(long, default_value_t = 20.0)]
    pub major: f64,
    /// Percent change above which it is critical.
    #[arg(long, default_value_t = 50.0)]
    pub critical: f64,

    /// Thresholds for one metric: METRIC=WARNING,MINOR,MAJOR,CRITICAL
    /// (percent), e.g. wait_p99_ns=15,25,50,100. Repeatable; overrides the
    /// file.
    #[arg(long, value_name = "METRIC=W,MI,MA,CR")]
    pub metric_threshold: Vec<String>,

    /// Thresholds per metric from a TOML (.toml) or JSON file:
    /// `[default]` and `[metrics.wait_p99_ns]` tables with warning, minor,
    /// major, critical.
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,

    /// Also write the comparison as JSON (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Also write a Markdown summary for a pull-request comment (`-` for
    /// stdout).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,

    /// Also write both sides on one self-contained HTML page: paired charts
    /// and every change with its severity coloured (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// List every metric, not only those past the warning threshold.
    #[arg(long)]
    pub all: bool,

    /// Compare runs of different programs anyway.
    #[arg(long)]
    pub allow_different_programs: bool,

    /// Where named baselines live (default: $TRACER_BASELINE_DIR, else
    /// .tracer/baselines under the current directory).
    #[arg(long, value_name = "DIR")]
    pub baseline_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum BaselineCommand {
    /// Store a run as the named baseline (after checking it is a usable
    /// report or profile). NAME defaults to the traced program's name.
    Save {
        /// The run (JSON report or profile) to keep.
        run: PathBuf,
        #[arg(long)]
        name: Option<String>,
        /// Where baselines live (see `tracer compare --help`).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The commit the run belongs to (default: $GITHUB_SHA,
        /// $CI_COMMIT_SHA, or `git rev-parse HEAD` here), kept in the
        /// name's history for `tracer trend`.
        #[arg(long, value_name = "SHA")]
        commit: Option<String>,
        /// Runs kept in the name's history (the oldest are removed).
        #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        keep: u64,
    },
    /// List the baselines, or summarize one.
    Show {
        name: Option<String>,
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

const CONTENTION_EXAMPLES: &str = "\
EXAMPLES:
    tracer contention --pid 4242 --duration 30s          trace a running process for 30 s
    tracer contention --pid 4242,4243 --json run.json    two processes, report also as JSON
    tracer contention --html run.html -- ./bench         also a page with charts and a flame graph
    tracer contention -- ./broker --config x.toml        launch and trace from the first instruction
    tracer contention --consider-at 50 --recommend-at 500 --pid 4242

Without --duration, tracing runs until Ctrl-C, SIGTERM, or the target exits;
the full report is printed in every case. Needs root (or CAP_BPF+CAP_PERFMON).
Exit codes: 0 report, 2 usage, 3 privileges, 4 kernel/system, 5 target,
6 program load/attach, 7 output, 1 internal (docs/exit-codes.md).";

const PROFILE_EXAMPLES: &str = "\
EXAMPLES:
    tracer profile --pid 4242 --duration 30s             top functions, threads, findings
    tracer profile -F 999 --json prof.json -- ./bench    launch, sample at 999 Hz, keep the JSON
    tracer profile --wall --html wall.html -- ./bench    each thread's time: CPU, lock waits, sleeps
    tracer report prof.json --format pprof -o cpu.pb.gz  for go tool pprof (also folded, speedscope)
    tracer compare base-prof.json prof.json              per-function CPU share changes

The lock and target options are those of `tracer contention` (--wall traces
futex waits as it does). Needs root (or CAP_BPF+CAP_PERFMON).";

/// `tracer profile`: the sampling options, then every option of
/// `tracer contention` (the targets, duration, outputs, --repeat, and the
/// lock options the wall-clock view uses).
#[derive(Args, Debug, Clone)]
pub struct ProfileArgs {
    /// Samples per second per CPU (the cpu-clock event's frequency).
    #[arg(short = 'F', long, value_name = "HZ", default_value_t = 99, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub frequency: u64,

    /// Also trace futex waits and build the wall-clock view: each thread's
    /// traced time split into on-CPU stacks, lock waits (under their lock
    /// and call site), other sleeps by syscall, and runnable time.
    #[arg(long)]
    pub wall: bool,

    /// How many functions the text report lists (JSON has all).
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = parse_top)]
    pub functions: usize,

    #[command(flatten)]
    pub trace: ContentionArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ContentionArgs {
    /// Process id(s) to trace, comma-separated (all their threads, including
    /// threads created later).
    #[arg(
        short,
        long,
        value_delimiter = ',',
        conflicts_with = "command",
        required_unless_present = "command"
    )]
    pub pid: Vec<i32>,

    /// How long to trace: 30s, 500ms, 2m, 1h, or plain seconds (at most a
    /// year). Default: until Ctrl-C, SIGTERM, SIGHUP or the target exits.
    #[arg(short, long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Also write the report as versioned JSON to FILE (atomically, never
    /// through a link; `-` for stdout, the text report then goes to
    /// stderr).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Also write the report as one self-contained HTML page (charts and a
    /// flame graph) to FILE (`-` for stdout). Other views (pprof, folded,
    /// speedscope) come from the JSON: `tracer report RUN.json --format …`.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Contentions per second at which a lock-free redesign is worth
    /// considering.
    #[arg(long, value_name = "RATE", default_value_t = 100.0, value_parser = parse_rate)]
    pub consider_at: f64,

    /// Contentions per second above which a lock-free redesign is
    /// recommended (above --consider-at).
    #[arg(long, value_name = "RATE", default_value_t = 1000.0, value_parser = parse_rate)]
    pub recommend_at: f64,

    /// How many locks and threads to list in the text report (JSON has all).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = parse_top)]
    pub top: usize,

    /// Also list, in the text report, the condition-variable, join, park
    /// and runtime waits that are not locks (otherwise summed up in one
    /// line).
    #[arg(long)]
    pub all_waits: bool,

    /// One row per process for a lock every process of a program has its
    /// own copy of (forked workers); otherwise one row per program, decided
    /// on its busiest process.
    #[arg(long)]
    pub per_process: bool,

    /// Capacity of the kernel's per-(lock, thread) map (the histogram and
    /// run-queue maps get 4× as many entries). A run that fills it loses
    /// waits and is reported INCOMPLETE (exit 10), with the size to use.
    /// Entries of exited threads are evicted as they exit. Kernel memory
    /// is preallocated: about 400 bytes per entry in all.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_LOCKS, value_parser = parse_max_locks)]
    pub max_locks: u32,

    /// Call-site sampling: after the first 64 waits of a thread on a lock,
    /// take a user stack for one wait in N (a power of two; 1 = every wait).
    /// Site counts are scaled by N, so they stay estimates of all waits;
    /// lock and thread counts are always exact.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = parse_power_of_two)]
    pub stack_every: u64,

    /// full: futex syscall tracepoints (every wait, EAGAIN included, with
    /// call sites) plus the scheduler hooks. sched: no syscall tracepoints
    /// at all (no cost on any syscall); futex waits are seen when they
    /// block, from the saved registers at switch-out, so waits that never
    /// slept (EAGAIN) are missed; call sites come from the blocked
    /// waiters' stacks, unwound there.
    #[arg(long, value_enum, default_value_t = Mode::Full)]
    pub mode: Mode,

    /// Do not follow the processes the targets fork from now on (followed
    /// by default, with --pid as with a command).
    #[arg(long)]
    pub no_follow: bool,

    /// With --pid: also trace the target's descendants already running (a
    /// server's forked workers). Without it, the report lists them as
    /// untraced.
    #[arg(long, requires = "pid")]
    pub children: bool,

    /// True call sites: unwind this many sampled waits per second per
    /// (lock, thread), after its first 8, with the binaries' .eh_frame
    /// (each copies up to 16 KiB of user stack). 0: frame pointers only,
    /// which lose the caller of pthread_mutex_lock inside glibc.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub unwind_rate: u64,

    /// Probe the target's own functions, entry and return: SYMBOL, a GLOB
    /// (`*`, `?`) or BINARY:SYMBOL, matched against demangled C++ and Rust
    /// names in the executable and the libraries it has mapped. Repeatable.
    /// Each hit costs a trap (≈20 µs on some VMs): see --probe-budget.
    #[arg(long = "uprobe", value_name = "SPEC")]
    pub uprobes: Vec<String>,

    /// Probe malloc, calloc, realloc, free, posix_memalign and
    /// aligned_alloc in the allocator the target uses: rates, latency,
    /// sizes and top allocating call sites.
    #[arg(long)]
    pub alloc: bool,

    /// For a Go target, do not probe the entries of sync.Mutex's and
    /// sync.RWMutex's slow paths (on by default: goroutines contend there,
    /// never on a futex). Each entry costs one trap (≈5 µs here), only when
    /// a lock is contended; --probe-budget bounds it.
    #[arg(long)]
    pub no_go_mutex: bool,

    /// Also count probed functions per call site (the caller's return
    /// address); --alloc always does.
    #[arg(long)]
    pub fn_sites: bool,

    /// Keep the estimated cost of the function probes under this share of
    /// the target's CPU time (e.g. 2%) by attaching them only part of the
    /// time; counts are then scaled and the fraction shown.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub probe_budget: Option<f64>,

    /// Also look for separate debug files (symbols stripped from a binary)
    /// under DIR/.build-id/, for --uprobe and for the stacks' frames;
    /// /usr/lib/debug is always searched.
    #[arg(long, value_name = "DIR")]
    pub debug_dir: Vec<PathBuf>,

    /// Measure the tracer's own programs with the kernel's BPF run-time
    /// statistics (BPF_ENABLE_STATS) and print, on stderr, each program's
    /// runs and average nanoseconds per run. The statistics themselves add
    /// two clock reads per program run.
    #[arg(long)]
    pub program_stats: bool,

    /// Allow --uprobe on lock fast paths (pthread_mutex_lock and the like),
    /// which the tracer refuses by default: a probe there costs a trap on
    /// every uncontended acquisition.
    #[arg(long)]
    pub allow_hot_probes: bool,

    /// No live progress line (it is only drawn when stderr is a terminal).
    #[arg(short, long)]
    pub quiet: bool,

    /// Run the command N times, tracing each run, and print statistics
    /// over the runs (mean, median, stddev, min, max, p95, p99, CV) for
    /// every metric. With --json FILE, run K is written to FILE-K.json
    /// (and with --html FILE to FILE-K.html).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "command", value_parser = parse_repeat)]
    pub repeat: usize,

    /// The command to launch and trace (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Default of `--max-locks`.
pub const DEFAULT_MAX_LOCKS: u32 = 16384;

fn parse_max_locks(s: &str) -> Result<u32, String> {
    let max = tracer_common::limits::MAX_LOCKS_LIMIT;
    match s.trim().parse::<u32>() {
        Ok(n) if (1024..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a number of entries from 1024 to {max}"
        )),
    }
}

fn parse_repeat(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!("'{s}' is not a number of runs from 1 to 1000")),
    }
}

fn parse_top(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}' is not a count of at least 1")),
    }
}

/// A contention rate threshold: a finite number of contentions per second.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1e12).contains(&v) => Ok(v),
        _ => Err(format!(
            "'{s}' is not a rate in contentions per second (a number from 0 to 1e12)"
        )),
    }
}

/// Octal permission bits, e.g. 600 or 0644.
fn parse_mode(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s.trim(), 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!(
            "'{s}' is not an octal file mode such as 600 or 644"
        )),
    }
}

/// A size in bytes with an optional K, M or G suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, shift) = match t.char_indices().last() {
        Some((i, c)) if c.eq_ignore_ascii_case(&'k') => (&t[..i], 10),
        Some((i, c)) if c.eq_ignore_ascii_case(&'m') => (&t[..i], 20),
        Some((i, c)) if c.eq_ignore_ascii_case(&'g') => (&t[..i], 30),
        _ => (t, 0),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("'{s}' is not a size such as 512M or 2G"))
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("'{s}' is not a percentage (try 2%)"))?;
    if v > 0.0 && v <= 100.0 {
        Ok(v)
    } else {
        Err(format!("'{s}' must be above 0% and at most 100%"))
    }
}

fn parse_power_of_two(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n.is_power_of_two() && n <= 1 << 20 => Ok(n),
        _ => Err(format!("'{s}' is not a power of two from 1 to 1048576")),
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Full,
    Sched,
}

/// Parses `30s`, `500ms`, `2m`, `1h`, `250us`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (try 30s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "ns" => value / 1e9,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit '{other}' (use ns, us, ms, s, m, h)"
            ));
        }
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("duration must be positive, got '{s}'"));
    }
    if secs > MAX_DURATION_S {
        return Err(format!(
            "'{s}' is longer than a year: leave --duration out to trace until Ctrl-C"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("'{s}' is not a duration"))
}

/// The longest `--duration`: a year.
const MAX_DURATION_S: f64 = 366.0 * 86400.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("18446744073709551615").is_err());
        assert!(parse_duration("1e400").is_err());
        assert!(parse_duration("NaN").is_err());
    }

    #[test]
    fn numeric_flags_are_range_checked() {
        use clap::Parser as _;
        for bad in [
            &["tracer", "contention", "--repeat", "0", "--", "true"][..],
            &[
                "tracer",
                "contention",
                "--recommend-at",
                "inf",
                "--pid",
                "1",
            ],
            &["tracer", "contention", "--consider-at", "-1", "--pid", "1"],
            &["tracer", "contention", "--consider-at", "NaN", "--pid", "1"],
            &["tracer", "contention", "--top", "0", "--pid", "1"],
            &["tracer", "contention", "--max-locks", "10", "--pid", "1"],
            &[
                "tracer",
                "contention",
                "--unwind-rate",
                "99999",
                "--pid",
                "1",
            ],
            &["tracer", "--file-mode", "999", "report", "x.json"],
            &["tracer", "--max-input-size", "0", "report", "x.json"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_mode("0644"), Ok(0o644));
    }

    #[test]
    fn pid_or_command_is_required_and_exclusive() {
        use clap::Parser as _;
        assert!(Cli::try_parse_from(["tracer", "contention"]).is_err());
        assert!(Cli::try_parse_from(["tracer", "contention", "--pid", "1", "--", "true"]).is_err());
        let cli = Cli::try_parse_from(["tracer", "contention", "--pid", "1,2"]).unwrap();
        let Command::Contention(a) = cli.command else {
            panic!("not contention")
        };
        assert_eq!(a.pid, vec![1, 2]);
        let cli = Cli::try_parse_from(["tracer", "contention", "--", "sleep", "1"]).unwrap();
        let Command::Contention(a) = cli.command else {
            panic!("not contention")
        };
        assert_eq!(a.command, vec!["sleep", "1"]);
    }
}

const AGENT_EXAMPLES: &str = "\
Examples:
    tracer agent --comm '^postgres$'                     every postgres process, now and later
    tracer agent --pid 4242 --window 30s --listen 0.0.0.0:9746
    tracer agent --cgroup /sys/fs/cgroup/system.slice/redis.service --mode full

Endpoints (127.0.0.1:9746 unless --listen): /metrics (Prometheus or
OpenMetrics), /debug/pprof/mutex (gzip'd pprof of the last window),
/report.json (the last window's report), /healthz. Stops on SIGTERM or
Ctrl-C, leaving nothing attached.";

/// `tracer agent`: what to trace, how, and where to serve it.
#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// Process id(s) to trace, comma-separated (and the processes they
    /// fork).
    #[arg(short, long, value_delimiter = ',')]
    pub pid: Vec<i32>,
    /// Trace every process whose name (comm, as `ps -o comm` shows it)
    /// matches this regular expression: those running now, and those that
    /// exec later.
    #[arg(long, value_name = "REGEX")]
    pub comm: Option<String>,
    /// Trace every process in this cgroup (v2; a directory under
    /// /sys/fs/cgroup, or a path relative to it), now and as they exec.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,
    /// sched: no syscall tracepoints (no cost on futex fast paths; waits
    /// seen when they block, call sites from the waiters' stacks). full:
    /// futex tracepoints too (EAGAIN waits), as `tracer contention`'s
    /// default.
    #[arg(long, value_enum, default_value_t = Mode::Sched)]
    pub mode: Mode,
    /// Length of one aggregation window: the metrics and profiles move on
    /// once a window.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub window: Duration,
    /// Where to serve HTTP (address:port). Loopback unless said otherwise.
    #[arg(long, default_value = "127.0.0.1:9746")]
    pub listen: std::net::SocketAddr,
    /// A directory for the agent's state (the last window's report, kept
    /// across restarts). Without it nothing is written to disk.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Locks exported per process; the rest are summed as lock="other".
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    /// Contentions/s from which a lock-free redesign is worth considering.
    #[arg(long, default_value_t = 100.0)]
    pub consider_at: f64,
    /// Contentions/s above which it is recommended.
    #[arg(long, default_value_t = 1000.0)]
    pub recommend_at: f64,
    /// Capacity of the per-lock kernel maps, per window (as `tracer
    /// contention --max-locks`).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_LOCKS, value_parser = parse_max_locks)]
    pub max_locks: u32,
    /// Samples per second of a thread's CPU time in the CPU profiles
    /// /debug/pprof/profile?seconds=N takes on request.
    #[arg(short = 'F', long, value_name = "HZ", default_value_t = 99, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub frequency: u64,
}

/// `tracer trend`: a baseline's history, metric by metric.
#[derive(Args, Debug, Clone)]
pub struct TrendArgs {
    /// The baseline whose saved runs to read (`tracer baseline save`).
    pub name: String,
    /// The last N runs.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u64).range(3..=10_000))]
    pub last: u64,
    /// Where baselines live (see `tracer compare --help`).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Also write the trend as versioned JSON (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write a page with a chart per drifting metric.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Metrics listed in the text (drifting ones first; JSON has all).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,
}

//! `tracer compare`: argument handling. Translates the command line into
//! `compare::RunOptions` (`--ci` is `--fail-on minor`; the four percent
//! flags are the default thresholds) and runs the comparison.

use anyhow::Result;

use crate::{
    cli::CompareArgs,
    compare::{self, RunOptions, Severity, Thresholds},
    exit::Code,
};

/// Runs `tracer compare`; returns its exit code (0, 9 or 10).
pub fn run(args: &CompareArgs) -> Result<Code> {
    compare::run(&options(args))
}

/// The request the command line makes.
fn options(args: &CompareArgs) -> RunOptions {
    RunOptions {
        files: args.files.clone(),
        base: args.base.clone(),
        current: args.current.clone(),
        baseline: args.baseline.clone(),
        baseline_dir: args.baseline_dir.clone(),
        thresholds: Thresholds {
            warning: args.warning,
            minor: args.minor,
            major: args.major,
            critical: args.critical,
        },
        thresholds_file: args.thresholds.clone(),
        metric_thresholds: args.metric_threshold.clone(),
        fail_on: if args.ci {
            Some(Severity::Minor)
        } else {
            args.fail_on
        },
        json: args.json.clone(),
        markdown: args.markdown.clone(),
        html: args.html.clone(),
        all: args.all,
        allow_different_programs: args.allow_different_programs,
    }
}

//! Profiles (`tracer profile --json`) as compare sees them: each sampled
//! function's CPU shares, by name, as `RunMetrics` — so two sets of
//! profiles go through the same judging as two sets of reports (the same
//! severities, noise rule, outputs and exit codes).
//!
//! A share is of all the samples of its run, so shares are relative: when
//! one function takes more, the others take less, whatever the program's
//! absolute CPU time did.

use super::{RunMetrics, program_of_targets};
use crate::report::profile::Profile;

/// A function's CPU shares under this on both sides are not compared, and a
/// function on one side only is not listed as NEW or GONE unless one of its
/// shares reaches it: at 99 Hz, a few samples are 1% of a short run, and
/// sampling alone makes such functions come and go.
pub const MIN_CPU_SHARE: f64 = 0.01;

/// The metrics of one profile: per function (`function NAME`, the name its
/// frames have in the profile), its self share (`cpu_self_share`: samples
/// with it innermost) and its total share (`cpu_total_share`: samples with
/// it anywhere on the stack), both of all the samples received.
pub fn profile_metrics(p: &Profile) -> RunMetrics {
    let mut m = RunMetrics {
        program: program_of(p),
        // A function not sampled in a run had no CPU in it: 0, not unknown.
        absent_is_zero: true,
        ..Default::default()
    };
    for f in &p.functions {
        let id = format!("function {}", f.name);
        m.values
            .insert((id.clone(), "cpu_self_share".into()), f.self_share);
        m.values
            .insert((id, "cpu_total_share".into()), f.total_share);
    }
    m
}

/// The profiled program: the first target's executable name, as for a
/// report.
pub fn program_of(p: &Profile) -> String {
    program_of_targets(&p.targets)
}

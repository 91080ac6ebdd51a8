//! `/debug/pprof/profile?seconds=N`: a CPU profile of the agent's targets,
//! taken when it is asked for, as Go's net/http/pprof does (the request
//! waits N seconds). A session of its own samples the processes traced
//! when the request came (and what they fork) beside the window's session,
//! with `tracer profile`'s sampler, unwinding and pprof shape; it is gone
//! when the answer is.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::Result;

use crate::{
    cmd::{contention::meta_of, profile::profile_of},
    kernel::{
        sampling::SamplingOptions,
        session::{Session, Targets, Until},
    },
    report::{model, profile_views},
    target::symbolize::Symbols,
};

/// Go's default, when the request says no `seconds`.
pub const DEFAULT_SECONDS: u64 = 30;
/// The longest profile one request can ask for.
pub const MAX_SECONDS: u64 = 600;

/// What a CPU profile is taken with, and whether one is being taken.
pub struct CpuProfiles {
    pub frequency: u64,
    pub max_locks: u32,
    pub thresholds: model::Thresholds,
    pub verbose: bool,
    busy: AtomicBool,
}

/// Held while a profile is taken; the next request may start once it is
/// dropped, whether the answer was sent or its client went away.
pub struct Taking<'a>(&'a AtomicBool);

impl Drop for Taking<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl CpuProfiles {
    pub fn new(
        frequency: u64,
        max_locks: u32,
        thresholds: model::Thresholds,
        verbose: bool,
    ) -> Self {
        Self {
            frequency,
            max_locks,
            thresholds,
            verbose,
            busy: AtomicBool::new(false),
        }
    }

    /// The right to take a profile now, or None while another is taken
    /// (two at once would sample the same threads twice).
    pub fn try_take(&self) -> Option<Taking<'_>> {
        (!self.busy.swap(true, Ordering::AcqRel)).then_some(Taking(&self.busy))
    }

    /// Samples `pids` for `seconds` and returns the gzip'd pprof CPU
    /// profile (`tracer report --format pprof`'s shape).
    pub fn take(&self, pids: &[u32], seconds: u64, stop: &AtomicBool) -> Result<Vec<u8>> {
        let mut opts = super::options(super::SessionKind::CpuProfile, self.max_locks, self.verbose);
        opts.sampling = Some(SamplingOptions {
            frequency: self.frequency,
        });
        let pids = pids.iter().map(|&p| p as i32).collect();
        let mut session = Session::start(opts, Targets::Pids(pids), stop)?;
        session.begin(stop)?;
        session.trace(
            &Until {
                duration: Some(Duration::from_secs(seconds)),
                stop,
            },
            |_| {},
        )?;
        let h = session.harvest()?;
        let meta = meta_of(&h, self.thresholds, model::Mode::Sched, self.max_locks);
        let mut syms = Symbols::with_debug_dirs(&[]);
        let contention = crate::analyze::build::build(&h.snap, &h.procs, &mut syms, meta);
        let profile = profile_of(&h, contention, self.frequency, false, &mut syms);
        log::info!(
            "CPU profile of {} s: {} samples, {} lost",
            seconds,
            profile.sampling.received,
            profile.sampling.lost
        );
        let bytes = profile_views::pprof(&profile);
        h.detach.join()?;
        Ok(bytes)
    }
}

/// `seconds` from a query string (`seconds=N`, other parameters ignored):
/// DEFAULT_SECONDS when absent, an error sentence when not 1..=MAX_SECONDS.
pub fn seconds(query: Option<&str>) -> Result<u64, String> {
    let Some(v) = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("seconds="))
    else {
        return Ok(DEFAULT_SECONDS);
    };
    match v.parse::<u64>() {
        Ok(n) if (1..=MAX_SECONDS).contains(&n) => Ok(n),
        _ => Err(format!(
            "seconds must be a whole number from 1 to {MAX_SECONDS}, not {v:?}\n"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_read_from_the_query() {
        assert_eq!(seconds(None), Ok(DEFAULT_SECONDS));
        assert_eq!(seconds(Some("")), Ok(DEFAULT_SECONDS));
        assert_eq!(seconds(Some("seconds=5")), Ok(5));
        assert_eq!(seconds(Some("debug=0&seconds=12")), Ok(12));
        for bad in [
            "seconds=0",
            "seconds=601",
            "seconds=1.5",
            "seconds=",
            "seconds=-3",
        ] {
            let e = seconds(Some(bad)).unwrap_err();
            assert!(e.starts_with("seconds must be"), "{bad}: {e}");
        }
    }

    #[test]
    fn one_profile_at_a_time() {
        let c = CpuProfiles::new(
            99,
            1024,
            model::Thresholds {
                consider_at: 100.0,
                recommend_at: 1000.0,
            },
            false,
        );
        let first = c.try_take().expect("free at first");
        assert!(c.try_take().is_none(), "taken twice");
        drop(first);
        assert!(c.try_take().is_some(), "free again once dropped");
    }
}

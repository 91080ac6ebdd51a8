//! When the function probes (`--uprobe`, `--alloc`, Go's lock slow paths)
//! are planned, calibrated and attached: at once for a running target; for
//! a launched command, calibrated while it waits at its gate and attached
//! after exec, once its own binaries are mapped. `uprobes` does the probing
//! itself.

use std::sync::atomic::AtomicBool;

use anyhow::Result;

use crate::{
    kernel::{
        attach::Probes,
        uprobes::{self, FnOptions, FnProbes, Planned, Role},
    },
    report::units::human_ns,
    say,
    target::process::ProcessInfo,
};

/// What one probe hit costs, per kind of probe, once calibrated.
#[derive(Default)]
struct Costs {
    pair: Option<f64>,
    go: Option<f64>,
}

/// The function probes of one session, from planning to the end.
pub struct Functions {
    pub probes: Option<FnProbes>,
    opts: FnOptions,
    wanted: bool,
    roots: Vec<u32>,
    costs: Costs,
}

impl Functions {
    /// No function probes (before they are set up).
    pub fn none() -> Self {
        Self {
            probes: None,
            opts: FnOptions::default(),
            wanted: false,
            roots: Vec::new(),
            costs: Costs::default(),
        }
    }

    /// Plans and attaches the probes of a running target (a bad spec fails
    /// before tracing starts), or calibrates those a launched command will
    /// need (`command`: its program, to know whether it is Go).
    pub fn new(
        opts: FnOptions,
        roots: &[u32],
        command: Option<&str>,
        probes: &mut Probes,
        stop: &AtomicBool,
    ) -> Result<Self> {
        let wanted = opts.explicit() || opts.go_mutex;
        let mut me = Self {
            probes: None,
            opts,
            wanted,
            roots: roots.to_vec(),
            costs: Costs::default(),
        };
        if !wanted {
            return Ok(me);
        }
        match command {
            None => me.start(roots[0], probes, stop)?,
            Some(program) => {
                // The calibration's calls do not compete with the command:
                // it waits at the gate meanwhile.
                if me.opts.explicit() {
                    me.costs.pair = Some(uprobes::calibrate(probes, Role::Uprobe)?);
                }
                let go = me.opts.go_mutex
                    && crate::target::process::which(program)
                        .is_some_and(|exe| crate::target::process::runtime_of(&exe) == Some("go"));
                if go {
                    me.costs.go = Some(uprobes::calibrate(probes, Role::GoMutex)?);
                }
            }
        }
        Ok(me)
    }

    /// A launched command's functions resolve in its own binaries: after
    /// exec, once the dynamic loader has mapped libc.
    pub fn after_exec(&mut self, pid: u32, probes: &mut Probes, stop: &AtomicBool) -> Result<()> {
        if self.wanted && self.probes.is_none() {
            self.start(pid, probes, stop)?;
        }
        Ok(())
    }

    /// The probed functions' ids.
    pub fn ids(&self) -> Vec<u32> {
        self.probes
            .as_ref()
            .map(|f| f.planned.iter().map(|p| p.id).collect())
            .unwrap_or_default()
    }

    /// Processes that joined the target set get the probes too.
    pub fn follow(&mut self, targets: &[u32], probes: &mut Probes) {
        if let Some(f) = self.probes.as_mut() {
            f.follow(targets, probes);
        }
    }

    /// One turn of the tracing loop: the probe budget's duty cycle.
    pub fn tick(&mut self, probes: &mut Probes) -> Result<()> {
        match self.probes.as_mut() {
            Some(f) => f.tick(probes),
            None => Ok(()),
        }
    }

    /// Tracing ended: the probes' last window is closed.
    pub fn finish(&mut self, probes: &mut Probes) {
        if let Some(f) = self.probes.as_mut() {
            f.finish(probes);
        }
    }

    /// Resolves the specs in `pid`'s binaries, calibrates what a hit costs
    /// for the roles planned (unless it was already) and attaches.
    fn start(&mut self, pid: u32, probes: &mut Probes, stop: &AtomicBool) -> Result<()> {
        let mut info = ProcessInfo {
            pid,
            ..Default::default()
        };
        info.refresh();
        let planned = uprobes::plan(&self.opts, &info, stop)?;
        if planned.is_empty() {
            return Ok(());
        }
        let costs = self.calibrate(&planned, probes)?;
        if let Some(b) = self.opts.probe_budget {
            say!("tracer: probe budget {b}% of the target's CPU time: probes are duty-cycled");
        }
        let mut f = FnProbes::new(planned, self.roots.clone(), costs, self.opts.probe_budget);
        f.attach(probes)?;
        self.probes = Some(f);
        Ok(())
    }

    /// Per-hit costs of the planned roles (entry + return, Go's entry
    /// only), calibrated now unless they were before; says what is probed.
    fn calibrate(&mut self, planned: &[Planned], probes: &mut Probes) -> Result<(f64, f64)> {
        let (go, pairs): (Vec<&Planned>, Vec<&Planned>) =
            planned.iter().partition(|p| p.role == Role::GoMutex);
        let mut costs = (0.0, 0.0);
        if !pairs.is_empty() {
            costs.0 = match self.costs.pair {
                Some(c) => c,
                None => *self
                    .costs
                    .pair
                    .insert(uprobes::calibrate(probes, Role::Uprobe)?),
            };
            say!(
                "tracer: a probed function call (entry + return) costs ≈{} here (calibrated now)",
                human_ns(costs.0 as u64)
            );
            let names: Vec<&str> = pairs.iter().map(|p| p.func.name.as_str()).collect();
            say!(
                "tracer: probing {} function(s) (entry + return): {}{}",
                pairs.len(),
                names.iter().take(8).copied().collect::<Vec<_>>().join(", "),
                if names.len() > 8 { ", …" } else { "" }
            );
        }
        if !go.is_empty() {
            costs.1 = match self.costs.go {
                Some(c) => c,
                None => *self
                    .costs
                    .go
                    .insert(uprobes::calibrate(probes, Role::GoMutex)?),
            };
            let names: Vec<&str> = go.iter().map(|p| p.func.name.as_str()).collect();
            say!(
                "tracer: a Go program: probing the entries of its lock slow paths ({}), ≈{} per contended entry (calibrated now; --no-go-mutex to skip)",
                names.join(", "),
                human_ns(costs.1 as u64)
            );
        }
        Ok(costs)
    }
}

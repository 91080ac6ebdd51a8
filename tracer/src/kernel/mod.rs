//! Everything that touches the kernel: checks before loading (`preflight`),
//! loading and attaching the programs (`attach`), the function probes
//! (`functions`: when they are planned and attached; `uprobes`: probing
//! and their cost), the event ring's reader (`ring`), exited threads
//! leaving the maps (`retire`), reading the maps into a snapshot
//! (`collect`), the processes a session traces (`processes`), and the
//! tracing lifecycle that drives them (`session`).

pub mod attach;
pub mod collect;
pub mod counters;
pub mod functions;
pub mod preflight;
pub mod processes;
pub mod retire;
pub mod ring;
pub mod sampling;
pub mod session;
pub mod uprobes;

//! The commands: argument handling, then the stages below (kernel →
//! target → analyze → report). `contention` runs a tracing session and
//! reports it; `baseline` keeps named runs for `compare`.

pub mod baseline;
pub mod contention;

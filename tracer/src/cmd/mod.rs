//! The commands: argument handling, then the stages below (kernel →
//! target → analyze → report). `contention` runs a tracing session and
//! reports it; `compare` compares runs (`crate::compare`); `baseline`
//! keeps named runs for `compare` (`crate::store`).

pub mod baseline;
pub mod compare;
pub mod contention;
pub mod profile;
pub mod trend;

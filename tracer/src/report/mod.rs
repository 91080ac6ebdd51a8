//! The contention decision report: model, decisions, renderers.

pub mod build;
pub mod chart;
pub mod decide;
pub mod folded;
pub mod hist;
pub mod html;
pub mod json;
pub mod model;
pub mod pprof;
pub mod resymbolize;
pub mod text;

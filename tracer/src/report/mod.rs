//! The contention decision report: its model and its views (text, JSON,
//! HTML, pprof, folded), and naming a saved run's frames offline.

pub mod chart;
pub mod folded;
pub mod html;
pub mod json;
pub mod model;
pub mod pprof;
pub mod profile;
pub mod profile_views;
pub mod resymbolize;
pub mod text;
pub mod units;

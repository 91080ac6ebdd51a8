//! From what was measured to what it means: the report model built from a
//! snapshot (`build`), which lock each wait belongs to (`locks`), using what
//! is known of each lock implementation (`implementations`), percentiles
//! (`hist`), and the decision per lock and for the run (`decide`).

pub mod build;
pub mod decide;
pub mod hist;
pub mod implementations;
pub mod locks;
pub mod profile;

//! From what was measured to what it means: which lock each wait belongs
//! to (`locks`), using what is known of each lock implementation
//! (`implementations`).

pub mod implementations;
pub mod locks;

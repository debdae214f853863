//! lorebot: a kernel patch test bot for mailing-list threads.
//!
//! The pipeline runs one way through one module per stage; this crate has
//! the console analyzer so far.

pub mod cli;
pub mod console;
pub mod lore;
pub mod mail;
pub mod series;
pub mod store;

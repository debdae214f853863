//! lorebot: a kernel patch test bot for mailing-list threads.
//!
//! One module per pipeline stage; data flows one way:
//! lore (follow archives) -> mail (parse) -> series (assemble) -> store,
//! and console (crash and stall analysis) for the runs' logs.

pub mod build;
pub mod cli;
pub mod console;
pub mod lore;
pub mod mail;
pub mod series;
pub mod store;

//! lorebot: a kernel patch test bot for mailing-list threads.
//!
//! One module per pipeline stage; data flows one way:
//! lore (follow archives) -> mail (parse) -> series (assemble) -> store
//! -> tree (worktree at the base, `git am -3`), and console (crash and
//! stall analysis) for the runs' logs.

pub mod build;
pub mod checks;
mod child;
pub mod cli;
pub mod console;
pub mod job;
pub mod lore;
pub mod mail;
pub mod pipeline;
pub mod queue;
pub mod reply;
pub mod series;
pub mod store;
pub mod tree;
pub mod verdict;
pub mod vm;
pub mod watch;

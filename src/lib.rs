//! The `aion` binary's library: configuration and the wiring of all crates into a running
//! control plane. `main.rs` only parses the command line and calls into here.

pub mod config;
pub mod dev_nodes;
pub mod startup;

//! vaultbridge: resolves named secret definitions through pluggable backends, caches
//! the results, trims pasted whitespace, and serves them over gRPC.
#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod config;
pub mod jira;
pub mod names;
pub mod proto;
pub mod registry;
pub mod resolver;
pub mod server;
pub mod service;
pub mod status;
pub mod trim;

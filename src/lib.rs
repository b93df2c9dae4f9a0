//! vaultbridge: resolves named secret definitions through pluggable backends, caches
//! the results, trims pasted whitespace, and serves them over gRPC.
#![forbid(unsafe_code)]

// The binary, the end-to-end tests and the bench use the CLI, the client and the
// generated protocol; everything else is the daemon's own business, so that the
// compiler reports what nothing uses.
pub mod cli;
pub mod client;
pub mod plugin_check;
pub mod proto;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

mod access;
mod admin;
mod codec;
mod config;
mod http;
mod jira;
mod listen;
mod metrics;
mod names;
mod protect;
mod registry;
mod reload;
mod resolver;
mod server;
mod service;
mod status;
mod tls;
mod trim;

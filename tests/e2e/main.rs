//! End-to-end tests: the real `vaultbridge` binary, called over a real socket by the
//! generated tonic client, the CLI, and Python's grpcio.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

mod access;
#[cfg(feature = "aws")]
mod aws;
#[cfg(feature = "azure")]
mod azure;
mod cli;
mod connect_proxy;
mod fake_jira;
#[cfg(feature = "aws")]
mod fault_proxy;
mod grpc;
mod harness;
mod jira;
mod jira_tls;
mod leaks;
mod lifecycle;
mod plugin_pass;
mod python;
#[cfg(feature = "aws")]
mod resilience;
#[cfg(feature = "aws")]
mod startup_probe;
mod tls;

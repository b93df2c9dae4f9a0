//! End-to-end tests: the real `vaultbridge` binary, called over a real socket by the
//! generated tonic client, the CLI, and Python's grpcio.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

mod abuse;
#[cfg(feature = "aws")]
mod aws;
#[cfg(feature = "azure")]
mod azure;
mod cli;
mod fake_jira;
#[cfg(feature = "aws")]
mod fault_proxy;
mod grpc;
mod harness;
mod hygiene;
mod jira;
mod leaks;
mod lifecycle;
mod procfs;
mod python;
mod raw_h2;
#[cfg(feature = "aws")]
mod resilience;
mod socket_safety;

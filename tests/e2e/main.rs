//! End-to-end tests: the real `vaultbridge` binary, called over a real socket by the
//! generated tonic client, the CLI, and Python's grpcio.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

mod abuse;
mod access;
mod airflow;
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
mod hardening;
mod harness;
#[cfg(feature = "aws")]
mod herd;
mod http;
#[cfg(feature = "aws")]
mod http_aws;
mod hygiene;
mod jira;
mod jira_tls;
mod jira_verify;
mod leaks;
mod lifecycle;
mod metrics;
mod peer_limits;
mod plugin_pass;
mod procfs;
mod python;
#[cfg(feature = "azure")]
mod python_client;
mod raw_h2;
mod reload;
#[cfg(feature = "aws")]
mod resilience;
mod socket_safety;
#[cfg(all(feature = "aws", feature = "azure"))]
mod sources;
#[cfg(feature = "aws")]
mod startup_probe;
mod tls;

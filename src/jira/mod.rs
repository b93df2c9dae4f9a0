//! Jira credentials for the Jira components of data pipelines.
//!
//! The modules form a chain, `network` <- `config` <- `credentials` <- `verify` <-
//! `connections` <- `service` (with `error` beside `connections`), and siblings import each other
//! rather than these re-exports, so no module depends on one that depends on it.

pub(crate) mod config;
pub(crate) mod connections;
pub(crate) mod credentials;
pub(crate) mod error;
pub(crate) mod network;
pub(crate) mod service;
pub(crate) mod verify;

pub(crate) use connections::JiraService;
pub(crate) use error::JiraError;

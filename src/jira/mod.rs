//! Jira credentials for the Jira components of data pipelines.
//!
//! The modules form a chain, `config` <- `credentials` <- `verify` <- `connections`
//! <- `service` (with `error` beside `connections`), and siblings import each other
//! rather than these re-exports, so no module depends on one that depends on it.

pub mod config;
pub mod connections;
pub mod credentials;
pub mod error;
pub mod service;
pub mod verify;

pub use connections::{AuthFailureOutcome, JiraService, StateSnapshot};
pub use credentials::{Credentials, Scheme};
pub use error::{CloudIdError, JiraError};
pub use verify::ConnectionStatus;

//! Jira credentials for the Jira components of data pipelines.

pub mod config;
pub mod credentials;
pub mod service;
pub mod verify;

pub use credentials::{
    AuthFailureOutcome, Credentials, JiraError, JiraService, Scheme, StateSnapshot,
};
pub use verify::Status;

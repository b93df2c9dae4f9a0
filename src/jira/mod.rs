//! Jira credentials for the Jira components of data pipelines.

pub mod config;
pub mod credentials;
pub mod service;

pub use credentials::{Credentials, JiraError, JiraService, Scheme};

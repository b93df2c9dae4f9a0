//! What a backend needs to own its config: the located values it reads ([`Text`],
//! [`Node`]), the checks that report located problems ([`Checker`], [`Section`]),
//! `${VAR}` interpolation ([`Vars`]), and the two traits by which the daemon's registry
//! reads, checks and builds a backend without knowing any of its fields.

mod checker;
mod node;
mod text;
mod vars;

pub use checker::{Checker, Problem, Section};
pub use node::{Node, NodeValue};
pub use text::{Location, Text};
pub use vars::{ProcessVars, Vars};

use crate::{Backend, BackendError, Capabilities};
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// A backend type as the config knows it: the `type` it answers to, the settings it
/// reads as written, and the checks that turn them into its settings.
pub trait BackendType: BackendSettings + Sized {
    /// The `type` written in config (`env`, `file`, ...).
    const KIND: &'static str;

    /// The settings as written: a `#[derive(Deserialize)]` struct of [`Text`] fields
    /// (`type` is read by the daemon and not passed on). Unknown fields are refused.
    type Raw: DeserializeOwned;

    /// Checks the settings, recording every problem in `section`; `None` when there was
    /// one the settings cannot be built without.
    fn check(raw: Self::Raw, section: &mut Section<'_, '_>) -> Option<Self>;
}

/// One backend instance's checked settings, as the daemon holds them.
#[async_trait]
pub trait BackendSettings: fmt::Debug + Send + Sync + 'static {
    /// What instances built from these settings can do; definitions are checked
    /// against it at load.
    fn capabilities(&self) -> Capabilities;

    /// Checks a definition's secret id at load, so that a typo is reported once at
    /// start rather than on every resolve. Any non-empty id by default.
    fn check_secret_id(&self, id: &str) -> Result<(), String> {
        let _ = id;
        Ok(())
    }

    /// Builds an instance. No network call is made: cloud clients connect on first
    /// use. Errors are setup problems the config could not see (an unreadable CA file,
    /// an unset client-secret variable).
    async fn build(&self) -> Result<Arc<dyn Backend>, BackendError>;

    /// For tests that look at one backend's settings.
    fn as_any(&self) -> &dyn Any;
}

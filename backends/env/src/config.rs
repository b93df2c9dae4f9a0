//! The `env` backend's settings, as the config file gives them.

use crate::{CAPABILITIES, EnvBackend, KIND, validate_variable_name};
use async_trait::async_trait;
use serde::Deserialize;
use std::any::Any;
use std::sync::Arc;
use vaultbridge_backend_core::config::{BackendSettings, BackendType, Section, Text};
use vaultbridge_backend_core::{Backend, BackendError, Capabilities};

/// The `env` backend instance's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvConfig {
    /// Prepended to every variable name a definition gives (`APP_` + `JIRA_TOKEN`).
    pub prefix: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvConfig {
    prefix: Option<Text>,
}

impl BackendType for EnvConfig {
    const KIND: &'static str = KIND;
    type Raw = RawEnvConfig;

    fn check(raw: RawEnvConfig, section: &mut Section<'_, '_>) -> Option<Self> {
        let prefix = section
            .optional_text(raw.prefix.as_ref(), "prefix")
            .unwrap_or_default();
        Some(Self { prefix })
    }
}

#[async_trait]
impl BackendSettings for EnvConfig {
    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn check_secret_id(&self, id: &str) -> Result<(), String> {
        validate_variable_name(id)
    }

    async fn build(&self) -> Result<Arc<dyn Backend>, BackendError> {
        Ok(Arc::new(EnvBackend::new(self.clone())))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

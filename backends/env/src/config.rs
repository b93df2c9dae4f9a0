//! The `env` backend's settings, as the config file gives them.

use serde::Deserialize;
use vaultbridge_backend_core::config::{Section, Text};

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

/// Checks the settings as written, recording every problem in `section`.
pub(crate) fn check(raw: RawEnvConfig, section: &mut Section<'_, '_>) -> Option<EnvConfig> {
    let prefix = section
        .optional_text(raw.prefix.as_ref(), "prefix")
        .unwrap_or_default();
    Some(EnvConfig { prefix })
}

/// Checks a definition's variable name at config load, so that a typo is reported once
/// at start rather than on every resolve.
pub(crate) fn validate_variable_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the variable name is empty".to_owned());
    }
    if name.contains(['=', '\0']) {
        return Err(format!(
            "`{name}` cannot be an environment variable name: it contains `=` or NUL"
        ));
    }
    Ok(())
}

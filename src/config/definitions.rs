//! The `definitions` section: named pointers to one secret (and optionally one key and
//! version of it) in one backend. Checked against what the backend can do, never
//! against which backend it is.

use super::cache::RefreshAhead;
use crate::names;
use crate::registry::BackendConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use vaultbridge_backend_core::config::{Section, Text};
use vaultbridge_backend_core::{SecretRef, VersionSelector};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DefinitionConfig {
    pub backend: String,
    pub secret: SecretRef,
    /// `None` here and below: the `cache` section's.
    pub ttl: Option<Duration>,
    pub max_stale: Option<Duration>,
    pub refresh_ahead: Option<Option<RefreshAhead>>,
    pub negative_ttl: Option<Duration>,
    pub trim: bool,
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefinition {
    backend: Text,
    secret: Text,
    key: Option<Text>,
    version_id: Option<Text>,
    version_stage: Option<Text>,
    ttl: Option<Text>,
    max_stale: Option<Text>,
    refresh_ahead: Option<Text>,
    negative_ttl: Option<Text>,
    trim: Option<Text>,
    description: Option<Text>,
}

impl RawDefinition {
    /// Where the definition was written (its first field).
    pub(super) fn at(&self) -> &Text {
        &self.backend
    }
}

/// `backends` holds those that passed their checks; a definition naming one that
/// exists but failed is not reported twice.
pub(super) fn check(
    name: &str,
    raw: &RawDefinition,
    backend_names: &[&str],
    backends: &BTreeMap<String, BackendConfig>,
    section: &mut Section<'_, '_>,
) -> Option<DefinitionConfig> {
    if let Err(err) = names::validate(name) {
        section.problem(&raw.backend, "", err.to_string());
    }
    let backend_name = section.text(&raw.backend, "backend")?;
    if !backend_names.contains(&backend_name.as_str()) {
        section.problem(
            &raw.backend,
            "backend",
            format!(
                "no backend named `{backend_name}`; configured backends: {}",
                if backend_names.is_empty() {
                    "none".to_owned()
                } else {
                    backend_names.join(", ")
                }
            ),
        );
    }
    let backend = backends.get(&backend_name);
    let id = section.text(&raw.secret, "secret")?;
    if id.is_empty() {
        section.problem(
            &raw.secret,
            "secret",
            "expected the secret's name or id, got an empty value",
        );
    }
    if let Some(backend) = backend
        && let Err(message) = backend.settings.check_secret_id(&id)
    {
        section.problem(&raw.secret, "secret", message);
    }
    let key = section.optional_text(raw.key.as_ref(), "key");
    if let (Some(""), Some(value)) = (key.as_deref(), &raw.key) {
        section.problem(value, "key", "expected a key name, got an empty value");
    }
    let version = version(raw, backend, section)?;
    let ttl = match &raw.ttl {
        Some(value) => Some(section.duration(value, "ttl")?),
        None => None,
    };
    let max_stale = match &raw.max_stale {
        Some(value) => Some(section.duration(value, "max_stale")?),
        None => None,
    };
    let refresh_ahead = match &raw.refresh_ahead {
        Some(value) => Some(super::cache::refresh_ahead(
            value,
            "refresh_ahead",
            section,
        )?),
        None => None,
    };
    let negative_ttl = match &raw.negative_ttl {
        Some(value) => Some(section.duration(value, "negative_ttl")?),
        None => None,
    };
    let trim = match &raw.trim {
        Some(value) => section.boolean(value, "trim")?,
        None => true,
    };
    let description = section
        .optional_text(raw.description.as_ref(), "description")
        .unwrap_or_default();
    Some(DefinitionConfig {
        backend: backend_name,
        secret: SecretRef { id, key, version },
        ttl,
        max_stale,
        refresh_ahead,
        negative_ttl,
        trim,
        description,
    })
}

fn version(
    raw: &RawDefinition,
    backend: Option<&BackendConfig>,
    section: &mut Section<'_, '_>,
) -> Option<VersionSelector> {
    let id = section.optional_text(raw.version_id.as_ref(), "version_id");
    let stage = section.optional_text(raw.version_stage.as_ref(), "version_stage");
    let capabilities = backend.map(BackendConfig::capabilities).unwrap_or_default();
    let kind = backend.map_or("unknown", |backend| backend.kind);
    match (id, stage, &raw.version_id, &raw.version_stage) {
        (Some(_), Some(_), _, Some(at)) => {
            section.problem(
                at,
                "version_stage",
                "set `version_id` or `version_stage`, not both",
            );
            None
        }
        (Some(id), None, Some(at), _) => {
            if backend.is_some() && !capabilities.version_ids {
                section.problem(
                    at,
                    "version_id",
                    format!("`{kind}` backends have no versions to pin"),
                );
            }
            Some(VersionSelector::Id(id))
        }
        (None, Some(stage), _, Some(at)) => {
            if backend.is_some() && !capabilities.version_stages {
                section.problem(
                    at,
                    "version_stage",
                    format!("`{kind}` backends have no version stages"),
                );
            }
            Some(VersionSelector::Stage(stage))
        }
        _ => Some(VersionSelector::Latest),
    }
}

//! The one registry of backend types. A new backend is its crate, one line in
//! [`REGISTRY`] and one cargo feature; nothing else in the daemon knows its fields.

use crate::protect::{ProtectionOverrides, RawProtection};
use std::collections::BTreeMap;
use std::sync::Arc;
use vaultbridge_backend_core::config::{
    BackendSettings, BackendType, Node, NodeValue, Section, Text,
};
use vaultbridge_backend_core::{Backend, BackendError, Capabilities};

/// Every backend type this build has.
const REGISTRY: &[Entry] = &[
    Entry::of::<vaultbridge_backend_env::EnvConfig>(),
    Entry::of::<vaultbridge_backend_file::FileConfig>(),
    // Always on: its dependencies (tonic, tonic-health, prost) are the daemon's own.
    Entry::of::<vaultbridge_backend_plugin::PluginConfig>(),
    #[cfg(feature = "aws")]
    Entry::of::<vaultbridge_backend_aws::AwsConfig>(),
    #[cfg(feature = "azure")]
    Entry::of::<vaultbridge_backend_azure::AzureConfig>(),
];

/// Types behind cargo features (type, product, feature), so that a build without one
/// can say which feature it lacks instead of calling the type unknown.
const OPTIONAL: &[(&str, &str, &str)] = &[
    ("aws_secrets_manager", "AWS Secrets Manager", "aws"),
    ("azure_key_vault", "Azure Key Vault", "azure"),
];

/// The field every backend has; the registry reads it, the backend never sees it.
const TYPE_FIELD: &str = "type";

/// The fields every backend has: its type, and how the daemon protects it.
const DAEMON_FIELDS: [&str; 5] = [
    TYPE_FIELD,
    RawProtection::FIELDS[0],
    RawProtection::FIELDS[1],
    RawProtection::FIELDS[2],
    RawProtection::FIELDS[3],
];

type Read = fn(&Node, &mut Section<'_, '_>) -> Option<Arc<dyn BackendSettings>>;

struct Entry {
    kind: &'static str,
    read: Read,
}

impl Entry {
    const fn of<C: BackendType>() -> Self {
        Self {
            kind: C::KIND,
            read: read::<C>,
        }
    }
}

fn read<C: BackendType>(
    node: &Node,
    section: &mut Section<'_, '_>,
) -> Option<Arc<dyn BackendSettings>> {
    let raw = section.read::<C::Raw>(node, &DAEMON_FIELDS, &format!("`{}` backends", C::KIND))?;
    let settings = C::check(raw, section)?;
    Some(Arc::new(settings))
}

/// One backend instance as configured: its type and its checked settings.
#[derive(Debug, Clone)]
pub(crate) struct BackendConfig {
    pub kind: &'static str,
    pub settings: Arc<dyn BackendSettings>,
    /// Over the `cache` section's protection settings.
    pub protection: ProtectionOverrides,
    /// The settings as written, before `${VAR}` expansion: a reload keeps the backend
    /// built from them when they read the same (see `crate::reload`).
    pub written: Node,
}

impl BackendConfig {
    pub(crate) fn capabilities(&self) -> Capabilities {
        self.settings.capabilities()
    }
}

/// Reads and checks one entry of the `backends` section, recording every problem.
pub(crate) fn check(
    name: &str,
    node: &Node,
    section: &mut Section<'_, '_>,
) -> Option<BackendConfig> {
    if !valid_backend_name(name) {
        section
            .section_problem("a backend name may contain only ASCII letters, digits, '-' and '_'");
    }
    let Some((_, type_node)) = node.get(TYPE_FIELD) else {
        if matches!(node.value, NodeValue::Map(_)) {
            section.section_problem(format!("a backend needs `type`: one of {}", known_kinds()));
        } else {
            section.section_problem("expected a map of settings with `type`");
        }
        return None;
    };
    let Some(kind_text) = type_node.as_text() else {
        let at = Text::new("", type_node.at);
        section.problem(
            &at,
            TYPE_FIELD,
            format!("expected a backend type, one of: {}", known_kinds()),
        );
        return None;
    };
    let kind = section.text(&kind_text, TYPE_FIELD)?;
    if let Some(entry) = REGISTRY.iter().find(|entry| entry.kind == kind) {
        let protection = protection(node, section);
        let settings = (entry.read)(node, section)?;
        return Some(BackendConfig {
            kind: entry.kind,
            settings,
            protection,
            written: node.clone(),
        });
    }
    match OPTIONAL.iter().find(|(optional, _, _)| *optional == kind) {
        Some((_, product, feature)) => section.problem(
            &kind_text,
            TYPE_FIELD,
            format!(
                "this vaultbridge was built without {product} support (cargo feature `{feature}`)"
            ),
        ),
        None => section.problem(
            &kind_text,
            TYPE_FIELD,
            format!(
                "unknown backend type `{kind}`; expected one of: {}",
                known_kinds()
            ),
        ),
    }
    None
}

fn protection(node: &Node, section: &mut Section<'_, '_>) -> ProtectionOverrides {
    let field = |name: &str| node.get(name).and_then(|(_, value)| value.as_text());
    let raw = RawProtection {
        max_in_flight: field("max_in_flight"),
        breaker_failures: field("breaker_failures"),
        breaker_cooldown: field("breaker_cooldown"),
        breaker_max_cooldown: field("breaker_max_cooldown"),
    };
    ProtectionOverrides::check(&raw, section)
}

fn known_kinds() -> String {
    let mut kinds: Vec<&str> = REGISTRY.iter().map(|entry| entry.kind).collect();
    for (kind, _, _) in OPTIONAL {
        if !kinds.contains(kind) {
            kinds.push(kind);
        }
    }
    kinds.join(", ")
}

fn valid_backend_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A configured backend that could not be built: a problem the config could not see,
/// such as an unreadable CA file or an unset client-secret variable.
#[derive(Debug, thiserror::Error)]
#[error("backend `{backend}` ({kind}): {source}")]
pub(crate) struct BuildError {
    pub backend: String,
    /// The backend's `type` in the config.
    pub kind: &'static str,
    #[source]
    pub source: BackendError,
}

/// Builds every configured backend. No network call is made.
pub(crate) async fn build_all(
    backends: &BTreeMap<String, BackendConfig>,
) -> Result<BTreeMap<String, Arc<dyn Backend>>, BuildError> {
    let mut built = BTreeMap::new();
    for (name, backend) in backends {
        let instance = backend
            .settings
            .build()
            .await
            .map_err(|source| BuildError {
                backend: name.clone(),
                kind: backend.kind,
                source,
            })?;
        built.insert(name.clone(), instance);
    }
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The optional types' names are written here because a build without the feature
    /// has no crate to ask; this holds them to the crates' own names.
    #[cfg(all(feature = "aws", feature = "azure"))]
    #[test]
    fn optional_types_are_named_as_their_crates_name_them() {
        for (kind, _, _) in OPTIONAL {
            assert!(
                REGISTRY.iter().any(|entry| entry.kind == *kind),
                "`{kind}` is in OPTIONAL but no registered crate has that KIND"
            );
        }
    }

    #[test]
    fn every_type_is_registered_once() {
        let mut kinds: Vec<&str> = REGISTRY.iter().map(|entry| entry.kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), REGISTRY.len());
    }
}

//! The `definitions` section: named pointers to one secret (and optionally one key and
//! version of it) in one backend, or in several `sources` tried in order. Each source
//! is checked against what its backend can do, never against which backend it is.

use super::cache::RefreshAhead;
use crate::names;
use crate::registry::BackendConfig;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::time::Duration;
use vaultbridge_backend_core::config::{Location, Section, Text};
use vaultbridge_backend_core::{BackendError, ErrorKind, SecretRef, VersionSelector};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DefinitionConfig {
    /// Where the value is read, in order; never empty. A definition written with
    /// `backend` and `secret` has one.
    pub sources: Vec<SourceConfig>,
    /// Which failures of a source let the next one answer.
    pub fallback_on: FallbackOn,
    /// `None` here and below: the `cache` section's.
    pub ttl: Option<Duration>,
    pub max_stale: Option<Duration>,
    pub refresh_ahead: Option<Option<RefreshAhead>>,
    pub negative_ttl: Option<Duration>,
    pub trim: bool,
    pub description: String,
}

/// One place a definition's value may be read: a backend and what to ask it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceConfig {
    pub backend: String,
    pub secret: SecretRef,
}

/// The failures of a source after which the next source is asked. A denial is never
/// one of them: it means the daemon's identity was refused, a configuration problem
/// that falling back would hide (and a revoked access that must not keep working).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FallbackOn {
    /// The secret, or its key, is not in the source.
    pub not_found: bool,
    /// The source could not answer now: unreachable, timed out, throttled, its breaker
    /// open.
    pub temporary: bool,
    /// The secret is there but cannot be served (disabled, not a key/value map).
    pub failed_precondition: bool,
}

impl FallbackOn {
    pub(crate) const DEFAULT: Self = Self {
        not_found: true,
        temporary: true,
        failed_precondition: false,
    };

    /// Whether `err` from one source lets the next one answer.
    pub(crate) fn allows(self, err: &BackendError) -> bool {
        if err.kind() == ErrorKind::PermissionDenied {
            return false;
        }
        if err.is_temporary() {
            return self.temporary;
        }
        match err.kind() {
            ErrorKind::NotFound | ErrorKind::KeyNotFound => self.not_found,
            ErrorKind::FailedPrecondition => self.failed_precondition,
            _ => false,
        }
    }
}

impl Default for FallbackOn {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefinition {
    backend: Option<Text>,
    secret: Option<Text>,
    key: Option<Text>,
    version_id: Option<Text>,
    version_stage: Option<Text>,
    /// Spanned, so that `sources: []` can be pointed at.
    sources: Option<Spanned<Vec<RawSource>>>,
    fallback_on: Option<Vec<Text>>,
    ttl: Option<Text>,
    max_stale: Option<Text>,
    refresh_ahead: Option<Text>,
    negative_ttl: Option<Text>,
    trim: Option<Text>,
    description: Option<Text>,
}

/// One entry of `sources`: the fields a single-backend definition has for its source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    backend: Option<Text>,
    secret: Option<Text>,
    key: Option<Text>,
    version_id: Option<Text>,
    version_stage: Option<Text>,
}

impl RawSource {
    fn fields(&self) -> impl Iterator<Item = &Text> {
        [
            &self.backend,
            &self.secret,
            &self.key,
            &self.version_id,
            &self.version_stage,
        ]
        .into_iter()
        .flatten()
    }

    fn at(&self) -> Option<Location> {
        earliest(self.fields())
    }
}

fn earliest<'a>(texts: impl Iterator<Item = &'a Text>) -> Option<Location> {
    texts
        .map(|text| text.at)
        .min_by_key(|at| (at.line, at.column))
}

impl RawDefinition {
    /// The fields of its single source, when written without `sources`.
    fn single(&self) -> RawSource {
        RawSource {
            backend: self.backend.clone(),
            secret: self.secret.clone(),
            key: self.key.clone(),
            version_id: self.version_id.clone(),
            version_stage: self.version_stage.clone(),
        }
    }

    /// Where the definition was written (its first field), as near as its fields tell.
    pub(super) fn at(&self) -> Location {
        let own = [
            &self.backend,
            &self.secret,
            &self.key,
            &self.version_id,
            &self.version_stage,
            &self.ttl,
            &self.max_stale,
            &self.refresh_ahead,
            &self.negative_ttl,
            &self.trim,
            &self.description,
        ]
        .into_iter()
        .flatten();
        let fallback_on = self.fallback_on.iter().flatten();
        let sources = self
            .sources
            .as_ref()
            .map(|sources| Location::from(&sources.referenced));
        earliest(own.chain(fallback_on))
            .into_iter()
            .chain(sources)
            .min_by_key(|at| (at.line, at.column))
            .unwrap_or(Location::START)
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
        section.section_problem(err.to_string());
    }
    let single = raw.single();
    let sources = match (&raw.sources, single.at()) {
        (Some(_), Some(_)) => {
            section.section_problem(
                "set `backend` and `secret` (one source) or `sources` (several, tried in order), not both; move `backend`, `secret`, `key` and the version into the first entry of `sources`",
            );
            return None;
        }
        (None, None) => {
            section.section_problem(
                "a definition needs `backend` and `secret`, or `sources`: a list of them, tried in order",
            );
            return None;
        }
        (None, Some(_)) => vec![source(&single, backend_names, backends, section)?],
        (Some(spanned), None) => {
            let list = &spanned.value;
            if list.is_empty() {
                let at = Text::new("[]", Location::from(&spanned.referenced));
                section.problem(
                    &at,
                    "sources",
                    "`sources` is empty: list at least one `backend` and `secret`",
                );
                return None;
            }
            let mut checked = Vec::with_capacity(list.len());
            for (index, raw_source) in list.iter().enumerate() {
                let at = raw_source.at().unwrap_or(section.at());
                let mut entry = section.section(&format!("sources[{index}]"), at);
                if let Some(source) = source(raw_source, backend_names, backends, &mut entry) {
                    if let Some(first) = checked.iter().position(|seen| *seen == source) {
                        entry.section_problem(format!(
                            "the same backend, secret, key and version as `sources[{first}]`; a source read twice adds nothing"
                        ));
                    }
                    checked.push(source);
                }
            }
            if checked.len() != list.len() {
                return None;
            }
            checked
        }
    };
    let fallback_on = match &raw.fallback_on {
        None => FallbackOn::DEFAULT,
        Some(values) => fallback_on(values, raw.sources.is_some(), section)?,
    };
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
        sources,
        fallback_on,
        ttl,
        max_stale,
        refresh_ahead,
        negative_ttl,
        trim,
        description,
    })
}

/// One source, checked against what its backend can do.
fn source(
    raw: &RawSource,
    backend_names: &[&str],
    backends: &BTreeMap<String, BackendConfig>,
    section: &mut Section<'_, '_>,
) -> Option<SourceConfig> {
    let Some(raw_backend) = &raw.backend else {
        section.section_problem("`backend` is missing: name the backend to read the secret from");
        return None;
    };
    let backend_name = section.text(raw_backend, "backend")?;
    if !backend_names.contains(&backend_name.as_str()) {
        section.problem(
            raw_backend,
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
    let Some(raw_secret) = &raw.secret else {
        section.section_problem("`secret` is missing: the secret's name or id in the backend");
        return None;
    };
    let id = section.text(raw_secret, "secret")?;
    if id.is_empty() {
        section.problem(
            raw_secret,
            "secret",
            "expected the secret's name or id, got an empty value",
        );
    }
    if let Some(backend) = backend
        && let Err(message) = backend.settings.check_secret_id(&id)
    {
        section.problem(raw_secret, "secret", message);
    }
    let key = section.optional_text(raw.key.as_ref(), "key");
    if let (Some(""), Some(value)) = (key.as_deref(), &raw.key) {
        section.problem(value, "key", "expected a key name, got an empty value");
    }
    let version = version(raw, backend, section)?;
    Some(SourceConfig {
        backend: backend_name,
        secret: SecretRef { id, key, version },
    })
}

/// `fallback_on: [not_found, temporary, failed_precondition]`, with `sources` only.
fn fallback_on(
    values: &[Text],
    has_sources: bool,
    section: &mut Section<'_, '_>,
) -> Option<FallbackOn> {
    let mut fallback = FallbackOn {
        not_found: false,
        temporary: false,
        failed_precondition: false,
    };
    let mut valid = true;
    for value in values {
        let Some(text) = section.text(value, "fallback_on") else {
            valid = false;
            continue;
        };
        match text.as_str() {
            "not_found" => fallback.not_found = true,
            "temporary" => fallback.temporary = true,
            "failed_precondition" => fallback.failed_precondition = true,
            "permission_denied" => {
                section.problem(
                    value,
                    "fallback_on",
                    "a denial is never passed over: it means the daemon's identity was refused by that backend, which another source would hide; fix the identity's access, or remove the source",
                );
                valid = false;
            }
            _ => {
                section.expected(
                    value,
                    "fallback_on",
                    "`not_found`, `temporary` or `failed_precondition`",
                );
                valid = false;
            }
        }
    }
    if !has_sources {
        section.section_problem(
            "`fallback_on` applies to `sources`; a definition with one `backend` has nothing to fall back to",
        );
        return None;
    }
    if values.is_empty() {
        section.section_problem(
            "`fallback_on` is empty, so no source after the first would ever be asked: list at least one of `not_found`, `temporary`, `failed_precondition`",
        );
        return None;
    }
    valid.then_some(fallback)
}

fn version(
    raw: &RawSource,
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

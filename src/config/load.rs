//! Reading the YAML into raw sections that reject unknown fields, before any check.

use super::cache::RawCache;
use super::clients::{RawAudit, RawClient};
use super::definitions::RawDefinition;
use super::server::RawServer;
use crate::jira::config::RawJira;
use serde::Deserialize;
use std::collections::BTreeMap;
use vaultbridge_backend_core::config::{Location, Node, Problem};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: Option<RawServer>,
    #[serde(default)]
    pub(super) cache: Option<RawCache>,
    /// Kept as located trees until each backend's `type` picks its reader.
    #[serde(default)]
    pub(super) backends: BTreeMap<String, Node>,
    #[serde(default)]
    pub(super) definitions: BTreeMap<String, RawDefinition>,
    #[serde(default)]
    pub(super) jira: Option<RawJira>,
    #[serde(default)]
    pub(super) clients: Option<BTreeMap<String, RawClient>>,
    #[serde(default)]
    pub(super) audit: Option<RawAudit>,
}

pub(super) fn parse_raw(text: &str) -> Result<RawConfig, Problem> {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.budget = Some(large_document_budget());
    // A backend's settings are read as untyped values first (see `Node`); these keep
    // `0660` and `1_000` as written there, as they are everywhere else.
    options.leading_zero_numbers_as_strings = true;
    options.underscored_numbers_as_strings = true;
    let mut path = String::new();
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, Option<RawConfig>>(de).map_err(|err| {
            path = err.path().to_string();
            err.into_inner()
        })
    });
    parsed.map(Option::unwrap_or_default).map_err(|err| {
        let at = err
            .location()
            .map_or(Location::START, |at| Location::from(&at));
        let message = err.without_snippet().to_string();
        let message = strip_location_suffix(&message);
        // Located values deserialize through an inner `value` field; users never see it.
        let path = path.strip_suffix(".value").unwrap_or(&path);
        let path = if path == "." || path == "?" { "" } else { path };
        Problem {
            at,
            path: path.to_owned(),
            message: explain_parse_message(message),
        }
    })
}

/// serde-saphyr's guard against YAML bombs, with room for very large configs: its
/// default stops at 250,000 nodes, about 80,000 definitions.
fn large_document_budget() -> serde_saphyr::Budget {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = 10_000_000;
    budget.max_events = 20_000_000;
    budget
}

/// serde-saphyr appends " at line L, column C"; the location is printed separately.
fn strip_location_suffix(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message,
    }
}

fn explain_parse_message(message: &str) -> String {
    if message.contains("expected string scalar") {
        "expected a single value (text, number or duration), not a list or map".to_owned()
    } else {
        message.to_owned()
    }
}

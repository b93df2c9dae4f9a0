//! The `plugin` backend's settings, as the config file gives them.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use vaultbridge_backend_core::config::{Node, NodeValue, Section, Text};

/// Where the plugin runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// Someone else runs the plugin on this socket.
    Socket(PathBuf),
    /// vaultbridge starts the plugin itself and keeps it running.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
        /// Added to the daemon's environment for the plugin.
        env: BTreeMap<String, String>,
        /// Where the plugin listens; a private temporary directory when not given.
        socket: Option<PathBuf>,
    },
}

/// The `plugin` backend instance's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    pub launch: Launch,
    /// The plugin's own settings, passed in `Configure` (scalars as strings).
    pub plugin_config: serde_json::Map<String, serde_json::Value>,
    /// Longest a single call to the plugin may take.
    pub timeout: Duration,
    /// Longest a started plugin may take to answer SERVING.
    pub start_timeout: Duration,
    /// How often a plugin with revisions is asked for its revision.
    pub revision_interval: Duration,
}

impl PluginConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_REVISION_INTERVAL: Duration = Duration::from_secs(1);

    /// Settings for a plugin someone else runs on `socket`, with default timeouts.
    pub fn socket(socket: impl Into<PathBuf>) -> Self {
        Self::with_launch(Launch::Socket(socket.into()))
    }

    pub fn with_launch(launch: Launch) -> Self {
        Self {
            launch,
            plugin_config: serde_json::Map::new(),
            timeout: Self::DEFAULT_TIMEOUT,
            start_timeout: Self::DEFAULT_START_TIMEOUT,
            revision_interval: Self::DEFAULT_REVISION_INTERVAL,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPluginConfig {
    socket: Option<Text>,
    command: Option<Vec<Text>>,
    env: Option<BTreeMap<String, Text>>,
    config: Option<Node>,
    timeout: Option<Text>,
    start_timeout: Option<Text>,
    revision_interval: Option<Text>,
}

/// Checks the settings as written, recording every problem in `section`.
pub(crate) fn check(raw: RawPluginConfig, section: &mut Section<'_, '_>) -> Option<PluginConfig> {
    let socket = match &raw.socket {
        Some(text) => Some(section.file_path(text, "socket")?),
        None => None,
    };
    let launch = match (raw.command, socket) {
        (None, None) => {
            section.section_problem(
                "a `plugin` backend needs `socket` (a plugin someone else runs) or `command` \
                 (a plugin vaultbridge starts)",
            );
            return None;
        }
        (None, Some(socket)) => {
            if raw.env.is_some() {
                section.section_problem(
                    "`env` applies only with `command`: vaultbridge does not start a plugin \
                     it only connects to",
                );
            }
            Launch::Socket(socket)
        }
        (Some(command), socket) => {
            let mut argv = Vec::with_capacity(command.len());
            for part in &command {
                argv.push(section.text(part, "command")?);
            }
            if argv.first().is_none_or(String::is_empty) {
                section.section_problem("`command` needs at least the program to run");
                return None;
            }
            let mut env = BTreeMap::new();
            for (name, value) in raw.env.iter().flatten() {
                if name.is_empty() || name.contains(['=', '\0']) {
                    section.problem(value, "env", format!("`{name}` cannot be a variable name"));
                    continue;
                }
                env.insert(name.clone(), section.text(value, "env")?);
            }
            Launch::Command { argv, env, socket }
        }
    };
    let mut config = PluginConfig::with_launch(launch);
    section.timeout(raw.timeout.as_ref(), "timeout", &mut config.timeout);
    section.timeout(
        raw.start_timeout.as_ref(),
        "start_timeout",
        &mut config.start_timeout,
    );
    section.timeout(
        raw.revision_interval.as_ref(),
        "revision_interval",
        &mut config.revision_interval,
    );
    if let Some(node) = &raw.config {
        match to_json(node, section)? {
            serde_json::Value::Object(map) => config.plugin_config = map,
            serde_json::Value::Null => {}
            _ => {
                section.problem(
                    &Text::new("", node.at),
                    "config",
                    "expected a map of the plugin's own settings",
                );
                return None;
            }
        }
    }
    Some(config)
}

/// The plugin's settings as JSON, `${VAR}` expanded. YAML scalars stay strings: the
/// located tree keeps them as written, and a plugin knows its own types.
fn to_json(node: &Node, section: &mut Section<'_, '_>) -> Option<serde_json::Value> {
    Some(match &node.value {
        NodeValue::Null => serde_json::Value::Null,
        NodeValue::Scalar(text) => {
            serde_json::Value::String(section.text(&Text::new(text.clone(), node.at), "config")?)
        }
        NodeValue::List(items) => serde_json::Value::Array(
            items
                .iter()
                .map(|item| to_json(item, section))
                .collect::<Option<_>>()?,
        ),
        NodeValue::Map(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|(name, value)| Some((name.value.clone(), to_json(value, section)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

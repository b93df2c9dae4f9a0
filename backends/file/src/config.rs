//! The `file` backend's settings, as the config file gives them.

use crate::parse::FileFormat;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vaultbridge_backend_core::config::{Section, Text};

/// The `file` backend instance's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    pub path: PathBuf,
    pub format: FileFormat,
    /// How stale a cache hit may be after an edit; see the crate docs.
    pub change_check_interval: Duration,
}

impl FileConfig {
    pub const DEFAULT_CHANGE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

    /// A config with the default change-check interval.
    pub fn new(path: impl Into<PathBuf>, format: FileFormat) -> Self {
        Self {
            path: path.into(),
            format,
            change_check_interval: Self::DEFAULT_CHANGE_CHECK_INTERVAL,
        }
    }
}

impl FileFormat {
    /// The format a file name implies, if it implies one.
    pub(crate) fn from_path(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            Some(Self::Yaml)
        } else if name.ends_with(".json") {
            Some(Self::Json)
        } else if name.starts_with(".env") || name.ends_with(".env") {
            Some(Self::Dotenv)
        } else {
            None
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileConfig {
    path: Option<Text>,
    format: Option<Text>,
    change_check_interval: Option<Text>,
}

/// Checks the settings as written, recording every problem in `section`.
pub(crate) fn check(raw: RawFileConfig, section: &mut Section<'_, '_>) -> Option<FileConfig> {
    let Some(path_text) = &raw.path else {
        section.section_problem("a `file` backend needs `path`: the secrets file to read");
        return None;
    };
    let file = section.file_path(path_text, "path")?;
    let format = match &raw.format {
        Some(value) => {
            let text = section.text(value, "format")?;
            match text.as_str() {
                "yaml" => FileFormat::Yaml,
                "json" => FileFormat::Json,
                "dotenv" => FileFormat::Dotenv,
                other => {
                    section.problem(
                        value,
                        "format",
                        format!("unknown format `{other}`; expected yaml, json or dotenv"),
                    );
                    return None;
                }
            }
        }
        None => match FileFormat::from_path(&file) {
            Some(format) => format,
            None => {
                section.problem(
                    path_text,
                    "path",
                    "cannot tell the file's format from its name (.yaml, .yml, .json, .env); set `format: yaml`, `json` or `dotenv`",
                );
                return None;
            }
        },
    };
    let change_check_interval = match &raw.change_check_interval {
        Some(value) => section.duration(value, "change_check_interval")?,
        None => FileConfig::DEFAULT_CHANGE_CHECK_INTERVAL,
    };
    Some(FileConfig {
        path: file,
        format,
        change_check_interval,
    })
}

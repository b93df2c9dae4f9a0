//! Turning what was written into checked settings: each check records a located
//! [`Problem`] and goes on, so that one run reports everything wrong with a config.

use super::node::{Node, read_node};
use super::text::{Location, Text};
use super::vars::{Vars, interpolate, references};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One thing wrong with a config, located. Messages quote what the user wrote, never
/// what a `${VAR}` expanded to where that could be a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: Location,
    /// The field's path, `backends.aws.region`; empty for the top level.
    pub path: String,
    pub message: String,
}

/// Collects the problems and warnings of one config load.
pub struct Checker<'a> {
    vars: &'a dyn Vars,
    base: &'a Path,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Checker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("base", &self.base)
            .field("problems", &self.problems)
            .finish_non_exhaustive()
    }
}

impl<'a> Checker<'a> {
    /// `base`: the directory relative paths are relative to (empty: the working
    /// directory).
    pub fn new(vars: &'a dyn Vars, base: &'a Path) -> Self {
        Self {
            vars,
            base,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The checks of one section of the config, `path` being where it sits
    /// (`backends.aws`) and `at` where it was written.
    pub fn section(&mut self, path: impl Into<String>, at: Location) -> Section<'_, 'a> {
        Section {
            checker: self,
            path: path.into(),
            at,
        }
    }

    pub fn problem(&mut self, at: Location, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            at,
            path: path.into(),
            message: message.into(),
        });
    }

    /// Something fixed or worth a look, to be logged once at start (never a value).
    pub fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    /// The problems found (none: the config is valid) and the warnings.
    pub fn finish(self) -> (Vec<Problem>, Vec<String>) {
        (self.problems, self.warnings)
    }
}

/// The shortest expansion [`Section::problem`] hides.
const MIN_HIDDEN_LEN: usize = 4;

/// The checks of one config section. Field names are relative to the section.
#[derive(Debug)]
pub struct Section<'c, 'a> {
    checker: &'c mut Checker<'a>,
    path: String,
    at: Location,
}

impl<'a> Section<'_, 'a> {
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Where the section itself was written.
    pub fn at(&self) -> Location {
        self.at
    }

    /// A section inside this one.
    pub fn section(&mut self, field: &str, at: Location) -> Section<'_, 'a> {
        let path = self.field_path(field);
        self.checker.section(path, at)
    }

    /// `backends.aws` + `region`; an empty field is the section itself.
    fn field_path(&self, field: &str) -> String {
        match (self.path.is_empty(), field.is_empty()) {
            (_, true) => self.path.clone(),
            (true, false) => field.to_owned(),
            (false, false) => format!("{}.{field}", self.path),
        }
    }

    /// A problem with the value `at`, in `field` (empty: the section itself).
    ///
    /// Checks quote values as written ([`Self::expected`]); as a second line, any
    /// expansion of a `${VAR}` in `at` that a message still carries is put back as
    /// written, so that no check, present or future, can print a variable's value.
    /// Values under 4 bytes are left: they cannot be secrets worth the garbled message
    /// (`from ${N} to ${N}0`) that replacing a `1` would make.
    pub fn problem(&mut self, at: &Text, field: &str, message: impl Into<String>) {
        let path = self.field_path(field);
        let mut message = message.into();
        if at.value.contains("${") {
            let mut expansions = references(&at.value, self.checker.vars);
            if let Ok(whole) = interpolate(&at.value, self.checker.vars) {
                expansions.push((at.value.clone(), whole));
            }
            expansions.sort_by_key(|(_, expanded)| std::cmp::Reverse(expanded.len()));
            for (written, expanded) in expansions {
                if expanded.len() >= MIN_HIDDEN_LEN && !written.contains(&expanded) {
                    message = message.replace(&expanded, &written);
                }
            }
        }
        self.checker.problem(at.at, path, message);
    }

    /// A problem with the section as a whole, such as a missing field.
    pub fn section_problem(&mut self, message: impl Into<String>) {
        let (at, path) = (self.at, self.path.clone());
        self.checker.problem(at, path, message);
    }

    pub fn warn(&mut self, message: impl Into<String>) {
        self.checker.warn(message);
    }

    /// "expected {what}, got `{value}`", quoting the value as written: with `${S}` in
    /// it, the message shows `${S}`, never what it expanded to, which may be a secret
    /// (a `cache.ttl: "${S}"` once printed the value of `S`). Every check that refuses
    /// a value says so through this.
    pub fn expected(&mut self, value: &Text, field: &str, what: &str) {
        let message = format!("expected {what}, got `{}`", value.value);
        self.problem(value, field, message);
    }

    /// Reads a section kept as a [`Node`] into its config type. Unknown fields are
    /// reported as "`x` does not apply to {what}; their fields are: ..." (`always`
    /// lists the fields the caller reads itself, such as a backend's `type`), and the
    /// known fields are still read.
    pub fn read<T: DeserializeOwned>(
        &mut self,
        node: &Node,
        always: &[&str],
        what: &str,
    ) -> Option<T> {
        let mut unknown = Vec::new();
        let result = read_node::<T>(node, &self.path, always, &mut unknown);
        for field in unknown {
            let fields: Vec<&str> = always.iter().chain(field.expected).copied().collect();
            self.checker.problem(
                field.at,
                field.path,
                format!(
                    "`{}` does not apply to {what}; their fields are: {}",
                    field.field,
                    fields.join(", ")
                ),
            );
        }
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                self.checker.problem(err.at, err.path, err.message);
                None
            }
        }
    }

    /// The value with `${VAR}` expanded, or `None` after recording why not. A message
    /// about the value quotes `value.value` (see [`Self::expected`]), never this.
    pub fn text(&mut self, value: &Text, field: &str) -> Option<String> {
        match interpolate(&value.value, self.checker.vars) {
            Ok(text) => Some(text),
            Err(err) => {
                self.problem(value, field, err.to_string());
                None
            }
        }
    }

    pub fn optional_text(&mut self, value: Option<&Text>, field: &str) -> Option<String> {
        value.and_then(|value| self.text(value, field))
    }

    pub fn duration(&mut self, value: &Text, field: &str) -> Option<Duration> {
        let text = self.text(value, field)?;
        match humantime::parse_duration(text.trim()) {
            Ok(duration) => Some(duration),
            Err(_) => {
                self.expected(value, field, "a duration such as `30s`, `5m` or `1h30m`");
                None
            }
        }
    }

    /// Sets `target` from a duration that must be longer than zero, when one is written.
    pub fn timeout(&mut self, value: Option<&Text>, field: &str, target: &mut Duration) {
        if let Some(value) = value
            && let Some(duration) = self.duration(value, field)
        {
            if duration.is_zero() {
                self.problem(value, field, "a timeout must be longer than zero");
            } else {
                *target = duration;
            }
        }
    }

    /// Attempts per call, retries included: 1 to 10.
    pub fn attempts(&mut self, value: &Text, field: &str) -> Option<u32> {
        let text = self.text(value, field)?;
        match text.trim().parse::<u32>() {
            Ok(attempts @ 1..=10) => Some(attempts),
            _ => {
                self.expected(value, field, "a number of attempts from 1 to 10");
                None
            }
        }
    }

    pub fn boolean(&mut self, value: &Text, field: &str) -> Option<bool> {
        match self.text(value, field)?.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                self.expected(value, field, "`true` or `false`");
                None
            }
        }
    }

    /// A file path; a relative one is relative to the config file's directory.
    pub fn file_path(&mut self, value: &Text, field: &str) -> Option<PathBuf> {
        let text = self.text(value, field)?;
        if text.is_empty() {
            self.problem(value, field, "expected a file path, got an empty value");
            return None;
        }
        let candidate = PathBuf::from(text);
        let base = self.checker.base;
        Some(if candidate.is_relative() && !base.as_os_str().is_empty() {
            base.join(candidate)
        } else {
            candidate
        })
    }
}

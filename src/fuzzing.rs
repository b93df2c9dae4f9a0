//! Entry points for the fuzz targets in `fuzz/` (the `fuzzing` feature). Not an API:
//! each wraps one parser that reads outside input, so that the daemon's own modules
//! stay private.

use crate::config::Config;
use std::collections::BTreeMap;
use std::path::Path;

/// The variables a fuzzed config may refer to: `${SECRET}` expands to this.
pub const SECRET_VALUE: &str = "fuzz-s3cr3t-value-7f3a";

/// Loads a config from `text` (relative paths against a directory that does not
/// exist); `Err` holds the message `check` would print.
pub fn config(text: &str) -> Result<(), String> {
    let vars = BTreeMap::from([("SECRET".to_owned(), SECRET_VALUE.to_owned())]);
    Config::parse(
        text,
        "fuzz.yaml",
        Path::new("/nonexistent/vaultbridge-fuzz"),
        &vars,
    )
    .map(drop)
    .map_err(|err| err.to_string())
}

/// Checks a definition or connection name.
pub fn name(text: &str) -> Result<(), String> {
    crate::names::validate(text).map_err(|err| err.to_string())
}

/// Normalises a Jira site URL as written in the config; `Ok` holds the base URL.
pub fn jira_site_url(text: &str) -> Result<String, String> {
    crate::jira::config::normalise_site_url(text).map(|normalised| normalised.url)
}

/// Decodes `text` as a path and parses it as the query of every HTTP route.
pub fn http_query(text: &str) {
    crate::http::fuzz_query(text);
}

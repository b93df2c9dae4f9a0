//! Properties of the config loader over generated input: a name the validator accepts
//! comes back from a config unchanged, and no error ever quotes what a `${VAR}`
//! expanded to (it may be a secret someone put in the environment).

use super::Config;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

fn parse(text: &str, vars: &BTreeMap<String, String>) -> Result<Config, String> {
    Config::parse(text, "prop.yaml", Path::new(""), vars).map_err(|err| err.to_string())
}

proptest! {
    #[test]
    fn a_name_the_validator_accepts_round_trips_through_a_config(
        name in "[A-Za-z0-9._/-]{1,256}"
    ) {
        prop_assert_eq!(crate::names::validate(&name), Ok(()));
        // Single quotes: the rule's characters need no escaping inside them.
        let text = format!(
            "server:\n  unix_socket: vb.sock\nbackends:\n  e:\n    type: env\ndefinitions:\n  '{name}':\n    backend: e\n    secret: A\n"
        );
        let config = parse(&text, &BTreeMap::new()).map_err(TestCaseError::fail)?;
        prop_assert_eq!(config.definitions.keys().collect::<Vec<_>>(), vec![&name]);
    }
}

/// Configs with `${S}` in one field each; `S` is set to a generated secret-looking
/// value that no field accepts as written here.
const FIELDS: &[&str] = &[
    "server:\n  unix_socket: vb.sock\n  unix_socket_mode: \"${S}\"\n",
    "server:\n  tcp: \"${S}\"\n",
    "server:\n  unix_socket: vb.sock\n  shutdown_grace: \"${S}\"\n",
    "cache:\n  ttl: \"${S}\"\n",
    "cache:\n  max_stale: \"${S}\"\n",
    "cache:\n  max_entries: \"${S}\"\n",
    "cache:\n  warm_up: \"${S}\"\n",
    "cache:\n  refresh_ahead: \"${S}\"\n",
    "cache:\n  negative_ttl: \"${S}\"\n",
    "cache:\n  max_in_flight: \"${S}\"\n",
    "cache:\n  breaker_failures: \"${S}\"\n",
    "cache:\n  breaker_cooldown: \"${S}\"\n",
    "backends:\n  e:\n    type: env\n  f:\n    type: file\n    path: x.yaml\n    change_check_interval: \"${S}\"\n",
    "backends:\n  e:\n    type: env\n  f:\n    type: file\n    path: x.yaml\n    format: \"${S}\"\n",
    "backends:\n  e:\n    type: env\n  f:\n    type: \"${S}\"\n",
    "backends:\n  e:\n    type: env\n    prefix: \"${S}\"\n",
    "definitions:\n  d:\n    backend: e\n    secret: A\n    trim: \"${S}\"\n",
    "definitions:\n  d:\n    backend: e\n    secret: A\n    ttl: \"${S}\"\n",
    "definitions:\n  d:\n    backend: \"${S}\"\n    secret: A\n",
    "definitions:\n  d:\n    backend: e\n    secret: \"${S}\"\n",
    "jira:\n  expiry_warning: \"${S}\"\n",
    "jira:\n  connections:\n    j:\n      url: \"${S}\"\n      email: dev@example.com\n      token: d\n",
    "jira:\n  connections:\n    j:\n      url: https://example.atlassian.net\n      email: \"${S}\"\n      token: d\n",
    "jira:\n  connections:\n    j:\n      url: https://example.atlassian.net\n      email: dev@example.com\n      token: d\n      expires_at: \"${S}\"\n",
    "jira:\n  connections:\n    j:\n      url: https://example.atlassian.net\n      email: dev@example.com\n      token: d\n      deployment: \"${S}\"\n",
    "clients:\n  c:\n    uids: [\"${S}\"]\n    definitions: [d]\n",
    "clients:\n  c:\n    gids: [\"${S}\"]\n    definitions: [d]\n",
    "clients:\n  c:\n    uids: [0]\n    definitions: [\"${S}\"]\n",
    "clients:\n  c:\n    uids: [0]\n    definitions: [d]\naudit:\n  sink: \"${S}\"\n",
];

/// A value shaped like a token or password: long, mixed, sometimes with the
/// punctuation pastes and generators use.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{6}[A-Za-z0-9+/=@:!#%_. -]{6,26}[A-Za-z0-9]{4}"
}

proptest! {
    #[test]
    fn config_errors_never_contain_what_a_variable_expanded_to(
        field in prop::sample::select(FIELDS),
        value in secret(),
    ) {
        // The field's own section replaces the base's section of that name.
        let base = [
            "server:\n  unix_socket: vb.sock\n",
            "backends:\n  e:\n    type: env\n",
            "definitions:\n  d:\n    backend: e\n    secret: A\n",
        ];
        let section = |text: &str| text.split(':').next().unwrap_or_default().to_owned();
        let mut text: String = base
            .iter()
            .filter(|part| section(part) != section(field))
            .copied()
            .collect();
        text.push_str(field);
        let vars = BTreeMap::from([("S".to_owned(), value.clone())]);
        if let Err(message) = parse(&text, &vars) {
            prop_assert!(
                !message.contains(value.trim()),
                "the error quotes the expansion of `${{S}}`:\n{}\n--- config:\n{}",
                message,
                text
            );
        }
    }
}

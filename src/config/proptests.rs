//! Properties of the config loader over generated input: a name the validator accepts
//! comes back from a config unchanged.

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

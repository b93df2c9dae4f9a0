//! The located YAML tree: locations kept, every unknown field reported.

use super::*;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: Option<Text>,
    tries: Option<Text>,
    hosts: Option<BTreeMap<String, Text>>,
}

fn node(yaml: &str) -> Node {
    serde_saphyr::from_str(yaml).expect("YAML")
}

fn read(yaml: &str) -> (Result<Settings, NodeError>, Vec<UnknownField>) {
    let mut unknown = Vec::new();
    let result = read_node(&node(yaml), "backends.b", &["type"], &mut unknown);
    (result, unknown)
}

#[test]
fn fields_keep_their_text_and_location() {
    let (settings, unknown) =
        read("type: x\nurl: https://a\ntries: 3\nhosts:\n  a.example: 10.0.0.1:443\n");
    let settings = settings.expect("read");
    assert!(unknown.is_empty(), "{unknown:?}");
    let url = settings.url.expect("url");
    assert_eq!(
        (url.value.as_str(), url.at),
        ("https://a", Location { line: 2, column: 6 })
    );
    assert_eq!(settings.tries.expect("tries").value, "3");
    let hosts = settings.hosts.expect("hosts");
    assert_eq!(
        hosts["a.example"].at,
        Location {
            line: 5,
            column: 14
        }
    );
}

#[test]
fn every_unknown_field_is_collected_and_the_known_ones_are_still_read() {
    let (settings, unknown) = read("regoin: x\nurl: https://a\nprefix: y\n");
    assert_eq!(settings.expect("read").url.expect("url").value, "https://a");
    let found: Vec<(&str, &str, Location)> = unknown
        .iter()
        .map(|field| (field.field.as_str(), field.path.as_str(), field.at))
        .collect();
    assert_eq!(
        found,
        [
            (
                "regoin",
                "backends.b.regoin",
                Location { line: 1, column: 1 }
            ),
            (
                "prefix",
                "backends.b.prefix",
                Location { line: 3, column: 1 }
            ),
        ]
    );
    assert_eq!(unknown[0].expected, ["url", "tries", "hosts"]);
}

#[test]
fn an_empty_value_is_absent() {
    let (settings, _) = read("url:\ntries: ~\n");
    let settings = settings.expect("read");
    assert_eq!((settings.url, settings.tries), (None, None));
}

#[test]
fn a_map_where_a_value_belongs_is_located_at_the_map() {
    let (settings, _) = read("url:\n  a: b\n");
    let err = settings.expect_err("a map is not a value");
    assert_eq!(err.path, "backends.b.url");
    assert_eq!(err.at, Location { line: 2, column: 3 });
    assert!(err.message.contains("not a list or map"), "{err}");
    let (settings, _) = read("hosts:\n  a.example: [1, 2]\n");
    let err = settings.expect_err("a list is not a value");
    assert_eq!(err.path, "backends.b.hosts.a.example");
}

/// A setting kept as a tree (a plugin's own `config`) is a node read inside a
/// node: its keys keep their text and location too.
#[test]
fn a_map_kept_as_a_node_inside_settings_keeps_its_keys() {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Nested {
        config: Option<Node>,
    }
    let mut unknown = Vec::new();
    let nested: Nested = read_node(
        &node("config:\n  gnupg_home: /g\n  hosts: [a]\n"),
        "backends.p",
        &[],
        &mut unknown,
    )
    .expect("read");
    let config = nested.config.expect("config");
    let (key, value) = config.get("gnupg_home").expect("the key");
    assert_eq!(key.at, Location { line: 2, column: 3 });
    assert_eq!(value.as_text().expect("a value").value, "/g");
    assert!(
        matches!(&config.get("hosts").expect("hosts").1.value, NodeValue::List(items) if items.len() == 1)
    );
}

#[test]
fn a_value_where_settings_belong_is_refused() {
    let (settings, _) = read("just text\n");
    let err = settings.expect_err("not a map");
    assert_eq!(
        (err.path.as_str(), err.message.as_str()),
        ("backends.b", "expected a map of settings")
    );
}

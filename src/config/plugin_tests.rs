//! The `plugin` backend's settings: what is checked, and how each problem is reported.

use super::tests::{parse, problems};
use std::path::PathBuf;
use std::time::Duration;
use vaultbridge_backend_plugin::{Launch, PluginConfig};

const SERVER: &str = "server:\n  tcp: 127.0.0.1:1\nbackends:\n  p:\n    type: plugin\n";

fn plugin(config: &super::Config) -> &PluginConfig {
    config.backends["p"]
        .settings
        .as_any()
        .downcast_ref::<PluginConfig>()
        .expect("a plugin backend")
}

#[test]
fn a_started_plugin_keeps_its_command_env_config_and_timeouts() {
    let config = parse(&format!(
        "{SERVER}    command: [python3, plugin.py, --verbose]\n    env:\n      PASSWORD_STORE_DIR: /home/dev/.password-store\n    socket: run/p.sock\n    config:\n      gnupg_home: /home/dev/.gnupg\n      retries: 3\n      hosts: [a, b]\n    timeout: 2s\n    start_timeout: 30s\n    revision_interval: 250ms\n"
    ))
    .expect("valid");
    let settings = plugin(&config);
    assert_eq!(
        settings.launch,
        Launch::Command {
            argv: vec!["python3".into(), "plugin.py".into(), "--verbose".into()],
            env: [(
                "PASSWORD_STORE_DIR".to_owned(),
                "/home/dev/.password-store".to_owned()
            )]
            .into(),
            socket: Some(PathBuf::from("/etc/vb/run/p.sock")),
        }
    );
    // Scalars reach the plugin as written, as strings: the plugin knows its own types.
    assert_eq!(
        serde_json::Value::Object(settings.plugin_config.clone()),
        serde_json::json!({"gnupg_home": "/home/dev/.gnupg", "retries": "3", "hosts": ["a", "b"]})
    );
    assert_eq!(settings.timeout, Duration::from_secs(2));
    assert_eq!(settings.start_timeout, Duration::from_secs(30));
    assert_eq!(settings.revision_interval, Duration::from_millis(250));
}

#[test]
fn a_plugin_someone_else_runs_needs_only_its_socket() {
    let config = parse(&format!("{SERVER}    socket: /run/plugins/p.sock\n")).expect("valid");
    let settings = plugin(&config);
    assert_eq!(
        settings.launch,
        Launch::Socket(PathBuf::from("/run/plugins/p.sock"))
    );
    assert_eq!(settings.timeout, PluginConfig::DEFAULT_TIMEOUT);
    assert!(settings.plugin_config.is_empty());
}

#[test]
fn plugin_settings_problems_are_reported_with_their_field() {
    for (settings, expected) in [
        (
            "    timeout: 5s\n",
            "backends.p: a `plugin` backend needs `socket` (a plugin someone else runs) or `command` (a plugin vaultbridge starts)",
        ),
        (
            "    socket: /run/p.sock\n    env:\n      A: b\n",
            "backends.p: `env` applies only with `command`",
        ),
        (
            "    command: []\n",
            "backends.p: `command` needs at least the program to run",
        ),
        (
            "    command: ['']\n",
            "backends.p: `command` needs at least the program to run",
        ),
        (
            "    command: [plugin]\n    env:\n      A=B: c\n",
            "backends.p.env: `A=B` cannot be a variable name",
        ),
        (
            "    command: [plugin]\n    timeout: soon\n",
            "backends.p.timeout: expected a duration",
        ),
        (
            "    command: [plugin]\n    start_timeout: 0s\n",
            "backends.p.start_timeout:",
        ),
        (
            "    command: [plugin]\n    config: [a, b]\n",
            "backends.p.config: expected a map of the plugin's own settings",
        ),
        (
            "    command: [plugin]\n    region: eu-west-1\n",
            "backends.p.region: `region` does not apply to `plugin` backends",
        ),
        ("    command: [plugin, [nested]]\n", "backends.p.command"),
    ] {
        let text = problems(&format!("{SERVER}{settings}")).join("\n");
        assert!(
            text.contains(expected),
            "for\n{settings}expected `{expected}` in:\n{text}"
        );
    }
}

#[test]
fn a_variable_in_the_plugins_config_is_expanded_but_never_quoted_in_an_error() {
    let text = problems(&format!(
        "{SERVER}    command: [plugin]\n    timeout: \"${{HOME}}\"\n"
    ))
    .join("\n");
    assert!(text.contains("backends.p.timeout"), "{text}");
    assert!(text.contains("${HOME}"), "quoted as written: {text}");
    assert!(!text.contains("/home/u"), "never the value: {text}");
}

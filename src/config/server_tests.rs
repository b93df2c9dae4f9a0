//! The `server` section's limits, the socket mode and TCP checks, and config errors
//! that must quote `${VAR}` as written for every knob.

use super::tests::{MINIMAL, parse, problems};
use super::{Config, ServerLimits};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const SOCKET: &str = "server:\n  unix_socket: /run/vb/vb.sock\n";

#[test]
fn limits_have_their_documented_defaults() {
    let config = parse(SOCKET).expect("valid");
    assert_eq!(
        config.server.limits,
        ServerLimits {
            max_connections: 256,
            max_connections_per_peer: 128,
            max_concurrent_streams: 100,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_request_size: 256 * 1024,
            request_timeout: Duration::from_secs(60),
        }
    );
}

#[test]
fn limits_are_read_from_the_server_section() {
    let config = parse(&format!(
        "{SOCKET}  max_connections: 1_000\n  max_connections_per_peer: 250\n  max_concurrent_streams: 32\n  handshake_timeout: 500ms\n  idle_timeout: 5m\n  max_request_size: 1MiB\n  request_timeout: 90s\n"
    ))
    .expect("valid");
    assert_eq!(
        config.server.limits,
        ServerLimits {
            max_connections: 1000,
            max_connections_per_peer: 250,
            max_concurrent_streams: 32,
            handshake_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(300),
            max_request_size: 1024 * 1024,
            request_timeout: Duration::from_secs(90),
        }
    );
    let config = parse(&format!("{SOCKET}  max_request_size: 4096\n")).expect("valid");
    assert_eq!(config.server.limits.max_request_size, 4096);
}

#[test]
fn bad_limits_are_refused_where_they_were_written() {
    let lines = problems(&format!(
        "{SOCKET}  max_connections: 0\n  max_concurrent_streams: lots\n  handshake_timeout: 0s\n  idle_timeout: soon\n  max_request_size: 1GiB\n  request_timeout: -1s\n"
    ));
    let expected = [
        "test.yaml:3:20: server.max_connections: expected a whole number from 1 to 100000, got `0`",
        "test.yaml:4:27: server.max_concurrent_streams: expected a whole number from 1 to 10000, got `lots`",
        "test.yaml:5:22: server.handshake_timeout: a timeout must be longer than zero",
        "test.yaml:6:17: server.idle_timeout: expected a duration such as `30s`, `5m` or `1h30m`, got `soon`",
        "test.yaml:7:21: server.max_request_size: expected a size from 1KiB to 64MiB such as `256KiB`, `1MiB` or `65536`, got `1GiB`",
        "test.yaml:8:20: server.request_timeout: expected a duration such as `30s`, `5m` or `1h30m`, got `-1s`",
    ];
    for line in expected {
        assert!(lines.iter().any(|l| l == line), "{line}\nnot in {lines:#?}");
    }
}

#[test]
fn a_peer_may_hold_half_the_connections_unless_told_otherwise() {
    let per_peer = |text: &str| {
        parse(&format!("{SOCKET}{text}"))
            .expect("valid")
            .server
            .limits
            .max_connections_per_peer
    };
    assert_eq!(per_peer("  max_connections: 10\n"), 5);
    assert_eq!(per_peer("  max_connections: 9\n"), 4);
    // One slot in all: the peer that holds it holds every slot; there is no other way.
    assert_eq!(per_peer("  max_connections: 1\n"), 1);
    assert_eq!(
        per_peer("  max_connections: 10\n  max_connections_per_peer: 10\n"),
        10
    );
    assert_eq!(per_peer("  max_connections_per_peer: 1\n"), 1);
    assert_eq!(per_peer("  max_connections_per_peer: 256\n"), 256);
}

#[test]
fn a_per_peer_limit_out_of_range_or_above_max_connections_is_refused_where_written() {
    let lines = problems(&format!("{SOCKET}  max_connections_per_peer: 0\n"));
    assert_eq!(
        lines,
        [
            "test.yaml:3:29: server.max_connections_per_peer: expected a whole number from 1 to 100000, got `0`"
        ]
    );
    let lines = problems(&format!("{SOCKET}  max_connections_per_peer: many\n"));
    assert_eq!(
        lines,
        [
            "test.yaml:3:29: server.max_connections_per_peer: expected a whole number from 1 to 100000, got `many`"
        ]
    );
    // Above the default `max_connections` (256), and above an explicit one.
    let lines = problems(&format!("{SOCKET}  max_connections_per_peer: 257\n"));
    assert_eq!(
        lines,
        [
            "test.yaml:3:29: server.max_connections_per_peer: `257` is more than `server.max_connections` (256): a peer can hold at most every connection; lower it, or raise `max_connections`"
        ]
    );
    let lines = problems(&format!(
        "{SOCKET}  max_connections: 4\n  max_connections_per_peer: 5\n"
    ));
    assert_eq!(
        lines,
        [
            "test.yaml:4:29: server.max_connections_per_peer: `5` is more than `server.max_connections` (4): a peer can hold at most every connection; lower it, or raise `max_connections`"
        ]
    );
    // A refused `max_connections` is reported alone, not compared against.
    let lines = problems(&format!(
        "{SOCKET}  max_connections: 0\n  max_connections_per_peer: 300\n"
    ));
    assert_eq!(
        lines,
        [
            "test.yaml:3:20: server.max_connections: expected a whole number from 1 to 100000, got `0`"
        ]
    );
}

#[test]
fn a_socket_mode_that_lets_others_in_is_refused() {
    for mode in ["0600", "0660", "0640", "0700", "0770"] {
        parse(&format!("{SOCKET}  unix_socket_mode: \"{mode}\"\n"))
            .unwrap_or_else(|err| panic!("{mode}: {err}"));
    }
    for mode in ["0666", "0604", "0602", "0601", "0777"] {
        let lines = problems(&format!("{SOCKET}  unix_socket_mode: \"{mode}\"\n"));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with(&format!(
                "test.yaml:3:21: server.unix_socket_mode: `{mode}` lets every local user connect"
            )),
            "{lines:?}"
        );
    }
}

#[test]
fn only_a_tcp_address_beyond_loopback_needs_caller_authentication() {
    for address in ["127.0.0.1:1", "[::1]:1", "127.0.0.2:1"] {
        let config = parse(&format!("server:\n  tcp: \"{address}\"\n")).expect("valid");
        assert!(
            config.warnings.is_empty(),
            "{address}: {:?}",
            config.warnings
        );
    }
    // Refused outright (see `clients_tests`), not just warned about.
    for address in ["0.0.0.0:50051", "[::]:50051", "10.1.2.3:50051"] {
        let err = parse(&format!("server:\n  tcp: \"{address}\"\n"))
            .expect_err("refused")
            .to_string();
        assert!(err.contains("is reachable from other hosts"), "{err}");
    }
}

/// Every scalar knob, with `{V}` where the value goes, and the field path its error is
/// reported under. Left out: fields any text is valid for (names, ids, a Jira site URL,
/// which takes any host), where no error can quote them.
const KNOBS: &[(&str, &str)] = &[
    (
        "server.unix_socket_mode",
        "server:\n  unix_socket: vb.sock\n  unix_socket_mode: \"{V}\"\n",
    ),
    ("server.tcp", "server:\n  tcp: \"{V}\"\n"),
    (
        "server.unix_socket_owner",
        "server:\n  unix_socket: vb.sock\n  unix_socket_owner: \"{V}\"\n",
    ),
    (
        "server.unix_socket_group",
        "server:\n  unix_socket: vb.sock\n  unix_socket_group: \"{V}\"\n",
    ),
    (
        "server.shutdown_grace",
        "server:\n  tcp: 127.0.0.1:1\n  shutdown_grace: \"{V}\"\n",
    ),
    (
        "server.max_connections",
        "server:\n  tcp: 127.0.0.1:1\n  max_connections: \"{V}\"\n",
    ),
    (
        "server.max_connections_per_peer",
        "server:\n  tcp: 127.0.0.1:1\n  max_connections_per_peer: \"{V}\"\n",
    ),
    (
        "server.max_concurrent_streams",
        "server:\n  tcp: 127.0.0.1:1\n  max_concurrent_streams: \"{V}\"\n",
    ),
    (
        "server.handshake_timeout",
        "server:\n  tcp: 127.0.0.1:1\n  handshake_timeout: \"{V}\"\n",
    ),
    (
        "server.idle_timeout",
        "server:\n  tcp: 127.0.0.1:1\n  idle_timeout: \"{V}\"\n",
    ),
    (
        "server.max_request_size",
        "server:\n  tcp: 127.0.0.1:1\n  max_request_size: \"{V}\"\n",
    ),
    (
        "server.request_timeout",
        "server:\n  tcp: 127.0.0.1:1\n  request_timeout: \"{V}\"\n",
    ),
    ("cache.ttl", "{M}cache:\n  ttl: \"{V}\"\n"),
    ("cache.max_entries", "{M}cache:\n  max_entries: \"{V}\"\n"),
    ("cache.warm_up", "{M}cache:\n  warm_up: \"{V}\"\n"),
    ("cache.max_stale", "{M}cache:\n  max_stale: \"{V}\"\n"),
    (
        "cache.refresh_ahead",
        "{M}cache:\n  refresh_ahead: \"{V}\"\n",
    ),
    ("cache.negative_ttl", "{M}cache:\n  negative_ttl: \"{V}\"\n"),
    (
        "cache.max_in_flight",
        "{M}cache:\n  max_in_flight: \"{V}\"\n",
    ),
    (
        "cache.breaker_failures",
        "{M}cache:\n  breaker_failures: \"{V}\"\n",
    ),
    (
        "cache.breaker_cooldown",
        "{M}cache:\n  breaker_cooldown: \"{V}\"\n",
    ),
    (
        "cache.breaker_max_cooldown",
        "{M}cache:\n  breaker_max_cooldown: \"{V}\"\n",
    ),
    (
        "backends.e.max_in_flight",
        "{M}    max_in_flight: \"{V}\"\n",
    ),
    (
        "backends.e.breaker_failures",
        "{M}    breaker_failures: \"{V}\"\n",
    ),
    (
        "backends.e.breaker_cooldown",
        "{M}    breaker_cooldown: \"{V}\"\n",
    ),
    (
        "backends.e.type",
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  e:\n    type: \"{V}\"\n",
    ),
    (
        "backends.f.format",
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  f:\n    type: file\n    path: s.yaml\n    format: \"{V}\"\n",
    ),
    (
        "backends.f.change_check_interval",
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  f:\n    type: file\n    path: s.yaml\n    change_check_interval: \"{V}\"\n",
    ),
    (
        "definitions.d.backend",
        "{M}definitions:\n  d:\n    backend: \"{V}\"\n    secret: X\n",
    ),
    (
        "definitions.d.ttl",
        "{M}definitions:\n  d:\n    backend: e\n    secret: X\n    ttl: \"{V}\"\n",
    ),
    (
        "definitions.d.max_stale",
        "{M}definitions:\n  d:\n    backend: e\n    secret: X\n    max_stale: \"{V}\"\n",
    ),
    (
        "definitions.d.refresh_ahead",
        "{M}definitions:\n  d:\n    backend: e\n    secret: X\n    refresh_ahead: \"{V}\"\n",
    ),
    (
        "definitions.d.negative_ttl",
        "{M}definitions:\n  d:\n    backend: e\n    secret: X\n    negative_ttl: \"{V}\"\n",
    ),
    (
        "definitions.d.trim",
        "{M}definitions:\n  d:\n    backend: e\n    secret: X\n    trim: \"{V}\"\n",
    ),
    (
        "jira.expiry_warning",
        "{M}jira:\n  expiry_warning: \"{V}\"\n",
    ),
    (
        "jira.failure_threshold",
        "{M}jira:\n  failure_threshold: \"{V}\"\n",
    ),
    (
        "jira.connections.j.deployment",
        "{M}definitions:\n  t:\n    backend: e\n    secret: T\njira:\n  connections:\n    j:\n      url: https://x.atlassian.net\n      deployment: \"{V}\"\n      email: a@b.c\n      token: t\n",
    ),
    (
        "jira.connections.j.expires_at",
        "{M}definitions:\n  t:\n    backend: e\n    secret: T\njira:\n  connections:\n    j:\n      url: https://x.atlassian.net\n      email: a@b.c\n      token: t\n      expires_at: \"{V}\"\n",
    ),
    #[cfg(feature = "aws")]
    (
        "backends.a.endpoint_url",
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  a:\n    type: aws_secrets_manager\n    region: eu-west-1\n    endpoint_url: \"{V}\"\n",
    ),
    #[cfg(feature = "aws")]
    (
        "backends.a.role_arn",
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  a:\n    type: aws_secrets_manager\n    region: eu-west-1\n    role_arn: \"{V}\"\n",
    ),
    #[cfg(feature = "aws")]
    (
        "backends.a.max_attempts",
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  a:\n    type: aws_secrets_manager\n    region: eu-west-1\n    max_attempts: \"{V}\"\n",
    ),
    #[cfg(feature = "aws")]
    (
        "backends.a.operation_timeout",
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  a:\n    type: aws_secrets_manager\n    region: eu-west-1\n    operation_timeout: \"{V}\"\n",
    ),
    #[cfg(feature = "azure")]
    (
        "backends.k.vault_url",
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  k:\n    type: azure_key_vault\n    vault_url: \"{V}\"\n    credential: azure_cli\n",
    ),
    #[cfg(feature = "azure")]
    (
        "backends.k.credential",
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  k:\n    type: azure_key_vault\n    vault_url: https://x.vault.azure.net\n    credential: \"{V}\"\n",
    ),
    #[cfg(feature = "azure")]
    (
        "backends.k.authority_host",
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  k:\n    type: azure_key_vault\n    vault_url: https://x.vault.azure.net\n    credential: azure_cli\n    authority_host: \"{V}\"\n",
    ),
    #[cfg(feature = "azure")]
    (
        "backends.k.request_timeout",
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  k:\n    type: azure_key_vault\n    vault_url: https://x.vault.azure.net\n    credential: azure_cli\n    request_timeout: \"{V}\"\n",
    ),
    #[cfg(feature = "azure")]
    (
        "backends.k.resolve.x.vault.azure.net",
        "server:\n  tcp: 127.0.0.1:1\nbackends:\n  k:\n    type: azure_key_vault\n    vault_url: https://x.vault.azure.net\n    credential: azure_cli\n    resolve:\n      x.vault.azure.net: \"{V}\"\n",
    ),
];

/// A value no knob accepts, standing in for a secret someone put in the wrong variable.
const SECRET: &str = "s3cr3t-V4LUE/!";

#[test]
fn no_knob_error_prints_what_a_variable_expanded_to() {
    let vars: BTreeMap<String, String> = [("S".to_owned(), SECRET.to_owned())].into();
    for (path, template) in KNOBS {
        for written in ["${S}", "x-${S}-y", "${S:-fallback}"] {
            let text = template.replace("{M}", MINIMAL).replace("{V}", written);
            let err = Config::parse(&text, "test.yaml", Path::new("/etc/vb"), &vars)
                .expect_err(&format!("{path} = {written} must be refused"))
                .to_string();
            assert!(
                err.lines().any(|line| line.contains(&format!(" {path}: "))),
                "{path} = {written}: no error on the knob itself:\n{err}"
            );
            for fragment in [SECRET, "s3cr3t", "V4LUE"] {
                assert!(
                    !err.contains(fragment),
                    "{path} = {written}: the error shows the expansion:\n{err}"
                );
            }
        }
    }
}

#[test]
fn a_refused_value_is_quoted_as_written() {
    let vars: BTreeMap<String, String> = [("S".to_owned(), SECRET.to_owned())].into();
    let text = format!("{MINIMAL}cache:\n  ttl: \"${{S}}\"\n");
    let err = Config::parse(&text, "test.yaml", Path::new(""), &vars)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cache.ttl: expected a duration such as `30s`, `5m` or `1h30m`, got `${S}`"),
        "{err}"
    );
}

#[test]
fn the_socket_owner_and_group_are_ids_or_names_the_machine_knows() {
    let config = parse(&format!(
        "{SOCKET}  unix_socket_owner: root\n  unix_socket_group: \"65534\"\n"
    ))
    .expect("valid");
    assert_eq!(
        (
            config.server.unix_socket_owner,
            config.server.unix_socket_group
        ),
        (Some(0), Some(65534))
    );
    let config = parse(SOCKET).expect("valid");
    assert_eq!(
        (
            config.server.unix_socket_owner,
            config.server.unix_socket_group
        ),
        (None, None)
    );
    let lines = problems(&format!(
        "{SOCKET}  unix_socket_owner: no-such-user-vb\n  unix_socket_group: \"99999999999\"\n"
    ));
    assert_eq!(
        lines,
        [
            "test.yaml:3:22: server.unix_socket_owner: there is no user named `no-such-user-vb` on this machine; give a name it knows or a numeric id",
            "test.yaml:4:22: server.unix_socket_group: expected a numeric id below 4294967296, or a name, got `99999999999`",
        ]
    );
    let lines = problems("server:\n  tcp: 127.0.0.1:1\n  unix_socket_group: root\n");
    assert_eq!(
        lines,
        [
            "test.yaml:3:22: server.unix_socket_group: applies to the Unix socket: set `server.unix_socket` too"
        ]
    );
}

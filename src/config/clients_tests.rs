//! The `clients` and `audit` sections, and the rule that a TCP listener other hosts can
//! reach needs caller authentication.

use super::tests::{parse, problems};
use crate::config::{AuditSink, TokenSource};
use std::path::PathBuf;

const BASE: &str =
    "backends:\n  e:\n    type: env\ndefinitions:\n  db:\n    backend: e\n    secret: DB\n";

fn with(server: &str, rest: &str) -> String {
    format!("server:\n{server}{BASE}{rest}")
}

const LOOPBACK: &str = "  tcp: 127.0.0.1:50051\n";

#[test]
fn clients_are_read_with_their_ids_tokens_and_grants() {
    let config = parse(&with(
        LOOPBACK,
        "clients:\n  etl:\n    uids: [1000, 1001]\n    gids: [2000]\n    tokens:\n      - file: tokens/etl\n      - env: ETL_TOKEN_NEXT\n    definitions: [db, \"etl-*\"]\n    jira_connections: [\"*\"]\n",
    ))
    .expect("valid");
    let clients = config.access.clients.as_ref().expect("clients");
    let etl = &clients[0];
    assert_eq!(etl.name, "etl");
    assert_eq!(etl.uids, [1000, 1001]);
    assert_eq!(etl.gids, [2000]);
    assert_eq!(
        etl.tokens,
        [
            TokenSource::File(PathBuf::from("/etc/vb/tokens/etl")),
            TokenSource::Env("ETL_TOKEN_NEXT".into())
        ]
    );
    assert_eq!(etl.definitions, ["db", "etl-*"]);
    // With clients, the audit trail is on by default, on stderr.
    assert_eq!(config.access.audit.sink, AuditSink::Stderr);
}

#[test]
fn without_clients_everyone_reads_everything_and_nothing_is_audited() {
    let config = parse(&with(LOOPBACK, "")).expect("valid");
    assert!(config.access.clients.is_none());
    assert_eq!(config.access.audit.sink, AuditSink::Off);
}

#[test]
fn an_audit_file_is_a_sink_of_its_own() {
    let config = parse(&with(LOOPBACK, "audit:\n  file: /var/log/vb/audit.log\n")).expect("valid");
    assert_eq!(config.access.audit.sink, AuditSink::File);
    assert_eq!(
        config.access.audit.file,
        Some(PathBuf::from("/var/log/vb/audit.log"))
    );
}

#[test]
fn bad_clients_are_located_and_explained() {
    let text = problems(&with(
        LOOPBACK,
        "clients:\n  a:\n    uids: [root]\n    definitions: [\"[oops\"]\n  b:\n    definitions: [db]\n  c:\n    tokens:\n      - file: x\n        env: Y\n      - {}\n    definitions: [db]\naudit:\n  sink: syslog\n",
    ));
    let expected = [
        "test.yaml:12:12: clients.a.uids: expected a numeric id such as `1000`, got `root`",
        "clients.a.definitions: `[oops` is not a valid name pattern",
        "clients.b: nothing identifies this client",
        "clients.c.tokens: a token comes from a `file` or an `env` variable, not both",
        "clients.c: each entry of `tokens` needs `file` (a path) or `env` (a variable name)",
        "audit.sink: expected `stderr`, `file` or `off`, got `syslog`",
    ];
    assert_eq!(text.len(), expected.len(), "{text:#?}");
    for expected in expected {
        assert!(
            text.iter().any(|line| line.contains(expected)),
            "missing `{expected}` in {text:#?}"
        );
    }
}

#[test]
fn an_empty_clients_section_is_refused() {
    let text = problems(&with(LOOPBACK, "clients: {}\n"));
    assert!(
        text.iter()
            .any(|line| line.contains("clients: the section names no client")),
        "{text:#?}"
    );
}

#[test]
fn a_tcp_listener_other_hosts_can_reach_needs_tokens() {
    let text = problems(&with("  tcp: 0.0.0.0:50051\n", ""));
    assert_eq!(text.len(), 1, "{text:#?}");
    assert!(
        text[0].starts_with("test.yaml:2:8: server.tcp: `0.0.0.0:50051` is reachable from other hosts, and no caller authentication is configured"),
        "{text:#?}"
    );
    // uid rules alone do not authenticate TCP callers.
    assert!(
        parse(&with(
            "  tcp: 0.0.0.0:50051\n",
            "clients:\n  a:\n    uids: [1]\n    definitions: [db]\n"
        ))
        .is_err()
    );
    let config = parse(&with(
        "  tcp: \"[::]:50051\"\n",
        "clients:\n  a:\n    tokens:\n      - env: T\n    definitions: [db]\n",
    ))
    .expect("a token makes it safe");
    assert!(config.access.any_token());
}

#[test]
fn names_a_client_may_read_that_do_not_exist_are_warned_about() {
    let config = parse(&with(
        LOOPBACK,
        "clients:\n  a:\n    uids: [1]\n    definitions: [db, dbb, \"d*\"]\n    jira_connections: [main]\n",
    ))
    .expect("valid");
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w == "client `a` may read definition `dbb`, which the config does not define"),
        "{:#?}",
        config.warnings
    );
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("Jira connection `main`, which the config does not define")),
    );
    assert_eq!(config.warnings.len(), 2, "{:#?}", config.warnings);
}

const TLS: &str = "  tcp: 0.0.0.0:50051\n  tls:\n    cert_file: tls/server.pem\n    key_file: /etc/tls/server.key\n    client_ca_file: tls/ca.pem\n";

#[test]
fn mutual_tls_is_caller_authentication_for_any_address() {
    let config = parse(&with(
        TLS,
        "clients:\n  etl:\n    certificates: [\"spiffe://example.org/etl\"]\n    definitions: [db]\n",
    ))
    .expect("valid");
    let tls = config.server.tls.expect("tls");
    assert_eq!(tls.cert_file, PathBuf::from("/etc/vb/tls/server.pem"));
    assert_eq!(tls.key_file, PathBuf::from("/etc/tls/server.key"));
    assert_eq!(
        tls.client_ca_file,
        Some(PathBuf::from("/etc/vb/tls/ca.pem"))
    );
    let clients = config.access.clients.expect("clients");
    assert_eq!(clients[0].certificates, ["spiffe://example.org/etl"]);
}

#[test]
fn tls_settings_are_checked() {
    let text = problems(&with(
        "  unix_socket: /run/vb.sock\n  tls:\n    cert_file: a.pem\n",
        "clients:\n  etl:\n    certificates: [\"spiffe://example.org/etl\"]\n    definitions: [db]\n",
    ));
    for expected in [
        "server.tls: TLS needs `cert_file` (the server's certificate chain, PEM) and `key_file`",
        "server.tls: TLS applies to the TCP listener: set `server.tcp` too",
        "clients.etl.certificates: no caller can present a client certificate: set `server.tls.client_ca_file`",
    ] {
        assert!(
            text.iter().any(|line| line.contains(expected)),
            "missing `{expected}` in {text:#?}"
        );
    }
    assert_eq!(text.len(), 3, "{text:#?}");
}

#[test]
fn rate_limits_are_read_for_the_server_and_per_client() {
    let config = parse(&with(
        "  tcp: 127.0.0.1:50051\n  rate_limit:\n    per_second: 500\n",
        "clients:\n  etl:\n    uids: [1]\n    definitions: [db]\n    rate_limit:\n      per_second: 10\n      burst: 50\n",
    ))
    .expect("valid");
    let server = config.access.rate_limit.expect("server limit");
    assert_eq!((server.per_second.get(), server.burst.get()), (500, 500));
    let etl = config.access.clients.expect("clients")[0]
        .rate_limit
        .expect("client limit");
    assert_eq!((etl.per_second.get(), etl.burst.get()), (10, 50));
    let text = problems(&with(
        "  tcp: 127.0.0.1:50051\n  rate_limit:\n    per_second: 0\n",
        "clients:\n  etl:\n    uids: [1]\n    definitions: [db]\n    rate_limit:\n      burst: 5\n",
    ));
    assert!(
        text.iter().any(|line| line.contains(
            "server.rate_limit.per_second: expected a whole number of calls, at least 1, got `0`"
        )),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|line| line.contains("clients.etl.rate_limit: a rate limit needs `per_second`")),
        "{text:#?}"
    );
}

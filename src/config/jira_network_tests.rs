//! A Jira connection's `ca_file` and `resolve`, as the config file gives them.

use super::tests::{JIRA_BASE, parse, problems};
use crate::jira::network::test_ca_pem as ca_pem;
use std::net::SocketAddr;

#[test]
fn ca_file_and_resolve_are_read_into_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("corp-ca.pem");
    std::fs::write(&ca, ca_pem()).unwrap();
    let config = parse(&format!(
        "{JIRA_BASE}jira:\n  connections:\n    dc:\n      url: https://Jira.Corp.Example/jira\n      token: jira-token\n      ca_file: {}\n      resolve:\n        jira.corp.example: 10.0.0.5\n    scoped:\n      url: https://example.atlassian.net\n      deployment: cloud_scoped\n      email: dev@example.com\n      token: jira-token\n      resolve:\n        api.atlassian.com: 10.0.0.6:443\n        example.atlassian.net: \"[fd00::7]:8443\"\n    plain:\n      url: https://other.atlassian.net\n      email: dev@example.com\n      token: jira-token\n",
        ca.display()
    ))
    .expect("valid");
    let dc = &config.jira.connections["dc"].network;
    assert_eq!(dc.ca_file.as_deref(), Some(ca.as_path()));
    assert_eq!(dc.extra_roots.len(), 1);
    assert_eq!(
        dc.resolve,
        [(
            "jira.corp.example".to_owned(),
            SocketAddr::from(([10, 0, 0, 5], 0))
        )]
    );
    let scoped = &config.jira.connections["scoped"].network;
    assert!(scoped.ca_file.is_none() && scoped.extra_roots.is_empty());
    assert_eq!(
        scoped.resolve,
        [
            (
                "api.atlassian.com".to_owned(),
                "10.0.0.6:443".parse().unwrap()
            ),
            (
                "example.atlassian.net".to_owned(),
                "[fd00::7]:8443".parse().unwrap()
            ),
        ]
    );
    assert_eq!(
        config.jira.connections["plain"].network,
        Default::default(),
        "no settings, no extras"
    );
}

#[test]
fn bad_ca_files_and_resolve_entries_are_located_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("notes.txt");
    std::fs::write(&not_pem, "corporate CA: ask IT\n").unwrap();
    let lines = problems(&format!(
        "{JIRA_BASE}jira:\n  connections:\n    missing:\n      url: https://jira.corp.example\n      token: jira-token\n      ca_file: missing-ca.pem\n    text:\n      url: https://jira.corp.example\n      token: jira-token\n      ca_file: {}\n    addresses:\n      url: https://jira.corp.example\n      token: jira-token\n      resolve:\n        jira.corp.example: jira-lb.internal\n        \"jira.corp.example:443\": 10.0.0.5\n        jira.corp.exmaple: 10.0.0.5\n",
        not_pem.display()
    ));
    let text = lines.join("\n");
    for expected in [
        // Relative to the config file's directory, which the tests put at /etc/vb.
        "test.yaml:21:16: jira.connections.missing.ca_file: cannot read `/etc/vb/missing-ca.pem`: No such file",
        "jira.connections.text.ca_file: `",
        "notes.txt` holds no PEM certificate",
        "test.yaml:30:28: jira.connections.addresses.resolve.jira.corp.example: expected an IP address, optionally with a port, such as `10.0.0.5` or `10.0.0.5:443`, got `jira-lb.internal`",
        "jira.connections.addresses.resolve.jira.corp.example:443: `jira.corp.example:443` is not a host name: write the host alone",
        "jira.connections.addresses.resolve.jira.corp.exmaple: this connection never calls `jira.corp.exmaple`; it calls `jira.corp.example`",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    assert_eq!(lines.len(), 5, "one line per problem:\n{text}");
}

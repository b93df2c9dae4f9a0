//! Jira behind a corporate CA and a corporate proxy: the fake Jira serves HTTPS with a
//! certificate from a CA made for the run, under names no DNS knows (`resolve` or the
//! proxy's own table reach it).

use crate::connect_proxy::ConnectProxy;
use crate::fake_jira::FakeJira;
use crate::harness::{Daemon, Setup};
use crate::jira_verify::{status, verify};
use std::collections::HashMap;
use std::net::SocketAddr;
use vaultbridge::proto::v1::ConnectionStatus;

const PAT: &str = "pat-e2e-corporate-ca-token";
/// `.test` is reserved (RFC 2606): these names resolve nowhere.
const PROXIED_HOST: &str = "jira.corp.test";
const DIRECT_HOST: &str = "jira-direct.corp.test";
const PROXY_VARIABLES: [&str; 8] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

async fn site() -> FakeJira {
    let site = FakeJira::start_tls(false, "/jira", &[PROXIED_HOST, DIRECT_HOST]).await;
    site.accept(&format!("Bearer {PAT}"));
    site
}

/// A daemon with the given `connections` (YAML under `jira.connections`), the site's CA
/// in `corp-ca.pem`, and only the proxy variables in `env`.
fn start(site: &FakeJira, connections: &str, env: &[(&str, String)]) -> Daemon {
    let mut setup = Setup::new();
    let secrets = setup.dir.path().join("jira.yaml");
    std::fs::write(&secrets, format!("pat: \"{PAT}\"\n")).unwrap();
    crate::harness::set_mode(&secrets, 0o600);
    std::fs::write(setup.dir.path().join("corp-ca.pem"), site.ca_pem()).unwrap();
    setup.env_remove = PROXY_VARIABLES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    for (name, value) in env {
        setup.env.push(((*name).to_owned(), value.clone()));
    }
    setup.custom_config = Some(format!(
        "server:\n  unix_socket: vb.sock\nbackends:\n  local:\n    type: file\n    path: jira.yaml\ndefinitions:\n  pat:\n    backend: local\n    secret: pat\njira:\n  connections:\n{connections}"
    ));
    setup.start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_refused_without_ca_file_and_trusted_with_it() {
    let site = site().await;
    let url = site.https_url(DIRECT_HOST);
    let connections = format!(
        "    untrusted:\n      url: {url}\n      token: pat\n      resolve:\n        {DIRECT_HOST}: 127.0.0.1\n    trusted:\n      url: {url}\n      token: pat\n      ca_file: corp-ca.pem\n      resolve:\n        {DIRECT_HOST}: 127.0.0.1\n"
    );
    let daemon = start(&site, &connections, &[]);

    let refused = verify(&daemon, "untrusted").await;
    assert_eq!(
        status(&refused),
        ConnectionStatus::Failed,
        "an untrusted certificate is not a passing outage: {}",
        refused.message
    );
    for expected in [DIRECT_HOST, "not trusted", "UnknownIssuer", "`ca_file`"] {
        assert!(
            refused.message.contains(expected),
            "`{expected}` missing from: {}",
            refused.message
        );
    }
    assert!(
        site.requests().is_empty(),
        "no request may cross a refused handshake"
    );

    let trusted = verify(&daemon, "trusted").await;
    assert_eq!(
        status(&trusted),
        ConnectionStatus::Connected,
        "{}",
        trusted.message
    );
    assert_eq!(trusted.project_keys, ["PIPE", "DATA"]);
    assert_eq!(
        site.requests(),
        ["/jira/rest/api/2/myself", "/jira/rest/api/2/project"]
    );
    assert!(!daemon.output().contains(PAT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_proxy_carries_the_calls_and_no_proxy_bypasses_it() {
    let site = site().await;
    let site_address = SocketAddr::from(([127, 0, 0, 1], site.port()));
    let proxied_target = format!("{PROXIED_HOST}:{}", site.port());
    let proxy = ConnectProxy::start(HashMap::from([(proxied_target.clone(), site_address)])).await;
    // `proxied` has no `resolve`: only the proxy knows where its host is.
    let connections = format!(
        "    proxied:\n      url: {}\n      token: pat\n      ca_file: corp-ca.pem\n    direct:\n      url: {}\n      token: pat\n      ca_file: corp-ca.pem\n      resolve:\n        {DIRECT_HOST}: 127.0.0.1\n",
        site.https_url(PROXIED_HOST),
        site.https_url(DIRECT_HOST),
    );
    let daemon = start(
        &site,
        &connections,
        &[
            ("HTTPS_PROXY", proxy.url()),
            ("NO_PROXY", format!("localhost,{DIRECT_HOST}")),
        ],
    );

    let proxied = verify(&daemon, "proxied").await;
    assert_eq!(
        status(&proxied),
        ConnectionStatus::Connected,
        "{}",
        proxied.message
    );
    // The fake closes each connection after one answer: one tunnel per request.
    assert_eq!(proxy.targets(), [proxied_target.clone(), proxied_target]);
    assert_eq!(site.requests().len(), 2);

    let direct = verify(&daemon, "direct").await;
    assert_eq!(
        status(&direct),
        ConnectionStatus::Connected,
        "{}",
        direct.message
    );
    assert_eq!(
        site.requests().len(),
        4,
        "the direct calls reached the site"
    );
    assert_eq!(proxy.targets().len(), 2, "NO_PROXY kept them off the proxy");
}

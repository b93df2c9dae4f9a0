//! What a reload changes: which backends are kept, and which settings only a restart
//! can apply.

use crate::config::Config;
use crate::protect::RawProtection;
use crate::registry::BackendConfig;
use std::collections::{BTreeMap, BTreeSet};
use vaultbridge_backend_core::config::{Node, NodeValue};

/// What becomes of each backend, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct BackendPlan {
    /// Written the same way: the running instance is kept.
    pub kept: BTreeSet<String>,
    /// New, or written differently: built from the new settings.
    pub build: Vec<String>,
    pub removed: Vec<String>,
}

/// A backend whose settings read the same is kept. Settings are compared as written,
/// `${VAR}` references and all: the daemon's environment does not change while it
/// runs, and relative paths stay relative to the same file. A file a backend reads at
/// build time (a CA file) is not compared; changing it needs a change of the settings
/// or a restart.
pub(super) fn backends(
    old: &BTreeMap<String, BackendConfig>,
    new: &BTreeMap<String, BackendConfig>,
) -> BackendPlan {
    let mut plan = BackendPlan::default();
    for (name, backend) in new {
        match old.get(name) {
            Some(running)
                if running.kind == backend.kind
                    && same_settings(&running.written, &backend.written) =>
            {
                plan.kept.insert(name.clone());
            }
            _ => plan.build.push(name.clone()),
        }
    }
    plan.removed = old
        .keys()
        .filter(|name| !new.contains_key(*name))
        .cloned()
        .collect();
    plan
}

/// Whether two backends' settings read the same, leaving out how the daemon protects
/// the backend: new breaker or concurrency settings wrap the kept instance anew.
fn same_settings(a: &Node, b: &Node) -> bool {
    let settings = |node: &Node| match &node.value {
        NodeValue::Map(entries) => entries
            .iter()
            .filter(|(key, _)| !RawProtection::FIELDS.contains(&key.value.as_str()))
            .map(|(key, value)| (key.value.clone(), value.clone()))
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let (a, b) = (settings(a), settings(b));
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|((ka, va), (kb, vb))| ka == kb && same_written(va, vb))
}

/// Whether two YAML trees hold the same keys and values, wherever they were written.
pub(super) fn same_written(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (NodeValue::Null, NodeValue::Null) => true,
        (NodeValue::Scalar(a), NodeValue::Scalar(b)) => a == b,
        (NodeValue::List(a), NodeValue::List(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_written(a, b))
        }
        // Keys are compared in order; a reordered map is rebuilt, which costs a build.
        (NodeValue::Map(a), NodeValue::Map(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((ka, va), (kb, vb))| ka.value == kb.value && same_written(va, vb))
        }
        _ => false,
    }
}

/// One warning per setting that changed but is bound for the daemon's life.
pub(super) fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let (was, is) = (&old.server, &new.server);
    let mut changed = Vec::new();
    if was.unix_socket != is.unix_socket {
        changed.push("server.unix_socket");
    }
    if was.unix_socket_mode != is.unix_socket_mode {
        changed.push("server.unix_socket_mode");
    }
    if was.unix_socket_owner != is.unix_socket_owner {
        changed.push("server.unix_socket_owner");
    }
    if was.unix_socket_group != is.unix_socket_group {
        changed.push("server.unix_socket_group");
    }
    if was.tcp != is.tcp {
        changed.push("server.tcp");
    }
    if was.tls != is.tls {
        changed.push("server.tls");
    }
    if was.metrics != is.metrics {
        changed.push("server.metrics");
    }
    if was.http != is.http {
        changed.push("server.http");
    }
    if was.shutdown_grace != is.shutdown_grace {
        changed.push("server.shutdown_grace");
    }
    let (limits, new_limits) = (&was.limits, &is.limits);
    for (field, differs) in [
        (
            "server.max_connections",
            limits.max_connections != new_limits.max_connections,
        ),
        (
            "server.max_connections_per_peer",
            limits.max_connections_per_peer != new_limits.max_connections_per_peer,
        ),
        (
            "server.max_concurrent_streams",
            limits.max_concurrent_streams != new_limits.max_concurrent_streams,
        ),
        (
            "server.handshake_timeout",
            limits.handshake_timeout != new_limits.handshake_timeout,
        ),
        (
            "server.idle_timeout",
            limits.idle_timeout != new_limits.idle_timeout,
        ),
        (
            "server.max_request_size",
            limits.max_request_size != new_limits.max_request_size,
        ),
        (
            "server.request_timeout",
            limits.request_timeout != new_limits.request_timeout,
        ),
    ] {
        if differs {
            changed.push(field);
        }
    }
    changed
        .into_iter()
        .map(|field| {
            format!(
                "{}: `{field}` changed; listeners and their limits are set when the daemon starts, so this takes a restart (the running value stays in force)",
                new.source
            )
        })
        .collect()
}

/// A reload may not leave a listener that other hosts reach without caller
/// authentication: the listener keeps the address it was bound to, whatever the new
/// config says, so the new access rules are checked against that address.
pub(super) fn unauthenticated_exposure(running: &Config, new: &Config) -> Option<String> {
    let addr = running.server.tcp?;
    let client_certificates = running
        .server
        .tls
        .as_ref()
        .is_some_and(|tls| tls.client_ca_file.is_some());
    (!addr.ip().is_loopback() && !client_certificates && !new.access.any_token()).then(|| {
        format!(
            "{}: clients: the daemon listens on `{addr}`, which other hosts reach, and this config gives no client a token; callers there would not need to authenticate (changing `server.tcp` takes a restart)",
            new.source
        )
    })
}

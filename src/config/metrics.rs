//! `server.metrics`: the Prometheus listener.

use serde::Deserialize;
use std::net::SocketAddr;
use vaultbridge_backend_core::config::{Section, Text};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetricsConfig {
    /// Where `/metrics` is served (plain HTTP: nothing secret is in it).
    pub address: SocketAddr,
    /// A `definition` label on the resolve counters. Off by default: a config may
    /// hold 100,000 definitions, and each would be a series of every such family.
    pub per_definition: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    address: Option<Text>,
    per_definition: Option<Text>,
}

/// `tcp`: the gRPC listener's address, which the metrics listener cannot share.
pub(super) fn check(
    raw: &RawMetrics,
    tcp: Option<SocketAddr>,
    section: &mut Section<'_, '_>,
) -> Option<MetricsConfig> {
    let per_definition = raw
        .per_definition
        .as_ref()
        .and_then(|value| section.boolean(value, "per_definition"))
        .unwrap_or(false);
    let Some(value) = &raw.address else {
        section.section_problem(
            "the metrics listener needs `address`, an IP address and port such as `127.0.0.1:9464`",
        );
        return None;
    };
    let text = section.text(value, "address")?;
    match text.parse::<SocketAddr>() {
        Ok(address) if tcp == Some(address) && address.port() != 0 => {
            section.problem(
                value,
                "address",
                format!(
                    "`{text}` is `server.tcp` already; the metrics listener needs a port of its own"
                ),
            );
            None
        }
        Ok(address) => Some(MetricsConfig {
            address,
            per_definition,
        }),
        Err(_) => {
            section.problem(
                value,
                "address",
                format!(
                    "expected an IP address and port such as `127.0.0.1:9464` or `[::1]:9464`, got `{text}`"
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{parse, problems};

    #[test]
    fn the_listener_and_per_definition_are_read() {
        let config = parse(
            "server:\n  unix_socket: /tmp/vb.sock\n  metrics:\n    address: 127.0.0.1:9464\n    per_definition: true\nbackends:\n  e:\n    type: env\n",
        )
        .unwrap();
        let metrics = config.server.metrics.expect("metrics");
        assert_eq!(metrics.address, "127.0.0.1:9464".parse().unwrap());
        assert!(metrics.per_definition);
    }

    #[test]
    fn per_definition_is_off_unless_asked_for() {
        let config = parse(
            "server:\n  unix_socket: /tmp/vb.sock\n  metrics:\n    address: '[::1]:0'\nbackends:\n  e:\n    type: env\n",
        )
        .unwrap();
        assert!(!config.server.metrics.expect("metrics").per_definition);
    }

    #[test]
    fn a_bad_address_is_reported_where_it_was_written() {
        let lines = problems(
            "server:\n  unix_socket: /tmp/vb.sock\n  metrics:\n    address: localhost:9464\nbackends:\n  e:\n    type: env\n",
        );
        assert_eq!(
            lines,
            [
                "test.yaml:4:14: server.metrics.address: expected an IP address and port such as `127.0.0.1:9464` or `[::1]:9464`, got `localhost:9464`"
            ],
            "{lines:?}"
        );
    }

    #[test]
    fn a_missing_address_an_unknown_field_and_a_shared_port_are_problems() {
        let lines = problems(
            "server:\n  unix_socket: /tmp/vb.sock\n  metrics:\n    per_definition: yes please\nbackends:\n  e:\n    type: env\n",
        );
        let all = lines.join("\n");
        assert!(
            all.contains("server.metrics: the metrics listener needs `address`"),
            "{all}"
        );
        assert!(all.contains("server.metrics.per_definition"), "{all}");
        let lines = problems(
            "server:\n  tcp: 127.0.0.1:9464\n  metrics:\n    address: 127.0.0.1:9464\nbackends:\n  e:\n    type: env\n",
        );
        assert!(
            lines
                .join("\n")
                .contains("`127.0.0.1:9464` is `server.tcp` already"),
            "{lines:?}"
        );
        let lines = problems(
            "server:\n  unix_socket: /tmp/vb.sock\n  metrics:\n    address: 127.0.0.1:1\n    path: /m\nbackends:\n  e:\n    type: env\n",
        );
        assert!(lines.join("\n").contains("path"), "{lines:?}");
    }
}

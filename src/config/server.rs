//! The `server` section: where the daemon listens and how it shuts down.

use super::metrics::{self, MetricsConfig, RawMetrics};
use super::tls::{self, RawTls, TlsConfig};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use vaultbridge_backend_core::config::{Checker, Location, Section, Text};

pub(crate) const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_SOCKET_MODE: u32 = 0o600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerConfig {
    pub unix_socket: Option<PathBuf>,
    pub unix_socket_mode: u32,
    pub tcp: Option<SocketAddr>,
    /// Where `tcp` was written, for checks that involve other sections.
    pub tcp_at: Location,
    /// How long in-flight calls may take to finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// TLS on the TCP listener.
    pub tls: Option<TlsConfig>,
    /// The Prometheus listener.
    pub metrics: Option<MetricsConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    unix_socket: Option<Text>,
    unix_socket_mode: Option<Text>,
    tcp: Option<Text>,
    shutdown_grace: Option<Text>,
    tls: Option<RawTls>,
    metrics: Option<RawMetrics>,
}

pub(super) fn check(raw: Option<&RawServer>, checker: &mut Checker<'_>) -> ServerConfig {
    let mut server = ServerConfig {
        unix_socket: None,
        unix_socket_mode: DEFAULT_SOCKET_MODE,
        tcp: None,
        tcp_at: Location::START,
        shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        tls: None,
        metrics: None,
    };
    let mut section = checker.section("server", Location::START);
    let Some(raw) = raw else {
        section.section_problem(
            "no listener: add a `server` section with `unix_socket`, `tcp` or both",
        );
        return server;
    };
    if let Some(value) = &raw.unix_socket {
        server.unix_socket = section.file_path(value, "unix_socket");
    }
    if let Some(value) = &raw.unix_socket_mode
        && let Some(mode) = socket_mode(value, &mut section)
    {
        server.unix_socket_mode = mode;
    }
    if let Some(value) = &raw.tcp
        && let Some(text) = section.text(value, "tcp")
    {
        match text.parse::<SocketAddr>() {
            Ok(addr) => {
                server.tcp = Some(addr);
                server.tcp_at = value.at;
            }
            Err(_) => section.problem(
                value,
                "tcp",
                format!(
                    "expected an IP address and port such as `127.0.0.1:50051` or `[::1]:50051`, got `{text}`"
                ),
            ),
        }
    }
    if let Some(value) = &raw.shutdown_grace
        && let Some(grace) = section.duration(value, "shutdown_grace")
    {
        server.shutdown_grace = grace;
    }
    if let Some(raw_tls) = &raw.tls {
        let mut tls_section = section.section("tls", section.at());
        server.tls = tls::check(raw_tls, &mut tls_section);
        if raw.tcp.is_none() {
            tls_section.section_problem("TLS applies to the TCP listener: set `server.tcp` too");
        }
    }
    if let Some(raw_metrics) = &raw.metrics {
        let mut metrics_section = section.section("metrics", section.at());
        server.metrics = metrics::check(raw_metrics, server.tcp, &mut metrics_section);
    }
    if raw.unix_socket.is_none() && raw.tcp.is_none() {
        section.section_problem("no listener: set `unix_socket`, `tcp` or both");
    }
    server
}

fn socket_mode(value: &Text, section: &mut Section<'_, '_>) -> Option<u32> {
    let text = section.text(value, "unix_socket_mode")?;
    match u32::from_str_radix(text.trim_start_matches("0o"), 8) {
        Ok(mode) if mode <= 0o777 => Some(mode),
        _ => {
            section.problem(
                value,
                "unix_socket_mode",
                format!("expected octal permission bits such as `0600` or `0660`, got `{text}`"),
            );
            None
        }
    }
}

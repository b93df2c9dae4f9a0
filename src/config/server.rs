//! The `server` section: where the daemon listens, the limits that hold when a caller
//! misbehaves, and how it shuts down.

use super::clients::{RateLimit, RawRateLimit, check_rate_limit};
use super::http::{self, HttpConfig, RawHttp};
use super::metrics::{self, MetricsConfig, RawMetrics};
use super::tls::{self, RawTls, TlsConfig};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use vaultbridge_backend_core::config::{Checker, Location, Section, Text};

pub(crate) const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_SOCKET_MODE: u32 = 0o600;
/// The bench's widest runs use 64 connections; four times that leaves room for a
/// node's worth of runners, and 256 connections stay well under the usual 1,024 open
/// files.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Without `max_connections_per_peer`, a peer may hold half of `max_connections` (at
/// least one): never every slot, so one caller alone cannot shut the others out.
pub(crate) fn default_per_peer(max_connections: usize) -> usize {
    (max_connections / 2).max(1)
}
/// RFC 9113 asks for at least 100. The bench's busiest connection carries 64 calls at
/// once (concurrency 64 on one connection); a stream that never sends its body holds
/// about 9 KB, so 100 cap one connection near 1 MB.
pub(crate) const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;
/// A local client sends its preface within a millisecond of connecting (the bench's
/// connection set-up is a few ms on 2 shared cores); 5 s is generous for a loaded host.
pub(crate) const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// After this long without a frame from the peer the daemon pings it, and closes the
/// connection when the ping is not answered within [`KEEPALIVE_TIMEOUT`].
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// The largest legitimate request is a full batch: 256 items of a 256-byte name and a
/// freshness, about 70 KB. 256 KiB leaves room; tonic's own default is 4 MiB.
pub(crate) const DEFAULT_MAX_REQUEST_SIZE: usize = 256 * 1024;
/// A call still unanswered after this is cancelled, whether it waits for a body that
/// never comes or for a backend. Backend calls give up well before (their timeouts
/// and retries come to seconds); a `Watch` stream is not cut, only its start.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerConfig {
    pub unix_socket: Option<PathBuf>,
    pub unix_socket_mode: u32,
    /// The socket file's owner and group, as numeric ids (names are looked up when the
    /// config is read). Only root may give a file to another owner.
    pub unix_socket_owner: Option<u32>,
    pub unix_socket_group: Option<u32>,
    pub tcp: Option<SocketAddr>,
    /// Where `tcp` was written, for checks that involve other sections.
    pub tcp_at: Location,
    /// How long in-flight calls may take to finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// TLS on the TCP listener.
    pub tls: Option<TlsConfig>,
    /// The Prometheus listener.
    pub metrics: Option<MetricsConfig>,
    /// The HTTP/1.1 listener.
    pub http: Option<HttpConfig>,
    /// Calls each caller may make, unless its client has a limit of its own.
    pub rate_limit: Option<RateLimit>,
    pub limits: Limits,
}

/// The limits each listener applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Open connections per listener; at the cap, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Open connections of one peer (a uid on the Unix socket, an IP address on TCP)
    /// per listener; over it, a new connection is closed at once.
    pub max_connections_per_peer: usize,
    /// Streams (calls) open at once on one connection, advertised in HTTP/2 SETTINGS.
    pub max_concurrent_streams: u32,
    /// Time from accept to the client's HTTP/2 preface and first frame.
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_request_size: usize,
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: default_per_peer(DEFAULT_MAX_CONNECTIONS),
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    unix_socket: Option<Text>,
    unix_socket_mode: Option<Text>,
    unix_socket_owner: Option<Text>,
    unix_socket_group: Option<Text>,
    tcp: Option<Text>,
    shutdown_grace: Option<Text>,
    tls: Option<RawTls>,
    rate_limit: Option<RawRateLimit>,
    max_connections: Option<Text>,
    max_connections_per_peer: Option<Text>,
    max_concurrent_streams: Option<Text>,
    handshake_timeout: Option<Text>,
    idle_timeout: Option<Text>,
    max_request_size: Option<Text>,
    request_timeout: Option<Text>,
    metrics: Option<RawMetrics>,
    http: Option<RawHttp>,
}

pub(super) fn check(raw: Option<&RawServer>, checker: &mut Checker<'_>) -> ServerConfig {
    let mut server = ServerConfig {
        unix_socket: None,
        unix_socket_mode: DEFAULT_SOCKET_MODE,
        unix_socket_owner: None,
        unix_socket_group: None,
        tcp: None,
        tcp_at: Location::START,
        shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        tls: None,
        rate_limit: None,
        limits: Limits::default(),
        metrics: None,
        http: None,
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
    if let Some(value) = &raw.unix_socket_owner {
        server.unix_socket_owner = account(value, "unix_socket_owner", Account::User, &mut section);
    }
    if let Some(value) = &raw.unix_socket_group {
        server.unix_socket_group =
            account(value, "unix_socket_group", Account::Group, &mut section);
    }
    if raw.unix_socket.is_none() {
        for (value, field) in [
            (&raw.unix_socket_owner, "unix_socket_owner"),
            (&raw.unix_socket_group, "unix_socket_group"),
        ] {
            if let Some(value) = value {
                section.problem(
                    value,
                    field,
                    "applies to the Unix socket: set `server.unix_socket` too",
                );
            }
        }
    }
    if let Some(value) = &raw.tcp
        && let Some(text) = section.text(value, "tcp")
    {
        match text.parse::<SocketAddr>() {
            Ok(addr) => {
                server.tcp = Some(addr);
                server.tcp_at = value.at;
            }
            Err(_) => section.expected(
                value,
                "tcp",
                "an IP address and port such as `127.0.0.1:50051` or `[::1]:50051`",
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
    if let Some(raw_limit) = &raw.rate_limit {
        let mut limit_section = section.section("rate_limit", section.at());
        server.rate_limit = check_rate_limit(raw_limit, &mut limit_section);
    }
    limits(raw, &mut section, &mut server.limits);
    if let Some(raw_metrics) = &raw.metrics {
        let mut metrics_section = section.section("metrics", section.at());
        server.metrics = metrics::check(raw_metrics, server.tcp, &mut metrics_section);
    }
    if let Some(raw_http) = &raw.http {
        let taken = http::Taken {
            tcp: server.tcp,
            metrics: server.metrics.as_ref().map(|metrics| metrics.address),
            unix_socket: server.unix_socket.as_deref(),
        };
        let mut http_section = section.section("http", section.at());
        server.http = http::check(raw_http, &taken, &mut http_section);
    }
    if raw.unix_socket.is_none() && raw.tcp.is_none() {
        section.section_problem("no listener: set `unix_socket`, `tcp` or both");
    }
    server
}

fn limits(raw: &RawServer, section: &mut Section<'_, '_>, limits: &mut Limits) {
    let mut max_read = true;
    if let Some(value) = &raw.max_connections {
        match count(value, "max_connections", 1, 100_000, section) {
            Some(max) => limits.max_connections = max as usize,
            None => max_read = false,
        }
    }
    limits.max_connections_per_peer = default_per_peer(limits.max_connections);
    if let Some(value) = &raw.max_connections_per_peer
        && let Some(max) = count(value, "max_connections_per_peer", 1, 100_000, section)
    {
        let max = max as usize;
        if max <= limits.max_connections {
            limits.max_connections_per_peer = max;
        } else if max_read {
            // Against a `max_connections` that was refused, the comparison means nothing.
            section.problem(
                value,
                "max_connections_per_peer",
                format!(
                    "`{}` is more than `server.max_connections` ({}): a peer can hold at most every connection; lower it, or raise `max_connections`",
                    value.value, limits.max_connections
                ),
            );
        }
    }
    if let Some(value) = &raw.max_concurrent_streams
        && let Some(max) = count(value, "max_concurrent_streams", 1, 10_000, section)
    {
        limits.max_concurrent_streams = max as u32;
    }
    section.timeout(
        raw.handshake_timeout.as_ref(),
        "handshake_timeout",
        &mut limits.handshake_timeout,
    );
    section.timeout(
        raw.idle_timeout.as_ref(),
        "idle_timeout",
        &mut limits.idle_timeout,
    );
    section.timeout(
        raw.request_timeout.as_ref(),
        "request_timeout",
        &mut limits.request_timeout,
    );
    if let Some(value) = &raw.max_request_size
        && let Some(size) = byte_size(value, "max_request_size", section)
    {
        limits.max_request_size = size;
    }
}

/// A whole number from `min` to `max`.
fn count(
    value: &Text,
    field: &str,
    min: u64,
    max: u64,
    section: &mut Section<'_, '_>,
) -> Option<u64> {
    let text = section.text(value, field)?;
    match text.trim().replace('_', "").parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Some(n),
        _ => {
            section.expected(value, field, &format!("a whole number from {min} to {max}"));
            None
        }
    }
}

/// Bytes, with an optional `KiB` or `MiB` suffix: 1 KiB to 64 MiB.
pub(super) fn byte_size(value: &Text, field: &str, section: &mut Section<'_, '_>) -> Option<usize> {
    let text = section.text(value, field)?;
    let text = text.trim();
    let (number, unit) = if let Some(n) = text.strip_suffix("MiB") {
        (n, 1024 * 1024)
    } else if let Some(n) = text.strip_suffix("KiB") {
        (n, 1024)
    } else {
        (text, 1)
    };
    match number.trim().parse::<usize>().map(|n| n.checked_mul(unit)) {
        Ok(Some(size)) if (1024..=64 * 1024 * 1024).contains(&size) => Some(size),
        _ => {
            section.expected(
                value,
                field,
                "a size from 1KiB to 64MiB such as `256KiB`, `1MiB` or `65536`",
            );
            None
        }
    }
}

/// The bits of `unix_socket_mode` that are refused: any permission for "others". The
/// socket's mode is the daemon's only access control today, and every local user is
/// an "other"; a workload under another user joins through the group (`0660`).
const REFUSED_SOCKET_BITS: u32 = 0o007;

fn socket_mode(value: &Text, section: &mut Section<'_, '_>) -> Option<u32> {
    let text = section.text(value, "unix_socket_mode")?;
    match u32::from_str_radix(text.trim_start_matches("0o"), 8) {
        Ok(mode) if mode <= 0o777 && mode & REFUSED_SOCKET_BITS == 0 => Some(mode),
        Ok(mode) if mode <= 0o777 => {
            section.problem(
                value,
                "unix_socket_mode",
                format!(
                    "`{}` lets every local user connect and resolve every definition; give access through the socket's group instead (`0660`), and clear the last digit",
                    value.value
                ),
            );
            None
        }
        _ => {
            section.expected(
                value,
                "unix_socket_mode",
                "octal permission bits such as `0600` or `0660`",
            );
            None
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Account {
    User,
    Group,
}

/// A user or group, by numeric id (as Kubernetes and containers give them) or by name
/// (looked up in the system's user database, NSS included, when the config is read).
fn account(value: &Text, field: &str, kind: Account, section: &mut Section<'_, '_>) -> Option<u32> {
    let text = section.text(value, field)?;
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(id) => Some(id),
            Err(_) => {
                section.expected(value, field, "a numeric id below 4294967296, or a name");
                None
            }
        };
    }
    let found = match kind {
        Account::User => {
            nix::unistd::User::from_name(text).map(|user| user.map(|u| u.uid.as_raw()))
        }
        Account::Group => {
            nix::unistd::Group::from_name(text).map(|group| group.map(|g| g.gid.as_raw()))
        }
    };
    let what = match kind {
        Account::User => "user",
        Account::Group => "group",
    };
    match found {
        Ok(Some(id)) => Some(id),
        Ok(None) => {
            section.problem(
                value,
                field,
                format!(
                    "there is no {what} named `{}` on this machine; give a name it knows or a numeric id",
                    value.value
                ),
            );
            None
        }
        Err(err) => {
            section.problem(
                value,
                field,
                format!("cannot look up the {what} `{}`: {err}", value.value),
            );
            None
        }
    }
}

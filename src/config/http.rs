//! `server.http`: the HTTP/1.1 listener (`crate::http`), on TCP, a Unix socket or both.

use super::server::byte_size;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use vaultbridge_backend_core::config::{Location, Section, Text};

/// Room for a request line with a 256-byte name and the headers curl, Python and the
/// AWS SDKs send (well under 1 KB), with a long bearer token on top.
pub(crate) const DEFAULT_MAX_HEADER_SIZE: usize = 16 * 1024;
/// hyper refuses a read buffer under 8 KiB; 1 MiB is far beyond any honest request.
const MIN_HEADER_SIZE: usize = 8 * 1024;
const MAX_HEADER_SIZE: usize = 1024 * 1024;
/// A local client sends its request line and headers at once. The same limit ends an
/// idle keep-alive connection: hyper times the wait for every request's headers.
pub(crate) const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpConfig {
    pub tcp: Option<SocketAddr>,
    /// Where `tcp` was written, for the cross-section authentication check.
    pub tcp_at: Location,
    /// Gets the gRPC socket's `unix_socket_mode`, `_owner` and `_group`.
    pub unix_socket: Option<PathBuf>,
    /// The AWS Secrets Manager Agent's routes and token check.
    pub aws_agent_compat: bool,
    /// The request line and headers together, in bytes (hyper's read buffer).
    pub max_header_size: usize,
    pub header_read_timeout: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    tcp: Option<Text>,
    unix_socket: Option<Text>,
    aws_agent_compat: Option<Text>,
    max_header_size: Option<Text>,
    header_read_timeout: Option<Text>,
}

/// The addresses the HTTP listener may not share.
pub(super) struct Taken<'a> {
    pub tcp: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    pub unix_socket: Option<&'a std::path::Path>,
}

pub(super) fn check(
    raw: &RawHttp,
    taken: &Taken<'_>,
    section: &mut Section<'_, '_>,
) -> Option<HttpConfig> {
    let mut http = HttpConfig {
        tcp: None,
        tcp_at: section.at(),
        unix_socket: None,
        aws_agent_compat: false,
        max_header_size: DEFAULT_MAX_HEADER_SIZE,
        header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
    };
    if let Some(value) = &raw.tcp
        && let Some(text) = section.text(value, "tcp")
    {
        match text.parse::<SocketAddr>() {
            Ok(addr) if addr.port() != 0 && [taken.tcp, taken.metrics].contains(&Some(addr)) => {
                section.problem(
                    value,
                    "tcp",
                    format!(
                        "`{text}` is already the gRPC or the metrics listener; the HTTP listener needs a port of its own"
                    ),
                );
            }
            Ok(addr) => {
                http.tcp = Some(addr);
                http.tcp_at = value.at;
            }
            Err(_) => section.expected(
                value,
                "tcp",
                "an IP address and port such as `127.0.0.1:2773` or `[::1]:2773`",
            ),
        }
    }
    if let Some(value) = &raw.unix_socket
        && let Some(path) = section.file_path(value, "unix_socket")
    {
        if taken.unix_socket == Some(path.as_path()) {
            section.problem(
                value,
                "unix_socket",
                "this is `server.unix_socket` already; the HTTP listener needs a socket of its own",
            );
        } else {
            http.unix_socket = Some(path);
        }
    }
    if let Some(value) = &raw.aws_agent_compat
        && let Some(on) = section.boolean(value, "aws_agent_compat")
    {
        http.aws_agent_compat = on;
    }
    if let Some(value) = &raw.max_header_size
        && let Some(size) = byte_size(value, "max_header_size", section)
    {
        if (MIN_HEADER_SIZE..=MAX_HEADER_SIZE).contains(&size) {
            http.max_header_size = size;
        } else {
            section.expected(
                value,
                "max_header_size",
                "a size from 8KiB to 1MiB such as `16KiB`",
            );
        }
    }
    section.timeout(
        raw.header_read_timeout.as_ref(),
        "header_read_timeout",
        &mut http.header_read_timeout,
    );
    if raw.tcp.is_none() && raw.unix_socket.is_none() {
        section.section_problem(
            "the HTTP listener needs `tcp` (such as `127.0.0.1:2773`), `unix_socket`, or both",
        );
        return None;
    }
    (http.tcp.is_some() || http.unix_socket.is_some()).then_some(http)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{parse, problems};
    use std::time::Duration;

    const BACKENDS: &str = "backends:\n  e:\n    type: env\n";

    #[test]
    fn the_listener_is_read_with_its_defaults() {
        let config = parse(&format!(
            "server:\n  unix_socket: /run/vb/vb.sock\n  http:\n    tcp: 127.0.0.1:2773\n{BACKENDS}"
        ))
        .unwrap();
        let http = config.server.http.expect("http");
        assert_eq!(http.tcp, Some("127.0.0.1:2773".parse().unwrap()));
        assert_eq!(http.unix_socket, None);
        assert!(!http.aws_agent_compat);
        assert_eq!(http.max_header_size, 16 * 1024);
        assert_eq!(http.header_read_timeout, Duration::from_secs(10));
    }

    #[test]
    fn every_field_is_read() {
        let config = parse(&format!(
            "server:\n  unix_socket: vb.sock\n  http:\n    unix_socket: http.sock\n    tcp: '[::1]:0'\n    aws_agent_compat: true\n    max_header_size: 64KiB\n    header_read_timeout: 2s\n{BACKENDS}"
        ))
        .unwrap();
        let http = config.server.http.expect("http");
        assert_eq!(
            http.unix_socket.as_deref(),
            Some(std::path::Path::new("/etc/vb/http.sock"))
        );
        assert!(http.aws_agent_compat);
        assert_eq!(http.max_header_size, 64 * 1024);
        assert_eq!(http.header_read_timeout, Duration::from_secs(2));
    }

    #[test]
    fn bad_values_are_refused_where_they_were_written() {
        let lines = problems(&format!(
            "server:\n  unix_socket: /run/vb/vb.sock\n  http:\n    tcp: localhost:80\n    aws_agent_compat: maybe\n    max_header_size: 4KiB\n    header_read_timeout: 0s\n{BACKENDS}"
        ));
        let all = lines.join("\n");
        for expected in [
            "test.yaml:4:10: server.http.tcp: expected an IP address and port such as `127.0.0.1:2773` or `[::1]:2773`, got `localhost:80`",
            "test.yaml:5:23: server.http.aws_agent_compat:",
            "test.yaml:6:22: server.http.max_header_size: expected a size from 8KiB to 1MiB such as `16KiB`, got `4KiB`",
            "test.yaml:7:26: server.http.header_read_timeout: a timeout must be longer than zero",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        let lines = problems(&format!(
            "server:\n  unix_socket: /run/vb/vb.sock\n  http:\n    tcp: 127.0.0.1:1\n    port: 80\n{BACKENDS}"
        ));
        assert!(
            lines
                .join("\n")
                .contains("test.yaml:5:5: server.http.port: unknown field `port`"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_listener_without_an_address_or_sharing_one_is_refused() {
        let lines = problems(&format!(
            "server:\n  unix_socket: /run/vb/vb.sock\n  http:\n    aws_agent_compat: true\n{BACKENDS}"
        ));
        assert!(
            lines
                .join("\n")
                .contains("server.http: the HTTP listener needs `tcp`"),
            "{lines:?}"
        );
        let lines = problems(&format!(
            "server:\n  unix_socket: /run/vb/vb.sock\n  tcp: 127.0.0.1:50051\n  http:\n    tcp: 127.0.0.1:50051\n    unix_socket: /run/vb/vb.sock\n{BACKENDS}"
        ));
        let all = lines.join("\n");
        assert!(
            all.contains(
                "server.http.tcp: `127.0.0.1:50051` is already the gRPC or the metrics listener"
            ),
            "{all}"
        );
        assert!(
            all.contains("server.http.unix_socket: this is `server.unix_socket` already"),
            "{all}"
        );
    }

    #[test]
    fn a_non_loopback_address_needs_caller_authentication() {
        let lines = problems(&format!(
            "server:\n  unix_socket: /run/vb/vb.sock\n  http:\n    tcp: 0.0.0.0:2773\n{BACKENDS}"
        ));
        let all = lines.join("\n");
        assert!(
            all.contains("test.yaml:4:10: server.http.tcp: `0.0.0.0:2773` is reachable from other hosts, and no caller authentication is configured"),
            "{all}"
        );
        let config = parse(&format!(
            "server:\n  unix_socket: /run/vb/vb.sock\n  http:\n    tcp: 0.0.0.0:2773\n{BACKENDS}clients:\n  etl:\n    tokens:\n      - env: ETL_TOKEN\n    definitions: ['*']\n"
        ));
        assert!(config.is_ok(), "{:?}", config.err().map(|e| e.to_string()));
    }
}

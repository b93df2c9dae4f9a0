//! `server.tls`: TLS on the TCP listener, and client certificates as caller identity.

use serde::Deserialize;
use std::path::PathBuf;
use vaultbridge_backend_core::config::{Section, Text};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsConfig {
    /// The server's certificate chain (PEM), re-read when it changes.
    pub cert_file: PathBuf,
    /// The server's private key (PEM), re-read with the certificate.
    pub key_file: PathBuf,
    /// CA certificates (PEM) that sign client certificates; when set, every TCP caller
    /// must present one (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    cert_file: Option<Text>,
    key_file: Option<Text>,
    client_ca_file: Option<Text>,
}

pub(super) fn check(raw: &RawTls, section: &mut Section<'_, '_>) -> Option<TlsConfig> {
    let cert_file = raw
        .cert_file
        .as_ref()
        .and_then(|value| section.file_path(value, "cert_file"));
    let key_file = raw
        .key_file
        .as_ref()
        .and_then(|value| section.file_path(value, "key_file"));
    let client_ca_file = raw
        .client_ca_file
        .as_ref()
        .and_then(|value| section.file_path(value, "client_ca_file"));
    if raw.cert_file.is_none() || raw.key_file.is_none() {
        section.section_problem(
            "TLS needs `cert_file` (the server's certificate chain, PEM) and `key_file` (its private key, PEM)",
        );
    }
    Some(TlsConfig {
        cert_file: cert_file?,
        key_file: key_file?,
        client_ca_file,
    })
}

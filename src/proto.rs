//! Code generated from `proto/vaultbridge/v1/secrets.proto`.

#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod v1 {
    tonic::include_proto!("vaultbridge.v1");
}

use zeroize::Zeroize;

/// The encoded descriptors of the vaultbridge protos, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/vaultbridge_descriptor.bin"));

impl std::fmt::Debug for v1::Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("name", &self.name)
            .field(
                "value",
                &format_args!("[REDACTED], {} bytes", self.value.len()),
            )
            .field("backend", &self.backend)
            .field("version_id", &self.version_id)
            .field("fetched_at", &self.fetched_at)
            .field("cache", &self.cache)
            .field("trimmed", &self.trimmed)
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for v1::GetCredentialsResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetCredentialsResponse")
            .field("connection", &self.connection)
            .field("deployment", &self.deployment)
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("token", &"[REDACTED]")
            .field("authorization", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

// tonic drops each response message as soon as it is encoded into the HTTP/2 body, so
// wiping on drop clears the message's copies of a value right after sending, and a
// client's copies when it is done with them. The encoded bytes are out of reach: tonic
// encodes into its own `BytesMut` and hands frozen `Bytes` to hyper and h2, which free
// them without wiping (see SECURITY.md). Moving a field out of these messages is
// therefore impossible; take it with `std::mem::take` instead.
impl Drop for v1::Secret {
    fn drop(&mut self) {
        self.value.zeroize();
        if let Some(text) = &mut self.text {
            text.zeroize();
        }
    }
}

impl Drop for v1::GetCredentialsResponse {
    fn drop(&mut self) {
        self.token.zeroize();
        self.authorization.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::v1;

    #[test]
    fn debug_of_a_secret_message_redacts_the_value() {
        let mut secret = v1::Secret::default();
        secret.name = "jira-api-token".into();
        secret.value = b"hunter2-token".to_vec();
        secret.text = Some("hunter2-token".into());
        let response = v1::ResolveResponse {
            secret: Some(secret),
        };
        let printed = format!("{response:?} {response:#?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("jira-api-token"), "{printed}");
    }

    #[test]
    fn debug_of_jira_credentials_redacts_token_and_header() {
        let mut credentials = v1::GetCredentialsResponse::default();
        credentials.connection = "jira-prod".into();
        credentials.token = "hunter2-token".into();
        credentials.authorization = "Basic aHVudGVyMi10b2tlbg==".into();
        let printed = format!("{credentials:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("aHVudGVy"),
            "{printed}"
        );
    }
}

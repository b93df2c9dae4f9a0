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

#[cfg(test)]
mod tests {
    use super::v1;

    #[test]
    fn debug_of_a_secret_message_redacts_the_value() {
        let secret = v1::Secret {
            name: "jira-api-token".into(),
            value: b"hunter2-token".to_vec(),
            text: Some("hunter2-token".into()),
            ..v1::Secret::default()
        };
        let response = v1::ResolveResponse {
            secret: Some(secret),
        };
        let printed = format!("{response:?} {response:#?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("jira-api-token"), "{printed}");
    }

    #[test]
    fn debug_of_jira_credentials_redacts_token_and_header() {
        let credentials = v1::GetCredentialsResponse {
            connection: "jira-prod".into(),
            token: "hunter2-token".into(),
            authorization: "Basic aHVudGVyMi10b2tlbg==".into(),
            ..v1::GetCredentialsResponse::default()
        };
        let printed = format!("{credentials:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("aHVudGVy"),
            "{printed}"
        );
    }
}

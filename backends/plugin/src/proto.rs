//! Code generated from `proto/vaultbridge/plugin/v1/backend.proto`. Public so that a
//! plugin written in Rust (and the tests' plugin) can use the server half.

#[allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    clippy::pedantic
)]
pub mod v1 {
    tonic::include_proto!("vaultbridge.plugin.v1");
}

impl std::fmt::Debug for v1::FetchResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchResponse")
            .field(
                "value",
                &format_args!("[REDACTED], {} bytes", self.value.len()),
            )
            .field("version_id", &self.version_id)
            .field("metadata", &self.metadata)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::v1;

    #[test]
    fn debug_of_a_fetch_response_redacts_the_value() {
        let response = v1::FetchManyResponse {
            results: vec![v1::FetchResult {
                result: Some(v1::fetch_result::Result::Secret(v1::FetchResponse {
                    value: b"hunter2-token".to_vec(),
                    ..v1::FetchResponse::default()
                })),
            }],
        };
        let printed = format!("{response:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("13 bytes"), "{printed}");
    }
}

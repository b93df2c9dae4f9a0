//! The `aws_secrets_manager` backend's settings, as the config file gives them.

use serde::Deserialize;
use std::time::Duration;
use vaultbridge_backend_core::config::{Section, Text};

/// The `aws_secrets_manager` backend instance's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    /// `None`: the SDK's region chain (`AWS_REGION`, profile, IMDS).
    pub region: Option<String>,
    pub profile: Option<String>,
    /// LocalStack, moto, a VPC endpoint.
    pub endpoint_url: Option<String>,
    pub assume_role: Option<AssumeRole>,
    pub connect_timeout: Duration,
    /// The whole call, retries included.
    pub operation_timeout: Duration,
    /// One attempt.
    pub attempt_timeout: Duration,
    /// Attempts per call under the SDK's standard retry mode.
    pub max_attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    pub role_arn: String,
    pub external_id: Option<String>,
    pub session_name: Option<String>,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: None,
            profile: None,
            endpoint_url: None,
            assume_role: None,
            connect_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(5),
            max_attempts: 3,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAwsConfig {
    region: Option<Text>,
    profile: Option<Text>,
    endpoint_url: Option<Text>,
    role_arn: Option<Text>,
    external_id: Option<Text>,
    session_name: Option<Text>,
    connect_timeout: Option<Text>,
    operation_timeout: Option<Text>,
    attempt_timeout: Option<Text>,
    max_attempts: Option<Text>,
}

/// Checks the settings as written, recording every problem in `section`.
pub(crate) fn check(raw: RawAwsConfig, section: &mut Section<'_, '_>) -> Option<AwsConfig> {
    let mut config = AwsConfig {
        region: section.optional_text(raw.region.as_ref(), "region"),
        profile: section.optional_text(raw.profile.as_ref(), "profile"),
        ..AwsConfig::default()
    };
    if let Some(value) = &raw.endpoint_url
        && let Some(url) = section.text(value, "endpoint_url")
    {
        if url.starts_with("https://") || url.starts_with("http://") {
            config.endpoint_url = Some(url);
        } else {
            section.expected(
                value,
                "endpoint_url",
                "a URL starting with https:// (or http:// for a local emulator)",
            );
        }
    }
    let role_arn = section.optional_text(raw.role_arn.as_ref(), "role_arn");
    if let (Some(arn), Some(value)) = (&role_arn, &raw.role_arn)
        && !arn.starts_with("arn:")
    {
        section.expected(
            value,
            "role_arn",
            "a role ARN such as `arn:aws:iam::123456789012:role/reader`",
        );
    }
    let external_id = section.optional_text(raw.external_id.as_ref(), "external_id");
    let session_name = section.optional_text(raw.session_name.as_ref(), "session_name");
    match role_arn {
        Some(role_arn) => {
            config.assume_role = Some(AssumeRole {
                role_arn,
                external_id,
                session_name,
            });
        }
        None => {
            for (name, value) in [
                ("external_id", &raw.external_id),
                ("session_name", &raw.session_name),
            ] {
                if let Some(value) = value {
                    section.problem(
                        value,
                        name,
                        format!("`{name}` only applies with `role_arn`"),
                    );
                }
            }
        }
    }
    section.timeout(
        raw.connect_timeout.as_ref(),
        "connect_timeout",
        &mut config.connect_timeout,
    );
    section.timeout(
        raw.operation_timeout.as_ref(),
        "operation_timeout",
        &mut config.operation_timeout,
    );
    section.timeout(
        raw.attempt_timeout.as_ref(),
        "attempt_timeout",
        &mut config.attempt_timeout,
    );
    if let Some(value) = &raw.max_attempts
        && let Some(attempts) = section.attempts(value, "max_attempts")
    {
        config.max_attempts = attempts;
    }
    Some(config)
}

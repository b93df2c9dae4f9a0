//! The one place where Key Vault and Entra errors become [`BackendError`]s.
//!
//! The official crate's error parser gives up on messages with escaped `\r\n` (real
//! RBAC 403 messages have them), leaving only the status, and it never surfaces the
//! `innererror` code `SecretDisabled`; so the response body is read here with
//! serde_json. Key Vault error bodies describe requests and identities, never values.

use crate::http::UntrustedCertificate;
use azure_core::error::ErrorKind as AzureKind;
use vaultbridge_backend_core::{BackendError, describe_chain, find_cause};

/// What the failing call was about, for messages.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub secret: &'a str,
    pub version: Option<&'a str>,
    pub vault: &'a str,
}

/// The `error` object of a Key Vault error body.
#[derive(Debug, Default)]
struct ServiceError {
    code: Option<String>,
    message: Option<String>,
    inner_codes: Vec<String>,
}

fn parse_body(body: &[u8]) -> ServiceError {
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(body) else {
        return ServiceError::default();
    };
    let error = &document["error"];
    let mut inner_codes = Vec::new();
    let mut inner = &error["innererror"];
    while let Some(code) = inner["code"].as_str() {
        inner_codes.push(code.to_owned());
        inner = &inner["innererror"];
    }
    ServiceError {
        code: error["code"].as_str().map(str::to_owned),
        message: error["message"].as_str().map(str::to_owned),
        inner_codes,
    }
}

pub(crate) fn map(err: &azure_core::Error, context: &Context<'_>) -> BackendError {
    let secret = context.secret;
    let vault = context.vault;
    match err.kind() {
        AzureKind::HttpResponse {
            status,
            raw_response,
            ..
        } => {
            let body = raw_response
                .as_ref()
                .map(|raw| parse_body(raw.body().as_ref()))
                .unwrap_or_default();
            map_http(u16::from(*status), body, context)
        }
        AzureKind::Credential => BackendError::unavailable(format!(
            "the daemon could not get a Microsoft Entra token for vault `{vault}`: {}",
            describe_chain(err)
        )),
        AzureKind::Io | AzureKind::Connection => BackendError::unavailable(format!(
            "cannot reach vault `{vault}`: {}",
            describe_chain(err)
        )),
        _ if find_cause::<UntrustedCertificate>(err).is_some() => {
            // Trying again cannot fix a certificate.
            BackendError::unavailable(format!(
                "cannot reach vault `{vault}`: {}",
                describe_chain(err)
            ))
            .temporary(false)
        }
        _ => BackendError::internal(format!(
            "reading secret `{secret}` from vault `{vault}` failed: {}",
            describe_chain(err)
        )),
    }
}

/// A Key Vault answer with an HTTP error `status` and its parsed `body`.
fn map_http(status: u16, body: ServiceError, context: &Context<'_>) -> BackendError {
    let secret = context.secret;
    let vault = context.vault;
    let version = context
        .version
        .map(|version| format!(" (version `{version}`)"))
        .unwrap_or_default();
    let says = body
        .message
        .as_deref()
        .map(|message| format!(" (Key Vault: {})", message.replace("\r\n", " ")))
        .unwrap_or_default();
    match status {
        404 => BackendError::not_found(format!(
            "secret `{secret}`{version} does not exist in vault `{vault}`"
        )),
        403 if body.inner_codes.iter().any(|code| code == "SecretDisabled")
            || body
                .message
                .as_deref()
                .is_some_and(|message| message.contains("disabled secret")) =>
        {
            BackendError::failed_precondition(format!(
                "secret `{secret}`{version} in vault `{vault}` is disabled; enable it (or pin an enabled version)"
            ))
        }
        403 => BackendError::permission_denied(format!(
            "the daemon's Azure identity may not read secret `{secret}` in vault `{vault}`: it needs the `secrets/get` permission in the vault's access policy, or the \"Key Vault Secrets User\" role on an RBAC vault{says}"
        )),
        401 => BackendError::unavailable(format!(
            "vault `{vault}` rejected the daemon's own token{says}; check the daemon's Azure identity and tenant"
        )),
        429 => BackendError::unavailable(format!(
            "vault `{vault}` is throttling the daemon (retried, honouring Retry-After); try again shortly"
        )),
        500..=599 => BackendError::unavailable(format!(
            "vault `{vault}` failed to answer for secret `{secret}` (retried){says}"
        )),
        400 => BackendError::invalid_config(format!(
            "vault `{vault}` refused the request for secret `{secret}`{version}{says}"
        )),
        other => BackendError::internal(format!(
            "vault `{vault}` answered HTTP {other} for secret `{secret}`{}{says}",
            body.code
                .map(|code| format!(" ({code})"))
                .unwrap_or_default()
        )),
    }
}

/// [`map_http`] on a raw body, as the fuzz target drives it.
#[cfg(feature = "fuzzing")]
pub(crate) fn map_status_body(status: u16, body: &[u8]) -> String {
    let context = Context {
        secret: "fuzzed",
        version: Some("v1"),
        vault: "https://fuzz.vault.azure.net",
    };
    map_http(status, parse_body(body), &context).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_error_codes_are_read_from_the_body() {
        let body = br#"{"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}"#;
        let parsed = parse_body(body);
        assert_eq!(parsed.code.as_deref(), Some("Forbidden"));
        assert_eq!(parsed.inner_codes, ["SecretDisabled"]);
    }

    #[test]
    fn escaped_crlf_in_messages_is_read() {
        let body = br#"{"error":{"code":"Forbidden","message":"Caller is not authorized.\r\nVault: v;location=westeurope","innererror":{"code":"ForbiddenByRbac"}}}"#;
        let parsed = parse_body(body);
        assert!(parsed.message.unwrap().contains("\r\nVault"));
        assert_eq!(parsed.inner_codes, ["ForbiddenByRbac"]);
    }
}

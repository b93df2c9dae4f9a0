//! A connection's credentials as handed to components, and the checks a pasted token
//! needs; the checks name the connection, never the token.

use super::config::Deployment;
use vaultbridge_backend_core::SecretValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Basic,
    Bearer,
}

#[derive(Debug)]
pub(crate) struct Credentials {
    pub connection: String,
    pub deployment: Deployment,
    pub base_url: String,
    pub site_url: String,
    pub scheme: Scheme,
    pub username: String,
    pub token: SecretValue,
    pub authorization: SecretValue,
    pub project: Option<String>,
    pub expires_at: Option<time::Date>,
    pub days_left: Option<i64>,
    pub warnings: Vec<String>,
}

/// What a pasted token often gets wrong; each warning names the connection, never the
/// token.
pub(crate) fn token_warnings(connection: &str, token: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    let trimmed = token.trim();
    let lowered = trimmed.to_ascii_lowercase();
    if trimmed.is_empty() {
        warnings.push(format!(
            "the token of Jira connection `{connection}` is empty; store the API token in the vault"
        ));
        return warnings;
    }
    if lowered.starts_with("basic ") || lowered.starts_with("bearer ") {
        warnings.push(format!(
            "the token of Jira connection `{connection}` starts with `Basic ` or `Bearer `: store the token alone; vaultbridge builds the header"
        ));
    } else if let Some((before, _)) = trimmed.split_once(':')
        && before.contains('@')
    {
        warnings.push(format!(
            "the token of Jira connection `{connection}` looks like `email:token`: store the token alone and set the email on the connection"
        ));
    }
    if trimmed.contains(char::is_whitespace)
        && !(lowered.starts_with("basic ") || lowered.starts_with("bearer "))
    {
        warnings.push(format!(
            "the token of Jira connection `{connection}` has whitespace inside it; API tokens have none, so it was probably pasted wrong"
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_tokens_get_no_warnings() {
        assert!(token_warnings("c", "ATATT3xFfGF0abcDEF123").is_empty());
    }

    #[test]
    fn pasted_token_mistakes_are_named_without_the_token() {
        let secret = "ATATT3x-secret-part";
        let cases = [
            (format!("dev@example.com:{secret}"), "email:token"),
            (format!("Basic {secret}"), "Basic "),
            (format!("bearer {secret}"), "Bearer "),
            (format!("ATATT3x {secret}"), "whitespace inside"),
            ("   ".to_owned(), "is empty"),
        ];
        for (token, expected) in cases {
            let warnings = token_warnings("jira-prod", &token);
            assert_eq!(warnings.len(), 1, "{token:?}: {warnings:?}");
            assert!(warnings[0].contains(expected), "{warnings:?}");
            assert!(warnings[0].contains("`jira-prod`"), "{warnings:?}");
            assert!(!warnings[0].contains(secret), "{warnings:?}");
        }
    }
}

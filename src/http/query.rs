//! Paths and query strings: percent-decoding and the parameters each route takes,
//! every unknown, repeated or malformed parameter refused by name.

use super::HttpRequestError;
use crate::resolver::Freshness;
use std::borrow::Cow;
use std::time::Duration;

/// Decodes `%XX` escapes (and `+` as a space in a query, as HTML forms and Python's
/// `urlencode` write it) into UTF-8 text.
pub(super) fn decode<'a>(
    text: &'a str,
    plus_is_space: bool,
    what: &'static str,
) -> Result<Cow<'a, str>, HttpRequestError> {
    // A byte scan: `contains` with a char set walks the text a char at a time.
    if !text.bytes().any(|byte| byte == b'%' || byte == b'+') {
        return Ok(Cow::Borrowed(text));
    }
    let bad = || HttpRequestError::BadEncoding { what };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| bad())
}

/// The `name=value` pairs of a query, decoded, each name at most once.
fn pairs(query: Option<&str>) -> Result<Vec<(String, String)>, HttpRequestError> {
    let mut found: Vec<(String, String)> = Vec::new();
    for pair in query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name, true, "query")?.into_owned();
        if found.iter().any(|(seen, _)| *seen == name) {
            return Err(HttpRequestError::DuplicateParameter { name });
        }
        found.push((name, decode(value, true, "query")?.into_owned()));
    }
    Ok(found)
}

fn boolean(name: &'static str, value: &str) -> Result<bool, HttpRequestError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(HttpRequestError::BadParameter {
            name,
            expected: "`true` or `false`",
            got: value.to_owned(),
        }),
    }
}

/// `GET /v1/secrets/{name}`'s options: `max_age` (a duration such as `30s`, or whole
/// seconds) and `refresh`, as in gRPC's `ResolveRequest`.
pub(super) fn freshness(query: Option<&str>) -> Result<Freshness, HttpRequestError> {
    let mut freshness = Freshness::default();
    if query.is_none_or(str::is_empty) {
        return Ok(freshness);
    }
    for (name, value) in pairs(query)? {
        match name.as_str() {
            "max_age" => freshness.max_age = Some(duration("max_age", &value)?),
            "refresh" => freshness.refresh = boolean("refresh", &value)?,
            _ => {
                return Err(HttpRequestError::UnknownParameter {
                    name,
                    takes: "`max_age` and `refresh`",
                });
            }
        }
    }
    Ok(freshness)
}

fn duration(name: &'static str, value: &str) -> Result<Duration, HttpRequestError> {
    let parsed = match value.parse::<u64>() {
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(_) => humantime::parse_duration(value),
    };
    parsed.map_err(|_| HttpRequestError::BadParameter {
        name,
        expected: "a duration such as `30s`, `5m` or whole seconds",
        got: value.to_owned(),
    })
}

/// The AWS agent's `GetSecretValue` parameters.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct AgentQuery {
    pub secret_id: String,
    pub version_id: Option<String>,
    pub version_stage: Option<String>,
    pub refresh_now: bool,
}

/// `/secretsmanager/get?secretId=…` (`secret_id: None`) or `/v1/{secretId}?…`.
pub(super) fn agent(
    secret_id: Option<String>,
    query: Option<&str>,
) -> Result<AgentQuery, HttpRequestError> {
    let takes_id = secret_id.is_none();
    let mut parsed = AgentQuery {
        secret_id: secret_id.unwrap_or_default(),
        ..AgentQuery::default()
    };
    for (name, value) in pairs(query)? {
        match name.as_str() {
            "secretId" if takes_id => parsed.secret_id = value,
            "versionId" => parsed.version_id = Some(value),
            "versionStage" => parsed.version_stage = Some(value),
            "refreshNow" => parsed.refresh_now = boolean("refreshNow", &value)?,
            _ => {
                return Err(HttpRequestError::UnknownParameter {
                    name,
                    takes: if takes_id {
                        "`secretId`, `versionId`, `versionStage` and `refreshNow`"
                    } else {
                        "`versionId`, `versionStage` and `refreshNow`"
                    },
                });
            }
        }
    }
    if parsed.secret_id.is_empty() {
        return Err(HttpRequestError::MissingSecretId);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn no_path_or_query_panics(text in ".{0,64}", raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let escaped: String = raw.iter().map(|b| format!("%{b:02X}")).collect();
            for input in [text.as_str(), escaped.as_str()] {
                let _ = decode(input, true, "query");
                let _ = freshness(Some(input));
                let _ = agent(None, Some(input));
            }
            // Escaped bytes come back exactly when they are UTF-8.
            prop_assert_eq!(
                decode(&escaped, false, "path").ok().map(Cow::into_owned),
                String::from_utf8(raw).ok()
            );
        }
    }

    #[test]
    fn escapes_and_plus_are_decoded_and_bad_ones_refused() {
        assert_eq!(decode("a%2Fb+c", true, "query").unwrap(), "a/b c");
        assert_eq!(decode("a+b", false, "path").unwrap(), "a+b");
        for bad in ["%", "%4", "%zz", "%ff"] {
            assert!(
                matches!(
                    decode(bad, false, "path"),
                    Err(HttpRequestError::BadEncoding { what: "path" })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn freshness_is_read_and_anything_else_refused() {
        assert_eq!(freshness(None).unwrap(), Freshness::default());
        let read = freshness(Some("max_age=30s&refresh=true")).unwrap();
        assert_eq!(read.max_age, Some(Duration::from_secs(30)));
        assert!(read.refresh);
        assert_eq!(
            freshness(Some("max_age=5")).unwrap().max_age,
            Some(Duration::from_secs(5))
        );
        let err = freshness(Some("ttl=1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown query parameter `ttl`; this route takes `max_age` and `refresh`"
        );
        let err = freshness(Some("refresh=yes")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "query parameter `refresh`: expected `true` or `false`, got `yes`"
        );
        assert!(matches!(
            freshness(Some("refresh=1&refresh=0")),
            Err(HttpRequestError::DuplicateParameter { .. })
        ));
        assert!(matches!(
            freshness(Some("max_age=-1s")),
            Err(HttpRequestError::BadParameter {
                name: "max_age",
                ..
            })
        ));
    }

    #[test]
    fn the_agents_parameters_are_read_as_the_agent_reads_them() {
        let query = agent(
            None,
            Some("secretId=a%2Fb&versionStage=AWSPREVIOUS&refreshNow=TRUE"),
        )
        .unwrap();
        assert_eq!(query.secret_id, "a/b");
        assert_eq!(query.version_stage.as_deref(), Some("AWSPREVIOUS"));
        assert!(query.refresh_now);
        assert!(matches!(
            agent(None, Some("versionId=x")),
            Err(HttpRequestError::MissingSecretId)
        ));
        assert!(matches!(
            agent(Some("x".into()), Some("secretId=y")),
            Err(HttpRequestError::UnknownParameter { .. })
        ));
        assert!(matches!(
            agent(None, Some("secretId=x&refreshNow=123")),
            Err(HttpRequestError::BadParameter { .. })
        ));
    }
}

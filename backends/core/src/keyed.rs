//! Picking one field out of a key/value secret stored as a JSON object string, the way
//! the AWS console stores "Other type of secret" and people store bundles elsewhere.

use crate::{BackendError, SecretValue};
use serde_json::Value;
use zeroize::Zeroize;

/// Returns field `key` of `value`, which must hold a JSON object. `what` names the
/// secret in messages (`variable JIRA`, `secret jira/prod`).
///
/// String fields come back as their text; numbers and booleans as their JSON text;
/// nested objects and arrays as compact JSON, so a service-account document can be
/// served whole. Messages never quote the value: parser messages can echo input, so
/// only the position of a syntax error is reported.
pub fn pick_json_key(
    value: &SecretValue,
    key: &str,
    what: &str,
) -> Result<SecretValue, BackendError> {
    let mut parsed: Value = serde_json::from_slice(value.expose()).map_err(|err| {
        let position = if err.is_syntax() || err.is_eof() {
            format!(
                " (invalid JSON at line {}, column {})",
                err.line(),
                err.column()
            )
        } else {
            String::new()
        };
        BackendError::failed_precondition(format!(
            "{what} is not a JSON object, so key `{key}` cannot be picked from it{position}; \
             remove `key` from the definition to get the whole value"
        ))
    })?;
    let picked = pick_from_object(&parsed, key, what);
    wipe_json(&mut parsed);
    picked
}

fn pick_from_object(parsed: &Value, key: &str, what: &str) -> Result<SecretValue, BackendError> {
    let Value::Object(map) = parsed else {
        return Err(BackendError::failed_precondition(format!(
            "{what} holds JSON {}, not an object, so key `{key}` cannot be picked from it; \
             remove `key` from the definition to get the whole value",
            json_type_name(parsed)
        )));
    };
    match map.get(key) {
        None => Err(BackendError::key_not_found(what, key, map.keys())),
        Some(Value::Null) => Err(BackendError::failed_precondition(format!(
            "key `{key}` of {what} is null"
        ))),
        Some(Value::String(text)) => Ok(SecretValue::from(text.as_str())),
        Some(other) => Ok(SecretValue::from(other.to_string())),
    }
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Overwrites every string in a parsed JSON document, so that the copies a parse made of
/// a secret do not linger in freed memory.
pub fn wipe_json(value: &mut Value) {
    match value {
        Value::String(text) => text.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe_json),
        Value::Object(map) => map.values_mut().for_each(wipe_json),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn pick(json: &str, key: &str) -> Result<SecretValue, BackendError> {
        pick_json_key(&SecretValue::from(json), key, "secret `s`")
    }

    #[test]
    fn picks_string_number_and_nested_fields() {
        let json = r#"{"token":"abc ","port":5432,"sa":{"a":1}}"#;
        assert_eq!(pick(json, "token").unwrap().expose(), b"abc ");
        assert_eq!(pick(json, "port").unwrap().expose(), b"5432");
        assert_eq!(pick(json, "sa").unwrap().expose(), br#"{"a":1}"#);
    }

    #[test]
    fn missing_key_lists_names_but_no_values() {
        let err = pick(r#"{"user":"u-secret","token":"t-secret"}"#, "tok").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyNotFound);
        let message = err.to_string();
        assert!(
            message.contains("`token`") && message.contains("`user`"),
            "{message}"
        );
        assert!(!message.contains("secret\""), "{message}");
        assert!(
            !message.contains("t-secret") && !message.contains("u-secret"),
            "{message}"
        );
    }

    #[test]
    fn non_json_value_is_a_failed_precondition_without_echo() {
        let err = pick("plain-secret-text", "token").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert!(!err.to_string().contains("plain-secret-text"), "{err}");
        let err = pick(r#"["array-secret"]"#, "token").unwrap_err();
        assert!(err.to_string().contains("an array"), "{err}");
        assert!(!err.to_string().contains("array-secret"), "{err}");
    }

    #[test]
    fn wipe_clears_every_string() {
        let mut value: Value = serde_json::from_str(r#"{"a":"xyz","b":["pq"]}"#).unwrap();
        wipe_json(&mut value);
        assert_eq!(value, serde_json::json!({"a": "", "b": [""]}));
    }
}

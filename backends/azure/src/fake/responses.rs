//! The fake vault's answers: the bodies, headers and status codes Key Vault and Entra ID
//! give, built for the request the fake is serving.

use super::*;

/// The challenge the official client answers by getting a token for the resource it
/// names.
pub(super) fn challenge() -> Answer {
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(
            "www-authenticate",
            format!(r#"Bearer authorization="https://{LOGIN_HOST}/{TENANT}", resource="{RESOURCE}""#),
        )
        .body(Full::new(Bytes::from(
            r#"{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}"#,
        )))
        .expect("response")
}

pub(super) fn not_found(name: &str) -> Answer {
    vault_error(
        StatusCode::NOT_FOUND,
        "SecretNotFound",
        &format!(
            "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command."
        ),
        None,
    )
}

pub(super) fn attributes(version: &Version) -> serde_json::Value {
    serde_json::json!({
        "enabled": version.enabled,
        "created": version.created,
        "updated": version.created,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90
    })
}

pub(super) fn bundle(origin: &str, name: &str, version: &Version) -> Answer {
    if !version.enabled {
        return vault_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Operation get is not allowed on a disabled secret.",
            Some("SecretDisabled"),
        );
    }
    let mut body = serde_json::json!({
        "value": version.value,
        "id": format!("{origin}/secrets/{name}/{}", version.id),
        "attributes": attributes(version),
        "tags": {}
    });
    if let Some(content_type) = &version.content_type {
        body["contentType"] = serde_json::Value::String(content_type.clone());
    }
    json(StatusCode::OK, body)
}

pub(super) fn item(
    origin: &str,
    name: &str,
    version: Option<&str>,
    latest: &Version,
) -> serde_json::Value {
    let id = match version {
        Some(version) => format!("{origin}/secrets/{name}/{version}"),
        None => format!("{origin}/secrets/{name}"),
    };
    let mut item = serde_json::json!({ "id": id, "attributes": attributes(latest), "tags": {} });
    if let Some(content_type) = &latest.content_type {
        item["contentType"] = serde_json::Value::String(content_type.clone());
    }
    item
}

pub(super) fn page(
    origin: &str,
    path: &str,
    api_version: &str,
    items: Vec<serde_json::Value>,
    skip: usize,
) -> Answer {
    let end = (skip + PAGE_SIZE).min(items.len());
    let value: Vec<serde_json::Value> = items.get(skip..end).map(<[_]>::to_vec).unwrap_or_default();
    let next = (end < items.len())
        .then(|| format!("{origin}/{path}?api-version={api_version}&$skiptoken={end}"));
    json(
        StatusCode::OK,
        serde_json::json!({ "value": value, "nextLink": next }),
    )
}

pub(super) fn token_endpoint(
    state: &Mutex<State>,
    method: &hyper::Method,
    path: &str,
    body: &[u8],
) -> Answer {
    let form: HashMap<String, String> = String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let mut state = lock(state);
    state.token_requests.push(form.clone());
    let aad_error = |status: StatusCode, error: &str, description: &str| {
        json(
            status,
            serde_json::json!({ "error": error, "error_description": description, "error_codes": [7000215] }),
        )
    };
    if method != hyper::Method::POST || path != format!("/{TENANT}/oauth2/v2.0/token") {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS900144: unknown tenant or endpoint.",
        );
    }
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "AADSTS700016: Application not found in the directory.",
        );
    }
    if form.get("scope").map(String::as_str) != Some(&format!("{RESOURCE}/.default")) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "AADSTS70011: The provided value for scope is not valid.",
        );
    }
    let by_secret = form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    let by_assertion = form.get("client_assertion_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        && form.get("client_assertion").map(String::as_str) == Some(FEDERATED_TOKEN);
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || !(by_secret || by_assertion)
    {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        );
    }
    let token = format!("entra-token-{}", state.tokens.len());
    state.tokens.insert(token.clone());
    json(
        StatusCode::OK,
        serde_json::json!({ "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token }),
    )
}

pub(super) fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

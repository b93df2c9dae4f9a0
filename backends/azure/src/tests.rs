use super::*;
use crate::fake::{FakeVault, Fault};
use futures_util::TryStreamExt;
use vaultbridge_backend_core::ErrorKind;
use vaultbridge_backend_core::conformance::{Fixture, RefusingAddress, Seed, Unreachable, Update};
use vaultbridge_backend_core::conformance_suite;

/// A backend on the real client-secret credential path: its token comes from the
/// fake's Entra endpoint, the secret from a file.
fn backend_with_client_secret(vault: &FakeVault, dir: &tempfile::TempDir) -> AzureBackend {
    AzureBackend::connect(&client_secret_config(vault, dir)).unwrap()
}

fn client_secret_config(vault: &FakeVault, dir: &tempfile::TempDir) -> AzureConfig {
    let secret_file = dir.path().join("client-secret");
    std::fs::write(&secret_file, format!("{}\n", fake::CLIENT_SECRET)).unwrap();
    vault.config(CredentialConfig::ClientSecret {
        tenant_id: fake::TENANT.to_owned(),
        client_id: fake::CLIENT_ID.to_owned(),
        secret: SecretSource::File(secret_file),
    })
}

struct VaultFixture {
    vault: tokio::sync::OnceCell<FakeVault>,
    dir: tempfile::TempDir,
    /// Where the unreachable instance points; held for the fixture's life.
    refusing: RefusingAddress,
}

impl VaultFixture {
    fn new() -> Self {
        Self {
            vault: tokio::sync::OnceCell::new(),
            dir: tempfile::tempdir().unwrap(),
            refusing: RefusingAddress::bind(),
        }
    }
}

/// Key Vault stores text; key/value secrets as a JSON object string.
fn text(seed: &Seed) -> String {
    match seed {
        Seed::Value(bytes) => String::from_utf8(bytes.clone()).expect("text seed"),
        Seed::Map(pairs) => Seed::map_as_json(pairs),
    }
}

#[async_trait]
impl Fixture for VaultFixture {
    async fn backend(&self, secrets: &[(&str, Seed)]) -> Arc<dyn Backend> {
        let vault = self.vault.get_or_init(FakeVault::start).await;
        for (name, seed) in secrets {
            vault.put(name, &text(seed), None).await;
        }
        Arc::new(backend_with_client_secret(vault, &self.dir))
    }

    /// A new version through the fake's `PUT /secrets/{name}`, as `az keyvault secret
    /// set` makes one; the older versions stay readable by id.
    async fn update(&self, id: &str, seed: Seed) -> Update {
        let vault = self.vault.get().expect("update after backend");
        vault.put(id, &text(&seed), None).await;
        Update::Applied
    }

    /// The fake's settings, credential and CA with the vault and Entra host names
    /// resolved to an address that refuses connections (on its port: a URL's own port
    /// wins over a resolved one), and a single attempt: the official client would
    /// otherwise retry a refused connection with backoff.
    async fn unreachable(&self) -> Option<Unreachable> {
        let vault = self.vault.get().expect("unreachable after backend");
        let address = self.refusing.address();
        let mut config = client_secret_config(vault, &self.dir);
        config.vault_url = format!("https://{}:{}", fake::VAULT_HOST, address.port());
        config.authority_host = Some(format!("https://{}:{}", fake::LOGIN_HOST, address.port()));
        config.resolve = vec![
            (fake::VAULT_HOST.to_owned(), address),
            (fake::LOGIN_HOST.to_owned(), address),
        ];
        config.connect_timeout = Duration::from_secs(1);
        config.operation_timeout = Duration::from_secs(2);
        config.max_attempts = 1;
        let backend = AzureBackend::connect(&config).unwrap();
        Some(Unreachable {
            backend: Arc::new(backend),
            service: config.vault_url,
        })
    }
}

conformance_suite!(VaultFixture::new());

#[tokio::test]
async fn latest_pinned_and_rotated_versions_with_content_type() {
    let vault = FakeVault::start().await;
    let dir = tempfile::tempdir().unwrap();
    let backend = backend_with_client_secret(&vault, &dir);
    let first = vault
        .put("jira-token", "first-token", Some("text/plain"))
        .await;

    let latest = backend.fetch(&SecretRef::new("jira-token")).await.unwrap();
    assert_eq!(latest.value.expose(), b"first-token");
    assert_eq!(latest.version.as_deref(), Some(first.as_str()));
    assert_eq!(
        latest.metadata.get(CONTENT_TYPE).map(String::as_str),
        Some("text/plain")
    );

    let second = vault.put("jira-token", "second-token", None).await;
    let rotated = backend.fetch(&SecretRef::new("jira-token")).await.unwrap();
    assert_eq!(rotated.value.expose(), b"second-token");
    assert_eq!(rotated.version.as_deref(), Some(second.as_str()));

    let mut pinned = SecretRef::new("jira-token");
    pinned.version = VersionSelector::Id(first.clone());
    assert_eq!(
        backend.fetch(&pinned).await.unwrap().value.expose(),
        b"first-token"
    );
    pinned.version = VersionSelector::Id("0".repeat(32));
    let err = backend.fetch(&pinned).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string().contains(&"0".repeat(32)),
        "names the version: {err}"
    );
}

#[tokio::test]
async fn the_challenge_comes_first_and_the_token_comes_from_entra() {
    let vault = FakeVault::start().await;
    vault.put("s", "v", None).await;
    let dir = tempfile::tempdir().unwrap();
    let backend = backend_with_client_secret(&vault, &dir);
    backend.fetch(&SecretRef::new("s")).await.unwrap();
    let reads: Vec<_> = vault
        .seen()
        .into_iter()
        .filter(|seen| seen.method == "GET")
        .collect();
    assert!(
        !reads[0].authorized,
        "the first request carries no token: {reads:?}"
    );
    assert!(reads.last().unwrap().authorized, "{reads:?}");
    let token_request = vault.token_requests().pop().expect("a token request");
    assert_eq!(token_request["grant_type"], "client_credentials");
    assert_eq!(
        token_request["client_secret"],
        fake::CLIENT_SECRET,
        "read from the file, trimmed"
    );
    assert_eq!(
        token_request["scope"],
        format!("{}/.default", fake::RESOURCE)
    );
}

#[tokio::test]
async fn workload_identity_presents_the_federated_token_file() {
    let vault = FakeVault::start().await;
    vault.put("wi-secret", "wi-value", None).await;
    let credential = CredentialConfig::WorkloadIdentity {
        tenant_id: Some(fake::TENANT.to_owned()),
        client_id: Some(fake::CLIENT_ID.to_owned()),
        token_file: Some(vault.federated_token_file()),
    };
    let backend = AzureBackend::connect(&vault.config(credential)).unwrap();
    assert_eq!(
        backend
            .fetch(&SecretRef::new("wi-secret"))
            .await
            .unwrap()
            .value
            .expose(),
        b"wi-value"
    );
    let token_request = vault.token_requests().pop().unwrap();
    assert_eq!(token_request["client_assertion"], fake::FEDERATED_TOKEN);

    // `auto` picks workload identity when its environment variables are present.
    let file = vault.federated_token_file();
    let env = move |name: &str| match name {
        "AZURE_TENANT_ID" => Some(fake::TENANT.to_owned()),
        "AZURE_CLIENT_ID" => Some(fake::CLIENT_ID.to_owned()),
        "AZURE_FEDERATED_TOKEN_FILE" => Some(file.display().to_string()),
        _ => None,
    };
    let auto = AzureBackend::connect_with_env(&vault.config(CredentialConfig::Auto), &env).unwrap();
    assert_eq!(
        auto.fetch(&SecretRef::new("wi-secret"))
            .await
            .unwrap()
            .value
            .expose(),
        b"wi-value"
    );
}

#[tokio::test]
async fn a_wrong_client_secret_is_the_daemons_trouble() {
    let vault = FakeVault::start().await;
    vault.put("s", "v", None).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("wrong");
    std::fs::write(&secret_file, "not-the-secret").unwrap();
    let credential = CredentialConfig::ClientSecret {
        tenant_id: fake::TENANT.to_owned(),
        client_id: fake::CLIENT_ID.to_owned(),
        secret: SecretSource::File(secret_file),
    };
    let backend = AzureBackend::connect(&vault.config(credential)).unwrap();
    let err = backend.fetch(&SecretRef::new("s")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.to_string()
            .contains("could not get a Microsoft Entra token"),
        "{err}"
    );
    assert!(!err.to_string().contains("not-the-secret"), "{err}");
}

#[tokio::test]
async fn not_found_forbidden_and_disabled_are_told_apart() {
    let vault = FakeVault::start().await;
    vault.put("guarded", "guarded-value", None).await;
    vault.put("retired", "retired-value", None).await;
    vault.disable("retired");
    let dir = tempfile::tempdir().unwrap();
    let backend = backend_with_client_secret(&vault, &dir);

    let missing = backend.fetch(&SecretRef::new("nope")).await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert!(
        missing.to_string().contains("`nope`") && missing.to_string().contains(&vault.vault_url()),
        "{missing}"
    );

    vault.inject("guarded", Fault::Forbidden);
    let forbidden = backend.fetch(&SecretRef::new("guarded")).await.unwrap_err();
    assert_eq!(forbidden.kind(), ErrorKind::PermissionDenied, "{forbidden}");
    let message = forbidden.to_string();
    assert!(
        message.contains("secrets/get") && message.contains("Key Vault Secrets User"),
        "{message}"
    );
    assert!(
        !message.contains('\r'),
        "CR LF from the service is flattened: {message}"
    );

    let disabled = backend.fetch(&SecretRef::new("retired")).await.unwrap_err();
    assert_eq!(disabled.kind(), ErrorKind::FailedPrecondition, "{disabled}");
    assert!(disabled.to_string().contains("disabled"), "{disabled}");
    assert!(!disabled.to_string().contains("retired-value"));
}

#[tokio::test]
async fn throttling_5xx_and_slow_answers_are_retried_by_the_official_client() {
    let vault = FakeVault::start().await;
    vault.put("busy", "busy-value", None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = client_secret_config(&vault, &dir);
    config.max_attempts = 4;
    let backend = AzureBackend::connect(&config).unwrap();
    backend.fetch(&SecretRef::new("busy")).await.unwrap();
    let before = vault.seen().len();

    vault.inject(
        "busy",
        Fault::Throttled {
            retry_after_seconds: 1,
        },
    );
    vault.inject("busy", Fault::ServerError);
    vault.inject("busy", Fault::Slow(Duration::from_secs(4)));
    let fetched = backend.fetch(&SecretRef::new("busy")).await.unwrap();
    assert_eq!(fetched.value.expose(), b"busy-value");
    // 429, 500, the slow one (timed out at 2 s), then the answer.
    assert_eq!(vault.seen().len() - before, 4);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_at_once_naming_the_certificate() {
    let vault = FakeVault::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("client-secret");
    std::fs::write(&secret_file, fake::CLIENT_SECRET).unwrap();
    let mut config = vault.config(CredentialConfig::ClientSecret {
        tenant_id: fake::TENANT.to_owned(),
        client_id: fake::CLIENT_ID.to_owned(),
        secret: SecretSource::File(secret_file),
    });
    config.ca_file = None;
    let backend = AzureBackend::connect(&config).unwrap();
    let err = backend.fetch(&SecretRef::new("s")).await.unwrap_err();
    assert!(
        err.to_string().contains("not trusted") && err.to_string().contains("ca_file"),
        "{err}"
    );
    assert!(
        !err.is_temporary(),
        "retrying cannot fix a certificate: {err}"
    );
    assert!(vault.seen().is_empty(), "nothing got past TLS");
}

#[tokio::test]
async fn invalid_names_never_reach_the_network() {
    let vault = FakeVault::start().await;
    let dir = tempfile::tempdir().unwrap();
    let backend = backend_with_client_secret(&vault, &dir);
    let err = backend
        .fetch(&SecretRef::new("jira_token"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.to_string().contains("`jira-token`"),
        "suggests the fix: {err}"
    );
    assert!(vault.seen().is_empty());
}

#[test]
fn secret_names_follow_key_vault_rules() {
    assert!(validate_secret_name("jira-token").is_ok());
    assert!(validate_secret_name(&"a".repeat(127)).is_ok());
    assert!(validate_secret_name(&"a".repeat(128)).is_err());
    assert!(validate_secret_name("").is_err());
    let err = validate_secret_name("jira_token").unwrap_err();
    assert!(err.contains("did you mean `jira-token`"), "{err}");
}

/// The fake's listing and paging, proved with the official client's pagers.
#[tokio::test]
async fn the_fake_pages_like_the_service_for_the_official_client() {
    let vault = FakeVault::start().await;
    for name in ["a", "b", "c", "d", "e"] {
        vault.put(name, "v", None).await;
    }
    vault.put("a", "v2", None).await;
    vault.put("a", "v3", None).await;
    let mut names = Vec::new();
    let client = vault.seeding_client();
    let mut pager = client.list_secret_properties(None).unwrap();
    while let Some(item) = pager.try_next().await.unwrap() {
        names.push(item.id.unwrap().rsplit('/').next().unwrap().to_owned());
    }
    assert_eq!(
        names,
        ["a", "b", "c", "d", "e"],
        "5 secrets over 3 pages of 2"
    );
    let mut versions = 0;
    let mut pager = client.list_secret_properties_versions("a", None).unwrap();
    while pager.try_next().await.unwrap().is_some() {
        versions += 1;
    }
    assert_eq!(versions, 3);
}

#[test]
fn version_comes_from_the_secret_id() {
    assert_eq!(
        version_from_id("https://v.vault.azure.net/secrets/s/abc123").as_deref(),
        Some("abc123")
    );
    assert_eq!(version_from_id("https://v.vault.azure.net/secrets/s"), None);
}

#[tokio::test]
async fn a_token_refused_after_it_was_sent_is_the_daemons_trouble() {
    let vault = FakeVault::start().await;
    vault.put("s", "s-value", None).await;
    let dir = tempfile::tempdir().unwrap();
    let backend = backend_with_client_secret(&vault, &dir);
    backend.fetch(&SecretRef::new("s")).await.unwrap();
    // The official client answers one 401 by getting a new token and trying again.
    vault.inject("s", Fault::Unauthorized);
    vault.inject("s", Fault::Unauthorized);
    let err = backend.fetch(&SecretRef::new("s")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.to_string().contains("rejected the daemon's own token"),
        "{err}"
    );
}

#[tokio::test]
async fn persistent_server_errors_end_as_unavailable_after_the_official_retries() {
    let vault = FakeVault::start().await;
    vault.put("s", "s-value", None).await;
    let dir = tempfile::tempdir().unwrap();
    let backend = backend_with_client_secret(&vault, &dir);
    backend.fetch(&SecretRef::new("s")).await.unwrap();
    let before = vault.seen().len();
    for _ in 0..10 {
        vault.inject("s", Fault::ServerError);
    }
    let err = backend.fetch(&SecretRef::new("s")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_temporary());
    let attempts = vault.seen().len() - before;
    assert!(
        attempts > 1,
        "the official client retried ({attempts} attempts)"
    );
}

/// The fake refuses what Key Vault refuses, checked with a plain HTTPS client.
#[tokio::test]
async fn the_fake_requires_tls_a_token_and_an_api_version() {
    let vault = FakeVault::start().await;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(vault.ca_file()).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .resolve(fake::VAULT_HOST, vault.address())
        .build()
        .unwrap();
    let url = format!("{}/secrets/s", vault.vault_url());
    let versioned = format!("{url}?api-version=7.6");
    let anonymous = client.get(&versioned).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let challenge = anonymous.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer authorization=\"https://login.localhost/"),
        "{challenge}"
    );
    assert!(
        challenge.contains("resource=\"https://vault.localhost\""),
        "{challenge}"
    );

    let no_version = client
        .get(&url)
        .bearer_auth(fake::STATIC_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 400);
    let body: serde_json::Value =
        serde_json::from_slice(&no_version.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "BadParameter");

    let plain_http = format!(
        "http://127.0.0.1:{}/secrets/s?api-version=7.6",
        vault.address().port()
    );
    assert!(reqwest::get(&plain_http).await.is_err(), "no plain HTTP");
}

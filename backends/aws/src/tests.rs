use super::*;
use crate::moto::Moto;
use aws_sdk_secretsmanager::primitives::Blob;
use std::sync::Arc;
use std::time::Duration;
use vaultbridge_backend_core::conformance::{
    Fixture, RefusingAddress, Seed, Stages, Unreachable, Update,
};
use vaultbridge_backend_core::conformance_suite;

struct MotoFixture {
    moto: Moto,
    /// Where the unreachable instance points; held for the fixture's life.
    refusing: RefusingAddress,
}

impl MotoFixture {
    fn new() -> Self {
        Self {
            moto: Moto::start(),
            refusing: RefusingAddress::bind(),
        }
    }
}

/// How a seed is stored: text where it is UTF-8 (key/value secrets as a JSON object
/// string, as the console stores them), else binary.
enum Stored {
    Text(String),
    Binary(Vec<u8>),
}

fn stored(seed: &Seed) -> Stored {
    match seed {
        Seed::Value(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Stored::Text(text.to_owned()),
            Err(_) => Stored::Binary(bytes.clone()),
        },
        Seed::Map(pairs) => Stored::Text(Seed::map_as_json(pairs)),
    }
}

async fn create(client: &Client, name: &str, seed: &Seed) {
    let request = client.create_secret().name(name);
    let request = match stored(seed) {
        Stored::Text(text) => request.secret_string(text),
        Stored::Binary(bytes) => request.secret_binary(Blob::new(bytes)),
    };
    request.send().await.expect("create secret in moto");
}

#[async_trait]
impl Fixture for MotoFixture {
    async fn backend(&self, secrets: &[(&str, Seed)]) -> Arc<dyn Backend> {
        let client = self.moto.client().await;
        for (name, seed) in secrets {
            create(&client, name, seed).await;
        }
        Arc::new(self.moto.backend().await)
    }

    /// `PutSecretValue`, as a rotation does: the new version becomes AWSCURRENT and the
    /// one it replaced AWSPREVIOUS.
    async fn update(&self, id: &str, seed: Seed) -> Update {
        let request = self.moto.client().await.put_secret_value().secret_id(id);
        let request = match stored(&seed) {
            Stored::Text(text) => request.secret_string(text),
            Stored::Binary(bytes) => request.secret_binary(Blob::new(bytes)),
        };
        request.send().await.expect("put secret value in moto");
        Update::Applied
    }

    fn stages(&self) -> Option<Stages> {
        Some(Stages {
            current: "AWSCURRENT",
            previous: "AWSPREVIOUS",
        })
    }

    /// moto's settings and credentials with an endpoint that refuses connections, one
    /// attempt per call and short timeouts: the SDK fails at once instead of retrying
    /// with backoff.
    async fn unreachable(&self) -> Option<Unreachable> {
        let config = AwsConfig {
            endpoint_url: Some(format!("http://{}", self.refusing.address())),
            connect_timeout: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(1),
            operation_timeout: Duration::from_secs(2),
            max_attempts: 1,
            ..self.moto.config()
        };
        let backend = AwsBackend::connect_with(&config, Some(Moto::credentials())).await;
        Some(Unreachable {
            backend: Arc::new(backend),
            service: "Secrets Manager".to_owned(),
        })
    }
}

conformance_suite!(MotoFixture::new());

async fn seed_text(client: &Client, name: &str, text: &str) -> String {
    let output = client
        .create_secret()
        .name(name)
        .secret_string(text)
        .send()
        .await
        .expect("create secret");
    output.arn.expect("arn")
}

fn at(id: &str, version: VersionSelector) -> SecretRef {
    SecretRef {
        id: id.to_owned(),
        key: None,
        version,
    }
}

#[tokio::test]
async fn strings_json_keys_binaries_and_arns() {
    let moto = Moto::start();
    let client = moto.client().await;
    let backend = moto.backend().await;
    let arn = seed_text(&client, "plain", "plain-value").await;
    seed_text(
        &client,
        "jira",
        r#"{"email":"a@b.c","token":"ATATT3x-tok \n"}"#,
    )
    .await;
    client
        .create_secret()
        .name("blob")
        .secret_binary(Blob::new(vec![0, 159, 255, b'\n']))
        .send()
        .await
        .unwrap();

    let plain = backend.fetch(&SecretRef::new("plain")).await.unwrap();
    assert_eq!(plain.value.expose(), b"plain-value");
    assert!(plain.version.is_some(), "the VersionId is returned");
    assert_eq!(
        plain.metadata.get(VERSION_STAGES).map(String::as_str),
        Some("AWSCURRENT")
    );

    let by_arn = backend.fetch(&SecretRef::new(arn)).await.unwrap();
    assert_eq!(by_arn.value.expose(), b"plain-value");

    // The backend serves the stored bytes; trimming is the daemon's policy.
    let token = backend
        .fetch(&SecretRef::new("jira").with_key("token"))
        .await
        .unwrap();
    assert_eq!(token.value.expose(), b"ATATT3x-tok \n");

    let blob = backend.fetch(&SecretRef::new("blob")).await.unwrap();
    assert_eq!(blob.value.expose(), &[0, 159, 255, b'\n']);
}

#[tokio::test]
async fn current_previous_and_pinned_versions() {
    let moto = Moto::start();
    let client = moto.client().await;
    let backend = moto.backend().await;
    seed_text(&client, "rotating", "first").await;
    let first_version = backend
        .fetch(&SecretRef::new("rotating"))
        .await
        .unwrap()
        .version
        .unwrap();
    client
        .put_secret_value()
        .secret_id("rotating")
        .secret_string("second")
        .send()
        .await
        .unwrap();

    let current = backend
        .fetch(&at("rotating", VersionSelector::Latest))
        .await
        .unwrap();
    assert_eq!(current.value.expose(), b"second");
    let explicit = backend
        .fetch(&at("rotating", VersionSelector::Stage("AWSCURRENT".into())))
        .await
        .unwrap();
    assert_eq!(explicit.value.expose(), b"second");
    let previous = backend
        .fetch(&at(
            "rotating",
            VersionSelector::Stage("AWSPREVIOUS".into()),
        ))
        .await
        .unwrap();
    assert_eq!(previous.value.expose(), b"first");
    assert_eq!(previous.version.as_deref(), Some(first_version.as_str()));
    assert_eq!(
        previous.metadata.get(VERSION_STAGES).map(String::as_str),
        Some("AWSPREVIOUS")
    );
    let pinned = backend
        .fetch(&at("rotating", VersionSelector::Id(first_version.clone())))
        .await
        .unwrap();
    assert_eq!(pinned.value.expose(), b"first");

    let err = backend
        .fetch(&at("rotating", VersionSelector::Stage("NOPE".into())))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("version stage `NOPE`"), "{err}");
}

#[tokio::test]
async fn missing_secret_missing_key_and_non_json_value() {
    let moto = Moto::start();
    let client = moto.client().await;
    let backend = moto.backend().await;
    seed_text(&client, "bundle", r#"{"user":"u-value","token":"t-value"}"#).await;
    seed_text(&client, "plain", "not-json-value").await;

    let missing = backend.fetch(&SecretRef::new("nope")).await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert!(
        missing.to_string().contains("`nope`") && missing.to_string().contains(moto::REGION),
        "{missing}"
    );
    assert!(!missing.is_temporary());

    let key = backend
        .fetch(&SecretRef::new("bundle").with_key("tokn"))
        .await
        .unwrap_err();
    assert_eq!(key.kind(), ErrorKind::KeyNotFound);
    let message = key.to_string();
    assert!(
        message.contains("`token`") && message.contains("`user`"),
        "{message}"
    );
    assert!(
        !message.contains("t-value") && !message.contains("u-value"),
        "{message}"
    );

    let not_json = backend
        .fetch(&SecretRef::new("plain").with_key("token"))
        .await
        .unwrap_err();
    assert_eq!(not_json.kind(), ErrorKind::FailedPrecondition);
    assert!(
        !not_json.to_string().contains("not-json-value"),
        "{not_json}"
    );
}

#[tokio::test]
async fn twenty_five_current_secrets_take_two_batch_calls() {
    let moto = Moto::start();
    let client = moto.client().await;
    for i in 0..25 {
        seed_text(&client, &format!("batch-{i:02}"), &format!("value-{i:02}")).await;
    }
    let backend = moto.backend().await;
    let refs: Vec<SecretRef> = (0..25)
        .map(|i| SecretRef::new(format!("batch-{i:02}")))
        .collect();
    let before_get = moto.calls("GetSecretValue");
    let results = backend.fetch_many(&refs).await;
    assert_eq!(results.len(), 25);
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(
            result.unwrap().value.expose(),
            format!("value-{i:02}").as_bytes()
        );
    }
    assert_eq!(moto.calls("BatchGetSecretValue"), 2);
    assert_eq!(moto.calls("GetSecretValue"), before_get, "no single calls");
}

#[tokio::test]
async fn keys_of_one_secret_share_one_fetch_and_errors_stay_per_secret() {
    let moto = Moto::start();
    let client = moto.client().await;
    seed_text(&client, "jira", r#"{"email":"a@b.c","token":"tok"}"#).await;
    seed_text(&client, "other", "other-value").await;
    let backend = moto.backend().await;

    let results = backend
        .fetch_many(&[
            SecretRef::new("jira").with_key("email"),
            SecretRef::new("jira").with_key("token"),
        ])
        .await;
    assert_eq!(results[0].as_ref().unwrap().value.expose(), b"a@b.c");
    assert_eq!(results[1].as_ref().unwrap().value.expose(), b"tok");
    assert_eq!(
        moto.calls("GetSecretValue") + moto.calls("BatchGetSecretValue"),
        1
    );

    let results = backend
        .fetch_many(&[
            SecretRef::new("jira").with_key("token"),
            SecretRef::new("ghost"),
            SecretRef::new("other"),
        ])
        .await;
    assert_eq!(results[0].as_ref().unwrap().value.expose(), b"tok");
    assert_eq!(results[1].as_ref().unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(results[2].as_ref().unwrap().value.expose(), b"other-value");
    assert_eq!(moto.calls("BatchGetSecretValue"), 1);
}

#[tokio::test]
async fn a_frozen_or_stopped_service_is_unavailable_not_a_hang() {
    let mut moto = Moto::start();
    let client = moto.client().await;
    seed_text(&client, "s", "v").await;
    let backend = moto.backend().await;
    assert!(backend.fetch(&SecretRef::new("s")).await.is_ok());

    moto.pause();
    // The outer timeout only turns a hang into a failure; the backend's own operation
    // timeout (3 s) is what must end the call.
    let frozen = tokio::time::timeout(Duration::from_secs(30), backend.fetch(&SecretRef::new("s")))
        .await
        .expect("the call ended by itself");
    moto.resume();
    let err = frozen.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_temporary());

    moto.kill();
    let refused =
        tokio::time::timeout(Duration::from_secs(30), backend.fetch(&SecretRef::new("s")))
            .await
            .expect("the call ended by itself")
            .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Unavailable, "{refused}");
    assert!(
        refused.to_string().contains("cannot reach Secrets Manager"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_configured_role_is_assumed_through_sts() {
    let moto = Moto::start();
    let client = moto.client().await;
    seed_text(&client, "cross-account", "assumed-value").await;
    let mut config = moto.config();
    config.assume_role = Some(AssumeRole {
        role_arn: "arn:aws:iam::123456789012:role/secrets-reader".into(),
        external_id: Some("vaultbridge-test".into()),
        session_name: None,
    });
    let backend = AwsBackend::connect_with(&config, Some(Moto::credentials())).await;
    let fetched = backend
        .fetch(&SecretRef::new("cross-account"))
        .await
        .unwrap();
    assert_eq!(fetched.value.expose(), b"assumed-value");
    assert_eq!(moto.requests_containing("Action=AssumeRole"), 1);
    assert_eq!(moto.requests_containing("RoleSessionName=vaultbridge"), 1);
    assert_eq!(moto.requests_containing("ExternalId=vaultbridge-test"), 1);
}

#[tokio::test]
async fn iam_denials_name_the_action_and_a_denied_batch_falls_back_to_single_calls() {
    let moto = Moto::start();
    let client = moto.client().await;
    seed_text(&client, "a", "a-value").await;
    seed_text(&client, "b", "b-value").await;
    let reader = moto.create_user("reader", &["secretsmanager:GetSecretValue"]);
    let outsider = moto.create_user("outsider", &["secretsmanager:ListSecrets"]);
    moto.enforce_iam();
    let with_keys = |(id, secret): (String, String)| {
        SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
            id, secret, None, None, "iam",
        ))
    };

    let backend = AwsBackend::connect_with(&moto.config(), Some(with_keys(reader))).await;
    let refs = [SecretRef::new("a"), SecretRef::new("b")];
    let results = backend.fetch_many(&refs).await;
    assert_eq!(results[0].as_ref().unwrap().value.expose(), b"a-value");
    assert_eq!(results[1].as_ref().unwrap().value.expose(), b"b-value");
    assert_eq!(moto.calls("BatchGetSecretValue"), 1, "tried once, denied");
    assert_eq!(moto.calls("GetSecretValue"), 2, "then one call per secret");
    let again = backend.fetch_many(&refs).await;
    assert!(again.iter().all(Result::is_ok));
    assert_eq!(
        moto.calls("BatchGetSecretValue"),
        1,
        "a denied batch is not retried"
    );

    let outsider = AwsBackend::connect_with(&moto.config(), Some(with_keys(outsider))).await;
    let err = outsider.fetch(&SecretRef::new("a")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(
        err.to_string().contains("secretsmanager:GetSecretValue"),
        "{err}"
    );
    assert!(!err.is_temporary());
}

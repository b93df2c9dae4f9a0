//! The daemon with an AWS Secrets Manager backend, against moto's server mode.

use crate::harness::{Daemon, Setup};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::Blob;
use std::time::Duration;
use tonic::Code;
use vaultbridge::proto::v1::{
    self as pb, CacheOutcome, InvalidateRequest, ResolveBatchRequest, resolve_result::Outcome,
};
use vaultbridge_backend_aws::moto::{self, Moto};

const TOKEN: &str = "ATATT3x-aws-e2e-token";

fn config(moto: &Moto, warm_up: bool, definitions: &str) -> String {
    format!(
        r#"server:
  unix_socket: vb.sock
cache:
  ttl: 10m
  warm_up: {warm_up}
backends:
  aws:
    type: aws_secrets_manager
    region: {region}
    endpoint_url: {endpoint}
    connect_timeout: 1s
    attempt_timeout: 1s
    operation_timeout: 3s
    max_attempts: 2
definitions:
{definitions}"#,
        region = moto::REGION,
        endpoint = moto.endpoint(),
    )
}

fn start(moto: &Moto, warm_up: bool, definitions: &str) -> Daemon {
    let mut setup = Setup::new()
        .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_KEY);
    setup.env_remove = vec!["AWS_PROFILE".into(), "AWS_SESSION_TOKEN".into()];
    setup.log = "trace".into();
    setup.custom_config = Some(config(moto, warm_up, definitions));
    setup.start()
}

async fn seed(client: &Client, name: &str, value: &str) -> String {
    client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap()
        .arn
        .unwrap()
}

#[tokio::test]
async fn aws_secrets_resolve_through_the_daemon_trimmed_versioned_and_binary() {
    let moto = Moto::start();
    let client = moto.client().await;
    seed(
        &client,
        "pipeline/jira",
        &format!(r#"{{"email":"dev@example.com","token":"{TOKEN} \n"}}"#),
    )
    .await;
    let arn = seed(&client, "pipeline/plain", "plain-aws-value").await;
    client
        .create_secret()
        .name("pipeline/blob")
        .secret_binary(Blob::new(vec![0xff, 0x00, b' ', b'\n']))
        .send()
        .await
        .unwrap();
    seed(&client, "pipeline/rotating", "old-aws-value").await;
    client
        .put_secret_value()
        .secret_id("pipeline/rotating")
        .secret_string("new-aws-value")
        .send()
        .await
        .unwrap();
    let definitions = format!(
        r#"  jira-token:
    backend: aws
    secret: pipeline/jira
    key: token
  jira-email:
    backend: aws
    secret: pipeline/jira
    key: email
  by-arn:
    backend: aws
    secret: {arn}
  blob:
    backend: aws
    secret: pipeline/blob
  current:
    backend: aws
    secret: pipeline/rotating
  previous:
    backend: aws
    secret: pipeline/rotating
    version_stage: AWSPREVIOUS
  missing:
    backend: aws
    secret: pipeline/nope
  missing-key:
    backend: aws
    secret: pipeline/jira
    key: tokn
  not-json:
    backend: aws
    secret: pipeline/plain
    key: token
"#
    );
    let mut daemon = start(&moto, false, &definitions);

    let token = daemon.resolve("jira-token").await.unwrap();
    assert_eq!(token.value, TOKEN.as_bytes());
    assert!(token.trimmed);
    assert_eq!(token.backend, "aws");
    assert!(token.version_id.is_some());
    assert_eq!(
        token.metadata.get("version_stages").map(String::as_str),
        Some("AWSCURRENT")
    );

    assert_eq!(
        daemon.resolve("by-arn").await.unwrap().value,
        b"plain-aws-value"
    );
    let blob = daemon.resolve("blob").await.unwrap();
    assert_eq!(
        blob.value,
        [0xff, 0x00, b' ', b'\n'],
        "binary is never trimmed"
    );
    assert_eq!(blob.text, None);
    assert_eq!(
        daemon.resolve("current").await.unwrap().value,
        b"new-aws-value"
    );
    let previous = daemon.resolve("previous").await.unwrap();
    assert_eq!(previous.value, b"old-aws-value");
    assert_eq!(
        previous.metadata.get("version_stages").map(String::as_str),
        Some("AWSPREVIOUS")
    );

    let missing = daemon.resolve("missing").await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(
        missing.message().contains("pipeline/nope") && missing.message().contains(moto::REGION),
        "{}",
        missing.message()
    );
    let missing_key = daemon.resolve("missing-key").await.unwrap_err();
    assert_eq!(missing_key.code(), Code::NotFound);
    assert!(
        missing_key.message().contains("`email`") && missing_key.message().contains("`token`"),
        "{}",
        missing_key.message()
    );
    let not_json = daemon.resolve("not-json").await.unwrap_err();
    assert_eq!(not_json.code(), Code::FailedPrecondition);

    let status = daemon.terminate();
    assert_eq!(status.code(), Some(0));
    let output = daemon.output();
    assert!(output.contains("TRACE"), "trace logging was on");
    for value in [
        TOKEN,
        "dev@example.com",
        "plain-aws-value",
        "old-aws-value",
        "new-aws-value",
    ] {
        assert!(
            !output.contains(value),
            "`{value}` reached the daemon's output"
        );
    }
}

#[tokio::test]
async fn a_batch_of_25_definitions_takes_2_batch_calls_and_keys_share_a_fetch() {
    let moto = Moto::start();
    let client = moto.client().await;
    let mut definitions = String::new();
    for i in 0..25 {
        seed(
            &client,
            &format!("batch/{i:02}"),
            &format!("batch-value-{i:02}"),
        )
        .await;
        definitions += &format!("  batch-{i:02}:\n    backend: aws\n    secret: batch/{i:02}\n");
    }
    seed(&client, "batch/jira", r#"{"email":"e@x.y","token":"t"}"#).await;
    definitions += "  jira-email:\n    backend: aws\n    secret: batch/jira\n    key: email\n";
    definitions += "  jira-token:\n    backend: aws\n    secret: batch/jira\n    key: token\n";
    let daemon = start(&moto, false, &definitions);
    let mut grpc = daemon.client().await;

    let names: Vec<String> = (0..25).map(|i| format!("batch-{i:02}")).collect();
    let results = grpc
        .resolve_batch(ResolveBatchRequest {
            names: names.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    for (i, result) in results.iter().enumerate() {
        match &result.outcome {
            Some(Outcome::Secret(secret)) => {
                assert_eq!(secret.value, format!("batch-value-{i:02}").as_bytes())
            }
            other => panic!("{}: {other:?}", result.name),
        }
    }
    assert_eq!(
        moto.calls("BatchGetSecretValue"),
        2,
        "25 secrets, 20 a call"
    );
    assert_eq!(moto.calls("GetSecretValue"), 0);

    // Cached now: no further calls.
    let again = grpc
        .resolve_batch(ResolveBatchRequest {
            names,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert!(again.iter().all(
        |r| matches!(&r.outcome, Some(Outcome::Secret(s)) if s.cache == CacheOutcome::Hit as i32)
    ));
    assert_eq!(moto.calls("BatchGetSecretValue"), 2);

    // Two keys of one secret: one fetch.
    let keys = grpc
        .resolve_batch(ResolveBatchRequest {
            names: vec!["jira-email".into(), "jira-token".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert!(matches!(&keys[0].outcome, Some(Outcome::Secret(s)) if s.value == b"e@x.y"));
    assert!(matches!(&keys[1].outcome, Some(Outcome::Secret(s)) if s.value == b"t"));
    assert_eq!(
        moto.calls("GetSecretValue") + moto.calls("BatchGetSecretValue"),
        3
    );
}

#[tokio::test]
async fn warm_up_fills_the_cache_with_batched_calls_before_serving() {
    let moto = Moto::start();
    let client = moto.client().await;
    let mut definitions = String::new();
    for i in 0..3 {
        seed(&client, &format!("warm/{i}"), &format!("warm-value-{i}")).await;
        definitions += &format!("  warm-{i}:\n    backend: aws\n    secret: warm/{i}\n");
    }
    let daemon = start(&moto, true, &definitions);
    assert_eq!(
        moto.calls("BatchGetSecretValue"),
        1,
        "warmed before SERVING"
    );
    let secret = daemon.resolve("warm-2").await.unwrap();
    assert_eq!(secret.value, b"warm-value-2");
    assert_eq!(secret.cache, CacheOutcome::Hit as i32);
    assert_eq!(
        moto.calls("GetSecretValue") + moto.calls("BatchGetSecretValue"),
        1
    );
}

#[tokio::test]
async fn a_frozen_then_stopped_service_is_unavailable_never_a_hang() {
    let mut moto = Moto::start();
    let client = moto.client().await;
    seed(&client, "s", "v-value").await;
    let daemon = start(&moto, false, "  s:\n    backend: aws\n    secret: s\n");
    assert!(daemon.resolve("s").await.is_ok());
    let mut grpc = daemon.client().await;
    let invalidate_all = InvalidateRequest {
        target: Some(pb::invalidate_request::Target::All(true)),
    };

    moto.pause();
    grpc.invalidate(invalidate_all.clone()).await.unwrap();
    // The client deadline only turns a hang into a failure; the backend's operation
    // timeout (3 s) must end the call first.
    let frozen = tokio::time::timeout(Duration::from_secs(30), daemon.resolve("s"))
        .await
        .expect("the daemon answered by itself")
        .unwrap_err();
    moto.resume();
    assert_eq!(frozen.code(), Code::Unavailable, "{}", frozen.message());

    moto.kill();
    let stopped = tokio::time::timeout(Duration::from_secs(30), daemon.resolve("s"))
        .await
        .expect("the daemon answered by itself")
        .unwrap_err();
    assert_eq!(stopped.code(), Code::Unavailable, "{}", stopped.message());
    assert!(
        stopped.message().contains("cannot reach Secrets Manager"),
        "{}",
        stopped.message()
    );
}

#[tokio::test]
async fn missing_credentials_are_the_daemons_trouble_not_the_callers() {
    let moto = Moto::start();
    seed(&moto.client().await, "s", "v").await;
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::new();
    setup.env_remove = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ]
    .map(str::to_owned)
    .to_vec();
    let nowhere = dir.path().join("none");
    let nowhere = nowhere.to_str().unwrap();
    setup.env = vec![
        ("AWS_CONFIG_FILE".into(), nowhere.into()),
        ("AWS_SHARED_CREDENTIALS_FILE".into(), nowhere.into()),
        ("HOME".into(), dir.path().to_str().unwrap().into()),
    ];
    setup.custom_config = Some(config(
        &moto,
        false,
        "  s:\n    backend: aws\n    secret: s\n",
    ));
    let daemon = setup.start();
    let err = daemon.resolve("s").await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
    assert!(
        err.message().contains("no usable AWS credentials"),
        "{}",
        err.message()
    );
    assert_eq!(
        moto.calls("GetSecretValue"),
        0,
        "nothing unsigned reached the service"
    );
}

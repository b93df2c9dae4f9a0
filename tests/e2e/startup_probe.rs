//! The Kubernetes startup probe of deploy/kubernetes, `vaultbridge health --addr
//! unix:...`, against a daemon whose warm-up is held up by its backend: the probe fails
//! while warm-up runs (the socket does not exist yet) and passes only once warm-up has
//! filled the cache.

use crate::fault_proxy::{Fault, FaultProxy};
use crate::harness::{ChildGuard, Setup, poll_until, resolve, run_cli, spawn_serve};
use std::time::Duration;
use vaultbridge::client::{self, Address};
use vaultbridge::proto::v1::CacheOutcome;
use vaultbridge_backend_aws::moto::{self, Moto};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_startup_probe_passes_only_after_warm_up_filled_the_cache() {
    let moto = Moto::start();
    moto.client()
        .await
        .create_secret()
        .name("probe/jira")
        .secret_string("probe-e2e-token")
        .send()
        .await
        .unwrap();
    let upstream = moto
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(upstream).await;
    // Warm-up's first attempt hangs here until the proxy lets go.
    proxy.set(Fault::BlackHole);
    let mut setup = Setup::new()
        .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_KEY);
    setup.env_remove = vec!["AWS_PROFILE".into(), "AWS_SESSION_TOKEN".into()];
    let config = setup.dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  unix_socket: vb.sock\ncache:\n  warm_up: true\nbackends:\n  aws:\n    type: aws_secrets_manager\n    region: {}\n    endpoint_url: http://{}\n    attempt_timeout: 60s\n    operation_timeout: 120s\n    max_attempts: 2\ndefinitions:\n  jira-api-token:\n    backend: aws\n    secret: probe/jira\n",
            moto::REGION,
            proxy.address()
        ),
    )
    .unwrap();
    let _daemon = ChildGuard(spawn_serve(&setup, &config));
    let socket = setup.socket();
    let probe = ["health", "--addr", &format!("unix:{}", socket.display())];

    assert!(
        poll_until(Duration::from_secs(20), || proxy.accepted() >= 1),
        "warm-up never called the backend"
    );
    let (code, _, stderr) = run_cli(&probe, &[]);
    assert_eq!(code, 3, "the probe must fail during warm-up: {stderr}");
    assert!(stderr.contains("cannot reach the daemon"), "{stderr}");
    assert!(!socket.exists(), "the socket exists before warm-up ended");
    assert_eq!(
        moto.calls("GetSecretValue") + moto.calls("BatchGetSecretValue"),
        0
    );

    // Cutting the held connection fails the first attempt; the second goes through.
    proxy.set(Fault::Pass);
    let mut last = (0, String::new());
    let passed = poll_until(Duration::from_secs(60), || {
        let (code, stdout, stderr) = run_cli(&probe, &[]);
        last = (code, stderr);
        code == 0 && stdout == b"SERVING\n"
    });
    assert!(passed, "the probe never passed; last: {last:?}");
    assert_eq!(
        moto.calls("GetSecretValue") + moto.calls("BatchGetSecretValue"),
        1,
        "warm-up read the secret once, before the probe passed"
    );
    let mut grpc = client::connect(&Address::Unix(socket)).await.unwrap();
    let secret = resolve(&mut grpc, "jira-api-token").await.unwrap();
    assert_eq!(secret.value, b"probe-e2e-token");
    assert_eq!(secret.cache, CacheOutcome::Hit as i32, "the cache was warm");
}

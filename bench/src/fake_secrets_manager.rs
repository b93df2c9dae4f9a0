use std::sync::Arc;
use std::time::Duration;

/// The slow backend of the cold-miss scenario: a Secrets Manager endpoint that answers
/// `GetSecretValue` after a fixed delay and counts every call. The daemon reaches it
/// through its real AWS backend and SDK (request signing, retries, connection pool);
/// only the service behind the socket is this stand-in, because the delay must be
/// exact and moto adds its own, variable, milliseconds.
pub(crate) struct SlowSecretsManager {
    pub(crate) address: std::net::SocketAddr,
    calls: Arc<std::sync::atomic::AtomicU64>,
}

impl SlowSecretsManager {
    pub(crate) async fn start(latency: Duration, payload: usize) -> Self {
        use http_body_util::{BodyExt, Full};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the slow backend");
        let address = listener.local_addr().expect("its address");
        let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let answer = bytes::Bytes::from(
            serde_json::json!({
                "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:cold-AbCdEf",
                "Name": "cold",
                "VersionId": "00000000-0000-0000-0000-000000000001",
                "SecretString": "c".repeat(payload),
                "VersionStages": ["AWSCURRENT"],
                "CreatedDate": 1_700_000_000.0,
            })
            .to_string(),
        );
        let counter = calls.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let calls = counter.clone();
                let answer = answer.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let calls = calls.clone();
                            let answer = answer.clone();
                            async move {
                                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                let target = request
                                    .headers()
                                    .get("x-amz-target")
                                    .and_then(|value| value.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned();
                                // Drain the body as the real service would before answering.
                                let _ = request.into_body().collect().await;
                                tokio::time::sleep(latency).await;
                                let (status, body) = if target == "secretsmanager.GetSecretValue" {
                                    (200, answer)
                                } else {
                                    (
                                        400,
                                        bytes::Bytes::from(format!(
                                            r#"{{"__type":"InvalidRequestException","message":"the bench backend only serves GetSecretValue, not {target}"}}"#
                                        )),
                                    )
                                };
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/x-amz-json-1.1")
                                    .header("x-amzn-requestid", "bench")
                                    .body(Full::new(body))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { address, calls }
    }

    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The slow backend of the cold-miss and refresh-ahead scenarios: a Secrets Manager
/// endpoint that answers `GetSecretValue` and `BatchGetSecretValue` after a fixed delay,
/// for any secret id (every value is the payload), and counts the calls of each
/// operation. The daemon reaches it through its real AWS backend and SDK (request
/// signing, retries, connection pool); only the service behind the socket is this
/// stand-in, because the delay must be exact and moto adds its own, variable,
/// milliseconds.
pub(crate) struct SlowSecretsManager {
    pub(crate) address: std::net::SocketAddr,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    get: AtomicU64,
    batch: AtomicU64,
    /// Secret ids asked for in all `BatchGetSecretValue` calls together.
    batched_ids: AtomicU64,
    /// Any other operation, answered with an error: the daemon should send none.
    other: AtomicU64,
}

/// The calls the fake received, per operation, counted as they arrive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Calls {
    pub(crate) get: u64,
    pub(crate) batch: u64,
    pub(crate) batched_ids: u64,
    pub(crate) other: u64,
}

impl Calls {
    pub(crate) fn total(self) -> u64 {
        self.get + self.batch + self.other
    }

    /// Secrets fetched: one per `GetSecretValue`, one per id of a batch.
    pub(crate) fn secrets(self) -> u64 {
        self.get + self.batched_ids
    }

    pub(crate) fn since(self, before: Self) -> Self {
        Self {
            get: self.get - before.get,
            batch: self.batch - before.batch,
            batched_ids: self.batched_ids - before.batched_ids,
            other: self.other - before.other,
        }
    }

    pub(crate) fn add(self, more: Self) -> Self {
        Self {
            get: self.get + more.get,
            batch: self.batch + more.batch,
            batched_ids: self.batched_ids + more.batched_ids,
            other: self.other + more.other,
        }
    }
}

const GET: &str = "secretsmanager.GetSecretValue";
const BATCH: &str = "secretsmanager.BatchGetSecretValue";

impl SlowSecretsManager {
    pub(crate) async fn start(latency: Duration, payload: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the slow backend");
        let address = listener.local_addr().expect("its address");
        let counters = Arc::new(Counters::default());
        let value: Arc<str> = Arc::from("c".repeat(payload));
        let shared = counters.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counters = shared.clone();
                let value = value.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            answer(request, counters.clone(), value.clone(), latency)
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { address, counters }
    }

    /// All calls so far, whatever the operation.
    pub(crate) fn calls(&self) -> u64 {
        self.counts().total()
    }

    pub(crate) fn counts(&self) -> Calls {
        Calls {
            get: self.counters.get.load(Ordering::SeqCst),
            batch: self.counters.batch.load(Ordering::SeqCst),
            batched_ids: self.counters.batched_ids.load(Ordering::SeqCst),
            other: self.counters.other.load(Ordering::SeqCst),
        }
    }
}

async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    counters: Arc<Counters>,
    value: Arc<str>,
    latency: Duration,
) -> Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, hyper::http::Error> {
    use http_body_util::{BodyExt, Full};
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // Drain the body as the real service would before answering; the ids are in it.
    let body = request
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let (status, answer) = match target.as_str() {
        GET => {
            counters.get.fetch_add(1, Ordering::SeqCst);
            let id = body["SecretId"].as_str().unwrap_or_default();
            (200, secret_value(id, &value))
        }
        BATCH => {
            let ids: Vec<&str> = body["SecretIdList"]
                .as_array()
                .map(|ids| ids.iter().filter_map(serde_json::Value::as_str).collect())
                .unwrap_or_default();
            counters.batch.fetch_add(1, Ordering::SeqCst);
            counters
                .batched_ids
                .fetch_add(ids.len() as u64, Ordering::SeqCst);
            let values: Vec<serde_json::Value> =
                ids.iter().map(|id| secret_value(id, &value)).collect();
            (
                200,
                serde_json::json!({ "SecretValues": values, "Errors": [] }),
            )
        }
        other => {
            counters.other.fetch_add(1, Ordering::SeqCst);
            (
                400,
                serde_json::json!({
                    "__type": "InvalidRequestException",
                    "message": format!("the bench backend only serves GetSecretValue and BatchGetSecretValue, not {other}"),
                }),
            )
        }
    };
    tokio::time::sleep(latency).await;
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", "bench")
        .body(Full::new(bytes::Bytes::from(answer.to_string())))
}

/// One secret as both operations return it; a batch entry must carry the name the
/// daemon asked for, which is how it matches answers to requests.
fn secret_value(id: &str, value: &str) -> serde_json::Value {
    serde_json::json!({
        "ARN": format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{id}-AbCdEf"),
        "Name": id,
        "VersionId": "00000000-0000-0000-0000-000000000001",
        "SecretString": value,
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": 1_700_000_000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::{Calls, SlowSecretsManager};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One HTTP/1.1 request as the SDK sends it (the operation in `x-amz-target`), and
    /// the answer's body.
    async fn post(fake: &SlowSecretsManager, operation: &str, body: &str) -> serde_json::Value {
        let mut stream = tokio::net::TcpStream::connect(fake.address)
            .await
            .expect("connect to the fake");
        let request = format!(
            "POST / HTTP/1.1\r\nhost: fake\r\nx-amz-target: secretsmanager.{operation}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send the request");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .await
            .expect("read the answer");
        let (_, body) = answer.split_once("\r\n\r\n").expect("headers end");
        serde_json::from_str(body).expect("a JSON body")
    }

    #[tokio::test]
    async fn both_operations_answer_with_the_names_asked_for_and_are_counted_apart() {
        let fake = SlowSecretsManager::start(Duration::ZERO, 4).await;
        let single = post(&fake, "GetSecretValue", r#"{"SecretId":"one"}"#).await;
        assert_eq!(single["Name"], "one");
        assert_eq!(single["SecretString"], "cccc");
        let batch = post(
            &fake,
            "BatchGetSecretValue",
            r#"{"SecretIdList":["a","b","c"]}"#,
        )
        .await;
        let names: Vec<&str> = batch["SecretValues"]
            .as_array()
            .expect("SecretValues")
            .iter()
            .filter_map(|entry| entry["Name"].as_str())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        let refused = post(&fake, "ListSecrets", "{}").await;
        assert_eq!(refused["__type"], "InvalidRequestException");
        assert_eq!(
            fake.counts(),
            Calls {
                get: 1,
                batch: 1,
                batched_ids: 3,
                other: 1,
            }
        );
        assert_eq!(fake.counts().secrets(), 4);
        assert_eq!(fake.calls(), 3);
    }
}

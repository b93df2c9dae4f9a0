//! moto's server mode, a real Secrets Manager emulator, for tests of this crate and of
//! the daemon. [`Moto`] starts `moto_server` from the project's virtualenv (made by
//! `scripts/test`) on a loopback port it binds itself, records every request it
//! receives (so tests can count API calls), and kills it when dropped. A missing emulator is a loud
//! failure, never a skip.

use crate::{AwsBackend, AwsConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_secretsmanager::Client;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";

fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

struct Recorded {
    target: Option<String>,
    body: String,
}

pub struct Moto {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Moto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moto")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// The virtualenv's Python: `VAULTBRIDGE_TEST_PYTHON`, else `<workspace>/.venv`.
#[allow(
    clippy::disallowed_methods,
    reason = "a test harness reading the test runner's setting, not daemon config"
)]
pub fn venv_python() -> PathBuf {
    let python = std::env::var_os("VAULTBRIDGE_TEST_PYTHON").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../.venv/bin/python"
            ))
        },
        PathBuf::from,
    );
    assert!(
        python.exists(),
        "{} does not exist: run `scripts/test` (it creates .venv with moto[server]), or set VAULTBRIDGE_TEST_PYTHON",
        python.display()
    );
    python
}

/// The port in werkzeug's startup line, ` * Running on http://127.0.0.1:PORT`, which
/// moto prints once its socket is bound and listening.
fn bound_port(log: &str) -> Option<u16> {
    log.lines()
        .find_map(|line| line.trim().strip_prefix("* Running on http://127.0.0.1:"))
        .and_then(|port| port.trim().parse().ok())
}

impl Moto {
    pub fn start() -> Self {
        let python = venv_python();
        let server = python.with_file_name("moto_server");
        assert!(
            server.exists(),
            "{} does not exist: moto[server] is not installed in the virtualenv; run `scripts/test`",
            server.display()
        );
        let dir = tempfile::tempdir().expect("tempdir for moto");
        let log = std::fs::File::create(dir.path().join("moto.log")).expect("moto log");
        // Port 0: the kernel picks a free port as moto binds, and moto's startup line
        // tells which. A port picked here (bind, read, drop) would be free for any other
        // process to take until moto bound it.
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .env("MOTO_ENABLE_RECORDING", "True")
            .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording.jsonl"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("moto log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", server.display()));
        let mut moto = Self {
            child: Some(child),
            port: 0,
            dir,
        };
        moto.wait_ready();
        moto
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    /// Waits for the startup line that gives the port, then for an answer on it.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "moto_server exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            if self.port == 0 {
                self.port = bound_port(&self.log()).unwrap_or(0);
            }
            if self.port != 0 && self.answers() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer within 60 s (port {}, 0 if not yet logged):\n{}",
                self.port,
                self.log()
            );
            // Polling interval only: the loop ends on moto's answer or the deadline.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let request =
            "GET /moto-api/data.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut answer = [0u8; 12];
        stream.read_exact(&mut answer).is_ok() && answer.starts_with(b"HTTP/1.")
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Settings pointing at this emulator, with short timeouts.
    pub fn config(&self) -> AwsConfig {
        AwsConfig {
            region: Some(REGION.to_owned()),
            endpoint_url: Some(self.endpoint()),
            connect_timeout: Duration::from_secs(1),
            operation_timeout: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(1),
            ..AwsConfig::default()
        }
    }

    pub fn credentials() -> SharedCredentialsProvider {
        SharedCredentialsProvider::new(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "moto"))
    }

    /// The backend under test, on this emulator.
    pub async fn backend(&self) -> AwsBackend {
        AwsBackend::connect_with(&self.config(), Some(Self::credentials())).await
    }

    /// A plain SDK client, to seed and rotate secrets through the service's API.
    pub async fn client(&self) -> Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(Self::credentials())
            .load()
            .await;
        Client::new(&config)
    }

    /// How many requests for `action` (`GetSecretValue`, `BatchGetSecretValue`) moto
    /// has received.
    pub fn calls(&self, action: &str) -> usize {
        let target = format!("secretsmanager.{action}");
        self.recorded()
            .iter()
            .filter(|request| request.target.as_deref() == Some(target.as_str()))
            .count()
    }

    /// How many recorded request bodies contain `needle`, e.g. `Action=AssumeRole` for
    /// STS's query protocol.
    pub fn requests_containing(&self, needle: &str) -> usize {
        self.recorded()
            .iter()
            .filter(|request| request.body.contains(needle))
            .count()
    }

    /// moto's recording: one JSON object a line, with the request's headers and its
    /// body (base64 when `body_encoded`).
    fn recorded(&self) -> Vec<Recorded> {
        use base64::Engine;
        let recording =
            std::fs::read_to_string(self.dir.path().join("recording.jsonl")).unwrap_or_default();
        recording
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|entry| {
                let target = entry["headers"].as_object().and_then(|headers| {
                    headers
                        .iter()
                        .find(|(name, _)| name.eq_ignore_ascii_case("x-amz-target"))
                        .and_then(|(_, value)| value.as_str().map(str::to_owned))
                });
                let raw = entry["body"].as_str().unwrap_or_default();
                let body = if entry["body_encoded"].as_bool() == Some(true) {
                    base64::engine::general_purpose::STANDARD
                        .decode(raw)
                        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                        .unwrap_or_default()
                } else {
                    raw.to_owned()
                };
                Recorded { target, body }
            })
            .collect()
    }

    /// Creates an IAM user allowed exactly `actions` (on every resource) and returns
    /// its access key id and secret. Call before [`Moto::enforce_iam`].
    pub fn create_user(&self, name: &str, actions: &[&str]) -> (String, String) {
        let quoted: Vec<String> = actions
            .iter()
            .map(|action| format!("\"{action}\""))
            .collect();
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":[{}],"Resource":"*"}}]}}"#,
            quoted.join(",")
        );
        self.iam(&[("Action", "CreateUser"), ("UserName", name)]);
        self.iam(&[
            ("Action", "PutUserPolicy"),
            ("UserName", name),
            ("PolicyName", "vaultbridge-test"),
            ("PolicyDocument", &policy),
        ]);
        let answer = self.iam(&[("Action", "CreateAccessKey"), ("UserName", name)]);
        let field = |tag: &str| {
            let open = format!("<{tag}>");
            let start = answer.find(&open).map(|at| at + open.len());
            let end = answer.find(&format!("</{tag}>"));
            match (start, end) {
                (Some(start), Some(end)) => answer[start..end].to_owned(),
                _ => panic!("no {tag} in moto's CreateAccessKey answer:\n{answer}"),
            }
        };
        (field("AccessKeyId"), field("SecretAccessKey"))
    }

    /// From now on moto authenticates requests and authorizes them against IAM, as AWS
    /// does.
    pub fn enforce_iam(&self) {
        let (status, body) = self.http("POST", "/moto-api/reset-auth", &[], "0");
        assert_eq!(status, 200, "moto refused to enforce IAM: {body}");
    }

    /// One IAM query-protocol call, unsigned (moto only checks signatures once IAM is
    /// enforced); the Authorization header's scope tells moto which service it is for.
    fn iam(&self, params: &[(&str, &str)]) -> String {
        let mut body = String::from("Version=2010-05-08");
        for (name, value) in params {
            body.push('&');
            body.push_str(name);
            body.push('=');
            body.push_str(&percent_encode(value));
        }
        let scope = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0";
        let headers = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Authorization", scope),
        ];
        let (status, answer) = self.http("POST", "/", &headers, &body);
        assert_eq!(status, 200, "moto IAM call {params:?} failed: {answer}");
        answer
    }

    fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).expect("send to moto");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .expect("read moto's answer");
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        (status, answer)
    }

    fn signal(&self, signal: rustix::process::Signal) {
        if let Some(child) = &self.child {
            let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("moto pid");
            rustix::process::kill_process(pid, signal).expect("signal moto");
        }
    }

    /// Freezes the emulator: connections are accepted by the kernel but never answered.
    pub fn pause(&self) {
        self.signal(rustix::process::Signal::STOP);
    }

    pub fn resume(&self) {
        self.signal(rustix::process::Signal::CONT);
    }

    /// Stops the emulator for good: connections are refused.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

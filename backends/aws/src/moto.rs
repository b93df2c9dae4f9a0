//! moto's server mode, a real Secrets Manager emulator, for tests of this crate and of
//! the daemon. [`Moto`] starts `moto_server` from the project's virtualenv (made by
//! `scripts/test`) on a free loopback port, records every request it receives (so tests
//! can count API calls), and kills it when dropped. A missing emulator is a loud
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

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
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
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("moto.log")).expect("moto log");
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ENABLE_RECORDING", "True")
            .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording.jsonl"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("moto log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", server.display()));
        let mut moto = Self {
            child: Some(child),
            port,
            dir,
        };
        moto.wait_ready();
        moto
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

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
            if self.answers() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on port {} within 60 s:\n{}",
                self.port,
                self.log()
            );
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
        let recording =
            std::fs::read_to_string(self.dir.path().join("recording.jsonl")).unwrap_or_default();
        let target = format!("\"secretsmanager.{action}\"");
        recording
            .lines()
            .filter(|line| line.contains(&target))
            .count()
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

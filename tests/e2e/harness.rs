//! Starts the real `vaultbridge` binary on a temporary socket (and TCP port) with a
//! config written for the test, and stops it when the guard drops.
//!
//! Events are ordered by conditions, never by sleeping: a test waits for what it needs
//! (the daemon SERVING, a log line, an exit) with [`wait_until`], which polls the
//! condition until a deadline. Ports are never picked by binding port 0, dropping the
//! listener and hoping nobody takes the port before the server binds it: the daemon
//! binds `127.0.0.1:0` itself and the harness reads the bound address back from its
//! log ([`Daemon::tcp_address`]), servers inside the test are handed the bound listener,
//! and an address that must refuse connections stays bound (the conformance suite's
//! `RefusingAddress`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use vaultbridge::client::{self, Address};
use vaultbridge::proto::v1::secrets_client::SecretsClient;
use vaultbridge::proto::v1::{self as pb, ResolveRequest};

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_vaultbridge");

/// A secrets file and a config around it, in a private temporary directory.
pub(crate) struct Setup {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
    pub env_remove: Vec<String>,
    /// Variables whose values need not be UTF-8 (a binary secret in the env backend).
    pub env_os: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    pub tcp: bool,
    pub log: String,
    pub extra_config: String,
    /// Replaces the whole generated config (it must listen on `vb.sock`).
    pub custom_config: Option<String>,
    /// The `local` file backend's `change_check_interval`; `None` leaves the default.
    pub change_check_interval: Option<&'static str>,
    /// More arguments for `serve` (`--watch-config`).
    pub serve_args: Vec<String>,
}

pub(crate) const SECRETS_YAML: &str = r#"jira:
  url: "https://example.atlassian.net"
  email: "dev@example.com"
  api_token: "ATATT3x-e2e-token-value \n"
plain: "plain-e2e-value"
pem: "-----BEGIN KEY-----\nAAAA-e2e-pem-body\n-----END KEY-----\n"
"#;

impl Setup {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secrets.yaml"), SECRETS_YAML).expect("write secrets");
        set_mode(&dir.path().join("secrets.yaml"), 0o600);
        Self {
            dir,
            env: Vec::new(),
            env_remove: Vec::new(),
            env_os: Vec::new(),
            tcp: false,
            log: "info".into(),
            extra_config: String::new(),
            custom_config: None,
            change_check_interval: None,
            serve_args: Vec::new(),
        }
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("vb.sock")
    }

    pub(crate) fn secrets_file(&self) -> PathBuf {
        self.dir.path().join("secrets.yaml")
    }

    pub(crate) fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// The config the daemon runs with. With `tcp`, it listens on `127.0.0.1:0`: the
    /// kernel picks a free port when the daemon binds, and the harness reads it back.
    pub(crate) fn config_text(&self) -> String {
        if let Some(custom) = &self.custom_config {
            return custom.clone();
        }
        let tcp = if self.tcp { "  tcp: 127.0.0.1:0\n" } else { "" };
        let change_check = self
            .change_check_interval
            .map(|interval| format!("    change_check_interval: {interval}\n"))
            .unwrap_or_default();
        format!(
            r#"server:
  unix_socket: vb.sock
{tcp}  shutdown_grace: 5s
cache:
  ttl: 10m
backends:
  local:
    type: file
    path: secrets.yaml
{change_check}  env:
    type: env
    prefix: VB_E2E_
definitions:
  jira-api-token:
    backend: local
    secret: jira
    key: api_token
    description: Jira token
  jira-email:
    backend: local
    secret: jira
    key: email
  plain:
    backend: local
    secret: plain
  pem:
    backend: local
    secret: pem
    trim: false
  missing-entry:
    backend: local
    secret: not-there
  missing-key:
    backend: local
    secret: jira
    key: api_tokn
  not-a-map:
    backend: local
    secret: plain
    key: token
  env-token:
    backend: env
    secret: TOKEN
  env-unset:
    backend: env
    secret: UNSET
{}"#,
            self.extra_config
        )
    }

    pub(crate) fn start(self) -> Daemon {
        let config = self.config_text();
        self.start_with_config(&config)
    }

    /// Starts the daemon on `config` (written to `config.yaml`) and waits until it is
    /// SERVING.
    pub(crate) fn start_with_config(self, config: &str) -> Daemon {
        let path = self.dir.path().join("config.yaml");
        std::fs::write(&path, config).expect("write config");
        self.start_at(&path)
    }

    /// Starts the daemon on the config already at `path` and waits until it is SERVING.
    pub(crate) fn start_at(self, path: &Path) -> Daemon {
        let child = spawn_serve(&self, path);
        let mut daemon = Daemon {
            setup: self,
            child: Some(child),
            tcp_address: None,
        };
        daemon.wait_ready();
        daemon
    }
}

#[cfg(unix)]
pub(crate) fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Polls `condition` until it holds or `timeout` has passed, and tells which. The
/// condition is what orders events; the pause between polls only keeps the loop from
/// taking a CPU the daemon needs, and its length never decides an outcome.
pub(crate) fn poll_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// [`poll_until`], failing the test with `failure()` on timeout.
pub(crate) fn wait_until(
    timeout: Duration,
    condition: impl FnMut() -> bool,
    failure: impl FnOnce() -> String,
) {
    if !poll_until(timeout, condition) {
        panic!("not within {timeout:?}: {}", failure());
    }
}

/// [`poll_until`] for a condition that must be awaited; it returns `Some` when it holds.
pub(crate) async fn wait_until_async<T>(
    timeout: Duration,
    mut condition: impl AsyncFnMut() -> Option<T>,
    failure: impl FnOnce() -> String,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {timeout:?}: {}",
            failure()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

pub(crate) struct Daemon {
    pub setup: Setup,
    pub child: Option<Child>,
    /// Read back from the daemon's log once it serves, if it listens on TCP.
    tcp_address: Option<SocketAddr>,
}

impl Daemon {
    pub(crate) fn socket(&self) -> PathBuf {
        self.setup.socket()
    }

    /// The daemon's private directory: its config, socket and files.
    pub(crate) fn setup_dir(&self) -> &Path {
        self.setup.dir.path()
    }

    pub(crate) fn unix_address(&self) -> Address {
        Address::Unix(self.socket())
    }

    /// The address the daemon bound for `server.tcp: 127.0.0.1:0`.
    pub(crate) fn tcp_address(&self) -> Address {
        let address = self.tcp_address.expect("the daemon listens on TCP");
        Address::Tcp(format!("http://{address}"))
    }

    /// The address of the metrics listener (`server.metrics.address: 127.0.0.1:0`), read
    /// back from the daemon's `serving Prometheus metrics` log line.
    pub(crate) fn metrics_address(&self) -> SocketAddr {
        let output = self.output();
        output
            .lines()
            .filter(|line| line.contains("serving Prometheus metrics"))
            .find_map(|line| {
                line.split_whitespace()
                    .find_map(|field| field.strip_prefix("address="))
                    .and_then(|address| address.parse().ok())
            })
            .unwrap_or_else(|| panic!("no `serving Prometheus metrics` line:\n{output}"))
    }

    /// Resolves `name` on a new connection.
    pub(crate) async fn resolve(&self, name: &str) -> Result<pb::Secret, tonic::Status> {
        resolve(&mut self.client().await, name).await
    }

    pub(crate) async fn client(&self) -> SecretsClient<Channel> {
        client::connect(&self.unix_address())
            .await
            .expect("connect over the socket")
    }

    pub(crate) fn stdout_path(&self) -> PathBuf {
        self.setup.dir.path().join("stdout.log")
    }

    pub(crate) fn stderr_path(&self) -> PathBuf {
        self.setup.dir.path().join("stderr.log")
    }

    /// Everything the daemon printed so far.
    pub(crate) fn output(&self) -> String {
        let read = |path: PathBuf| std::fs::read_to_string(path).unwrap_or_default();
        format!("{}{}", read(self.stdout_path()), read(self.stderr_path()))
    }

    /// Waits until the health service answers SERVING, which the daemon reports only
    /// once every listener is bound (and the socket's mode set); then reads back the TCP
    /// address it bound, logged before that.
    fn wait_ready(&mut self) {
        let serving = poll_until(Duration::from_secs(20), || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "the daemon exited before it was ready ({status}):\n{}",
                    self.output()
                );
            }
            is_serving(&self.unix_address())
        });
        assert!(
            serving,
            "the daemon was not SERVING within 20 s:\n{}",
            self.output()
        );
        if self.setup.tcp {
            let output = self.output();
            self.tcp_address = Some(bound_tcp_address(&output).unwrap_or_else(|| {
                panic!(
                    "SERVING, but no `listening on TCP address=...` line; the log filter must keep `vaultbridge::server` at info:\n{output}"
                )
            }));
        }
    }

    /// Waits until the daemon's output contains `text`.
    pub(crate) fn wait_for_output(&self, text: &str) {
        wait_until(
            Duration::from_secs(20),
            || self.output().contains(text),
            || format!("the daemon did not print `{text}`:\n{}", self.output()),
        );
    }

    /// Sends SIGTERM and waits for the exit status.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        signal_term(&child);
        wait_with_timeout(&mut child, Duration::from_secs(20))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The address in the daemon's `listening on TCP address=127.0.0.1:PORT` log line.
fn bound_tcp_address(output: &str) -> Option<SocketAddr> {
    output
        .lines()
        .filter(|line| line.contains("listening on TCP"))
        .find_map(|line| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("address="))
                .and_then(|address| address.parse().ok())
        })
}

/// Asks the health service; on its own thread and runtime, because callers may already
/// be inside a runtime.
pub(crate) fn is_serving(address: &Address) -> bool {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    let Ok(channel) = client::channel(address).await else {
                        return false;
                    };
                    let answer = HealthClient::new(channel)
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await;
                    matches!(answer, Ok(r) if r.get_ref().status == ServingStatus::Serving as i32)
                })
            })
            .join()
            .unwrap_or(false)
    })
}

pub(crate) fn spawn_serve(setup: &Setup, config: &Path) -> Child {
    let stdout = std::fs::File::create(setup.dir.path().join("stdout.log")).expect("stdout log");
    let stderr = std::fs::File::create(setup.dir.path().join("stderr.log")).expect("stderr log");
    let mut command = Command::new(BINARY);
    command
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(&setup.serve_args)
        .env_remove("VAULTBRIDGE_CONFIG")
        .env("VAULTBRIDGE_LOG", &setup.log)
        .env("NO_COLOR", "1")
        // Never let an AWS credential or region chain probe the instance-metadata
        // address from a test.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    for name in &setup.env_remove {
        command.env_remove(name);
    }
    for (name, value) in &setup.env {
        command.env(name, value);
    }
    for (name, value) in &setup.env_os {
        command.env(name, value);
    }
    command.spawn().expect("spawn vaultbridge serve")
}

pub(crate) fn signal_term(child: &Child) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
}

pub(crate) fn wait_with_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let mut status = None;
    if !poll_until(timeout, || {
        status = child.try_wait().expect("wait");
        status.is_some()
    }) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the daemon did not exit within {timeout:?}");
    }
    status.expect("exited")
}

/// Runs the CLI with arguments and returns (exit code, stdout bytes, stderr text).
pub(crate) fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, Vec<u8>, String) {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env_remove("VAULTBRIDGE_ADDR")
        .env_remove("VAULTBRIDGE_CONFIG")
        .env("NO_COLOR", "1");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("run vaultbridge");
    (
        output.status.code().unwrap_or(-1),
        output.stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Kills a child process when dropped, so a failing assertion leaves none behind.
pub(crate) struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resolves `name` over `client`, with the default freshness.
pub(crate) async fn resolve(
    client: &mut SecretsClient<Channel>,
    name: &str,
) -> Result<pb::Secret, tonic::Status> {
    client
        .resolve(ResolveRequest {
            name: name.into(),
            ..Default::default()
        })
        .await
        .map(|response| response.into_inner().secret.expect("a resolved secret"))
}

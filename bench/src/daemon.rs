//! The cache-hit and memory scenarios run the daemon on generated definitions rather
//! than the example config: they need a known number of them (1,000 and 100,000),
//! each with a value of the secret's size. The cold-miss and refresh-ahead scenarios
//! run it on its AWS backend against the bench's fake Secrets Manager instead.

use crate::cli::Args;
use crate::server::{Reports, Server, Transport, spawn_reporting_tcp, wait_serving};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) fn write_secrets(dir: &Path, entries: usize, payload: usize) -> PathBuf {
    let path = dir.join(format!("secrets-{entries}.yaml"));
    let value = "s".repeat(payload);
    let mut text = String::with_capacity(entries * (payload + 24));
    text.push_str(&format!("bench: \"{value}\"\n"));
    for i in 0..entries {
        text.push_str(&format!("s{i}: \"{value}\"\n"));
    }
    std::fs::write(&path, text).expect("write secrets");
    path
}

pub(crate) fn write_config(
    dir: &Path,
    name: &str,
    secrets: &Path,
    definitions: usize,
    socket: &Path,
) -> PathBuf {
    let mut text = format!(
        "server:\n  unix_socket: {}\n  tcp: 127.0.0.1:0\ncache:\n  ttl: 1h\n  max_entries: 200000\nbackends:\n  local:\n    type: file\n    path: {}\n  env:\n    type: env\ndefinitions:\n  bench:\n    backend: local\n    secret: bench\n  bench-env:\n    backend: env\n    secret: {BENCH_ENV_VARIABLE}\n",
        socket.display(),
        secrets.display()
    );
    for i in 0..definitions {
        text.push_str(&format!("  s{i}:\n    backend: local\n    secret: s{i}\n"));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// A copy of a [`write_config`] config on `socket` instead, with `server.metrics` on a
/// port the kernel picks.
pub(crate) fn with_metrics(config: &Path, old_socket: &Path, socket: &Path) -> PathBuf {
    let text = std::fs::read_to_string(config).expect("read the config");
    let text = text.replacen(
        &format!("unix_socket: {}\n", old_socket.display()),
        &format!(
            "unix_socket: {}\n  metrics:\n    address: 127.0.0.1:0\n",
            socket.display()
        ),
        1,
    );
    let path = config.with_extension("metrics.yaml");
    std::fs::write(&path, text).expect("write the metrics config");
    path
}

/// The variable the `bench-env` definition reads: the same value as `bench`, from the
/// env backend, which (unlike the file backend) makes no system call on a cache hit.
const BENCH_ENV_VARIABLE: &str = "VAULTBRIDGE_BENCH_SECRET";

/// Starts the daemon on a config from [`write_config`], whose TCP port the kernel picks:
/// the address is read back from the daemon's log.
pub(crate) async fn start_daemon(args: &Args, config: &Path, socket: &Path) -> (Server, Duration) {
    let started = Instant::now();
    let (child, tcp) = spawn_reporting_tcp(
        Command::new(&args.daemon)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env(BENCH_ENV_VARIABLE, "s".repeat(args.payload)),
        args.server_workers,
        Reports::OnStderr,
    );
    let mut server = Server {
        child,
        socket: socket.to_path_buf(),
        tcp: String::new(),
    };
    let ready = wait_serving(&server.address(Transport::Uds), started).await;
    server.tcp = tcp.read("the daemon").await;
    (server, ready)
}

/// A config whose one backend, `slow`, is the daemon's real AWS backend pointed at the
/// bench's fake Secrets Manager at `endpoint`; `definitions` is the YAML that goes
/// under `definitions:`, indented by two spaces.
pub(crate) fn write_aws_config(
    dir: &Path,
    name: &str,
    socket: &Path,
    endpoint: SocketAddr,
    definitions: &str,
) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "server:\n  unix_socket: {}\n  tcp: 127.0.0.1:0\ncache:\n  ttl: 1h\nbackends:\n  slow:\n    type: aws_secrets_manager\n    region: us-east-1\n    endpoint_url: http://{endpoint}\ndefinitions:\n{definitions}",
            socket.display(),
        ),
    )
    .expect("write an AWS-backend config");
    path
}

/// Starts the daemon on a config from [`write_aws_config`], with fixed credentials so
/// that the SDK's default chain neither looks for a profile nor asks instance metadata.
pub(crate) async fn start_aws_daemon(args: &Args, config: &Path, socket: &Path) -> Server {
    let started = Instant::now();
    let (child, tcp) = spawn_reporting_tcp(
        Command::new(&args.daemon)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("AWS_ACCESS_KEY_ID", "AKIDBENCHMARK")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN"),
        args.server_workers,
        Reports::OnStderr,
    );
    let mut daemon = Server {
        child,
        socket: socket.to_path_buf(),
        tcp: String::new(),
    };
    wait_serving(&daemon.address(Transport::Uds), started).await;
    daemon.tcp = tcp.read("the AWS-backend daemon").await;
    daemon
}

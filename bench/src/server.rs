//! Both servers, the baseline included, run as child processes, so that their CPU time
//! and RSS can be read from /proc apart from the load generator's.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vaultbridge::client::{self, Address};

/// A server process under measurement; killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) socket: PathBuf,
    pub(crate) tcp: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub(crate) fn address(&self, transport: Transport) -> Address {
        match transport {
            Transport::Uds => Address::Unix(self.socket.clone()),
            Transport::Tcp => Address::Tcp(format!("http://{}", self.tcp)),
        }
    }

    /// User plus system CPU time of the process so far.
    pub(crate) fn cpu(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses and may hold spaces).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
            .sum();
        let per_second = rustix::param::clock_ticks_per_second().max(1);
        Duration::from_secs_f64(ticks as f64 / per_second as f64)
    }

    pub(crate) fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Uds,
    Tcp,
}

impl Transport {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Uds => "uds",
            Self::Tcp => "tcp",
        }
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

pub(crate) async fn wait_serving(address: &Address, started: Instant) -> Duration {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    loop {
        if let Ok(channel) = client::channel(address).await {
            let answer = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if answer.is_ok_and(|answer| answer.get_ref().status == 1) {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "server did not become ready at {address}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

pub(crate) fn spawn(command: &mut Command, server_workers: Option<usize>) -> Child {
    if let Some(workers) = server_workers {
        command.env("TOKIO_WORKER_THREADS", workers.to_string());
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env("VAULTBRIDGE_LOG", "warn")
        .spawn()
        .expect("spawn a server")
}

//! Both servers, the baseline included, run as child processes, so that their CPU time
//! and RSS can be read from /proc apart from the load generator's.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
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

/// Starts a server with its output discarded and the daemon's log at `warn`.
pub(crate) fn spawn(command: &mut Command, server_workers: Option<usize>) -> Child {
    configure(command, server_workers)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn a server")
}

fn configure(command: &mut Command, server_workers: Option<usize>) -> &mut Command {
    if let Some(workers) = server_workers {
        command.env("TOKIO_WORKER_THREADS", workers.to_string());
    }
    command.stdin(Stdio::null()).env("VAULTBRIDGE_LOG", "warn")
}

/// Where a server started on `127.0.0.1:0` reports the TCP address it bound, in a line
/// holding `listening on TCP` and `address=IP:PORT`. The kernel picks the port as the
/// server binds it, so no other process can take it in between, as one could a port
/// picked by binding and dropping a listener here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reports {
    /// The baseline prints the line itself.
    OnStdout,
    /// The daemon logs it from `vaultbridge::server` at info.
    OnStderr,
    /// The daemon's HTTP/1.1 listener (`server.http.tcp`), logged from `vaultbridge::http`.
    HttpOnStderr,
}

impl Reports {
    /// The words of the line that carries the address.
    fn needle(self) -> &'static str {
        match self {
            Self::OnStdout | Self::OnStderr => "listening on TCP",
            Self::HttpOnStderr => "serving HTTP/1.1 on TCP",
        }
    }
}

/// The daemon's log filter when it must report its TCP address: warnings as before,
/// plus `vaultbridge::server`'s info lines, which it writes only as it starts and
/// stops.
const DAEMON_LOG_WITH_ADDRESS: &str = "warn,vaultbridge::server=info";
const DAEMON_LOG_WITH_HTTP_ADDRESS: &str = "warn,vaultbridge::http=info";

/// As [`spawn`], with the stream that `reports` names piped to a thread that reads
/// the TCP address from it and then keeps reading (and discarding) to the end, so that
/// the server can never block on a full pipe.
pub(crate) fn spawn_reporting_tcp(
    command: &mut Command,
    server_workers: Option<usize>,
    reports: Reports,
) -> (Child, TcpAddress) {
    configure(command, server_workers);
    match reports {
        Reports::OnStdout => command.stdout(Stdio::piped()).stderr(Stdio::null()),
        Reports::OnStderr => command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("VAULTBRIDGE_LOG", DAEMON_LOG_WITH_ADDRESS),
        Reports::HttpOnStderr => command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("VAULTBRIDGE_LOG", DAEMON_LOG_WITH_HTTP_ADDRESS),
    };
    let mut child = command.spawn().expect("spawn a server");
    let needle = reports.needle();
    let address = match reports {
        Reports::OnStdout => watch(child.stdout.take().expect("piped stdout"), needle),
        Reports::OnStderr | Reports::HttpOnStderr => {
            watch(child.stderr.take().expect("piped stderr"), needle)
        }
    };
    (child, address)
}

/// The TCP address a server reports; see [`spawn_reporting_tcp`].
#[derive(Debug)]
pub(crate) struct TcpAddress(oneshot::Receiver<Result<SocketAddr, String>>);

impl TcpAddress {
    /// The reported address, as `IP:PORT`. Call it once the server is SERVING: both
    /// servers write the line before they serve, so by then it is in the pipe, and
    /// the deadline only turns a missing line into a failure instead of a hang.
    pub(crate) async fn read(self, server: &str) -> String {
        match tokio::time::timeout(Duration::from_secs(30), self.0).await {
            Ok(Ok(Ok(address))) => address.to_string(),
            Ok(Ok(Err(output))) => panic!(
                "{server} closed its output without a `listening on TCP address=...` line:\n{output}"
            ),
            Ok(Err(_)) => panic!("the thread reading {server}'s output ended without an answer"),
            Err(_) => panic!(
                "{server} is SERVING but printed no `listening on TCP address=...` line within 30 s \
                 (the daemon's log filter must keep `vaultbridge::server` at info)"
            ),
        }
    }
}

fn watch(pipe: impl Read + Send + 'static, needle: &'static str) -> TcpAddress {
    let (sender, receiver) = oneshot::channel();
    std::thread::Builder::new()
        .name("tcp-address".to_owned())
        .spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut sender = Some(sender);
            let mut before = String::new();
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let Some(waiting) = sender.take() else {
                    continue; // Reported: only draining now.
                };
                let text = String::from_utf8_lossy(&line);
                match reported_address(&text, needle) {
                    Some(address) => {
                        let _ = waiting.send(Ok(address));
                    }
                    None => {
                        before.push_str(&text);
                        sender = Some(waiting);
                    }
                }
            }
            if let Some(waiting) = sender {
                let _ = waiting.send(Err(before));
            }
        })
        .expect("spawn the thread reading a server's output");
    TcpAddress(receiver)
}

/// The address in a `listening on TCP address=127.0.0.1:PORT` line (or the line
/// holding another `needle`).
fn reported_address(line: &str, needle: &str) -> Option<SocketAddr> {
    if !line.contains(needle) {
        return None;
    }
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("address="))
        .and_then(|address| address.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::reported_address;

    #[test]
    fn the_address_is_read_from_the_daemons_and_the_baselines_line() {
        let daemon = "2025-11-30T03:36:00.000000Z  INFO vaultbridge::server: listening on TCP address=127.0.0.1:40123\n";
        assert_eq!(
            reported_address(daemon, "listening on TCP"),
            Some(([127, 0, 0, 1], 40123).into())
        );
        assert_eq!(
            reported_address("listening on TCP address=127.0.0.1:5", "listening on TCP"),
            Some(([127, 0, 0, 1], 5).into())
        );
        assert_eq!(
            reported_address(
                "INFO vaultbridge::server: listening on Unix socket socket=/tmp/s",
                "listening on TCP"
            ),
            None
        );
        let http = "INFO vaultbridge::http: serving HTTP/1.1 on TCP address=127.0.0.1:7 aws_agent_compat=false";
        assert_eq!(
            reported_address(http, "serving HTTP/1.1 on TCP"),
            Some(([127, 0, 0, 1], 7).into())
        );
        assert_eq!(reported_address(http, "listening on TCP"), None);
    }
}

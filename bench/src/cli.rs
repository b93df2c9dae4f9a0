//! The command line. A module of its own because the scenarios take `&Args`, and
//! importing it from `main.rs` would make every scenario module and `main.rs` import
//! each other.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(about = "Benchmarks the vaultbridge daemon against a baseline tonic server")]
pub(crate) struct Args {
    /// How long each load run lasts.
    #[arg(long, default_value = "3s", value_parser = humantime_duration)]
    pub(crate) duration: Duration,
    /// HTTP/2 connections the load is spread over.
    #[arg(long, default_value_t = 4)]
    pub(crate) connections: usize,
    /// Runs per measurement; the table shows the median. The baseline and the daemon
    /// take turns.
    #[arg(long, default_value_t = 3)]
    pub(crate) repeat: usize,
    /// Concurrency levels for the single-resolve scenarios.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub(crate) concurrency: Vec<usize>,
    /// The secret's size in bytes.
    #[arg(long, default_value_t = 64)]
    pub(crate) payload: usize,
    /// The daemon binary (a release build).
    #[arg(long, default_value = "target/release/vaultbridge")]
    pub(crate) daemon: PathBuf,
    /// Skip the 100,000-definition memory scenario (it takes a while to load).
    #[arg(long)]
    pub(crate) skip_large: bool,
    /// Concurrent resolves of one uncached definition per cold-miss round.
    #[arg(long, default_value_t = 1000)]
    pub(crate) cold_concurrency: usize,
    /// Cold-miss rounds (the definition is invalidated before each).
    #[arg(long, default_value_t = 20)]
    pub(crate) cold_rounds: usize,
    /// Tokio worker threads for both servers (TOKIO_WORKER_THREADS); default: one per
    /// core. The same value goes to the daemon and the baseline, so a tuning is always
    /// measured against the baseline given the same tuning.
    #[arg(long)]
    pub(crate) server_workers: Option<usize>,
    /// The slow backend's latency per call in the cold-miss scenario.
    #[arg(long, default_value = "5ms", value_parser = humantime_duration)]
    pub(crate) backend_latency: Duration,
    /// How long each refresh-ahead run lasts: long enough for `--refresh-ttl` to expire
    /// several times within it.
    #[arg(long, default_value = "10s", value_parser = humantime_duration)]
    pub(crate) refresh_duration: Duration,
    /// The TTL of the definitions the refresh-ahead readers read.
    #[arg(long, default_value = "2s", value_parser = humantime_duration)]
    pub(crate) refresh_ttl: Duration,
    /// The slow backend's latency per call in the refresh-ahead scenarios.
    #[arg(long, default_value = "50ms", value_parser = humantime_duration)]
    pub(crate) refresh_latency: Duration,
    /// Sizes of the groups of definitions the refresh-ahead readers read in turn, one
    /// group per run.
    #[arg(long, value_delimiter = ',', default_value = "1,50")]
    pub(crate) refresh_definitions: Vec<usize>,
    /// Concurrency levels of the refresh-ahead readers (over the Unix socket).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub(crate) refresh_concurrency: Vec<usize>,
    /// Skip the refresh-ahead scenarios (their runs take about 3 minutes at the
    /// defaults).
    #[arg(long)]
    pub(crate) skip_refresh: bool,
    /// Skip the plugin-backend rows (a cache hit and a miss through a plugin, paired
    /// with the same through the file backend).
    #[arg(long)]
    pub(crate) skip_plugin: bool,
    /// Run only the HTTP/1.1 rows (the face against its baseline, and with access
    /// rules), for more rounds of them than a whole run affords.
    #[arg(long)]
    pub(crate) only_http: bool,
    #[command(subcommand)]
    pub(crate) mode: Option<Mode>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Mode {
    /// Internal: serve the baseline on a socket and a TCP port until killed.
    BaselineServer {
        #[arg(long)]
        socket: PathBuf,
        /// Port 0 lets the kernel pick one; the bound address is printed on stdout as
        /// `listening on TCP address=IP:PORT` before the baseline serves.
        #[arg(long)]
        tcp: std::net::SocketAddr,
        #[arg(long)]
        payload: usize,
    },
    /// Internal: serve the HTTP/1.1 baseline (an empty hyper server) until killed.
    HttpBaselineServer {
        /// Port 0 lets the kernel pick one, printed as for `baseline-server`.
        #[arg(long)]
        tcp: std::net::SocketAddr,
        /// Also serve on this Unix socket (bound before the address is printed).
        #[arg(long)]
        unix: Option<PathBuf>,
        #[arg(long)]
        payload: usize,
    },
    /// Internal: serve a plugin backend (`vaultbridge.plugin.v1.Backend` and health)
    /// on a Unix socket until killed, answering a fixed value for any secret.
    PluginServer {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        payload: usize,
    },
    /// Sends a fixed number of `Resolve` calls to a running server, for profiling it
    /// (scripts/profile runs the daemon and the baseline under callgrind with this).
    Drive {
        /// A Unix socket path, or http://host:port.
        #[arg(long)]
        address: String,
        #[arg(long, default_value = "bench")]
        name: String,
        #[arg(long)]
        requests: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Sends `refresh: true`, so that every call reads the backend (a miss).
        #[arg(long)]
        refresh: bool,
    },
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 5s"))?;
    match unit {
        "s" | "" => Ok(Duration::from_secs(number)),
        "ms" => Ok(Duration::from_millis(number)),
        other => Err(format!("unknown unit `{other}`; use s or ms")),
    }
}

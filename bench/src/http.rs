//! The HTTP/1.1 face's cache hit (`GET /v1/secrets/bench`, over TCP and over the Unix
//! socket) against a baseline measured in the same run: an empty hyper HTTP/1.1
//! server, this binary in `http-baseline-server` mode, answering the same bytes (the
//! status line, the daemon's headers and the value) with the same hyper settings. The
//! ratio says what the daemon's own work costs over the framework's limit. A second
//! daemon with access rules (a uid rule) and an audit file is paired against the first
//! over the socket: the cost of the rules on this face.
//!
//! The load generator speaks HTTP/1.1 by hand over one keep-alive connection per
//! client (HTTP/1.1 carries one request at a time), so that it takes as little of the
//! machine's CPU from the servers as it can.

use crate::cli::Args;
use crate::daemon::write_config;
use crate::server::{Reports, Server, Transport, spawn_reporting_tcp, wait_serving};
use crate::stats::{Measurement, Paired, median};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// The daemon's defaults for `server.http`, given to the baseline as well.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BUF_SIZE: usize = 16 * 1024;

/// Where a load generator connects: a TCP address or a Unix socket.
#[derive(Debug, Clone)]
enum Endpoint {
    Tcp(String),
    Unix(PathBuf),
}

impl Endpoint {
    fn transport(&self) -> &'static str {
        match self {
            Self::Tcp(_) => "tcp http/1.1",
            Self::Unix(_) => "uds http/1.1",
        }
    }

    async fn connect(&self) -> Box<dyn Connection> {
        match self {
            Self::Tcp(address) => {
                let stream = TcpStream::connect(address).await.expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                Box::new(stream)
            }
            Self::Unix(path) => Box::new(UnixStream::connect(path).await.expect("connect")),
        }
    }
}

trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

/// Serves the baseline on `tcp` (and on `unix`, when given) until killed, printing the
/// bound TCP address first; the socket is bound before that line.
pub(crate) async fn http_baseline_server(
    tcp: std::net::SocketAddr,
    unix: Option<PathBuf>,
    payload: usize,
) {
    let listener = tokio::net::TcpListener::bind(tcp)
        .await
        .expect("bind the HTTP baseline port");
    let bound = listener.local_addr().expect("the bound address");
    let body = Bytes::from("s".repeat(payload));
    if let Some(path) = unix {
        let _ = std::fs::remove_file(&path);
        let socket = tokio::net::UnixListener::bind(&path).expect("bind the HTTP baseline socket");
        let body = body.clone();
        tokio::spawn(async move {
            loop {
                if let Ok((stream, _)) = socket.accept().await {
                    tokio::spawn(serve_baseline(stream, body.clone()));
                }
            }
        });
    }
    println!("listening on TCP address={bound}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_baseline(stream, body.clone()));
    }
}

async fn serve_baseline(stream: impl Connection + 'static, body: Bytes) {
    let service = hyper::service::service_fn(move |_request| {
        let body = body.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(body)) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUF_SIZE)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// The headers of the daemon's cache hit, with values of the same length, made once
/// (as the daemon makes its names): `from_static` parses a name each time it runs.
const HEADERS: [(HeaderName, HeaderValue); 8] = [
    (
        HeaderName::from_static("content-type"),
        HeaderValue::from_static("text/plain; charset=utf-8"),
    ),
    (
        HeaderName::from_static("cache-control"),
        HeaderValue::from_static("no-store"),
    ),
    (
        HeaderName::from_static("x-vaultbridge-cache"),
        HeaderValue::from_static("hit"),
    ),
    (
        HeaderName::from_static("x-vaultbridge-stale"),
        HeaderValue::from_static("false"),
    ),
    (
        HeaderName::from_static("x-vaultbridge-trimmed"),
        HeaderValue::from_static("false"),
    ),
    (
        HeaderName::from_static("x-vaultbridge-age"),
        HeaderValue::from_static("12.345"),
    ),
    (
        HeaderName::from_static("x-vaultbridge-fetched-at"),
        HeaderValue::from_static("2026-11-30T08:00:00.123456Z"),
    ),
    (
        HeaderName::from_static("x-vaultbridge-backend"),
        HeaderValue::from_static("local"),
    ),
];

fn answer(body: Bytes) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(body));
    let headers = response.headers_mut();
    // As the daemon does: room for every header at once.
    *headers = hyper::HeaderMap::with_capacity(10);
    for (name, value) in HEADERS {
        headers.insert(name, value);
    }
    response
}

/// Reads one response: the head up to its blank line, then `Content-Length` bytes.
async fn read_response(stream: &mut (impl AsyncRead + Unpin), buffer: &mut Vec<u8>) {
    buffer.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await.expect("read a response");
        assert!(read > 0, "the server closed the connection");
        buffer.extend_from_slice(&chunk[..read]);
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buffer[..end]).expect("a text head");
        assert!(head.starts_with("HTTP/1.1 200"), "not a 200: {head}");
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .expect("a Content-Length");
        while buffer.len() < end + 4 + length {
            let read = stream.read(&mut chunk).await.expect("read a body");
            assert!(read > 0, "the server closed the connection");
            buffer.extend_from_slice(&chunk[..read]);
        }
        return;
    }
}

const REQUEST: &[u8] = b"GET /v1/secrets/bench HTTP/1.1\r\nHost: localhost\r\nUser-Agent: vaultbridge-bench\r\nAccept: */*\r\n\r\n";

/// How long one side of a pair is loaded before the other takes its turn.
const SLICE: Duration = Duration::from_millis(500);

/// One side of a pair under measurement: its server, its warmed connections, and what
/// its slices added up to.
struct Loaded<'a> {
    server: &'a Server,
    transport: &'static str,
    streams: Vec<Box<dyn Connection>>,
    latencies: Vec<u32>,
    seconds: f64,
    cpu: Duration,
}

impl<'a> Loaded<'a> {
    /// `concurrency` keep-alive connections to `endpoint`, each warmed with 50 calls.
    async fn connect(server: &'a Server, endpoint: &Endpoint, concurrency: usize) -> Self {
        let mut streams = Vec::new();
        let mut buffer = Vec::new();
        for _ in 0..concurrency {
            let mut stream = endpoint.connect().await;
            for _ in 0..50 {
                stream.write_all(REQUEST).await.expect("write");
                read_response(&mut stream, &mut buffer).await;
            }
            streams.push(stream);
        }
        Self {
            server,
            transport: endpoint.transport(),
            streams,
            latencies: Vec::new(),
            seconds: 0.0,
            cpu: Duration::ZERO,
        }
    }

    /// Every connection calls back to back for `length`; the server's CPU and the
    /// time are added to this side's sums.
    async fn slice(&mut self, length: Duration) {
        let cpu_before = self.server.cpu();
        let started = Instant::now();
        let deadline = started + length;
        let mut tasks = tokio::task::JoinSet::new();
        for mut stream in self.streams.drain(..) {
            tasks.spawn(async move {
                let mut latencies: Vec<u32> = Vec::with_capacity(1 << 14);
                let mut buffer = Vec::with_capacity(1024);
                while Instant::now() < deadline {
                    let began = Instant::now();
                    stream.write_all(REQUEST).await.expect("write");
                    read_response(&mut stream, &mut buffer).await;
                    latencies.push(u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX));
                }
                (stream, latencies)
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (stream, latencies) = done.expect("load task");
            self.streams.push(stream);
            self.latencies.extend(latencies);
        }
        self.seconds += started.elapsed().as_secs_f64();
        self.cpu += self.server.cpu().saturating_sub(cpu_before);
    }

    fn measured(mut self, concurrency: usize) -> Measurement {
        Measurement {
            transport: self.transport,
            concurrency,
            ..Measurement::of_calls(&mut self.latencies, self.seconds, self.cpu, self.server)
        }
    }
}

/// The two sides of a pair, `concurrency` clients each (one connection per client),
/// loaded in turns of [`SLICE`] until each has had `duration`, `first` starting. Both
/// sides' connections stay open throughout: a waiting keep-alive connection costs its
/// server nothing until its next request (it is far inside the header timeout). Turns this
/// short put the machine's slow drift (seconds long here: one daemon measured twice
/// within a round gave 10.8 and 7.0 µs per request) on both sides alike, where one
/// run of `duration` per side put it on one.
async fn run_pair(
    first: (&Server, &Endpoint),
    second: (&Server, &Endpoint),
    concurrency: usize,
    duration: Duration,
) -> (Measurement, Measurement) {
    let mut first = Loaded::connect(first.0, first.1, concurrency).await;
    let mut second = Loaded::connect(second.0, second.1, concurrency).await;
    let turns = (duration.as_nanos() / SLICE.as_nanos()).max(1);
    let length = duration / u32::try_from(turns).unwrap_or(u32::MAX);
    for _ in 0..turns {
        first.slice(length).await;
        second.slice(length).await;
    }
    (first.measured(concurrency), second.measured(concurrency))
}

/// A daemon serving `config` with the HTTP face on TCP and on `http_socket`; its gRPC
/// socket is `socket`.
async fn start_http_daemon(
    args: &Args,
    config: &Path,
    socket: PathBuf,
    http_socket: &Path,
) -> Server {
    let started = Instant::now();
    let (child, http) = spawn_reporting_tcp(
        Command::new(&args.daemon)
            .arg("serve")
            .arg("--config")
            .arg(config),
        args.server_workers,
        Reports::HttpOnStderr,
    );
    let mut daemon = Server {
        child,
        socket,
        tcp: String::new(),
    };
    wait_serving(&daemon.address(Transport::Uds), started).await;
    daemon.tcp = http.read("the daemon's HTTP listener").await;
    // The face binds its socket before the daemon reports SERVING.
    assert!(http_socket.exists(), "{} is missing", http_socket.display());
    daemon
}

/// `config` (a `write_config` file) with the HTTP face on TCP and on `http_socket`.
fn with_http(config: &Path, http_socket: &Path) {
    let text = std::fs::read_to_string(config).expect("config");
    let text = text.replacen(
        "  tcp: 127.0.0.1:0\n",
        &format!(
            "  tcp: 127.0.0.1:0\n  http:\n    tcp: 127.0.0.1:0\n    unix_socket: {}\n",
            http_socket.display()
        ),
        1,
    );
    std::fs::write(config, text).expect("config");
}

/// Which server of a round a side of a pairing measures.
#[derive(Debug, Clone, Copy)]
enum Who {
    Baseline,
    Daemon,
    /// The daemon with access rules and an audit file.
    Guarded,
}

/// One side of a paired row: a server, how to reach it, and the row's name.
#[derive(Debug, Clone, Copy)]
struct Side {
    who: Who,
    over_socket: bool,
    scenario: &'static str,
}

/// Two sides taking turns round by round; the subject's row is paired with the
/// reference's.
struct Pairing {
    reference: Side,
    subject: Side,
    concurrency: usize,
    /// Whether the reference's own row is reported too (not for the access row,
    /// whose reference is the plain daemon's row measured again).
    report_reference: bool,
    reference_runs: Vec<Measurement>,
    subject_runs: Vec<Measurement>,
}

/// The servers of one round, started afresh for each: a process that lived for the
/// whole run carried whatever it met (where its threads and memory landed) into every
/// round, and one run's daemon median was 8.3 µs, another's 11.6 µs, against a steady
/// baseline. Now that is one round's luck, which the median of the rounds settles.
struct Round {
    baseline: Server,
    daemon: Server,
    guarded: Server,
}

/// Where the servers of every round listen and what they serve.
struct Setup {
    baseline_socket: PathBuf,
    daemon_config: PathBuf,
    daemon_socket: PathBuf,
    daemon_http_socket: PathBuf,
    guarded_config: PathBuf,
    guarded_socket: PathBuf,
    guarded_http_socket: PathBuf,
    audit: PathBuf,
}

impl Setup {
    fn write(dir: &Path, secrets: &Path) -> Self {
        let daemon_socket = dir.join("daemon-http.sock");
        let daemon_http_socket = dir.join("daemon-http-face.sock");
        let daemon_config = write_config(dir, "daemon-http.yaml", secrets, 1000, &daemon_socket);
        with_http(&daemon_config, &daemon_http_socket);

        let guarded_socket = dir.join("daemon-http-guarded.sock");
        let guarded_http_socket = dir.join("daemon-http-guarded-face.sock");
        let guarded_config = write_config(
            dir,
            "daemon-http-guarded.yaml",
            secrets,
            1000,
            &guarded_socket,
        );
        with_http(&guarded_config, &guarded_http_socket);
        let uid = std::fs::metadata(dir).expect("the bench directory").uid();
        let audit = dir.join("http-audit.jsonl");
        let mut text = std::fs::read_to_string(&guarded_config).expect("config");
        text.push_str(&format!(
            "clients:\n  bench:\n    uids: [{uid}]\n    definitions: [bench, \"s*\"]\naudit:\n  file: {}\n",
            audit.display()
        ));
        std::fs::write(&guarded_config, text).expect("config");
        Self {
            baseline_socket: dir.join("http-baseline.sock"),
            daemon_config,
            daemon_socket,
            daemon_http_socket,
            guarded_config,
            guarded_socket,
            guarded_http_socket,
            audit,
        }
    }

    async fn start(&self, args: &Args) -> Round {
        let me = std::env::current_exe().expect("own path");
        let started = Instant::now();
        let (child, tcp) = spawn_reporting_tcp(
            Command::new(me).args([
                "http-baseline-server",
                "--tcp",
                "127.0.0.1:0",
                "--unix",
                &self.baseline_socket.display().to_string(),
                "--payload",
                &args.payload.to_string(),
            ]),
            args.server_workers,
            Reports::OnStdout,
        );
        let mut baseline = Server {
            child,
            socket: self.baseline_socket.clone(),
            tcp: String::new(),
        };
        baseline.tcp = tcp.read("the HTTP baseline").await;
        let daemon = start_http_daemon(
            args,
            &self.daemon_config,
            self.daemon_socket.clone(),
            &self.daemon_http_socket,
        )
        .await;
        let guarded = start_http_daemon(
            args,
            &self.guarded_config,
            self.guarded_socket.clone(),
            &self.guarded_http_socket,
        )
        .await;
        eprintln!("HTTP round's servers ready in {:?}", started.elapsed());
        Round {
            baseline,
            daemon,
            guarded,
        }
    }

    /// The server behind `side` in `round`, and where to reach it.
    fn endpoint<'a>(&self, round: &'a Round, side: Side) -> (&'a Server, Endpoint) {
        let (server, socket) = match side.who {
            Who::Baseline => (&round.baseline, &self.baseline_socket),
            Who::Daemon => (&round.daemon, &self.daemon_http_socket),
            Who::Guarded => (&round.guarded, &self.guarded_http_socket),
        };
        let endpoint = if side.over_socket {
            Endpoint::Unix(socket.clone())
        } else {
            Endpoint::Tcp(server.tcp.clone())
        };
        (server, endpoint)
    }
}

/// The baseline and the daemon's HTTP face, taking turns at each concurrency over
/// TCP, then over the Unix socket at the highest; and the face with access rules and
/// an audit file against the face without them, over the socket. Each round starts
/// every server afresh (see [`Round`]).
pub(crate) async fn measure(args: &Args, dir: &Path, secrets: &Path) -> Vec<Measurement> {
    let setup = Setup::write(dir, secrets);
    let baseline = |over_socket| Side {
        who: Who::Baseline,
        over_socket,
        scenario: "HTTP/1.1 baseline: empty hyper server",
    };
    let daemon = |over_socket| Side {
        who: Who::Daemon,
        over_socket,
        scenario: "HTTP/1.1 cache hit (vs HTTP baseline)",
    };
    let pairing = |reference, subject, concurrency, report_reference| Pairing {
        reference,
        subject,
        concurrency,
        report_reference,
        reference_runs: Vec::new(),
        subject_runs: Vec::new(),
    };
    let mut pairings: Vec<Pairing> = args
        .concurrency
        .iter()
        .map(|&concurrency| pairing(baseline(false), daemon(false), concurrency, true))
        .collect();
    let highest = args.concurrency.iter().copied().max().unwrap_or(1);
    pairings.push(pairing(baseline(true), daemon(true), highest, true));
    pairings.push(pairing(
        Side {
            scenario: "HTTP/1.1 cache hit, reference for the access row",
            ..daemon(true)
        },
        Side {
            who: Who::Guarded,
            over_socket: true,
            scenario: "HTTP/1.1 cache hit, uid rule + audit file (vs the same without)",
        },
        highest,
        false,
    ));

    for index in 0..args.repeat.max(1) {
        let round = setup.start(args).await;
        for pairing in &mut pairings {
            let mut sides = [
                (pairing.reference, &mut pairing.reference_runs),
                (pairing.subject, &mut pairing.subject_runs),
            ];
            // Every other round the subject goes first, so that whatever the second
            // run of a pair meets (the first one's leftovers, the machine's drift)
            // falls on both sides alike.
            if index % 2 == 1 {
                sides.reverse();
            }
            let [(first, first_runs), (second, second_runs)] = sides;
            let (first_server, first_endpoint) = setup.endpoint(&round, first);
            let (second_server, second_endpoint) = setup.endpoint(&round, second);
            let (first_measured, second_measured) = run_pair(
                (first_server, &first_endpoint),
                (second_server, &second_endpoint),
                pairing.concurrency,
                args.duration,
            )
            .await;
            for (side, runs, mut measured) in [
                (first, first_runs, first_measured),
                (second, second_runs, second_measured),
            ] {
                measured.scenario = side.scenario.to_owned();
                eprintln!(
                    "run: {} c={}: {:.0} req/s, {:.1} µs CPU/req, p99 {:.0} µs",
                    measured.scenario,
                    pairing.concurrency,
                    measured.rate(),
                    measured.cpu_us_per_request,
                    measured.p99_us
                );
                runs.push(measured);
            }
        }
        // Dropping the round's servers stops them before the next round binds.
    }

    let mut results = Vec::new();
    for pairing in pairings {
        let paired = Paired::of(&pairing.subject_runs, &pairing.reference_runs);
        if pairing.report_reference {
            results.push(median(pairing.reference_runs));
        }
        results.push(Measurement {
            paired: Some(paired),
            ..median(pairing.subject_runs)
        });
    }
    let lines = std::fs::read_to_string(&setup.audit)
        .map(|text| text.lines().count())
        .unwrap_or(0);
    eprintln!("HTTP access row: the guarded daemon wrote {lines} audit lines");
    assert!(lines > 0, "the guarded daemon wrote no audit line");
    results
}

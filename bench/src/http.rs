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

/// `concurrency` clients, one connection each, for `duration`.
async fn run(
    server: &Server,
    endpoint: &Endpoint,
    concurrency: usize,
    duration: Duration,
) -> Measurement {
    let request = b"GET /v1/secrets/bench HTTP/1.1\r\nHost: localhost\r\nUser-Agent: vaultbridge-bench\r\nAccept: */*\r\n\r\n";
    let mut streams = Vec::new();
    for _ in 0..concurrency {
        let mut stream = endpoint.connect().await;
        let mut buffer = Vec::new();
        // Warm the connection and the server before measuring.
        for _ in 0..50 {
            stream.write_all(request).await.expect("write");
            read_response(&mut stream, &mut buffer).await;
        }
        streams.push(stream);
    }
    let cpu_before = server.cpu();
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for mut stream in streams {
        tasks.spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut buffer = Vec::with_capacity(1024);
            while Instant::now() < deadline {
                let began = Instant::now();
                stream.write_all(request).await.expect("write");
                read_response(&mut stream, &mut buffer).await;
                latencies.push(u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.expect("load task"));
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = server.cpu().saturating_sub(cpu_before);
    Measurement {
        transport: endpoint.transport(),
        concurrency,
        ..Measurement::of_calls(&mut latencies, seconds, cpu, server)
    }
}

/// One side of a paired row: a server, where to reach it, and the row's name.
struct Contender<'a> {
    server: &'a Server,
    endpoint: Endpoint,
    scenario: &'static str,
}

/// `reference` and `subject` taking turns run by run; the subject's row is paired with
/// the reference's.
async fn paired(
    reference: &Contender<'_>,
    subject: &Contender<'_>,
    concurrency: usize,
    args: &Args,
) -> [Measurement; 2] {
    let mut reference_runs = Vec::new();
    let mut subject_runs = Vec::new();
    for _ in 0..args.repeat.max(1) {
        for (contender, runs) in [
            (reference, &mut reference_runs),
            (subject, &mut subject_runs),
        ] {
            let mut measured = run(
                contender.server,
                &contender.endpoint,
                concurrency,
                args.duration,
            )
            .await;
            measured.scenario = contender.scenario.to_owned();
            eprintln!(
                "run: {} c={}: {:.0} req/s, {:.1} µs CPU/req, p99 {:.0} µs",
                measured.scenario,
                concurrency,
                measured.rate(),
                measured.cpu_us_per_request,
                measured.p99_us
            );
            runs.push(measured);
        }
    }
    let pairing = Paired::of(&subject_runs, &reference_runs);
    [
        median(reference_runs),
        Measurement {
            paired: Some(pairing),
            ..median(subject_runs)
        },
    ]
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

/// The baseline and the daemon's HTTP face, taking turns run by run at each
/// concurrency over TCP, then over the Unix socket at the highest; and the face with
/// access rules and an audit file against the face without them, over the socket.
pub(crate) async fn measure(args: &Args, dir: &Path, secrets: &Path) -> Vec<Measurement> {
    let me = std::env::current_exe().expect("own path");
    let started = Instant::now();
    let baseline_socket = dir.join("http-baseline.sock");
    let (child, tcp) = spawn_reporting_tcp(
        Command::new(me).args([
            "http-baseline-server",
            "--tcp",
            "127.0.0.1:0",
            "--unix",
            &baseline_socket.display().to_string(),
            "--payload",
            &args.payload.to_string(),
        ]),
        args.server_workers,
        Reports::OnStdout,
    );
    let mut baseline = Server {
        child,
        socket: dir.join("none.sock"),
        tcp: String::new(),
    };
    baseline.tcp = tcp.read("the HTTP baseline").await;
    eprintln!("HTTP baseline ready in {:?}", started.elapsed());

    let socket = dir.join("daemon-http.sock");
    let http_socket = dir.join("daemon-http-face.sock");
    let config = write_config(dir, "daemon-http.yaml", secrets, 1000, &socket);
    with_http(&config, &http_socket);
    let daemon = start_http_daemon(args, &config, socket, &http_socket).await;

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
    let guarded =
        start_http_daemon(args, &guarded_config, guarded_socket, &guarded_http_socket).await;

    let tcp = |server: &Server| Endpoint::Tcp(server.tcp.clone());
    let mut results = Vec::new();
    for &concurrency in &args.concurrency {
        results.extend(
            paired(
                &Contender {
                    server: &baseline,
                    endpoint: tcp(&baseline),
                    scenario: "HTTP/1.1 baseline: empty hyper server",
                },
                &Contender {
                    server: &daemon,
                    endpoint: tcp(&daemon),
                    scenario: "HTTP/1.1 cache hit (vs HTTP baseline)",
                },
                concurrency,
                args,
            )
            .await,
        );
    }
    let highest = args.concurrency.iter().copied().max().unwrap_or(1);
    let over_socket = Contender {
        server: &daemon,
        endpoint: Endpoint::Unix(http_socket),
        scenario: "HTTP/1.1 cache hit (vs HTTP baseline)",
    };
    results.extend(
        paired(
            &Contender {
                server: &baseline,
                endpoint: Endpoint::Unix(baseline_socket),
                scenario: "HTTP/1.1 baseline: empty hyper server",
            },
            &over_socket,
            highest,
            args,
        )
        .await,
    );
    let reference = Contender {
        scenario: "HTTP/1.1 cache hit, reference for the access row",
        ..over_socket
    };
    let [_, guarded_row] = paired(
        &reference,
        &Contender {
            server: &guarded,
            endpoint: Endpoint::Unix(guarded_http_socket),
            scenario: "HTTP/1.1 cache hit, uid rule + audit file (vs the same without)",
        },
        highest,
        args,
    )
    .await;
    results.push(guarded_row);
    let lines = std::fs::read_to_string(&audit)
        .map(|text| text.lines().count())
        .unwrap_or(0);
    eprintln!("HTTP access row: the guarded daemon wrote {lines} audit lines");
    assert!(lines > 0, "the guarded daemon wrote no audit line");
    results
}

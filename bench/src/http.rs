//! The HTTP/1.1 face's cache hit (`GET /v1/secrets/bench` over TCP) against a baseline
//! measured in the same run: an empty hyper HTTP/1.1 server, this binary in
//! `http-baseline-server` mode, answering the same bytes (the status line, the daemon's
//! headers and the value) with the same hyper settings. The ratio says what the
//! daemon's own work costs over the framework's limit.
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
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The daemon's defaults for `server.http`, given to the baseline as well.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BUF_SIZE: usize = 16 * 1024;
const TRANSPORT: &str = "tcp http/1.1";

/// Serves the baseline on `tcp` until killed, printing the bound address first.
pub(crate) async fn http_baseline_server(tcp: std::net::SocketAddr, payload: usize) {
    let listener = tokio::net::TcpListener::bind(tcp)
        .await
        .expect("bind the HTTP baseline port");
    let bound = listener.local_addr().expect("the bound address");
    println!("listening on TCP address={bound}");
    let body = Bytes::from("s".repeat(payload));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
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
        });
    }
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
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) {
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
    address: &str,
    concurrency: usize,
    duration: Duration,
) -> Measurement {
    let request = b"GET /v1/secrets/bench HTTP/1.1\r\nHost: localhost\r\nUser-Agent: vaultbridge-bench\r\nAccept: */*\r\n\r\n";
    let mut streams = Vec::new();
    for _ in 0..concurrency {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
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
        transport: TRANSPORT,
        concurrency,
        ..Measurement::of_calls(&mut latencies, seconds, cpu, server)
    }
}

/// The baseline and the daemon's HTTP face, taking turns run by run at each
/// concurrency; the daemon's rows are paired with the baseline's.
pub(crate) async fn measure(args: &Args, dir: &Path, secrets: &Path) -> Vec<Measurement> {
    let me = std::env::current_exe().expect("own path");
    let started = Instant::now();
    let (child, tcp) = spawn_reporting_tcp(
        Command::new(me).args([
            "http-baseline-server",
            "--tcp",
            "127.0.0.1:0",
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
    let config = write_config(dir, "daemon-http.yaml", secrets, 1000, &socket);
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replacen(
        "  tcp: 127.0.0.1:0\n",
        "  tcp: 127.0.0.1:0\n  http:\n    tcp: 127.0.0.1:0\n",
        1,
    );
    std::fs::write(&config, text).expect("config");
    let started = Instant::now();
    let (child, http) = spawn_reporting_tcp(
        Command::new(&args.daemon)
            .arg("serve")
            .arg("--config")
            .arg(&config),
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

    let mut results = Vec::new();
    for &concurrency in &args.concurrency {
        let mut baseline_runs = Vec::new();
        let mut daemon_runs = Vec::new();
        for _ in 0..args.repeat.max(1) {
            for (server, runs, scenario) in [
                (
                    &baseline,
                    &mut baseline_runs,
                    "HTTP/1.1 baseline: empty hyper server",
                ),
                (
                    &daemon,
                    &mut daemon_runs,
                    "HTTP/1.1 cache hit (vs HTTP baseline)",
                ),
            ] {
                let mut measured = run(server, &server.tcp, concurrency, args.duration).await;
                measured.scenario = scenario.to_owned();
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
        let paired = Paired::of(&daemon_runs, &baseline_runs);
        results.push(median(baseline_runs));
        results.push(Measurement {
            paired: Some(paired),
            ..median(daemon_runs)
        });
    }
    results
}

//! Limits under abuse, tried from outside as a local attacker would: streams that
//! never send a body, connections that never start HTTP/2, oversized and undecodable
//! requests. Each time a well-behaved call must succeed meanwhile and the daemon's
//! memory must come back near its baseline.
//!
//! Memory tolerance: 10 MiB over the baseline. The debug build's RSS moves by a few
//! MiB on its own as worker threads touch their stacks and glibc gives each thread
//! that allocates its own arena; 10 MiB is a tenth of what the unbounded daemon held
//! for 10,000 bodiless streams, so a regression cannot hide inside it.

use crate::harness::{Daemon, Setup, poll_until, run_cli, wait_until_async};
use crate::procfs::{TICKS_PER_SECOND, cpu_ticks, rss_kib};
use crate::raw_h2::RawH2;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tonic::Code;

const TOLERANCE_KIB: u64 = 10 * 1024;

fn pid(daemon: &Daemon) -> u32 {
    daemon.child.as_ref().expect("running").id()
}

fn addr(daemon: &Daemon) -> String {
    format!("unix:{}", daemon.socket().display())
}

/// `vaultbridge get plain`, the well-behaved caller; returns how long it took.
fn get_plain(daemon: &Daemon) -> Duration {
    let started = Instant::now();
    let (code, stdout, stderr) = run_cli(
        &["get", "plain", "--addr", &addr(daemon), "--timeout", "20s"],
        &[],
    );
    let took = started.elapsed();
    assert_eq!(
        code, 0,
        "a well-behaved get failed after {took:?}: {stderr}"
    );
    assert_eq!(stdout, b"plain-e2e-value");
    took
}

/// Waits until the daemon's RSS is back within the tolerance of `baseline`.
fn assert_memory_returns(daemon: &Daemon, baseline: u64) -> u64 {
    let pid = pid(daemon);
    let mut last = 0;
    let back = poll_until(Duration::from_secs(20), || {
        last = rss_kib(pid);
        last <= baseline + TOLERANCE_KIB
    });
    assert!(
        back,
        "RSS stayed at {last} KiB, baseline {baseline} KiB (tolerance {TOLERANCE_KIB} KiB)"
    );
    last
}

#[test]
fn streams_that_never_send_a_body_are_capped_per_connection() {
    let daemon = Setup::new().start();
    let pid = pid(&daemon);
    get_plain(&daemon);
    let baseline = rss_kib(pid);

    let mut attack = RawH2::connect(&daemon.socket());
    attack.open_bodiless_streams(10_000);
    let took = get_plain(&daemon);
    let during = rss_kib(pid);
    eprintln!(
        "10,000 bodiless streams: RSS {baseline} -> {during} KiB, limit advertised {:?}, {} refused, goaway {:?}, get took {took:?}",
        attack.max_concurrent_streams, attack.refused, attack.goaway
    );
    assert_eq!(
        attack.max_concurrent_streams,
        Some(100),
        "the daemon must advertise its stream limit"
    );
    assert!(
        attack.refused > 0 || attack.goaway.is_some(),
        "streams beyond the limit must be refused"
    );
    assert!(
        during <= baseline + TOLERANCE_KIB,
        "10,000 bodiless streams grew the RSS from {baseline} to {during} KiB"
    );
    assert!(took < Duration::from_secs(5), "get took {took:?}");
    drop(attack);
    let after = assert_memory_returns(&daemon, baseline);
    eprintln!("after the connection closed: {after} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_start_http2_are_closed_and_starve_no_one() {
    let daemon = Setup::new().start();
    let pid = pid(&daemon);
    // The open-file limit the finding was made under: without a cap, 1,024 descriptors
    // run out before 2,000 connections do.
    let limit = rustix::process::Rlimit {
        current: Some(1024),
        maximum: Some(1024),
    };
    rustix::process::prlimit(
        rustix::process::Pid::from_raw(pid as i32),
        rustix::process::Resource::Nofile,
        limit,
    )
    .expect("prlimit");
    get_plain(&daemon);
    let baseline = rss_kib(pid);
    let cpu_before = cpu_ticks(pid);
    let started = Instant::now();

    const FLOOD: usize = 2_000;
    let settled = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..FLOOD {
        let (socket, settled, refused, closed) = (
            daemon.socket(),
            settled.clone(),
            refused.clone(),
            closed.clone(),
        );
        flood.spawn(async move {
            use tokio::io::AsyncReadExt;
            let Ok(mut stream) = tokio::net::UnixStream::connect(socket).await else {
                refused.fetch_add(1, Ordering::SeqCst);
                settled.fetch_add(1, Ordering::SeqCst);
                return;
            };
            settled.fetch_add(1, Ordering::SeqCst);
            // Never a byte from us; the daemon ends it (after its SETTINGS), or nobody
            // does.
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink).await;
            closed.fetch_add(1, Ordering::SeqCst);
        });
    }
    wait_until_async(
        Duration::from_secs(60),
        async || (settled.load(Ordering::SeqCst) == FLOOD).then_some(()),
        || {
            format!(
                "{} of {FLOOD} connects settled",
                settled.load(Ordering::SeqCst)
            )
        },
    )
    .await;
    let connected = FLOOD - refused.load(Ordering::SeqCst);

    let addr = addr(&daemon);
    let health = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let result = run_cli(&["health", "--addr", &addr, "--timeout", "20s"], &[]);
        (result, started.elapsed())
    });
    let ((code, stdout, stderr), health_took) = health.await.unwrap();
    let share_so_far =
        (cpu_ticks(pid) - cpu_before) as f64 / TICKS_PER_SECOND / started.elapsed().as_secs_f64();
    eprintln!(
        "{FLOOD} silent connections ({connected} connected): health exit {code} after {health_took:?}; daemon CPU so far {:.0} % of one core",
        share_so_far * 100.0
    );
    assert_eq!(
        code, 0,
        "health failed during the flood after {health_took:?}: {stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&stdout).trim(), "SERVING");
    let get_took = tokio::task::block_in_place(|| get_plain(&daemon));

    wait_until_async(
        Duration::from_secs(60),
        async || (closed.load(Ordering::SeqCst) == connected).then_some(()),
        || {
            format!(
                "the daemon closed {} of {connected} silent connections",
                closed.load(Ordering::SeqCst)
            )
        },
    )
    .await;
    let wall = started.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid) - cpu_before) as f64 / TICKS_PER_SECOND;
    let share = cpu / wall;
    eprintln!(
        "{FLOOD} silent connections ({connected} connected): health {health_took:?}, get {get_took:?}, all closed by the daemon after {wall:.1} s, daemon CPU {cpu:.2} s ({:.0} % of one core)",
        share * 100.0
    );
    assert!(
        health_took < Duration::from_secs(5),
        "health took {health_took:?}"
    );
    assert!(
        share < 0.25,
        "the daemon used {:.0} % of a core while the connections sat idle",
        share * 100.0
    );
    flood.shutdown().await;
    tokio::task::block_in_place(|| assert_memory_returns(&daemon, baseline));
}

/// Sends `body` (a gRPC frame's payload) to `path` over raw HTTP/2 and returns the
/// grpc-status the daemon answered, from its headers or trailers.
async fn grpc_status(daemon: &Daemon, path: &str, payload: &[u8]) -> (Code, String) {
    let io = tokio::net::UnixStream::connect(daemon.socket())
        .await
        .expect("connect");
    let (client, connection) = h2::client::handshake(io).await.expect("handshake");
    tokio::spawn(connection);
    let request = tonic::codegen::http::Request::post(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let mut client = client.ready().await.expect("ready");
    let (response, mut send) = client.send_request(request, false).expect("send");
    let mut body = vec![0u8];
    body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    body.extend_from_slice(payload);
    send.reserve_capacity(body.len());
    // The daemon may answer (and reset the stream) before it has read all of it.
    let _ = send.send_data(body.into(), true);
    let response = response.await.expect("a response");
    let read = |headers: &tonic::codegen::http::HeaderMap| {
        headers.get("grpc-status").map(|status| {
            let code = Code::from_bytes(status.as_bytes());
            let message = headers
                .get("grpc-message")
                .map(|m| percent_decode(m.as_bytes()))
                .unwrap_or_default();
            (code, message)
        })
    };
    if let Some(status) = read(response.headers()) {
        return status;
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let _ = chunk;
    }
    let trailers = body
        .trailers()
        .await
        .expect("trailers")
        .expect("some trailers");
    read(&trailers).expect("a grpc-status trailer")
}

/// grpc-message is percent-encoded on the wire.
fn percent_decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(&String::from_utf8_lossy(hex), 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_is_resource_exhausted_and_garbage_is_invalid_argument() {
    let daemon = Setup::new().start();
    let pid = pid(&daemon);
    let baseline = rss_kib(pid);

    // A real client with a 5 MB name: over `server.max_request_size`.
    let mut client = daemon.client().await;
    let status = client
        .resolve(vaultbridge::proto::v1::ResolveRequest {
            name: "a".repeat(5 * 1024 * 1024),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // Bytes that are not protobuf: field 1 says 5 bytes follow, 1 does.
    for path in [
        "/vaultbridge.v1.Secrets/Resolve",
        "/vaultbridge.v1.Secrets/ResolveBatch",
        "/vaultbridge.v1.Jira/ListConnections",
    ] {
        let (code, message) = grpc_status(&daemon, path, b"\x0a\x05a").await;
        assert_eq!(code, Code::InvalidArgument, "{path}: {message}");
        assert!(message.contains("not a valid message"), "{path}: {message}");
    }
    // Still serving, and the 5 MB were not kept.
    assert_eq!(
        daemon.resolve("plain").await.unwrap().value,
        b"plain-e2e-value"
    );
    tokio::task::block_in_place(|| assert_memory_returns(&daemon, baseline));
}

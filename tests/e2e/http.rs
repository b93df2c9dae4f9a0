//! The HTTP/1.1 face (`server.http`) of the real daemon, called by `curl` over TCP and
//! over the Unix socket, and by Python's standard `http.client`.

use crate::harness::{Daemon, Setup, poll_until};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Bytes no text decoder would pass: a binary value for the env backend (no NUL, which
/// a variable cannot hold).
pub(crate) const BINARY: &[u8] = b"\xff\xfe\x01bin\r\n\x80";

/// A listener of the HTTP face: its TCP address or its socket.
#[derive(Debug, Clone)]
pub(crate) enum Http {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON ({}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts an error answer: its status, and its JSON code and message.
    pub(crate) fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let json = self.json();
        assert_eq!(json["code"], code, "{json}");
        json["message"].as_str().expect("a message").to_owned()
    }
}

/// The address in the daemon's `serving HTTP/1.1 on TCP address=…` log line.
pub(crate) fn http_tcp(daemon: &Daemon) -> Http {
    let output = daemon.output();
    let address = output
        .lines()
        .filter(|line| line.contains("serving HTTP/1.1 on TCP"))
        .find_map(|line| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("address="))
                .and_then(|address| address.parse().ok())
        })
        .unwrap_or_else(|| panic!("no `serving HTTP/1.1 on TCP` line:\n{output}"));
    Http::Tcp(address)
}

/// Runs `curl` for `path` on `http` with `extra` arguments. A missing curl fails the
/// test: `scripts/test` installs it.
pub(crate) fn curl(http: &Http, path: &str, extra: &[&str]) -> Reply {
    let out = tempfile::tempdir().expect("tempdir");
    let headers = out.path().join("headers");
    let body = out.path().join("body");
    let mut command = Command::new("curl");
    command
        .arg("--silent")
        .arg("--show-error")
        .arg("--dump-header")
        .arg(&headers)
        .arg("--output")
        .arg(&body);
    let url = match http {
        Http::Tcp(address) => format!("http://{address}{path}"),
        Http::Unix(socket) => {
            command.arg("--unix-socket").arg(socket);
            format!("http://localhost{path}")
        }
    };
    command.args(extra).arg(url);
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run curl ({err}): scripts/test installs it"));
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let head = std::fs::read_to_string(&headers).expect("headers");
    let (status, headers) = parse_head(&head);
    Reply {
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

/// A response head's status code and its headers, names in lower case, in order.
fn parse_head(head: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers)
}

fn own_uid(dir: &Path) -> u32 {
    std::fs::metadata(dir).expect("stat").uid()
}

fn setup(http: &str, extra: &str) -> Setup {
    use std::os::unix::ffi::OsStrExt;
    let mut setup = Setup::new();
    setup.env_os.push((
        "VB_E2E_TOKEN".into(),
        std::ffi::OsStr::from_bytes(BINARY).to_owned(),
    ));
    setup.custom_config = Some(format!(
        r#"server:
  unix_socket: vb.sock
  shutdown_grace: 5s
  http:
{http}cache:
  ttl: 10m
backends:
  local:
    type: file
    path: secrets.yaml
  env:
    type: env
    prefix: VB_E2E_
definitions:
  jira-api-token:
    backend: local
    secret: jira
    key: api_token
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
  not-a-map:
    backend: local
    secret: plain
    key: token
  binary:
    backend: env
    secret: TOKEN
{extra}"#
    ));
    setup
}

const LISTENERS: &str = "    tcp: 127.0.0.1:0\n    unix_socket: http.sock\n";

#[tokio::test]
async fn values_come_byte_for_byte_over_tcp_and_the_socket_with_their_metadata() {
    let daemon = setup(LISTENERS, "").start();
    let socket = Http::Unix(daemon.setup_dir().join("http.sock"));
    for http in [http_tcp(&daemon), socket] {
        for (name, value, content_type) in [
            (
                "plain",
                &b"plain-e2e-value"[..],
                "text/plain; charset=utf-8",
            ),
            // trim: false keeps the PEM's last newline.
            (
                "pem",
                b"-----BEGIN KEY-----\nAAAA-e2e-pem-body\n-----END KEY-----\n",
                "text/plain; charset=utf-8",
            ),
            (
                "jira-api-token",
                b"ATATT3x-e2e-token-value",
                "text/plain; charset=utf-8",
            ),
            ("binary", BINARY, "application/octet-stream"),
        ] {
            let reply = curl(&http, &format!("/v1/secrets/{name}"), &[]);
            assert_eq!(reply.status, 200, "{name}: {reply:?}");
            assert_eq!(reply.body, value, "{name} over {http:?}");
            assert_eq!(reply.header("content-type"), Some(content_type), "{name}");
            assert_eq!(reply.header("cache-control"), Some("no-store"));
            let grpc = daemon.resolve(name).await.unwrap();
            assert_eq!(grpc.value, value, "{name}: the same value as gRPC");
            assert_eq!(
                reply.header("x-vaultbridge-backend"),
                Some(grpc.backend.as_str())
            );
            assert_eq!(reply.header("x-vaultbridge-stale"), Some("false"));
            assert!(
                reply
                    .header("x-vaultbridge-fetched-at")
                    .is_some_and(|at| at.ends_with('Z'))
            );
        }
        // Trimming is reported as in gRPC.
        let reply = curl(&http, "/v1/secrets/jira-api-token", &[]);
        assert_eq!(reply.header("x-vaultbridge-trimmed"), Some("true"));
        assert_eq!(reply.header("x-vaultbridge-cache"), Some("hit"));
        let health = curl(&http, "/v1/health", &[]);
        assert_eq!(health.status, 200);
        assert_eq!(health.json(), serde_json::json!({"status": "SERVING"}));
    }
}

#[tokio::test]
async fn every_error_has_its_status_and_the_grpc_message() {
    let daemon = setup(LISTENERS, "").start();
    let http = http_tcp(&daemon);
    for (name, status, code) in [
        ("no-such-definition", 404, "NOT_FOUND"),
        ("missing-entry", 404, "NOT_FOUND"),
        ("not-a-map", 412, "FAILED_PRECONDITION"),
        ("bad%20name", 400, "INVALID_ARGUMENT"),
    ] {
        let reply = curl(&http, &format!("/v1/secrets/{name}"), &[]);
        let message = reply.assert_error(status, code);
        let grpc = daemon
            .resolve(&name.replace("%20", " "))
            .await
            .expect_err(name);
        assert_eq!(message, grpc.message(), "{name}: the same words as gRPC");
    }
    let cases: [(&str, &[&str], u16, &str, &str); 7] = [
        (
            "/v1/secrets/plain?ttl=1",
            &[],
            400,
            "INVALID_ARGUMENT",
            "unknown query parameter `ttl`",
        ),
        (
            "/v1/secrets/plain?refresh=yes",
            &[],
            400,
            "INVALID_ARGUMENT",
            "expected `true` or `false`, got `yes`",
        ),
        (
            "/v1/secrets/plain?max_age=soon",
            &[],
            400,
            "INVALID_ARGUMENT",
            "query parameter `max_age`",
        ),
        (
            "/v1/secrets/plain",
            &["--data", "x"],
            405,
            "UNIMPLEMENTED",
            "only GET is served, not POST",
        ),
        (
            "/v1/secrets/plain",
            &["-X", "GET", "--data", "x"],
            400,
            "INVALID_ARGUMENT",
            "carries no body",
        ),
        ("/metrics", &[], 404, "NOT_FOUND", "no route `/metrics`"),
        // The agent's routes are off unless asked for.
        (
            "/secretsmanager/get?secretId=x",
            &[],
            404,
            "NOT_FOUND",
            "no route",
        ),
    ];
    for (path, args, status, code, words) in cases {
        let reply = curl(&http, path, args);
        let message = reply.assert_error(status, code);
        assert!(message.contains(words), "{path}: {message}");
        if status == 405 {
            assert_eq!(reply.header("allow"), Some("GET"));
        }
    }
    // Heads over `max_header_size` (16 KiB by default) are refused by hyper, whether a
    // header or the request line makes them so.
    let big = format!("X-Big: {}", "a".repeat(20 * 1024));
    let reply = curl(&http, "/v1/secrets/plain", &["-H", &big]);
    assert_eq!(reply.status, 431, "{reply:?}");
    let long = format!("/v1/secrets/{}", "a".repeat(20 * 1024));
    let reply = curl(&http, &long, &[]);
    assert_eq!(reply.status, 431, "{reply:?}");
    // The daemon still serves.
    assert_eq!(curl(&http, "/v1/secrets/plain", &[]).status, 200);
}

#[tokio::test]
async fn freshness_parameters_choose_between_the_cache_and_the_backend() {
    let daemon = setup(LISTENERS, "").start();
    let http = http_tcp(&daemon);
    let cache = |path: &str| {
        let reply = curl(&http, path, &[]);
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        reply.header("x-vaultbridge-cache").unwrap().to_owned()
    };
    assert_eq!(cache("/v1/secrets/plain"), "miss");
    assert_eq!(cache("/v1/secrets/plain"), "hit");
    assert_eq!(cache("/v1/secrets/plain?refresh=true"), "miss");
    assert_eq!(cache("/v1/secrets/plain?max_age=1h"), "hit");
    assert_eq!(cache("/v1/secrets/plain?max_age=0s"), "miss");
    assert_eq!(cache("/v1/secrets/plain?refresh=false&max_age=600"), "hit");
    // A change on disk is picked up by `refresh` before the TTL.
    let secrets = daemon.setup_dir().join("secrets.yaml");
    let text = std::fs::read_to_string(&secrets).unwrap();
    std::fs::write(&secrets, text.replace("plain-e2e-value", "plain-rotated")).unwrap();
    let reply = curl(&http, "/v1/secrets/plain?refresh=true", &[]);
    assert_eq!(reply.body, b"plain-rotated");
}

fn audit_lines(daemon: &Daemon) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(daemon.setup_dir().join("audit.log")).unwrap_or_default();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect()
}

#[tokio::test]
async fn callers_are_identified_checked_and_audited_as_on_grpc() {
    let setup_dir = tempfile::tempdir().unwrap();
    let uid = own_uid(setup_dir.path());
    let mut setup = setup(
        LISTENERS,
        &format!(
            "clients:\n  me:\n    uids: [{uid}]\n    definitions: [plain]\n  etl:\n    tokens:\n      - env: VB_HTTP_ETL_TOKEN\n    definitions: [pem]\naudit:\n  file: audit.log\n"
        ),
    );
    setup
        .env
        .push(("VB_HTTP_ETL_TOKEN".into(), "etl-http-token".into()));
    let daemon = setup.start();
    let socket = Http::Unix(daemon.setup_dir().join("http.sock"));
    let tcp = http_tcp(&daemon);

    // On the socket, the peer's uid decides.
    assert_eq!(curl(&socket, "/v1/secrets/plain", &[]).status, 200);
    let denied = curl(&socket, "/v1/secrets/pem", &[]);
    let message = denied.assert_error(403, "PERMISSION_DENIED");
    assert!(message.contains(&format!("uid {uid}")), "{message}");
    // Over TCP, the bearer token.
    let message = curl(&tcp, "/v1/secrets/pem", &[]).assert_error(401, "UNAUTHENTICATED");
    assert!(message.contains("Bearer"), "{message}");
    curl(
        &tcp,
        "/v1/secrets/pem",
        &["-H", "Authorization: Bearer wrong"],
    )
    .assert_error(401, "UNAUTHENTICATED");
    let bearer = ["-H", "Authorization: Bearer etl-http-token"];
    let reply = curl(&tcp, "/v1/secrets/pem", &bearer);
    assert_eq!(reply.status, 200, "{reply:?}");
    let message = curl(&tcp, "/v1/secrets/plain", &bearer).assert_error(403, "PERMISSION_DENIED");
    assert_eq!(message, "client `etl` may not read definition `plain`");

    let expected = [
        ("plain", "OK", "unix"),
        ("pem", "PERMISSION_DENIED", "unix"),
        ("", "UNAUTHENTICATED", "tcp"),
        ("", "UNAUTHENTICATED", "tcp"),
        ("pem", "OK", "token"),
        ("plain", "PERMISSION_DENIED", "token"),
    ];
    let mut lines = Vec::new();
    assert!(
        poll_until(Duration::from_secs(10), || {
            lines = audit_lines(&daemon);
            lines.len() >= expected.len()
        }),
        "audit lines: {lines:#?}"
    );
    for (line, (definition, code, via)) in lines.iter().zip(expected) {
        assert_eq!(line["rpc"], "http.GetSecret", "{line}");
        assert_eq!(line["code"], code, "{line}");
        assert_eq!(
            line["definition"].as_str().unwrap_or_default(),
            definition,
            "{line}"
        );
        assert_eq!(line["caller"]["kind"], via, "{line}");
    }
    let audit = std::fs::read_to_string(daemon.setup_dir().join("audit.log")).unwrap();
    assert!(
        !audit.contains("etl-http-token") && !audit.contains("e2e-pem-body"),
        "{audit}"
    );
}

/// Python's `http.client`, keep-alive on one connection per listener.
const PYTHON_CLIENT: &str = r#"
import http.client, json, socket, sys

class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)

host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = {}
for label, conn in (("tcp", http.client.HTTPConnection(host, port)), ("unix", UnixConnection(path))):
    replies = []
    for target in ("/v1/secrets/binary", "/v1/secrets/plain?max_age=1h", "/v1/secrets/nope", "/v1/health"):
        conn.request("GET", target)
        r = conn.getresponse()
        replies.append([r.status, r.getheader("Content-Type"), r.read().hex()])
    # All four went over one connection.
    out[label] = {"replies": replies, "one_connection": conn.sock is not None}
    conn.close()
print(json.dumps(out))
"#;

#[tokio::test]
async fn python_http_client_reads_values_over_one_keep_alive_connection() {
    let daemon = setup(LISTENERS, "").start();
    let Http::Tcp(address) = http_tcp(&daemon) else {
        unreachable!()
    };
    let socket = daemon.setup_dir().join("http.sock");
    let output = Command::new(crate::python::python())
        .arg("-c")
        .arg(PYTHON_CLIENT)
        .arg(address.ip().to_string())
        .arg(address.port().to_string())
        .arg(&socket)
        .output()
        .expect("python");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    for label in ["tcp", "unix"] {
        let replies = &result[label]["replies"];
        assert_eq!(result[label]["one_connection"], true, "{result}");
        assert_eq!(
            replies[0],
            serde_json::json!([200, "application/octet-stream", hex(BINARY)]),
            "{label}"
        );
        assert_eq!(
            replies[1],
            serde_json::json!([200, "text/plain; charset=utf-8", hex(b"plain-e2e-value")])
        );
        assert_eq!(replies[2][0], 404);
        assert_eq!(replies[2][1], "application/json");
        assert_eq!(replies[3][0], 200);
    }
}

/// An idle keep-alive connection does not hold the daemon up at shutdown: the stop
/// reaches it (the connection checks for it only once it may have come) and hyper
/// closes it. The grace and the header timeout are longer than the harness waits for
/// the exit, so a connection the stop did not reach would keep the daemon running and
/// fail the wait.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_when_the_daemon_stops() {
    use std::io::{Read, Write};
    let mut setup = setup("    tcp: 127.0.0.1:0\n    header_read_timeout: 60s\n", "");
    setup.custom_config = setup
        .custom_config
        .map(|config| config.replace("shutdown_grace: 5s", "shutdown_grace: 60s"));
    let mut daemon = setup.start();
    let Http::Tcp(address) = http_tcp(&daemon) else {
        unreachable!()
    };
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .write_all(b"GET /v1/secrets/plain HTTP/1.1\r\nhost: e2e\r\n\r\n")
        .expect("send");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !answer.ends_with(b"plain-e2e-value") {
        let read = stream.read(&mut buffer).expect("read the answer");
        assert!(read > 0, "closed before the answer: {answer:?}");
        answer.extend_from_slice(&buffer[..read]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"), "{answer:?}");
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}\n{}", daemon.output());
    let read = stream.read(&mut buffer).expect("read after the stop");
    assert_eq!(read, 0, "the daemon closed the idle connection");
}

/// Waits for the daemon to close `stream`; a connection open after 20 s fails the test.
fn assert_closed(stream: &mut std::net::TcpStream, what: &str) -> Vec<u8> {
    use std::io::Read;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("a read timeout");
    let mut sent = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return sent,
            Ok(read) => sent.extend_from_slice(&buffer[..read]),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return sent,
            Err(err) => panic!("{what}: still open after 20 s ({err}); got {sent:?}"),
        }
    }
}

/// `header_read_timeout` closes a connection whose client stopped halfway through its
/// request's head (a slow client holding a slot), and an idle keep-alive connection:
/// that bounds how long one keeps the config it was answered with after a reload.
#[tokio::test]
async fn a_client_that_sends_no_whole_head_in_time_is_disconnected() {
    use std::io::Write;
    let daemon = setup("    tcp: 127.0.0.1:0\n    header_read_timeout: 1s\n", "").start();
    let Http::Tcp(address) = http_tcp(&daemon) else {
        unreachable!()
    };
    let mut slow = std::net::TcpStream::connect(address).expect("connect");
    slow.write_all(b"GET /v1/secrets/plain HTTP/1.1\r\nhost: e2")
        .expect("send half a head");
    let sent = assert_closed(&mut slow, "a half-sent head");
    assert!(
        !String::from_utf8_lossy(&sent).contains("plain-e2e-value"),
        "answered a half-sent head: {sent:?}"
    );

    let mut idle = std::net::TcpStream::connect(address).expect("connect");
    let answered = get_kept_alive(&mut idle, "/v1/secrets/plain");
    assert_eq!(answered.status, 200, "{answered:?}");
    let sent = assert_closed(&mut idle, "an idle keep-alive connection");
    assert!(
        !String::from_utf8_lossy(&sent).contains("HTTP/1.1 200"),
        "a second answer on an idle connection: {sent:?}"
    );
}

/// One `GET` on a keep-alive connection: the answer's status, its headers (names in
/// lower case) and its `Content-Length` bytes of body.
fn get_kept_alive(stream: &mut std::net::TcpStream, path: &str) -> Reply {
    use std::io::{BufRead, BufReader, Read, Write};
    write!(stream, "GET {path} HTTP/1.1\r\nhost: e2e\r\n\r\n").expect("send");
    let mut reader = BufReader::new(stream);
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let read = reader.read_until(b'\n', &mut head).expect("read the head");
        assert!(read > 0, "closed before the answer: {head:?}");
    }
    let head = String::from_utf8(head).expect("an ASCII head");
    let (status, headers) = parse_head(&head);
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or_else(|| panic!("no content-length: {head}"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("read the body");
    // The answer ends at its body: nothing may be left buffered for the next one.
    assert!(reader.buffer().is_empty(), "bytes past the body");
    Reply {
        status,
        headers,
        body,
    }
}

/// A reload that adds a backend: answers for its definitions name it, though the face
/// made its backend header values from the first config; the first config's
/// definitions still name theirs. A connection kept alive across the reload answers
/// from the new config too: a connection holds its runtime between requests.
#[tokio::test]
async fn after_a_reload_answers_name_a_backend_the_first_config_did_not_have() {
    let daemon = setup(LISTENERS, "").start();
    let http = http_tcp(&daemon);
    let Http::Tcp(address) = &http else {
        unreachable!()
    };
    let mut kept = std::net::TcpStream::connect(address).expect("connect");
    let before = get_kept_alive(&mut kept, "/v1/secrets/after-reload");
    before.assert_error(404, "NOT_FOUND");
    let path = daemon.setup_dir().join("config.yaml");
    let config = std::fs::read_to_string(&path).expect("the config");
    let config = config
        .replacen(
            "backends:\n",
            "backends:\n  added-later:\n    type: file\n    path: secrets.yaml\n",
            1,
        )
        .replacen(
            "definitions:\n",
            "definitions:\n  after-reload:\n    backend: added-later\n    secret: plain\n",
            1,
        );
    std::fs::write(&path, config).expect("write the config");
    crate::harness::set_mode(&path, 0o600);
    let pid = daemon.child.as_ref().expect("the daemon").id();
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).expect("SIGHUP");
    crate::harness::wait_until(
        Duration::from_secs(20),
        || daemon.output().contains("config reloaded"),
        || format!("no reload in the log:\n{}", daemon.output()),
    );

    let added = curl(&http, "/v1/secrets/after-reload", &[]);
    assert_eq!(added.status, 200, "{added:?}");
    assert_eq!(added.body, b"plain-e2e-value");
    assert_eq!(added.header("x-vaultbridge-backend"), Some("added-later"));
    let old = curl(&http, "/v1/secrets/plain", &[]);
    assert_eq!(old.header("x-vaultbridge-backend"), Some("local"));

    let after = get_kept_alive(&mut kept, "/v1/secrets/after-reload");
    assert_eq!(after.status, 200, "{after:?}");
    assert_eq!(after.body, b"plain-e2e-value");
    assert_eq!(after.header("x-vaultbridge-backend"), Some("added-later"));
}

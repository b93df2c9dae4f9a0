//! A fake Jira for the calls vaultbridge makes: it checks the exact `Authorization`
//! header, answers 401 with Jira's JSON error body for anything else, 403 with
//! `X-Seraph-LoginReason: AUTHENTICATION_DENIED` in CAPTCHA mode, 404 outside its
//! context path, and 429 with `Retry-After` once when asked.

use std::sync::{Arc, Mutex};

pub(crate) const CLOUD_ID: &str = "8d1c0c1e-6b1f-4a35-9f4a-2f7e6c0a1b2c";
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, Default)]
struct State {
    accepted: Vec<String>,
    captcha: bool,
    throttle_once: bool,
    requests: Vec<String>,
}

pub(crate) struct FakeJira {
    port: u16,
    context: String,
    cloud: bool,
    /// Serving HTTPS with a certificate from this CA (PEM), made for the run.
    ca_pem: Option<String>,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeJira {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeJira {
    /// A Cloud site (`cloud`) or a Data Center one under `context` (e.g. `/jira`).
    pub(crate) async fn start(cloud: bool, context: &str) -> Self {
        Self::serve(cloud, context, None).await
    }

    /// Over HTTPS, with a certificate for `hosts` signed by a CA made for this run
    /// ([`FakeJira::ca_pem`]), as a site behind a corporate CA would be.
    pub(crate) async fn start_tls(cloud: bool, context: &str, hosts: &[&str]) -> Self {
        Self::serve(cloud, context, Some(certificates(hosts))).await
    }

    async fn serve(
        cloud: bool,
        context: &str,
        tls: Option<(String, rustls::ServerConfig)>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let prefix = context.to_owned();
        let (ca_pem, acceptor) = match tls {
            Some((ca_pem, config)) => (
                Some(ca_pem),
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
            ),
            None => (None, None),
        };
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                let prefix = prefix.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        // A client that refuses the certificate ends here, unanswered.
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve_one(stream, &state, cloud, &prefix).await;
                            }
                        }
                        None => serve_one(stream, &state, cloud, &prefix).await,
                    }
                });
            }
        });
        Self {
            port,
            context: context.to_owned(),
            cloud,
            ca_pem,
            state,
            server,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.port, self.context)
    }

    /// The site's URL under a host name of its certificate (HTTPS fakes).
    pub(crate) fn https_url(&self, host: &str) -> String {
        format!("https://{host}:{}{}", self.port, self.context)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn ca_pem(&self) -> &str {
        self.ca_pem.as_deref().expect("an HTTPS fake")
    }

    /// The only `Authorization` header value answered with 200 from now on.
    pub(crate) fn accept(&self, authorization: &str) {
        self.state.lock().unwrap().accepted = vec![authorization.to_owned()];
    }

    pub(crate) fn captcha(&self, on: bool) {
        self.state.lock().unwrap().captcha = on;
    }

    pub(crate) fn throttle_once(&self) {
        self.state.lock().unwrap().throttle_once = true;
    }

    pub(crate) fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    pub(crate) fn is_cloud(&self) -> bool {
        self.cloud
    }
}

async fn serve_one(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    state: &Mutex<State>,
    cloud: bool,
    prefix: &str,
) {
    // A request cut short gets no answer: the client sees the failure.
    let Ok(request) = read_request(&mut stream).await else {
        return;
    };
    let answer = answer(state, cloud, prefix, &request);
    let _ = stream.write_all(answer.as_bytes()).await;
    // Over TLS this sends close_notify, so the client sees a clean end.
    let _ = stream.shutdown().await;
}

/// The Key Vault fake's private CA and certificate, made for `hosts`.
fn certificates(hosts: &[&str]) -> (String, rustls::ServerConfig) {
    let (ca_pem, mut config) = vaultbridge_backend_azure::fake::certificates_for(hosts);
    // This fake speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (ca_pem, config)
}

/// More than any request the daemon sends; a guard against a runaway client.
const MAX_REQUEST: usize = 64 * 1024;

/// Reads one HTTP/1.1 request: until the blank line that ends the headers, then the
/// body's `Content-Length` bytes, if any. TCP may deliver it in any number of pieces, so
/// a single `read` could see a part of the headers.
async fn read_request(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<String> {
    let mut buffer = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        read_more(stream, &mut buffer).await?;
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let body_length = head
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, value)| value.trim().parse::<usize>())
        .transpose()
        .map_err(|_| invalid("a bad Content-Length"))?
        .unwrap_or(0);
    while buffer.len() < head_end + body_length {
        read_more(stream, &mut buffer).await?;
    }
    Ok(String::from_utf8_lossy(&buffer).into_owned())
}

/// Appends what one `read` returns; the end of the stream here is a request cut short.
async fn read_more(
    stream: &mut (impl AsyncRead + Unpin),
    buffer: &mut Vec<u8>,
) -> std::io::Result<()> {
    let mut chunk = [0u8; 4096];
    let read = stream.read(&mut chunk).await?;
    if read == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    buffer.extend_from_slice(&chunk[..read]);
    if buffer.len() > MAX_REQUEST {
        return Err(invalid("a request larger than any the daemon sends"));
    }
    Ok(())
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

fn respond(status: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json;charset=UTF-8\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        answer.push_str(&format!("{name}: {value}\r\n"));
    }
    answer.push_str("\r\n");
    answer.push_str(body);
    answer
}

fn answer(state: &Mutex<State>, cloud: bool, prefix: &str, request: &str) -> String {
    let mut lines = request.split("\r\n");
    let path = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_owned();
    let authorization = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_default();
    let mut state = state.lock().unwrap();
    state.requests.push(path.clone());
    if cloud && path == "/_edge/tenant_info" {
        // Readable without login, as on a real Cloud site.
        return respond("200 OK", &[], &format!(r#"{{"cloudId":"{CLOUD_ID}"}}"#));
    }
    let Some(api) = path.strip_prefix(&format!("{prefix}/rest/api/2/")) else {
        return respond(
            "404 Not Found",
            &[],
            r#"{"errorMessages":["Not found"],"errors":{}}"#,
        );
    };
    if std::mem::take(&mut state.throttle_once) {
        return respond(
            "429 Too Many Requests",
            &[("Retry-After", "1")],
            r#"{"errorMessages":["Rate limit exceeded."],"errors":{}}"#,
        );
    }
    if state.captcha {
        return respond(
            "403 Forbidden",
            &[("X-Seraph-LoginReason", "AUTHENTICATION_DENIED")],
            r#"{"errorMessages":["CAPTCHA_CHALLENGE"],"errors":{}}"#,
        );
    }
    if !state.accepted.contains(&authorization) {
        return respond(
            "401 Unauthorized",
            &[],
            r#"{"errorMessages":["You are not authenticated. Authentication required to perform this operation."],"errors":{}}"#,
        );
    }
    match (api, cloud) {
        ("myself", true) => respond(
            "200 OK",
            &[],
            r#"{"accountId":"5b10a2844c20165700ede21g","displayName":"Dev Person","emailAddress":"dev@example.com","active":true}"#,
        ),
        ("myself", false) => respond(
            "200 OK",
            &[],
            r#"{"name":"dev","key":"JIRAUSER10000","displayName":"Dev Person","active":true}"#,
        ),
        ("project/search?maxResults=5", true) => respond(
            "200 OK",
            &[],
            r#"{"values":[{"key":"PIPE"},{"key":"OPS"}],"total":2,"isLast":true}"#,
        ),
        ("project", false) => respond("200 OK", &[], r#"[{"key":"PIPE"},{"key":"DATA"}]"#),
        _ => respond(
            "404 Not Found",
            &[],
            r#"{"errorMessages":["Not found"],"errors":{}}"#,
        ),
    }
}

/// A request may arrive in pieces: the fake keeps reading until the headers end and the
/// body is complete. An in-memory pipe makes the pieces exact.
#[tokio::test]
async fn the_fake_reads_a_request_that_arrives_in_pieces() {
    use std::task::Poll;
    let (mut client, mut server) = tokio::io::duplex(1024);
    let reading = read_request(&mut server);
    tokio::pin!(reading);
    let mut poll_once = async || {
        std::future::poll_fn(|cx| Poll::Ready(reading.as_mut().poll(cx).map(Result::unwrap))).await
    };
    client
        .write_all(b"POST /rest/api/2/myself HTTP/1.1\r\nHost: jira\r\n")
        .await
        .unwrap();
    assert!(poll_once().await.is_pending(), "the headers have not ended");
    client
        .write_all(b"Authorization: Basic abc\r\nContent-Length: 5\r\n\r\nab")
        .await
        .unwrap();
    assert!(poll_once().await.is_pending(), "the body is incomplete");
    client.write_all(b"cde").await.unwrap();
    let Poll::Ready(request) = poll_once().await else {
        panic!("the request is complete");
    };
    assert!(
        request.contains("Authorization: Basic abc\r\n"),
        "{request}"
    );
    assert!(request.ends_with("\r\n\r\nabcde"), "{request}");
}

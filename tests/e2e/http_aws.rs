//! The AWS Secrets Manager Agent's routes (`aws_agent_compat`) against moto-backed
//! definitions, each answer compared field by field with `GetSecretValue`'s, which is
//! the shape the agent documents (`ARN`, `Name`, `VersionId`, `SecretString` or
//! `SecretBinary`, `VersionStages`, `CreatedDate`).

use crate::harness::{Daemon, Setup, poll_until};
use crate::http::{Http, Reply, curl, http_tcp};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::Blob;
use base64::Engine as _;
use std::process::Command;
use std::time::Duration;
use vaultbridge_backend_aws::moto::{self, Moto};

const TOKEN: &str = "agent-e2e-ssrf-token";
const DB: &str = r#"{"user":"etl","password":"pa55 \n"}"#;

fn start(moto: &Moto, unreachable: std::net::SocketAddr, db_arn: &str) -> Daemon {
    let mut setup = Setup::new()
        .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_KEY);
    setup.env_remove = vec!["AWS_PROFILE".into(), "AWS_SESSION_TOKEN".into()];
    // The agent's own way: AWS_TOKEN names a file holding the token.
    let token_file = setup.dir.path().join("awssmatoken");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    setup.env.push((
        "AWS_TOKEN".into(),
        format!("file://{}", token_file.display()),
    ));
    let backend = |name: &str, endpoint: &str| {
        format!(
            "  {name}:\n    type: aws_secrets_manager\n    region: {}\n    endpoint_url: {endpoint}\n    connect_timeout: 1s\n    attempt_timeout: 1s\n    operation_timeout: 2s\n    max_attempts: 1\n",
            moto::REGION
        )
    };
    setup.custom_config = Some(format!(
        r#"server:
  unix_socket: vb.sock
  http:
    tcp: 127.0.0.1:0
    aws_agent_compat: true
cache:
  ttl: 10m
  max_stale: 0s
backends:
{aws}{down}definitions:
  db:
    backend: aws
    secret: {db_arn}
    trim: false
  db-user:
    backend: aws
    secret: app/db
    key: user
  blob:
    backend: aws
    secret: app/blob
  rotating:
    backend: aws
    secret: app/rotating
  rotating-previous:
    backend: aws
    secret: app/rotating
    version_stage: AWSPREVIOUS
  down:
    backend: down
    secret: app/db
audit:
  file: audit.log
"#,
        aws = backend("aws", &moto.endpoint()),
        down = backend("down", &format!("http://{unreachable}")),
    ));
    setup.start()
}

fn agent(http: &Http, path: &str, extra: &[&str]) -> Reply {
    let header = format!("X-Aws-Parameters-Secrets-Token: {TOKEN}");
    let mut args = vec!["-H", header.as_str()];
    args.extend_from_slice(extra);
    curl(http, path, &args)
}

/// Asserts the answer is what `GetSecretValue` says for `secret_id` (and version).
async fn assert_same_as_aws(client: &Client, reply: &Reply, secret_id: &str, stage: Option<&str>) {
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let json = reply.json();
    let aws = client
        .get_secret_value()
        .secret_id(secret_id)
        .set_version_stage(stage.map(str::to_owned))
        .send()
        .await
        .unwrap();
    assert_eq!(json["ARN"], aws.arn().unwrap(), "{json}");
    assert_eq!(json["Name"], aws.name().unwrap(), "{json}");
    assert_eq!(json["VersionId"], aws.version_id().unwrap(), "{json}");
    match (aws.secret_string(), aws.secret_binary()) {
        (Some(text), _) => {
            assert_eq!(json["SecretString"], text, "{json}");
            assert!(json.get("SecretBinary").is_none());
        }
        (None, Some(blob)) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(blob.as_ref());
            assert_eq!(json["SecretBinary"], encoded, "{json}");
            assert!(json.get("SecretString").is_none());
        }
        (None, None) => panic!("moto returned no value"),
    }
    let stages: Vec<&str> = aws.version_stages().iter().map(String::as_str).collect();
    assert_eq!(json["VersionStages"], serde_json::json!(stages), "{json}");
    // The agent writes CreatedDate as seconds since the epoch, in a string.
    let created = aws.created_date().unwrap();
    let seconds: f64 = json["CreatedDate"]
        .as_str()
        .unwrap_or_else(|| panic!("CreatedDate is a string: {json}"))
        .parse()
        .unwrap();
    let expected = created.secs() as f64 + f64::from(created.subsec_nanos()) / 1e9;
    assert!(
        (seconds - expected).abs() < 0.001,
        "{seconds} vs {expected}"
    );
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 6, "only the agent's fields: {keys:?}");
}

#[tokio::test]
async fn the_agents_routes_answer_its_json_for_moto_backed_definitions() {
    let moto = Moto::start();
    let client = moto.client().await;
    let db_arn = client
        .create_secret()
        .name("app/db")
        .secret_string(DB)
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    client
        .create_secret()
        .name("app/blob")
        .secret_binary(Blob::new(vec![0xff, 0x00, b'\n', 0x80]))
        .send()
        .await
        .unwrap();
    client
        .create_secret()
        .name("app/rotating")
        .secret_string("old-rotating")
        .send()
        .await
        .unwrap();
    client
        .put_secret_value()
        .secret_id("app/rotating")
        .secret_string("new-rotating")
        .send()
        .await
        .unwrap();
    // Accepts connections into its backlog and never answers: a backend that times out.
    let unreachable = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let daemon = start(&moto, unreachable.local_addr().unwrap(), &db_arn);
    let http = http_tcp(&daemon);

    // By name (the definition names the ARN), by ARN, by path, by definition name.
    for path in [
        "/secretsmanager/get?secretId=app/db".to_owned(),
        format!(
            "/secretsmanager/get?secretId={}",
            db_arn.replace(':', "%3A")
        ),
        "/v1/app/db".to_owned(),
        "/secretsmanager/get?secretId=db".to_owned(),
    ] {
        let reply = agent(&http, &path, &[]);
        assert_same_as_aws(&client, &reply, "app/db", None).await;
    }
    assert_same_as_aws(
        &client,
        &agent(&http, "/v1/app/blob", &[]),
        "app/blob",
        None,
    )
    .await;
    let current = agent(
        &http,
        "/secretsmanager/get?secretId=app/rotating&versionStage=AWSCURRENT",
        &[],
    );
    assert_same_as_aws(&client, &current, "app/rotating", None).await;
    assert_eq!(current.json()["SecretString"], "new-rotating");
    let previous = agent(&http, "/v1/app/rotating?versionStage=AWSPREVIOUS", &[]);
    assert_same_as_aws(&client, &previous, "app/rotating", Some("AWSPREVIOUS")).await;
    assert_eq!(previous.json()["SecretString"], "old-rotating");
    let version = current.json()["VersionId"].as_str().unwrap().to_owned();
    let by_id = agent(&http, &format!("/v1/app/rotating?versionId={version}"), &[]);
    assert_eq!(by_id.json()["SecretString"], "new-rotating");

    // refreshNow reads Secrets Manager past the cache.
    client
        .put_secret_value()
        .secret_id("app/rotating")
        .secret_string("newest-rotating")
        .send()
        .await
        .unwrap();
    let cached = agent(&http, "/v1/app/rotating", &[]);
    assert_eq!(cached.json()["SecretString"], "new-rotating");
    let fresh = agent(&http, "/v1/app/rotating?refreshNow=true", &[]);
    assert_same_as_aws(&client, &fresh, "app/rotating", None).await;
    assert_eq!(fresh.json()["SecretString"], "newest-rotating");

    // The agent's refusals.
    let refusals: [(&str, &[&str], u16, &str); 4] = [
        (
            "/v1/app/db",
            &["-H", "X-Forwarded-For: 10.0.0.1"],
            400,
            "InvalidParameterException",
        ),
        (
            "/secretsmanager/get?secretId=app/db&abc=1",
            &[],
            400,
            "InvalidParameterException",
        ),
        (
            "/secretsmanager/get?versionId=x",
            &[],
            400,
            "InvalidParameterException",
        ),
        (
            "/secretsmanager/get?secretId=app/nope",
            &[],
            404,
            "ResourceNotFoundException",
        ),
    ];
    for (path, extra, status, kind) in refusals {
        let reply = agent(&http, path, extra);
        assert_eq!(reply.status, status, "{path}: {reply:?}");
        assert_eq!(reply.json()["__type"], kind, "{path}");
    }
    // A secret only a keyed definition reads is not served whole.
    let keyed = agent(&http, "/secretsmanager/get?secretId=db-user", &[]);
    assert_eq!(
        keyed.status, 200,
        "a definition named directly is served: {keyed:?}"
    );
    assert_eq!(keyed.json()["SecretString"], "etl");
    for token in [None, Some("X-Aws-Parameters-Secrets-Token: wrong")] {
        let args: Vec<&str> = token.map(|token| vec!["-H", token]).unwrap_or_default();
        let reply = curl(&http, "/v1/app/db", &args);
        assert_eq!(reply.status, 403, "{reply:?}");
        assert_eq!(reply.json()["__type"], "AccessDeniedException");
        assert!(!String::from_utf8_lossy(&reply.body).contains("pa55"));
    }
    // The agent's health check needs no token.
    let ping = curl(&http, "/ping", &[]);
    assert_eq!((ping.status, ping.body.as_slice()), (200, &b"healthy"[..]));
    // A backend that does not answer is UNAVAILABLE, 503.
    let down = curl(&http, "/v1/secrets/down", &[]);
    down.assert_error(503, "UNAVAILABLE");
    drop(unreachable);

    // Python's http.client, as the agent's documentation calls it.
    let script = format!(
        "import http.client, json, sys\nc = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]))\nc.request('GET', '/secretsmanager/get?secretId=app/db', headers={{'X-Aws-Parameters-Secrets-Token': '{TOKEN}'}})\nr = c.getresponse()\nprint(json.dumps([r.status, json.loads(r.read())]))\n"
    );
    let Http::Tcp(address) = http else {
        unreachable!()
    };
    let output = Command::new(crate::python::python())
        .arg("-c")
        .arg(script)
        .arg(address.ip().to_string())
        .arg(address.port().to_string())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (status, json): (u16, serde_json::Value) = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status, 200);
    assert_eq!(json["SecretString"], DB);
    assert_eq!(json["Name"], "app/db");

    // Every agent call is in the audit trail, under the definition that answered it.
    let mut lines = Vec::new();
    assert!(
        poll_until(Duration::from_secs(10), || {
            let text =
                std::fs::read_to_string(daemon.setup_dir().join("audit.log")).unwrap_or_default();
            lines = text.lines().map(str::to_owned).collect();
            lines.iter().any(|line| {
                line.contains("\"rpc\":\"http.AwsGetSecret\"")
                    && line.contains("\"definition\":\"rotating-previous\"")
            })
        }),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .all(|line| !line.contains("pa55") && !line.contains(TOKEN))
    );
}

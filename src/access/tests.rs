use super::*;
use crate::config::{AuditConfig, AuditSink, TokenSource};
use std::collections::BTreeMap;

fn client(name: &str, uids: &[u32], definitions: &[&str]) -> ClientConfig {
    ClientConfig {
        name: name.into(),
        uids: uids.to_vec(),
        gids: Vec::new(),
        tokens: Vec::new(),
        certificates: Vec::new(),
        definitions: definitions.iter().map(|d| (*d).to_owned()).collect(),
        jira_connections: vec!["main".into()],
        rate_limit: None,
    }
}

fn access(clients: Vec<ClientConfig>) -> Arc<Access> {
    let config = ClientsConfig {
        clients: Some(clients),
        audit: AuditConfig {
            sink: AuditSink::Off,
            file: None,
        },
        rate_limit: None,
    };
    Access::new(&config, &BTreeMap::new()).unwrap().unwrap()
}

fn unix_caller(access: &Access, uid: u32, gid: u32) -> Caller {
    // tokio's `UCred` cannot be built outside tokio, so the identity a socket would give.
    let identity = Identity::Unix {
        uid,
        gid,
        pid: Some(7),
    };
    Caller {
        clients: access.clients_of(&identity),
        identity,
    }
}

#[test]
fn exact_names_and_patterns_grant_reading() {
    let access = access(vec![client("etl", &[1000], &["db-password", "etl-*"])]);
    let caller = unix_caller(&access, 1000, 1000);
    assert!(access.may_read(&caller, "db-password"));
    assert!(access.may_read(&caller, "etl-token"));
    assert!(!access.may_read(&caller, "etl"));
    assert!(!access.may_read(&caller, "other"));
    assert!(access.may_use(&caller, "main"));
    assert!(!access.may_use(&caller, "other"));
    assert!(!access.reads_everything(&caller));
}

#[test]
fn a_caller_matching_no_client_may_read_nothing() {
    let access = access(vec![client("etl", &[1000], &["*"])]);
    let caller = unix_caller(&access, 1001, 1001);
    assert!(!access.may_read(&caller, "anything"));
}

#[test]
fn a_socket_caller_without_credentials_matches_no_client() {
    let access = access(vec![client("etl", &[1000], &["*"])]);
    let mut request = Request::new(());
    request.extensions_mut().insert(UdsConnectInfo {
        peer_addr: None,
        peer_cred: None,
    });
    let caller = access.caller(&request, "Test").unwrap();
    assert!(matches!(caller.identity, Identity::UnixUnknown));
    assert!(!access.may_read(&caller, "anything"));
}

#[test]
fn denials_read_the_same_whether_or_not_the_name_exists() {
    let access = access(vec![client("etl", &[1000], &["db"])]);
    let caller = unix_caller(&access, 1000, 1000);
    let message = access
        .denied(&caller, Target::Definition("no-such"))
        .to_string();
    assert_eq!(
        message,
        "the caller with uid 1000 and gid 1000 (pid 7) may not read definition `no-such`"
    );
}

fn token_client(name: &str, file: &std::path::Path) -> ClientConfig {
    ClientConfig {
        tokens: vec![TokenSource::File(file.to_path_buf())],
        ..client(name, &[], &["*"])
    }
}

fn tcp_request(token: Option<&str>) -> Request<()> {
    let mut request = Request::new(());
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

#[test]
fn tcp_callers_are_known_by_their_token_and_refused_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etl.token");
    std::fs::write(&file, "s3cr3t-token\n").unwrap();
    let access = access(vec![token_client("etl", &file)]);
    let caller = access
        .caller(&tcp_request(Some("s3cr3t-token")), "Test")
        .unwrap();
    assert!(matches!(&caller.identity, Identity::Token { client, .. } if &**client == "etl"));
    assert!(access.may_read(&caller, "x"));
    assert!(matches!(
        access.caller(&tcp_request(None), "Test"),
        Err(AccessError::NoToken)
    ));
    let wrong = access
        .caller(&tcp_request(Some("s3cr3t-tokem")), "Test")
        .unwrap_err();
    assert!(matches!(wrong, AccessError::UnknownToken));
    assert!(!wrong.to_string().contains("s3cr3t"));
}

#[test]
fn a_rotated_token_file_is_taken_and_the_old_token_stops_working() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etl.token");
    std::fs::write(&file, "first-token").unwrap();
    let access = access(vec![token_client("etl", &file)]);
    assert!(
        access
            .caller(&tcp_request(Some("first-token")), "Test")
            .is_ok()
    );
    // A new file swapped in, as a Secret volume or `mv` does it: a new inode.
    let next = dir.path().join("etl.token.next");
    std::fs::write(&next, "second-token").unwrap();
    std::fs::rename(&next, &file).unwrap();
    access.tokens.reload_changed();
    assert!(
        access
            .caller(&tcp_request(Some("second-token")), "Test")
            .is_ok()
    );
    assert!(
        access
            .caller(&tcp_request(Some("first-token")), "Test")
            .is_err()
    );
    // An unreadable file keeps the last token rather than locking everyone out.
    std::fs::remove_file(&file).unwrap();
    access.tokens.reload_changed();
    assert!(
        access
            .caller(&tcp_request(Some("second-token")), "Test")
            .is_ok()
    );
}

#[test]
fn two_clients_may_not_share_a_token_and_the_error_does_not_show_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, "same-token").unwrap();
    std::fs::write(&b, "same-token\n").unwrap();
    let config = ClientsConfig {
        clients: Some(vec![token_client("a", &a), token_client("b", &b)]),
        audit: AuditConfig {
            sink: AuditSink::Off,
            file: None,
        },
        rate_limit: None,
    };
    let err = Access::new(&config, &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("clients `a` and `b` have the same token"),
        "{err}"
    );
    assert!(!err.contains("same-token"), "{err}");
}

#[test]
fn missing_and_empty_tokens_are_refused_at_start_by_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, " \n").unwrap();
    for (source, expected) in [
        (
            TokenSource::File(dir.path().join("missing")),
            "client `c`: cannot read its token from file",
        ),
        (TokenSource::File(empty), "client `c`: its token from file"),
        (
            TokenSource::Env("VB_TOKEN_NEVER_SET".into()),
            "client `c`: cannot read its token from environment variable `VB_TOKEN_NEVER_SET`: it is not set",
        ),
    ] {
        let config = ClientsConfig {
            clients: Some(vec![ClientConfig {
                tokens: vec![source],
                ..client("c", &[], &["*"])
            }]),
            audit: AuditConfig {
                sink: AuditSink::Off,
                file: None,
            },
            rate_limit: None,
        };
        let err = Access::new(&config, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn a_token_from_a_variable_identifies_its_client() {
    let vars = BTreeMap::from([("ETL_TOKEN".to_owned(), "from-env\n".to_owned())]);
    let config = ClientsConfig {
        clients: Some(vec![ClientConfig {
            tokens: vec![TokenSource::Env("ETL_TOKEN".into())],
            ..client("etl", &[], &["*"])
        }]),
        audit: AuditConfig {
            sink: AuditSink::Off,
            file: None,
        },
        rate_limit: None,
    };
    let access = Access::new(&config, &vars).unwrap().unwrap();
    assert!(
        access
            .caller(&tcp_request(Some("from-env")), "Test")
            .is_ok()
    );
}

#[tokio::test]
async fn audit_lines_name_caller_target_and_outcome_and_never_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let config = ClientsConfig {
        clients: Some(vec![client("etl", &[1000], &["db"])]),
        audit: AuditConfig {
            sink: AuditSink::File,
            file: Some(path.clone()),
        },
        rate_limit: None,
    };
    let access = Access::new(&config, &BTreeMap::new()).unwrap().unwrap();
    let caller = unix_caller(&access, 1000, 1000);
    access.record(
        &caller,
        "Resolve",
        Target::Definition("db"),
        tonic::Code::Ok,
        Some("hit"),
    );
    access.record(
        &caller,
        "GetCredentials",
        Target::Connection("main"),
        tonic::Code::PermissionDenied,
        None,
    );
    access.flush().await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["caller"]["kind"], "unix");
    assert_eq!(lines[0]["caller"]["uid"], 1000);
    assert_eq!(lines[0]["caller"]["pid"], 7);
    assert_eq!(lines[0]["clients"][0], "etl");
    assert_eq!(lines[0]["rpc"], "Resolve");
    assert_eq!(lines[0]["definition"], "db");
    assert_eq!(lines[0]["code"], "OK");
    assert_eq!(lines[0]["cache"], "hit");
    assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(lines[1]["jira_connection"], "main");
    assert_eq!(lines[1]["code"], "PERMISSION_DENIED");
    assert!(lines[1].get("definition").is_none());
}

#[test]
fn an_audit_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    std::fs::write(&path, "").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = ClientsConfig {
        clients: None,
        audit: AuditConfig {
            sink: AuditSink::File,
            file: Some(path),
        },
        rate_limit: None,
    };
    let err = Access::new(&config, &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("mode 0644"), "{err}");
}

#[test]
fn a_caller_over_its_rate_limit_is_refused_and_others_are_not() {
    use std::num::NonZeroU32;
    let limit = |n| crate::config::RateLimit {
        per_second: NonZeroU32::new(1).unwrap(),
        burst: NonZeroU32::new(n).unwrap(),
    };
    let mut generous = client("generous", &[2000], &["*"]);
    generous.rate_limit = Some(limit(5));
    let config = ClientsConfig {
        clients: Some(vec![client("etl", &[1000], &["*"]), generous]),
        audit: AuditConfig {
            sink: AuditSink::Off,
            file: None,
        },
        rate_limit: Some(limit(2)),
    };
    let access = Access::new(&config, &BTreeMap::new()).unwrap().unwrap();
    let admit = |uid| {
        let identity = Identity::Unix {
            uid,
            gid: uid,
            pid: None,
        };
        let clients = access.clients_of(&identity);
        access.limits.admit(&identity, clients.as_deref())
    };
    // Two at once for the default, the third refused; another caller has its own bucket.
    assert!(admit(1000).is_ok() && admit(1000).is_ok());
    let refused = admit(1000).unwrap_err();
    assert_eq!(refused.limit.burst.get(), 2);
    assert!(refused.retry_after > std::time::Duration::ZERO);
    assert!(admit(1001).is_ok());
    // A client with a limit of its own gets that one.
    for _ in 0..5 {
        assert!(admit(2000).is_ok());
    }
    assert!(admit(2000).is_err());
}

#[test]
fn audit_strings_are_escaped_as_json_wants() {
    let mut out = Vec::new();
    super::audit::string(&mut out, "a\"b\\c\nd\u{1}é");
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text, r#""a\"b\\c\nd\u0001é""#);
    let back: String = serde_json::from_str(&text).unwrap();
    assert_eq!(back, "a\"b\\c\nd\u{1}é");
}

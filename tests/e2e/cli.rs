use crate::harness::{BINARY, ChildGuard, Setup, is_serving, run_cli, wait_until};
use std::process::{Command, Stdio};
use std::time::Duration;
use vaultbridge::client::Address;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn get_prints_the_value_with_no_newline_unless_asked() {
    let daemon = Setup::new().env("VB_E2E_TOKEN", " env-cli-token\n").start();
    let socket = daemon.socket();
    let addr = socket.to_str().unwrap();
    let (code, stdout, stderr) = run_cli(&["get", "jira-api-token", "--addr", addr], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, b"ATATT3x-e2e-token-value");
    let (code, stdout, _) = run_cli(
        &["get", "env-token", "--newline"],
        &[("VAULTBRIDGE_ADDR", addr)],
    );
    assert_eq!(code, 0);
    assert_eq!(stdout, b"env-cli-token\n");
}

#[test]
fn get_fails_with_the_error_on_stderr_and_nothing_on_stdout() {
    let daemon = Setup::new().start();
    let addr = format!("unix:{}", daemon.socket().display());
    let (code, stdout, stderr) = run_cli(&["get", "no-such-definition", "--addr", &addr], &[]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("NotFound") && stderr.contains("`no-such-definition`"),
        "{stderr}"
    );

    let missing = daemon.setup.dir.path().join("nobody.sock");
    let (code, stdout, stderr) =
        run_cli(&["get", "plain", "--addr", missing.to_str().unwrap()], &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("cannot reach the daemon"), "{stderr}");
}

#[test]
fn check_validates_and_resolves_printing_a_table_without_values() {
    let setup = Setup::new();
    let config = setup.dir.path().join("config.yaml");
    std::fs::write(&config, setup.config_text()).unwrap();
    let config = config.to_str().unwrap();

    let (code, stdout, stderr) = run_cli(&["check", "--config", config], &[]);
    assert_eq!(code, 0, "{stderr}");
    let table = String::from_utf8(stdout).unwrap();
    assert!(table.starts_with("DEFINITION"), "{table}");
    assert!(
        table.contains("jira-api-token") && table.contains("valid"),
        "{table}"
    );

    let (code, stdout, stderr) = run_cli(
        &["check", "--config", config, "--resolve"],
        &[("VB_E2E_TOKEN", "tok-check-value")],
    );
    assert_eq!(code, 1, "some definitions are meant to fail: {stderr}");
    let table = String::from_utf8(stdout).unwrap();
    let row = |name: &str| {
        table
            .lines()
            .find(|line| line.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"))
            .to_owned()
    };
    assert!(
        row("jira-api-token").ends_with("ok (whitespace trimmed)"),
        "{table}"
    );
    assert!(row("plain").ends_with("ok"), "{table}");
    assert!(row("missing-key").contains("NotFound"), "{table}");
    assert!(row("not-a-map").contains("FailedPrecondition"), "{table}");
    for value in [
        "ATATT3x-e2e-token-value",
        "plain-e2e-value",
        "tok-check-value",
        "e2e-pem-body",
    ] {
        assert!(
            !table.contains(value) && !stderr.contains(value),
            "{value} leaked:\n{table}\n{stderr}"
        );
    }
    assert!(stderr.contains("failed to resolve"), "{stderr}");
}

#[test]
fn an_invalid_config_is_reported_with_file_line_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    std::fs::write(
        &config,
        "server:\n  unix_socket: vb.sock\n  tcp: localhost\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    for command in ["check", "serve"] {
        let (code, _, stderr) = run_cli(&[command, "--config", config], &[]);
        assert_eq!(code, 1, "{command}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "{config}:3:8: server.tcp: expected an IP address and port"
            )),
            "{command}: {stderr}"
        );
    }
}

/// The README's first command, as written, from the repository root: `serve` with no
/// config runs config.example.yaml; `get` then prints values from both backends.
#[test]
fn the_readme_quick_start_serves_the_example_from_file_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("quickstart.sock");
    let socket_text = socket.to_str().unwrap();
    let _daemon = ChildGuard(
        Command::new(BINARY)
            .arg("serve")
            .current_dir(REPO)
            .env("VAULTBRIDGE_SOCKET", socket_text)
            .env("JIRA_API_TOKEN", "quickstart-env-token")
            .env_remove("VAULTBRIDGE_CONFIG")
            .env_remove("VAULTBRIDGE_SECRETS_FILE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let address = Address::Unix(socket.clone());
    wait_until(
        Duration::from_secs(20),
        || is_serving(&address),
        || "the example config did not start serving".to_owned(),
    );
    let env = [("VAULTBRIDGE_SOCKET", socket_text)];
    let (code, stdout, stderr) = run_cli(&["get", "jira-api-token"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout, b"ATATT3xFfGF0-dev-only-token",
        "trimmed, from examples/secrets.dev.yaml"
    );
    let (code, stdout, stderr) = run_cli(&["get", "jira-api-token-env"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, b"quickstart-env-token");
}

#[test]
fn health_exits_0_when_serving_and_3_when_unreachable() {
    let daemon = Setup::new().start();
    let addr = daemon.socket();
    let (code, stdout, stderr) = run_cli(&["health", "--addr", addr.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, b"SERVING\n");
    let gone = daemon.setup.dir.path().join("gone.sock");
    let (code, _, stderr) = run_cli(&["health", "--addr", gone.to_str().unwrap()], &[]);
    assert_eq!(code, 3, "{stderr}");
}

/// `vaultbridge get` over a TCP listener that wants tokens: the token comes from a
/// file, named by `--token-file` or `VAULTBRIDGE_TOKEN_FILE`, never from the command line.
#[test]
fn get_over_tcp_sends_the_token_from_its_file() {
    let mut setup = Setup::new();
    setup.tcp = true;
    std::fs::write(setup.dir.path().join("etl.token"), "cli-e2e-bearer\n").unwrap();
    setup.extra_config =
        "clients:\n  etl:\n    tokens:\n      - file: etl.token\n    definitions: [plain]\n".into();
    let daemon = setup.start();
    let addr = daemon.tcp_address().to_string();
    let token_file = daemon.setup_dir().join("etl.token");
    let token_file = token_file.to_str().unwrap();

    let (code, stdout, stderr) = run_cli(&["get", "plain", "--addr", &addr], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("authorization: Bearer <token>"), "{stderr}");

    let (code, stdout, stderr) = run_cli(
        &["get", "plain", "--addr", &addr, "--token-file", token_file],
        &[],
    );
    assert_eq!(
        (code, stdout.as_slice()),
        (0, &b"plain-e2e-value"[..]),
        "{stderr}"
    );
    let (code, stdout, stderr) = run_cli(
        &["get", "plain", "--addr", &addr],
        &[("VAULTBRIDGE_TOKEN_FILE", token_file)],
    );
    assert_eq!(
        (code, stdout.as_slice()),
        (0, &b"plain-e2e-value"[..]),
        "{stderr}"
    );
    // The token's client reads only what it is granted.
    let (code, _, stderr) = run_cli(
        &["get", "pem", "--addr", &addr, "--token-file", token_file],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("client `etl` may not read definition `pem`"),
        "{stderr}"
    );

    // Credentials that cannot be used are bad usage (2), said before any connection.
    let empty = daemon.setup_dir().join("empty.token");
    std::fs::write(&empty, " \n").unwrap();
    let (code, _, stderr) = run_cli(
        &[
            "get",
            "plain",
            "--addr",
            &addr,
            "--token-file",
            empty.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is empty"), "{stderr}");
    let (code, _, stderr) = run_cli(
        &[
            "get",
            "plain",
            "--addr",
            &addr,
            "--token-file",
            "/nonexistent/token",
        ],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cannot read the token file `/nonexistent/token`"),
        "{stderr}"
    );
    let https = addr.replace("http://", "https://");
    let (code, _, stderr) = run_cli(&["get", "plain", "--addr", &https], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("needs `--tls-ca`"), "{stderr}");

    let output = daemon.output();
    assert!(
        !output.contains("cli-e2e-bearer"),
        "a token reached the log"
    );
}

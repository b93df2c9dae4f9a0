//! The smaller abuse findings, seen from the command line: config errors that quote
//! `${VAR}` as written, socket modes and TCP addresses that expose the daemon, a
//! config with nothing to serve, duplicate keys in a JSON secrets file, and a client
//! that waits forever on a daemon that never answers.

use crate::harness::{Setup, run_cli, set_mode};
use std::time::{Duration, Instant};

/// Writes `text` as a config next to the harness's secrets file and runs `check` on it.
fn check(setup: &Setup, text: &str, extra: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let config = setup.dir.path().join("config.yaml");
    std::fs::write(&config, text).unwrap();
    let mut args = vec!["check", "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = run_cli(&args, env);
    (
        code,
        format!("{}{stderr}", String::from_utf8_lossy(&stdout)),
    )
}

const SECRET: &str = "s3cr3t-in-the-wrong-variable";

#[test]
fn config_errors_quote_a_variable_as_written_never_its_value() {
    let setup = Setup::new();
    for (field, text) in [
        ("cache.ttl", "cache:\n  ttl: \"${S}\"\n"),
        ("cache.max_entries", "cache:\n  max_entries: \"${S}\"\n"),
        (
            "cache.refresh_ahead",
            "cache:\n  refresh_ahead: \"x${S}\"\n",
        ),
    ] {
        let config = setup.config_text().replace("cache:\n  ttl: 10m\n", text);
        let (code, output) = check(&setup, &config, &[], &[("S", SECRET)]);
        assert_eq!(code, 1, "{field}: {output}");
        assert!(output.contains(&format!(" {field}: expected ")), "{output}");
        assert!(output.contains("${S}`"), "{field}: {output}");
        assert!(
            !output.contains(SECRET),
            "{field} printed the value: {output}"
        );
    }
}

#[test]
fn a_socket_mode_for_others_and_tcp_beyond_loopback_without_authentication_are_refused() {
    let setup = Setup::new();
    let config = setup.config_text().replace(
        "  unix_socket: vb.sock\n",
        "  unix_socket: vb.sock\n  unix_socket_mode: \"0666\"\n",
    );
    let (code, output) = check(&setup, &config, &[], &[]);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("server.unix_socket_mode: `0666` lets every local user connect"),
        "{output}"
    );

    let config = setup
        .config_text()
        .replace("  unix_socket: vb.sock\n", "  tcp: 0.0.0.0:50051\n");
    let (code, output) = check(&setup, &config, &[], &[]);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("server.tcp: `0.0.0.0:50051` is reachable from other hosts, and no caller authentication is configured"),
        "{output}"
    );
}

#[test]
fn check_refuses_a_config_with_no_definitions() {
    let setup = Setup::new();
    let config = "server:\n  unix_socket: vb.sock\nbackends:\n  env:\n    type: env\n";
    let (code, output) = check(&setup, config, &[], &[]);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("no definitions"), "{output}");
}

#[test]
fn a_json_secrets_file_with_a_key_written_twice_is_refused_naming_only_the_key() {
    let setup = Setup::new();
    let json = setup.dir.path().join("secrets.json");
    std::fs::write(
        &json,
        r#"{"jira": {"api_token": "old-token-value", "api_token": "new-token-value"}}"#,
    )
    .unwrap();
    set_mode(&json, 0o600);
    let config = "server:\n  unix_socket: vb.sock\nbackends:\n  local:\n    type: file\n    path: secrets.json\ndefinitions:\n  token:\n    backend: local\n    secret: jira\n    key: api_token\n";
    let (code, output) = check(&setup, config, &["--resolve"], &[]);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("key `api_token` of entry `jira` is defined twice"),
        "{output}"
    );
    assert!(
        !output.contains("old-token-value") && !output.contains("new-token-value"),
        "{output}"
    );
}

#[test]
fn get_and_health_give_up_on_a_daemon_that_never_answers() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("mute.sock");
    // Connections complete in the kernel's backlog and are never read.
    let _mute = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let addr = format!("unix:{}", socket.display());
    for command in [
        vec!["get", "plain", "--addr", &addr, "--timeout", "300ms"],
        vec!["health", "--addr", &addr, "--timeout", "300ms"],
    ] {
        let started = Instant::now();
        let (code, stdout, stderr) = run_cli(&command, &[]);
        let took = started.elapsed();
        assert_eq!(code, 3, "{command:?}: {stderr}");
        assert!(stdout.is_empty());
        assert!(
            stderr.contains("no answer from the daemon") && stderr.contains("within 300ms"),
            "{stderr}"
        );
        assert!(took < Duration::from_secs(10), "{command:?} took {took:?}");
    }
    // Without `--timeout`, a default applies.
    for command in ["get", "health"] {
        let (code, stdout, _) = run_cli(&[command, "--help"], &[]);
        assert_eq!(code, 0);
        let help = String::from_utf8(stdout).unwrap();
        assert!(
            help.contains("--timeout") && help.contains("[default: 10s]"),
            "{help}"
        );
    }
}

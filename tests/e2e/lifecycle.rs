use crate::harness::{Setup, spawn_serve, wait_with_timeout};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;
use vaultbridge::proto::v1::ResolveRequest;

#[test]
fn the_socket_is_private_and_removed_on_sigterm_with_exit_0() {
    let mut daemon = Setup::new().start();
    let socket = daemon.socket();
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let status = daemon.terminate();
    assert_eq!(status.code(), Some(0), "{}", daemon.output());
    assert!(!socket.exists(), "the socket file is removed on shutdown");
    assert!(
        daemon.output().contains("shutting down"),
        "{}",
        daemon.output()
    );
}

#[test]
fn a_stale_socket_from_a_crashed_run_is_replaced() {
    let setup = Setup::new();
    // A socket file with nobody listening, as a killed daemon leaves behind.
    drop(std::os::unix::net::UnixListener::bind(setup.socket()).unwrap());
    assert!(setup.socket().exists());
    let daemon = setup.start();
    assert!(
        daemon.output().contains("replacing a stale socket file"),
        "{}",
        daemon.output()
    );
}

#[test]
fn a_live_socket_is_not_taken_over() {
    let first = Setup::new().start();
    let config = first.setup.dir.path().join("config.yaml");
    let second_setup = Setup {
        dir: tempfile::tempdir().unwrap(),
        ..Setup::new()
    };
    let mut second = spawn_serve(&second_setup, &config);
    let status = wait_with_timeout(&mut second, Duration::from_secs(20));
    assert_eq!(status.code(), Some(1));
    let stderr = std::fs::read_to_string(second_setup.dir.path().join("stderr.log")).unwrap();
    assert!(stderr.contains("another process is listening"), "{stderr}");
    // The first daemon still answers.
    assert!(first.socket().exists());
}

#[test]
fn a_file_in_the_sockets_place_is_left_alone() {
    let setup = Setup::new();
    std::fs::write(setup.socket(), "not a socket").unwrap();
    let config = setup.dir.path().join("config.yaml");
    std::fs::write(&config, setup.config_text(None)).unwrap();
    let mut child = spawn_serve(&setup, &config);
    let status = wait_with_timeout(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(setup.socket()).unwrap(),
        "not a socket"
    );
    let stderr = std::fs::read_to_string(setup.dir.path().join("stderr.log")).unwrap();
    assert!(stderr.contains("is not a socket"), "{stderr}");
}

#[test]
fn a_configured_socket_mode_is_applied() {
    let mut setup = Setup::new();
    setup.extra_config = String::new();
    let config = setup.dir.path().join("config.yaml");
    let text = setup.config_text(None).replace(
        "  shutdown_grace: 5s\n",
        "  shutdown_grace: 5s\n  unix_socket_mode: \"0660\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let mut child = spawn_serve(&setup, &config);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !setup.socket().exists() {
        assert!(std::time::Instant::now() < deadline, "no socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(50));
    let mode = std::fs::metadata(setup.socket())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(mode, 0o660);
}

/// A call in flight when SIGTERM arrives still completes. The secrets file is a FIFO,
/// so the daemon's read of it blocks until the test writes: the call is provably in
/// flight across the signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_call_in_flight_then_exits_0() {
    let mut setup = Setup::new();
    setup.extra_config = "  slow:\n    backend: fifo\n    secret: slow\n".into();
    let config = setup.dir.path().join("config.yaml");
    let text = setup.config_text(None).replace(
        "definitions:\n",
        "  fifo:\n    type: file\n    path: slow.yaml\ndefinitions:\n",
    );
    std::fs::write(&config, &text).unwrap();
    let child = spawn_serve(&setup, &config);
    let mut daemon = crate::harness::Daemon {
        setup,
        child: Some(child),
        tcp_port: None,
    };
    // Wait for readiness the same way the harness does, through a resolve.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut client = loop {
        if let Ok(client) = vaultbridge::client::connect(&daemon.unix_address()).await {
            break client;
        }
        assert!(std::time::Instant::now() < deadline, "{}", daemon.output());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let fifo = daemon.setup.dir.path().join("slow.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo failed");

    let in_flight = tokio::spawn(async move {
        client
            .resolve(ResolveRequest {
                name: "slow".into(),
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !in_flight.is_finished(),
        "the call should be waiting on the FIFO"
    );

    crate::harness::signal_term(daemon.child.as_ref().unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        daemon.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the daemon must wait for the call in flight:\n{}",
        daemon.output()
    );
    std::fs::write(&fifo, "slow: \"drained-value\"\n").unwrap();

    let answer = in_flight
        .await
        .unwrap()
        .expect("the in-flight call completes");
    assert_eq!(answer.into_inner().secret.unwrap().value, b"drained-value");
    let status = wait_with_timeout(daemon.child.as_mut().unwrap(), Duration::from_secs(20));
    daemon.child = None;
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sigint_also_stops_the_daemon_cleanly() {
    let mut daemon = Setup::new().start();
    let child = daemon.child.as_mut().unwrap();
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let status = wait_with_timeout(child, Duration::from_secs(20));
    daemon.child = None;
    assert_eq!(status.code(), Some(0), "{}", daemon.output());
    assert!(
        daemon.output().contains("SIGINT received"),
        "{}",
        daemon.output()
    );
    assert!(!daemon.socket().exists());
}

#[test]
fn a_secrets_file_open_to_others_is_warned_about_by_name_only() {
    let setup = Setup::new();
    crate::harness::set_mode(&setup.secrets_file(), 0o644);
    let daemon = setup.start();
    let output = daemon.output();
    let line = output
        .lines()
        .find(|line| line.contains("accessible by group or others"))
        .unwrap_or_else(|| panic!("no permission warning:\n{output}"));
    assert!(
        line.contains("secrets.yaml") && line.contains("0644"),
        "{line}"
    );
    for value in ["ATATT3x-e2e-token-value", "plain-e2e-value", "e2e-pem-body"] {
        assert!(!output.contains(value), "{value} leaked");
    }
}

#[test]
fn a_private_secrets_file_gets_no_permission_warning() {
    let daemon = Setup::new().start();
    assert!(
        !daemon.output().contains("accessible by group or others"),
        "{}",
        daemon.output()
    );
}

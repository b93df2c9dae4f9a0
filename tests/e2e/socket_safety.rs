//! The socket's path cannot be taken over: a directory others may write is refused
//! (or made safe by its sticky bit), shutdown removes only the daemon's own socket, and
//! two daemons started together over a stale socket do not both serve.
//!
//! Another user is `nobody` (uid 65534), reached with `setpriv`: these tests run as
//! root (the CI container's user) and fail loudly otherwise rather than skip.

use crate::harness::{
    BINARY, ChildGuard, SECRETS_YAML, Setup, is_serving, poll_until, set_mode, signal_term,
    spawn_serve, wait_with_timeout,
};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use vaultbridge::client::Address;

fn require_root() {
    assert_eq!(
        rustix::process::geteuid().as_raw(),
        0,
        "these tests act as another user through setpriv, which needs root"
    );
}

/// Runs `args` as `nobody` and tells whether it succeeded.
fn as_nobody(args: &[&str]) -> (bool, String) {
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(args)
        .output()
        .expect("setpriv (util-linux) must be installed");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The harness config with the socket moved into `dir` (relative to the setup).
fn config_with_socket(setup: &Setup, socket: &str) -> String {
    setup
        .config_text()
        .replace("unix_socket: vb.sock", &format!("unix_socket: {socket}"))
}

#[test]
fn a_socket_directory_anyone_may_write_without_the_sticky_bit_is_refused() {
    let setup = Setup::new();
    let shared = setup.dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o777);
    let config = setup.dir.path().join("config.yaml");
    std::fs::write(&config, config_with_socket(&setup, "shared/vb.sock")).unwrap();
    let mut child = spawn_serve(&setup, &config);
    let status = wait_with_timeout(&mut child, Duration::from_secs(20));
    let stderr = std::fs::read_to_string(setup.dir.path().join("stderr.log")).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the socket's directory `{}` can be written by every user (mode 0777) and has no sticky bit",
            shared.display()
        )) && stderr.contains("chmod +t"),
        "{stderr}"
    );
    assert!(!shared.join("vb.sock").exists());
}

#[test]
fn in_a_sticky_directory_another_user_can_neither_move_nor_replace_the_socket() {
    require_root();
    let setup = Setup::new();
    // Others may pass through the test's directory to reach the shared one.
    set_mode(setup.dir.path(), 0o711);
    let shared = setup.dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o1777);
    let config = setup.dir.path().join("config.yaml");
    std::fs::write(&config, config_with_socket(&setup, "shared/vb.sock")).unwrap();
    let socket = shared.join("vb.sock");
    let _daemon = ChildGuard(spawn_serve(&setup, &config));
    let address = Address::Unix(socket.clone());
    assert!(
        poll_until(Duration::from_secs(20), || is_serving(&address)),
        "not serving"
    );
    let inode = std::fs::symlink_metadata(&socket).unwrap().ino();

    let stolen = shared.join("stolen.sock");
    let (moved, why) = as_nobody(&["mv", &socket.to_string_lossy(), &stolen.to_string_lossy()]);
    assert!(!moved, "another user moved the daemon's socket away");
    assert!(why.contains("Operation not permitted"), "{why}");
    let (removed, _) = as_nobody(&["rm", "-f", &socket.to_string_lossy()]);
    assert!(!removed, "another user removed the daemon's socket");
    assert_eq!(std::fs::symlink_metadata(&socket).unwrap().ino(), inode);
    assert!(is_serving(&address));
}

#[test]
fn shutdown_removes_only_the_socket_the_daemon_created() {
    let mut daemon = Setup::new().start();
    let socket = daemon.socket();
    // Someone able to write the directory moves the socket away and serves their own
    // at its path.
    std::fs::rename(&socket, daemon.setup.dir.path().join("moved.sock")).unwrap();
    let impostor = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let inode = std::fs::symlink_metadata(&socket).unwrap().ino();

    let status = daemon.terminate();
    assert_eq!(status.code(), Some(0), "{}", daemon.output());
    let left = std::fs::symlink_metadata(&socket).expect("the impostor's socket is left alone");
    assert_eq!(left.ino(), inode);
    assert!(
        daemon
            .output()
            .contains("the socket path now holds a file this process did not create"),
        "{}",
        daemon.output()
    );
    drop(impostor);
}

/// A config for one of two racing daemons: the shared socket, and a secrets file that
/// is a FIFO, which the daemon reads when it builds its backends, before it binds.
/// Opening the FIFO's other end tells the test the daemon got there; closing it lets
/// it on.
fn racer_config(dir: &Path, name: &str, socket: &Path) -> std::path::PathBuf {
    let fifo = dir.join(format!("{name}.yaml"));
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    set_mode(&fifo, 0o600);
    let config = dir.join(format!("{name}-config.yaml"));
    std::fs::write(
        &config,
        format!(
            "server:\n  unix_socket: {}\n  shutdown_grace: 5s\ncache:\n  warm_up: true\nbackends:\n  local:\n    type: file\n    path: {}\ndefinitions:\n  plain:\n    backend: local\n    secret: plain\n",
            socket.display(),
            fifo.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn two_daemons_started_together_over_a_stale_socket_do_not_both_serve() {
    for round in 0..4 {
        let setup = Setup::new();
        let dir = setup.dir.path();
        let socket = setup.socket();
        // The stale socket a crashed run leaves behind.
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        let configs = [
            racer_config(dir, "a", &socket),
            racer_config(dir, "b", &socket),
        ];
        let mut racers: Vec<ChildGuard> = configs
            .iter()
            .enumerate()
            .map(|(i, config)| {
                let log = std::fs::File::create(dir.join(format!("racer-{i}.log"))).unwrap();
                ChildGuard(
                    Command::new(BINARY)
                        .arg("serve")
                        .arg("--config")
                        .arg(config)
                        .env("NO_COLOR", "1")
                        .env("VAULTBRIDGE_LOG", "info")
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(log)
                        .spawn()
                        .expect("spawn"),
                )
            })
            .collect();
        // Each open returns once its daemon has opened the FIFO: both are then warming
        // up, a step before binding. Both are released at once.
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            for name in ["a", "b"] {
                let (barrier, fifo) = (&barrier, dir.join(format!("{name}.yaml")));
                scope.spawn(move || {
                    use std::io::Write;
                    let mut writer = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&fifo)
                        .expect("open the FIFO");
                    // Later reads (the file changed: its content is re-read) find a
                    // plain file; the daemon's open end still reads the FIFO.
                    let plain = fifo.with_extension("plain");
                    std::fs::write(&plain, SECRETS_YAML).unwrap();
                    set_mode(&plain, 0o600);
                    std::fs::rename(&plain, &fifo).unwrap();
                    barrier.wait();
                    writer.write_all(SECRETS_YAML.as_bytes()).unwrap();
                });
            }
        });

        let logs = || {
            (0..2)
                .map(|i| std::fs::read_to_string(dir.join(format!("racer-{i}.log"))).unwrap())
                .collect::<Vec<_>>()
                .join("\n---\n")
        };
        let mut exited = None;
        let one_exited = poll_until(Duration::from_secs(20), || {
            exited = racers
                .iter_mut()
                .position(|racer| racer.0.try_wait().unwrap().is_some());
            exited.is_some()
        });
        assert!(
            one_exited,
            "round {round}: both daemons stayed up:\n{}",
            logs()
        );
        let loser = exited.unwrap();
        let status = racers[loser].0.wait().unwrap();
        assert_eq!(status.code(), Some(1), "round {round}:\n{}", logs());
        let loser_log = std::fs::read_to_string(dir.join(format!("racer-{loser}.log"))).unwrap();
        assert!(
            loser_log.contains("another vaultbridge is serving or starting on socket")
                && loser_log.contains("vb.sock.lock"),
            "round {round}: the loser must stop at the lock:\n{}",
            logs()
        );
        // The winner serves on a socket the loser did not unlink.
        let address = Address::Unix(socket.clone());
        assert!(
            poll_until(Duration::from_secs(20), || is_serving(&address)),
            "round {round}: the winner is not serving:\n{}",
            logs()
        );
        let winner = &mut racers[1 - loser];
        assert!(winner.0.try_wait().unwrap().is_none());
        signal_term(&winner.0);
        let status = wait_with_timeout(&mut winner.0, Duration::from_secs(20));
        assert_eq!(status.code(), Some(0), "round {round}:\n{}", logs());
        assert!(
            !socket.exists(),
            "round {round}: the winner removes its socket"
        );
    }
}

/// `vaultbridge get` as `uid:gid` (no supplementary groups): its exit code and stderr.
fn get_as(uid: u32, gid: u32, socket: &Path) -> (i32, String) {
    let output = Command::new("setpriv")
        .args([
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--clear-groups".to_owned(),
            "--".to_owned(),
        ])
        .arg(BINARY)
        .args(["get", "plain", "--addr"])
        .arg(socket)
        .env_remove("VAULTBRIDGE_ADDR")
        .output()
        .expect("setpriv (util-linux) runs the CLI as another user");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_root_daemon_gives_its_socket_to_the_configured_owner_and_group() {
    require_root();
    let setup = Setup::new();
    // Anyone may reach the socket through its directory; the socket decides.
    set_mode(setup.dir.path(), 0o755);
    let config = setup.config_text().replace(
        "  unix_socket: vb.sock\n",
        "  unix_socket: vb.sock\n  unix_socket_mode: \"0660\"\n  unix_socket_owner: nobody\n  unix_socket_group: \"4242\"\n",
    );
    let daemon = setup.start_with_config(&config);
    let meta = std::fs::symlink_metadata(daemon.socket()).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (65534, 4242, 0o660)
    );

    // The owner, a member of the group, and someone who is neither.
    let (code, stderr) = get_as(65534, 0, &daemon.socket());
    assert_eq!(code, 0, "the socket's owner: {stderr}");
    let (code, stderr) = get_as(65533, 4242, &daemon.socket());
    assert_eq!(code, 0, "the socket's group: {stderr}");
    let (code, stderr) = get_as(65533, 0, &daemon.socket());
    assert_ne!(code, 0, "neither owner nor group");
    assert!(stderr.contains("ermission denied"), "{stderr}");
}

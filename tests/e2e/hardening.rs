//! The hardened process, checked from outside: the real daemon runs as `nobody`, and
//! another process of that same user tries what the kernel would let it do to a
//! dumpable process.

use crate::harness::{BINARY, ChildGuard, Setup, is_serving, wait_until};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use vaultbridge::client::Address;

const NOBODY: u32 = 65534;

/// `setpriv` running `program` as `nobody`, with no supplementary groups.
fn as_nobody(program: &str) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program);
    command
}

fn proc_owner(pid: u32) -> u32 {
    std::fs::metadata(format!("/proc/{pid}/environ"))
        .map(|meta| meta.uid())
        .unwrap_or(u32::MAX)
}

/// `cat /proc/PID/environ` as `nobody`: the environment when the kernel allows it.
fn read_environ_as_nobody(pid: u32) -> Result<Vec<u8>, String> {
    let output = as_nobody("cat")
        .arg(format!("/proc/{pid}/environ"))
        .output()
        .expect("setpriv (util-linux) runs cat as nobody");
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[test]
fn the_daemon_is_not_dumpable_so_its_own_user_cannot_read_its_environment() {
    let setup = Setup::new().env("VB_E2E_TOKEN", "env-e2e-marker-in-environ");
    let dir = setup.dir.path();
    assert_eq!(
        std::fs::metadata(dir).unwrap().uid(),
        0,
        "this test starts the daemon as another user and needs root, as CI runs"
    );
    // The daemon, as `nobody`, owns its directory (to create its socket) and its file.
    for path in [dir, &setup.secrets_file()] {
        std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let config = dir.join("config.yaml");
    std::fs::write(&config, setup.config_text()).unwrap();

    // The control: an ordinary process of the same user, alive until its stdin closes.
    let control = ChildGuard(
        as_nobody("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("setpriv runs cat as nobody"),
    );
    let control_pid = control.0.id();
    wait_until(
        Duration::from_secs(20),
        || proc_owner(control_pid) == NOBODY,
        || "the control process never ran as nobody".into(),
    );

    let daemon = ChildGuard(spawn_daemon_as_nobody(&setup, &config));
    let pid = daemon.0.id();
    let output = || {
        ["stdout.log", "stderr.log"]
            .map(|name| std::fs::read_to_string(dir.join(name)).unwrap_or_default())
            .concat()
    };
    wait_until(
        Duration::from_secs(20),
        || is_serving(&Address::Unix(setup.socket())),
        || format!("the daemon was not SERVING:\n{}", output()),
    );
    assert!(
        output().contains("core dumps and ptrace by other processes are off"),
        "{}",
        output()
    );

    // A dumpable process's /proc files belong to its user, who may read them.
    let environ = read_environ_as_nobody(control_pid).expect("the control's own user");
    assert!(!environ.is_empty());
    // The daemon's belong to root, and the same user is refused, as ptrace would be.
    assert_eq!(
        proc_owner(pid),
        0,
        "the daemon's /proc files are not root's"
    );
    let refused = read_environ_as_nobody(pid).expect_err("read the daemon's environment");
    assert!(refused.contains("Permission denied"), "{refused}");
}

fn spawn_daemon_as_nobody(setup: &Setup, config: &Path) -> std::process::Child {
    let dir = setup.dir.path();
    let stdout = std::fs::File::create(dir.join("stdout.log")).unwrap();
    let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
    let mut command = as_nobody(BINARY);
    command
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env_remove("VAULTBRIDGE_CONFIG")
        .env("VAULTBRIDGE_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    for (name, value) in &setup.env {
        command.env(name, value);
    }
    command.spawn().expect("setpriv runs the daemon as nobody")
}

//! The `pass` example plugin (examples/plugins/pass, Python and grpcio) behind the real
//! daemon and under `vaultbridge plugin check`, on a throwaway GnuPG key and password
//! store. `pass` and `gpg` missing is a failure naming the packages, never a skip.

use crate::harness::{ChildGuard, Setup, run_cli, wait_until};
use crate::python::python;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const PLUGIN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/plugins/pass");

/// A GnuPG home with a key without passphrase, and a password store for it.
struct PassStore {
    dir: tempfile::TempDir,
}

impl PassStore {
    fn new() -> Self {
        for (program, package) in [("pass", "pass"), ("gpg", "gnupg")] {
            let found = Command::new(program)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            assert!(
                found,
                "`{program}` is not installed: the pass plugin tests need the Debian package \
                 `{package}` (with `pass` and `gnupg`; scripts/test installs them when it can)"
            );
        }
        let store = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        std::fs::create_dir(store.gnupg()).expect("GNUPGHOME");
        crate::harness::set_mode(&store.gnupg(), 0o700);
        store.run(
            "gpg",
            &[
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--quick-gen-key",
                "vaultbridge e2e <vb-e2e@invalid>",
                "default",
                "default",
                "never",
            ],
            b"",
        );
        store.run("pass", &["init", "vb-e2e@invalid"], b"");
        store
    }

    fn gnupg(&self) -> PathBuf {
        self.dir.path().join("gnupg")
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn env(&self) -> [(&'static str, String); 2] {
        [
            ("GNUPGHOME", self.gnupg().display().to_string()),
            ("PASSWORD_STORE_DIR", self.store().display().to_string()),
        ]
    }

    fn run(&self, program: &str, args: &[&str], input: &[u8]) {
        let mut child = Command::new(program)
            .args(args)
            .envs(self.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("run {program}: {err}"));
        child.stdin.take().unwrap().write_all(input).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn insert(&self, name: &str, value: &[u8]) {
        self.run("pass", &["insert", "--multiline", "--force", name], value);
    }

    /// Starts the plugin by hand, as someone else would run it.
    fn start_plugin(&self, socket: &Path) -> ChildGuard {
        ChildGuard(
            Command::new(python())
                .arg(format!("{PLUGIN_DIR}/plugin.py"))
                .arg("--socket")
                .arg(socket)
                .envs(self.env())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the pass plugin"),
        )
    }
}

fn config(store: &PassStore) -> String {
    let [(_, gnupg), (_, dir)] = store.env();
    format!(
        r#"server:
  unix_socket: vb.sock
cache:
  ttl: 10m
backends:
  pass:
    type: plugin
    command: ["{python}", "{PLUGIN_DIR}/plugin.py"]
    env:
      GNUPGHOME: "{gnupg}"
      PASSWORD_STORE_DIR: "{dir}"
definitions:
  jira-token:
    backend: pass
    secret: jira/api-token
  jira-email:
    backend: pass
    secret: jira/bundle
    key: email
  after-restart:
    backend: pass
    secret: jira/after-restart
  absent:
    backend: pass
    secret: jira/absent
"#,
        python = python().display()
    )
}

/// The plugin's pid from its `serving on ... (pid N)` lines in the daemon's output.
fn plugin_pids(output: &str) -> Vec<i32> {
    output
        .lines()
        .filter(|line| line.contains("vaultbridge-pass: INFO serving on"))
        .filter_map(|line| {
            line.rsplit("(pid ")
                .next()?
                .trim_end_matches(')')
                .parse()
                .ok()
        })
        .collect()
}

fn is_gone(pid: i32) -> bool {
    // A zombie (exited, not yet reaped by whoever adopted it) is gone as well.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(") ")
            .next()
            .is_some_and(|rest| rest.starts_with('Z')),
    }
}

#[tokio::test]
async fn pass_entries_resolve_through_the_daemon_and_survive_a_plugin_crash() {
    let store = PassStore::new();
    store.insert("jira/api-token", b"ATATT-pass-e2e-token\n");
    store.insert(
        "jira/bundle",
        br#"{"email": "pass-e2e@example.com", "token": "bundle-e2e-token"}"#,
    );
    store.insert("jira/after-restart", b"after-restart-e2e-value");
    let mut daemon = Setup::new().start_with_config(&config(&store));
    // The daemon serves before its plugin does; until then the plugin's secrets are
    // temporarily unavailable.
    daemon.wait_for_output("plugin ready");

    let token = daemon.resolve("jira-token").await.expect("jira-token");
    assert_eq!(token.value, b"ATATT-pass-e2e-token", "trimmed by default");
    assert_eq!(token.backend, "pass");
    let email = daemon.resolve("jira-email").await.expect("jira-email");
    assert_eq!(email.value, b"pass-e2e@example.com");
    let absent = daemon.resolve("absent").await.expect_err("absent");
    assert_eq!(absent.code(), tonic::Code::NotFound, "{absent:?}");
    assert!(absent.message().contains("jira/absent"), "{absent:?}");

    // The plugin dies: the daemon starts a new one and configures it.
    let first = plugin_pids(&daemon.output());
    assert_eq!(first.len(), 1, "one plugin started:\n{}", daemon.output());
    let pid = rustix::process::Pid::from_raw(first[0]).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    wait_until(
        Duration::from_secs(20),
        || plugin_pids(&daemon.output()).len() == 2,
        || format!("the plugin was not restarted:\n{}", daemon.output()),
    );
    let after = crate::harness::wait_until_async(
        Duration::from_secs(20),
        async || daemon.resolve("after-restart").await.ok(),
        || "the restarted plugin did not serve".to_owned(),
    )
    .await;
    assert_eq!(after.value, b"after-restart-e2e-value");

    // Shutdown stops the plugin with SIGTERM and waits for it: it is gone the moment
    // the daemon has exited, after shutting down cleanly (its own last line). And no
    // value was ever logged by the daemon or the plugin.
    let restarted = plugin_pids(&daemon.output())[1];
    assert!(daemon.terminate().success());
    assert!(
        is_gone(restarted),
        "the plugin outlived the daemon:\n{}",
        daemon.output()
    );
    let output = daemon.output();
    assert!(
        output.contains("vaultbridge-pass: INFO stopped"),
        "the plugin did not stop cleanly on SIGTERM:\n{output}"
    );
    for value in ["ATATT-pass", "pass-e2e@", "bundle-e2e", "after-restart-e2e"] {
        assert!(!output.contains(value), "a value was logged:\n{output}");
    }
}

/// A daemon killed outright cannot stop its plugin; the plugin sees the lifeline on its
/// stdin close and exits by itself.
#[test]
fn a_plugin_exits_when_its_daemon_is_killed() {
    let store = PassStore::new();
    let mut daemon = Setup::new().start_with_config(&config(&store));
    daemon.wait_for_output("plugin ready");
    let pid = plugin_pids(&daemon.output())[0];
    let mut child = daemon.child.take().expect("running");
    child.kill().expect("SIGKILL the daemon");
    child.wait().expect("reaped");
    wait_until(
        Duration::from_secs(20),
        || is_gone(pid),
        || {
            format!(
                "the plugin outlived its killed daemon:\n{}",
                daemon.output()
            )
        },
    );
    assert!(
        daemon
            .output()
            .contains("vaultbridge is gone (its lifeline closed); stopping"),
        "{}",
        daemon.output()
    );
}

#[test]
fn plugin_check_passes_against_the_pass_example_and_fails_a_lying_fixture() {
    let store = PassStore::new();
    let socket = store.dir.path().join("pass.sock");
    let _plugin = store.start_plugin(&socket);
    let env = store.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let fixture = format!("{PLUGIN_DIR}/fixture.sh");
    let socket_arg = socket.display().to_string();
    let (code, stdout, stderr) = run_cli(
        &[
            "plugin",
            "check",
            "--socket",
            &socket_arg,
            "--fixture",
            &fixture,
        ],
        &env,
    );
    let stdout = String::from_utf8_lossy(&stdout);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert_eq!(stdout.matches("pass  ").count(), 15, "{stdout}");
    for case in [
        "found",
        "binary_safe_value",
        "an_unreachable_service_is_unavailable_and_temporary",
    ] {
        assert!(stdout.contains(&format!("pass  {case}\n")), "{stdout}");
    }

    // A fixture that stores something else than it is given: the check must notice.
    let lying = store.dir.path().join("lying-fixture.sh");
    std::fs::write(
        &lying,
        format!(
            "#!/bin/sh\nif [ \"$1\" = put ]; then {{ cat; printf ' '; }} | {fixture} put \"$2\"; \
             else exec {fixture} \"$@\"; fi\n"
        ),
    )
    .unwrap();
    crate::harness::set_mode(&lying, 0o755);
    let lying_arg = lying.display().to_string();
    let (code, stdout, _) = run_cli(
        &[
            "plugin",
            "check",
            "--socket",
            &socket_arg,
            "--fixture",
            &lying_arg,
        ],
        &env,
    );
    let stdout = String::from_utf8_lossy(&stdout);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAIL  found:"), "{stdout}");
    assert!(
        stdout.contains("FAIL  trailing_whitespace_kept:"),
        "{stdout}"
    );
}

#[test]
fn plugin_check_without_a_fixture_checks_the_connection_and_says_what_it_did_not_run() {
    let store = PassStore::new();
    let socket = store.dir.path().join("pass.sock");
    let socket_arg = socket.display().to_string();
    let (code, stdout, _) = run_cli(&["plugin", "check", "--socket", &socket_arg], &[]);
    let stdout = String::from_utf8_lossy(&stdout);
    assert_eq!(code, 1, "nothing listens yet: {stdout}");
    assert!(
        stdout.contains("FAIL  the plugin answers SERVING"),
        "{stdout}"
    );

    let _plugin = store.start_plugin(&socket);
    let (code, stdout, _) = run_cli(&["plugin", "check", "--socket", &socket_arg], &[]);
    let stdout = String::from_utf8_lossy(&stdout);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("pass  an absent secret is a permanent not-found"),
        "{stdout}"
    );
    assert!(
        stdout.contains("not run: the 14 conformance cases"),
        "{stdout}"
    );
}

/// The stubs checked in under examples/plugins/pass/gen are what grpcio-tools makes of
/// the proto today.
#[test]
fn the_checked_in_python_stubs_match_the_proto() {
    let out = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let status = Command::new(python())
        .args(["-m", "grpc_tools.protoc"])
        .arg(format!("-I{root}/proto"))
        .arg(format!("--python_out={}", out.path().display()))
        .arg(format!("--grpc_python_out={}", out.path().display()))
        .arg(format!("{root}/proto/vaultbridge/plugin/v1/backend.proto"))
        .status()
        .expect("run grpc_tools.protoc");
    assert!(status.success());
    for file in ["backend_pb2.py", "backend_pb2_grpc.py"] {
        let fresh = std::fs::read(out.path().join("vaultbridge/plugin/v1").join(file)).unwrap();
        let checked_in =
            std::fs::read(format!("{PLUGIN_DIR}/gen/vaultbridge/plugin/v1/{file}")).unwrap();
        assert!(
            fresh == checked_in,
            "examples/plugins/pass/gen/vaultbridge/plugin/v1/{file} is stale: regenerate it \
             (see examples/plugins/pass/README.md)"
        );
    }
}

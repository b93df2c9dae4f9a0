//! Reloading the config of a running daemon: SIGHUP and `vaultbridge reload` under
//! load from 20 clients, and `serve --watch-config` following a ConfigMap-style
//! `..data` symlink swap. Each step waits for the reload's answer (the CLI's exit) or
//! its log line, never for time to pass.

use crate::harness::{Daemon, Setup, resolve, run_cli, wait_until};
use crate::metrics::Scrape;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tonic::Code;

const SECRETS: &str =
    "a: \"value-a\"\nb: \"value-b\"\nc: \"value-c\"\nold: \"old-secret\"\nnew: \"new-secret\"\n";

/// The config before any reload; each step edits one thing in it.
fn config(definitions: &str, extra_server: &str, steady_extra: &str) -> String {
    format!(
        r#"server:
  unix_socket: vb.sock
  shutdown_grace: 5s
  metrics:
    address: 127.0.0.1:0
{extra_server}cache:
  ttl: 10m
backends:
  files:
    type: file
    path: secrets.yaml
  steady:
    type: file
    path: steady.yaml
    # The daemon must not notice the file change on its own: only a backend call reads it.
    change_check_interval: 1h
{steady_extra}definitions:
  stable-a: {{backend: files, secret: a}}
  stable-b: {{backend: files, secret: b}}
  kept: {{backend: steady, secret: token}}
{definitions}"#
    )
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    crate::harness::set_mode(&path, 0o600);
}

fn hangup(daemon: &Daemon) {
    let pid = daemon.child.as_ref().unwrap().id();
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
}

/// Runs `vaultbridge reload` against the daemon: (exit code, stdout, stderr).
async fn reload_cli(daemon: &Daemon) -> (i32, String, String) {
    let address = format!("unix:{}", daemon.socket().display());
    tokio::task::spawn_blocking(move || {
        let (code, stdout, stderr) = run_cli(&["reload", "--addr", &address], &[]);
        (code, String::from_utf8(stdout).unwrap(), stderr)
    })
    .await
    .unwrap()
}

/// Waits for the log line of reload `generation`, or of the `rejected`-th rejection.
fn wait_for_log(daemon: &Daemon, what: &str, count: usize) {
    wait_until(
        Duration::from_secs(20),
        || daemon.output().matches(what).count() >= count,
        || format!("no {count} × `{what}` in the log:\n{}", daemon.output()),
    );
}

async fn value(daemon: &Daemon, name: &str) -> Result<String, tonic::Status> {
    daemon
        .resolve(name)
        .await
        .map(|mut secret| std::mem::take(&mut secret.text).unwrap_or_default())
}

#[derive(Default)]
struct Load {
    calls: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_never_fail_a_call_for_a_definition_in_both_configs() {
    let setup = Setup::new();
    let dir = setup.dir.path().to_path_buf();
    write(&dir, "secrets.yaml", SECRETS);
    write(&dir, "steady.yaml", "token: \"steady-v1\"\n");
    let both = "  moving: {backend: files, secret: old}\n";
    let daemon = setup.start_with_config(&config(
        &format!("{both}  doomed: {{backend: files, secret: c}}\n"),
        "",
        "",
    ));
    let metrics = daemon.metrics_address();
    assert_eq!(value(&daemon, "kept").await.unwrap(), "steady-v1");
    // Only a backend call could see this now; a kept cache entry never makes one.
    write(&dir, "steady.yaml", "token: \"steady-v2\"\n");

    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Load::default());
    let mut clients = Vec::new();
    for client in 0..20 {
        let mut connection = daemon.client().await;
        let (stop, load) = (stop.clone(), load.clone());
        clients.push(tokio::spawn(async move {
            let names = ["stable-a", "stable-b", "kept", "moving"];
            let mut turn = client;
            while !stop.load(Ordering::Relaxed) {
                let name = names[turn % names.len()];
                turn += 1;
                match resolve(&mut connection, name).await {
                    Ok(_) => {}
                    Err(status) => load
                        .failures
                        .lock()
                        .unwrap()
                        .push(format!("{name}: {status:?}")),
                }
                load.calls.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let calls_by = |at_least: u64| {
        let load = load.clone();
        move || load.calls.load(Ordering::Relaxed) >= at_least
    };
    wait_until(Duration::from_secs(20), calls_by(200), || {
        "the clients made no calls".into()
    });

    // 1. SIGHUP: a definition added.
    let mut definitions = format!(
        "{both}  doomed: {{backend: files, secret: c}}\n  added: {{backend: files, secret: c}}\n"
    );
    write(&dir, "config.yaml", &config(&definitions, "", ""));
    hangup(&daemon);
    wait_for_log(&daemon, "config reloaded", 1);
    assert!(daemon.output().contains("generation=1 definitions_added=1"));
    assert_eq!(value(&daemon, "added").await.unwrap(), "value-c");

    // 2. `vaultbridge reload`: a definition removed.
    definitions = definitions.replace("  doomed: {backend: files, secret: c}\n", "");
    write(&dir, "config.yaml", &config(&definitions, "", ""));
    let (code, stdout, stderr) = reload_cli(&daemon).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("(generation 2)") && stdout.contains("1 removed"),
        "{stdout}"
    );
    assert_eq!(
        value(&daemon, "doomed").await.unwrap_err().code(),
        Code::NotFound
    );

    // 3. `vaultbridge reload`: a definition changed to another secret.
    assert_eq!(value(&daemon, "moving").await.unwrap(), "old-secret");
    definitions = definitions.replace("secret: old}", "secret: new}");
    write(&dir, "config.yaml", &config(&definitions, "", ""));
    let (code, stdout, stderr) = reload_cli(&daemon).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("1 changed"), "{stdout}");
    assert_eq!(value(&daemon, "moving").await.unwrap(), "new-secret");

    // 4. `vaultbridge reload` of an invalid config: rejected with every problem and its
    // place, and the previous config keeps serving.
    let invalid = definitions.clone() + "  broken: {backend: nowhere, secret: a, ttl: soon}\n";
    let invalid = config(&invalid, "", "");
    let line = invalid
        .lines()
        .position(|line| line.contains("broken"))
        .unwrap()
        + 1;
    write(&dir, "config.yaml", &invalid);
    let (code, _, stderr) = reload_cli(&daemon).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("keeps serving the previous one")
            && stderr.contains(&format!("config.yaml:{line}:"))
            && stderr.contains("definitions.broken.backend: no backend named `nowhere`")
            && stderr.contains("definitions.broken.ttl: expected a duration"),
        "{stderr}"
    );
    let log = daemon.output();
    assert!(
        log.contains("config reload rejected: ") && log.contains("definitions.broken.backend"),
        "{log}"
    );
    assert_eq!(value(&daemon, "moving").await.unwrap(), "new-secret");
    assert_eq!(value(&daemon, "added").await.unwrap(), "value-c");
    assert_eq!(
        value(&daemon, "broken").await.unwrap_err().code(),
        Code::NotFound
    );

    // 5. SIGHUP: new breaker settings for the kept definition's backend, a description,
    // and a listener setting, which needs a restart and is not applied.
    let described =
        definitions.clone() + "  described: {backend: steady, secret: token, description: new}\n";
    write(
        &dir,
        "config.yaml",
        &config(
            &described,
            "  max_connections: 99\n",
            "    breaker_failures: 9\n",
        ),
    );
    hangup(&daemon);
    wait_for_log(&daemon, "config reloaded", 4);
    let log = daemon.output();
    assert!(log.contains("generation=4"), "{log}");
    assert!(
        log.contains("`server.max_connections` changed;") && log.contains("takes a restart"),
        "{log}"
    );

    let after = load.calls.load(Ordering::Relaxed) + 100;
    wait_until(Duration::from_secs(20), calls_by(after), || {
        "the clients stopped calling".into()
    });
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let failures = load.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} of {} calls failed: {:?}",
        failures.len(),
        load.calls.load(Ordering::Relaxed),
        &failures[..failures.len().min(5)]
    );

    // The kept definition still serves the value read before the file changed, from
    // the one backend call made at the start.
    assert_eq!(value(&daemon, "kept").await.unwrap(), "steady-v1");
    assert_eq!(value(&daemon, "described").await.unwrap(), "steady-v2");
    let scrape = tokio::task::spawn_blocking(move || Scrape::of(metrics))
        .await
        .unwrap();
    let steady_fetches = [
        ("backend", "steady"),
        ("operation", "fetch"),
        ("outcome", "ok"),
    ];
    assert_eq!(
        scrape.value("vaultbridge_backend_calls_total", &steady_fetches),
        2.0,
        "one call for `kept` at the start, one for the new `described`"
    );
    let reloads =
        |outcome| scrape.value("vaultbridge_config_reloads_total", &[("outcome", outcome)]);
    assert_eq!(reloads("success"), 4.0);
    assert_eq!(reloads("failure"), 1.0);
}

/// A Kubernetes ConfigMap volume: `config.yaml -> ..data/config.yaml`, `..data ->
/// ..<timestamp>`, and an update swaps `..data` by renaming a new symlink over it.
fn configmap_version(volume: &Path, version: &str, text: &str) {
    let dir = volume.join(format!("..{version}"));
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("config.yaml"), text).unwrap();
    let staged = volume.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &staged).unwrap();
    std::fs::rename(&staged, volume.join("..data")).unwrap();
}

#[tokio::test]
async fn watch_config_follows_a_configmap_symlink_swap() {
    let mut setup = Setup::new();
    setup.serve_args.push("--watch-config".into());
    let dir = setup.dir.path().to_path_buf();
    let volume = dir.join("configmap");
    std::fs::create_dir(&volume).unwrap();
    let text = |definitions: &str| {
        format!(
            "server:\n  unix_socket: {}\nbackends:\n  local: {{type: file, path: {}}}\ndefinitions:\n  plain: {{backend: local, secret: plain}}\n{definitions}",
            dir.join("vb.sock").display(),
            dir.join("secrets.yaml").display(),
        )
    };
    configmap_version(&volume, "2026_11_30_v1", &text(""));
    std::os::unix::fs::symlink("..data/config.yaml", volume.join("config.yaml")).unwrap();
    let daemon = setup.start_at(&volume.join("config.yaml"));
    daemon.wait_for_output("watching the config file for changes");
    assert_eq!(
        value(&daemon, "added").await.unwrap_err().code(),
        Code::NotFound
    );

    configmap_version(
        &volume,
        "2026_11_30_v2",
        &text("  added: {backend: local, secret: plain}\n"),
    );
    wait_for_log(&daemon, "config reloaded", 1);
    assert_eq!(value(&daemon, "added").await.unwrap(), "plain-e2e-value");

    // A second change is the second reload: the swap above was not applied twice.
    configmap_version(&volume, "2026_11_30_v3", &text(""));
    wait_for_log(&daemon, "config reloaded", 2);
    let log = daemon.output();
    assert!(
        log.contains("trigger=\"the config file changed\" generation=2"),
        "{log}"
    );
    assert_eq!(
        value(&daemon, "added").await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(value(&daemon, "plain").await.unwrap(), "plain-e2e-value");
}

#[tokio::test]
async fn a_watch_follows_a_reload_and_only_the_socket_may_ask_for_one() {
    use vaultbridge::proto::v1::{
        ReloadRequest, WatchEventKind, WatchRequest, admin_client::AdminClient,
    };
    let mut setup = Setup::new();
    setup.tcp = true;
    let daemon = setup.start();
    let mut events = daemon
        .client()
        .await
        .watch(WatchRequest {
            names: vec!["plain".into(), "jira-email".into()],
        })
        .await
        .unwrap()
        .into_inner();
    for _ in 0..2 {
        let event = events.message().await.unwrap().unwrap();
        assert_eq!(event.kind(), WatchEventKind::Current, "{event:?}");
    }

    // Over TCP, even from the daemon's own user, a reload is refused.
    let tcp = vaultbridge::client::channel(&daemon.tcp_address())
        .await
        .unwrap();
    let refused = AdminClient::new(tcp)
        .reload(ReloadRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused
            .message()
            .contains("only over the daemon's Unix socket"),
        "{}",
        refused.message()
    );

    let text = daemon
        .setup
        .config_text()
        .replace(
            "  plain:\n    backend: local\n    secret: plain\n",
            "  plain:\n    backend: local\n    secret: jira\n    key: url\n",
        )
        .replace(
            "  jira-email:\n    backend: local\n    secret: jira\n    key: email\n",
            "",
        );
    write(daemon.setup_dir(), "config.yaml", &text);
    let (code, stdout, stderr) = reload_cli(&daemon).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("1 removed, 1 changed"), "{stdout}");

    let (mut removed, mut changed) = (false, false);
    while !(removed && changed) {
        let event = tokio::time::timeout(Duration::from_secs(20), events.message())
            .await
            .expect("the watch's events after the reload")
            .unwrap()
            .unwrap();
        match (event.name.as_str(), event.kind()) {
            ("jira-email", WatchEventKind::Error) => {
                assert!(
                    event
                        .message
                        .contains("no secret definition named `jira-email`"),
                    "{event:?}"
                );
                removed = true;
            }
            ("plain", WatchEventKind::Changed) => changed = true,
            _ => panic!("unexpected {event:?}"),
        }
    }
    assert_eq!(
        value(&daemon, "plain").await.unwrap(),
        "https://example.atlassian.net"
    );
}

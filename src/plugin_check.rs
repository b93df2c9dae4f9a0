//! `vaultbridge plugin check`: the backend conformance suite against a running plugin,
//! so that a plugin author can prove a plugin correct without writing Rust.
//!
//! The suite seeds the secrets each case needs. A plugin's data lives wherever the
//! plugin keeps it, so `--fixture` names a program that changes it: `FILE reset`
//! empties the plugin's store, `FILE put ID` stores standard input as secret `ID` (a new
//! version where the plugin has versions). Without one, only what needs no data runs.

use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use vaultbridge_backend_core::conformance::{CASES, Fixture, Seed, Stages, Unreachable, Update};
use vaultbridge_backend_core::{Backend, ErrorKind, SecretRef};
use vaultbridge_backend_plugin::{PluginBackend, PluginConfig};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Run the backend conformance cases against a running plugin and print pass or
    /// fail per case; exits 1 if any fails.
    Check {
        /// The plugin's Unix socket.
        #[arg(long)]
        socket: PathBuf,
        /// A program that changes the plugin's data: `FILE reset` empties it, `FILE put
        /// ID` stores standard input as secret ID. Without it only the cases that need
        /// no data run.
        #[arg(long)]
        fixture: Option<PathBuf>,
        /// The plugin's own settings for Configure, as a JSON object.
        #[arg(long, default_value = "{}")]
        config: String,
        /// For a plugin with version stages: the labels a `put` moves, as
        /// CURRENT,PREVIOUS.
        #[arg(long)]
        stages: Option<String>,
    },
}

pub async fn run(command: PluginCommand) -> ExitCode {
    let PluginCommand::Check {
        socket,
        fixture,
        config,
        stages,
    } = command;
    let plugin_config = match serde_json::from_str::<serde_json::Value>(&config) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => {
            eprintln!("vaultbridge: --config must be a JSON object");
            return ExitCode::from(2);
        }
    };
    let stages = match stages.as_deref().map(parse_stages) {
        None => None,
        Some(Some(stages)) => Some(stages),
        Some(None) => {
            eprintln!("vaultbridge: --stages must be CURRENT,PREVIOUS");
            return ExitCode::from(2);
        }
    };
    let mut settings = PluginConfig::socket(socket);
    settings.plugin_config = plugin_config;
    settings.revision_interval = Duration::from_millis(50);
    let fixture = Arc::new(PluginFixture {
        settings,
        hook: fixture,
        stages,
    });
    let mut failed = 0;
    let mut report = |name: &str, result: Result<(), String>| match result {
        Ok(()) => line(&format!("pass  {name}")),
        Err(why) => {
            failed += 1;
            line(&format!("FAIL  {name}: {why}"));
        }
    };
    let ready = fixture
        .connect()
        .await
        .map(|_| ())
        .map_err(|err| err.to_string());
    let reachable = ready.is_ok();
    report("the plugin answers SERVING, Describe and Configure", ready);
    if !reachable {
        return ExitCode::from(crate::cli::EXIT_FAILURE);
    }
    if fixture.hook.is_none() {
        report(
            "an absent secret is a permanent not-found",
            absent_is_not_found(&fixture).await,
        );
        line(&format!(
            "not run: the {} conformance cases (they seed data; give --fixture)",
            CASES.len()
        ));
    } else {
        // Cases fail by panicking (they are assertions shared with `cargo test`); the
        // message is reported here, so the default hook's backtrace note is noise.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        for (name, case) in CASES {
            let fixture = fixture.clone();
            let outcome = tokio::spawn(async move { case(fixture.as_ref()).await }).await;
            report(name, outcome.map_err(panic_message));
        }
        std::panic::set_hook(hook);
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::cli::EXIT_FAILURE)
    }
}

fn line(text: &str) {
    // A closed stdout (`| head`) is not worth failing over.
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn parse_stages(text: &str) -> Option<Stages> {
    let (current, previous) = text.split_once(',')?;
    // Stages are `&'static` in the suite (written in each backend's tests); a check
    // runs once per process, so leaking two short labels is fine.
    Some(Stages {
        current: Box::leak(current.trim().to_owned().into_boxed_str()),
        previous: Box::leak(previous.trim().to_owned().into_boxed_str()),
    })
}

fn panic_message(err: tokio::task::JoinError) -> String {
    if !err.is_panic() {
        return "the case was cancelled".to_owned();
    }
    let payload = err.into_panic();
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| {
            payload
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
        })
        .unwrap_or_else(|| "the case failed".to_owned())
}

async fn absent_is_not_found(fixture: &PluginFixture) -> Result<(), String> {
    let backend = fixture.connect().await.map_err(|err| err.to_string())?;
    let id = "vaultbridge-plugin-check-absent";
    match backend.fetch(&SecretRef::new(id)).await {
        Ok(_) => Err(format!("`{id}` was served")),
        Err(err) if err.kind() == ErrorKind::NotFound && !err.is_temporary() => Ok(()),
        Err(err) => Err(format!(
            "expected a permanent not-found, got {} ({}): {err}",
            err.kind(),
            if err.is_temporary() {
                "temporary"
            } else {
                "permanent"
            }
        )),
    }
}

struct PluginFixture {
    settings: PluginConfig,
    hook: Option<PathBuf>,
    stages: Option<Stages>,
}

impl PluginFixture {
    async fn connect(&self) -> Result<Arc<PluginBackend>, vaultbridge_backend_core::BackendError> {
        let backend = PluginBackend::start(self.settings.clone())?;
        backend.ready().await?;
        Ok(backend)
    }

    /// Runs the fixture program; a failure fails the case that needed it.
    async fn hook(&self, args: &[&str], input: &[u8]) {
        let Some(program) = &self.hook else {
            panic!("this case changes the plugin's data: give --fixture");
        };
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", program.display()));
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input)
                .await
                .unwrap_or_else(|err| panic!("cannot write to the fixture program: {err}"));
        }
        let output = child
            .wait_with_output()
            .await
            .unwrap_or_else(|err| panic!("the fixture program failed to run: {err}"));
        assert!(
            output.status.success(),
            "`{} {}` failed ({}): {}",
            program.display(),
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }

    async fn put(&self, id: &str, seed: &Seed) {
        let bytes = match seed {
            Seed::Value(bytes) => bytes.clone(),
            Seed::Map(pairs) => Seed::map_as_json(pairs).into_bytes(),
        };
        self.hook(&["put", id], &bytes).await;
    }
}

#[async_trait::async_trait]
impl Fixture for PluginFixture {
    async fn backend(&self, secrets: &[(&str, Seed)]) -> Arc<dyn Backend> {
        self.hook(&["reset"], b"").await;
        for (id, seed) in secrets {
            self.put(id, seed).await;
        }
        self.connect()
            .await
            .unwrap_or_else(|err| panic!("the plugin is not ready: {err}"))
    }

    async fn update(&self, id: &str, seed: Seed) -> Update {
        self.put(id, &seed).await;
        Update::Applied
    }

    fn stages(&self) -> Option<Stages> {
        self.stages
    }

    /// The same plugin settings on a socket nobody listens on.
    async fn unreachable(&self) -> Option<Unreachable> {
        let mut settings = self.settings.clone();
        let vaultbridge_backend_plugin::Launch::Socket(socket) = &settings.launch else {
            return None;
        };
        let mut absent = socket.clone().into_os_string();
        absent.push(".vaultbridge-check-absent");
        settings.launch = vaultbridge_backend_plugin::Launch::Socket(absent.into());
        let backend = PluginBackend::start(settings).expect("a socket backend starts");
        let service = backend.name().to_owned();
        Some(Unreachable { backend, service })
    }
}

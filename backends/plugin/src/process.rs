//! Starting a plugin, restarting it with backoff when it exits, and stopping it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// The variable that tells a started plugin where to listen.
pub const SOCKET_VAR: &str = "VAULTBRIDGE_PLUGIN_SOCKET";

/// The variable that tells a started plugin its standard input is a lifeline: a pipe
/// the daemon holds open for as long as it runs, which reads end-of-file once the
/// daemon is gone, however it ended (SIGKILL included), so the plugin can exit rather
/// than outlive it. Chosen over `PR_SET_PDEATHSIG`, which needs an `unsafe` `pre_exec`
/// hook, is Linux-only, and fires when the forking *thread* exits, not the process (a
/// runtime's threads come and go). Its value is `stdin`.
pub const LIFELINE_VAR: &str = "VAULTBRIDGE_PLUGIN_LIFELINE";

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A plugin that ran this long before exiting is restarted at the minimum backoff
/// again: it was working, not crash-looping.
const STABLE: Duration = Duration::from_secs(30);
/// How long a plugin has to exit after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(5);

/// Keeps one plugin process running until dropped or shut down.
#[derive(Debug)]
pub(crate) struct Supervisor {
    /// Moves on every start, so that the backend configures each new process.
    generation: Arc<AtomicU64>,
    pid: Arc<AtomicI32>,
    /// Dropping it tells the task to stop the plugin.
    stop: Mutex<Option<watch::Sender<()>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Supervisor {
    pub(crate) fn start(
        name: String,
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        socket: PathBuf,
    ) -> Self {
        let generation = Arc::new(AtomicU64::new(0));
        let pid = Arc::new(AtomicI32::new(0));
        let (stop, stopped) = watch::channel(());
        let task = Task {
            name,
            argv,
            env,
            socket,
            generation: generation.clone(),
            pid: pid.clone(),
            stopped,
        };
        let task = tokio::spawn(task.run());
        Self {
            generation,
            pid,
            stop: Mutex::new(Some(stop)),
            task: Mutex::new(Some(task)),
        }
    }

    /// Stops the plugin (SIGTERM, then SIGKILL after the grace period) and waits until
    /// it has exited and its socket is removed.
    pub(crate) async fn shutdown(&self) {
        drop(lock(&self.stop).take());
        let task = lock(&self.task).take();
        if let Some(task) = task {
            // A task that panicked or was cancelled has nothing left to wait for.
            let _ = task.await;
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

impl Drop for Supervisor {
    /// SIGTERM at once, so the plugin can clean up even if the runtime goes away before
    /// the task runs again; the task then waits out the grace period, and the child's
    /// `kill_on_drop` is the last resort.
    fn drop(&mut self) {
        terminate(self.pid.load(Ordering::Acquire));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn terminate(pid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        // Already gone is fine: there is nothing left to stop.
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

struct Task {
    name: String,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    socket: PathBuf,
    generation: Arc<AtomicU64>,
    pid: Arc<AtomicI32>,
    stopped: watch::Receiver<()>,
}

impl Task {
    async fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        loop {
            // A socket file left by the previous process would make the new one fail
            // to bind.
            let _ = std::fs::remove_file(&self.socket);
            let started = Instant::now();
            match self.command().spawn() {
                Err(err) => tracing::warn!(
                    plugin = %self.name, error = %err,
                    "the plugin could not be started; retrying in {backoff:?}"
                ),
                Ok(mut child) => {
                    // Held, never written, until this process is stopped or exits.
                    let _lifeline = child.stdin.take();
                    let pid = child
                        .id()
                        .and_then(|id| i32::try_from(id).ok())
                        .unwrap_or(0);
                    self.pid.store(pid, Ordering::Release);
                    self.generation.fetch_add(1, Ordering::AcqRel);
                    tracing::info!(plugin = %self.name, pid, "plugin started");
                    tokio::select! {
                        status = child.wait() => {
                            self.pid.store(0, Ordering::Release);
                            if started.elapsed() >= STABLE {
                                backoff = MIN_BACKOFF;
                            }
                            let status = status.map_or_else(|err| err.to_string(), |s| s.to_string());
                            tracing::warn!(
                                plugin = %self.name, %status,
                                "the plugin exited; restarting in {backoff:?}"
                            );
                        }
                        _ = self.stopped.changed() => {
                            stop(child, pid).await;
                            self.pid.store(0, Ordering::Release);
                            let _ = std::fs::remove_file(&self.socket);
                            return;
                        }
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = self.stopped.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.argv[0]);
        command
            .args(&self.argv[1..])
            .envs(&self.env)
            .env(SOCKET_VAR, &self.socket)
            .env(LIFELINE_VAR, "stdin")
            .stdin(Stdio::piped())
            .kill_on_drop(true);
        command
    }
}

async fn stop(mut child: Child, pid: i32) {
    terminate(pid);
    if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

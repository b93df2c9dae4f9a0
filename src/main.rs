#![forbid(unsafe_code)]

use clap::Parser;
use std::process::ExitCode;
use vaultbridge::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging(&cli.log, cli.log_format);
    if matches!(cli.command, Command::Serve { .. }) {
        // Everything the daemon creates (its socket above all) is private unless the
        // config opens it up.
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        // Before any value is read: a crash then leaves no core file holding secrets, and
        // another process of the same user can neither ptrace the daemon nor read its
        // memory or environment through /proc (those files become root's).
        match rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        {
            Ok(()) => tracing::info!("core dumps and ptrace by other processes are off"),
            Err(err) => tracing::warn!(
                "cannot turn off core dumps and ptrace by other processes (prctl PR_SET_DUMPABLE): {err}"
            ),
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("vaultbridge: cannot start the async runtime: {err}");
            return ExitCode::from(cli::EXIT_FAILURE);
        }
    };
    let credentials = cli.credentials;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve {
                config,
                watch_config,
            } => cli::serve(config, watch_config).await,
            Command::Reload { addr, timeout } => {
                cli::within(
                    timeout,
                    addr.as_deref(),
                    cli::reload(addr.clone(), &credentials),
                )
                .await
            }
            Command::Get {
                name,
                addr,
                newline,
                timeout,
            } => {
                cli::within(
                    timeout,
                    addr.as_deref(),
                    cli::get(name, addr.clone(), newline, &credentials),
                )
                .await
            }
            Command::Check { config, resolve } => cli::check(config, resolve).await,
            Command::Health { addr, timeout } => {
                cli::within(
                    timeout,
                    addr.as_deref(),
                    cli::health(addr.clone(), &credentials),
                )
                .await
            }
            Command::Jira { command } => cli::jira(command, &credentials).await,
            Command::Plugin { command } => vaultbridge::plugin_check::run(command).await,
        }
    })
}

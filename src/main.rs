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
    runtime.block_on(async move {
        match cli.command {
            Command::Serve { config } => cli::serve(config).await,
            Command::Get {
                name,
                addr,
                newline,
            } => cli::get(name, addr, newline).await,
            Command::Check { config, resolve } => cli::check(config, resolve).await,
            Command::Health { addr } => cli::health(addr).await,
            Command::Jira { command } => cli::jira(command).await,
            Command::Plugin { command } => vaultbridge::plugin_check::run(command).await,
        }
    })
}

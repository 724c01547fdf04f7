//! The `warren` binary: command line, logging, listeners and signals around
//! `warren-broker`. It holds no broker logic.

mod alarms;
mod cli;
mod trim;

use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;
use warren_broker::{Broker, Config, User};

use cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.log_level).unwrap_or_else(|e| {
        eprintln!(
            "warren: invalid log level {:?} ({e}); using info",
            cli.log_level
        );
        EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colours only for a person at a terminal, not in files and log collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    // Every connection is a file descriptor; the usual soft limit of 1024 would cap
    // a broker far below what it can serve, so take what the hard limit allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let mut config = Config::new(cli.data_dir.clone());
    config.heartbeat = cli.heartbeat;
    config.consumer_timeout =
        (cli.consumer_timeout > 0).then(|| std::time::Duration::from_millis(cli.consumer_timeout));
    config.users = vec![User {
        name: cli.default_user.clone(),
        password: cli.default_pass.clone(),
    }];
    config.loopback_users = cli
        .loopback_users
        .iter()
        .filter(|u| !u.is_empty())
        .cloned()
        .collect();
    let broker = match Broker::new(config) {
        Ok(b) => b,
        Err(e) => {
            error!(error = %e, data_dir = %cli.data_dir.display(), "cannot use the data directory");
            return ExitCode::FAILURE;
        }
    };
    let mut listeners = Vec::new();
    for addr in cli.bind_addresses() {
        match TcpListener::bind((addr, cli.port)).await {
            Ok(listener) => listeners.push(listener),
            // The default binds both loopbacks; a host without IPv6 still serves IPv4.
            Err(e) if cli.bind.is_empty() => {
                warn!(%addr, port = cli.port, error = %e, "cannot listen")
            }
            Err(e) => {
                error!(%addr, port = cli.port, error = %e, "cannot listen");
                return ExitCode::FAILURE;
            }
        }
    }
    if listeners.is_empty() {
        error!(port = cli.port, "no address to listen on");
        return ExitCode::FAILURE;
    }
    tokio::spawn(trim::release_free_memory_now_and_then());
    let available = alarms::available_memory();
    if available.is_none() {
        warn!("cannot read the memory size: relative alarm limits are off");
    }
    if let Some(limit) = cli.memory_high_watermark.limit(available) {
        tokio::spawn(alarms::watch_memory(broker.clone(), limit));
    }
    if let Some(limit) = cli.disk_free_limit.limit(available) {
        tokio::spawn(alarms::watch_disk(
            broker.clone(),
            cli.data_dir.clone(),
            limit,
        ));
    }
    info!(version = env!("CARGO_PKG_VERSION"), "Warren started");
    warren_broker::serve(broker, listeners, shutdown_signal()).await;
    info!("Warren stopped");
    ExitCode::SUCCESS
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
                    _ = term.recv() => info!("SIGTERM received"),
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot watch SIGTERM; only SIGINT will stop Warren");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        info!("interrupt received");
    }
}

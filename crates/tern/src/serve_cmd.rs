//! `tern serve` (and plain `tern`): load the configuration, bind the listeners, serve until
//! SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tern_server::{Config, ListenerConfig, ListenerProtocol};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (see tern.example.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Plain MQTT/TCP listener address; repeatable. Replaces the configured mqtt listeners.
    #[arg(long = "listen", value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,
    /// MQTT over WebSocket listener address (path /mqtt); repeatable. Replaces the configured
    /// ws listeners.
    #[arg(long = "ws-listen", value_name = "ADDR")]
    pub ws_listen: Vec<SocketAddr>,
    /// Directory of the embedded store (default ./tern-data).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep everything in memory; nothing survives a restart.
    #[arg(long)]
    pub in_memory: bool,
}

fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    replace_listeners(&mut config, ListenerProtocol::Mqtt, &args.listen);
    replace_listeners(&mut config, ListenerProtocol::Ws, &args.ws_listen);
    if let Some(dir) = &args.data_dir {
        config.storage.data_dir = dir.clone();
    }
    if args.in_memory {
        config.storage.in_memory = true;
    }
    config.validate()?;
    Ok(config)
}

/// Replaces the configured listeners of `protocol` by default ones at `addresses`, if any.
fn replace_listeners(config: &mut Config, protocol: ListenerProtocol, addresses: &[SocketAddr]) {
    if addresses.is_empty() {
        return;
    }
    config.listeners.retain(|listener| listener.protocol != protocol);
    config.listeners.extend(addresses.iter().map(|address| ListenerConfig::new(protocol, *address)));
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let config = load_config(&args)?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Signal handlers are installed before the listeners exist, so a signal sent as soon
        // as the ready line appears is never lost to the default (killing) disposition.
        let shutdown = shutdown_signal().context("cannot install signal handlers")?;
        let reload = reload_on_sighup().context("cannot install the SIGHUP handler")?;
        let listeners = tern_server::bind_listeners(&config).await?;
        let store = tern_server::open_store(&config.storage).context("cannot open the broker's storage")?;
        tern_server::serve_with_store(config, store, listeners, shutdown, reload).await?;
        anyhow::Ok(())
    })?;
    tracing::info!("Stopped");
    Ok(ExitCode::SUCCESS)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TERN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,fjall=warn,lsm_tree=warn"));
    // Colours only on a terminal, so that logs piped to a file or a test stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}

/// SIGHUP re-reads passwords, the ACL and certificates without dropping connected clients.
fn reload_on_sighup() -> std::io::Result<std::sync::Arc<tokio::sync::Notify>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup())?;
    let reload = std::sync::Arc::new(tokio::sync::Notify::new());
    let notify = reload.clone();
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP received");
            notify.notify_one();
        }
    });
    Ok(reload)
}

/// Installs SIGINT and SIGTERM handlers now; the returned future completes on either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
        }
    })
}

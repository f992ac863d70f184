//! The composition root of Tern: reads the configuration, accepts connections on the
//! listeners it is given, runs one task per connection, and shuts down cleanly.
//!
//! [`serve`] takes already-bound listeners and a shutdown future, so tests bind
//! `127.0.0.1:0` and run a broker in-process.

mod config;
mod connection;
mod shutdown;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use tern_core::{Broker, MemoryStore, Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

pub use config::{AuthConfig, Config, ConfigError, ListenersConfig, MqttConfig, StorageConfig};
use connection::{serve_connection, ConnectionContext};
use shutdown::{Phase, PhaseReceiver, WillBarrier};

/// How long shutdown waits for connections to publish wills and close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Binds every listener the configuration names. Errors name the address.
pub async fn bind_listeners(config: &Config) -> Result<Vec<TcpListener>, ServeError> {
    let mut listeners = Vec::new();
    for addr in &config.listeners.mqtt {
        let listener = TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr: *addr, source })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("no listener configured")]
    NoListener,
    #[error("cannot load the broker's state")]
    Store(#[from] StoreError),
}

/// Serves MQTT on `listeners` until `shutdown` completes; then stops accepting, closes every
/// connection (publishing wills as the spec says) and returns.
pub async fn serve(
    config: Config,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_with_store(config, Arc::new(MemoryStore::default()), listeners, shutdown).await
}

/// [`serve`] with the broker's durable state in `store`, loaded at start.
pub async fn serve_with_store(
    config: Config,
    store: Arc<dyn Store>,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    if listeners.is_empty() {
        return Err(ServeError::NoListener);
    }
    let broker = Arc::new(Broker::with_store(config.limits.clone(), config.features(), store)?);
    broker.set_shared_strategy(config.shared_strategy());
    if config.storage.in_memory {
        info!("Storage: in memory (--in-memory); nothing survives a restart");
    } else {
        warn!(data_dir = %config.storage.data_dir.display(), "Durable storage is not available yet; sessions and retained messages are kept in memory only");
    }
    let context = Arc::new(ConnectionContext {
        broker,
        connections: Arc::new(AtomicUsize::new(0)),
        allow_anonymous: config.auth.allow_anonymous,
        wills: WillBarrier::default(),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(Phase::Running);
    let mut accept_loops = JoinSet::new();
    for listener in listeners {
        let addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr: SocketAddr::from(([0, 0, 0, 0], 0)), source })?;
        if config.auth.allow_anonymous && !addr.ip().is_loopback() {
            warn!(%addr, "Anonymous clients are accepted on a non-loopback listener; configure authentication or set auth.allow_anonymous = false");
        }
        info!(kind = "mqtt", %addr, "listener ready");
        accept_loops.spawn(accept_loop(listener, context.clone(), shutdown_rx.clone()));
    }
    let timers = tokio::spawn(run_timers(context.broker.clone(), shutdown_rx.clone()));
    shutdown.await;
    info!("Shutting down: closing listeners and connections");
    let _ = shutdown_tx.send(Phase::PublishWills);
    let live = || context.connections.load(std::sync::atomic::Ordering::Relaxed);
    if !context.wills.wait(live, SHUTDOWN_GRACE).await {
        warn!("Not every connection published its will within the shutdown grace period");
    }
    let _ = shutdown_tx.send(Phase::Close);
    let drained =
        tokio::time::timeout(SHUTDOWN_GRACE, async { while accept_loops.join_next().await.is_some() {} }).await;
    timers.abort();
    if drained.is_err() {
        warn!("Some connections did not close within the shutdown grace period");
    }
    Ok(())
}

/// Wakes the broker's timers: delayed wills and session expiry ([`Broker::tick`]). Sleeps
/// until the next deadline, woken early when an earlier one is scheduled.
async fn run_timers(broker: Arc<Broker>, mut shutdown: PhaseReceiver) {
    let waker = Arc::new(TimerWaker::default());
    broker.set_timer_waker(waker.clone());
    loop {
        let next = broker.tick(std::time::Instant::now());
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = sleep => {}
            _ = waker.0.notified() => {}
        }
    }
}

#[derive(Default)]
struct TimerWaker(tokio::sync::Notify);

impl tern_core::SessionWaker for TimerWaker {
    fn wake(&self) {
        self.0.notify_one();
    }
}

/// Accepts connections until shutdown, then waits for its connections to finish.
async fn accept_loop(listener: TcpListener, context: Arc<ConnectionContext>, mut shutdown: PhaseReceiver) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(context.clone(), stream, peer, shutdown.clone()));
                }
                Err(error) => {
                    // Usually EMFILE: back off instead of spinning.
                    warn!(%error, "Accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connection tasks so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

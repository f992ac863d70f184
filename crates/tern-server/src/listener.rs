//! One accept loop per listener: connection rate and count limits, then the transport
//! handshake (PROXY header, TLS, WebSocket) in the connection's own task.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tern_core::{Metrics, RateLimit};
use tern_transport::{TlsSettings, Transport};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::config::{CertificateUsername, ListenerConfig, ListenerProtocol};
use crate::connection::{serve_connection, ConnectionContext};
use crate::shutdown::PhaseReceiver;
use crate::ServeError;

/// What a connection needs to know about the listener it came through.
pub struct ListenerContext {
    pub config: ListenerConfig,
    /// Replaced whole when certificates are reloaded; new connections use the new one.
    transport: RwLock<Arc<Transport>>,
    pub allow_anonymous: bool,
    pub username_from_certificate: Option<CertificateUsername>,
    /// Connections open on this listener, for `max_connections`.
    pub connections: AtomicUsize,
    /// New connections per second, for `max_connection_rate`. Held only by the accept loop.
    rate: Mutex<Option<RateLimit>>,
}

impl ListenerContext {
    pub fn new(config: ListenerConfig, anonymous_default: bool) -> Result<ListenerContext, ServeError> {
        let transport = build_transport(&config)?;
        Ok(ListenerContext {
            allow_anonymous: config.allow_anonymous.unwrap_or(anonymous_default),
            username_from_certificate: config.tls.as_ref().and_then(|tls| tls.username_from_certificate),
            transport: RwLock::new(Arc::new(transport)),
            connections: AtomicUsize::new(0),
            rate: Mutex::new(RateLimit::new(config.max_connection_rate, Instant::now())),
            config,
        })
    }

    /// Loads the certificates again; on error the old ones stay in use.
    pub fn reload(&self) -> Result<(), ServeError> {
        let transport = build_transport(&self.config)?;
        *self.transport.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(transport);
        Ok(())
    }

    fn transport(&self) -> Arc<Transport> {
        self.transport.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn admit_rate(&self) -> bool {
        let mut rate = self.rate.lock().unwrap_or_else(|p| p.into_inner());
        rate.as_mut().is_none_or(|limit| limit.take(1.0, Instant::now()))
    }
}

fn build_transport(config: &ListenerConfig) -> Result<Transport, ServeError> {
    let tls = || -> Result<_, ServeError> {
        let tls = config.tls.as_ref().expect("validated: TLS listeners have tls settings");
        let settings = TlsSettings {
            cert_chain: tls.cert.clone(),
            private_key: tls.key.clone(),
            client_ca: tls.client_ca.clone(),
            require_client_certificate: tls.require_client_certificate,
        };
        Transport::tls(&settings).map_err(|source| ServeError::Transport { address: config.address, source })
    };
    Ok(match config.protocol {
        ListenerProtocol::Mqtt => Transport::Tcp,
        ListenerProtocol::Mqtts => Transport::Tls(tls()?),
        ListenerProtocol::Ws => Transport::WebSocket { path: config.path.clone() },
        ListenerProtocol::Wss => Transport::WebSocketTls { tls: tls()?, path: config.path.clone() },
    })
}

/// Accepts connections until shutdown, then waits for its connections to finish.
pub async fn accept_loop(
    listener: TcpListener,
    this: Arc<ListenerContext>,
    context: Arc<ConnectionContext>,
    mut shutdown: PhaseReceiver,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, socket_peer)) => {
                    let max = this.config.max_connections;
                    if !this.admit_rate() || (max != 0 && this.connections.load(Ordering::Relaxed) >= max) {
                        // Refused before any handshake work: a flood costs an accept and a close.
                        Metrics::incr(&context.broker.metrics.connections_refused);
                        debug!(%socket_peer, listener = %this.config.address, "Connection refused by listener limits");
                        continue;
                    }
                    let _ = tcp.set_nodelay(true);
                    let this = this.clone();
                    let context = context.clone();
                    let shutdown = shutdown.clone();
                    this.connections.fetch_add(1, Ordering::Relaxed);
                    connections.spawn(async move {
                        let transport = this.transport();
                        // The handshake (PROXY header, TLS, WebSocket) gets the same bound as
                        // CONNECT, so a silent socket is closed as soon on every transport.
                        let timeout = Duration::from_secs(context.broker.limits.connect_timeout_secs);
                        match transport.handshake(tcp, socket_peer, this.config.proxy_protocol, timeout).await {
                            Ok((stream, peer)) => serve_connection(context, &this, stream, peer, shutdown).await,
                            Err(error) => debug!(%socket_peer, %error, "Transport handshake failed"),
                        }
                        this.connections.fetch_sub(1, Ordering::Relaxed);
                    });
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

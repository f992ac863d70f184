//! One tokio task per connection: read and decode, drive the core's [`Connection`], encode
//! and write. Reads are batched (every whole packet in the buffer is handled before writing),
//! and writes are coalesced into one buffer flushed per batch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tern_codec::{
    decode, encode, ConnAck, ConnectReturnCode, DecodeError, DecodeOptions, Packet, Properties, ProtocolVersion,
};
use tern_core::{
    accept_connect, Broker, CloseReason, ConnectIdentity, ConnectOutcome, Connection, Metrics, SessionWaker,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use tern_transport::Peer;

use crate::authenticate::{authenticate, AuthRefusal};
use crate::enhanced_auth::{enhanced_authenticate, EnhancedAuth};
use crate::listener::ListenerContext;
use crate::security::Security;
use crate::shutdown::{Phase, PhaseReceiver, WillBarrier};

/// Outgoing packets taken from the session per batch.
const OUTGOING_BATCH: usize = 64;
/// Above this many unwritten bytes the connection stops taking messages from its session
/// queue, so a slow consumer's backlog stays in the budgeted queue, not in a socket buffer.
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Longest a publisher is not read while a subscriber it publishes to is over its budget,
/// before it is read again (and paused again if the subscriber is still behind).
const CONGESTION_PAUSE: Duration = Duration::from_millis(100);
/// Smallest read buffer; grown only while a large packet is being read.
const READ_CHUNK: usize = 4 * 1024;
/// How long a new connection waits for the session's current connection to step down before
/// taking the session over by force.
const TAKEOVER_WAIT: Duration = Duration::from_secs(1);
/// The most a connection that is stepping down reads of what its client already sent.
const TAKEOVER_DRAIN_MAX: usize = 256 * 1024;

/// Wakes the connection task when its session has something for it.
#[derive(Default)]
struct TaskWaker(Notify);

impl SessionWaker for TaskWaker {
    fn wake(&self) {
        self.0.notify_one();
    }
}

/// Everything a connection task shares with the server.
pub struct ConnectionContext {
    pub broker: Arc<Broker>,
    pub connections: Arc<AtomicUsize>,
    pub security: Security,
    pub wills: WillBarrier,
}

/// Serves one client until it disconnects, breaks the protocol, is taken over, or the server
/// shuts down.
pub async fn serve_connection<S>(
    context: Arc<ConnectionContext>,
    listener: &ListenerContext,
    stream: S,
    peer: Peer,
    shutdown: PhaseReceiver,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let current = context.connections.fetch_add(1, Ordering::Relaxed) + 1;
    Metrics::incr(&context.broker.metrics.connections_current);
    run(&context, listener, stream, peer, shutdown, current).await;
    context.connections.fetch_sub(1, Ordering::Relaxed);
    Metrics::decr(&context.broker.metrics.connections_current);
}

async fn run<S>(
    context: &ConnectionContext,
    listener: &ListenerContext,
    mut stream: S,
    transport_peer: Peer,
    mut shutdown: PhaseReceiver,
    current: usize,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let broker = &context.broker;
    let peer = transport_peer.addr;
    let mut rbuf = BytesMut::new();
    let connect_timeout = Duration::from_secs(broker.limits.connect_timeout_secs);
    // The CONNECT itself says which version the rest is in.
    let first_options =
        DecodeOptions { version: ProtocolVersion::V3_1_1, max_packet_size: broker.limits.max_packet_size };
    let first = tokio::select! {
        first = tokio::time::timeout(connect_timeout, read_first_packet(&mut stream, &mut rbuf, &first_options)) => first,
        _ = shutdown.changed() => return,
    };
    let connect = match first {
        Err(_) => {
            debug!(%peer, "No CONNECT within the connect timeout; closing");
            return;
        }
        Ok(Err(ReadError::Io)) => return,
        Ok(Err(ReadError::NotConnect(byte))) => {
            Metrics::incr(&broker.metrics.protocol_errors);
            debug!(%peer, first_byte = byte, "First packet is not CONNECT; closing");
            return;
        }
        Ok(Err(ReadError::Decode(DecodeError::UnsupportedProtocolLevel(level)))) => {
            // [MQTT-3.1.2-2]: CONNACK 0x01, then close.
            debug!(%peer, level, "Unsupported protocol level");
            let connack = ConnAck {
                session_present: false,
                code: ConnectReturnCode::UNACCEPTABLE_PROTOCOL_VERSION,
                properties: Properties::default(),
            };
            let _ = write_packets(&mut stream, &[Packet::ConnAck(connack)], ProtocolVersion::V3_1_1).await;
            return;
        }
        Ok(Err(ReadError::Decode(error))) => {
            Metrics::incr(&broker.metrics.malformed_packets);
            debug!(%peer, %error, "Malformed first packet; closing");
            return;
        }
        Ok(Ok(Packet::Connect(connect))) => *connect,
        Ok(Ok(other)) => {
            // [MQTT-3.1.0-1]: the first packet must be CONNECT.
            Metrics::incr(&broker.metrics.protocol_errors);
            debug!(%peer, packet = other.name(), "First packet is not CONNECT; closing");
            return;
        }
    };
    let version = connect.protocol;
    // Server-final of a SCRAM exchange, for CONNACK's Authentication Method and Data.
    let mut enhanced_reply = None;
    let exchange = enhanced_authenticate(context, &connect, &transport_peer, &mut stream, &mut rbuf, connect_timeout);
    let identity = match exchange.await {
        EnhancedAuth::NotApplicable => match authenticate(context, listener, &connect, &transport_peer).await {
            Ok(identity) => identity,
            Err(refusal) => return refuse_connect(&mut stream, refusal, version).await,
        },
        // Unauthenticated on purpose: accept_connect refuses it with 0x8C and a reason string.
        EnhancedAuth::Unsupported => ConnectIdentity { peer: Some(peer), ..ConnectIdentity::default() },
        EnhancedAuth::Authenticated { identity, method, connack_data } => {
            enhanced_reply = Some((method, connack_data));
            identity
        }
        EnhancedAuth::Refused(refusal) => return refuse_connect(&mut stream, refusal, version).await,
        EnhancedAuth::Close => return,
    };

    let waker = Arc::new(TaskWaker::default());
    let handover_deadline = tokio::time::Instant::now() + TAKEOVER_WAIT;
    let outcome = loop {
        let force = tokio::time::Instant::now() >= handover_deadline;
        match accept_connect(broker, connect.clone(), Instant::now(), current, waker.clone(), force, identity.clone()) {
            // The session's current connection is stepping down; it wakes us when it has.
            ConnectOutcome::Busy => {
                let _ = tokio::time::timeout_at(handover_deadline, waker.0.notified()).await;
            }
            outcome => break outcome,
        }
    };
    let (mut connection, connack, previous_owner) = match outcome {
        ConnectOutcome::Busy => unreachable!("the loop above only ends on another outcome"),
        ConnectOutcome::Accepted { connection, mut connack, previous_owner } => {
            if let Some((method, data)) = enhanced_reply {
                // [MQTT-4.12.0-5]: the CONNACK that ends an exchange carries its method.
                connack.properties.authentication_method = Some(method);
                connack.properties.authentication_data = Some(data);
            }
            (connection, connack, previous_owner)
        }
        ConnectOutcome::Refused(connack) => {
            debug!(%peer, code = connack.code.0, "CONNECT refused");
            let _ = write_packets(&mut stream, &[Packet::ConnAck(connack)], version).await;
            return;
        }
        ConnectOutcome::Invalid(error) => {
            Metrics::incr(&broker.metrics.protocol_errors);
            debug!(%peer, %error, "Invalid CONNECT; closing");
            return;
        }
    };
    if let Some(previous) = previous_owner {
        previous.wake();
    }
    debug!(%peer, client_id = %connection.client_id(), ?version, "Client connected");
    let (reason, mut unwritten) =
        drive(&mut connection, &mut stream, &mut rbuf, connack, &waker, &mut shutdown, context).await;
    // A 5.0 client is told why the server closes ([MQTT-4.13.1-1]).
    if let Some(disconnect) = connection.disconnect_packet(&reason) {
        encode_all(&mut vec![disconnect], version, &mut unwritten);
    }
    match &reason {
        CloseReason::Malformed(_) => Metrics::incr(&broker.metrics.malformed_packets),
        CloseReason::Protocol(_) => Metrics::incr(&broker.metrics.protocol_errors),
        _ => {}
    }
    info!(%peer, client_id = %connection.client_id(), %reason, "Client disconnected");
    // Will and session release first, so that once the client sees the socket close its
    // session is already offline.
    connection.close(&reason, Instant::now());
    if !matches!(reason, CloseReason::ConnectionLost) && !unwritten.is_empty() {
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&unwritten)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
}

pub(crate) enum ReadError {
    Io,
    Decode(DecodeError),
    /// The first byte is not CONNECT's ([MQTT-3.1.0-1]): close at once rather than wait for
    /// a "packet" that is not MQTT at all (a PROXY header, HTTP, TLS on a plain listener).
    NotConnect(u8),
}

/// Reads the first packet, refusing a connection whose first byte is not CONNECT's.
async fn read_first_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    options: &DecodeOptions,
) -> Result<Packet, ReadError> {
    while rbuf.is_empty() {
        rbuf.reserve(READ_CHUNK);
        match stream.read_buf(rbuf).await {
            Ok(0) | Err(_) => return Err(ReadError::Io),
            Ok(_) => {}
        }
    }
    if rbuf[0] >> 4 != 1 {
        return Err(ReadError::NotConnect(rbuf[0]));
    }
    read_packet(stream, rbuf, options).await
}

/// Reads until `rbuf` holds a whole packet, and decodes it.
pub(crate) async fn read_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    options: &DecodeOptions,
) -> Result<Packet, ReadError> {
    loop {
        if let Some(packet) = decode(rbuf, options).map_err(ReadError::Decode)? {
            return Ok(packet);
        }
        rbuf.reserve(READ_CHUNK);
        match stream.read_buf(rbuf).await {
            Ok(0) | Err(_) => return Err(ReadError::Io),
            Ok(_) => {}
        }
    }
}

/// Answers CONNACK with `refusal`'s code; the caller then closes.
async fn refuse_connect<S: AsyncWrite + Unpin>(stream: &mut S, refusal: AuthRefusal, version: ProtocolVersion) {
    let connack = ConnAck { session_present: false, code: refusal.code(version), properties: Properties::default() };
    let _ = write_packets(stream, &[Packet::ConnAck(connack)], version).await;
}

fn encode_all(packets: &mut Vec<Packet>, version: ProtocolVersion, wbuf: &mut BytesMut) {
    for packet in packets.drain(..) {
        if let Err(error) = encode(&packet, version, wbuf) {
            warn!(%error, packet = packet.name(), "Cannot encode an outgoing packet; dropped");
        }
    }
}

pub(crate) async fn write_packets<S: AsyncWrite + Unpin>(
    stream: &mut S,
    packets: &[Packet],
    version: ProtocolVersion,
) -> std::io::Result<()> {
    let mut wbuf = BytesMut::new();
    encode_all(&mut packets.to_vec(), version, &mut wbuf);
    stream.write_all(&wbuf).await?;
    stream.flush().await
}

/// The connection's main loop. Returns why it ended; unwritten output is flushed best-effort.
async fn drive<S>(
    connection: &mut Connection,
    stream: &mut S,
    rbuf: &mut BytesMut,
    connack: ConnAck,
    waker: &TaskWaker,
    shutdown: &mut PhaseReceiver,
    context: &ConnectionContext,
) -> (CloseReason, BytesMut)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let version = connection.version();
    let options = DecodeOptions { version, max_packet_size: context.broker.limits.max_packet_size };
    let mut out: Vec<Packet> = vec![Packet::ConnAck(connack)];
    let mut wbuf = BytesMut::new();
    encode_all(&mut out, version, &mut wbuf);
    let (mut reader, mut writer) = tokio::io::split(stream);

    // Packets that arrived together with CONNECT.
    let mut pending_reason = handle_buffered(connection, rbuf, &options, &mut out).err();
    encode_all(&mut out, version, &mut wbuf);

    // Set while a subscriber this client publishes to is over its budget: the client is not
    // read until that subscriber drains, or until the pause ends (a bound, so a client that
    // consumes its own messages cannot stall itself).
    let mut paused_until: Option<tokio::time::Instant> = None;
    let reason = loop {
        // Acknowledgements of what the store keeps go out once it is durable (group commit:
        // connections waiting together share one sync); meanwhile this client is not read.
        if !await_durable(connection, context).await {
            return (CloseReason::StorageFailed, BytesMut::new());
        }
        if let Some(reason) = pending_reason.take() {
            break reason;
        }
        if wbuf.len() < WRITE_HIGH_WATER {
            if let Err(reason) = connection.poll_outgoing(Instant::now(), &mut out, OUTGOING_BATCH) {
                if reason == CloseReason::TakenOver {
                    break apply_received_before_takeover(connection, &mut reader, rbuf, &options, &mut out).await;
                }
                break reason;
            }
            encode_all(&mut out, version, &mut wbuf);
        }
        if wbuf.is_empty() && wbuf.capacity() > WRITE_HIGH_WATER {
            // Give back what a burst grew, so idle connections stay small.
            wbuf = BytesMut::new();
        }
        let deadline = connection.keep_alive_deadline();
        if rbuf.capacity() - rbuf.len() < 512 {
            rbuf.reserve(READ_CHUNK);
        }
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                let phase = *shutdown.borrow_and_update();
                match phase {
                    Phase::Running => {}
                    Phase::PublishWills => {
                        connection.publish_will_for_shutdown(Instant::now());
                        context.wills.arrive();
                    }
                    Phase::Close => {
                        // A last batch of what is queued for this client, wills included.
                        if connection.poll_outgoing(Instant::now(), &mut out, OUTGOING_BATCH).is_ok() {
                            encode_all(&mut out, version, &mut wbuf);
                        }
                        break CloseReason::ServerShutdown;
                    }
                }
            }
            written = writer.write_buf(&mut wbuf), if !wbuf.is_empty() => {
                if written.is_err() {
                    break CloseReason::ConnectionLost;
                }
                // Transports that frame or encrypt (WebSocket, TLS) may hold bytes until
                // flushed; a plain TCP flush costs nothing.
                if wbuf.is_empty() && writer.flush().await.is_err() {
                    break CloseReason::ConnectionLost;
                }
            }
            read = reader.read_buf(rbuf), if paused_until.is_none() => {
                match read {
                    Ok(0) | Err(_) => break CloseReason::ConnectionLost,
                    Ok(_) => {
                        pending_reason = handle_buffered(connection, rbuf, &options, &mut out).err();
                        encode_all(&mut out, version, &mut wbuf);
                        if connection.take_congested() {
                            paused_until = Some(tokio::time::Instant::now() + CONGESTION_PAUSE);
                        }
                    }
                }
            }
            // A drained subscriber (or our own session) wakes us: read again.
            _ = waker.0.notified(), if wbuf.len() < WRITE_HIGH_WATER || paused_until.is_some() => {
                paused_until = None;
            }
            _ = tokio::time::sleep_until(paused_until.unwrap_or_else(tokio::time::Instant::now)), if paused_until.is_some() => {
                paused_until = None;
            }
            _ = sleep_until(deadline), if deadline.is_some() => {
                if let Err(reason) = connection.handle_timeout(Instant::now()) {
                    break reason;
                }
            }
        }
    };
    if !await_durable(connection, context).await {
        return (CloseReason::StorageFailed, BytesMut::new());
    }
    (reason, wbuf)
}

/// Waits until the store writes the connection's pending output depends on are durable.
/// False when the store failed: that output must not be sent.
async fn await_durable(connection: &mut Connection, context: &ConnectionContext) -> bool {
    let (Some(ticket), Some(store)) = (connection.take_barrier(), context.broker.store()) else { return true };
    match store.commit(ticket).await {
        Ok(()) => true,
        Err(error) => {
            warn!(client_id = %connection.client_id(), %error, "Storage failed; closing without acknowledging");
            false
        }
    }
}

/// A new connection is taking the session over. Before stepping down, apply what the client
/// had already sent on this connection (read without waiting): acknowledgements and a
/// DISCONNECT sent just before it reconnected must count ([MQTT-4.4.0-1], [MQTT-3.1.2-10]).
async fn apply_received_before_takeover<R: AsyncRead + Unpin>(
    connection: &mut Connection,
    reader: &mut R,
    rbuf: &mut BytesMut,
    options: &DecodeOptions,
    out: &mut Vec<Packet>,
) -> CloseReason {
    let limit = rbuf.len() + TAKEOVER_DRAIN_MAX;
    while rbuf.len() < limit {
        rbuf.reserve(READ_CHUNK);
        // A zero timeout still polls the read once: it takes what is already buffered.
        match tokio::time::timeout(Duration::ZERO, reader.read_buf(rbuf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
    }
    match handle_buffered(connection, rbuf, options, out) {
        Ok(()) => CloseReason::TakenOver,
        Err(reason) => reason,
    }
}

/// Handles every whole packet in `rbuf`.
fn handle_buffered(
    connection: &mut Connection,
    rbuf: &mut BytesMut,
    options: &DecodeOptions,
    out: &mut Vec<Packet>,
) -> Result<(), CloseReason> {
    let now = Instant::now();
    while let Some(packet) = decode(rbuf, options)? {
        connection.handle_packet(now, packet, out)?;
    }
    Ok(())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

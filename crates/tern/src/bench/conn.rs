//! One lean bench connection: CONNECT/CONNACK and SUBSCRIBE/SUBACK over a stream of any
//! transport (TCP, TLS, WebSocket: see [`super::transport`]), with
//! a read buffer decoded by tern-codec and a write buffer that batches many packets into one
//! write. The publisher and subscriber loops drive the socket themselves after that.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::BytesMut;
use tern_codec::{
    decode, encode, Connect, ConnectReturnCode, DecodeOptions, Disconnect, Packet, PacketId, Properties,
    ProtocolVersion, QoS, Subscribe, SubscribeFilter, SubscriptionOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout, Instant};

use super::transport::{Connector, Stream};

/// How long connecting (TCP and CONNACK) and subscribing may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the closing DISCONNECT may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Incoming packets larger than this are a protocol error for the bench.
pub const MAX_PACKET_SIZE: usize = 16 * 1024 * 1024;
/// Write when this many bytes are queued.
pub const BATCH_BYTES: usize = 64 * 1024;

/// A connected client.
pub struct Conn {
    pub stream: Box<dyn Stream>,
    pub version: ProtocolVersion,
    pub read_buf: BytesMut,
    pub write_buf: BytesMut,
    /// The broker's Receive Maximum (5.0), `u16::MAX` when it gave none.
    pub receive_maximum: u16,
    /// Keep alive in seconds, as sent in CONNECT.
    pub keep_alive: u16,
}

impl Conn {
    /// Connects through `connector` as `client_id`, with a clean session and `keep_alive`
    /// seconds (the loops send PINGREQ when they have been silent; see [`Pinger`]).
    pub async fn connect(
        connector: &Connector,
        client_id: String,
        version: ProtocolVersion,
        keep_alive: u16,
    ) -> anyhow::Result<Conn> {
        let handshake = async {
            let stream = connector.connect().await?;
            let mut conn = Conn {
                stream,
                version,
                read_buf: BytesMut::with_capacity(BATCH_BYTES),
                write_buf: BytesMut::with_capacity(BATCH_BYTES),
                receive_maximum: u16::MAX,
                keep_alive,
            };
            let connect = Connect {
                protocol: version,
                clean_start: true,
                keep_alive,
                client_id,
                will: None,
                username: None,
                password: None,
                properties: Properties::default(),
            };
            conn.queue(&Packet::Connect(Box::new(connect)))?;
            conn.flush().await?;
            match conn.read_packet().await? {
                Packet::ConnAck(connack) if connack.code == ConnectReturnCode::ACCEPTED => {
                    conn.receive_maximum = connack.properties.receive_maximum.unwrap_or(u16::MAX);
                    Ok(conn)
                }
                Packet::ConnAck(connack) => bail!("connection refused with code {:#04x}", connack.code.0),
                other => bail!("broker sent {} instead of CONNACK", other.name()),
            }
        };
        timeout(HANDSHAKE_TIMEOUT, handshake).await.map_err(|_| anyhow!("no CONNACK in time"))?
    }

    /// Subscribes to `filter` at `qos` and waits for a SUBACK granting it.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> anyhow::Result<()> {
        let packet_id = PacketId::new(1).expect("1 is a valid packet id");
        let options = SubscriptionOptions { qos, ..SubscriptionOptions::default() };
        let subscribe = Subscribe {
            packet_id,
            filters: vec![SubscribeFilter { filter: filter.to_owned(), options }],
            properties: Properties::default(),
        };
        self.queue(&Packet::Subscribe(subscribe))?;
        self.flush().await?;
        let suback =
            timeout(HANDSHAKE_TIMEOUT, self.read_packet()).await.map_err(|_| anyhow!("no SUBACK in time"))??;
        match suback {
            Packet::SubAck(suback) if suback.return_codes.first().is_some_and(|&code| code < 0x80) => Ok(()),
            Packet::SubAck(suback) => bail!("subscription to '{filter}' refused: {:?}", suback.return_codes),
            other => bail!("broker sent {} instead of SUBACK", other.name()),
        }
    }

    /// Encodes `packet` onto the write buffer.
    pub fn queue(&mut self, packet: &Packet) -> anyhow::Result<()> {
        encode(packet, self.version, &mut self.write_buf).with_context(|| format!("cannot encode {}", packet.name()))
    }

    async fn read_packet(&mut self) -> anyhow::Result<Packet> {
        loop {
            if let Some(packet) = next_buffered(&mut self.read_buf, self.version)? {
                return Ok(packet);
            }
            if self.stream.read_buf(&mut self.read_buf).await.context("reading from the broker")? == 0 {
                bail!("connection closed by the broker");
            }
        }
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        while !self.write_buf.is_empty() {
            self.stream.write_buf(&mut self.write_buf).await.context("writing to the broker")?;
        }
        Ok(())
    }

    /// Writes what is queued, then DISCONNECT, and closes; all within a second.
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.queue(&Packet::Disconnect(Disconnect::default()))?;
        let close = async {
            self.flush().await?;
            self.stream.shutdown().await.context("closing the connection")
        };
        timeout(CLOSE_TIMEOUT, close).await.map_err(|_| anyhow!("timed out disconnecting"))?
    }
}

/// Queues PINGREQ when a connection has sent nothing for three quarters of its keep alive.
#[derive(Debug)]
pub struct Pinger {
    period: Option<Duration>,
    last_sent: Instant,
}

impl Pinger {
    pub fn new(keep_alive: u16) -> Pinger {
        let period = (keep_alive > 0).then(|| Duration::from_secs(keep_alive.into()).mul_f64(0.75));
        Pinger { period, last_sent: Instant::now() }
    }

    /// Something was queued for the broker at `now`.
    pub fn sent(&mut self, now: Instant) {
        self.last_sent = now;
    }

    /// Queues a PINGREQ onto `write_buf` if one is due; returns when the next one will be.
    pub fn poll(
        &mut self,
        now: Instant,
        write_buf: &mut BytesMut,
        version: ProtocolVersion,
    ) -> anyhow::Result<Option<Instant>> {
        let Some(period) = self.period else { return Ok(None) };
        if now >= self.last_sent + period {
            encode(&Packet::PingReq, version, write_buf).context("cannot encode PINGREQ")?;
            self.last_sent = now;
        }
        Ok(Some(self.last_sent + period))
    }
}

/// The next whole packet in `read_buf`, if one is there.
pub fn next_buffered(read_buf: &mut BytesMut, version: ProtocolVersion) -> anyhow::Result<Option<Packet>> {
    let options = DecodeOptions { version, max_packet_size: MAX_PACKET_SIZE };
    decode(read_buf, &options).context("malformed packet from the broker")
}

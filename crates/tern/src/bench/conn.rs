//! One lean bench connection: CONNECT/CONNACK and SUBSCRIBE/SUBACK over a TCP stream, with
//! a read buffer decoded by tern-codec and a write buffer that batches many packets into one
//! write. The publisher and subscriber loops drive the socket themselves after that.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::BytesMut;
use tern_codec::{
    decode, encode, Connect, ConnectReturnCode, DecodeOptions, Disconnect, Packet, PacketId, Properties,
    ProtocolVersion, QoS, Subscribe, SubscribeFilter, SubscriptionOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

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
    pub stream: TcpStream,
    pub version: ProtocolVersion,
    pub read_buf: BytesMut,
    pub write_buf: BytesMut,
    /// The broker's Receive Maximum (5.0), `u16::MAX` when it gave none.
    pub receive_maximum: u16,
}

impl Conn {
    /// Connects to `address` as `client_id`, with a clean session and keep alive off (the
    /// run is bounded, and a QoS 0 subscriber may send nothing for a long time).
    pub async fn connect(address: SocketAddr, client_id: String, version: ProtocolVersion) -> anyhow::Result<Conn> {
        let handshake = async {
            let stream = TcpStream::connect(address).await.with_context(|| format!("cannot connect to {address}"))?;
            stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
            let mut conn = Conn {
                stream,
                version,
                read_buf: BytesMut::with_capacity(BATCH_BYTES),
                write_buf: BytesMut::with_capacity(BATCH_BYTES),
                receive_maximum: u16::MAX,
            };
            let connect = Connect {
                protocol: version,
                clean_start: true,
                keep_alive: 0,
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
        timeout(HANDSHAKE_TIMEOUT, handshake).await.map_err(|_| anyhow!("no CONNACK from {address} in time"))?
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

/// The next whole packet in `read_buf`, if one is there.
pub fn next_buffered(read_buf: &mut BytesMut, version: ProtocolVersion) -> anyhow::Result<Option<Packet>> {
    let options = DecodeOptions { version, max_packet_size: MAX_PACKET_SIZE };
    decode(read_buf, &options).context("malformed packet from the broker")
}

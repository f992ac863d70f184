//! A small MQTT client over one TCP connection, for `tern pub` and `tern sub`.
//!
//! It speaks through tern-codec and nothing else: the caller drives it one operation at a time
//! (connect, publish, subscribe, wait for the next message, disconnect), and it answers the
//! broker itself while it waits: acknowledgements for incoming QoS 1 and 2 messages (sent when
//! the caller takes the message, not before) and keep alive pings. It is not a general
//! library: one publish is in flight at a time, and no session state survives the process.
//!
//! Flags shared by both commands are in [`ConnectionArgs`]; reason codes in words are in
//! [`reason_text`].

mod args;
mod text;

pub use args::{valid_topic_name, ConnectionArgs};
pub use text::{connack_text, reason_text};

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::{Bytes, BytesMut};
use tern_codec::{
    decode, encode, ConnAck, Connect, ConnectReturnCode, DecodeOptions, Disconnect, Packet, PacketId, Properties,
    ProtocolVersion, PubResponse, Publish, QoS, SubAck, Subscribe, SubscribeFilter, SubscriptionOptions, TopicFilter,
    TopicName, MAX_REMAINING_LENGTH,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, Instant};

use text::describe;

/// How long to wait for the TCP connection and then for CONNACK.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long disconnecting (finishing inbound QoS 2 flows, then DISCONNECT) may take before
/// the client gives up and just closes.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest packet MQTT can express: the fixed header plus the largest remaining length.
const MAX_PACKET_SIZE: usize = MAX_REMAINING_LENGTH + 5;

/// A single-threaded tokio runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")
}

/// Sleeps until `deadline`, or forever when there is none; for optional branches of `select!`.
pub async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// One MQTT connection.
pub struct Client {
    stream: TcpStream,
    version: ProtocolVersion,
    client_id: String,
    debug: bool,
    read_buf: BytesMut,
    /// Encoded packets not yet written. Writing advances this buffer, so a write cut short by
    /// `select!` leaves the rest here for the next flush and no packet is sent in half.
    write_buf: BytesMut,
    next_packet_id: PacketId,
    keep_alive: Option<Duration>,
    last_sent: Instant,
    /// When the outstanding PINGREQ was queued.
    ping_sent: Option<Instant>,
    /// Incoming QoS 2 messages answered with PUBREC whose PUBREL has not arrived; a resent
    /// PUBLISH with one of these ids is a duplicate and is not delivered again.
    awaiting_pubrel: HashSet<PacketId>,
    /// Messages received but not yet handed to the caller. They are acknowledged when handed
    /// over, so a message the caller never takes (say after `-C`) is not acknowledged and a
    /// persistent session gets it again.
    inbox: VecDeque<Publish>,
    /// Set by [`Client::disconnect`]: new messages are left unacknowledged while the QoS 2
    /// flows already under way are completed.
    closing: bool,
}

impl Client {
    /// Connects to `host:port` and completes the CONNECT/CONNACK exchange.
    pub async fn connect(host: &str, port: u16, connect: Connect, debug: bool) -> anyhow::Result<Client> {
        let address = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| anyhow!("timed out connecting to {address}"))?
            .with_context(|| format!("cannot connect to {address}"))?;
        stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
        let mut client = Client {
            stream,
            version: connect.protocol,
            client_id: connect.client_id.clone(),
            debug,
            read_buf: BytesMut::with_capacity(4096),
            write_buf: BytesMut::with_capacity(4096),
            next_packet_id: PacketId::new(1).expect("1 is a valid packet id"),
            keep_alive: (connect.keep_alive > 0).then(|| Duration::from_secs(connect.keep_alive.into())),
            last_sent: Instant::now(),
            ping_sent: None,
            awaiting_pubrel: HashSet::new(),
            inbox: VecDeque::new(),
            closing: false,
        };
        client.queue(&Packet::Connect(Box::new(connect)))?;
        let reply = timeout(CONNECT_TIMEOUT, client.read_packet())
            .await
            .map_err(|_| anyhow!("no CONNACK from {address} within {} s", CONNECT_TIMEOUT.as_secs()))?
            .context("waiting for CONNACK")?;
        match reply {
            Packet::ConnAck(connack) => client.accept_connack(connack)?,
            other => bail!("protocol error: broker sent {} instead of CONNACK", other.name()),
        }
        Ok(client)
    }

    fn accept_connack(&mut self, connack: ConnAck) -> anyhow::Result<()> {
        if connack.code != ConnectReturnCode::ACCEPTED {
            let code = connack.code.0;
            let reason = connack.properties.reason_string.map(|text| format!(": {text}")).unwrap_or_default();
            bail!("connection refused: {} ({code:#04x}){reason}", connack_text(self.version, code));
        }
        if let Some(seconds) = connack.properties.server_keep_alive {
            // [MQTT-3.2.2-21]: the client must use the server's keep alive.
            self.keep_alive = (seconds > 0).then(|| Duration::from_secs(seconds.into()));
        }
        if let Some(id) = connack.properties.assigned_client_identifier {
            self.client_id = id;
        }
        Ok(())
    }

    /// Publishes one message and waits for the acknowledgements its QoS requires: none for
    /// QoS 0, PUBACK for 1, PUBREC then (after our PUBREL) PUBCOMP for 2.
    pub async fn publish(&mut self, topic: &TopicName, payload: Bytes, qos: QoS, retain: bool) -> anyhow::Result<()> {
        let packet_id = (qos != QoS::AtMostOnce).then(|| self.take_packet_id());
        let publish = Publish {
            dup: false,
            qos,
            retain,
            topic: topic.clone(),
            packet_id,
            payload,
            properties: Properties::default(),
        };
        self.queue(&Packet::Publish(publish))?;
        self.flush().await?;
        let Some(id) = packet_id else { return Ok(()) };
        if qos == QoS::AtLeastOnce {
            let puback = self.await_response(4, id).await?;
            return check_pub_reason("PUBACK", puback.reason_code);
        }
        let pubrec = self.await_response(5, id).await?;
        check_pub_reason("PUBREC", pubrec.reason_code)?;
        self.queue(&Packet::PubRel(PubResponse::new(id)))?;
        let pubcomp = self.await_response(7, id).await?;
        check_pub_reason("PUBCOMP", pubcomp.reason_code)
    }

    /// Subscribes to `filters` at `qos` and returns SUBACK's return codes, one per filter.
    pub async fn subscribe(&mut self, filters: &[TopicFilter], qos: QoS) -> anyhow::Result<SubAck> {
        let packet_id = self.take_packet_id();
        let options = SubscriptionOptions { qos, ..SubscriptionOptions::default() };
        let filters =
            filters.iter().map(|filter| SubscribeFilter { filter: filter.as_str().to_owned(), options }).collect();
        let subscribe = Subscribe { packet_id, filters, properties: Properties::default() };
        self.queue(&Packet::Subscribe(subscribe))?;
        loop {
            match self.read_packet().await? {
                Packet::SubAck(suback) if suback.packet_id == packet_id => return Ok(suback),
                other => self.handle_incoming(other)?,
            }
        }
    }

    /// Waits for the next application message and acknowledges it (PUBACK, or PUBREC and
    /// later PUBCOMP), answering keep alive on the way. Cancel safe: a message is never lost
    /// when this future is dropped in `select!`, because nothing awaits after it leaves the
    /// inbox.
    pub async fn next_message(&mut self) -> anyhow::Result<Publish> {
        loop {
            self.flush().await?;
            if let Some(publish) = self.inbox.pop_front() {
                self.acknowledge(&publish)?;
                return Ok(publish);
            }
            let packet = self.read_packet().await?;
            self.handle_incoming(packet)?;
        }
    }

    /// Completes the QoS 2 flows of messages already taken (waiting for their PUBREL), then
    /// sends DISCONNECT and closes, all within a few seconds.
    pub async fn disconnect(mut self) -> anyhow::Result<()> {
        self.closing = true;
        let close = async {
            while !self.awaiting_pubrel.is_empty() {
                let packet = self.read_packet().await?;
                self.handle_incoming(packet)?;
            }
            self.queue(&Packet::Disconnect(Disconnect::default()))?;
            self.flush().await?;
            self.stream.shutdown().await.context("closing the connection")
        };
        timeout(DISCONNECT_TIMEOUT, close).await.map_err(|_| anyhow!("timed out disconnecting"))?
    }

    /// Whether `-d` output is on; the commands print their own debug lines with it.
    pub fn debug(&self) -> bool {
        self.debug
    }

    /// Queues the acknowledgement of a message being handed to the caller.
    fn acknowledge(&mut self, publish: &Publish) -> anyhow::Result<()> {
        match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => self.queue(&Packet::PubAck(PubResponse::new(id))),
            (QoS::ExactlyOnce, Some(id)) => {
                self.awaiting_pubrel.insert(id);
                self.queue(&Packet::PubRec(PubResponse::new(id)))
            }
            _ => Ok(()),
        }
    }

    fn take_packet_id(&mut self) -> PacketId {
        let id = self.next_packet_id;
        self.next_packet_id = id.next();
        id
    }

    /// Reads until the PUBACK, PUBREC or PUBCOMP (`packet_type` 4, 5 or 7) for `id` arrives.
    async fn await_response(&mut self, packet_type: u8, id: PacketId) -> anyhow::Result<PubResponse> {
        loop {
            let packet = self.read_packet().await?;
            match &packet {
                Packet::PubAck(response) | Packet::PubRec(response) | Packet::PubComp(response)
                    if packet.packet_type() == packet_type && response.packet_id == id =>
                {
                    return Ok(response.clone());
                }
                _ => self.handle_incoming(packet)?,
            }
        }
    }

    /// Handles a packet nobody is waiting for: deliveries, their acknowledgements, PINGRESP.
    fn handle_incoming(&mut self, packet: Packet) -> anyhow::Result<()> {
        match packet {
            Packet::Publish(publish) => {
                if publish.qos != QoS::AtMostOnce && publish.packet_id.is_none() {
                    bail!("protocol error: QoS {} PUBLISH without packet id", publish.qos as u8);
                }
                match publish.packet_id {
                    // A resent QoS 2 message already taken: only its PUBREC was lost.
                    Some(id) if publish.qos == QoS::ExactlyOnce && self.awaiting_pubrel.contains(&id) => {
                        self.queue(&Packet::PubRec(PubResponse::new(id)))?;
                    }
                    // A resend of a message still in the inbox.
                    Some(id) if self.inbox.iter().any(|queued| queued.packet_id == Some(id)) => {}
                    _ if self.closing => {}
                    _ => self.inbox.push_back(publish),
                }
            }
            Packet::PubRel(pubrel) => {
                // PUBCOMP even for an unknown id: the broker may be resuming an old session.
                self.awaiting_pubrel.remove(&pubrel.packet_id);
                self.queue(&Packet::PubComp(PubResponse::new(pubrel.packet_id)))?;
            }
            Packet::PingResp => self.ping_sent = None,
            // Late acknowledgements of a flow already settled, e.g. from a resumed session.
            Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_) | Packet::SubAck(_) | Packet::UnsubAck(_) => {}
            Packet::Disconnect(disconnect) => {
                let reason = disconnect.properties.reason_string.map(|text| format!(": {text}")).unwrap_or_default();
                bail!(
                    "broker disconnected: {} ({:#04x}){reason}",
                    reason_text(disconnect.reason_code),
                    disconnect.reason_code
                );
            }
            other => bail!("protocol error: broker sent {}", other.name()),
        }
        Ok(())
    }

    /// Reads one packet, sending PINGREQ when the connection has been quiet for the keep alive.
    async fn read_packet(&mut self) -> anyhow::Result<Packet> {
        loop {
            self.flush().await?;
            let options = DecodeOptions { version: self.version, max_packet_size: MAX_PACKET_SIZE };
            if let Some(packet) = decode(&mut self.read_buf, &options).context("malformed packet from broker")? {
                self.trace("received", &packet);
                return Ok(packet);
            }
            let deadline = self.keep_alive.map(|period| self.ping_sent.unwrap_or(self.last_sent) + period);
            tokio::select! {
                read = self.stream.read_buf(&mut self.read_buf) => {
                    if read.context("reading from the broker")? == 0 {
                        bail!("connection closed by the broker");
                    }
                }
                () = sleep_until_some(deadline) => self.keep_alive_expired()?,
            }
        }
    }

    fn keep_alive_expired(&mut self) -> anyhow::Result<()> {
        let Some(period) = self.keep_alive else {
            return Ok(());
        };
        let now = Instant::now();
        if let Some(sent) = self.ping_sent {
            if now >= sent + period {
                bail!("no PINGRESP from the broker within {} s", period.as_secs());
            }
        } else if now >= self.last_sent + period {
            self.queue(&Packet::PingReq)?;
            self.ping_sent = Some(now);
        }
        Ok(())
    }

    /// Encodes `packet` into the write buffer; [`Client::flush`] sends it.
    fn queue(&mut self, packet: &Packet) -> anyhow::Result<()> {
        self.trace("sending", packet);
        encode(packet, self.version, &mut self.write_buf)
            .with_context(|| format!("cannot encode {}", packet.name()))?;
        self.last_sent = Instant::now();
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        while !self.write_buf.is_empty() {
            self.stream.write_buf(&mut self.write_buf).await.context("writing to the broker")?;
        }
        Ok(())
    }

    fn trace(&self, direction: &str, packet: &Packet) {
        if self.debug {
            for line in describe(packet) {
                eprintln!("Client {} {direction} {line}", self.client_id);
            }
        }
    }
}

fn check_pub_reason(packet: &str, code: u8) -> anyhow::Result<()> {
    if code >= 0x80 {
        bail!("publish refused: {packet} {} ({code:#04x})", reason_text(code));
    }
    Ok(())
}

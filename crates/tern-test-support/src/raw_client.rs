//! A client that sends and receives raw packets, with bounded waits.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tern_codec::{decode, encode, ConnAck, Connect, DecodeOptions, Packet, ProtocolVersion, Publish, QoS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::packets;

/// How long a test waits for a packet it expects.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A byte stream a client speaks MQTT over: TCP, TLS, or a WebSocket bridged to bytes.
trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> ClientStream for S {}

pub struct RawClient {
    stream: Box<dyn ClientStream>,
    rbuf: BytesMut,
    pub version: ProtocolVersion,
}

/// What the next read brought.
#[derive(Debug)]
enum Next {
    // Boxed: a CONNECT-sized variant would make every `Next` as large as the biggest packet.
    Packet(Box<Packet>),
    Closed,
    TimedOut,
}

impl RawClient {
    /// Opens a TCP connection; nothing is sent.
    pub async fn open(addr: SocketAddr, version: ProtocolVersion) -> RawClient {
        let stream = tokio::time::timeout(DEFAULT_TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect to the test broker");
        stream.set_nodelay(true).expect("nodelay");
        RawClient::over(stream, version)
    }

    /// A client over an already open stream (TLS, a WebSocket from [`crate::websocket`], or a
    /// TCP connection that has sent a PROXY header); nothing is sent.
    pub fn over(stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static, version: ProtocolVersion) -> RawClient {
        RawClient { stream: Box::new(stream), rbuf: BytesMut::new(), version }
    }

    /// Sends `connect` over an already open stream and returns the client with the CONNACK.
    pub async fn connect_over(
        stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
        connect: Connect,
    ) -> (RawClient, ConnAck) {
        let mut client = RawClient::over(stream, connect.protocol);
        client.send(Packet::Connect(Box::new(connect))).await;
        let connack = client.expect_connack().await;
        (client, connack)
    }

    /// Opens a connection, sends `connect`, and returns the client with the CONNACK.
    pub async fn connect_with(addr: SocketAddr, connect: Connect) -> (RawClient, ConnAck) {
        let mut client = RawClient::open(addr, connect.protocol).await;
        client.send(Packet::Connect(Box::new(connect))).await;
        let connack = client.expect_connack().await;
        (client, connack)
    }

    /// Connects with `client_id` and clean session as given; asserts the CONNACK accepts.
    pub async fn connect(
        addr: SocketAddr,
        version: ProtocolVersion,
        client_id: &str,
        clean: bool,
    ) -> (RawClient, ConnAck) {
        let (client, connack) = RawClient::connect_with(addr, packets::connect(version, client_id, clean)).await;
        assert_eq!(connack.code.0, 0, "CONNACK refused for {client_id}: {connack:?}");
        (client, connack)
    }

    pub async fn send(&mut self, packet: Packet) {
        let mut buf = BytesMut::new();
        encode(&packet, self.version, &mut buf).expect("test packet encodes");
        self.send_raw(&buf).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        // A broker that already closed may reset the connection; tests check that separately.
        let _ = self.stream.write_all(bytes).await;
    }

    async fn next(&mut self, timeout: Duration) -> Next {
        let options = DecodeOptions { version: self.version, max_packet_size: 256 * 1024 * 1024 };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match decode(&mut self.rbuf, &options) {
                Ok(Some(packet)) => return Next::Packet(Box::new(packet)),
                Ok(None) => {}
                Err(error) => panic!("broker sent a malformed packet: {error}"),
            }
            self.rbuf.reserve(4096);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf)).await {
                Err(_) => return Next::TimedOut,
                Ok(Ok(0)) | Ok(Err(_)) => return Next::Closed,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next packet; fails the test if none arrives in time or the connection closes.
    pub async fn recv(&mut self) -> Packet {
        match self.next(DEFAULT_TIMEOUT).await {
            Next::Packet(packet) => *packet,
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    /// The next packet if one arrives within `timeout`.
    pub async fn try_recv(&mut self, timeout: Duration) -> Option<Packet> {
        match self.next(timeout).await {
            Next::Packet(packet) => Some(*packet),
            Next::TimedOut => None,
            Next::Closed => panic!("connection closed while waiting for a packet"),
        }
    }

    /// The next packet, or `None` if the broker closes the connection first; fails the test if
    /// neither happens within `timeout`.
    pub async fn recv_or_closed(&mut self, timeout: Duration) -> Option<Packet> {
        match self.next(timeout).await {
            Next::Packet(packet) => Some(*packet),
            Next::Closed => None,
            Next::TimedOut => panic!("neither a packet nor a close within {timeout:?}"),
        }
    }

    pub async fn expect_connack(&mut self) -> ConnAck {
        match self.recv().await {
            Packet::ConnAck(connack) => connack,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    pub async fn expect_publish(&mut self) -> Publish {
        match self.recv().await {
            Packet::Publish(publish) => publish,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Asserts that nothing arrives for `duration` and the connection stays open.
    pub async fn expect_nothing(&mut self, duration: Duration) {
        match self.next(duration).await {
            Next::TimedOut => {}
            other => panic!("expected nothing, got {other:?}"),
        }
    }

    /// Asserts that the broker closes the connection within `timeout` (packets sent before
    /// the close, such as a CONNACK, are returned).
    pub async fn expect_closed_within(&mut self, timeout: Duration) -> Vec<Packet> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Closed => return before,
                Next::Packet(packet) => before.push(*packet),
                Next::TimedOut => {
                    panic!("connection still open after {timeout:?}; received {before:?}")
                }
            }
        }
    }

    /// Waits up to `timeout` for the broker to close the connection and says whether it did;
    /// packets received meanwhile are discarded. For tests where either outcome is acceptable.
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Closed => return true,
                Next::Packet(_) => {}
                Next::TimedOut => return false,
            }
        }
    }

    pub async fn expect_closed(&mut self) -> Vec<Packet> {
        self.expect_closed_within(DEFAULT_TIMEOUT).await
    }

    /// Subscribes and checks the SUBACK grants `filters` as requested.
    pub async fn subscribe(&mut self, packet_id: u16, filters: &[(&str, QoS)]) {
        self.send(packets::subscribe(packet_id, filters)).await;
        match self.recv().await {
            Packet::SubAck(suback) => {
                assert_eq!(suback.packet_id.get(), packet_id);
                let granted: Vec<u8> = filters.iter().map(|(_, qos)| *qos as u8).collect();
                assert_eq!(suback.return_codes, granted);
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Publishes and completes the QoS flow from the publisher's side.
    pub async fn publish_and_ack(&mut self, topic: &str, payload: &[u8], qos: QoS, retain: bool, packet_id: u16) {
        let id = (qos != QoS::AtMostOnce).then_some(packet_id);
        self.send(packets::publish(topic, payload, qos, retain, id)).await;
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => assert_eq!(self.recv().await, packets::puback(packet_id)),
            QoS::ExactlyOnce => {
                assert_eq!(self.recv().await, packets::pubrec(packet_id));
                self.send(packets::pubrel(packet_id)).await;
                assert_eq!(self.recv().await, packets::pubcomp(packet_id));
            }
        }
    }

    pub async fn disconnect(mut self) {
        self.send(Packet::Disconnect(Default::default())).await;
        let _ = self.expect_closed().await;
    }
}

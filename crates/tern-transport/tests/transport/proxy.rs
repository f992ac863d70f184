//! PROXY protocol versions 1 and 2 in front of TCP, TLS and WebSocket.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::version::TLS12;
use tern_transport::{Transport, TransportError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::support::{client_config, serve_once, within, Pki, Scratch, HANDSHAKE_TIMEOUT};

/// Sends `header` and `data` in one write, so that the server's first read may take both, and
/// returns the peer the server saw and the bytes it read after the header.
async fn through_proxy(header: &[u8], data: &[u8]) -> (SocketAddr, SocketAddr, Vec<u8>) {
    let (addr, server) = serve_once(Transport::Tcp, true, HANDSHAKE_TIMEOUT).await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    client.write_all(&[header, data].concat()).await.expect("write");
    let (mut stream, peer) = within(server).await.expect("server task").expect("handshake");
    let mut received = vec![0; data.len()];
    within(stream.read_exact(&mut received)).await.expect("read after the header");
    (peer.addr, client.local_addr().expect("client address"), received)
}

fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.push(0x20 | command);
    header.push((family << 4) | 1);
    header.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    header.extend_from_slice(addresses);
    header
}

const CONNECT: &[u8] = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04tern";

#[tokio::test]
async fn v1_tcp4_gives_the_client_address_and_keeps_the_data() {
    let header = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 1883\r\n";
    let (addr, _, data) = through_proxy(header, CONNECT).await;
    assert_eq!(addr, "192.0.2.7:56324".parse().expect("address"));
    assert_eq!(data, CONNECT);
}

#[tokio::test]
async fn v1_tcp6_gives_the_client_address() {
    let header = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 1883\r\n";
    let (addr, _, data) = through_proxy(header, CONNECT).await;
    assert_eq!(addr, "[2001:db8::7]:40000".parse().expect("address"));
    assert_eq!(data, CONNECT);
}

#[tokio::test]
async fn v1_unknown_keeps_the_socket_peer() {
    let (addr, client, data) = through_proxy(b"PROXY UNKNOWN\r\n", CONNECT).await;
    assert_eq!(addr, client);
    assert_eq!(data, CONNECT);
}

#[tokio::test]
async fn v2_tcp4_gives_the_client_address_and_keeps_the_data() {
    // Addresses, ports, then a TLV (type 4, NOOP) that is skipped.
    let addresses = [192, 0, 2, 7, 198, 51, 100, 1, 0xdc, 0x04, 0x07, 0x5b, 0x04, 0x00, 0x01, 0x00];
    let (addr, _, data) = through_proxy(&v2(1, 1, &addresses), CONNECT).await;
    assert_eq!(addr, "192.0.2.7:56324".parse().expect("address"));
    assert_eq!(data, CONNECT);
}

#[tokio::test]
async fn v2_tcp6_gives_the_client_address() {
    let mut addresses = Vec::new();
    addresses.extend_from_slice(&"2001:db8::7".parse::<std::net::Ipv6Addr>().expect("address").octets());
    addresses.extend_from_slice(&"2001:db8::1".parse::<std::net::Ipv6Addr>().expect("address").octets());
    addresses.extend_from_slice(&[0x9c, 0x40, 0x07, 0x5b]);
    let (addr, _, data) = through_proxy(&v2(1, 2, &addresses), CONNECT).await;
    assert_eq!(addr, "[2001:db8::7]:40000".parse().expect("address"));
    assert_eq!(data, CONNECT);
}

#[tokio::test]
async fn v2_local_keeps_the_socket_peer() {
    let (addr, client, data) = through_proxy(&v2(0, 0, &[]), CONNECT).await;
    assert_eq!(addr, client);
    assert_eq!(data, CONNECT);
}

#[tokio::test]
async fn malformed_headers_are_rejected() {
    for header in [
        &b"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n"[..],
        b"PROXY TCP4 2001:db8::7 198.51.100.1 56324 1883\r\n",
        b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04tern",
        &v2(1, 1, &[192, 0, 2, 7]),
        &[&b"PROXY TCP4 "[..], &[b'9'; 200]].concat(),
    ] {
        let (addr, server) = serve_once(Transport::Tcp, true, HANDSHAKE_TIMEOUT).await;
        let mut client = TcpStream::connect(addr).await.expect("connect");
        client.write_all(header).await.expect("write");
        let result = within(server).await.expect("server task");
        assert!(
            matches!(result, Err(TransportError::ProxyHeader(_))),
            "{:?} gave {:?}",
            String::from_utf8_lossy(header),
            result.map(|(_, peer)| peer)
        );
    }
}

#[tokio::test]
async fn connection_closed_inside_the_header_is_rejected() {
    let (addr, server) = serve_once(Transport::Tcp, true, HANDSHAKE_TIMEOUT).await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    client.write_all(b"PROXY TCP4 192.0").await.expect("write");
    drop(client);
    let result = within(server).await.expect("server task");
    assert!(matches!(result, Err(TransportError::ProxyHeader(_))), "{:?}", result.map(|(_, peer)| peer));
}

#[tokio::test]
async fn v1_header_then_tls_in_the_same_segment() {
    let pki = Pki::new("Tern test CA");
    let scratch = Scratch::new();
    let tls = Transport::tls(&scratch.tls_settings(&pki, false, false)).expect("TLS settings");
    let (addr, server) = serve_once(Transport::Tls(tls), true, HANDSHAKE_TIMEOUT).await;

    // The header and the ClientHello are written together: the server's header read takes part
    // of the ClientHello, which must reach the TLS layer intact.
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let connector = tokio_rustls::TlsConnector::from(client_config(&pki, &TLS12, None));
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let coalesced = Coalesce { header: Some(b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 8883\r\n".to_vec()), tcp };
    let mut client = connector.connect(name, coalesced).await.expect("TLS connect");
    let (mut stream, peer) = within(server).await.expect("server task").expect("handshake");
    assert_eq!(peer.addr, "192.0.2.7:56324".parse().expect("address"));
    client.write_all(CONNECT).await.expect("client write");
    client.flush().await.expect("client flush");
    let mut received = vec![0; CONNECT.len()];
    within(stream.read_exact(&mut received)).await.expect("server read");
    assert_eq!(received, CONNECT);
}

/// A client stream that prepends `header` to its first write, as a proxy would send both in one
/// segment.
struct Coalesce {
    header: Option<Vec<u8>>,
    tcp: TcpStream,
}

impl AsyncRead for Coalesce {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Coalesce {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Some(header) = this.header.take() {
            // Loopback takes a small write whole; a short write would fail the test loudly.
            let segment = [&header[..], buf].concat();
            return match Pin::new(&mut this.tcp).poll_write(cx, &segment) {
                Poll::Ready(Ok(n)) if n == segment.len() => Poll::Ready(Ok(buf.len())),
                Poll::Ready(Ok(n)) => Poll::Ready(Err(io::Error::other(format!("short write {n}")))),
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                Poll::Pending => {
                    this.header = Some(header);
                    Poll::Pending
                }
            };
        }
        Pin::new(&mut this.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

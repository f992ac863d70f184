//! Plain TCP and the handshake deadline.

use std::time::Duration;

use tern_transport::{Transport, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{serve_once, within, HANDSHAKE_TIMEOUT};

#[tokio::test]
async fn tcp_passes_bytes_both_ways_unchanged() {
    let (addr, server) = serve_once(Transport::Tcp, false, HANDSHAKE_TIMEOUT).await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    let (mut stream, peer) = within(server).await.expect("server task").expect("handshake");
    assert_eq!(peer.addr, client.local_addr().expect("client address"));
    assert_eq!(peer.certificate, None);

    client.write_all(b"\x10\x0cCONNECT").await.expect("client write");
    let mut received = [0; 9];
    within(stream.read_exact(&mut received)).await.expect("server read");
    assert_eq!(&received, b"\x10\x0cCONNECT");

    stream.write_all(b"\x20\x02\x00\x00").await.expect("server write");
    stream.flush().await.expect("server flush");
    let mut received = [0; 4];
    within(client.read_exact(&mut received)).await.expect("client read");
    assert_eq!(&received, b"\x20\x02\x00\x00");

    drop(stream);
    assert_eq!(within(client.read(&mut [0; 1])).await.expect("client read at close"), 0);
}

#[tokio::test]
async fn silent_client_times_out_waiting_for_a_proxy_header() {
    let (addr, server) = serve_once(Transport::Tcp, true, Duration::from_millis(200)).await;
    let _silent = TcpStream::connect(addr).await.expect("connect");
    let result = within(server).await.expect("server task");
    assert!(matches!(result, Err(TransportError::Timeout)), "{:?}", result.map(|(_, peer)| peer));
}

#[tokio::test]
async fn silent_client_times_out_in_the_websocket_handshake() {
    let transport = Transport::WebSocket { path: "/mqtt".to_owned() };
    let (addr, server) = serve_once(transport, false, Duration::from_millis(200)).await;
    let _silent = TcpStream::connect(addr).await.expect("connect");
    let result = within(server).await.expect("server task");
    assert!(matches!(result, Err(TransportError::Timeout)), "{:?}", result.map(|(_, peer)| peer));
}

//! WebSocket and WebSocket over TLS: path, subprotocols, and MQTT bytes in binary messages.

use futures_util::{SinkExt, StreamExt};
use rustls::version::TLS13;
use tern_transport::{BoxStream, CertificateIdentity, Transport, TransportError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::support::{client_config, serve_once, tls_connect, within, Pki, Scratch, HANDSHAKE_TIMEOUT};

fn ws_transport() -> Transport {
    Transport::WebSocket { path: "/mqtt".to_owned() }
}

/// Opens a WebSocket to `uri` over `stream`, offering `subprotocols` in one header; returns the
/// client and the subprotocol the server chose.
async fn ws_connect<S>(
    stream: S,
    uri: &str,
    subprotocols: Option<&str>,
) -> Result<(WebSocketStream<S>, Option<String>), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = uri.into_client_request()?;
    if let Some(subprotocols) = subprotocols {
        let value = HeaderValue::from_str(subprotocols).expect("header value");
        request.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    let (client, response) = tokio_tungstenite::client_async(request, stream).await?;
    let chosen = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .map(|value| value.to_str().expect("ASCII subprotocol").to_owned());
    Ok((client, chosen))
}

async fn open(subprotocols: Option<&str>) -> (WebSocketStream<TcpStream>, Option<String>, BoxStream) {
    let (addr, server) = serve_once(ws_transport(), false, HANDSHAKE_TIMEOUT).await;
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (client, chosen) = ws_connect(tcp, "ws://127.0.0.1/mqtt", subprotocols).await.expect("WebSocket connect");
    let (stream, peer) = within(server).await.expect("server task").expect("handshake");
    assert_eq!(peer.certificate, None);
    (client, chosen, stream)
}

#[tokio::test]
async fn subprotocol_mqtt_is_echoed() {
    let (_client, chosen, _stream) = open(Some("mqtt")).await;
    assert_eq!(chosen.as_deref(), Some("mqtt"));
}

#[tokio::test]
async fn subprotocol_mqttv31_is_echoed() {
    let (_client, chosen, _stream) = open(Some("mqttv3.1")).await;
    assert_eq!(chosen.as_deref(), Some("mqttv3.1"));
}

#[tokio::test]
async fn first_supported_subprotocol_offered_is_chosen() {
    let (_client, chosen, _stream) = open(Some("wamp, mqttv3.1, mqtt")).await;
    assert_eq!(chosen.as_deref(), Some("mqttv3.1"));
}

#[tokio::test]
async fn client_offering_no_subprotocol_is_accepted_without_one() {
    let (_client, chosen, _stream) = open(None).await;
    assert_eq!(chosen, None);
}

#[tokio::test]
async fn other_path_gets_http_404_and_the_connection_closes() {
    let (addr, server) = serve_once(ws_transport(), false, HANDSHAKE_TIMEOUT).await;
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let result = ws_connect(tcp, "ws://127.0.0.1/chat", Some("mqtt")).await;
    match result {
        Err(WsError::Http(response)) => assert_eq!(response.status(), StatusCode::NOT_FOUND),
        other => panic!("expected HTTP 404, got {:?}", other.map(|(_, chosen)| chosen)),
    }
    let result = within(server).await.expect("server task");
    assert!(matches!(&result, Err(TransportError::WebSocket(reason)) if reason.contains("404")), "{:?}", result.err());
}

#[tokio::test]
async fn plain_http_request_is_refused() {
    let (addr, server) = serve_once(ws_transport(), false, HANDSHAKE_TIMEOUT).await;
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("write");
    let result = within(server).await.expect("server task");
    assert!(matches!(result, Err(TransportError::WebSocket(_))), "{:?}", result.map(|(_, peer)| peer));
}

/// Binary messages in both directions, with packets split across messages and several packets
/// in one message; the server's writes arrive as binary messages.
async fn binary_both_ways<S>(client: &mut WebSocketStream<S>, stream: &mut BoxStream)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let connect = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04tern";
    // One packet across three messages, then two packets in one message.
    for part in [&connect[..3], &connect[3..10], &connect[10..]] {
        client.send(Message::binary(part.to_vec())).await.expect("client send");
    }
    client.send(Message::binary(b"\xc0\x00\xe0\x00".to_vec())).await.expect("client send");
    let mut received = [0; 22];
    within(stream.read_exact(&mut received)).await.expect("server read");
    assert_eq!(&received[..18], connect);
    assert_eq!(&received[18..], b"\xc0\x00\xe0\x00");

    stream.write_all(b"\x20\x02\x00\x00").await.expect("server write");
    stream.flush().await.expect("server flush");
    assert_eq!(
        within(client.next()).await.expect("message").expect("binary"),
        Message::binary(b"\x20\x02\x00\x00".to_vec())
    );

    // A message larger than the reader's buffer is handed out in order.
    let large: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    client.send(Message::binary(large.clone())).await.expect("client send");
    let mut received = vec![0; large.len()];
    within(stream.read_exact(&mut received)).await.expect("server read");
    assert_eq!(received, large);
}

#[tokio::test]
async fn binary_messages_carry_mqtt_bytes_both_ways() {
    let (mut client, _, mut stream) = open(Some("mqtt")).await;
    binary_both_ways(&mut client, &mut stream).await;
}

#[tokio::test]
async fn pings_are_answered_and_skipped() {
    let (mut client, _, mut stream) = open(Some("mqtt")).await;
    client.send(Message::Ping(b"hi".to_vec().into())).await.expect("ping");
    client.send(Message::binary(b"\xc0\x00".to_vec())).await.expect("client send");
    let mut received = [0; 2];
    within(stream.read_exact(&mut received)).await.expect("server read");
    assert_eq!(&received, b"\xc0\x00");
    assert_eq!(within(client.next()).await.expect("message").expect("pong"), Message::Pong(b"hi".to_vec().into()));
}

#[tokio::test]
async fn text_message_is_a_read_error() {
    let (mut client, _, mut stream) = open(Some("mqtt")).await;
    client.send(Message::text("\u{10}")).await.expect("client send");
    let error = within(stream.read(&mut [0; 16])).await.expect_err("text is refused");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
}

#[tokio::test]
async fn close_frame_is_end_of_stream() {
    let (mut client, _, mut stream) = open(Some("mqtt")).await;
    client.send(Message::binary(b"\xe0\x00".to_vec())).await.expect("client send");
    client.close(None).await.expect("close");
    let mut received = Vec::new();
    within(stream.read_to_end(&mut received)).await.expect("server read to end");
    assert_eq!(received, b"\xe0\x00");
}

#[tokio::test]
async fn server_shutdown_sends_a_close_frame() {
    let (mut client, _, mut stream) = open(Some("mqtt")).await;
    stream.shutdown().await.expect("shutdown");
    assert!(matches!(within(client.next()).await, Some(Ok(Message::Close(_)))));
}

#[tokio::test]
async fn websocket_over_tls_with_client_certificate() {
    let pki = Pki::new("Tern test CA");
    let identity = pki.client("dashboard", &["dashboard.example.com"]);
    let scratch = Scratch::new();
    let tls = Transport::tls(&scratch.tls_settings(&pki, true, true)).expect("TLS settings");
    let transport = Transport::WebSocketTls { tls, path: "/mqtt".to_owned() };
    let (addr, server) = serve_once(transport, false, HANDSHAKE_TIMEOUT).await;

    let tls_client = tls_connect(client_config(&pki, &TLS13, Some(&identity)), addr).await.expect("TLS connect");
    let (mut client, chosen) =
        ws_connect(tls_client, "wss://localhost/mqtt", Some("mqtt")).await.expect("WebSocket connect");
    assert_eq!(chosen.as_deref(), Some("mqtt"));
    let (mut stream, peer) = within(server).await.expect("server task").expect("handshake");
    assert_eq!(
        peer.certificate,
        Some(CertificateIdentity {
            common_name: Some("dashboard".to_owned()),
            subject_alt_names: vec!["dashboard.example.com".to_owned()],
        })
    );
    binary_both_ways(&mut client, &mut stream).await;
}

//! MQTT over WebSocket: the server's opening handshake (path and subprotocol) and [`WsStream`],
//! which turns the WebSocket's binary messages back into a byte stream.
//!
//! MQTT packets travel in binary messages, with no alignment between packets and messages: one
//! message may hold several packets and one packet may span several messages. Text messages are
//! a protocol violation (MQTT 5.0 section 6.0). tungstenite answers pings and close frames
//! itself; TLS, when wanted, is done underneath by [`crate::TlsAcceptor`].

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::TransportError;

/// The `Sec-WebSocket-Protocol` values of MQTT: `mqtt` (3.1.1 and 5.0) and `mqttv3.1` (3.1).
pub const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// Runs the server side of the opening handshake on `stream`, accepting only requests for
/// `path`; others get HTTP 404 and the connection closes.
///
/// The subprotocol is the first one the client offers among [`SUBPROTOCOLS`]. A client that
/// offers none (or none of ours) is accepted without one, as mosquitto does; a strict client
/// then closes by itself.
pub(crate) async fn accept<S>(stream: S, path: &str) -> Result<WsStream<S>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // The refusal's type is fixed by tungstenite's `Callback` trait.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, mut response: Response| {
        if request.uri().path() != path {
            let mut refusal = ErrorResponse::new(Some(format!("No MQTT WebSocket endpoint at this path; use {path}")));
            *refusal.status_mut() = StatusCode::NOT_FOUND;
            return Err(refusal);
        }
        if let Some(subprotocol) = choose_subprotocol(request) {
            response.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(subprotocol));
        }
        Ok(response)
    };
    match tokio_tungstenite::accept_hdr_async(stream, callback).await {
        Ok(websocket) => Ok(WsStream::new(websocket)),
        Err(WsError::Http(response)) => Err(TransportError::WebSocket(format!(
            "refused with HTTP {}: {}",
            response.status(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
        ))),
        Err(error) => Err(TransportError::WebSocket(error.to_string())),
    }
}

/// The first subprotocol the client offers that MQTT knows. The header may be repeated and
/// each value is a comma-separated list.
fn choose_subprotocol(request: &Request) -> Option<&'static str> {
    request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|offered| SUBPROTOCOLS.into_iter().find(|known| *known == offered.trim()))
}

/// A WebSocket connection as a byte stream: reads yield the payloads of binary messages in
/// order, each write is sent as one binary message.
///
/// At most one incoming message is held (the one being read); writes are bounded by
/// tungstenite's write buffer, which pushes back through `poll_write` once it is full.
#[derive(Debug)]
pub struct WsStream<S> {
    websocket: WebSocketStream<S>,
    /// The unread rest of the binary message being read.
    incoming: Bytes,
}

impl<S> WsStream<S> {
    fn new(websocket: WebSocketStream<S>) -> Self {
        WsStream { websocket, incoming: Bytes::new() }
    }
}

/// An I/O error for a WebSocket error; the peer's or our close is the end of the stream.
fn io_error(error: WsError) -> io::Error {
    match error {
        WsError::Io(error) => error,
        WsError::ConnectionClosed | WsError::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if !this.incoming.is_empty() {
                let n = this.incoming.len().min(buf.remaining());
                buf.put_slice(&this.incoming[..n]);
                this.incoming = this.incoming.slice(n..);
                return Poll::Ready(Ok(()));
            }
            // Returning without filling `buf` means end of stream, so empty messages, pings and
            // pongs are skipped here rather than returned.
            match ready!(Pin::new(&mut this.websocket).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => this.incoming = data,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "[MQTT-6.0.0-1] text WebSocket message: MQTT travels in binary messages",
                    )));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => return Poll::Ready(Ok(())),
                Some(Err(error)) => return Poll::Ready(Err(io_error(error))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    /// Sends all the slices as one binary message.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|buf| buf.len()).sum();
        if len == 0 {
            return Poll::Ready(Ok(0));
        }
        let mut websocket = Pin::new(&mut self.websocket);
        ready!(websocket.as_mut().poll_ready(cx)).map_err(io_error)?;
        let mut payload = Vec::with_capacity(len);
        for buf in bufs {
            payload.extend_from_slice(buf);
        }
        websocket.start_send(Message::Binary(payload.into())).map_err(io_error)?;
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.websocket).poll_flush(cx).map_err(io_error)
    }

    /// Sends a close frame and flushes it.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.websocket).poll_close(cx).map_err(io_error)
    }
}

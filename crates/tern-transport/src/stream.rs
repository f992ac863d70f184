//! The byte stream every transport yields.

use tokio::io::{AsyncRead, AsyncWrite};

/// A bidirectional byte stream carrying MQTT packets.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// A stream of any transport.
pub type BoxStream = Box<dyn Stream>;

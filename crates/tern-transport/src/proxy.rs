//! The PROXY protocol (versions 1 and 2) that load balancers put before the client's bytes to
//! tell the client's real address.
//!
//! The header is read before any other handshake. A version 2 header says its length, so it is
//! read exactly; a version 1 line is read in chunks of at most 107 bytes, and whatever arrived
//! after its CRLF is handed back to the next layer through [`Rewind`].

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::TransportError;

const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest version 1 header, CRLF included ("PROXY TCP6" with two full IPv6 addresses).
const V1_MAX_LEN: usize = 107;
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED_LEN: usize = 16;

/// What a complete header says, and how many bytes it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProxyHeader {
    /// The client's address, or `None` for LOCAL (health checks), UNKNOWN and non-IP families:
    /// the socket's peer address stands then.
    pub(crate) source: Option<SocketAddr>,
    pub(crate) len: usize,
}

/// The result of looking at the bytes read so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parsed {
    Complete(ProxyHeader),
    /// The header is not complete; the buffer may grow to this many bytes without reading past
    /// the header's end where its length is known.
    Incomplete {
        read_up_to: usize,
    },
}

/// Reads a PROXY header from `stream`. Returns the client's address it names (if any) and the
/// bytes read past the header, which belong to the next layer.
pub(crate) async fn read_header<S>(stream: &mut S) -> Result<(Option<SocketAddr>, Vec<u8>), TransportError>
where
    S: AsyncRead + Unpin,
{
    let mut buf = Vec::with_capacity(V1_MAX_LEN);
    loop {
        match parse(&buf).map_err(TransportError::ProxyHeader)? {
            Parsed::Complete(header) => {
                let rest = buf.split_off(header.len);
                return Ok((header.source, rest));
            }
            Parsed::Incomplete { read_up_to } => {
                let start = buf.len();
                if read_up_to <= start {
                    return Err(TransportError::ProxyHeader("header parser made no progress".to_owned()));
                }
                buf.resize(read_up_to, 0);
                let n = stream.read(&mut buf[start..]).await?;
                buf.truncate(start + n);
                if n == 0 {
                    return Err(TransportError::ProxyHeader("connection closed inside the header".to_owned()));
                }
            }
        }
    }
}

/// Parses a PROXY header at the start of `buf`.
pub(crate) fn parse(buf: &[u8]) -> Result<Parsed, String> {
    if buf.starts_with(V1_PREFIX) {
        parse_v1(buf)
    } else if buf.starts_with(V2_SIGNATURE) {
        parse_v2(buf)
    } else if V1_PREFIX.starts_with(buf) {
        Ok(Parsed::Incomplete { read_up_to: V1_PREFIX.len() })
    } else if V2_SIGNATURE.starts_with(buf) {
        Ok(Parsed::Incomplete { read_up_to: V2_FIXED_LEN })
    } else {
        Err("the connection does not start with a PROXY protocol signature".to_owned())
    }
}

/// `PROXY TCP4 <src> <dst> <src port> <dst port>\r\n`, `PROXY TCP6 ...` or `PROXY UNKNOWN ...\r\n`.
fn parse_v1(buf: &[u8]) -> Result<Parsed, String> {
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(end) = window.windows(2).position(|pair| pair == b"\r\n") else {
        return if buf.len() >= V1_MAX_LEN {
            Err(format!("version 1 header without CRLF in its first {V1_MAX_LEN} bytes"))
        } else {
            Ok(Parsed::Incomplete { read_up_to: V1_MAX_LEN })
        };
    };
    let line =
        std::str::from_utf8(&buf[V1_PREFIX.len()..end]).map_err(|_| "version 1 header is not ASCII".to_owned())?;
    let fields: Vec<&str> = line.split(' ').collect();
    let source = match fields.as_slice() {
        ["UNKNOWN", ..] => None,
        ["TCP4", source, destination, source_port, destination_port] => {
            let source: Ipv4Addr = source.parse().map_err(|_| format!("invalid TCP4 source address {source:?}"))?;
            destination.parse::<Ipv4Addr>().map_err(|_| format!("invalid TCP4 destination address {destination:?}"))?;
            parse_port(destination_port)?;
            Some(SocketAddr::new(IpAddr::V4(source), parse_port(source_port)?))
        }
        ["TCP6", source, destination, source_port, destination_port] => {
            let source: Ipv6Addr = source.parse().map_err(|_| format!("invalid TCP6 source address {source:?}"))?;
            destination.parse::<Ipv6Addr>().map_err(|_| format!("invalid TCP6 destination address {destination:?}"))?;
            parse_port(destination_port)?;
            Some(SocketAddr::new(IpAddr::V6(source), parse_port(source_port)?))
        }
        _ => return Err(format!("invalid version 1 header {line:?}")),
    };
    Ok(Parsed::Complete(ProxyHeader { source, len: end + 2 }))
}

fn parse_port(port: &str) -> Result<u16, String> {
    // u16::from_str would also take a leading '+'.
    if port.is_empty() || !port.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("invalid port {port:?}"));
    }
    port.parse().map_err(|_| format!("invalid port {port:?}"))
}

/// The 12-byte signature, version and command, address family and transport, a 16-bit length,
/// then the addresses and optional TLVs (ignored).
fn parse_v2(buf: &[u8]) -> Result<Parsed, String> {
    let Some(fixed) = buf.get(..V2_FIXED_LEN) else {
        return Ok(Parsed::Incomplete { read_up_to: V2_FIXED_LEN });
    };
    let (version, command) = (fixed[12] >> 4, fixed[12] & 0x0f);
    if version != 2 {
        return Err(format!("unsupported version {version} in a version 2 header"));
    }
    let (family, transport) = (fixed[13] >> 4, fixed[13] & 0x0f);
    let len = V2_FIXED_LEN + usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let Some(addresses) = buf.get(V2_FIXED_LEN..len) else {
        return Ok(Parsed::Incomplete { read_up_to: len });
    };
    if transport > 2 {
        return Err(format!("unknown transport protocol {transport}"));
    }
    let source = match (command, family) {
        // LOCAL: the proxy's own connection (a health check); the addresses are to be ignored.
        (0, _) => None,
        (1, 0) | (1, 3) => None,
        (1, 1) => {
            let bytes = addresses.get(..12).ok_or("address block too short for IPv4")?;
            let ip = Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([bytes[8], bytes[9]])))
        }
        (1, 2) => {
            let bytes = addresses.get(..36).ok_or("address block too short for IPv6")?;
            let mut ip = [0; 16];
            ip.copy_from_slice(&bytes[..16]);
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), u16::from_be_bytes([bytes[32], bytes[33]])))
        }
        (1, family) => return Err(format!("unknown address family {family}")),
        (command, _) => return Err(format!("unknown command {command}")),
    };
    Ok(Parsed::Complete(ProxyHeader { source, len }))
}

/// A stream that first yields bytes already read from its inner stream.
#[derive(Debug)]
pub struct Rewind<S> {
    prefix: Vec<u8>,
    consumed: usize,
    inner: S,
}

impl<S> Rewind<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Rewind { prefix, consumed: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.consumed < this.prefix.len() {
            let rest = &this.prefix[this.consumed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.consumed += n;
            if this.consumed == this.prefix.len() {
                this.prefix = Vec::new();
                this.consumed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> ProxyHeader {
        match parse(buf) {
            Ok(Parsed::Complete(header)) => header,
            other => panic!("expected a complete header, got {other:?}"),
        }
    }

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push((family << 4) | 1);
        header.extend_from_slice(&u16::try_from(addresses.len()).unwrap_or(u16::MAX).to_be_bytes());
        header.extend_from_slice(addresses);
        header
    }

    #[test]
    fn v1_tcp4_and_tcp6() {
        let header = complete(b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 1883\r\nMQTT");
        assert_eq!(header.source, Some("192.0.2.7:56324".parse().expect("address")));
        assert_eq!(header.len, 46);
        let header = complete(b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 8883\r\n");
        assert_eq!(header.source, Some("[2001:db8::7]:40000".parse().expect("address")));
    }

    #[test]
    fn v1_unknown_keeps_the_socket_peer() {
        assert_eq!(complete(b"PROXY UNKNOWN\r\n").source, None);
        assert_eq!(complete(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").source, None);
    }

    #[test]
    fn v1_partial_asks_for_at_most_107_bytes() {
        assert_eq!(parse(b""), Ok(Parsed::Incomplete { read_up_to: 6 }));
        assert_eq!(parse(b"PRO"), Ok(Parsed::Incomplete { read_up_to: 6 }));
        assert_eq!(parse(b"PROXY TCP4 1.2"), Ok(Parsed::Incomplete { read_up_to: V1_MAX_LEN }));
    }

    #[test]
    fn v1_malformed() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"[..],
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY \xff\r\n",
            b"GET / HTTP/1.1\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?} should be rejected", String::from_utf8_lossy(bad));
        }
        let too_long = [&b"PROXY "[..], &[b'A'; 120]].concat();
        assert!(parse(&too_long).is_err());
    }

    #[test]
    fn v2_inet_inet6_local_and_tlvs() {
        let inet = [192, 0, 2, 7, 198, 51, 100, 1, 0xdc, 0x04, 0x07, 0x5b, 0x03, 0x00, 0x00];
        let header = complete(&v2(1, 1, &inet));
        assert_eq!(header.source, Some("192.0.2.7:56324".parse().expect("address")));
        assert_eq!(header.len, 16 + inet.len());

        let mut inet6 = Vec::new();
        inet6.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().expect("address").octets());
        inet6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        inet6.extend_from_slice(&[0x9c, 0x40, 0x22, 0xb3]);
        assert_eq!(complete(&v2(1, 2, &inet6)).source, Some("[2001:db8::7]:40000".parse().expect("address")));

        assert_eq!(complete(&v2(0, 0, &[])).source, None);
        assert_eq!(complete(&v2(0, 1, &inet)).source, None);
    }

    #[test]
    fn v2_partial_reads_exactly_the_header() {
        let header = v2(1, 1, &[0; 12]);
        assert_eq!(parse(&header[..5]), Ok(Parsed::Incomplete { read_up_to: 16 }));
        assert_eq!(parse(&header[..16]), Ok(Parsed::Incomplete { read_up_to: 28 }));
    }

    #[test]
    fn v2_malformed() {
        assert!(parse(&v2(1, 1, &[0; 11])).is_err());
        assert!(parse(&v2(1, 2, &[0; 12])).is_err());
        assert!(parse(&v2(2, 1, &[0; 12])).is_err());
        assert!(parse(&v2(1, 4, &[0; 12])).is_err());
        let mut version_one = v2(1, 1, &[0; 12]);
        version_one[12] = 0x11;
        assert!(parse(&version_one).is_err());
    }
}

//! MQTT 5.0 enhanced authentication ([MQTT-4.12]) with SCRAM-SHA-256 and SCRAM-SHA-512: the
//! AUTH exchange between CONNECT and CONNACK.
//!
//! CONNECT carries the method and client-first; the server answers AUTH 0x18 (Continue
//! authentication) with server-first; the client answers AUTH 0x18 with client-final; the
//! server checks the proof and, once the session is claimed, sends CONNACK with server-final
//! as its Authentication Data, so the client can check the server in turn. Anything else
//! from the client during the exchange (another packet, another method, silence for the
//! connect timeout) closes the connection without CONNACK; a wrong proof gets CONNACK 0x86.
//!
//! Re-authentication (AUTH 0x19 after CONNACK) is not supported: tern-core closes the
//! connection with DISCONNECT 0x82 (Protocol Error), as for any unexpected AUTH.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tern_auth::{ScramError, ScramMechanism, ScramServer};
use tern_codec::{Auth, Connect, DecodeOptions, Packet, Properties, ProtocolVersion};
use tern_core::{ConnectIdentity, Metrics};
use tern_transport::Peer;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, warn};

use crate::authenticate::AuthRefusal;
use crate::connection::{read_packet, write_packets, ConnectionContext};

/// AUTH and CONNACK reason code 0x18, Continue authentication.
const CONTINUE_AUTHENTICATION: u8 = 0x18;

/// What became of a CONNECT's enhanced authentication.
pub enum EnhancedAuth {
    /// No Authentication Method: the usual authentication decides.
    NotApplicable,
    /// A method Tern does not support, or SCRAM without an `[auth] scram_file`. The client is
    /// not authenticated at all: tern-core refuses a CONNECT whose method was not run with
    /// CONNACK 0x8C ([MQTT-4.12.0-1]), before it looks at anything the identity would allow.
    Unsupported,
    /// The client proved who it is. `connack_data` (server-final) goes into CONNACK's
    /// Authentication Data, beside the same `method`.
    Authenticated { identity: ConnectIdentity, method: String, connack_data: Bytes },
    /// Answer CONNACK with this refusal, then close.
    Refused(AuthRefusal),
    /// Close without CONNACK: the client broke off or broke the exchange.
    Close,
}

/// Runs the exchange the CONNECT asks for, if it is one Tern supports, within `timeout` for
/// the client's answer. Packets read after CONNECT go through `rbuf`, which keeps whatever
/// follows the client's AUTH for the connection's main loop.
pub async fn enhanced_authenticate<S>(
    context: &ConnectionContext,
    connect: &Connect,
    peer: &Peer,
    stream: &mut S,
    rbuf: &mut BytesMut,
    timeout: Duration,
) -> EnhancedAuth
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(method) = connect.properties.authentication_method.as_deref() else {
        return EnhancedAuth::NotApplicable;
    };
    let (Some(mechanism), Some(scram), ProtocolVersion::V5) =
        (ScramMechanism::from_name(method), context.security.scram(), connect.protocol)
    else {
        debug!(peer = %peer.addr, method, "Unsupported authentication method");
        return EnhancedAuth::Unsupported;
    };
    let client_first = connect.properties.authentication_data.as_deref().unwrap_or_default();
    let lookup = |username: &str| scram.credentials(username, mechanism).cloned();
    let (server, server_first) = match ScramServer::start(lookup, mechanism, client_first) {
        Ok(started) => started,
        Err(error) => return refuse(context, connect, peer, "", &error),
    };

    let challenge = auth_packet(method, server_first);
    if write_packets(stream, &[challenge], ProtocolVersion::V5).await.is_err() {
        return EnhancedAuth::Close;
    }
    let options =
        DecodeOptions { version: ProtocolVersion::V5, max_packet_size: context.broker.limits.max_packet_size };
    let client_final = match tokio::time::timeout(timeout, read_packet(stream, rbuf, &options)).await {
        Ok(Ok(Packet::Auth(auth)))
            if auth.reason_code == CONTINUE_AUTHENTICATION
                && auth.properties.authentication_method.as_deref() == Some(method) =>
        {
            auth.properties.authentication_data.unwrap_or_default()
        }
        Ok(Ok(other)) => {
            // [MQTT-4.12.0-3], [MQTT-4.12.0-5]: only AUTH 0x18 with the same method continues.
            Metrics::incr(&context.broker.metrics.protocol_errors);
            debug!(peer = %peer.addr, packet = other.name(), "Unexpected packet during enhanced authentication; closing");
            return EnhancedAuth::Close;
        }
        Ok(Err(_)) => return EnhancedAuth::Close,
        Err(_) => {
            debug!(peer = %peer.addr, "No AUTH answer within the connect timeout; closing");
            return EnhancedAuth::Close;
        }
    };

    let username = server.username().to_owned();
    match server.finish(&client_final) {
        Ok((username, server_final)) => EnhancedAuth::Authenticated {
            identity: ConnectIdentity {
                username: Some(username),
                peer: Some(peer.addr),
                attributes: Vec::new(),
                enhanced_authentication: true,
            },
            method: method.to_owned(),
            connack_data: Bytes::from(server_final),
        },
        Err(error) => refuse(context, connect, peer, &username, &error),
    }
}

fn auth_packet(method: &str, data: Vec<u8>) -> Packet {
    Packet::Auth(Auth {
        reason_code: CONTINUE_AUTHENTICATION,
        properties: Properties {
            authentication_method: Some(method.to_owned()),
            authentication_data: Some(Bytes::from(data)),
            ..Properties::default()
        },
    })
}

/// A wrong password (or unknown user: SCRAM does not tell them apart) is 0x86, like a wrong
/// password in CONNECT; a malformed or unsupported exchange is 0x87.
fn refuse(
    context: &ConnectionContext,
    connect: &Connect,
    peer: &Peer,
    username: &str,
    error: &ScramError,
) -> EnhancedAuth {
    Metrics::incr(&context.broker.metrics.auth_failures);
    warn!(peer = %peer.addr, client_id = %connect.client_id, username, %error, "SCRAM authentication failed");
    EnhancedAuth::Refused(match error {
        ScramError::InvalidProof => AuthRefusal::BadCredentials,
        _ => AuthRefusal::NotAuthorized,
    })
}

//! The authentication step of CONNECT: who the client is, or which CONNACK refuses it.

use tern_auth::{AuthOutcome, AuthRequest};
use tern_codec::{Connect, ConnectReturnCode, ProtocolVersion};
use tern_core::{ConnectIdentity, Metrics};
use tern_transport::Peer;
use tracing::warn;

use crate::config::CertificateUsername;
use crate::connection::ConnectionContext;
use crate::listener::ListenerContext;

/// Why a client is refused, with its CONNACK code in each version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRefusal {
    /// 3.1.1 0x04, 5.0 0x86.
    BadCredentials,
    /// 3.1.1 0x05, 5.0 0x87.
    NotAuthorized,
}

impl AuthRefusal {
    pub fn code(self, version: ProtocolVersion) -> ConnectReturnCode {
        let v5 = version == ProtocolVersion::V5;
        ConnectReturnCode(match (self, v5) {
            (AuthRefusal::BadCredentials, false) => 0x04,
            (AuthRefusal::BadCredentials, true) => 0x86,
            (AuthRefusal::NotAuthorized, false) => 0x05,
            (AuthRefusal::NotAuthorized, true) => 0x87,
        })
    }
}

/// Decides who the client is: its verified certificate name (when the listener takes user
/// names from certificates), else the first configured backend that knows it, else an
/// anonymous client where the listener allows those. Failures are logged with the address and
/// counted.
pub async fn authenticate(
    context: &ConnectionContext,
    listener: &ListenerContext,
    connect: &Connect,
    peer: &Peer,
) -> Result<ConnectIdentity, AuthRefusal> {
    let identity = |username: Option<String>, attributes| ConnectIdentity {
        username,
        peer: Some(peer.addr),
        attributes,
        enhanced_authentication: false,
    };
    if let Some(from) = listener.username_from_certificate {
        let name = peer.certificate.as_ref().and_then(|cert| match from {
            CertificateUsername::Cn => cert.common_name.clone(),
            CertificateUsername::San => cert.subject_alt_names.first().cloned(),
        });
        return match name {
            Some(name) => Ok(identity(Some(name), Vec::new())),
            None => fail(context, connect, peer, AuthRefusal::NotAuthorized, "no usable client certificate"),
        };
    }
    let chain = context.security.chain();
    let request = AuthRequest {
        client_id: &connect.client_id,
        username: connect.username.as_deref(),
        password: connect.password.as_deref(),
        peer: peer.addr,
        certificate_username: None,
    };
    match chain.authenticate(&request).await {
        AuthOutcome::Allow { username, attributes } => Ok(identity(username.or(connect.username.clone()), attributes)),
        AuthOutcome::BadCredentials => fail(context, connect, peer, AuthRefusal::BadCredentials, "bad credentials"),
        AuthOutcome::NotAuthorized => fail(context, connect, peer, AuthRefusal::NotAuthorized, "not authorized"),
        // Credentials that no backend recognises are bad credentials, not an anonymous login.
        AuthOutcome::Abstain if (connect.username.is_some() || connect.password.is_some()) && !chain.is_empty() => {
            fail(context, connect, peer, AuthRefusal::BadCredentials, "unknown user")
        }
        AuthOutcome::Abstain if listener.allow_anonymous => Ok(identity(connect.username.clone(), Vec::new())),
        AuthOutcome::Abstain => {
            fail(context, connect, peer, AuthRefusal::NotAuthorized, "anonymous clients not allowed")
        }
    }
}

fn fail(
    context: &ConnectionContext,
    connect: &Connect,
    peer: &Peer,
    refusal: AuthRefusal,
    why: &str,
) -> Result<ConnectIdentity, AuthRefusal> {
    Metrics::incr(&context.broker.metrics.auth_failures);
    warn!(peer = %peer.addr, client_id = %connect.client_id, username = connect.username.as_deref().unwrap_or(""), why, "Authentication failed");
    Err(refusal)
}

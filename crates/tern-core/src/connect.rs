//! CONNECT handling: validate, claim the session, answer CONNACK ([MQTT-3.1], [MQTT-3.2]).

use std::sync::Arc;
use std::time::Instant;

use tern_codec::{ConnAck, Connect, ConnectReturnCode, Properties, ProtocolVersion};

use crate::authz::ClientInfo;
use crate::broker::{Broker, ClaimResult};
use crate::client_id::ClientId;
use crate::close::ProtocolError;
use crate::connection::Connection;
use crate::metrics::Metrics;
use crate::session::{SessionWaker, SESSION_NEVER_EXPIRES};

/// MQTT 3.1 limits client identifiers to 23 characters (3.1 spec, CONNECT payload).
const MQTT31_MAX_CLIENT_ID: usize = 23;

/// The result of a CONNECT.
pub enum ConnectOutcome {
    /// Send the CONNACK, then serve the connection. `previous_owner` must be woken so the
    /// connection it belongs to notices the takeover and closes.
    Accepted { connection: Box<Connection>, connack: ConnAck, previous_owner: Option<Arc<dyn SessionWaker>> },
    /// Send the CONNACK, then close ([MQTT-3.2.2-5]).
    Refused(ConnAck),
    /// Close without CONNACK.
    Invalid(ProtocolError),
    /// Another connection owns the session and is handing it over: wait for `waker` to be
    /// woken (bounded), then call again, with `force` once the wait has run out.
    Busy,
}

/// Why a CONNECT is refused, with its code in each protocol version.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    IdentifierRejected,
    ServerUnavailable,
    BadAuthenticationMethod,
    WillNotAuthorized,
}

/// Who the server's authentication says the client is.
#[derive(Debug, Clone, Default)]
pub struct ConnectIdentity {
    pub username: Option<String>,
    pub peer: Option<std::net::SocketAddr>,
    pub attributes: Vec<(String, String)>,
    /// The server completed the enhanced authentication named by the CONNECT's Authentication
    /// Method ([MQTT-4.12]). Without it, a CONNECT carrying a method is refused with 0x8C.
    pub enhanced_authentication: bool,
}

impl Refusal {
    fn code(self, version: ProtocolVersion) -> ConnectReturnCode {
        let v5 = version == ProtocolVersion::V5;
        ConnectReturnCode(match self {
            Refusal::IdentifierRejected if v5 => 0x85,
            Refusal::IdentifierRejected => 0x02,
            // 5.0 "Quota exceeded": the connection limit is a quota, and 0x88 would tell the
            // client the whole server is unavailable.
            Refusal::ServerUnavailable if v5 => 0x97,
            Refusal::ServerUnavailable => 0x03,
            Refusal::BadAuthenticationMethod if v5 => 0x8C,
            Refusal::BadAuthenticationMethod => 0x05,
            Refusal::WillNotAuthorized if v5 => 0x87,
            Refusal::WillNotAuthorized => 0x05,
        })
    }

    fn reason(self) -> &'static str {
        match self {
            Refusal::IdentifierRejected => "client identifier not valid",
            Refusal::ServerUnavailable => "connection limit reached",
            Refusal::BadAuthenticationMethod => "enhanced authentication is not supported",
            Refusal::WillNotAuthorized => "not authorized to publish the will",
        }
    }
}

fn refuse(broker: &Broker, connect: &Connect, refusal: Refusal) -> ConnectOutcome {
    Metrics::incr(&broker.metrics.connections_refused);
    let mut properties = Properties::default();
    // A reason string only when the client did not turn problem information off
    // ([MQTT-3.1.2-29]).
    if connect.protocol == ProtocolVersion::V5 && connect.properties.request_problem_information != Some(0) {
        properties.reason_string = Some(refusal.reason().to_string());
    }
    ConnectOutcome::Refused(ConnAck { session_present: false, code: refusal.code(connect.protocol), properties })
}

/// Handles a CONNECT that the codec decoded. `current_connections` counts this one.
pub fn accept_connect(
    broker: &Arc<Broker>,
    connect: Connect,
    now: Instant,
    current_connections: usize,
    waker: Arc<dyn SessionWaker>,
    force: bool,
    identity: ConnectIdentity,
) -> ConnectOutcome {
    let v5 = connect.protocol == ProtocolVersion::V5;
    if connect.will.as_ref().is_some_and(|will| will.topic.is_empty()) {
        return ConnectOutcome::Invalid(ProtocolError::EmptyWillTopic);
    }
    // The server runs enhanced authentication before this (tern-core knows no methods); a
    // method it did not run is one it does not support ([MQTT-4.12.0-1]).
    if connect.properties.authentication_method.is_some() && !identity.enhanced_authentication {
        return refuse(broker, &connect, Refusal::BadAuthenticationMethod);
    }
    let max = broker.limits.max_connections;
    if max != 0 && current_connections > max {
        return refuse(broker, &connect, Refusal::ServerUnavailable);
    }
    let mut assigned = None;
    let client_id = if connect.client_id.is_empty() {
        // 3.1 requires 1 to 23 characters; 3.1.1 lets the server assign an identifier, but
        // only for a clean session ([MQTT-3.1.3-6], [MQTT-3.1.3-8]); 5.0 always, and says so
        // in CONNACK ([MQTT-3.2.2-16]).
        if connect.protocol == ProtocolVersion::V3_1 || (!v5 && !connect.clean_start) {
            return refuse(broker, &connect, Refusal::IdentifierRejected);
        }
        let generated = ClientId::generate();
        assigned = v5.then(|| generated.to_string());
        generated
    } else {
        let too_long = connect.client_id.len() > broker.limits.max_client_id_length;
        if too_long
            || (connect.protocol == ProtocolVersion::V3_1 && connect.client_id.chars().count() > MQTT31_MAX_CLIENT_ID)
        {
            return refuse(broker, &connect, Refusal::IdentifierRejected);
        }
        ClientId::new(&connect.client_id)
    };

    let client = ClientInfo {
        client_id: client_id.clone(),
        username: identity.username,
        peer: identity.peer,
        attributes: identity.attributes,
    };
    // The will is a PUBLISH the client asks for now: it needs write permission on its topic.
    if connect.will.as_ref().is_some_and(|will| !broker.authorizer().can_publish(&client, &will.topic)) {
        Metrics::incr(&broker.metrics.publish_denied);
        return refuse(broker, &connect, Refusal::WillNotAuthorized);
    }
    // 3.x: a clean session lasts as long as the connection, another one forever. 5.0: the
    // Session Expiry Interval, 0 when absent ([MQTT-3.1.2-11..], [MQTT-3.1.2-23]).
    let expiry_interval = if v5 {
        connect.properties.session_expiry_interval.unwrap_or(0)
    } else if connect.clean_start {
        0
    } else {
        SESSION_NEVER_EXPIRES
    };
    let claim = match broker.claim(&client_id, connect.clean_start, expiry_interval, waker, now, force) {
        ClaimResult::Claimed(claim) => claim,
        ClaimResult::Busy => return ConnectOutcome::Busy,
    };
    let limits = &broker.limits;
    let server_keep_alive =
        (v5 && limits.max_keep_alive > 0 && (connect.keep_alive == 0 || connect.keep_alive > limits.max_keep_alive))
            .then_some(limits.max_keep_alive);
    let mut properties = Properties::default();
    if v5 {
        properties.receive_maximum = Some(limits.receive_maximum);
        properties.maximum_packet_size = u32::try_from(limits.max_packet_size).ok();
        properties.topic_alias_maximum = Some(limits.topic_alias_maximum);
        properties.retain_available = Some(1);
        properties.wildcard_subscription_available = Some(1);
        properties.subscription_identifier_available = Some(1);
        properties.shared_subscription_available = Some(1);
        properties.server_keep_alive = server_keep_alive;
        properties.assigned_client_identifier = assigned;
        if connect.properties.request_response_information == Some(1) {
            properties.response_information = broker
                .features
                .response_information
                .as_ref()
                .map(|template| template.replace("{client_id}", client_id.as_str()));
        }
    }
    let connack = ConnAck {
        // [MQTT-3.2.2-1]: session present is 0 with a clean session.
        session_present: claim.session_present,
        code: ConnectReturnCode::ACCEPTED,
        properties,
    };
    Metrics::incr(&broker.metrics.connections_total);
    let keep_alive = server_keep_alive.unwrap_or(connect.keep_alive);
    let connection = Connection::new(
        broker.clone(),
        claim.session,
        claim.generation,
        &connect,
        client,
        keep_alive,
        expiry_interval,
        now,
    );
    ConnectOutcome::Accepted { connection: Box::new(connection), connack, previous_owner: claim.previous_owner }
}

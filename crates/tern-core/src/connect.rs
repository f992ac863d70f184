//! CONNECT handling: validate, claim the session, answer CONNACK ([MQTT-3.1], [MQTT-3.2]).

use std::sync::Arc;
use std::time::Instant;

use tern_codec::{ConnAck, Connect, ConnectReturnCode, Properties, ProtocolVersion};

use crate::broker::{Broker, ClaimResult};
use crate::client_id::ClientId;
use crate::close::ProtocolError;
use crate::connection::Connection;
use crate::metrics::Metrics;
use crate::session::SessionWaker;

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

fn refuse(code: ConnectReturnCode) -> ConnectOutcome {
    ConnectOutcome::Refused(ConnAck { session_present: false, code, properties: Properties::default() })
}

/// Handles a CONNECT that the codec decoded. `current_connections` counts this one.
pub fn accept_connect(
    broker: &Arc<Broker>,
    connect: Connect,
    now: Instant,
    current_connections: usize,
    waker: Arc<dyn SessionWaker>,
    force: bool,
) -> ConnectOutcome {
    if connect.will.as_ref().is_some_and(|will| will.topic.is_empty()) {
        return ConnectOutcome::Invalid(ProtocolError::EmptyWillTopic);
    }
    let max = broker.limits.max_connections;
    if max != 0 && current_connections > max {
        Metrics::incr(&broker.metrics.connections_refused);
        return refuse(ConnectReturnCode::SERVER_UNAVAILABLE);
    }
    let client_id = if connect.client_id.is_empty() {
        // 3.1 requires 1 to 23 characters; 3.1.1 lets the server assign an identifier, but
        // only for a clean session ([MQTT-3.1.3-6], [MQTT-3.1.3-8]).
        if connect.protocol == ProtocolVersion::V3_1 || !connect.clean_start {
            Metrics::incr(&broker.metrics.connections_refused);
            return refuse(ConnectReturnCode::IDENTIFIER_REJECTED);
        }
        ClientId::generate()
    } else {
        if connect.protocol == ProtocolVersion::V3_1 && connect.client_id.chars().count() > MQTT31_MAX_CLIENT_ID {
            Metrics::incr(&broker.metrics.connections_refused);
            return refuse(ConnectReturnCode::IDENTIFIER_REJECTED);
        }
        ClientId::new(&connect.client_id)
    };

    let persistent = !connect.clean_start;
    let claim = match broker.claim(&client_id, connect.clean_start, persistent, waker, force) {
        ClaimResult::Claimed(claim) => claim,
        ClaimResult::Busy => return ConnectOutcome::Busy,
    };
    let connack = ConnAck {
        // [MQTT-3.2.2-1]: session present is 0 with a clean session.
        session_present: claim.session_present,
        code: ConnectReturnCode::ACCEPTED,
        properties: Properties::default(),
    };
    Metrics::incr(&broker.metrics.connections_total);
    let connection = Connection::new(broker.clone(), claim.session, claim.generation, &connect, client_id, now);
    ConnectOutcome::Accepted { connection: Box::new(connection), connack, previous_owner: claim.previous_owner }
}

//! The life of one accepted connection, as a state machine without I/O.
//!
//! The server feeds it decoded packets and the current time and writes out the packets it
//! returns; it never blocks and never sleeps. Keep alive is a deadline the server waits for
//! ([`Connection::keep_alive_deadline`]). Inbound PUBLISH and acknowledgements are in
//! `inbound.rs`, SUBSCRIBE/UNSUBSCRIBE in `subscribe.rs`, outgoing messages in `outbound.rs`.

mod inbound;
mod outbound;
mod subscribe;
#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use tern_codec::{Connect, Disconnect, LastWill, Packet, Properties, ProtocolVersion, TopicName};

use crate::authz::ClientInfo;
use crate::broker::{Broker, Will};
use crate::client_id::ClientId;
use crate::close::{CloseReason, ProtocolError};
use crate::message::Message;
use crate::metrics::Metrics;
use crate::rate::RateLimit;
use crate::session::{Session, SessionState};
use crate::store::{StoreError, StoredWill, Ticket};
use outbound::OutboundAliases;

/// One connected client after a successful CONNECT.
pub struct Connection {
    broker: Arc<Broker>,
    session: Arc<Session>,
    /// The session generation this connection claimed; a different one in the session means
    /// it was taken over.
    generation: u64,
    /// Who the client is, for authorization.
    client: ClientInfo,
    version: ProtocolVersion,
    /// 1.5 times the keep alive in force, or None when it is 0 ([MQTT-3.1.2-24]).
    keep_alive_grace: Option<Duration>,
    last_received: Instant,
    will: Option<LastWill>,
    /// Set on a resumed session: in-flight messages are sent again first ([MQTT-4.4.0-1]).
    resend_pending: bool,
    /// The Session Expiry Interval of CONNECT, for [MQTT-3.14.2-2].
    connect_session_expiry: u32,
    /// 5.0: unacknowledged QoS 1/2 messages the client accepts ([MQTT-3.3.4-7]).
    client_receive_maximum: u16,
    /// 5.0: the largest packet the client accepts ([MQTT-3.1.2-24]).
    client_maximum_packet_size: Option<u32>,
    /// 5.0 topic aliases the client set on this connection, bounded by our maximum.
    inbound_aliases: HashMap<u16, TopicName>,
    /// 5.0 topic aliases the broker assigned on this connection, bounded by the client's.
    outbound_aliases: OutboundAliases,
    /// Publish rate limits ([`crate::Limits::max_publish_rate`]), if configured.
    publish_rate: Option<RateLimit>,
    publish_bytes_rate: Option<RateLimit>,
    /// The last store write that must be durable before the packets produced so far are
    /// sent (acknowledgements of stored messages, QoS 2 marks): the server awaits it.
    barrier: Cell<Option<Ticket>>,
    /// A subscriber's queue this client published to is over its budget: read no more from
    /// the client until it drains (or a short while passes).
    congested: bool,
}

impl Connection {
    #[allow(clippy::too_many_arguments)] // Each is one negotiated property of the connection.
    pub(crate) fn new(
        broker: Arc<Broker>,
        session: Arc<Session>,
        generation: u64,
        connect: &Connect,
        client: ClientInfo,
        keep_alive: u16,
        session_expiry: u32,
        now: Instant,
    ) -> Connection {
        let keep_alive_grace = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
        let resend_pending = {
            let mut state = session.lock();
            // A persistent session keeps the will in the store, so that it is published after
            // a restart: the connection will have ended without DISCONNECT.
            if let Some(will) = connect.will.as_ref().filter(|_| state.stored.enabled) {
                let delay_secs = if connect.protocol == ProtocolVersion::V5 {
                    will.properties.will_delay_interval.unwrap_or(0)
                } else {
                    0
                };
                let message = Message::from_will(will.clone(), Some(client.client_id.clone()), now);
                state.connected_will = Some(StoredWill { message, delay_secs, due: None });
                broker.store_session(&client.client_id, &mut state);
            }
            !state.inflight.is_empty()
        };
        let v5 = connect.protocol == ProtocolVersion::V5;
        let properties = &connect.properties;
        Connection {
            session,
            generation,
            client,
            version: connect.protocol,
            keep_alive_grace,
            last_received: now,
            will: connect.will.clone(),
            resend_pending,
            connect_session_expiry: session_expiry,
            client_receive_maximum: properties.receive_maximum.filter(|_| v5).unwrap_or(u16::MAX),
            client_maximum_packet_size: properties.maximum_packet_size.filter(|_| v5),
            inbound_aliases: HashMap::new(),
            outbound_aliases: OutboundAliases::new(properties.topic_alias_maximum.filter(|_| v5).unwrap_or(0)),
            publish_rate: RateLimit::new(broker.limits.max_publish_rate, now),
            publish_bytes_rate: RateLimit::new(broker.limits.max_publish_bytes_rate, now),
            barrier: Cell::new(None),
            congested: false,
            broker,
        }
    }

    pub fn client_id(&self) -> &ClientId {
        &self.client.client_id
    }

    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    fn is_v5(&self) -> bool {
        self.version == ProtocolVersion::V5
    }

    /// Takes the store write that must be durable before the packets produced since the last
    /// call may be sent ([`crate::Store::commit`]); None when nothing waits for the store.
    pub fn take_barrier(&mut self) -> Option<Ticket> {
        self.barrier.take()
    }

    /// Whether the client should not be read from until this connection is woken, because
    /// a subscriber it publishes to is over its budget. Cleared by the call.
    pub fn take_congested(&mut self) -> bool {
        std::mem::take(&mut self.congested)
    }

    /// Holds the packets produced so far until `ticket` is durable.
    fn hold(&self, ticket: Option<Ticket>) {
        if ticket.is_some() {
            self.barrier.set(self.barrier.get().max(ticket));
        }
    }

    /// Holds them for a write that may have failed: a failure closes the connection before
    /// anything it was to make safe is acknowledged.
    fn hold_result(&self, write: Result<Option<Ticket>, StoreError>) -> Result<(), CloseReason> {
        match write {
            Ok(ticket) => {
                self.hold(ticket);
                Ok(())
            }
            Err(_) => Err(CloseReason::StorageFailed),
        }
    }

    /// When the connection must be closed unless a packet arrives first.
    pub fn keep_alive_deadline(&self) -> Option<Instant> {
        self.keep_alive_grace.map(|grace| self.last_received + grace)
    }

    /// Checks the keep alive deadline ([MQTT-3.1.2-24]).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), CloseReason> {
        match self.keep_alive_deadline() {
            Some(deadline) if now >= deadline => Err(CloseReason::KeepAliveTimeout),
            _ => Ok(()),
        }
    }

    /// Handles one packet from the client, appending the packets to send to `out`.
    pub fn handle_packet(&mut self, now: Instant, packet: Packet, out: &mut Vec<Packet>) -> Result<(), CloseReason> {
        self.last_received = now;
        match packet {
            Packet::Publish(publish) => self.handle_publish(now, publish, out)?,
            Packet::PubAck(ack) => self.handle_puback(ack.packet_id)?,
            Packet::PubRec(rec) => self.handle_pubrec(rec.packet_id, rec.reason_code, out)?,
            Packet::PubRel(rel) => self.handle_pubrel(rel.packet_id, out)?,
            Packet::PubComp(comp) => self.handle_pubcomp(comp.packet_id)?,
            Packet::Subscribe(subscribe) => self.handle_subscribe(now, subscribe, out)?,
            Packet::Unsubscribe(unsubscribe) => self.handle_unsubscribe(unsubscribe, out)?,
            Packet::PingReq => out.push(Packet::PingResp),
            Packet::Disconnect(disconnect) => return Err(self.handle_disconnect(disconnect)),
            Packet::Connect(_) => return Err(ProtocolError::SecondConnect.into()),
            // Enhanced authentication is not offered, so no AUTH exchange can be under way.
            Packet::Auth(_) => return Err(ProtocolError::UnexpectedAuth.into()),
            other @ (Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp) => {
                return Err(ProtocolError::ServerOnlyPacket(other.name()).into())
            }
        }
        Ok(())
    }

    /// A DISCONNECT from the client. 5.0 may change the session expiry, but not from 0
    /// ([MQTT-3.14.2-2]), and may ask for the will with reason 0x04; otherwise the will is
    /// discarded ([MQTT-3.14.4-3]).
    fn handle_disconnect(&mut self, disconnect: Disconnect) -> CloseReason {
        if self.is_v5() {
            if let Some(expiry) = disconnect.properties.session_expiry_interval {
                if self.connect_session_expiry == 0 && expiry != 0 {
                    return ProtocolError::SessionExpiryAfterZero.into();
                }
                if let Ok(mut state) = self.owned_session() {
                    let was_persistent = state.is_persistent();
                    state.expiry_interval = expiry;
                    if was_persistent && !state.is_persistent() {
                        self.broker.unstore_session(&self.client.client_id, &mut state);
                    } else {
                        self.broker.store_session(&self.client.client_id, &mut state);
                    }
                }
            }
            if disconnect.reason_code == 0x04 {
                return CloseReason::ClientDisconnectWithWill;
            }
        }
        self.will = None;
        CloseReason::ClientDisconnect
    }

    /// The DISCONNECT to send a 5.0 client before closing for `reason`, if any ([MQTT-4.13]).
    pub fn disconnect_packet(&self, reason: &CloseReason) -> Option<Packet> {
        if !self.is_v5() {
            return None;
        }
        let reason_code = reason.disconnect_reason_code()?;
        // A reason string is allowed on DISCONNECT even without problem information.
        let properties = Properties { reason_string: Some(reason.to_string()), ..Properties::default() };
        Some(Packet::Disconnect(Disconnect { reason_code, properties }))
    }

    /// Locks the session, or reports that this connection no longer owns it.
    fn owned_session(&self) -> Result<MutexGuard<'_, SessionState>, CloseReason> {
        lock_owned(&self.session, self.generation)
    }

    fn will_of(&self, will: LastWill, now: Instant) -> Will {
        let delay_secs = if self.is_v5() { will.properties.will_delay_interval.unwrap_or(0) } else { 0 };
        Will { message: Message::from_will(will, Some(self.client.client_id.clone()), now), delay_secs }
    }

    /// Publishes the will now, because the server is shutting down ([MQTT-3.1.2-8]); the
    /// connection keeps serving so the will can still reach its subscribers, and
    /// [`Connection::close`] will not publish it again.
    pub fn publish_will_for_shutdown(&mut self, now: Instant) {
        if let Some(will) = self.will.take() {
            Metrics::incr(&self.broker.metrics.wills_published);
            self.broker.publish(Message::from_will(will, Some(self.client.client_id.clone()), now));
        }
    }

    /// Ends the connection: hands unfinished shared-subscription messages to other members,
    /// then releases the session with the will unless the client sent a normal DISCONNECT
    /// ([MQTT-3.1.2-8]); the broker publishes it now or after its delay.
    pub fn close(mut self, reason: &CloseReason, now: Instant) {
        let will = self.will.take().filter(|_| reason.publishes_will()).map(|will| self.will_of(will, now));
        if let Ok(mut state) = self.owned_session() {
            let mut unfinished = state.take_unfinished_shared();
            for delivery in &mut unfinished {
                // Another member stores it again if it keeps a stored queue.
                self.broker.unstore_delivery(&self.client.client_id, &mut state, delivery.stored.take());
            }
            drop(state);
            self.broker.redispatch_shared(&self.client.client_id, unfinished);
        }
        self.broker.release(&self.session, self.generation, will, now);
    }
}

fn lock_owned(session: &Session, generation: u64) -> Result<MutexGuard<'_, SessionState>, CloseReason> {
    let state = session.lock();
    if state.generation != generation {
        return Err(CloseReason::TakenOver);
    }
    Ok(state)
}

//! The life of one accepted connection, as a state machine without I/O.
//!
//! The server feeds it decoded packets and the current time and writes out the packets it
//! returns; it never blocks and never sleeps. Keep alive is a deadline the server waits for
//! ([`Connection::keep_alive_deadline`]).

use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use tern_codec::{
    Connect, LastWill, Packet, PacketId, ProtocolVersion, PubResponse, Publish, QoS, SubAck, Subscribe,
    SubscriptionOptions, TopicFilter, UnsubAck, Unsubscribe,
};

use crate::broker::Broker;
use crate::client_id::ClientId;
use crate::close::{CloseReason, ProtocolError};
use crate::message::{Delivery, Message};
use crate::metrics::Metrics;
use crate::session::{Inflight, OutgoingState, Session, SessionState};

/// One connected client after a successful CONNECT.
pub struct Connection {
    broker: Arc<Broker>,
    session: Arc<Session>,
    /// The session generation this connection claimed; a different one in the session means
    /// it was taken over.
    generation: u64,
    client_id: ClientId,
    version: ProtocolVersion,
    /// 1.5 times the keep alive the client asked for, or None when it is 0 ([MQTT-3.1.2-24]).
    keep_alive_grace: Option<Duration>,
    last_received: Instant,
    will: Option<LastWill>,
    /// Set on a resumed session: in-flight messages are sent again first ([MQTT-4.4.0-1]).
    resend_pending: bool,
}

impl Connection {
    pub(crate) fn new(
        broker: Arc<Broker>,
        session: Arc<Session>,
        generation: u64,
        connect: &Connect,
        client_id: ClientId,
        now: Instant,
    ) -> Connection {
        let keep_alive_grace =
            (connect.keep_alive > 0).then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500));
        let resend_pending = !session.lock().inflight.is_empty();
        Connection {
            broker,
            session,
            generation,
            client_id,
            version: connect.protocol,
            keep_alive_grace,
            last_received: now,
            will: connect.will.clone(),
            resend_pending,
        }
    }

    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }

    pub fn version(&self) -> ProtocolVersion {
        self.version
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
            Packet::Publish(publish) => self.handle_publish(publish, out)?,
            Packet::PubAck(ack) => self.handle_puback(ack.packet_id)?,
            Packet::PubRec(rec) => self.handle_pubrec(rec.packet_id, out)?,
            Packet::PubRel(rel) => self.handle_pubrel(rel.packet_id, out)?,
            Packet::PubComp(comp) => self.handle_pubcomp(comp.packet_id)?,
            Packet::Subscribe(subscribe) => self.handle_subscribe(subscribe, out)?,
            Packet::Unsubscribe(unsubscribe) => self.handle_unsubscribe(unsubscribe, out)?,
            Packet::PingReq => out.push(Packet::PingResp),
            Packet::Disconnect(_) => {
                // [MQTT-3.14.4-3]: the will is discarded.
                self.will = None;
                return Err(CloseReason::ClientDisconnect);
            }
            Packet::Connect(_) => return Err(ProtocolError::SecondConnect.into()),
            other @ (Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp
            | Packet::Auth(_)) => return Err(ProtocolError::ServerOnlyPacket(other.name()).into()),
        }
        Ok(())
    }

    /// Locks the session, or reports that this connection no longer owns it.
    fn owned_session(&self) -> Result<MutexGuard<'_, SessionState>, CloseReason> {
        lock_owned(&self.session, self.generation)
    }

    fn handle_publish(&mut self, publish: Publish, out: &mut Vec<Packet>) -> Result<(), CloseReason> {
        if publish.topic.is_empty() {
            return Err(ProtocolError::EmptyTopicName.into());
        }
        match (publish.qos, publish.packet_id) {
            (QoS::AtMostOnce, _) | (_, None) => self.broker.publish(Message::from_publish(publish)),
            (QoS::AtLeastOnce, Some(packet_id)) => {
                self.broker.publish(Message::from_publish(publish));
                out.push(Packet::PubAck(PubResponse::new(packet_id)));
            }
            (QoS::ExactlyOnce, Some(packet_id)) => {
                // Deliver on first receipt; a resent PUBLISH with the same id before PUBREL is
                // acknowledged again but not delivered again ([MQTT-4.3.3-2]).
                let first = self.owned_session()?.incoming_qos2.insert(packet_id);
                if first {
                    self.broker.publish(Message::from_publish(publish));
                }
                out.push(Packet::PubRec(PubResponse::new(packet_id)));
            }
        }
        Ok(())
    }

    fn handle_pubrel(&mut self, packet_id: PacketId, out: &mut Vec<Packet>) -> Result<(), CloseReason> {
        // PUBCOMP even for an unknown id, so a client that lost our PUBCOMP can finish
        // ([MQTT-4.3.3-2]).
        self.owned_session()?.incoming_qos2.remove(&packet_id);
        out.push(Packet::PubComp(PubResponse::new(packet_id)));
        Ok(())
    }

    fn handle_puback(&mut self, packet_id: PacketId) -> Result<(), CloseReason> {
        let mut state = self.owned_session()?;
        if let Some(index) = state.inflight_position(packet_id) {
            if state.inflight[index].state == OutgoingState::AwaitingPubAck {
                state.inflight.remove(index);
            }
        }
        Ok(())
    }

    fn handle_pubrec(&mut self, packet_id: PacketId, out: &mut Vec<Packet>) -> Result<(), CloseReason> {
        let mut state = self.owned_session()?;
        if let Some(index) = state.inflight_position(packet_id) {
            let entry = &mut state.inflight[index];
            if entry.state == OutgoingState::AwaitingPubRec {
                // The message is now owned by the receiver; keep only the id ([MQTT-4.3.3-1]).
                entry.state = OutgoingState::AwaitingPubComp;
            }
        }
        out.push(Packet::PubRel(PubResponse::new(packet_id)));
        Ok(())
    }

    fn handle_pubcomp(&mut self, packet_id: PacketId) -> Result<(), CloseReason> {
        let mut state = self.owned_session()?;
        if let Some(index) = state.inflight_position(packet_id) {
            if state.inflight[index].state == OutgoingState::AwaitingPubComp {
                state.inflight.remove(index);
            }
        }
        Ok(())
    }

    fn handle_subscribe(&mut self, subscribe: Subscribe, out: &mut Vec<Packet>) -> Result<(), CloseReason> {
        let mut state = self.owned_session()?;
        let mut return_codes = Vec::with_capacity(subscribe.filters.len());
        let mut retained = Vec::new();
        for requested in &subscribe.filters {
            let Ok(filter) = TopicFilter::new(&requested.filter) else {
                return_codes.push(SubAck::FAILURE);
                continue;
            };
            let options = SubscriptionOptions { qos: requested.options.qos, ..requested.options };
            // A subscription to the same filter replaces the old one ([MQTT-3.8.4-3]).
            state.subscriptions.insert(filter.clone(), options);
            self.broker.subscribe(&self.client_id, &filter, options);
            return_codes.push(options.qos as u8);
            // Retained messages matching the filter are sent, with retain 1 ([MQTT-3.3.1-6],
            // [MQTT-3.3.1-8]).
            for message in self.broker.retained_matching(&filter) {
                let qos = message.qos.min(options.qos);
                retained.push(Delivery { message, qos, retain: true });
            }
        }
        self.broker.store_session(&self.client_id, &state);
        // [MQTT-3.8.4-1]: SUBACK first, with the same packet id ([MQTT-3.8.4-2]).
        out.push(Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            return_codes,
            properties: Default::default(),
        }));
        for delivery in retained {
            state.push_unbounded(delivery);
        }
        Ok(())
    }

    fn handle_unsubscribe(&mut self, unsubscribe: Unsubscribe, out: &mut Vec<Packet>) -> Result<(), CloseReason> {
        let mut state = self.owned_session()?;
        for filter in &unsubscribe.filters {
            let Ok(filter) = TopicFilter::new(filter) else {
                continue;
            };
            if state.subscriptions.remove(&filter).is_some() {
                self.broker.unsubscribe(&self.client_id, &filter);
            }
        }
        self.broker.store_session(&self.client_id, &state);
        // [MQTT-3.10.4-4]: UNSUBACK even when nothing matched.
        out.push(Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            reason_codes: Vec::new(),
            properties: Default::default(),
        }));
        Ok(())
    }

    /// Appends up to `max_packets` outgoing PUBLISH/PUBREL packets: first, on a resumed
    /// session, every unacknowledged message again in its original order (PUBLISH with DUP,
    /// or PUBREL) ([MQTT-4.4.0-1]); then queued messages within the in-flight window.
    pub fn poll_outgoing(&mut self, out: &mut Vec<Packet>, max_packets: usize) -> Result<(), CloseReason> {
        let max_inflight = self.broker.limits.max_inflight_messages;
        let mut state = lock_owned(&self.session, self.generation)?;
        if state.takeover_requested {
            // A new connection wants the session: stop sending; the server applies what the
            // client already sent, then closes this connection and releases the session.
            return Err(CloseReason::TakenOver);
        }
        if self.resend_pending {
            self.resend_pending = false;
            for entry in &state.inflight {
                out.push(match entry.state {
                    OutgoingState::AwaitingPubComp => Packet::PubRel(PubResponse::new(entry.packet_id)),
                    _ => Packet::Publish(outgoing_publish(&entry.delivery, Some(entry.packet_id), true)),
                });
            }
        }
        let mut sent = 0;
        while sent < max_packets {
            let Some(delivery) = state.pop_sendable(max_inflight) else {
                break;
            };
            let packet_id = match delivery.qos {
                QoS::AtMostOnce => None,
                qos => {
                    let packet_id = state.allocate_packet_id();
                    let waiting = if qos == QoS::AtLeastOnce {
                        OutgoingState::AwaitingPubAck
                    } else {
                        OutgoingState::AwaitingPubRec
                    };
                    state.inflight.push_back(Inflight { packet_id, delivery: delivery.clone(), state: waiting });
                    Some(packet_id)
                }
            };
            out.push(Packet::Publish(outgoing_publish(&delivery, packet_id, false)));
            sent += 1;
        }
        drop(state);
        for _ in 0..sent {
            Metrics::incr(&self.broker.metrics.messages_sent);
        }
        Ok(())
    }

    /// Publishes the will now, because the server is shutting down ([MQTT-3.1.2-8]); the
    /// connection keeps serving so the will can still reach its subscribers, and
    /// [`Connection::close`] will not publish it again.
    pub fn publish_will_for_shutdown(&mut self) {
        if let Some(will) = self.will.take() {
            self.publish_will(will);
        }
    }

    fn publish_will(&self, will: LastWill) {
        Metrics::incr(&self.broker.metrics.wills_published);
        self.broker.publish(Message {
            topic: will.topic,
            payload: will.payload,
            qos: will.qos,
            retain: will.retain,
            properties: will.properties,
        });
    }

    /// Ends the connection: publishes the will unless the client sent DISCONNECT
    /// ([MQTT-3.1.2-8]), and releases the session (a clean one ends here).
    pub fn close(mut self, reason: &CloseReason) {
        if let Some(will) = self.will.take() {
            if reason.publishes_will() {
                self.publish_will(will);
            }
        }
        self.broker.release(&self.session, self.generation);
    }
}

fn lock_owned(session: &Session, generation: u64) -> Result<MutexGuard<'_, SessionState>, CloseReason> {
    let state = session.lock();
    if state.generation != generation {
        return Err(CloseReason::TakenOver);
    }
    Ok(state)
}

fn outgoing_publish(delivery: &Delivery, packet_id: Option<PacketId>, dup: bool) -> Publish {
    let message = &delivery.message;
    Publish {
        dup,
        qos: delivery.qos,
        retain: delivery.retain,
        topic: message.topic.clone(),
        packet_id,
        payload: message.payload.clone(),
        properties: message.properties.clone(),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tern_codec::{Properties, SubscribeFilter, TopicName};

    use super::*;
    use crate::connect::{accept_connect, ConnectOutcome};
    use crate::session::SessionWaker;

    struct NoopWaker;
    impl SessionWaker for NoopWaker {
        fn wake(&self) {}
    }

    fn connect_packet(id: &str, clean: bool, keep_alive: u16) -> Connect {
        Connect {
            protocol: ProtocolVersion::V3_1_1,
            clean_start: clean,
            keep_alive,
            client_id: id.into(),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        }
    }

    fn try_connect(broker: &Arc<Broker>, id: &str, clean: bool, force: bool) -> Option<(Connection, bool)> {
        match accept_connect(broker, connect_packet(id, clean, 0), Instant::now(), 1, Arc::new(NoopWaker), force) {
            ConnectOutcome::Accepted { connection, connack, .. } => Some((*connection, connack.session_present)),
            ConnectOutcome::Busy => None,
            _ => panic!("connect refused"),
        }
    }

    fn connect(broker: &Arc<Broker>, id: &str, clean: bool, keep_alive: u16, now: Instant) -> (Connection, bool) {
        match accept_connect(broker, connect_packet(id, clean, keep_alive), now, 1, Arc::new(NoopWaker), false) {
            ConnectOutcome::Accepted { connection, connack, .. } => (*connection, connack.session_present),
            _ => panic!("connect refused"),
        }
    }

    fn publish(topic: &str, qos: QoS, id: Option<u16>, dup: bool) -> Packet {
        Packet::Publish(Publish {
            dup,
            qos,
            retain: false,
            topic: TopicName::new(topic).unwrap(),
            packet_id: id.and_then(PacketId::new),
            payload: Bytes::from_static(b"p"),
            properties: Properties::default(),
        })
    }

    fn subscribe(connection: &mut Connection, filter: &str, qos: QoS, now: Instant) {
        let mut out = Vec::new();
        let packet = Packet::Subscribe(Subscribe {
            packet_id: PacketId::new(1).unwrap(),
            filters: vec![SubscribeFilter {
                filter: filter.into(),
                options: SubscriptionOptions { qos, ..Default::default() },
            }],
            properties: Properties::default(),
        });
        connection.handle_packet(now, packet, &mut out).unwrap();
        assert!(matches!(out[..], [Packet::SubAck(_)]));
    }

    fn outgoing(connection: &mut Connection) -> Vec<Packet> {
        let mut out = Vec::new();
        connection.poll_outgoing(&mut out, 100).unwrap();
        out
    }

    #[test]
    fn keep_alive_closes_after_one_and_a_half_times_the_interval() {
        // [MQTT-3.1.2-24]
        let broker = Arc::new(Broker::default());
        let start = Instant::now();
        let (mut connection, _) = connect(&broker, "k", true, 10, start);
        assert_eq!(connection.keep_alive_deadline(), Some(start + Duration::from_secs(15)));
        assert!(connection.handle_timeout(start + Duration::from_millis(14_999)).is_ok());
        let mut out = Vec::new();
        connection.handle_packet(start + Duration::from_secs(10), Packet::PingReq, &mut out).unwrap();
        assert_eq!(out, vec![Packet::PingResp]);
        assert!(connection.handle_timeout(start + Duration::from_secs(20)).is_ok());
        assert_eq!(connection.handle_timeout(start + Duration::from_secs(25)), Err(CloseReason::KeepAliveTimeout));
        let (no_keep_alive, _) = connect(&broker, "z", true, 0, start);
        assert_eq!(no_keep_alive.keep_alive_deadline(), None);
    }

    #[test]
    fn qos2_resent_before_pubrel_is_delivered_once() {
        // [MQTT-4.3.3-2]
        let broker = Arc::new(Broker::default());
        let now = Instant::now();
        let (mut subscriber, _) = connect(&broker, "sub", true, 0, now);
        subscribe(&mut subscriber, "t", QoS::ExactlyOnce, now);
        let (mut publisher, _) = connect(&broker, "pub", true, 0, now);
        let mut out = Vec::new();
        publisher.handle_packet(now, publish("t", QoS::ExactlyOnce, Some(7), false), &mut out).unwrap();
        publisher.handle_packet(now, publish("t", QoS::ExactlyOnce, Some(7), true), &mut out).unwrap();
        let rec = Packet::PubRec(PubResponse::new(PacketId::new(7).unwrap()));
        assert_eq!(out, vec![rec.clone(), rec]);
        out.clear();
        publisher.handle_packet(now, Packet::PubRel(PubResponse::new(PacketId::new(7).unwrap())), &mut out).unwrap();
        assert_eq!(out, vec![Packet::PubComp(PubResponse::new(PacketId::new(7).unwrap()))]);
        assert_eq!(outgoing(&mut subscriber).len(), 1);
        // After PUBREL the id is free again: a new message with it is a new message.
        publisher.handle_packet(now, publish("t", QoS::ExactlyOnce, Some(7), false), &mut out).unwrap();
        assert_eq!(outgoing(&mut subscriber).len(), 1);
    }

    #[test]
    fn resumed_session_resends_in_flight_in_order_with_dup_and_pubrel() {
        // [MQTT-4.4.0-1]
        let broker = Arc::new(Broker::default());
        let now = Instant::now();
        let (mut subscriber, _) = connect(&broker, "sub", false, 0, now);
        subscribe(&mut subscriber, "t", QoS::ExactlyOnce, now);
        let (mut publisher, _) = connect(&broker, "pub", true, 0, now);
        let mut out = Vec::new();
        publisher.handle_packet(now, publish("t", QoS::AtLeastOnce, Some(1), false), &mut out).unwrap();
        publisher.handle_packet(now, publish("t", QoS::ExactlyOnce, Some(2), false), &mut out).unwrap();
        publisher.handle_packet(now, publish("t", QoS::ExactlyOnce, Some(3), false), &mut out).unwrap();
        let first = outgoing(&mut subscriber);
        let ids: Vec<PacketId> = first
            .iter()
            .map(|p| match p {
                Packet::Publish(publish) => publish.packet_id.unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        // The subscriber acknowledges the second one with PUBREC only, then goes away.
        out.clear();
        subscriber.handle_packet(now, Packet::PubRec(PubResponse::new(ids[1])), &mut out).unwrap();
        subscriber.close(&CloseReason::ConnectionLost);

        let (mut resumed, session_present) = connect(&broker, "sub", false, 0, now);
        assert!(session_present);
        let again = outgoing(&mut resumed);
        assert_eq!(again.len(), 3);
        match (&again[0], &again[1], &again[2]) {
            (Packet::Publish(a), Packet::PubRel(b), Packet::Publish(c)) => {
                assert!(a.dup && c.dup);
                assert_eq!((a.packet_id, b.packet_id, c.packet_id), (Some(ids[0]), ids[1], Some(ids[2])));
                assert_eq!((a.qos, c.qos), (QoS::AtLeastOnce, QoS::ExactlyOnce));
            }
            other => panic!("unexpected resend {other:?}"),
        }
    }

    #[test]
    fn takeover_lets_the_owner_apply_what_it_received_before_stepping_down() {
        // [MQTT-3.1.4-2], [MQTT-4.4.0-1]: an acknowledgement the client sent on its old
        // connection before reconnecting counts.
        let broker = Arc::new(Broker::default());
        let now = Instant::now();
        let (mut old, _) = connect(&broker, "same", false, 0, now);
        subscribe(&mut old, "t", QoS::AtLeastOnce, now);
        let (mut publisher, _) = connect(&broker, "pub", true, 0, now);
        let mut out = Vec::new();
        publisher.handle_packet(now, publish("t", QoS::AtLeastOnce, Some(1), false), &mut out).unwrap();
        let delivered = outgoing(&mut old);
        let Packet::Publish(first) = &delivered[0] else { panic!("{delivered:?}") };

        assert!(try_connect(&broker, "same", false, false).is_none(), "the owner is asked to step down first");
        assert_eq!(old.poll_outgoing(&mut out, 10), Err(CloseReason::TakenOver));
        old.handle_packet(now, Packet::PubAck(PubResponse::new(first.packet_id.unwrap())), &mut out).unwrap();
        old.close(&CloseReason::TakenOver);

        let (mut new, session_present) = try_connect(&broker, "same", false, false).expect("released");
        assert!(session_present);
        assert!(outgoing(&mut new).is_empty(), "the acknowledged message is not sent again");
    }

    #[test]
    fn forced_takeover_fences_the_old_connection() {
        // [MQTT-3.1.4-2]
        let broker = Arc::new(Broker::default());
        let now = Instant::now();
        let (mut old, _) = connect(&broker, "same", false, 0, now);
        subscribe(&mut old, "t", QoS::AtLeastOnce, now);
        let (mut new, session_present) = try_connect(&broker, "same", false, true).expect("forced");
        assert!(session_present);
        let mut out = Vec::new();
        assert_eq!(old.poll_outgoing(&mut out, 10), Err(CloseReason::TakenOver));
        assert_eq!(old.handle_packet(now, Packet::PingReq, &mut out).map(|_| ()), Ok(()));
        assert_eq!(
            old.handle_packet(now, publish("x", QoS::ExactlyOnce, Some(1), false), &mut out),
            Err(CloseReason::TakenOver)
        );
        // The stale connection's close does not end the session it lost.
        old.close(&CloseReason::TakenOver);
        let (mut publisher, _) = connect(&broker, "pub", true, 0, now);
        publisher.handle_packet(now, publish("t", QoS::AtLeastOnce, Some(1), false), &mut out).unwrap();
        assert_eq!(outgoing(&mut new).len(), 1);
    }

    #[test]
    fn second_connect_and_server_packets_are_protocol_errors() {
        let broker = Arc::new(Broker::default());
        let now = Instant::now();
        let (mut connection, _) = connect(&broker, "c", true, 0, now);
        let mut out = Vec::new();
        assert_eq!(
            connection.handle_packet(now, Packet::PingResp, &mut out),
            Err(ProtocolError::ServerOnlyPacket("PINGRESP").into())
        );
        assert_eq!(
            connection.handle_packet(now, publish("", QoS::AtMostOnce, None, false), &mut out),
            Err(ProtocolError::EmptyTopicName.into())
        );
    }
}

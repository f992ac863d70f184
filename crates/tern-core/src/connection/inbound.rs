//! PUBLISH from the client and the acknowledgements of both QoS flows ([MQTT-4.3]).

use std::time::Instant;

use tern_codec::{Packet, PacketId, Properties, PubResponse, Publish, QoS, TopicName};

use super::Connection;
use crate::close::{CloseReason, ProtocolError};
use crate::message::Message;
use crate::metrics::Metrics;
use crate::session::OutgoingState;
use crate::store::{OutgoingMark, StoreOp};

/// 5.0 reason codes of PUBACK, PUBREC, PUBREL and PUBCOMP used here.
const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
const PACKET_ID_NOT_FOUND: u8 = 0x92;
const PAYLOAD_FORMAT_INVALID: u8 = 0x99;
const NOT_AUTHORIZED: u8 = 0x87;

impl Connection {
    pub(super) fn handle_publish(
        &mut self,
        now: Instant,
        publish: Publish,
        out: &mut Vec<Packet>,
    ) -> Result<(), CloseReason> {
        let within_rate = self.publish_rate.as_mut().is_none_or(|limit| limit.take(1.0, now))
            && self.publish_bytes_rate.as_mut().is_none_or(|limit| limit.take(publish.payload.len() as f64, now));
        if !within_rate {
            Metrics::incr(&self.broker.metrics.publish_rate_exceeded);
            return Err(CloseReason::MessageRateTooHigh);
        }
        let topic = self.resolve_topic(&publish)?;
        if !self.broker.limits.topic_within_limits(topic.as_str()) {
            return Err(CloseReason::TopicNameInvalid);
        }
        let v5 = self.is_v5();
        if v5 {
            if !publish.properties.subscription_identifiers.is_empty() {
                return Err(ProtocolError::SubscriptionIdentifierFromClient.into());
            }
            if publish.properties.response_topic.as_deref().is_some_and(|t| t.contains(['+', '#'])) {
                return Err(ProtocolError::WildcardInResponseTopic.into());
            }
        }
        // [MQTT-3.3.2-?]: a payload said to be UTF-8 that is not is refused, not forwarded.
        let payload_invalid = v5
            && publish.properties.payload_format_indicator == Some(1)
            && std::str::from_utf8(&publish.payload).is_err();
        let origin = Some(self.client.client_id.clone());
        // Write permission ([MQTT-3.3.5-2]): a refused message is not forwarded; 5.0 says so in
        // its acknowledgement (0x87), 3.1.1 has no way to and acknowledges as usual.
        if !self.broker.authorizer().can_publish(&self.client, &topic) {
            Metrics::incr(&self.broker.metrics.publish_denied);
            let code = if payload_invalid { PAYLOAD_FORMAT_INVALID } else { NOT_AUTHORIZED };
            match (publish.qos, publish.packet_id) {
                (QoS::AtLeastOnce, Some(packet_id)) => out.push(Packet::PubAck(self.response(packet_id, code))),
                (QoS::ExactlyOnce, Some(packet_id)) => out.push(Packet::PubRec(self.response(packet_id, code))),
                _ => {}
            }
            return Ok(());
        }
        match (publish.qos, publish.packet_id) {
            (QoS::AtMostOnce, _) | (_, None) => {
                if !payload_invalid {
                    self.publish_held(Message::from_publish(publish, topic, origin, now))?;
                }
            }
            (QoS::AtLeastOnce, Some(packet_id)) => {
                let code = if payload_invalid {
                    PAYLOAD_FORMAT_INVALID
                } else {
                    let routed = self.publish_held(Message::from_publish(publish, topic, origin, now))?;
                    if routed == 0 {
                        NO_MATCHING_SUBSCRIBERS
                    } else {
                        0
                    }
                };
                out.push(Packet::PubAck(self.response(packet_id, code)));
            }
            (QoS::ExactlyOnce, Some(packet_id)) => {
                let first = {
                    let mut state = self.owned_session()?;
                    if state.incoming_qos2.contains(&packet_id) {
                        false
                    } else {
                        // [MQTT-3.3.4-9]: no more unreleased QoS 2 messages than our maximum.
                        if v5 && state.incoming_qos2.len() >= usize::from(self.broker.limits.receive_maximum) {
                            return Err(CloseReason::ReceiveMaximumExceeded);
                        }
                        // A refused message ends its flow: no PUBREL will come for it.
                        if !payload_invalid {
                            state.incoming_qos2.insert(packet_id);
                            if state.stored.enabled {
                                let client_id = self.client.client_id.clone();
                                let op = StoreOp::AddIncomingQos2 { client_id, packet_id };
                                self.hold_result(self.broker.store_write(op).transpose())?;
                            }
                        }
                        true
                    }
                };
                // Deliver on first receipt; a resent PUBLISH with the same id before PUBREL is
                // acknowledged again but not delivered again ([MQTT-4.3.3-2]).
                let code = match (first, payload_invalid) {
                    (_, true) => PAYLOAD_FORMAT_INVALID,
                    (true, false) => {
                        let routed = self.publish_held(Message::from_publish(publish, topic, origin, now))?;
                        if routed == 0 {
                            NO_MATCHING_SUBSCRIBERS
                        } else {
                            0
                        }
                    }
                    (false, false) => 0,
                };
                out.push(Packet::PubRec(self.response(packet_id, code)));
            }
        }
        Ok(())
    }

    /// Publishes a message from the client; its acknowledgement is held until what the
    /// message was stored as is durable. Returns the number of deliveries.
    fn publish_held(&mut self, message: Message) -> Result<usize, CloseReason> {
        let published = self.broker.publish_tracked(message);
        if published.failed {
            return Err(CloseReason::StorageFailed);
        }
        self.hold(published.ticket);
        if !published.congested.is_empty() {
            self.wait_for_congested(&published.congested);
        }
        Ok(published.routed)
    }

    /// Asks subscribers' sessions that are over their budget to wake this connection when
    /// they drain; meanwhile the server reads no more from this client (backpressure), so
    /// fast publishers are slowed to what the subscribers take instead of messages being
    /// dropped after they were acknowledged.
    fn wait_for_congested(&mut self, congested: &[std::sync::Arc<crate::session::Session>]) {
        let Some(me) = self.session.lock().owner.clone() else { return };
        for session in congested {
            if std::sync::Arc::ptr_eq(session, &self.session) {
                // Our own queue drains as we write; never wait for ourselves.
                continue;
            }
            if session.lock().wait_for_drain(&me, &self.broker.limits) {
                self.congested = true;
            }
        }
    }

    /// An acknowledgement with a 5.0 reason code (always 0 for 3.x).
    fn response(&self, packet_id: PacketId, reason_code: u8) -> PubResponse {
        let reason_code = if self.is_v5() { reason_code } else { 0 };
        PubResponse { packet_id, reason_code, properties: Properties::default() }
    }

    /// The topic of a PUBLISH: its topic name, or the one its 5.0 topic alias stands for on
    /// this connection ([MQTT-3.3.2-7..12]).
    fn resolve_topic(&mut self, publish: &Publish) -> Result<TopicName, CloseReason> {
        let alias = if self.is_v5() { publish.properties.topic_alias } else { None };
        let Some(alias) = alias else {
            if publish.topic.is_empty() {
                return Err(ProtocolError::EmptyTopicName.into());
            }
            return Ok(publish.topic.clone());
        };
        if alias == 0 || alias > self.broker.limits.topic_alias_maximum {
            return Err(CloseReason::TopicAliasInvalid(alias));
        }
        if publish.topic.is_empty() {
            return self.inbound_aliases.get(&alias).cloned().ok_or(ProtocolError::TopicAliasUnknown(alias).into());
        }
        self.inbound_aliases.insert(alias, publish.topic.clone());
        Ok(publish.topic.clone())
    }

    pub(super) fn handle_pubrel(&mut self, packet_id: PacketId, out: &mut Vec<Packet>) -> Result<(), CloseReason> {
        // PUBCOMP even for an unknown id, so a client that lost our PUBCOMP can finish
        // ([MQTT-4.3.3-2]); 5.0 says the id was not found.
        let known = {
            let mut state = self.owned_session()?;
            let known = state.incoming_qos2.remove(&packet_id);
            if known && state.stored.enabled {
                let op = StoreOp::RemoveIncomingQos2 { client_id: self.client.client_id.clone(), packet_id };
                self.hold_result(self.broker.store_write(op).transpose())?;
            }
            known
        };
        let code = if known { 0 } else { PACKET_ID_NOT_FOUND };
        out.push(Packet::PubComp(self.response(packet_id, code)));
        Ok(())
    }

    pub(super) fn handle_puback(&mut self, packet_id: PacketId) -> Result<(), CloseReason> {
        let mut state = self.owned_session()?;
        if let Some(index) = state.inflight_position(packet_id) {
            if state.inflight[index].state == OutgoingState::AwaitingPubAck {
                if let Some(done) = state.inflight.remove(index) {
                    self.broker.unstore_delivery(&self.client.client_id, &mut state, done.delivery.stored);
                }
            }
        }
        Ok(())
    }

    pub(super) fn handle_pubrec(
        &mut self,
        packet_id: PacketId,
        reason_code: u8,
        out: &mut Vec<Packet>,
    ) -> Result<(), CloseReason> {
        let mut state = self.owned_session()?;
        let Some(index) = state.inflight_position(packet_id) else {
            // Unknown id: answer so the client's flow can finish ([MQTT-4.3.3]).
            out.push(Packet::PubRel(self.response(packet_id, PACKET_ID_NOT_FOUND)));
            return Ok(());
        };
        if state.inflight[index].state == OutgoingState::AwaitingPubComp {
            out.push(Packet::PubRel(self.response(packet_id, 0)));
        } else if state.inflight[index].state == OutgoingState::AwaitingPubRec {
            if reason_code >= 0x80 {
                // The receiver refused the message: the flow ends here ([MQTT-4.3.3-?]).
                if let Some(done) = state.inflight.remove(index) {
                    self.broker.unstore_delivery(&self.client.client_id, &mut state, done.delivery.stored);
                }
                return Ok(());
            }
            // The message is now owned by the receiver; keep only the id ([MQTT-4.3.3-1]).
            // After a restart only PUBREL is sent again, so the mark is durable before it.
            state.inflight[index].state = OutgoingState::AwaitingPubComp;
            let mark = OutgoingMark { packet_id, released: true };
            let stored = state.inflight[index].delivery.stored;
            self.hold_result(self.broker.mark_outgoing(&self.client.client_id, &state, stored, mark))?;
            out.push(Packet::PubRel(self.response(packet_id, 0)));
        }
        Ok(())
    }

    pub(super) fn handle_pubcomp(&mut self, packet_id: PacketId) -> Result<(), CloseReason> {
        let mut state = self.owned_session()?;
        if let Some(index) = state.inflight_position(packet_id) {
            if state.inflight[index].state == OutgoingState::AwaitingPubComp {
                if let Some(done) = state.inflight.remove(index) {
                    self.broker.unstore_delivery(&self.client.client_id, &mut state, done.delivery.stored);
                }
            }
        }
        Ok(())
    }
}

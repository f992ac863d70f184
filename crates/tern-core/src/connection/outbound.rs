//! Messages to the client: resends on a resumed session, then queued messages under flow
//! control, with 5.0 message expiry, maximum packet size and topic aliases.

use std::collections::HashMap;
use std::time::Instant;

use tern_codec::{encoded_len, Packet, PacketId, Properties, ProtocolVersion, PubResponse, Publish, QoS, TopicName};

use super::{lock_owned, Connection};
use crate::close::CloseReason;
use crate::message::Delivery;
use crate::metrics::Metrics;
use crate::session::{Inflight, OutgoingState};
use crate::store::OutgoingMark;

/// Topic aliases the broker assigns on one connection ([MQTT-3.3.2-8..10]). The first
/// `maximum` distinct topics get one; an alias is never reassigned on the connection.
#[derive(Debug)]
pub(super) struct OutboundAliases {
    maximum: u16,
    assigned: HashMap<TopicName, u16>,
}

impl OutboundAliases {
    pub(super) fn new(maximum: u16) -> OutboundAliases {
        OutboundAliases { maximum, assigned: HashMap::new() }
    }

    /// The alias for `topic`: `(alias, true)` when the client already knows it (send an
    /// empty topic), `(alias, false)` when it is new (send topic and alias), or None.
    fn lookup(&self, topic: &TopicName) -> Option<(u16, bool)> {
        if let Some(alias) = self.assigned.get(topic) {
            return Some((*alias, true));
        }
        let next = u16::try_from(self.assigned.len()).ok()?.checked_add(1)?;
        (next <= self.maximum).then_some((next, false))
    }

    fn commit(&mut self, topic: &TopicName, alias: u16) {
        self.assigned.entry(topic.clone()).or_insert(alias);
    }
}

/// The PUBLISH for one delivery on this connection, and an alias to remember if it is sent.
struct Prepared {
    publish: Publish,
    new_alias: Option<u16>,
}

impl Connection {
    fn prepare(&self, delivery: &Delivery, packet_id: Option<PacketId>, dup: bool, now: Instant) -> Prepared {
        let message = &delivery.message;
        let mut topic = message.topic.clone();
        let mut new_alias = None;
        let properties = if self.version == ProtocolVersion::V5 {
            let mut properties = message.properties.clone();
            properties.message_expiry_interval = message.remaining_expiry(now);
            properties.subscription_identifiers.clone_from(&delivery.subscription_identifiers);
            if let Some((alias, known)) = self.outbound_aliases.lookup(&message.topic) {
                properties.topic_alias = Some(alias);
                if known {
                    topic = TopicName::new("").expect("the empty topic name is valid");
                } else {
                    new_alias = Some(alias);
                }
            }
            properties
        } else {
            Properties::default()
        };
        let publish = Publish {
            dup,
            qos: delivery.qos,
            retain: delivery.retain,
            topic,
            packet_id,
            payload: message.payload.clone(),
            properties,
        };
        Prepared { publish, new_alias }
    }

    /// Whether the PUBLISH fits the client's Maximum Packet Size; a message that does not is
    /// dropped for this client only, and counted ([MQTT-3.1.2-25]).
    fn fits(&self, publish: &Publish) -> bool {
        let Some(maximum) = self.client_maximum_packet_size else { return true };
        let packet = Packet::Publish(publish.clone());
        let fits = encoded_len(&packet, self.version).is_ok_and(|len| len <= maximum as usize);
        if !fits {
            Metrics::incr(&self.broker.metrics.dropped_too_large);
        }
        fits
    }

    /// Appends up to `max_packets` outgoing PUBLISH/PUBREL packets: first, on a resumed
    /// session, every unacknowledged message again in its original order (PUBLISH with DUP,
    /// or PUBREL) ([MQTT-4.4.0-1]); then queued messages within the in-flight window, which
    /// is also capped by a 5.0 client's Receive Maximum ([MQTT-3.3.4-7]). Expired messages
    /// are skipped ([MQTT-3.3.2-5]).
    pub fn poll_outgoing(
        &mut self,
        now: Instant,
        out: &mut Vec<Packet>,
        max_packets: usize,
    ) -> Result<(), CloseReason> {
        let window = self.broker.limits.max_inflight_messages.min(usize::from(self.client_receive_maximum));
        let mut state = lock_owned(&self.session, self.generation)?;
        if state.takeover_requested {
            // A new connection wants the session: stop sending; the server applies what the
            // client already sent, then closes this connection and releases the session.
            return Err(CloseReason::TakenOver);
        }
        if self.broker.wants_page_in(&state) {
            self.broker.page_in(&self.client.client_id, &mut state);
        }
        if self.resend_pending {
            self.resend_pending = false;
            let mut too_large = Vec::new();
            for entry in &state.inflight {
                if entry.state == OutgoingState::AwaitingPubComp {
                    out.push(Packet::PubRel(PubResponse::new(entry.packet_id)));
                    continue;
                }
                let prepared = self.prepare(&entry.delivery, Some(entry.packet_id), true, now);
                if !self.fits(&prepared.publish) {
                    too_large.push(entry.packet_id);
                    continue;
                }
                if let Some(alias) = prepared.new_alias {
                    self.outbound_aliases.commit(&entry.delivery.message.topic, alias);
                }
                out.push(Packet::Publish(prepared.publish));
            }
            while let Some(index) = state.inflight.iter().position(|entry| too_large.contains(&entry.packet_id)) {
                if let Some(dropped) = state.inflight.remove(index) {
                    self.broker.unstore_delivery(&self.client.client_id, &mut state, dropped.delivery.stored);
                }
            }
        }
        let mut sent = 0u64;
        while sent < max_packets as u64 {
            let Some(delivery) = state.pop_sendable(window) else { break };
            if delivery.message.is_expired(now) {
                Metrics::incr(&self.broker.metrics.dropped_expired);
                self.broker.unstore_delivery(&self.client.client_id, &mut state, delivery.stored);
                continue;
            }
            // Size is checked with a placeholder id of the same length as the real one, so no
            // id is used up by a message that is not sent.
            let placeholder =
                (delivery.qos != QoS::AtMostOnce).then(|| PacketId::new(1).expect("1 is a valid packet id"));
            let mut prepared = self.prepare(&delivery, placeholder, false, now);
            if !self.fits(&prepared.publish) {
                self.broker.unstore_delivery(&self.client.client_id, &mut state, delivery.stored);
                continue;
            }
            if let Some(alias) = prepared.new_alias {
                self.outbound_aliases.commit(&delivery.message.topic, alias);
            }
            if delivery.qos != QoS::AtMostOnce {
                let packet_id = state.allocate_packet_id();
                prepared.publish.packet_id = Some(packet_id);
                let waiting = if delivery.qos == QoS::AtLeastOnce {
                    OutgoingState::AwaitingPubAck
                } else {
                    // A stored QoS 2 message keeps its packet id across a restart, so the
                    // client never gets it under a second id ([MQTT-4.3.3]); the mark is
                    // durable before the PUBLISH goes out.
                    let mark = OutgoingMark { packet_id, released: false };
                    self.hold_result(self.broker.mark_outgoing(&self.client.client_id, &state, delivery.stored, mark))?;
                    OutgoingState::AwaitingPubRec
                };
                state.inflight.push_back(Inflight { packet_id, delivery, state: waiting });
            }
            out.push(Packet::Publish(prepared.publish));
            sent += 1;
        }
        if sent > 0 {
            state.last_drained = Some(now);
        }
        let drained = state.drained_waiters(&self.broker.limits);
        drop(state);
        for publisher in drained {
            publisher.wake();
        }
        self.broker.metrics.messages_sent.fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

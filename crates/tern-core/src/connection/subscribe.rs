//! SUBSCRIBE and UNSUBSCRIBE ([MQTT-3.8], [MQTT-3.10]).

use std::time::Instant;

use tern_codec::{Packet, RetainHandling, SubAck, Subscribe, TopicFilter, UnsubAck, Unsubscribe};

use super::Connection;
use crate::close::{CloseReason, ProtocolError};
use crate::message::Delivery;
use crate::metrics::Metrics;
use crate::shared::SharedFilter;
use crate::subscriptions::Subscription;

/// 5.0 reason codes of SUBACK and UNSUBACK used here.
const TOPIC_FILTER_INVALID: u8 = 0x8F;
const NOT_AUTHORIZED: u8 = 0x87;
const QUOTA_EXCEEDED: u8 = 0x97;
const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;

impl Connection {
    pub(super) fn handle_subscribe(
        &mut self,
        now: Instant,
        subscribe: Subscribe,
        out: &mut Vec<Packet>,
    ) -> Result<(), CloseReason> {
        let v5 = self.is_v5();
        let invalid = if v5 { TOPIC_FILTER_INVALID } else { SubAck::FAILURE };
        let identifier = if v5 { subscribe.properties.subscription_identifiers.first().copied() } else { None };
        let refused = if v5 { NOT_AUTHORIZED } else { SubAck::FAILURE };
        let authorizer = self.broker.authorizer();
        let mut state = self.owned_session()?;
        let mut return_codes = Vec::with_capacity(subscribe.filters.len());
        let mut retained = Vec::new();
        for requested in &subscribe.filters {
            let Ok(filter) = TopicFilter::new(&requested.filter) else {
                return_codes.push(invalid);
                continue;
            };
            if !self.broker.limits.topic_within_limits(filter.as_str()) {
                return_codes.push(invalid);
                continue;
            }
            let max_subscriptions = self.broker.limits.max_subscriptions_per_client;
            if max_subscriptions != 0
                && state.subscriptions.len() >= max_subscriptions
                && !state.subscriptions.contains_key(&filter)
            {
                return_codes.push(if v5 { QUOTA_EXCEEDED } else { SubAck::FAILURE });
                continue;
            }
            let shared = SharedFilter::is_shared(filter.as_str());
            // Read permission is decided here, once per subscription ([MQTT-3.8.4-?]); for a
            // shared subscription it is the shared filter that must be readable.
            let readable = if shared {
                let Some(parsed) = SharedFilter::parse(&filter) else {
                    return_codes.push(invalid);
                    continue;
                };
                if requested.options.no_local {
                    return Err(ProtocolError::NoLocalOnSharedSubscription.into());
                }
                authorizer.can_subscribe(&self.client, &parsed.filter)
            } else {
                authorizer.can_subscribe(&self.client, &filter)
            };
            if !readable {
                Metrics::incr(&self.broker.metrics.subscribe_denied);
                return_codes.push(refused);
                continue;
            }
            let subscription = Subscription { options: requested.options, identifier };
            // A subscription to the same filter replaces the old one ([MQTT-3.8.4-3]).
            let existed = state.subscriptions.insert(filter.clone(), subscription).is_some();
            self.broker.subscribe(&self.client.client_id, &filter, subscription);
            return_codes.push(requested.options.qos as u8);
            // Retained messages matching the filter are sent with retain 1 ([MQTT-3.3.1-6],
            // [MQTT-3.3.1-8]) as retain handling says ([MQTT-3.3.1-9..11]); never for a shared
            // subscription ([MQTT-4.8.2-?]).
            let send_retained = !shared
                && match requested.options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                for message in self.broker.retained_matching(&filter, now) {
                    // A subscription wider than the client's read rights must not leak
                    // retained messages it may not read.
                    if !authorizer.can_read(&self.client, &message.topic) {
                        continue;
                    }
                    let qos = message.qos.min(requested.options.qos);
                    retained.push(Delivery {
                        message,
                        qos,
                        retain: true,
                        subscription_identifiers: identifier.into_iter().collect(),
                        shared_group: None,
                        stored: None,
                    });
                }
            }
        }
        self.hold(self.broker.store_session(&self.client.client_id, &mut state));
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

    pub(super) fn handle_unsubscribe(
        &mut self,
        unsubscribe: Unsubscribe,
        out: &mut Vec<Packet>,
    ) -> Result<(), CloseReason> {
        let mut state = self.owned_session()?;
        let mut reason_codes = Vec::with_capacity(unsubscribe.filters.len());
        for filter in &unsubscribe.filters {
            let Ok(filter) = TopicFilter::new(filter) else {
                reason_codes.push(TOPIC_FILTER_INVALID);
                continue;
            };
            if state.subscriptions.remove(&filter).is_some() {
                self.broker.unsubscribe(&self.client.client_id, &filter);
                reason_codes.push(0);
            } else {
                reason_codes.push(NO_SUBSCRIPTION_EXISTED);
            }
        }
        self.hold(self.broker.store_session(&self.client.client_id, &mut state));
        if !self.is_v5() {
            // 3.x UNSUBACK carries no codes.
            reason_codes.clear();
        }
        // [MQTT-3.10.4-4]: UNSUBACK even when nothing matched.
        out.push(Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            reason_codes,
            properties: Default::default(),
        }));
        Ok(())
    }
}

//! proptest strategies for valid packets of each protocol version, shared by the round-trip
//! and split-feed tests of this crate.
//!
//! Which property may appear on which packet is written out again here, independently of the
//! codec's own table, so that the round trip also checks that table (MQTT 5.0 section 2.2.2.2).

use bytes::Bytes;
use proptest::collection::vec;
use proptest::option::weighted;
use proptest::prelude::*;
use tern_codec::*;

const V5: ProtocolVersion = ProtocolVersion::V5;

/// A UTF-8 string without U+0000 ([MQTT-1.5.3-2]); any other character is allowed.
pub fn string() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,10}"
}

pub fn topic_name() -> impl Strategy<Value = TopicName> {
    "[^\u{0}+#]{0,10}".prop_map(|s| TopicName::new(&s).unwrap())
}

pub fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

pub fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|v| PacketId::new(v).unwrap())
}

pub fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce), Just(QoS::ExactlyOnce)]
}

/// One of `codes`.
fn code(codes: &'static [u8]) -> impl Strategy<Value = u8> {
    proptest::sample::select(codes)
}

fn sometimes<S: Strategy>(s: S) -> impl Strategy<Value = Option<S::Value>> {
    weighted(0.3, s)
}

fn flag() -> impl Strategy<Value = u8> {
    0..=1u8
}

/// Where a property set appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctx {
    Connect,
    Will,
    ConnAck,
    Publish,
    PubResponse,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

/// Every property with a valid value, before [`restrict`] keeps those `ctx` allows.
fn any_properties() -> impl Strategy<Value = Properties> {
    let a = (
        sometimes(flag()),
        sometimes(any::<u32>()),
        sometimes(string()),
        sometimes(string()),
        sometimes(binary()),
        vec(1..=268_435_455u32, 0..3),
        sometimes(any::<u32>()),
        sometimes(string()),
        sometimes(any::<u16>()),
        sometimes(string()),
        sometimes(binary()),
        sometimes(flag()),
    );
    let b = (
        sometimes(any::<u32>()),
        sometimes(flag()),
        sometimes(string()),
        sometimes(string()),
        sometimes(string()),
        sometimes(1..=u16::MAX),
        sometimes(any::<u16>()),
        sometimes(1..=u16::MAX),
        sometimes(flag()),
        sometimes(flag()),
        vec((string(), string()), 0..3),
        sometimes(1..=u32::MAX),
    );
    let c = (sometimes(flag()), sometimes(flag()), sometimes(flag()));
    (a, b, c).prop_map(|(a, b, c)| Properties {
        payload_format_indicator: a.0,
        message_expiry_interval: a.1,
        content_type: a.2,
        response_topic: a.3,
        correlation_data: a.4,
        subscription_identifiers: a.5,
        session_expiry_interval: a.6,
        assigned_client_identifier: a.7,
        server_keep_alive: a.8,
        authentication_method: a.9,
        authentication_data: a.10,
        request_problem_information: a.11,
        will_delay_interval: b.0,
        request_response_information: b.1,
        response_information: b.2,
        server_reference: b.3,
        reason_string: b.4,
        receive_maximum: b.5,
        topic_alias_maximum: b.6,
        topic_alias: b.7,
        maximum_qos: b.8,
        retain_available: b.9,
        user_properties: b.10,
        maximum_packet_size: b.11,
        wildcard_subscription_available: c.0,
        subscription_identifier_available: c.1,
        shared_subscription_available: c.2,
    })
}

/// Keeps the properties MQTT 5.0 table 2-4 allows in `ctx`.
pub fn restrict(p: Properties, ctx: Ctx) -> Properties {
    use Ctx::*;
    let is = |allowed: &[Ctx]| allowed.contains(&ctx);
    let subscription_identifiers = match ctx {
        Publish => p.subscription_identifiers,
        Subscribe => p.subscription_identifiers.into_iter().take(1).collect(),
        _ => Vec::new(),
    };
    Properties {
        payload_format_indicator: p.payload_format_indicator.filter(|_| is(&[Publish, Will])),
        message_expiry_interval: p.message_expiry_interval.filter(|_| is(&[Publish, Will])),
        content_type: p.content_type.filter(|_| is(&[Publish, Will])),
        response_topic: p.response_topic.filter(|_| is(&[Publish, Will])),
        correlation_data: p.correlation_data.filter(|_| is(&[Publish, Will])),
        subscription_identifiers,
        session_expiry_interval: p.session_expiry_interval.filter(|_| is(&[Connect, ConnAck, Disconnect])),
        assigned_client_identifier: p.assigned_client_identifier.filter(|_| is(&[ConnAck])),
        server_keep_alive: p.server_keep_alive.filter(|_| is(&[ConnAck])),
        authentication_method: p.authentication_method.filter(|_| is(&[Connect, ConnAck, Auth])),
        authentication_data: p.authentication_data.filter(|_| is(&[Connect, ConnAck, Auth])),
        request_problem_information: p.request_problem_information.filter(|_| is(&[Connect])),
        will_delay_interval: p.will_delay_interval.filter(|_| is(&[Will])),
        request_response_information: p.request_response_information.filter(|_| is(&[Connect])),
        response_information: p.response_information.filter(|_| is(&[ConnAck])),
        server_reference: p.server_reference.filter(|_| is(&[ConnAck, Disconnect])),
        reason_string: p.reason_string.filter(|_| is(&[ConnAck, PubResponse, SubAck, UnsubAck, Disconnect, Auth])),
        receive_maximum: p.receive_maximum.filter(|_| is(&[Connect, ConnAck])),
        topic_alias_maximum: p.topic_alias_maximum.filter(|_| is(&[Connect, ConnAck])),
        topic_alias: p.topic_alias.filter(|_| is(&[Publish])),
        maximum_qos: p.maximum_qos.filter(|_| is(&[ConnAck])),
        retain_available: p.retain_available.filter(|_| is(&[ConnAck])),
        user_properties: p.user_properties,
        maximum_packet_size: p.maximum_packet_size.filter(|_| is(&[Connect, ConnAck])),
        wildcard_subscription_available: p.wildcard_subscription_available.filter(|_| is(&[ConnAck])),
        subscription_identifier_available: p.subscription_identifier_available.filter(|_| is(&[ConnAck])),
        shared_subscription_available: p.shared_subscription_available.filter(|_| is(&[ConnAck])),
    }
}

/// Properties valid in `ctx`; none at all before 5.0.
pub fn properties(version: ProtocolVersion, ctx: Ctx) -> BoxedStrategy<Properties> {
    if version == V5 {
        any_properties().prop_map(move |p| restrict(p, ctx)).boxed()
    } else {
        Just(Properties::default()).boxed()
    }
}

fn will(version: ProtocolVersion) -> impl Strategy<Value = LastWill> {
    (topic_name(), binary(), qos(), any::<bool>(), properties(version, Ctx::Will))
        .prop_map(|(topic, payload, qos, retain, properties)| LastWill { topic, payload, qos, retain, properties })
}

pub fn connect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        any::<u16>(),
        string(),
        weighted(0.5, will(version)),
        sometimes(string()),
        sometimes(binary()),
        properties(version, Ctx::Connect),
    )
        .prop_map(move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
            // [MQTT-3.1.2-22]: before 5.0 a password needs a username.
            let password = if version < V5 && username.is_none() { None } else { password };
            Packet::Connect(Box::new(Connect {
                protocol: version,
                clean_start,
                keep_alive,
                client_id,
                will,
                username,
                password,
                properties,
            }))
        })
}

const CONNACK_V3: &[u8] = &[0, 1, 2, 3, 4, 5];
const CONNACK_V5: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B,
    0x9C, 0x9D, 0x9F,
];
const PUBACK: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL: &[u8] = &[0x00, 0x92];
const SUBACK_V3: &[u8] = &[0x00, 0x01, 0x02, 0x80];
const SUBACK_V5: &[u8] = &[0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2];
const UNSUBACK: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH: &[u8] = &[0x00, 0x18, 0x19];

fn connack(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let codes = if version == V5 { CONNACK_V5 } else { CONNACK_V3 };
    (any::<bool>(), code(codes), properties(version, Ctx::ConnAck)).prop_map(
        move |(session_present, code, properties)| {
            Packet::ConnAck(ConnAck {
                // 3.1 has no session present flag.
                session_present: session_present && version != ProtocolVersion::V3_1,
                code: ConnectReturnCode(code),
                properties,
            })
        },
    )
}

fn publish(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (qos(), any::<bool>(), any::<bool>(), topic_name(), packet_id(), binary(), properties(version, Ctx::Publish))
        .prop_map(|(qos, dup, retain, topic, packet_id, payload, properties)| {
            let qos0 = qos == QoS::AtMostOnce;
            Packet::Publish(Publish {
                dup: dup && !qos0,
                qos,
                retain,
                topic,
                packet_id: if qos0 { None } else { Some(packet_id) },
                payload,
                properties,
            })
        })
}

fn pub_response(version: ProtocolVersion, codes: &'static [u8]) -> impl Strategy<Value = PubResponse> {
    (packet_id(), code(codes), properties(version, Ctx::PubResponse)).prop_map(
        move |(packet_id, reason_code, properties)| PubResponse {
            packet_id,
            reason_code: if version == V5 { reason_code } else { 0 },
            properties,
        },
    )
}

fn subscription_options(version: ProtocolVersion) -> impl Strategy<Value = SubscriptionOptions> {
    let retain_handling = prop_oneof![
        Just(RetainHandling::SendAtSubscribe),
        Just(RetainHandling::SendIfNew),
        Just(RetainHandling::DoNotSend)
    ];
    (qos(), any::<bool>(), any::<bool>(), retain_handling).prop_map(
        move |(qos, no_local, retain_as_published, retain_handling)| {
            if version == V5 {
                SubscriptionOptions { qos, no_local, retain_as_published, retain_handling }
            } else {
                SubscriptionOptions { qos, ..SubscriptionOptions::default() }
            }
        },
    )
}

fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let filter =
        (string(), subscription_options(version)).prop_map(|(filter, options)| SubscribeFilter { filter, options });
    (packet_id(), vec(filter, 1..4), properties(version, Ctx::Subscribe))
        .prop_map(|(packet_id, filters, properties)| Packet::Subscribe(Subscribe { packet_id, filters, properties }))
}

fn suback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let codes = if version == V5 { SUBACK_V5 } else { SUBACK_V3 };
    (packet_id(), vec(code(codes), 0..4), properties(version, Ctx::SubAck)).prop_map(
        |(packet_id, return_codes, properties)| Packet::SubAck(SubAck { packet_id, return_codes, properties }),
    )
}

fn unsubscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (packet_id(), vec(string(), 1..4), properties(version, Ctx::Unsubscribe)).prop_map(
        |(packet_id, filters, properties)| Packet::Unsubscribe(Unsubscribe { packet_id, filters, properties }),
    )
}

fn unsuback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (packet_id(), vec(code(UNSUBACK), 0..4), properties(version, Ctx::UnsubAck)).prop_map(
        move |(packet_id, reason_codes, properties)| {
            let reason_codes = if version == V5 { reason_codes } else { Vec::new() };
            Packet::UnsubAck(UnsubAck { packet_id, reason_codes, properties })
        },
    )
}

fn disconnect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (code(DISCONNECT), properties(version, Ctx::Disconnect)).prop_map(move |(reason_code, properties)| {
        let reason_code = if version == V5 { reason_code } else { 0 };
        Packet::Disconnect(Disconnect { reason_code, properties })
    })
}

fn auth() -> impl Strategy<Value = Packet> {
    (code(AUTH), properties(V5, Ctx::Auth))
        .prop_map(|(reason_code, properties)| Packet::Auth(Auth { reason_code, properties }))
}

/// Any packet valid for a connection of `version`.
pub fn packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let common = prop_oneof![
        connect(version),
        connack(version),
        publish(version),
        pub_response(version, PUBACK).prop_map(Packet::PubAck),
        pub_response(version, PUBACK).prop_map(Packet::PubRec),
        pub_response(version, PUBREL).prop_map(Packet::PubRel),
        pub_response(version, PUBREL).prop_map(Packet::PubComp),
        subscribe(version),
        suback(version),
        unsubscribe(version),
        unsuback(version),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect(version),
    ];
    if version == V5 {
        prop_oneof![14 => common, 1 => auth()].boxed()
    } else {
        common.boxed()
    }
}

//! Unit tests of the connection state machine: no sockets, no sleeps, time passed in.

use bytes::Bytes;
use tern_codec::{
    Connect, LastWill, PacketId, Properties, ProtocolVersion, PubResponse, Publish, QoS, Subscribe, SubscribeFilter,
    SubscriptionOptions, TopicName,
};

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
    match accept_connect(
        broker,
        connect_packet(id, clean, 0),
        Instant::now(),
        1,
        Arc::new(NoopWaker),
        force,
        Default::default(),
    ) {
        ConnectOutcome::Accepted { connection, connack, .. } => Some((*connection, connack.session_present)),
        ConnectOutcome::Busy => None,
        _ => panic!("connect refused"),
    }
}

fn connect(broker: &Arc<Broker>, id: &str, clean: bool, keep_alive: u16, now: Instant) -> (Connection, bool) {
    match accept_connect(
        broker,
        connect_packet(id, clean, keep_alive),
        now,
        1,
        Arc::new(NoopWaker),
        false,
        Default::default(),
    ) {
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
    connection.poll_outgoing(Instant::now(), &mut out, 100).unwrap();
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
    subscriber.close(&CloseReason::ConnectionLost, Instant::now());

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
    assert_eq!(old.poll_outgoing(Instant::now(), &mut out, 10), Err(CloseReason::TakenOver));
    old.handle_packet(now, Packet::PubAck(PubResponse::new(first.packet_id.unwrap())), &mut out).unwrap();
    old.close(&CloseReason::TakenOver, Instant::now());

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
    assert_eq!(old.poll_outgoing(Instant::now(), &mut out, 10), Err(CloseReason::TakenOver));
    assert_eq!(old.handle_packet(now, Packet::PingReq, &mut out).map(|_| ()), Ok(()));
    assert_eq!(
        old.handle_packet(now, publish("x", QoS::ExactlyOnce, Some(1), false), &mut out),
        Err(CloseReason::TakenOver)
    );
    // The stale connection's close does not end the session it lost.
    old.close(&CloseReason::TakenOver, Instant::now());
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

/// An authorizer that keeps `secret/#` from everyone but the client "owner".
struct GuardSecret;

impl crate::authz::Authorizer for GuardSecret {
    fn can_publish(&self, client: &ClientInfo, topic: &TopicName) -> bool {
        !topic.as_str().starts_with("secret/") || client.client_id.as_str() == "owner"
    }
    fn can_subscribe(&self, client: &ClientInfo, filter: &tern_codec::TopicFilter) -> bool {
        // "#" is allowed (its reads are filtered one by one), "secret/..." filters are not.
        !filter.as_str().starts_with("secret") || client.client_id.as_str() == "owner"
    }
    fn can_read(&self, client: &ClientInfo, topic: &TopicName) -> bool {
        !topic.as_str().starts_with("secret/") || client.client_id.as_str() == "owner"
    }
}

fn connect_as(broker: &Arc<Broker>, id: &str, version: ProtocolVersion, will: Option<LastWill>) -> ConnectOutcome {
    let mut packet = connect_packet(id, true, 0);
    packet.protocol = version;
    packet.will = will;
    accept_connect(broker, packet, Instant::now(), 1, Arc::new(NoopWaker), false, Default::default())
}

fn accepted(outcome: ConnectOutcome) -> Connection {
    match outcome {
        ConnectOutcome::Accepted { connection, .. } => *connection,
        _ => panic!("refused"),
    }
}

#[test]
fn denied_publish_is_not_routed_and_5_0_says_not_authorized() {
    let broker = Arc::new(Broker::default());
    broker.set_authorizer(Arc::new(GuardSecret));
    let now = Instant::now();
    let mut owner = accepted(connect_as(&broker, "owner", ProtocolVersion::V3_1_1, None));
    subscribe(&mut owner, "secret/#", QoS::AtLeastOnce, now);
    for (version, expected_code) in [(ProtocolVersion::V5, 0x87), (ProtocolVersion::V3_1_1, 0)] {
        let mut intruder = accepted(connect_as(&broker, "intruder", version, None));
        let mut out = Vec::new();
        intruder.handle_packet(now, publish("secret/x", QoS::AtLeastOnce, Some(3), false), &mut out).unwrap();
        match &out[..] {
            [Packet::PubAck(ack)] => assert_eq!(ack.reason_code, expected_code, "{version:?}"),
            other => panic!("{other:?}"),
        }
        assert!(outgoing(&mut owner).is_empty(), "a refused message is not forwarded");
        intruder.close(&CloseReason::ClientDisconnect, now);
    }
}

#[test]
fn denied_filter_gets_a_failure_code_and_retained_messages_do_not_leak() {
    let broker = Arc::new(Broker::default());
    broker.set_authorizer(Arc::new(GuardSecret));
    let now = Instant::now();
    let mut owner = accepted(connect_as(&broker, "owner", ProtocolVersion::V3_1_1, None));
    let mut out = Vec::new();
    for topic in ["secret/plans", "public/news"] {
        let Packet::Publish(mut retained) = publish(topic, QoS::AtMostOnce, None, false) else { unreachable!() };
        retained.retain = true;
        owner.handle_packet(now, Packet::Publish(retained), &mut out).unwrap();
    }
    let mut reader = accepted(connect_as(&broker, "reader", ProtocolVersion::V3_1_1, None));
    let packet = Packet::Subscribe(Subscribe {
        packet_id: PacketId::new(1).unwrap(),
        filters: ["secret/#", "#"]
            .iter()
            .map(|f| SubscribeFilter { filter: f.to_string(), options: SubscriptionOptions::default() })
            .collect(),
        properties: Properties::default(),
    });
    out.clear();
    reader.handle_packet(now, packet, &mut out).unwrap();
    match &out[..] {
        [Packet::SubAck(suback)] => assert_eq!(suback.return_codes, vec![0x80, 0x00]),
        other => panic!("{other:?}"),
    }
    let delivered: Vec<String> = outgoing(&mut reader)
        .into_iter()
        .map(|p| match p {
            Packet::Publish(publish) => publish.topic.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(delivered, vec!["public/news".to_string()]);
}

#[test]
fn will_on_a_forbidden_topic_refuses_the_connection() {
    let broker = Arc::new(Broker::default());
    broker.set_authorizer(Arc::new(GuardSecret));
    let will = LastWill {
        topic: TopicName::new("secret/will").unwrap(),
        payload: Bytes::from_static(b"bye"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Properties::default(),
    };
    for (version, code) in [(ProtocolVersion::V3_1_1, 0x05), (ProtocolVersion::V5, 0x87)] {
        match connect_as(&broker, "w", version, Some(will.clone())) {
            ConnectOutcome::Refused(connack) => assert_eq!(connack.code.0, code),
            _ => panic!("a will the client may not publish is refused at CONNECT"),
        }
    }
}

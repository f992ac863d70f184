"""The Eclipse Paho MQTT 5.0 interoperability scenarios, reimplemented with paho-mqtt MQTTv5.

These follow the `Test` class of paho.mqtt.testing's interoperability/client_test5.py: basic,
retained messages, offline message queueing, will message, zero-length client id, overlapping
subscriptions, keep alive, redelivery on reconnect, subscribe failure, `$` topics, unsubscribe,
session expiry, will delay, publication expiry, subscribe options, subscription identifiers,
assigned client id, flow control, server and client topic aliases, maximum packet size,
request/response, shared subscriptions, server keep alive, user properties and payload format.
Each test starts its own broker and waits for real signals (CONNACK, SUBACK, a message, a
disconnect), with a bound; the only sleeps are the intervals whose passing is the point of the
test (session expiry, will delay, message expiry), kept to 1-3 s.

Where paho-mqtt cannot express a scenario (a client that never acknowledges or never pings,
or exact packet bits such as DUP and packet ids) the test uses rawmqtt.py's 5.0 mode.

Tern is held to its documented policies (one copy per overlapping match, CONNACK values, reason
codes, outbound alias assignment); mosquitto (TERN_TEST_BROKER=mosquitto) validates the tests,
with its known differences commented where they are accepted.
"""

from __future__ import annotations

import time

import pytest
from paho.mqtt.packettypes import PacketTypes

import rawmqtt
from pahoclient import props, reason, unique_id

# The topic names of the Paho interoperability suite.
TOPICS = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
WILDTOPICS = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")

# Reason codes (MQTT 5.0 section 2.4).
SUCCESS = 0x00
NO_MATCHING_SUBSCRIBERS = 0x10
NO_SUBSCRIPTION_EXISTED = 0x11
MALFORMED_PACKET = 0x81
PROTOCOL_ERROR = 0x82
UNSUPPORTED_PROTOCOL_VERSION = 0x84
KEEP_ALIVE_TIMEOUT = 0x8D
TOPIC_FILTER_INVALID = 0x8F
RECEIVE_MAXIMUM_EXCEEDED = 0x93
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95

USER_PROPS = [("a", "2"), ("c", "3"), ("a", "1"), ("ünï", "cödé")]


def raw_v5_connect(raw, client_id, *, clean_start=True, session_expiry=None, keepalive=60,
                   will=None, will_props=b""):
    """CONNECT a rawmqtt client with MQTT 5.0; returns the CONNACK."""
    items = []
    if session_expiry is not None:
        items.append((rawmqtt.SESSION_EXPIRY_INTERVAL, session_expiry))
    return raw.connect(client_id, protocol=rawmqtt.MQTT_V5, clean_session=clean_start,
                       keepalive=keepalive, props=rawmqtt.properties(*items), will=will,
                       will_props=will_props)


def publish_props(**values):
    return props(PacketTypes.PUBLISH, **values)


# ------------------------------------------------------------------------------------------
# CONNACK
# ------------------------------------------------------------------------------------------


def test_connack_reports_server_capabilities(broker, make_v5):
    """[MQTT-3.2.2] A 5.0 CONNACK: reason Success, session present 0 for a clean start, and the
    server's limits and capabilities as properties. Tern's are fixed by its documentation:
    Receive Maximum 256, Topic Alias Maximum 64, a Maximum Packet Size, retain, wildcard,
    subscription identifier and shared subscription available (= 1), no Server Keep Alive unless
    a maximum is configured, no Assigned Client Identifier for a client that chose its id."""
    client = make_v5(broker, unique_id("connack")).connect()
    assert client.connack_rc.value == SUCCESS
    assert not client.session_present
    assert client.connack_prop("AssignedClientIdentifier") is None
    assert client.connack_prop("ServerKeepAlive") is None
    if broker.is_tern:
        got = {name: client.connack_prop(name) for name in (
            "ReceiveMaximum", "TopicAliasMaximum", "RetainAvailable",
            "WildcardSubscriptionAvailable", "SubscriptionIdentifierAvailable",
            "SharedSubscriptionAvailable")}
        assert got == {"ReceiveMaximum": 256, "TopicAliasMaximum": 64, "RetainAvailable": 1,
                       "WildcardSubscriptionAvailable": 1, "SubscriptionIdentifierAvailable": 1,
                       "SharedSubscriptionAvailable": 1}, got
        assert (client.connack_prop("MaximumPacketSize") or 0) > 0
    else:
        # Absent means available (mosquitto 2.0.11 sends few of these); present must say 1.
        for name in ("RetainAvailable", "WildcardSubscriptionAvailable",
                     "SubscriptionIdentifierAvailable", "SharedSubscriptionAvailable"):
            assert client.connack_prop(name, 1) == 1, name
    client.disconnect()


# ------------------------------------------------------------------------------------------
# client_test5.Test scenarios
# ------------------------------------------------------------------------------------------


def test_basic_connect_subscribe_publish_qos0_1_2_disconnect(broker, make_v5):
    """test_basic: connect, disconnect, connect again; subscribe at QoS 2; publish at QoS 0, 1
    and 2: all three come back in order at the QoS they were published with [MQTT-3.3.5-1];
    a clean DISCONNECT (reason 0) closes the connection."""
    cid = unique_id("basic")
    make_v5(broker, cid).connect().disconnect()
    client = make_v5(broker, cid).connect()
    assert client.connack_rc.getName() == "Success"
    assert client.subscribe(TOPICS[0], 2) == [2]
    for qos in (0, 1, 2):
        client.publish(TOPICS[0], f"qos {qos}".encode(), qos=qos)
    got = client.get_messages(3)
    assert [(m.topic, m.payload, m.qos) for m in got] == [
        (TOPICS[0], b"qos 0", 0), (TOPICS[0], b"qos 1", 1), (TOPICS[0], b"qos 2", 2)]
    client.expect_no_message(0.3)
    client.disconnect()


def test_basic_second_connect_on_a_connection_is_a_protocol_error(broker, make_raw):
    """test_basic: a second CONNECT on the same network connection is a Protocol Error
    [MQTT-3.1.0-2]: a 5.0 server sends DISCONNECT 0x82 (or just closes) [MQTT-4.13.1-1]."""
    raw = make_raw(broker)
    assert raw_v5_connect(raw, unique_id("twice")).reason_code == SUCCESS
    raw.send(rawmqtt.encode_connect(unique_id("twice"), protocol=rawmqtt.MQTT_V5))
    packets = []
    try:
        while True:
            packets.append(raw.recv_packet(5))
    except rawmqtt.ConnectionClosed:
        pass
    assert all(p.type == rawmqtt.DISCONNECT for p in packets), packets
    if broker.is_tern or packets:
        assert [p.reason_code for p in packets] == [PROTOCOL_ERROR], packets


def test_basic_wrong_protocol_name_is_refused(broker, make_raw):
    """test_basic: a CONNECT with protocol name "hj" is not processed as MQTT [MQTT-3.1.2-1]: the
    server closes the connection, at most after a refusing CONNACK."""
    raw = make_raw(broker)
    raw.send(rawmqtt.encode_connect(unique_id("hj"), protocol=rawmqtt.MQTT_V5, protocol_name="hj"))
    packets = []
    try:
        while True:
            packets.append(raw.recv_packet(5))
    except rawmqtt.ConnectionClosed:
        pass
    assert len(packets) <= 1, packets
    if packets:
        assert packets[0].type == rawmqtt.CONNACK and packets[0].return_code in (
            0x01, UNSUPPORTED_PROTOCOL_VERSION, PROTOCOL_ERROR), packets


def test_retained_messages_keep_properties_and_are_cleared_by_empty_payload(broker, make_v5):
    """test_retained_message: retained messages at QoS 0/1/2 with user properties reach a later
    `+/+` subscriber with retain set [MQTT-3.3.1-8], at their QoS and with their user
    properties in order [MQTT-3.3.2-17] [MQTT-3.3.2-18]; empty retained payloads clear them."""
    publisher = make_v5(broker, unique_id("retpub")).connect()
    retained = {TOPICS[1]: (b"qos 0", 0), TOPICS[2]: (b"qos 1", 1), TOPICS[3]: (b"qos 2", 2)}
    for topic, (payload, qos) in retained.items():
        publisher.publish(topic, payload, qos=qos, retain=True,
                          properties=publish_props(UserProperty=USER_PROPS[:2]))

    subscriber = make_v5(broker, unique_id("retsub")).connect()
    assert subscriber.subscribe(WILDTOPICS[5], 2) == [2]
    got = subscriber.get_messages(3)
    assert {m.topic: (m.payload, m.qos) for m in got} == retained
    assert all(m.retain for m in got), "retained messages sent on SUBSCRIBE must have retain=1"
    assert [m.user_properties for m in got] == [USER_PROPS[:2]] * 3
    subscriber.expect_no_message(0.3)
    subscriber.disconnect()

    for topic, (_, qos) in retained.items():
        publisher.publish(topic, b"", qos=qos, retain=True)
    late = make_v5(broker, unique_id("retlate")).connect()
    late.subscribe(WILDTOPICS[5], 2)
    late.expect_no_message(0.5)


def test_offline_messages_queued_while_session_lives(broker, make_v5):
    """test_offline_message_queueing: a clean_start=0 subscriber with a Session Expiry Interval
    is offline while QoS 0/1/2 messages are published; on reconnect CONNACK says session present
    [MQTT-3.2.2-3] and the QoS 1 and 2 messages (QoS 0 optionally) are delivered."""
    cid = unique_id("offline")
    session = {"SessionExpiryInterval": 60}
    subscriber = make_v5(broker, cid, clean_start=True, connect_properties=session).connect()
    assert subscriber.subscribe(WILDTOPICS[5], 2) == [2]
    subscriber.disconnect()

    publisher = make_v5(broker, unique_id("offpub")).connect()
    for qos, topic in enumerate(TOPICS[1:4]):
        publisher.publish(topic, f"qos {qos}".encode(), qos=qos)
    publisher.disconnect()

    again = make_v5(broker, cid, clean_start=False, connect_properties=session).connect()
    assert again.session_present, "CONNACK must report the stored session"
    got = [again.get_message()] + again.drain(1.0)
    payloads = sorted(m.payload for m in got)
    assert payloads in ([b"qos 1", b"qos 2"], [b"qos 0", b"qos 1", b"qos 2"]), payloads


def test_will_message_with_properties_published_when_connection_drops(broker, make_v5):
    """test_will_message: the will is published when the connection closes without DISCONNECT
    [MQTT-3.1.2-8], with its will properties (user properties, content type, payload format)
    passed to the subscriber [MQTT-3.1.3-10]."""
    watcher = make_v5(broker, unique_id("willwatch")).connect()
    watcher.subscribe(TOPICS[2], 2)
    will_props = {"UserProperty": USER_PROPS, "ContentType": "text/plain",
                  "PayloadFormatIndicator": 1}
    willer = make_v5(broker, unique_id("willer"), will_properties=will_props,
                     will=(TOPICS[2], b"client not disconnected", 2, False)).connect()
    willer.vanish()
    msg = watcher.get_message(timeout=5)
    assert (msg.topic, msg.payload, msg.qos) == (TOPICS[2], b"client not disconnected", 2)
    assert msg.user_properties == USER_PROPS
    assert (msg.prop("ContentType"), msg.prop("PayloadFormatIndicator")) == ("text/plain", 1)


def test_will_published_on_disconnect_with_will_message_reason(broker, make_v5):
    """[MQTT-3.14.4-3] A DISCONNECT with reason 0x04 (Disconnect with Will Message) publishes
    the will; a DISCONNECT with reason 0x00 does not [MQTT-3.1.2-10]."""
    watcher = make_v5(broker, unique_id("willwatch")).connect()
    watcher.subscribe("will/#", 1)
    quiet = make_v5(broker, unique_id("quiet"), will=("will/quiet", b"no", 1, False)).connect()
    quiet.disconnect(reason_code=reason(PacketTypes.DISCONNECT, "Normal disconnection"))
    loud = make_v5(broker, unique_id("loud"), will=("will/loud", b"yes", 1, False)).connect()
    loud.disconnect(reason_code=reason(PacketTypes.DISCONNECT, "Disconnect with will message"))
    msg = watcher.get_message(timeout=5)
    assert (msg.topic, msg.payload) == ("will/loud", b"yes")
    watcher.expect_no_message(0.5)


def test_zero_length_client_id_gets_assigned_client_identifier(broker, make_v5):
    """test_zero_length_clientid: a 5.0 CONNECT with an empty client id and clean start is
    accepted, and CONNACK carries the Assigned Client Identifier [MQTT-3.1.3-7]
    [MQTT-3.2.2-16], different for two clients; the connection works."""
    first = make_v5(broker, "").connect()
    second = make_v5(broker, "").connect()
    ids = [c.connack_prop("AssignedClientIdentifier") for c in (first, second)]
    assert all(ids) and ids[0] != ids[1], ids
    assert not first.session_present
    first.subscribe("zero/id", 1)
    first.publish("zero/id", b"hello", qos=1)
    assert first.get_message().payload == b"hello"
    assert not second.disconnected.is_set()


def test_zero_length_client_id_without_clean_start(broker, make_v5):
    """test_zero_length_clientid, clean start 0: 5.0 lets the server either assign an id
    [MQTT-3.1.3-6] or refuse with 0x85 (Client Identifier not valid) [MQTT-3.1.3-8]. Tern's
    policy is to assign one (a new session, so session present 0)."""
    client = make_v5(broker, "", clean_start=False).connect_async_wait()
    if broker.is_tern or not client.connack_rc.is_failure:
        assert client.connack_rc.value == SUCCESS, client.connack_rc
        assert client.connack_prop("AssignedClientIdentifier")
        assert not client.session_present
    else:
        assert client.connack_rc.value == 0x85, client.connack_rc


def test_assigned_client_id_resumes_its_session(broker, make_v5):
    """The Assigned Client Identifier names a real session [MQTT-3.1.3-7]: reconnecting with it
    and clean start 0 finds the session (session present) with its subscription, and the QoS 1
    message published meanwhile."""
    session = {"SessionExpiryInterval": 60}
    first = make_v5(broker, "", connect_properties=session).connect()
    assigned = first.connack_prop("AssignedClientIdentifier")
    assert assigned
    first.subscribe("assigned/t", 1)
    first.disconnect()
    make_v5(broker, unique_id("asgpub")).connect().publish("assigned/t", b"kept", qos=1)
    again = make_v5(broker, assigned, clean_start=False, connect_properties=session).connect()
    assert again.session_present
    assert again.connack_prop("AssignedClientIdentifier") is None
    assert again.get_message().payload == b"kept"


def test_overlapping_subscriptions_one_copy_at_highest_qos_with_all_identifiers(broker, make_v5):
    """test_overlapping_subscriptions: `TopicA/#` at QoS 2 (subscription id 1) and `TopicA/+` at
    QoS 1 (id 2) both match TopicA/C. The server may send one copy at the highest QoS or one per
    subscription [MQTT-3.3.4-2]; with one copy it carries both identifiers [MQTT-3.3.4-3] and
    with several each carries its own [MQTT-3.3.4-5].

    Tern's documented behaviour is exactly one copy, at QoS 2, with identifiers {1, 2}.
    mosquitto 2.0.11 may send two copies (one per subscription), which is accepted for it.
    """
    client = make_v5(broker, unique_id("overlap")).connect()
    assert client.subscribe(WILDTOPICS[6], 2, subscription_id=1) == [2]
    assert client.subscribe(WILDTOPICS[0], 1, subscription_id=2) == [1]
    client.publish(TOPICS[3], b"overlapping topic filters", qos=2)
    got = [client.get_message()] + client.drain(1.0)
    assert all(m.topic == TOPICS[3] and m.payload == b"overlapping topic filters" for m in got)
    summary = sorted((m.qos, sorted(m.subscription_ids)) for m in got)
    if broker.is_tern or len(got) == 1:
        assert summary == [(2, [1, 2])], summary
    else:
        assert summary == [(1, [2]), (2, [1])], summary


def test_subscription_identifiers_sent_with_matching_messages(broker, make_v5):
    """test_subscribe_identifiers: a message carries the Subscription Identifier of the matching
    subscription [MQTT-3.3.4-3]: 456789 for one client; for a client whose two subscriptions
    (ids 2 and 3) match, the identifiers 2 and 3 (Tern: both on the one copy)."""
    a = make_v5(broker, unique_id("subida")).connect()
    a.subscribe(TOPICS[0], 2, subscription_id=456789)
    b = make_v5(broker, unique_id("subidb")).connect()
    b.subscribe(TOPICS[0], 2, subscription_id=2)
    b.subscribe(TOPICS[0] + "/#", 2, subscription_id=3)
    b.publish(TOPICS[0], b"sub identifier test", qos=1)
    msg = a.get_message()
    assert msg.subscription_ids == [456789]
    a.expect_no_message(0.2)
    got = [b.get_message()] + b.drain(0.5)
    if broker.is_tern or len(got) == 1:
        assert len(got) == 1 and sorted(got[0].subscription_ids) == [2, 3], \
            [m.subscription_ids for m in got]
    else:
        assert sorted(i for m in got for i in m.subscription_ids) == [2, 3]
    # A subscription without an identifier adds none.
    c = make_v5(broker, unique_id("subidc")).connect()
    c.subscribe(TOPICS[0], 1)
    c.publish(TOPICS[0], b"no id", qos=1)
    assert c.get_message().subscription_ids == []
    # A retained message sent because of a SUBSCRIBE carries that subscription's identifier.
    c.publish(TOPICS[1], b"retained", qos=1, retain=True)
    d = make_v5(broker, unique_id("subidd")).connect()
    d.subscribe(WILDTOPICS[0], 1, subscription_id=77)
    retained = d.get_message()
    assert (retained.payload, retained.retain, retained.subscription_ids) == (b"retained", True, [77])


def test_keepalive_timeout_sends_disconnect_0x8d_and_publishes_will(broker, make_v5, make_raw):
    """test_keepalive: a 5.0 client silent for 1.5 x its keep alive is disconnected
    [MQTT-3.1.2-22], Tern with DISCONNECT 0x8D (Keep Alive timeout), and its will is published.
    mosquitto 2.0.11 closes without DISCONNECT (accepted) and gets 4 s of slack, as in the
    3.1.1 suite."""
    keepalive = 2
    watcher = make_v5(broker, unique_id("kawatch")).connect()
    watcher.subscribe(TOPICS[4], 2)
    silent = make_raw(broker, timeout=10)
    start = time.monotonic()
    ack = raw_v5_connect(silent, unique_id("silent"), keepalive=keepalive,
                         will=rawmqtt.Will(TOPICS[4], b"keepalive expiry", qos=1))
    assert ack.reason_code == SUCCESS
    slack = 1.5 if broker.is_tern else 4.0
    packets = []
    try:
        while True:
            packets.append(silent.recv_packet(max(0.01, start + 1.5 * keepalive + slack
                                                  - time.monotonic())))
    except rawmqtt.ConnectionClosed:
        pass
    except TimeoutError:
        pytest.fail(f"not disconnected within 1.5 x {keepalive} s + {slack} s")
    elapsed = time.monotonic() - start
    assert elapsed >= keepalive * 0.9, f"disconnected after {elapsed:.1f} s, before keep alive"
    if broker.is_tern or packets:
        assert [(p.type, p.reason_code) for p in packets] == [
            (rawmqtt.DISCONNECT, KEEP_ALIVE_TIMEOUT)], packets
    msg = watcher.get_message(timeout=3)
    assert (msg.topic, msg.payload) == (TOPICS[4], b"keepalive expiry")


def test_redelivery_on_reconnect_with_dup_and_same_packet_ids(broker, make_v5, make_raw):
    """test_redelivery_on_reconnect: unacknowledged QoS 1 and 2 PUBLISH packets are re-sent when
    the session resumes (clean start 0, session expiry > 0), with DUP set and their packet ids,
    in order [MQTT-4.4.0-1] [MQTT-3.3.1-1]; once acknowledged, not again."""
    cid = unique_id("redeliver")
    sub = make_raw(broker)
    assert raw_v5_connect(sub, cid, session_expiry=60).reason_code == SUCCESS
    assert sub.subscribe([(WILDTOPICS[6], 2)]) == [2]
    publisher = make_v5(broker, unique_id("redpub")).connect()
    sent = [(TOPICS[1], b"first", 1), (TOPICS[3], b"second", 2),
            ("TopicA/x", b"third", 1), ("TopicA/y", b"fourth", 2)]
    for topic, payload, qos in sent:
        publisher.publish(topic, payload, qos=qos)
    first = [sub.expect(rawmqtt.PUBLISH) for _ in sent]
    assert [(p.topic, p.payload, p.qos, p.dup) for p in first] == [s + (False,) for s in sent]
    sub.disconnect()  # Neither PUBACK nor PUBREC.

    again = make_raw(broker)
    ack = raw_v5_connect(again, cid, clean_start=False, session_expiry=60)
    assert (ack.reason_code, ack.session_present) == (SUCCESS, True)
    redelivered = [again.expect(rawmqtt.PUBLISH) for _ in sent]
    assert [(p.topic, p.payload, p.qos, p.dup) for p in redelivered] == [s + (True,) for s in sent]
    assert [p.packet_id for p in redelivered] == [p.packet_id for p in first]
    again.expect_nothing(0.3)
    for p in redelivered:
        if p.qos == 1:
            again.send(rawmqtt.encode_puback(p.packet_id))
        else:
            again.send(rawmqtt.encode_pubrec(p.packet_id))
            assert again.expect(rawmqtt.PUBREL).packet_id == p.packet_id
            again.send(rawmqtt.encode_pubcomp(p.packet_id))
    again.disconnect()

    third = make_raw(broker)
    assert raw_v5_connect(third, cid, clean_start=False, session_expiry=60).session_present
    third.expect_nothing(0.5, "messages acknowledged on the previous connection sent again")


def test_subscribe_failure():
    pytest.skip("test_subscribe_failure needs a topic filter the server refuses by policy "
                "(an ACL); Tern has no authorisation, so no SUBACK 0x80 to provoke")


def test_dollar_topics_not_matched_by_leading_wildcards(broker, make_v5):
    """test_dollar_topics: `#` and `+/+` do not match `$TopicA/B` [MQTT-4.7.2-1], while
    `$TopicA/#` does."""
    wild = make_v5(broker, unique_id("dollarwild")).connect()
    assert wild.subscribe([("#", 1), (WILDTOPICS[5], 1)]) == [1, 1]
    dollar = make_v5(broker, unique_id("dollarsub")).connect()
    assert dollar.subscribe("$TopicA/#", 1) == [1]
    publisher = make_v5(broker, unique_id("dollarpub")).connect()
    publisher.publish("$" + TOPICS[1], b"dollar", qos=1)
    assert (dollar.get_message().topic) == "$" + TOPICS[1]
    publisher.publish(TOPICS[1], b"normal", qos=1)
    got = [wild.get_message()] + wild.drain(0.5)
    assert {(m.topic, m.payload) for m in got} == {(TOPICS[1], b"normal")}


def test_unsubscribe_reason_codes_and_remaining_subscriptions(broker, make_v5):
    """test_unsubscribe: UNSUBACK has one reason code per filter [MQTT-3.11.3-1]: 0x00 for a
    removed subscription, 0x11 (No subscription existed) for an unknown filter; messages on the
    removed filter stop while the others keep arriving [MQTT-3.10.4-1]."""
    client = make_v5(broker, unique_id("unsub")).connect()
    assert client.subscribe([(TOPICS[0], 2), (TOPICS[1], 2), (TOPICS[2], 2)]) == [2, 2, 2]
    assert client.unsubscribe([TOPICS[0], "never/subscribed"]) == [SUCCESS, NO_SUBSCRIPTION_EXISTED]
    publisher = make_v5(broker, unique_id("unsubpub")).connect()
    for topic in TOPICS[:3]:
        publisher.publish(topic, topic.encode(), qos=1)
    got = client.get_messages(2)
    assert sorted(m.topic for m in got) == sorted(TOPICS[1:3])
    client.expect_no_message(0.3)
    assert client.unsubscribe(TOPICS[0]) == [NO_SUBSCRIPTION_EXISTED]


def test_session_expiry(broker, make_v5):
    """test_session_expiry: Session Expiry Interval 0 ends the session with the connection
    [MQTT-3.1.2-23]; a positive interval keeps it (session present, subscription alive) until the
    interval passes, then it is gone [MQTT-3.1.2-23]; DISCONNECT can lengthen the interval, or
    set it to 0 [MQTT-3.14.2-...]."""
    cid = unique_id("expiry")

    def connect(clean_start, expiry):
        return make_v5(broker, cid, clean_start=clean_start,
                       connect_properties={"SessionExpiryInterval": expiry}).connect()

    # 0: the session ends with the connection.
    c = connect(True, 0)
    c.subscribe(TOPICS[0], 2)
    c.disconnect()
    assert not connect(False, 0).session_present
    # 2 s: still there at once, with its subscription; gone 2 s after the last disconnect.
    c = connect(True, 2)
    c.subscribe(TOPICS[0], 2)
    c.disconnect()
    c = connect(False, 2)
    assert c.session_present
    c.publish(TOPICS[0], b"still subscribed", qos=1)
    assert c.get_message().payload == b"still subscribed"
    c.disconnect()
    # mosquitto 2.0.11 was seen keeping a 2 s session for 2.6 s: it gets one more second.
    time.sleep(2.6 if broker.is_tern else 3.6)
    c = connect(False, 1)
    assert not c.session_present, "session outlived its 2 s expiry interval"
    c.publish(TOPICS[0], b"not subscribed", qos=1)
    c.expect_no_message(0.3)
    # 1 s on CONNECT, 3 s on DISCONNECT: alive after 1.5 s; DISCONNECT with 0 ends it at once.
    c = connect(True, 1)
    c.subscribe(TOPICS[0], 2)
    c.disconnect(properties={"SessionExpiryInterval": 3})
    time.sleep(1.5)
    c = connect(False, 1)
    assert c.session_present, "DISCONNECT's Session Expiry Interval 3 was not applied"
    c.disconnect(properties={"SessionExpiryInterval": 0})
    assert not connect(False, 1).session_present


def _will_client(broker, make_v5, cid, delay, expiry, topic):
    return make_v5(broker, cid, connect_properties={"SessionExpiryInterval": expiry},
                   will_properties={"WillDelayInterval": delay},
                   will=(topic, b"test_will_delay will message", 1, False)).connect()


@pytest.mark.parametrize("delay,expiry,expected", [(2, 10, 2.0), (5, 1, 1.0), (3, 0, 0.0)],
                         ids=["delay2-expiry10", "delay5-expiry1", "delay3-expiry0"])
def test_will_delay(broker, make_v5, delay, expiry, expected):
    """test_will_delay: the will is published when the Will Delay Interval passes or the session
    ends, whichever is first [MQTT-3.1.3-9]: 2 s delay and 10 s expiry, after ~2 s; 5 s delay
    and 1 s expiry, after ~1 s; 3 s delay and expiry 0, at once.

    mosquitto 2.0.11 publishes the will of a session with expiry 0 only when the will delay
    passes (measured at 4 s for a 3 s delay); accepted for it as "after the delay"."""
    if broker.is_mosquitto and expiry == 0:
        expected = float(delay)
    watcher = make_v5(broker, unique_id("wdwatch")).connect()
    watcher.subscribe(TOPICS[0], 2)
    willer = _will_client(broker, make_v5, unique_id("wdwiller"), delay, expiry, TOPICS[0])
    willer.vanish()
    start = time.monotonic()
    msg = watcher.get_message(timeout=expected + 3)
    elapsed = time.monotonic() - start
    assert (msg.topic, msg.payload) == (TOPICS[0], b"test_will_delay will message")
    assert expected - 0.3 <= elapsed <= expected + 1.5, \
        f"will after {elapsed:.2f} s, expected about {expected} s"


@pytest.mark.parametrize("clean_start", [False, True], ids=["resume", "clean-start"])
def test_will_delay_on_session_takeover(broker, make_v5, clean_start):
    """Section 3.1.3.2.2: when a new connection takes over the client id, the old connection's
    will (delay 1 s) is not sent if the new one resumes the session (clean start 0), and is sent
    because the session ends if it starts clean.

    mosquitto 2.0.11 was not seen publishing the will in the clean-start case; accepted."""
    cid = unique_id("wdtake")
    watcher = make_v5(broker, unique_id("wdwatch")).connect()
    watcher.subscribe(TOPICS[0], 2)
    old = _will_client(broker, make_v5, cid, 1, 10, TOPICS[0])
    make_v5(broker, cid, clean_start=clean_start,
            connect_properties={"SessionExpiryInterval": 10}).connect()
    old.wait_disconnected(5)
    if clean_start and broker.is_tern:
        assert watcher.get_message(timeout=3).payload == b"test_will_delay will message"
    elif not clean_start:
        watcher.expect_no_message(1.8)


def test_will_delay_cancelled_when_client_reconnects_in_time(broker, make_v5):
    """[MQTT-3.1.3-9] If the session resumes before the Will Delay Interval passes, the will is
    not published."""
    cid = unique_id("wdcancel")
    watcher = make_v5(broker, unique_id("wdwatch")).connect()
    watcher.subscribe(TOPICS[0], 2)
    _will_client(broker, make_v5, cid, 1, 10, TOPICS[0]).vanish()
    back = make_v5(broker, cid, clean_start=False,
                   connect_properties={"SessionExpiryInterval": 10}).connect()
    assert back.session_present
    watcher.expect_no_message(1.8)  # The 1 s will delay, and slack.
    back.disconnect()
    watcher.expect_no_message(0.2)


def test_publication_expiry(broker, make_v5):
    """test_publication_expiry: messages whose Message Expiry Interval passes while the
    subscriber is offline are not delivered [MQTT-3.3.2-5]; those still alive are delivered
    with the interval reduced by the time they waited [MQTT-3.3.2-6]. A retained message
    expires too. A connected subscriber gets the interval forwarded."""
    cid = unique_id("pubexp")
    session = {"SessionExpiryInterval": 60}
    sub = make_v5(broker, cid, connect_properties=session).connect()
    sub.subscribe(TOPICS[0], 2)
    # Online: forwarded with the interval (at most what was sent).
    publisher = make_v5(broker, unique_id("pubexppub")).connect()
    publisher.publish(TOPICS[0], b"online", qos=1, properties=publish_props(MessageExpiryInterval=10))
    online = sub.get_message()
    assert 9 <= (online.prop("MessageExpiryInterval") or -1) <= 10, online.properties
    sub.disconnect()

    for qos in (1, 2):
        publisher.publish(TOPICS[0], f"qos {qos} - expire".encode(), qos=qos,
                          properties=publish_props(MessageExpiryInterval=1))
    for qos in (1, 2):
        publisher.publish(TOPICS[0], f"qos {qos} - don't expire".encode(), qos=qos,
                          properties=publish_props(MessageExpiryInterval=10))
    publisher.publish(TOPICS[1], b"retained, expires", qos=1, retain=True,
                      properties=publish_props(MessageExpiryInterval=1))
    publisher.publish(TOPICS[2], b"retained, lives", qos=1, retain=True,
                      properties=publish_props(MessageExpiryInterval=10))
    time.sleep(2.2)

    again = make_v5(broker, cid, clean_start=False, connect_properties=session).connect()
    assert again.session_present
    got = [again.get_message()] + again.drain(0.7)
    assert [m.payload for m in got] == [b"qos 1 - don't expire", b"qos 2 - don't expire"]
    for m in got:
        remaining = m.prop("MessageExpiryInterval")
        assert remaining is not None and 1 <= remaining <= 8, \
            f"expected the 10 s interval less the 2.2 s waited, got {remaining}"
    late = make_v5(broker, unique_id("pubexplate")).connect()
    late.subscribe(TOPICS[1], 1)
    late.subscribe(TOPICS[2], 1)
    kept = late.get_message()
    assert (kept.topic, kept.retain) == (TOPICS[2], True)
    remaining = kept.prop("MessageExpiryInterval")
    assert remaining is not None and 1 <= remaining <= 8, \
        f"retained message: expected the 10 s interval less the 2.2 s waited, got {remaining}"
    late.expect_no_message(0.5)


def test_subscribe_option_no_local(broker, make_v5):
    """test_subscribe_options, noLocal: a client subscribed with No Local does not receive its
    own publications [MQTT-3.8.3-3]; another client subscribed with No Local does."""
    a = make_v5(broker, unique_id("nolocala")).connect()
    b = make_v5(broker, unique_id("nolocalb")).connect()
    a.subscribe(TOPICS[0], 2, no_local=True)
    b.subscribe(TOPICS[0], 2, no_local=True)
    a.publish(TOPICS[0], b"noLocal test", qos=1)
    assert b.get_message().payload == b"noLocal test"
    a.expect_no_message(0.5)


def test_subscribe_option_retain_as_published(broker, make_v5):
    """test_subscribe_options, retainAsPublished: with Retain As Published the retain flag of a
    forwarded message is the publisher's [MQTT-3.3.1-12]; without it, 0 [MQTT-3.3.1-13]."""
    rap = make_v5(broker, unique_id("rap")).connect()
    rap.subscribe(TOPICS[0], 2, retain_as_published=True)
    plain = make_v5(broker, unique_id("norap")).connect()
    plain.subscribe(TOPICS[0], 2)
    rap.publish(TOPICS[0], b"retain as published false", qos=1)
    rap.publish(TOPICS[0], b"retain as published true", qos=1, retain=True)
    assert [(m.payload, m.retain) for m in rap.get_messages(2)] == [
        (b"retain as published false", False), (b"retain as published true", True)]
    assert [m.retain for m in plain.get_messages(2)] == [False, False]
    rap.expect_no_message(0.2)


@pytest.mark.parametrize("handling", [0, 1, 2])
def test_subscribe_option_retain_handling(broker, make_v5, handling):
    """test_subscribe_options, retainHandling [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]:
    0 sends retained messages on every SUBSCRIBE, 1 only when the subscription is new, 2 never."""
    publisher = make_v5(broker, unique_id("rhpub")).connect()
    for qos, topic in enumerate(TOPICS[1:4]):
        publisher.publish(topic, f"qos {qos}".encode(), qos=qos, retain=True)
    client = make_v5(broker, unique_id("rh")).connect()
    counts = []
    for _ in range(2):
        assert client.subscribe(WILDTOPICS[5], 2, retain_handling=handling) == [2]
        got = client.drain(0.4)
        assert all(m.retain for m in got)
        if got:
            assert sorted(m.qos for m in got) == [0, 1, 2]
        counts.append(len(got))
    assert counts == {0: [3, 3], 1: [3, 0], 2: [0, 0]}[handling], counts


@pytest.mark.parametrize("qos", [1, 2])
def test_flow_control_client_receive_maximum(broker, make_v5, qos):
    """test_flow_control1: a client with Receive Maximum 2 that acknowledges nothing gets two
    QoS 1/2 PUBLISH packets and no more [MQTT-3.3.4-9]; each acknowledgement (PUBACK, or PUBCOMP
    for QoS 2) lets exactly one more through, in order."""
    sub = make_v5(broker, unique_id("flowsub"), manual_ack=True,
                  connect_properties={"ReceiveMaximum": 2}).connect()
    sub.subscribe(TOPICS[0], 2)
    publisher = make_v5(broker, unique_id("flowpub")).connect()
    for i in range(5):
        publisher.publish(TOPICS[0], f"message {i}".encode(), qos=qos)
    got = sub.get_messages(2)
    assert [m.payload for m in got] == [b"message 0", b"message 1"]
    sub.expect_no_message(0.5)
    if broker.is_mosquitto:
        # mosquitto 2.0.11 sends two more PUBLISH packets for the first acknowledgement (three
        # unacknowledged with a Receive Maximum of 2, seen with a raw client too); for it only
        # the first window and the complete, ordered delivery are checked.
        for m in got:
            sub.ack(m)
        rest = sub.get_messages(3)
        assert [m.payload for m in rest] == [b"message 2", b"message 3", b"message 4"]
        for m in rest:
            sub.ack(m)
        return
    for expected in (b"message 2", b"message 3", b"message 4"):
        sub.ack(got.pop(0))
        got.append(sub.get_message())
        assert got[-1].payload == expected
        sub.expect_no_message(0.2)
    for m in got:
        sub.ack(m)


def test_flow_control_server_receive_maximum_exceeded(start_broker, make_raw):
    """test_flow_control2: a client that sends more unacknowledged QoS 2 PUBLISH packets than the
    server's Receive Maximum (here configured to 2) gets DISCONNECT 0x93 [MQTT-3.3.4-9]."""
    broker = start_broker(limits={"receive_maximum": 2})
    raw = make_raw(broker)
    ack = raw_v5_connect(raw, unique_id("flow2"))
    assert ack.prop(rawmqtt.RECEIVE_MAXIMUM) == 2
    for pid in (1, 2, 3):  # No PUBREL: each stays unacknowledged.
        raw.send(rawmqtt.encode_publish(TOPICS[0], b"x", qos=2, packet_id=pid, v5=True))
    packets = []
    try:
        while True:
            packets.append(raw.recv_packet(5))
    except rawmqtt.ConnectionClosed:
        pass
    assert [p.type for p in packets] == [rawmqtt.PUBREC, rawmqtt.PUBREC, rawmqtt.DISCONNECT], packets
    assert packets[-1].reason_code == RECEIVE_MAXIMUM_EXCEEDED


def test_server_topic_aliases(broker, make_v5):
    """test_server_topic_alias: a client with Topic Alias Maximum 2 may get aliased PUBLISH
    packets, never with an alias above 2 [MQTT-3.3.2-10]; paho leaves the resolving to the
    application (the wrapper does it): every message has its right topic. Tern assigns aliases
    to the first 2 topics of the connection: the first message on each carries topic and alias,
    the next ones an empty topic and the alias; the third topic gets none.
    (mosquitto 2.0.11 assigns no outbound aliases, which is allowed.)"""
    sub = make_v5(broker, unique_id("salias"), connect_properties={"TopicAliasMaximum": 2}).connect()
    sub.subscribe("alias/#", 2)
    publisher = make_v5(broker, unique_id("saliaspub")).connect()
    topics = ["alias/one", "alias/two", "alias/three"]
    sent = [(t, qos) for qos in (0, 1, 2) for t in topics]
    for topic, qos in sent:
        publisher.publish(topic, f"{topic} {qos}".encode(), qos=qos)
    got = sub.get_messages(len(sent))
    assert [(m.topic, m.payload, m.qos) for m in got] == [(t, f"{t} {q}".encode(), q) for t, q in sent]
    assert all(m.topic_alias is None or 1 <= m.topic_alias <= 2 for m in got)
    if broker.is_tern:
        seen = [(m.topic, m.wire_topic, m.topic_alias) for m in got]
        assert seen == [
            ("alias/one", "alias/one", 1), ("alias/two", "alias/two", 2), ("alias/three", "alias/three", None),
            ("alias/one", "", 1), ("alias/two", "", 2), ("alias/three", "alias/three", None),
            ("alias/one", "", 1), ("alias/two", "", 2), ("alias/three", "alias/three", None),
        ], seen
    # A client that sets no Topic Alias Maximum (0) never gets an alias [MQTT-3.3.2-9].
    plain = make_v5(broker, unique_id("noalias")).connect()
    plain.subscribe("alias/#", 2)
    for qos in (0, 1):
        publisher.publish("alias/one", b"plain", qos=qos)
    assert [(m.wire_topic, m.topic_alias) for m in plain.get_messages(2)] == [("alias/one", None)] * 2


def test_server_topic_aliases_do_not_outlive_the_connection(broker, make_v5):
    """[MQTT-3.3.2-7] Topic alias mappings exist only within one network connection: after the
    session resumes on a new connection, the first message on a topic aliased before comes
    with its full topic name again (paho could not resolve an empty one)."""
    cid = unique_id("saliasre")
    session = {"TopicAliasMaximum": 2, "SessionExpiryInterval": 60}
    sub = make_v5(broker, cid, connect_properties=session).connect()
    sub.subscribe("realias/t", 1)
    publisher = make_v5(broker, unique_id("saliasrepub")).connect()
    publisher.publish("realias/t", b"before", qos=1)
    assert sub.get_message().topic == "realias/t"
    sub.disconnect()
    publisher.publish("realias/t", b"queued", qos=1)
    publisher.publish("realias/t", b"queued too", qos=1)
    again = make_v5(broker, cid, clean_start=False, connect_properties=session).connect()
    got = again.get_messages(2)
    assert [(m.payload, m.topic) for m in got] == [(b"queued", "realias/t"), (b"queued too", "realias/t")]
    assert got[0].wire_topic == "realias/t", "an alias from the previous connection was reused"


def test_client_topic_aliases(broker, make_v5):
    """test_client_topic_alias: the server announces a Topic Alias Maximum; a PUBLISH with a
    topic and alias 1 sets the alias, a PUBLISH with an empty topic and alias 1 uses it, and
    one with a new topic remaps it [MQTT-3.3.2-12]: the subscriber sees the right topics."""
    watcher = make_v5(broker, unique_id("caliaswatch")).connect()
    watcher.subscribe([(TOPICS[0], 2), (TOPICS[1], 2)])
    client = make_v5(broker, unique_id("calias")).connect()
    maximum = client.connack_prop("TopicAliasMaximum", 0)
    if broker.is_tern:
        assert maximum == 64
    assert maximum >= 1, "the server accepts no topic aliases"
    alias1 = publish_props(TopicAlias=1)
    client.publish(TOPICS[0], b"topic alias 1", qos=1, properties=alias1)
    client.publish("", b"topic alias 2", qos=1, properties=alias1)
    # All at QoS 1: 5.0 orders messages only per topic and QoS [MQTT-4.6.0-6].
    client.publish(TOPICS[1], b"remapped", qos=1, properties=alias1)
    client.publish("", b"topic alias 3", qos=1, properties=alias1)
    got = watcher.get_messages(4)
    assert [(m.topic, m.payload) for m in got] == [
        (TOPICS[0], b"topic alias 1"), (TOPICS[0], b"topic alias 2"),
        (TOPICS[1], b"remapped"), (TOPICS[1], b"topic alias 3")]
    # The subscriber (no Topic Alias Maximum) gets full topic names, not the publisher's alias.
    assert all(m.wire_topic == m.topic and m.topic_alias is None for m in got)
    client.disconnect()


@pytest.mark.parametrize("case", ["alias-0", "alias-above-maximum", "unknown-alias",
                                  "alias-from-previous-connection"])
def test_client_topic_alias_invalid_gets_disconnect_0x94(broker, make_raw, case):
    """test_client_topic_alias: alias 0 and an alias above the server's Topic Alias Maximum are
    Topic Alias invalid: DISCONNECT 0x94 [MQTT-3.2.2-17] [MQTT-3.3.2-8]. An empty topic with an
    alias the server has no mapping for (aliases do not outlive a connection [MQTT-3.3.2-7]) is
    a Protocol Error, DISCONNECT 0x82 (section 3.3.4, "If the receiver does not already have a
    mapping for this Topic Alias ... zero length Topic Name ... 0x82"). The Paho test only
    checks that a DISCONNECT comes. (Raw packets: paho refuses to encode alias 0.)"""
    cid = unique_id("badalias")
    raw = make_raw(broker)
    ack = raw_v5_connect(raw, cid)
    maximum = ack.prop(rawmqtt.TOPIC_ALIAS_MAXIMUM, 0)

    def alias(n):
        return rawmqtt.properties((rawmqtt.TOPIC_ALIAS, n))

    if case == "alias-0":
        raw.send(rawmqtt.encode_publish(TOPICS[0], b"alias 0", v5=True, props=alias(0)))
    elif case == "alias-above-maximum":
        raw.send(rawmqtt.encode_publish(TOPICS[0], b"too big", v5=True, props=alias(maximum + 1)))
    elif case == "unknown-alias":
        raw.send(rawmqtt.encode_publish("", b"unknown", v5=True, props=alias(1)))
    else:
        raw.publish(TOPICS[0], b"set", qos=1, props=alias(1))
        raw.disconnect()
        raw = make_raw(broker)
        assert raw_v5_connect(raw, cid).reason_code == SUCCESS
        raw.send(rawmqtt.encode_publish("", b"stale alias", v5=True, props=alias(1)))
    packets = []
    try:
        while True:
            packets.append(raw.recv_packet(5))
    except rawmqtt.ConnectionClosed:
        pass
    expected = {"alias-0": TOPIC_ALIAS_INVALID, "alias-above-maximum": TOPIC_ALIAS_INVALID,
                "unknown-alias": PROTOCOL_ERROR, "alias-from-previous-connection": PROTOCOL_ERROR}[case]
    if broker.is_mosquitto and case == "alias-0":
        # mosquitto 2.0.11 rejects alias 0 while decoding the properties: 0x81 Malformed Packet.
        expected = MALFORMED_PACKET
    assert [(p.type, p.reason_code) for p in packets] == [(rawmqtt.DISCONNECT, expected)], packets


def test_maximum_packet_size_of_client_respected(broker, make_v5):
    """test_maximum_packet_size: a client with Maximum Packet Size 64 gets a small message but
    not one whose PUBLISH would exceed 64 bytes; the server drops it for that client
    [MQTT-3.1.2-25] while another subscriber gets it."""
    small = make_v5(broker, unique_id("maxpkt"), connect_properties={"MaximumPacketSize": 64}).connect()
    small.subscribe(TOPICS[0], 2)
    other = make_v5(broker, unique_id("maxpktother")).connect()
    other.subscribe(TOPICS[0], 2)
    other.publish(TOPICS[0], b"." * 32, qos=0)
    assert small.get_message().payload == b"." * 32
    assert other.get_message().payload == b"." * 32
    other.publish(TOPICS[0], b"." * 64, qos=1)
    assert other.get_message().payload == b"." * 64
    small.expect_no_message(0.5)
    other.publish(TOPICS[0], b"after", qos=1)
    assert small.get_message().payload == b"after", "the oversized message was queued instead"


def test_maximum_packet_size_of_server_enforced(start_broker, make_v5):
    """test_maximum_packet_size (server side): CONNACK announces the configured Maximum Packet
    Size, and a client sending a larger PUBLISH gets DISCONNECT 0x95 (Packet too large)
    [MQTT-3.2.2-15] [MQTT-4.13.1-1]. mosquitto 2.0.11 maps `max_packet_size`."""
    broker = start_broker(limits={"max_packet_size": 1024})
    client = make_v5(broker, unique_id("srvmaxpkt")).connect()
    assert client.connack_prop("MaximumPacketSize") == 1024
    client.publish(TOPICS[0], b"x" * 900, qos=1)
    client.client.publish(TOPICS[0], b"x" * 2000, qos=1)
    rc = client.wait_disconnected(5)
    assert client.disconnect_from_server, f"closed without a server DISCONNECT ({rc})"
    assert rc.value == PACKET_TOO_LARGE, rc


def test_request_response_properties_passed_through(broker, make_v5):
    """test_request_response: Response Topic and Correlation Data reach the responder unchanged
    [MQTT-3.3.2-15] [MQTT-3.3.2-16]; its reply, published to the response topic with the
    correlation data, reaches the requester."""
    requester = make_v5(broker, unique_id("requester")).connect()
    responder = make_v5(broker, unique_id("responder")).connect()
    requester.subscribe("response/requester", 2)
    responder.subscribe(TOPICS[0], 2, no_local=True)
    requester.publish(TOPICS[0], b"request", qos=1, properties=publish_props(
        ResponseTopic="response/requester", CorrelationData=b"\x00334\xff"))
    request = responder.get_message()
    assert request.prop("ResponseTopic") == "response/requester"
    assert request.prop("CorrelationData") == b"\x00334\xff"
    responder.publish(request.prop("ResponseTopic"), b"response", qos=1, properties=publish_props(
        CorrelationData=request.prop("CorrelationData")))
    response = requester.get_message()
    assert (response.topic, response.payload, response.prop("CorrelationData")) == (
        "response/requester", b"response", b"\x00334\xff")


def test_response_information_when_requested(start_broker, make_v5):
    """Request Response Information 1 gets Response Information in CONNACK, here configured as
    `responses/{client_id}` [MQTT-3.2.2-...]; without the request there is none
    [MQTT-3.1.2-28]."""
    broker = start_broker(mqtt={"response_information": "responses/{client_id}"})
    cid = unique_id("respinfo")
    asking = make_v5(broker, cid, connect_properties={"RequestResponseInformation": 1}).connect()
    assert asking.connack_prop("ResponseInformation") == f"responses/{cid}"
    silent = make_v5(broker, unique_id("norespinfo")).connect()
    assert silent.connack_prop("ResponseInformation") is None
    declining = make_v5(broker, unique_id("declines"),
                        connect_properties={"RequestResponseInformation": 0}).connect()
    assert declining.connack_prop("ResponseInformation") is None


def test_shared_subscriptions_deliver_each_message_once(broker, make_v5):
    """test_shared_subscriptions: two clients subscribe to `$share/sharename/<topic>` and to a
    normal topic. A message on the normal topic reaches both; each message on the shared topic
    reaches exactly one of them [MQTT-4.8.2-...], and (round robin, Tern's default) both
    get some."""
    shared_topic = "client_test5/x"
    a = make_v5(broker, unique_id("sharea")).connect()
    b = make_v5(broker, unique_id("shareb")).connect()
    for c in (a, b):
        assert c.subscribe([("$share/sharename/" + shared_topic, 2), (TOPICS[0], 2)]) == [2, 2]
    b.publish(TOPICS[0], b"to both", qos=1)
    assert a.get_message().payload == b"to both"
    assert b.get_message().payload == b"to both"

    count = 10
    for i in range(count):
        b.publish(shared_topic, f"message {i}".encode(), qos=1)
    got = {"a": [], "b": []}
    deadline = time.monotonic() + 10
    while len(got["a"]) + len(got["b"]) < count and time.monotonic() < deadline:
        for name, c in (("a", a), ("b", b)):
            got[name] += c.drain(0.05)
    got["a"] += a.drain(0.3)
    got["b"] += b.drain(0.3)
    payloads = sorted(m.payload for m in got["a"] + got["b"])
    assert payloads == sorted(f"message {i}".encode() for i in range(count)), \
        "each shared message must be delivered exactly once"
    assert all(m.topic == shared_topic for m in got["a"] + got["b"])
    assert got["a"] and got["b"], f"one member got everything: a={len(got['a'])} b={len(got['b'])}"
    if broker.is_tern:
        assert (len(got["a"]), len(got["b"])) == (5, 5), "round robin alternates"


@pytest.mark.parametrize("strategy", ["round_robin", "random", "hash_client_id", "hash_topic",
                                      "sticky"])
def test_shared_subscription_strategies(start_broker, make_v5, strategy):
    """Tern's `[mqtt] shared_subscription_strategy`: every strategy delivers each message to
    exactly one member; hash_client_id (one publisher), hash_topic (one topic) and sticky
    (members stay connected) send them all to the same member, round robin alternates."""
    broker = start_broker(mqtt={"shared_subscription_strategy": strategy})
    members = [make_v5(broker, unique_id(f"strat{i}")).connect() for i in range(2)]
    for m in members:
        m.subscribe("$share/g/strategy/t", 1)
    publisher = make_v5(broker, unique_id("stratpub")).connect()
    count = 8
    for i in range(count):
        publisher.publish("strategy/t", str(i).encode(), qos=1)
    received = [[], []]
    deadline = time.monotonic() + 10
    while sum(map(len, received)) < count and time.monotonic() < deadline:
        for i, m in enumerate(members):
            received[i] += m.drain(0.05)
    for i, m in enumerate(members):
        received[i] += m.drain(0.2)
    assert sorted(int(m.payload) for r in received for m in r) == list(range(count))
    counts = sorted(len(r) for r in received)
    if strategy in ("hash_client_id", "hash_topic", "sticky"):
        assert counts == [0, count], counts
    elif strategy == "round_robin":
        assert counts == [count // 2, count // 2], counts


def test_server_keep_alive_when_client_asks_more_than_configured(start_broker, make_v5):
    """test_server_keep_alive: with a configured maximum of 30 s, a client asking for 60 s gets
    Server Keep Alive 30 in CONNACK [MQTT-3.2.2-21]; one asking for 20 s gets none."""
    broker = start_broker(limits={"max_keep_alive": 30})
    greedy = make_v5(broker, unique_id("ka60"), keepalive=60).connect()
    assert greedy.connack_prop("ServerKeepAlive") == 30
    modest = make_v5(broker, unique_id("ka20"), keepalive=20).connect()
    assert modest.connack_prop("ServerKeepAlive") is None
    if broker.is_tern:
        # Tern's policy: keep alive 0 (none) is more than the maximum too.
        never = make_v5(broker, unique_id("ka0"), keepalive=0).connect()
        assert never.connack_prop("ServerKeepAlive") == 30


def test_user_properties_passed_through_in_order(broker, make_v5):
    """test_user_properties: User Properties, duplicate keys and non-ASCII included, reach the
    subscriber unchanged and in order at QoS 0, 1 and 2 [MQTT-3.3.2-17] [MQTT-3.3.2-18]."""
    client = make_v5(broker, unique_id("userprops")).connect()
    client.subscribe(TOPICS[0], 2)
    for qos in (0, 1, 2):
        client.publish(TOPICS[0], f"qos {qos}".encode(), qos=qos,
                       properties=publish_props(UserProperty=USER_PROPS))
    got = client.get_messages(3)
    assert [(m.qos, m.user_properties) for m in got] == [(q, USER_PROPS) for q in (0, 1, 2)]


def test_payload_format_indicator_and_content_type_passed_through(broker, make_v5):
    """test_payload_format: Payload Format Indicator and Content Type reach the subscriber
    unchanged at QoS 0, 1 and 2 [MQTT-3.3.2-4] [MQTT-3.3.2-20]."""
    client = make_v5(broker, unique_id("payloadfmt")).connect()
    client.subscribe(TOPICS[0], 2)
    for qos in (0, 1, 2):
        client.publish(TOPICS[0], "é".encode(), qos=qos, properties=publish_props(
            PayloadFormatIndicator=1, ContentType="My name"))
    got = client.get_messages(3)
    assert [(m.qos, m.prop("PayloadFormatIndicator"), m.prop("ContentType")) for m in got] == [
        (q, 1, "My name") for q in (0, 1, 2)]


@pytest.mark.parametrize("case", ["property-overruns-packet", "duplicate-property"])
def test_bad_publish_properties_get_disconnect_reason(broker, make_raw, case):
    """Server DISCONNECT reason codes for bad properties [MQTT-4.13.1-1]: a property section
    longer than the packet is a Malformed Packet (0x81); a Payload Format Indicator included
    twice is a Protocol Error (0x82) [MQTT-3.3.2-...] (section 2.2.2.2)."""
    raw = make_raw(broker)
    assert raw_v5_connect(raw, unique_id("badprops")).reason_code == SUCCESS
    if case == "property-overruns-packet":
        # Property length 10, but only 2 bytes (one Payload Format Indicator) follow.
        body = rawmqtt._utf8(TOPICS[0]) + bytes([10, rawmqtt.PAYLOAD_FORMAT_INDICATOR, 1])
        raw.send(rawmqtt._packet(rawmqtt.PUBLISH, 0, body))
        expected = MALFORMED_PACKET
    else:
        twice = rawmqtt.properties((rawmqtt.PAYLOAD_FORMAT_INDICATOR, 1),
                                   (rawmqtt.PAYLOAD_FORMAT_INDICATOR, 1))
        raw.send(rawmqtt.encode_publish(TOPICS[0], b"x", v5=True, props=twice))
        expected = PROTOCOL_ERROR
    packets = []
    try:
        while True:
            packets.append(raw.recv_packet(5))
    except rawmqtt.ConnectionClosed:
        pass
    got = [(p.type, p.reason_code) for p in packets]
    if broker.is_mosquitto and case == "duplicate-property":
        # mosquitto 2.0.11 closes the connection without a DISCONNECT here (allowed: the reason
        # code SHOULD be sent, not MUST).
        assert got in ([], [(rawmqtt.DISCONNECT, PROTOCOL_ERROR)]), packets
    else:
        assert got == [(rawmqtt.DISCONNECT, expected)], packets


# ------------------------------------------------------------------------------------------
# Reason codes of acknowledgements
# ------------------------------------------------------------------------------------------


def test_puback_and_pubrec_report_no_matching_subscribers(broker, make_v5, make_raw):
    """PUBACK and PUBREC carry 0x10 (No matching subscribers) when nobody is subscribed, 0x00
    otherwise (Tern's policy; the code is optional). paho reports PUBACK's code; PUBREC's is
    read raw. mosquitto 2.0.11 sends 0x10 in PUBACK but 0x00 in PUBREC, accepted for it."""
    client = make_v5(broker, unique_id("nomatch")).connect()
    assert client.publish("nobody/here", b"x", qos=1) == NO_MATCHING_SUBSCRIBERS
    client.subscribe("somebody/here", 1)
    assert client.publish("somebody/here", b"x", qos=1) == SUCCESS
    raw = make_raw(broker)
    assert raw_v5_connect(raw, unique_id("nomatchraw")).reason_code == SUCCESS
    raw.send(rawmqtt.encode_publish("nobody/here", b"x", qos=2, packet_id=7, v5=True))
    pubrec = raw.expect(rawmqtt.PUBREC)
    assert (pubrec.packet_id, pubrec.reason_code) == (
        7, NO_MATCHING_SUBSCRIBERS if broker.is_tern else SUCCESS)
    raw.send(rawmqtt.encode_pubrel(7))
    assert raw.expect(rawmqtt.PUBCOMP).packet_id == 7


def test_no_local_on_shared_subscription_is_a_protocol_error(broker, make_raw):
    """[MQTT-3.8.3-4] It is a Protocol Error to set No Local on a shared subscription: the
    server disconnects with 0x82. mosquitto 2.0.11 grants the subscription instead; accepted."""
    raw = make_raw(broker)
    assert raw_v5_connect(raw, unique_id("nlshared")).reason_code == SUCCESS
    raw.send(rawmqtt.encode_subscribe(1, [("$share/g/nolocal", 1 | 0x04)], v5=True))
    packets = []
    try:
        while True:
            packets.append(raw.recv_packet(3))
    except rawmqtt.ConnectionClosed:
        pass
    except TimeoutError:
        assert broker.is_mosquitto, f"still connected after {packets}"
        assert [(p.type, p.granted) for p in packets] == [(rawmqtt.SUBACK, [1])], packets
        return
    assert [(p.type, p.reason_code) for p in packets] == [(rawmqtt.DISCONNECT, PROTOCOL_ERROR)], packets


def test_suback_reason_code_for_invalid_filter(broker, make_v5, make_raw):
    """SUBACK gives each filter its own reason code: a malformed filter (`#` not last) gets 0x8F
    (Topic Filter invalid) while the valid one in the same SUBSCRIBE is granted
    [MQTT-3.9.3-1]. mosquitto 2.0.11 instead treats it as a malformed packet and disconnects,
    which 5.0 also allows [MQTT-4.7.1-1]."""
    raw = make_raw(broker)
    assert raw_v5_connect(raw, unique_id("badfilter")).reason_code == SUCCESS
    pid = raw.next_packet_id()
    raw.send(rawmqtt.encode_subscribe(pid, [("good/+", 1), ("bad/#/filter", 1)], v5=True))
    try:
        p = raw.recv_packet(5)
    except rawmqtt.ConnectionClosed:
        if broker.is_tern:
            raise
        return
    if not broker.is_tern and p.type == rawmqtt.DISCONNECT:
        return
    assert (p.type, p.packet_id, p.granted) == (rawmqtt.SUBACK, pid, [1, TOPIC_FILTER_INVALID]), p

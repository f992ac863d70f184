"""The Eclipse Paho MQTT 3.1.1 interoperability scenarios, reimplemented with paho-mqtt.

These follow the `Test` class of paho.mqtt.testing's client_test.py (basic, retained messages,
offline message queueing, will message, overlapping subscriptions, keep alive, redelivery on
reconnect, zero-length client id, `$` topics, unsubscribe). Where paho-mqtt cannot express a
scenario (a client that never acknowledges, never pings, or vanishes without DISCONNECT) the test
uses the raw-packet client in rawmqtt.py. The core scenarios also run over MQTT 3.1.
"""

from __future__ import annotations

import time

import pytest

import rawmqtt
from pahoclient import PROTOCOLS, unique_id

# The topic names of the Paho interoperability suite.
TOPICS = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
WILDTOPICS = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")

both_protocols = pytest.mark.parametrize("protocol", list(PROTOCOLS), ids=lambda p: f"mqtt{p}")
RAW_LEVELS = {"3.1.1": rawmqtt.MQTT_V311, "3.1": rawmqtt.MQTT_V31}


@both_protocols
def test_basic_publish_qos0_1_2_delivered_to_subscriber(broker, make_paho, protocol):
    """Connect, subscribe at QoS 2, publish at QoS 0, 1 and 2: all three arrive, in order,
    each at the QoS it was published with [MQTT-3.3.5-1], then a clean DISCONNECT."""
    client = make_paho(broker, unique_id("basic"), protocol=PROTOCOLS[protocol]).connect()
    assert client.subscribe(TOPICS[0], 2) == [2]
    for qos in (0, 1, 2):
        client.publish(TOPICS[0], f"qos {qos}".encode(), qos=qos)
    got = client.get_messages(3)
    assert [(m.topic, m.payload, m.qos) for m in got] == [
        (TOPICS[0], b"qos 0", 0), (TOPICS[0], b"qos 1", 1), (TOPICS[0], b"qos 2", 2)]
    client.disconnect()


@both_protocols
def test_retained_messages_delivered_to_new_wildcard_subscriber_and_cleared_by_empty_payload(
        broker, make_paho, protocol):
    """Retained messages at QoS 0/1/2 on several topics reach a later `+/+` subscriber with the
    retain flag set [MQTT-3.3.1-6] [MQTT-3.3.1-8]; an empty retained payload removes them, so a
    subscriber after that gets nothing [MQTT-3.3.1-10] [MQTT-3.3.1-11]."""
    proto = PROTOCOLS[protocol]
    publisher = make_paho(broker, unique_id("retpub"), protocol=proto).connect()
    retained = {TOPICS[1]: (b"qos 0", 0), TOPICS[2]: (b"qos 1", 1), TOPICS[3]: (b"qos 2", 2)}
    for topic, (payload, qos) in retained.items():
        publisher.publish(topic, payload, qos=qos, retain=True)

    subscriber = make_paho(broker, unique_id("retsub"), protocol=proto).connect()
    subscriber.subscribe(WILDTOPICS[5], 2)
    got = subscriber.get_messages(3)
    assert {m.topic: (m.payload, m.qos) for m in got} == retained
    assert all(m.retain for m in got), "retained messages sent on SUBSCRIBE must have retain=1"
    subscriber.expect_no_message(0.3)
    subscriber.disconnect()

    for topic, (_, qos) in retained.items():
        publisher.publish(topic, b"", qos=qos, retain=True)
    late = make_paho(broker, unique_id("retlate"), protocol=proto).connect()
    late.subscribe(WILDTOPICS[5], 2)
    late.expect_no_message(0.7)


@both_protocols
def test_offline_messages_queued_for_persistent_session_and_delivered_on_reconnect(
        broker, make_paho, protocol):
    """A clean_session=0 subscriber that is offline gets the QoS 1 and 2 messages published
    meanwhile when it reconnects [MQTT-3.1.2-5], and a 3.1.1 CONNACK says session present
    [MQTT-3.2.2-2]. (Queueing QoS 0 is optional, so 2 or 3 messages are accepted.)"""
    proto = PROTOCOLS[protocol]
    cid = unique_id("offline")
    subscriber = make_paho(broker, cid, clean_session=False, protocol=proto).connect()
    assert not subscriber.session_present
    assert subscriber.subscribe(WILDTOPICS[5], 2) == [2]
    subscriber.disconnect()

    publisher = make_paho(broker, unique_id("offpub"), protocol=proto).connect()
    for qos, topic in enumerate(TOPICS[1:4]):
        publisher.publish(topic, f"qos {qos}".encode(), qos=qos)
    publisher.disconnect()

    again = make_paho(broker, cid, clean_session=False, protocol=proto).connect()
    if protocol == "3.1.1":  # MQTT 3.1 has no session present flag.
        assert again.session_present, "CONNACK must report the stored session"
    got = [again.get_message()]
    got += again.drain(1.0)
    payloads = sorted(m.payload for m in got)
    assert payloads in ([b"qos 1", b"qos 2"], [b"qos 0", b"qos 1", b"qos 2"]), payloads


@both_protocols
def test_will_published_when_client_socket_closes_without_disconnect(broker, make_paho, protocol):
    """[MQTT-3.1.2-8] The will message is published when the network connection is closed
    without a DISCONNECT packet."""
    proto = PROTOCOLS[protocol]
    watcher = make_paho(broker, unique_id("willwatch"), protocol=proto).connect()
    watcher.subscribe(TOPICS[2], 2)

    willer = make_paho(broker, unique_id("willer"), protocol=proto,
                       will=(TOPICS[2], b"client not disconnected", 2, False)).connect()
    # Stop paho's network thread first so it cannot notice the close and clean up politely.
    willer.client.loop_stop()
    willer.client.socket().close()

    msg = watcher.get_message(timeout=5)
    assert (msg.topic, msg.payload, msg.qos) == (TOPICS[2], b"client not disconnected", 2)


def test_will_published_when_raw_client_resets_connection(broker, make_paho, make_raw):
    """[MQTT-3.1.2-8] The will is also published when the connection is reset (RST) right after
    CONNACK, the harshest way a client can disappear; it carries the will QoS and retain=0 to an
    existing subscriber."""
    watcher = make_paho(broker, unique_id("willwatch")).connect()
    watcher.subscribe("will/+", 1)
    raw = make_raw(broker)
    ack = raw.connect(unique_id("rawwill"), will=rawmqtt.Will("will/raw", b"gone", qos=1))
    assert ack.return_code == 0
    raw.abort()
    msg = watcher.get_message(timeout=5)
    assert (msg.topic, msg.payload, msg.qos, msg.retain) == ("will/raw", b"gone", 1, False)


@both_protocols
def test_will_not_published_after_clean_disconnect(broker, make_paho, protocol):
    """[MQTT-3.1.2-10] The will message is removed from the session on receipt of DISCONNECT,
    so it is never published."""
    proto = PROTOCOLS[protocol]
    watcher = make_paho(broker, unique_id("willwatch"), protocol=proto).connect()
    watcher.subscribe(TOPICS[2], 2)
    willer = make_paho(broker, unique_id("willer"), protocol=proto,
                       will=(TOPICS[2], b"should not appear", 2, False)).connect()
    willer.disconnect()
    watcher.expect_no_message(1.0)


def test_overlapping_subscriptions_deliver_message_at_highest_qos(broker, make_paho):
    """[MQTT-3.3.5-1] A publish matching `TopicA/#` (QoS 2) and `TopicA/+` (QoS 1) of one client
    is delivered respecting the maximum QoS of the matching subscriptions.

    Tern's documented behaviour (DESIGN.md) is exactly one copy, at QoS 2. For mosquitto only
    the number of copies (1 or 2) is checked, as the Paho suite does: mosquitto 2.0.11 sends one
    copy at the QoS of whichever subscription it matches first, here QoS 1, a known deviation
    from the clause (eclipse-mosquitto/mosquitto#3319).
    """
    client = make_paho(broker, unique_id("overlap")).connect()
    assert client.subscribe([(WILDTOPICS[6], 2), (WILDTOPICS[0], 1)]) == [2, 1]
    client.publish(TOPICS[3], b"overlapping topic filters", qos=2)
    got = [client.get_message()] + client.drain(1.0)
    assert all(m.topic == TOPICS[3] and m.payload == b"overlapping topic filters" for m in got)
    qos = sorted(m.qos for m in got)
    if broker.is_tern:
        assert qos == [2], f"tern delivers one copy at the highest QoS, got QoS {qos}"
    else:
        assert len(got) in (1, 2), f"expected one or two copies, got QoS {qos}"


def test_keepalive_expiry_disconnects_silent_client_and_publishes_will(broker, make_paho, make_raw):
    """[MQTT-3.1.2-24] A client that sends nothing for 1.5 times its keep alive is disconnected
    by the server, and since that is not a DISCONNECT its will is published [MQTT-3.1.2-8]."""
    keepalive = 2
    watcher = make_paho(broker, unique_id("kawatch")).connect()
    watcher.subscribe("keepalive/will", 2)
    silent = make_raw(broker, timeout=10)
    start = time.monotonic()
    ack = silent.connect(unique_id("silent"), keepalive=keepalive,
                         will=rawmqtt.Will("keepalive/will", b"keep alive expired", qos=1))
    assert ack.return_code == 0
    # The raw client sends nothing more: no PINGREQ, no DISCONNECT.
    # Tern's bound: 1.5 x keep alive plus 1.5 s of slack. mosquitto 2.0.11 checks keep alive
    # coarsely and was measured closing at 5.1-5.9 s for a 2 s keep alive, so it gets 4 s.
    slack = 1.5 if broker.is_tern else 4.0
    assert silent.wait_closed(timeout=1.5 * keepalive + slack), \
        f"broker did not close the connection within 1.5 x {keepalive} s + {slack} s"
    elapsed = time.monotonic() - start
    assert elapsed >= keepalive * 0.9, f"disconnected after {elapsed:.1f} s, before keep alive"
    msg = watcher.get_message(timeout=3)
    assert msg.payload == b"keep alive expired"


def test_keepalive_pings_keep_idle_client_connected(broker, make_raw):
    """A client that sends PINGREQ within its keep alive gets PINGRESP [MQTT-3.12.4-1] and is
    not disconnected, even when idle for well past 1.5 times the keep alive."""
    client = make_raw(broker)
    assert client.connect(unique_id("pinger"), keepalive=1).return_code == 0
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        client.send(rawmqtt.encode_pingreq())
        client.expect(rawmqtt.PINGRESP, timeout=2)
        client.expect_nothing(0.5)
    client.disconnect()


@pytest.mark.parametrize("protocol", list(RAW_LEVELS), ids=lambda p: f"mqtt{p}")
def test_unacknowledged_messages_redelivered_with_dup_in_order_on_reconnect(
        broker, make_paho, make_raw, protocol):
    """[MQTT-4.4.0-1] On reconnect with clean session 0, the server re-sends unacknowledged QoS 1
    and QoS 2 PUBLISH packets with their original packet ids, with DUP set [MQTT-3.3.1-1], in the
    original order [MQTT-4.6.0-2] [MQTT-4.6.0-3]. Once acknowledged they are not sent again."""
    level = RAW_LEVELS[protocol]
    cid = unique_id("redeliver")
    sub = make_raw(broker)
    assert sub.connect(cid, clean_session=False, protocol=level).return_code == 0
    assert sub.subscribe([(WILDTOPICS[6], 2)]) == [2]

    publisher = make_paho(broker, unique_id("redpub"), protocol=PROTOCOLS[protocol]).connect()
    sent = [("TopicA/1", b"first", 1), ("TopicA/2", b"second", 2),
            ("TopicA/3", b"third", 1), ("TopicA/4", b"fourth", 2)]
    for topic, payload, qos in sent:
        publisher.publish(topic, payload, qos=qos)

    first = [sub.expect(rawmqtt.PUBLISH) for _ in sent]
    assert [(p.topic, p.payload, p.qos) for p in first] == sent
    assert not any(p.dup for p in first), "first delivery must have DUP=0 [MQTT-3.3.1-3]"
    # Neither PUBACK nor PUBREC: the messages stay unacknowledged. Disconnect cleanly.
    sub.disconnect()

    again = make_raw(broker)
    ack = again.connect(cid, clean_session=False, protocol=level)
    assert ack.return_code == 0
    if level == rawmqtt.MQTT_V311:  # MQTT 3.1 has no session present flag.
        assert ack.session_present
    redelivered = [again.expect(rawmqtt.PUBLISH) for _ in sent]
    assert [(p.topic, p.payload, p.qos) for p in redelivered] == sent
    assert all(p.dup for p in redelivered), "redelivered PUBLISH must have DUP=1"
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
    assert third.connect(cid, clean_session=False, protocol=level).return_code == 0
    third.expect_nothing(0.5, "messages acknowledged on the previous connection sent again")


@pytest.mark.parametrize("delivery", ["first", "redelivered"])
def test_acknowledgements_sent_just_before_disconnect_are_not_redelivered(
        broker, make_paho, make_raw, delivery):
    """[MQTT-4.4.0-1] Only unacknowledged PUBLISH and PUBREL packets are re-sent on reconnect.
    PUBACKs and the final PUBCOMPs written in the same TCP segment as DISCONNECT still count, on
    the first delivery and on a redelivery after reconnect alike: the next connection of the
    session receives nothing."""
    cid = unique_id("ackdisc")
    sub = make_raw(broker)
    assert sub.connect(cid, clean_session=False).return_code == 0
    assert sub.subscribe([("ackdisc/#", 2)]) == [2]
    publisher = make_paho(broker, unique_id("ackpub")).connect()
    sent = [("ackdisc/1", 1), ("ackdisc/2", 1), ("ackdisc/3", 2), ("ackdisc/4", 2)]
    for topic, qos in sent:
        publisher.publish(topic, topic.encode(), qos=qos)
    received = [sub.expect(rawmqtt.PUBLISH) for _ in sent]
    assert [(p.topic, p.qos) for p in received] == sent
    if delivery == "redelivered":
        sub.disconnect()
        sub = make_raw(broker)
        assert sub.connect(cid, clean_session=False).return_code == 0
        received = [sub.expect(rawmqtt.PUBLISH) for _ in sent]
        assert [(p.topic, p.qos, p.dup) for p in received] == [(t, q, True) for t, q in sent]

    # QoS 2: PUBREC each, and wait for both PUBRELs before completing.
    for p in received[2:]:
        sub.send(rawmqtt.encode_pubrec(p.packet_id))
    assert {sub.expect(rawmqtt.PUBREL).packet_id for _ in range(2)} == \
        {p.packet_id for p in received[2:]}
    # One write: PUBACK, PUBACK, PUBCOMP, PUBCOMP, DISCONNECT.
    sub.send(b"".join([rawmqtt.encode_puback(p.packet_id) for p in received[:2]]
                      + [rawmqtt.encode_pubcomp(p.packet_id) for p in received[2:]]
                      + [rawmqtt.encode_disconnect()]))
    assert sub.wait_closed(timeout=5), "broker did not close the connection after DISCONNECT"

    again = make_raw(broker)
    ack = again.connect(cid, clean_session=False)
    assert (ack.return_code, ack.session_present) == (0, True)
    again.expect_nothing(0.5, "acknowledged messages sent again")


def test_zero_length_client_id_accepted_with_clean_session(broker, make_raw):
    """[MQTT-3.1.3-6] [MQTT-3.1.3-7] A zero-length client id with clean session 1 is accepted
    (the server assigns an id), and the client can use the connection."""
    client = make_raw(broker)
    ack = client.connect("", clean_session=True)
    assert (ack.return_code, ack.session_present) == (0, False)
    assert client.subscribe([("zero/id", 1)]) == [1]
    # QoS 0 both ways, so that no acknowledgement can interleave with the delivery.
    client.publish("zero/id", b"hello", qos=0)
    msg = client.expect(rawmqtt.PUBLISH)
    assert (msg.topic, msg.payload) == ("zero/id", b"hello")
    client.disconnect()


def test_zero_length_client_id_rejected_without_clean_session(broker, make_raw):
    """[MQTT-3.1.3-8] A zero-length client id with clean session 0 gets CONNACK return code 0x02
    (identifier rejected) and the server closes the connection [MQTT-3.2.2-5]."""
    client = make_raw(broker)
    ack = client.connect("", clean_session=False)
    assert ack.return_code == 0x02
    assert client.wait_closed(timeout=5), "connection left open after a refused CONNECT"


def test_dollar_topics_not_matched_by_leading_wildcards(broker, make_paho):
    """[MQTT-4.7.2-1] Filters starting with a wildcard (`#`, `+/topic`) do not match topic names
    starting with `$`; a filter starting with `$test/` does."""
    wild = make_paho(broker, unique_id("dollarwild")).connect()
    assert wild.subscribe([("#", 1), ("+/topic", 1)]) == [1, 1]
    dollar = make_paho(broker, unique_id("dollarsub")).connect()
    assert dollar.subscribe("$test/#", 1) == [1]

    publisher = make_paho(broker, unique_id("dollarpub")).connect()
    publisher.publish("$test/topic", b"dollar", qos=1)
    msg = dollar.get_message()
    assert (msg.topic, msg.payload) == ("$test/topic", b"dollar")

    # A normal topic published afterwards reaches `#` (and `+/topic`): the wildcard
    # subscriptions work, and the `$` message before it never came.
    publisher.publish("normal/topic", b"normal", qos=1)
    got = [wild.get_message()] + wild.drain(0.5)
    assert {(m.topic, m.payload) for m in got} == {("normal/topic", b"normal")}


@both_protocols
def test_unsubscribe_stops_delivery_only_for_removed_filters(broker, make_paho, protocol):
    """[MQTT-3.10.4-1] [MQTT-3.10.4-2] After UNSUBSCRIBE from some filters, messages on those stop
    while the remaining subscriptions keep delivering; UNSUBACK is sent [MQTT-3.10.4-4]."""
    client = make_paho(broker, unique_id("unsub"), protocol=PROTOCOLS[protocol]).connect()
    assert client.subscribe([(TOPICS[0], 2), (TOPICS[1], 2), (TOPICS[2], 2)]) == [2, 2, 2]
    client.unsubscribe([TOPICS[1], TOPICS[2]])
    for topic in TOPICS[:3]:
        client.publish(topic, topic.encode(), qos=1)
    msg = client.get_message()
    assert (msg.topic, msg.payload) == (TOPICS[0], TOPICS[0].encode())
    client.expect_no_message(0.5)

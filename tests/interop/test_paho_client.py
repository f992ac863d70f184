"""paho-mqtt (MQTT 3.1.1) against the broker: what an application using the Eclipse Paho Python
client would notice. Payload integrity, ordering, takeover, persistent sessions and retained
message life cycle."""

from __future__ import annotations

import os

import pytest

from pahoclient import unique_id

PAYLOADS = {
    "text": "héllo wörld".encode(),
    "binary": bytes(range(256)) * 4,  # every byte value, including NUL and 0xFF
    "100KiB": os.urandom(100 * 1024),
    "empty": b"",
}


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_roundtrip_preserves_topic_payload_and_qos(broker, make_paho, kind, qos):
    """A message comes back byte for byte, on its topic, at the QoS it was published with
    (the subscription grants QoS 2) [MQTT-3.3.5-1]."""
    client = make_paho(broker, unique_id("roundtrip")).connect()
    assert client.subscribe("roundtrip/+", 2) == [2]
    client.publish(f"roundtrip/{kind}", PAYLOADS[kind], qos=qos)
    msg = client.get_message()
    assert msg.topic == f"roundtrip/{kind}"
    assert msg.qos == qos
    assert len(msg.payload) == len(PAYLOADS[kind])
    assert msg.payload == PAYLOADS[kind]
    client.expect_no_message(0.2)


def test_qos1_messages_on_one_topic_arrive_in_publish_order(broker, make_paho):
    """[MQTT-4.6.0-6] A server treats every topic as an ordered topic: 200 QoS 1 messages from one
    publisher reach the subscriber in the order they were published, none lost or repeated."""
    count = 200
    subscriber = make_paho(broker, unique_id("ordersub")).connect()
    subscriber.subscribe("order/topic", 1)
    publisher = make_paho(broker, unique_id("orderpub")).connect()
    infos = [publisher.client.publish("order/topic", str(i).encode(), qos=1) for i in range(count)]
    for info in infos:
        info.wait_for_publish(10)
        assert info.is_published()
    got = [int(m.payload) for m in subscriber.get_messages(count)]
    assert got == list(range(count))
    subscriber.expect_no_message(0.3)


def test_second_connection_with_same_client_id_takes_over_and_first_is_disconnected(
        broker, make_paho):
    """[MQTT-3.1.4-2] When a client connects with a client id already in use, the server
    disconnects the existing client; the new one works normally."""
    cid = unique_id("takeover")
    first = make_paho(broker, cid).connect()
    second = make_paho(broker, cid).connect()
    assert first.disconnected.wait(5), "first client was not disconnected by the takeover"
    assert not second.disconnected.is_set()

    second.subscribe("takeover/t", 1)
    second.publish("takeover/t", b"still works", qos=1)
    assert second.get_message().payload == b"still works"
    assert first.messages.empty()


def test_takeover_of_persistent_session_keeps_its_subscriptions(broker, make_paho):
    """[MQTT-3.1.4-2] [MQTT-3.2.2-2] A takeover with clean_session=0 resumes the session (session
    present) and its subscriptions keep delivering to the new connection, without resubscribing."""
    cid = unique_id("pstakeover")
    first = make_paho(broker, cid, clean_session=False).connect()
    first.subscribe("takeover/persistent/#", 1)
    second = make_paho(broker, cid, clean_session=False).connect()
    assert second.session_present
    assert first.disconnected.wait(5), "first client was not disconnected by the takeover"

    publisher = make_paho(broker, unique_id("pspub")).connect()
    publisher.publish("takeover/persistent/x", b"to the new owner", qos=1)
    msg = second.get_message()
    assert (msg.topic, msg.payload, msg.qos) == ("takeover/persistent/x", b"to the new owner", 1)
    assert first.messages.empty()


def test_persistent_session_queues_messages_while_offline_in_order(broker, make_paho):
    """[MQTT-3.1.2-4] [MQTT-3.1.2-5] A clean_session=0 session outlives the connection: QoS 1
    messages published while it is offline are delivered in order on reconnect, with session
    present set [MQTT-3.2.2-2]."""
    cid = unique_id("persist")
    sub = make_paho(broker, cid, clean_session=False).connect()
    assert not sub.session_present
    sub.subscribe("persist/t", 1)
    sub.disconnect()

    publisher = make_paho(broker, unique_id("persistpub")).connect()
    for i in range(5):
        publisher.publish("persist/t", f"offline {i}".encode(), qos=1)

    back = make_paho(broker, cid, clean_session=False).connect()
    assert back.session_present
    got = back.get_messages(5)
    assert [m.payload for m in got] == [f"offline {i}".encode() for i in range(5)]
    assert all(m.qos == 1 for m in got)
    back.expect_no_message(0.3)


def test_clean_session_reconnect_discards_persistent_session(broker, make_paho):
    """[MQTT-3.1.2-6] Connecting with clean_session=1 discards the previous session: no session
    present, no queued messages, and the old subscription no longer delivers."""
    cid = unique_id("discard")
    sub = make_paho(broker, cid, clean_session=False).connect()
    sub.subscribe("discard/t", 1)
    sub.disconnect()
    publisher = make_paho(broker, unique_id("discardpub")).connect()
    publisher.publish("discard/t", b"queued", qos=1)

    clean = make_paho(broker, cid, clean_session=True).connect()
    assert not clean.session_present
    publisher.publish("discard/t", b"live", qos=1)
    clean.expect_no_message(0.5)


def test_retained_message_replaced_by_newer_and_deleted_by_empty_payload(broker, make_paho):
    """[MQTT-3.3.1-5] A new retained message replaces the stored one; a retained message with an
    empty payload deletes it [MQTT-3.3.1-10] so later subscribers get nothing [MQTT-3.3.1-11]."""
    publisher = make_paho(broker, unique_id("retpub")).connect()
    publisher.publish("retained/t", b"old", qos=1, retain=True)
    publisher.publish("retained/t", b"new", qos=1, retain=True)

    first = make_paho(broker, unique_id("retsub1")).connect()
    first.subscribe("retained/t", 1)
    msg = first.get_message()
    assert (msg.payload, msg.retain) == (b"new", True)
    first.expect_no_message(0.3)

    publisher.publish("retained/t", b"", qos=1, retain=True)
    second = make_paho(broker, unique_id("retsub2")).connect()
    second.subscribe("retained/t", 1)
    second.expect_no_message(0.5)


def test_live_message_to_existing_subscriber_has_retain_flag_cleared(broker, make_paho):
    """[MQTT-3.3.1-9] A message published with retain=1 is forwarded to an already-subscribed
    client with retain=0 (the flag is only set for messages sent because of a new subscription)."""
    subscriber = make_paho(broker, unique_id("livesub")).connect()
    subscriber.subscribe("live/t", 1)
    publisher = make_paho(broker, unique_id("livepub")).connect()
    publisher.publish("live/t", b"live and retained", qos=1, retain=True)
    msg = subscriber.get_message()
    assert (msg.payload, msg.retain) == (b"live and retained", False)

    # It was still stored: a new subscriber gets it with retain=1.
    late = make_paho(broker, unique_id("latesub")).connect()
    late.subscribe("live/t", 1)
    msg = late.get_message()
    assert (msg.payload, msg.retain) == (b"live and retained", True)

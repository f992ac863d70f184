"""ACL files (mosquitto's acl_file format) as paho-mqtt and a raw client see them: SUBACK
refusals, silently dropped (3.1.1) or refused (5.0, PUBACK 0x87) publishes, retained messages
not leaked, refused wills, `%c` patterns, and SIGHUP reloading the ACL without disconnecting.

Users (password file made with `tern passwd`): alice (the ACL under test), writer (may write
everywhere, to plant messages) and observer (may read everywhere, to see what was delivered).
These tests need a Tern configuration and run against Tern only.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

import rawmqtt
from conftest import TERN_BIN
from pahoclient import MQTTv5, unique_id

RELOAD_DEADLINE = 5.0
QUIET = 0.5  # How long absence is watched for.

ALICE_ACL = [
    "user alice",
    "topic read a/#",
    "topic write b/#",
    "topic deny a/secret",
]
ACL = ALICE_ACL + [
    "user writer",
    "topic readwrite #",
    "user observer",
    "topic read #",
    "pattern readwrite clients/%c/#",
]
USERS = {"alice": "alice-pw", "writer": "writer-pw", "observer": "observer-pw"}


def q(value) -> str:
    return json.dumps(str(value))


@pytest.fixture
def acl_broker(start_broker, tmp_path, broker_kind):
    """Factory: start Tern with the password file and `lines` as the ACL (default ACL)."""
    if broker_kind != "tern":
        pytest.skip("a whole Tern configuration has no mosquitto mapping; Tern only")
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate(USERS.items()):
        flags = ["-c"] if i == 0 else []
        subprocess.run([str(TERN_BIN), "passwd", *flags, "-b", str(passwd), user, password],
                       check=True, capture_output=True, timeout=30)

    def start(lines=ACL):
        acl = tmp_path / "acl"
        acl.write_text("\n".join(lines) + "\n")
        broker = start_broker(config="\n".join([
            "[[listeners]]", 'protocol = "mqtt"', 'address = "127.0.0.1:0"', "",
            "[auth]", f"password_file = {q(passwd)}", f"acl_file = {q(acl)}", "",
        ]))
        broker.acl_path = acl
        return broker

    return start


@pytest.fixture
def user(make_paho, make_v5):
    """``user(broker, name, v5=False, client_id=None, **kwargs)``: a connected paho client."""

    def connect(broker, name, *, v5=False, client_id=None, **kwargs):
        make = make_v5 if v5 else make_paho
        return make(broker, client_id or unique_id(name), username=name, password=USERS[name],
                    **kwargs).connect()

    return connect


def raw_login(broker, name, client_id=None, v5=False, **kwargs):
    raw = rawmqtt.RawClient(broker.host, broker.port)
    extra = {"protocol": rawmqtt.MQTT_V5} if v5 else {}
    connack = raw.connect(client_id or unique_id(name), username=name,
                          password=USERS[name].encode(), **extra, **kwargs)
    return raw, connack


# -- SUBSCRIBE -------------------------------------------------------------------------------


def test_subscribe_refused_and_granted_3_1_1(acl_broker):
    """SUBACK per filter: 0x80 for filters alice may not read (c/#, b/# which she may only
    write, a/secret which is denied, # ), the granted QoS for those she may (a/public, a/x/+)."""
    broker = acl_broker()
    raw, connack = raw_login(broker, "alice")
    assert connack.return_code == 0
    with raw:
        granted = raw.subscribe([("c/#", 1), ("a/public", 1), ("b/#", 0), ("a/x/+", 1),
                                 ("a/secret", 0), ("#", 0)])
    assert granted == [0x80, 1, 0x80, 1, 0x80, 0x80]


def test_subscribe_refused_and_granted_5_0(acl_broker, user):
    """5.0: SUBACK 0x87 (Not authorized) for a refused filter, the QoS for a granted one."""
    broker = acl_broker()
    alice = user(broker, "alice", v5=True)
    assert alice.subscribe([("c/#", 1), ("a/public", 1)]) == [0x87, 1]
    assert alice.subscribe("a/secret", 0) == [0x87]


def test_refused_subscription_receives_nothing(acl_broker, user):
    broker = acl_broker()
    alice = user(broker, "alice")
    assert alice.subscribe("c/#", 1) == [0x80]
    writer = user(broker, "writer")
    writer.publish("c/x", b"not for alice", qos=1)
    alice.expect_no_message(QUIET)


# -- PUBLISH ---------------------------------------------------------------------------------


def test_publish_to_unwritable_topic_is_dropped_3_1_1(acl_broker, user):
    """3.1.1 has no way to refuse a PUBLISH: the PUBACK still comes, the message is dropped
    (an authorized subscriber never sees it) and the client stays connected."""
    broker = acl_broker()
    observer = user(broker, "observer")
    assert observer.subscribe("#", 1) == [1]
    alice = user(broker, "alice")
    alice.publish("c/x", b"dropped", qos=1)       # completes: PUBACK received
    alice.publish("a/public", b"dropped too", qos=1)  # read-only for alice
    alice.publish("b/ok", b"delivered", qos=1)
    msg = observer.get_message()
    assert (msg.topic, msg.payload) == ("b/ok", b"delivered")
    observer.expect_no_message(QUIET)
    assert not alice.disconnected.is_set()


def test_publish_to_unwritable_topic_is_refused_5_0(acl_broker, user):
    """5.0: PUBACK reason 0x87 (Not authorized), nothing delivered; a writable topic: 0x00."""
    broker = acl_broker()
    observer = user(broker, "observer")
    assert observer.subscribe("#", 1) == [1]
    alice = user(broker, "alice", v5=True)
    assert alice.publish("c/x", b"refused", qos=1) == 0x87
    assert alice.publish("b/ok", b"delivered", qos=1) == 0x00
    msg = observer.get_message()
    assert (msg.topic, msg.payload) == ("b/ok", b"delivered")
    observer.expect_no_message(QUIET)
    assert not alice.disconnected.is_set()


# -- Retained messages -----------------------------------------------------------------------


def test_retained_message_on_denied_topic_is_not_leaked(acl_broker, user):
    """writer retains a/public and a/secret; alice may read a/# except a/secret. Tern decides
    read rights once per subscription, never per delivery, so a filter a `deny` line
    intersects is refused whole: a/# and a/secret get 0x80 (mosquitto would grant a/# and
    filter each message). a/public is granted with its retained message, and nothing from
    a/secret ever reaches alice, retained or live."""
    broker = acl_broker()
    writer = user(broker, "writer")
    writer.publish("a/public", b"retained public", qos=1, retain=True)
    writer.publish("a/secret", b"retained secret", qos=1, retain=True)

    alice = user(broker, "alice")
    assert alice.subscribe("a/secret", 1) == [0x80]
    assert alice.subscribe("a/#", 1) == [0x80]
    assert alice.subscribe("a/public", 1) == [1]
    writer.publish("a/secret", b"live secret", qos=1)
    writer.publish("a/public", b"live public", qos=1)
    got = [(m.topic, m.payload) for m in alice.drain(1.0)]
    assert not [t for t, _ in got if t == "a/secret"], f"a/secret leaked to alice: {got}"
    assert got == [("a/public", b"retained public"), ("a/public", b"live public")], got


def test_retained_messages_follow_read_rights(acl_broker, user):
    """Retained messages the subscriber may not read are not sent: observer (read #) gets both,
    alice on a/+/… filters she may read gets only what is hers."""
    broker = acl_broker()
    writer = user(broker, "writer")
    writer.publish("a/p/x", b"for alice", qos=1, retain=True)
    writer.publish("c/p/x", b"not for alice", qos=1, retain=True)
    alice = user(broker, "alice")
    assert alice.subscribe("a/p/#", 1) == [1]
    assert alice.subscribe("c/p/#", 1) == [0x80]
    got = [(m.topic, m.payload, bool(m.retain)) for m in alice.drain(QUIET)]
    assert got == [("a/p/x", b"for alice", True)], got


# -- Wills -----------------------------------------------------------------------------------


@pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5.0"])
def test_will_on_unwritable_topic_refuses_the_connection(acl_broker, v5):
    """A will topic the user may not write: CONNACK 0x05 (3.1.1) / 0x87 (5.0); a writable
    will topic is accepted."""
    broker = acl_broker()
    raw, connack = raw_login(broker, "alice", v5=v5, will=rawmqtt.Will("c/will", b"bye"))
    raw.close()
    assert connack.return_code == (0x87 if v5 else 0x05), connack
    raw, connack = raw_login(broker, "alice", v5=v5, will=rawmqtt.Will("b/will", b"bye"))
    raw.close()
    assert connack.return_code == 0x00, connack


def test_paho_sees_will_refusal(acl_broker, make_v5):
    broker = acl_broker()
    client = make_v5(broker, unique_id("alice"), username="alice", password=USERS["alice"],
                     will=("a/will", b"bye", 0, False))
    client.connect_async_wait()
    assert client.connack_rc.value == 0x87 and str(client.connack_rc) == "Not authorized"


# -- Patterns --------------------------------------------------------------------------------


def test_client_id_pattern(acl_broker, user):
    """`pattern readwrite clients/%c/#`: client id X may publish and subscribe under
    clients/X/ but not under clients/Y/."""
    broker = acl_broker()
    observer = user(broker, "observer")
    assert observer.subscribe("clients/#", 1) == [1]
    me, other = unique_id("cx"), unique_id("cy")
    alice = user(broker, "alice", client_id=me)
    assert alice.subscribe(f"clients/{me}/#", 1) == [1]
    assert alice.subscribe(f"clients/{other}/#", 1) == [0x80]
    assert alice.subscribe("clients/+/in", 1) == [0x80]
    alice.publish(f"clients/{me}/out", b"mine", qos=1)
    alice.publish(f"clients/{other}/out", b"not mine", qos=1)
    assert alice.get_message().topic == f"clients/{me}/out"
    msg = observer.get_message()
    assert (msg.topic, msg.payload) == (f"clients/{me}/out", b"mine")
    observer.expect_no_message(QUIET)
    alice.expect_no_message(0.1)


# -- Reload ----------------------------------------------------------------------------------


def test_acl_change_and_sighup_apply_to_new_subscribes(acl_broker, user):
    """Rewrite the ACL to give alice `topic read c/#`, SIGHUP: her next SUBSCRIBE to c/# on the
    same connection is granted and messages arrive; she was never disconnected."""
    broker = acl_broker()
    alice = user(broker, "alice")
    assert alice.subscribe("c/#", 1) == [0x80]
    broker.acl_path.write_text("\n".join(ALICE_ACL + ["topic read c/#"] + ACL[len(ALICE_ACL):]) + "\n")
    broker.reload()
    deadline = time.monotonic() + RELOAD_DEADLINE
    while (granted := alice.subscribe("c/#", 1)) != [1]:
        assert time.monotonic() < deadline, f"SUBACK {granted} {RELOAD_DEADLINE} s after SIGHUP"
        time.sleep(0.1)
    assert not alice.disconnected.is_set(), f"alice was disconnected: {alice.disconnect_rc}"
    user(broker, "writer").publish("c/x", b"now readable", qos=1)
    msg = alice.get_message()
    assert (msg.topic, msg.payload) == ("c/x", b"now readable")

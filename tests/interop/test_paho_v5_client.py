"""MQTT 5.0 clients (paho-mqtt MQTTv5, mosquitto_pub / mosquitto_sub -V mqttv5) against the
broker: the server DISCONNECT reason codes an application sees through paho's on_disconnect
(session taken over, keep alive timeout, server shutting down), and 5.0 properties through the
mosquitto command-line clients."""

from __future__ import annotations

import select
import time

from pahoclient import unique_id
from test_mosquitto_clients import pub, run  # noqa: F401  (the `run` fixture)

SESSION_TAKEN_OVER = 0x8E
KEEP_ALIVE_TIMEOUT = 0x8D
SERVER_SHUTTING_DOWN = 0x8B


def test_takeover_gives_old_client_disconnect_0x8e(broker, make_v5):
    """[MQTT-3.1.4-3] When a second client connects with the same client id, the server sends
    the first a DISCONNECT with reason 0x8E (Session taken over) before closing it; paho
    reports it through on_disconnect as coming from the server. The new client works.

    mosquitto 2.0.11 closes the old connection without DISCONNECT (seen with a raw client too);
    for it only the close is checked."""
    cid = unique_id("takeover5")
    first = make_v5(broker, cid).connect()
    second = make_v5(broker, cid).connect()
    rc = first.wait_disconnected(5)
    if broker.is_tern or first.disconnect_from_server:
        assert first.disconnect_from_server, f"first client closed without a DISCONNECT ({rc})"
        assert rc.value == SESSION_TAKEN_OVER, rc
    assert not second.disconnected.is_set()
    second.subscribe("takeover5/t", 1)
    second.publish("takeover5/t", b"still works", qos=1)
    assert second.get_message().payload == b"still works"


def test_keepalive_timeout_gives_client_disconnect_0x8d(broker, make_v5):
    """[MQTT-3.1.2-22] A client silent for 1.5 x its keep alive is disconnected; a 5.0 server
    may say why with DISCONNECT 0x8D (Keep Alive timeout), which Tern does and paho reports.

    paho pings on its own, so the test stops paho's network thread after CONNACK (nothing is
    sent any more), waits for the socket to become readable, and lets paho read what came.
    mosquitto 2.0.11 closes the connection without DISCONNECT: for it only the close is checked,
    with the 4 s of slack of the 3.1.1 suite."""
    keepalive = 1
    client = make_v5(broker, unique_id("ka5"), keepalive=keepalive).connect()
    client.client.loop_stop()
    start = time.monotonic()
    slack = 1.5 if broker.is_tern else 4.0
    deadline = start + 1.5 * keepalive + slack
    sock = client.client.socket()
    # paho may have sent a PINGREQ just before its thread stopped: its PINGRESP is read too.
    while not client.disconnected.is_set():
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"still connected after 1.5 x {keepalive} s + {slack} s"
        readable, _, _ = select.select([sock], [], [], remaining)
        if readable:
            client.client.loop_read()
    elapsed = time.monotonic() - start
    assert elapsed >= keepalive, f"disconnected after {elapsed:.2f} s, before the keep alive"
    rc = client.disconnect_rc
    if broker.is_tern or client.disconnect_from_server:
        assert client.disconnect_from_server, f"closed without a DISCONNECT ({rc})"
        assert rc.value == KEEP_ALIVE_TIMEOUT, rc


def test_server_shutdown_gives_clients_disconnect_0x8b(broker, make_v5, make_paho):
    """When the server stops (SIGTERM), it tells each 5.0 client with DISCONNECT 0x8B (Server
    shutting down) [MQTT-4.13.2-...]; 3.1.1 clients just see the connection close. The broker
    exits with status 0.

    mosquitto 2.0.11 closes the connections without DISCONNECT; for it only the close and the
    exit status are checked."""
    v5_clients = [make_v5(broker, unique_id(f"shut{i}")).connect() for i in range(2)]
    v311 = make_paho(broker, unique_id("shut311")).connect()
    assert broker.stop() == 0
    for client in v5_clients:
        rc = client.wait_disconnected(5)
        if broker.is_tern or client.disconnect_from_server:
            assert client.disconnect_from_server, f"closed without a DISCONNECT ({rc})"
            assert rc.value == SERVER_SHUTTING_DOWN, rc
    v311.wait_disconnected(5)


def test_mosquitto_clients_v5_user_properties_round_trip(run):
    """mosquitto_pub -V mqttv5 with `-D PUBLISH user-property` (twice, and a content type)
    reaches mosquitto_sub -V mqttv5, which prints the user properties (`%P`, key:value, in
    order) and the content type (`%C`)."""
    sub = run("mosquitto_sub", "-V", "mqttv5", "-d", "-C", "1", "-W", "10", "-t", "cli5/props",
              "-F", "%t|%P|%C|%p")
    sub.wait_subscribed()
    pub(run, "-V", "mqttv5", "-t", "cli5/props", "-m", "with properties", "-q", "1",
        "-D", "PUBLISH", "user-property", "colour", "blue",
        "-D", "PUBLISH", "user-property", "size", "large",
        "-D", "PUBLISH", "content-type", "text/plain")
    line = sub.wait_line(lambda l: l.startswith("cli5/props|"), what="the message")
    assert line == "cli5/props|colour:blue size:large|text/plain|with properties", line
    assert sub.wait_exit() == 0


def test_mosquitto_clients_v5_message_expiry_and_correlation_data(run):
    """mosquitto_pub -V mqttv5 with a message expiry interval, response topic and correlation
    data: mosquitto_sub -V mqttv5 prints them (`%E`, `%R`, `%D`); the interval is forwarded
    at most as sent [MQTT-3.3.2-6]."""
    sub = run("mosquitto_sub", "-V", "mqttv5", "-d", "-C", "1", "-W", "10", "-t", "cli5/req",
              "-F", "%t|%E|%R|%D|%p")
    sub.wait_subscribed()
    pub(run, "-V", "mqttv5", "-t", "cli5/req", "-m", "request", "-q", "1",
        "-D", "PUBLISH", "message-expiry-interval", "60",
        "-D", "PUBLISH", "response-topic", "cli5/resp",
        "-D", "PUBLISH", "correlation-data", "abc123")
    line = sub.wait_line(lambda l: l.startswith("cli5/req|"), what="the message")
    topic, expiry, response_topic, correlation, payload = line.split("|")
    assert (topic, response_topic, correlation, payload) == (
        "cli5/req", "cli5/resp", "abc123", "request"), line
    assert 58 <= int(expiry) <= 60, line
    assert sub.wait_exit() == 0

"""MQTT over WebSocket (`ws`) and secure WebSocket (`wss`) listeners with real clients:
paho-mqtt's websockets transport and MQTT.js (Node, npm package `mqtt` v5, tests/interop/js).

The MQTT.js test installs its dependencies with npm (`npm ci`, from package-lock.json) when
tests/interop/js/node_modules is missing. These tests need a Tern configuration and run against
Tern only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pahoclient import MQTTv5, unique_id

JS_DIR = Path(__file__).resolve().parent / "js"
NPM_TIMEOUT = 180.0
NODE_TIMEOUT = 20.0
# A round trip on loopback takes milliseconds; these bound what a failure costs.
CONNECT_TIMEOUT = 5.0
MQTTJS_DEADLINE_MS = 5000


def q(value) -> str:
    return json.dumps(str(value))


def ws_config(pki) -> str:
    """A plain mqtt listener, a ws listener on /mqtt and a wss listener on /mqtt."""
    return "\n".join([
        "[[listeners]]", 'protocol = "mqtt"', 'address = "127.0.0.1:0"', "",
        "[[listeners]]", 'protocol = "ws"', 'address = "127.0.0.1:0"', 'path = "/mqtt"', "",
        "[[listeners]]", 'protocol = "wss"', 'address = "127.0.0.1:0"', 'path = "/mqtt"',
        "[listeners.tls]", f"cert = {q(pki.server_cert)}", f"key = {q(pki.server_key)}", "",
    ])


@pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5.0"])
def test_paho_websocket_round_trip(start_broker, make_paho, make_v5, pki, v5):
    """paho with transport="websockets" and path /mqtt subscribes and receives its own message;
    a plain TCP client sees what the WebSocket client published, and the other way round."""
    broker = start_broker(config=ws_config(pki))
    make = make_v5 if v5 else make_paho
    ws = make(broker.endpoint("ws"), unique_id("ws"), websocket_path="/mqtt").connect(CONNECT_TIMEOUT)
    tcp = make_paho(broker.endpoint("mqtt"), unique_id("tcp")).connect()
    assert tcp.subscribe("ws/#", 1) == [1]
    granted = ws.subscribe("ws/#", 1)
    assert granted == [1], granted
    ws.publish("ws/from-ws", b"over websocket", qos=1)
    for client in (ws, tcp):
        msg = client.get_message()
        assert (msg.topic, msg.payload, msg.qos) == ("ws/from-ws", b"over websocket", 1)
    tcp.publish("ws/from-tcp", b"to websocket", qos=1)
    msg = ws.get_message()
    assert (msg.topic, msg.payload) == ("ws/from-tcp", b"to websocket")
    assert tcp.get_message().topic == "ws/from-tcp"


def test_paho_websocket_wrong_path_fails(start_broker, make_paho, pki):
    """The WebSocket upgrade on another path than the configured one is refused: paho's
    connect() raises (handshake error) or no CONNACK arrives."""
    broker = start_broker(config=ws_config(pki))
    client = make_paho(broker.endpoint("ws"), unique_id("ws-bad"), websocket_path="/not-mqtt")
    with pytest.raises(Exception) as info:
        client.connect(timeout=3)
    assert client.connack_rc is None, f"got a CONNACK on a wrong path: {client.connack_rc}"
    assert broker.alive(), repr(info.value)


def test_paho_secure_websocket_round_trip(start_broker, make_paho, pki):
    """paho over TLS + websockets (wss, path /mqtt), verifying the server against the test CA."""
    broker = start_broker(config=ws_config(pki))
    client = make_paho(broker.endpoint("wss"), unique_id("wss"), websocket_path="/mqtt",
                       tls={"ca_certs": pki.ca}).connect(CONNECT_TIMEOUT)
    assert client.subscribe("wss/t", 1) == [1]
    client.publish("wss/t", b"over wss", qos=1)
    msg = client.get_message()
    assert (msg.topic, msg.payload, msg.qos) == ("wss/t", b"over wss", 1)


# -- MQTT.js ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mqttjs():
    """tests/interop/js with its node_modules installed; the command to run the script."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed for the MQTT.js tests")
    if not (JS_DIR / "node_modules" / "mqtt").is_dir():
        lock = (JS_DIR / "package-lock.json").is_file()
        argv = [npm, "ci" if lock else "install", "--no-audit", "--no-fund"]
        result = subprocess.run(argv, cwd=JS_DIR, capture_output=True, text=True, timeout=NPM_TIMEOUT)
        if result.returncode != 0:
            pytest.fail(f"{' '.join(argv)} failed in {JS_DIR} ({result.returncode}):\n"
                        f"{result.stdout}\n{result.stderr}")
    return [node, str(JS_DIR / "roundtrip.js")]


def node_env() -> dict:
    return {**os.environ, "MQTTJS_DEADLINE_MS": str(MQTTJS_DEADLINE_MS)}


@pytest.mark.parametrize("version", [4, 5], ids=["3.1.1", "5.0"])
def test_mqttjs_websocket_round_trip(start_broker, make_paho, pki, mqttjs, version):
    """MQTT.js connects to ws://127.0.0.1:PORT/mqtt, subscribes, publishes, prints what arrives
    and exits 0; a TCP observer sees the message too."""
    broker = start_broker(config=ws_config(pki))
    observer = make_paho(broker.endpoint("mqtt"), unique_id("observer")).connect()
    topic = f"mqttjs/v{version}"
    assert observer.subscribe(topic, 1) == [1]
    url = f"ws://127.0.0.1:{broker.port_of('ws')}/mqtt"
    result = subprocess.run([*mqttjs, url, topic, str(version)], capture_output=True, text=True,
                            timeout=NODE_TIMEOUT, env=node_env())
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, output
    assert "CONNACK 0" in result.stdout, output
    assert "SUBACK 1" in result.stdout, output
    assert f"RECEIVED {topic} qos=1 hello from MQTT.js over ws" in result.stdout, output
    msg = observer.get_message()
    assert (msg.topic, msg.payload) == (topic, b"hello from MQTT.js over ws")


def test_mqttjs_wrong_path_fails(start_broker, pki, mqttjs):
    broker = start_broker(config=ws_config(pki))
    url = f"ws://127.0.0.1:{broker.port_of('ws')}/wrong"
    result = subprocess.run([*mqttjs, url], capture_output=True, text=True, timeout=NODE_TIMEOUT,
                            env=node_env())
    assert result.returncode != 0, result.stdout + result.stderr
    assert "RECEIVED" not in result.stdout


def test_mqttjs_secure_websocket_round_trip(start_broker, pki, mqttjs):
    """MQTT.js over wss://localhost:PORT/mqtt, trusting the test CA (NODE_EXTRA_CA_CERTS)."""
    broker = start_broker(config=ws_config(pki))
    url = f"wss://localhost:{broker.port_of('wss')}/mqtt"
    result = subprocess.run([*mqttjs, url, "mqttjs/wss"], capture_output=True, text=True,
                            timeout=NODE_TIMEOUT, env={**node_env(), "NODE_EXTRA_CA_CERTS": pki.ca})
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, output
    assert "RECEIVED mqttjs/wss qos=1 hello from MQTT.js over wss" in result.stdout, output

"""Crash test: nothing acknowledged is lost when the broker is killed (issue: durable storage).

Persistent subscribers (MQTT 3.1.1 clean session 0, and 5.0 with a session expiry) and
publishers sending numbered QoS 1 and QoS 2 messages; the broker (embedded store, durability
``sync``) is killed with SIGKILL at a random moment of each round and started again on the
same data directory. At the end every message a publisher got its acknowledgement for
(PUBACK, PUBCOMP) has reached every persistent subscriber: QoS 2 exactly once, QoS 1 at least
once, in the order each publisher sent them; the retained message and the subscriptions are
intact. One subscriber is online through the kills (its in-flight messages are cut off
mid-flow), the other is offline until the end (its queue is only in the store).

TERN_CRASH_ROUNDS sets the number of kills (default 12); TERN_CRASH_SEED the random seed.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conftest import BROKER_KIND, HOST, TERN_BIN

pytestmark = pytest.mark.skipif(BROKER_KIND != "tern", reason="kills and restarts Tern on its data directory")

ROUNDS = int(os.environ.get("TERN_CRASH_ROUNDS", "12"))
SEED = int(os.environ.get("TERN_CRASH_SEED", str(random.randrange(1 << 30))))
TOPIC = "crash/{name}"
MAX_PER_ROUND = 3000  # each publisher's load loop is bounded


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Broker:
    """Tern on a fixed port and data directory, killed and restarted by the test."""

    def __init__(self, data_dir: Path, port: int, log: Path):
        self.data_dir, self.port, self.log = data_dir, port, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        argv = [str(TERN_BIN), "serve", "--listen", f"{HOST}:{self.port}", "--data-dir", str(self.data_dir)]
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env={**os.environ, "NO_COLOR": "1"})
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"broker exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("broker did not start listening in 15 s")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Subscriber:
    """A persistent-session subscriber that records every payload it is given."""

    def __init__(self, port: int, client_id: str, v5: bool):
        self.v5 = v5
        protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        kwargs = {} if v5 else {"clean_session": False}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, **kwargs)
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=0.3)
        self.port = port
        self.received: list[str] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p=None: self.connected.set()
        self.client.on_disconnect = lambda c, u, f, rc, p=None: self.connected.clear()

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.received.append(message.payload.decode())

    def connect(self) -> None:
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            self.client.connect(HOST, self.port, keepalive=30, clean_start=False, properties=props)
        else:
            self.client.connect(HOST, self.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(10), "subscriber did not connect"

    def subscribe(self) -> None:
        result, mid = self.client.subscribe(TOPIC.format(name="#"), qos=2)
        assert result == mqtt.MQTT_ERR_SUCCESS
        time.sleep(0.3)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def count(self) -> int:
        with self.lock:
            return len(self.received)


class Publisher:
    """Publishes numbered messages at one QoS until stopped; remembers which were acknowledged."""

    def __init__(self, port: int, name: str, qos: int, round_no: int):
        self.name, self.qos, self.round_no = name, qos, round_no
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-r{round_no}")
        self.client.max_inflight_messages_set(64)
        self.client.max_queued_messages_set(64)
        self.acked: list[str] = []
        self.by_mid: dict[int, str] = {}
        self.early: set[int] = set()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.client.on_publish = self._on_publish
        self.client.connect(HOST, port, keepalive=30)
        self.client.loop_start()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _on_publish(self, client, userdata, mid, reason_code=None, properties=None):
        # paho calls this from its network thread, possibly before publish() has returned the
        # mid to the sending thread: an early acknowledgement is matched up there.
        with self.lock:
            payload = self.by_mid.pop(mid, None)
            if payload is None:
                self.early.add(mid)
            else:
                self.acked.append(payload)

    def _run(self) -> None:
        for n in range(MAX_PER_ROUND):
            if self.stopped.is_set():
                return
            payload = f"{self.name}:{self.round_no}:{n}"
            # Never hold self.lock across publish(): paho's thread takes it in on_publish.
            info = self.client.publish(TOPIC.format(name=self.name), payload, qos=self.qos)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return
            with self.lock:
                if info.mid in self.early:
                    self.early.discard(info.mid)
                    self.acked.append(payload)
                else:
                    self.by_mid[info.mid] = payload
            while not self.stopped.is_set() and len(self.by_mid) >= 64:
                time.sleep(0.001)

    def stop(self) -> list[str]:
        self.stopped.set()
        self.thread.join(5)
        self.client.loop_stop()
        with self.lock:
            return list(self.acked)


def order_key(payload: str) -> tuple[int, int]:
    _, round_no, n = payload.split(":")
    return int(round_no), int(n)


def test_acknowledged_messages_survive_sigkill(tmp_path):
    rng = random.Random(SEED)
    port = free_port()
    broker = Broker(tmp_path / "data", port, tmp_path / "broker.log")
    broker.start()
    online = Subscriber(port, "crash-online-v5", v5=True)
    offline = Subscriber(port, "crash-offline-311", v5=False)
    try:
        for sub in (online, offline):
            sub.connect()
            sub.subscribe()
        offline.stop()
        retainer = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="crash-retainer")
        retainer.connect(HOST, port)
        retainer.loop_start()
        retainer.publish("crash-retained/state", "kept", qos=1, retain=True).wait_for_publish(5)
        retainer.disconnect()
        retainer.loop_stop()

        acked: dict[str, list[str]] = {"q1": [], "q2": []}
        for round_no in range(ROUNDS):
            publishers = [Publisher(port, "q1", 1, round_no), Publisher(port, "q2", 2, round_no)]
            time.sleep(rng.uniform(0.1, 1.2))
            broker.kill()
            for publisher in publishers:
                acked[publisher.name].extend(publisher.stop())
            broker.start()

        total_acked = sum(len(v) for v in acked.values())
        assert total_acked > ROUNDS * 10, f"too few messages acknowledged to mean anything ({total_acked}), seed {SEED}"
        offline.connect()
        # Drain: until both subscribers have been quiet for 2 s (bounded at 120 s).
        deadline = time.monotonic() + 120
        last = (-1, -1)
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            now = (online.count(), offline.count())
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since > 2.0:
                break
            time.sleep(0.1)

        print(
            f"crash test: {ROUNDS} kills, seed {SEED}, acknowledged q1={len(acked['q1'])} q2={len(acked['q2'])}, "
            f"received online={online.count()} offline={offline.count()}"
        )
        for sub in (online, offline):
            with sub.lock:
                received = list(sub.received)
            for name, qos in (("q1", 1), ("q2", 2)):
                mine = [p for p in received if p.startswith(name + ":")]
                seen = set(mine)
                missing = [p for p in acked[name] if p not in seen]
                assert not missing, (
                    f"{sub.client._client_id!r}: {len(missing)} of {len(acked[name])} acknowledged {name} messages "
                    f"lost, first {missing[:5]}, seed {SEED}"
                )
                if qos == 2:
                    duplicates = len(mine) - len(seen)
                    assert duplicates == 0, f"{sub.client._client_id!r}: {duplicates} QoS 2 duplicates, seed {SEED}"
                first_seen: list[str] = []
                known: set[str] = set()
                for p in mine:
                    if p not in known:
                        known.add(p)
                        first_seen.append(p)
                keys = [order_key(p) for p in first_seen]
                assert keys == sorted(keys), f"{sub.client._client_id!r}: {name} out of order, seed {SEED}"

        # Retained message and subscriptions intact.
        got = threading.Event()
        checker = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="crash-checker")
        checker.on_message = lambda c, u, m: got.set() if m.retain and m.payload == b"kept" else None
        checker.connect(HOST, port)
        checker.loop_start()
        checker.subscribe("crash-retained/#", qos=1)
        assert got.wait(5), "the retained message did not survive"
        checker.disconnect()
        checker.loop_stop()
    finally:
        for sub in (online, offline):
            try:
                sub.client.loop_stop()
            except Exception:
                pass
        broker.stop()

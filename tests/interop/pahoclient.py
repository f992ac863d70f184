"""A thin synchronous wrapper around paho-mqtt for tests.

paho is asynchronous: it reports CONNACK, SUBACK, messages and disconnects through callbacks on
its network thread. This wrapper turns each of those into a threading.Event or a queue.Queue, so
that a test waits for a real signal with a timeout and never sleeps to synchronise.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading

import paho.mqtt.client as mqtt

TIMEOUT = 10.0

PROTOCOLS = {"3.1.1": mqtt.MQTTv311, "3.1": mqtt.MQTTv31}

_ids = itertools.count(1)


def unique_id(prefix: str) -> str:
    """A client id unique within this run, at most 23 characters (the 3.1 limit)."""
    return f"{prefix[:12]}-{os.getpid() % 10000}-{next(_ids)}"[:23]


class PahoClient:
    """One paho-mqtt client with its loop running on paho's own thread."""

    def __init__(self, broker, client_id: str = "", *, clean_session: bool = True,
                 protocol=mqtt.MQTTv311, keepalive: int = 60, will: tuple | None = None):
        self.broker = broker
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack_flags = None
        self.connack_rc = None
        self.disconnect_rc = None
        self._subacks: dict[int, list] = {}
        self._suback_cv = threading.Condition()
        self._unsubacks: set[int] = set()
        self.keepalive = keepalive
        # reconnect_on_failure=False: a client that is disconnected (e.g. taken over) must stay
        # disconnected, or two clients with the same id would take the session back and forth.
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=clean_session, protocol=protocol,
                                  reconnect_on_failure=False)
        if will is not None:
            topic, payload, qos, retain = will
            self.client.will_set(topic, payload, qos=qos, retain=retain)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe

    # -- callbacks (paho's thread) -----------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack_flags = flags
        self.connack_rc = reason_code
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnect_rc = reason_code
        self.disconnected.set()

    def _on_message(self, client, userdata, message):
        self.messages.put(message)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self._suback_cv:
            self._subacks[mid] = [rc.value for rc in reason_codes]
            self._suback_cv.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        with self._suback_cv:
            self._unsubacks.add(mid)
            self._suback_cv.notify_all()

    # -- operations (test thread) ------------------------------------------------------------

    def connect(self, timeout: float = TIMEOUT) -> "PahoClient":
        """Connect and wait for a successful CONNACK."""
        self.client.connect(self.broker.host, self.broker.port, keepalive=self.keepalive)
        self.client.loop_start()
        assert self.connected.wait(timeout), "no CONNACK within the timeout"
        assert not self.connack_rc.is_failure, f"connection refused: {self.connack_rc}"
        return self

    @property
    def session_present(self) -> bool:
        return bool(self.connack_flags.session_present)

    def subscribe(self, topic_filter, qos: int = 0, timeout: float = TIMEOUT) -> list[int]:
        """Subscribe (one filter, or a list of (filter, qos)) and return the granted QoS list."""
        if isinstance(topic_filter, list):
            rc, mid = self.client.subscribe(topic_filter)
        else:
            rc, mid = self.client.subscribe(topic_filter, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe failed locally: {rc}"
        with self._suback_cv:
            assert self._suback_cv.wait_for(lambda: mid in self._subacks, timeout), \
                f"no SUBACK for {topic_filter!r} within the timeout"
            return self._subacks.pop(mid)

    def unsubscribe(self, topic_filter, timeout: float = TIMEOUT) -> None:
        rc, mid = self.client.unsubscribe(topic_filter)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"unsubscribe failed locally: {rc}"
        with self._suback_cv:
            assert self._suback_cv.wait_for(lambda: mid in self._unsubacks, timeout), \
                f"no UNSUBACK for {topic_filter!r} within the timeout"

    def publish(self, topic: str, payload=b"", qos: int = 0, retain: bool = False,
                timeout: float = TIMEOUT) -> None:
        """Publish and wait until the QoS flow completes (sent, PUBACK, or PUBCOMP)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout)
        assert info.is_published(), f"publish to {topic!r} at QoS {qos} not completed in time"

    def get_message(self, timeout: float = TIMEOUT) -> mqtt.MQTTMessage:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout} s") from None

    def get_messages(self, count: int, timeout: float = TIMEOUT) -> list[mqtt.MQTTMessage]:
        return [self.get_message(timeout) for _ in range(count)]

    def drain(self, within: float) -> list[mqtt.MQTTMessage]:
        """Every message that arrives in the next `within` seconds (proving absence)."""
        out = []
        try:
            while True:
                out.append(self.messages.get(timeout=within))
        except queue.Empty:
            return out

    def expect_no_message(self, within: float = 0.5) -> None:
        extra = self.drain(within)
        assert not extra, f"unexpected messages: {[(m.topic, m.payload) for m in extra]}"

    def disconnect(self, timeout: float = TIMEOUT) -> None:
        """Send DISCONNECT and wait for paho to report the connection closed."""
        self.client.disconnect()
        assert self.disconnected.wait(timeout), "disconnect did not complete in time"
        self.client.loop_stop()

    def stop(self) -> None:
        """Stop the network thread, whatever state the connection is in (test cleanup)."""
        try:
            if self.connected.is_set() and not self.disconnected.is_set():
                self.client.disconnect()
                self.disconnected.wait(2)
        finally:
            self.client.loop_stop()

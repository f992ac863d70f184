"""A thin synchronous wrapper around paho-mqtt for tests.

paho is asynchronous: it reports CONNACK, SUBACK, messages and disconnects through callbacks on
its network thread. This wrapper turns each of those into a threading.Event or a queue.Queue, so
that a test waits for a real signal with a timeout and never sleeps to synchronise.

With ``protocol=MQTTv5`` the wrapper also keeps what MQTT 5.0 adds: CONNACK properties, the
reason codes of SUBACK, UNSUBACK, PUBACK/PUBREC and a server DISCONNECT, and the properties of
every received message. Received 5.0 messages are `V5Message` objects (see there): paho does not
resolve topic aliases the server sets, so the wrapper does, and keeps the topic as sent too.
"""

from __future__ import annotations

import itertools
import os
import queue
import socket
import threading
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

TIMEOUT = 10.0

PROTOCOLS = {"3.1.1": mqtt.MQTTv311, "3.1": mqtt.MQTTv31}
MQTTv5 = mqtt.MQTTv5

_ids = itertools.count(1)


def unique_id(prefix: str) -> str:
    """A client id unique within this run, at most 23 characters (the 3.1 limit)."""
    return f"{prefix[:12]}-{os.getpid() % 10000}-{next(_ids)}"[:23]


def props(packet_type: int, **values) -> Properties:
    """paho Properties for one packet type: ``props(PacketTypes.PUBLISH, MessageExpiryInterval=5,
    UserProperty=[("a", "1")])``."""
    p = Properties(packet_type)
    for name, value in values.items():
        setattr(p, name, value)
    return p


def reason(packet_type: int, name: str) -> ReasonCode:
    return ReasonCode(packet_type, name)


@dataclass
class V5Message:
    """A message received by an MQTT 5.0 client.

    `topic` is the topic name with any server topic alias resolved; `wire_topic` is the topic
    name field as sent (empty when the server relied on an alias set earlier).
    """

    topic: str
    wire_topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    mid: int
    properties: Properties

    def prop(self, name: str, default=None):
        return getattr(self.properties, name, default)

    @property
    def topic_alias(self) -> int | None:
        return self.prop("TopicAlias")

    @property
    def user_properties(self) -> list[tuple[str, str]]:
        return list(self.prop("UserProperty", []))

    @property
    def subscription_ids(self) -> list[int]:
        return list(self.prop("SubscriptionIdentifier", []))


class PahoClient:
    """One paho-mqtt client with its loop running on paho's own thread."""

    def __init__(self, broker, client_id: str = "", *, clean_session: bool = True,
                 protocol=mqtt.MQTTv311, keepalive: int = 60, will: tuple | None = None,
                 clean_start: bool = True, connect_properties: Properties | dict | None = None,
                 will_properties: Properties | dict | None = None, manual_ack: bool = False):
        """`clean_session` is for 3.x; `clean_start`, `connect_properties`, `will_properties`
        (paho Properties, or a dict of property names to values) and `manual_ack` for 5.0."""
        self.broker = broker
        self.protocol = protocol
        self.v5 = protocol == mqtt.MQTTv5
        self.messages: queue.Queue = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack_flags = None
        self.connack_rc = None
        self.connack_properties = None
        self.disconnect_rc = None
        self.disconnect_properties = None
        self.disconnect_from_server = None
        self._subacks: dict[int, list] = {}
        self._suback_cv = threading.Condition()
        self._unsubacks: dict[int, list] = {}
        self._pubacks: dict[int, int] = {}
        self._aliases: dict[int, str] = {}
        self.keepalive = keepalive
        self.clean_start = clean_start
        if isinstance(connect_properties, dict):
            connect_properties = props(PacketTypes.CONNECT, **connect_properties)
        if isinstance(will_properties, dict):
            will_properties = props(PacketTypes.WILLMESSAGE, **will_properties)
        self.connect_properties = connect_properties
        # reconnect_on_failure=False: a client that is disconnected (e.g. taken over) must stay
        # disconnected, or two clients with the same id would take the session back and forth.
        if self.v5:
            # paho refuses clean_session for 5.0; clean_start goes with connect().
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                      protocol=protocol, reconnect_on_failure=False,
                                      manual_ack=manual_ack)
        else:
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                      clean_session=clean_session, protocol=protocol,
                                      reconnect_on_failure=False)
        if will is not None:
            topic, payload, qos, retain = will
            self.client.will_set(topic, payload, qos=qos, retain=retain,
                                 properties=will_properties)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe
        self.client.on_publish = self._on_publish

    # -- callbacks (paho's thread) -----------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack_flags = flags
        self.connack_rc = reason_code
        self.connack_properties = properties
        self._aliases.clear()  # Topic aliases live as long as one network connection.
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnect_rc = reason_code
        self.disconnect_properties = properties
        self.disconnect_from_server = flags.is_disconnect_packet_from_server
        self.disconnected.set()

    def _on_message(self, client, userdata, message):
        if not self.v5:
            self.messages.put(message)
            return
        wire_topic = message._topic.decode("utf-8")
        alias = getattr(message.properties, "TopicAlias", None)
        topic = wire_topic
        if alias is not None:
            if wire_topic:
                self._aliases[alias] = wire_topic
            else:
                # An unknown alias stays unresolved (empty), which a test then reports.
                topic = self._aliases.get(alias, "")
        self.messages.put(V5Message(topic=topic, wire_topic=wire_topic, payload=message.payload,
                                    qos=message.qos, retain=bool(message.retain),
                                    dup=bool(message.dup), mid=message.mid,
                                    properties=message.properties))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self._suback_cv:
            self._subacks[mid] = [rc.value for rc in reason_codes]
            self._suback_cv.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        with self._suback_cv:
            self._unsubacks[mid] = [rc.value for rc in reason_codes]
            self._suback_cv.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self._suback_cv:
            self._pubacks[mid] = reason_code.value if reason_code is not None else 0
            self._suback_cv.notify_all()

    # -- operations (test thread) ------------------------------------------------------------

    def connect(self, timeout: float = TIMEOUT) -> "PahoClient":
        """Connect and wait for a successful CONNACK."""
        self.connect_async_wait(timeout)
        assert not self.connack_rc.is_failure, f"connection refused: {self.connack_rc}"
        return self

    def connect_async_wait(self, timeout: float = TIMEOUT) -> "PahoClient":
        """Connect and wait for CONNACK, whatever its reason code (see `connack_rc`)."""
        if self.v5:
            self.client.connect(self.broker.host, self.broker.port, keepalive=self.keepalive,
                                clean_start=self.clean_start, properties=self.connect_properties)
        else:
            self.client.connect(self.broker.host, self.broker.port, keepalive=self.keepalive)
        self.client.loop_start()
        assert self.connected.wait(timeout), "no CONNACK within the timeout"
        return self

    def connack_prop(self, name: str, default=None):
        """A CONNACK property by its paho name (e.g. "ReceiveMaximum"), or `default`."""
        return getattr(self.connack_properties, name, default)

    @property
    def session_present(self) -> bool:
        return bool(self.connack_flags.session_present)

    def subscribe(self, topic_filter, qos: int = 0, timeout: float = TIMEOUT, *,
                  no_local: bool = False, retain_as_published: bool = False,
                  retain_handling: int = 0, subscription_id: int | None = None) -> list[int]:
        """Subscribe (one filter, or a list of (filter, qos or SubscribeOptions)) and return the
        granted QoS list (for 5.0: the SUBACK reason codes). The keyword options are 5.0's."""
        properties = None
        if subscription_id is not None:
            properties = props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=subscription_id)
        if isinstance(topic_filter, list):
            if self.v5:
                topic_filter = [(f, o if isinstance(o, SubscribeOptions) else SubscribeOptions(qos=o))
                                for f, o in topic_filter]
            rc, mid = self.client.subscribe(topic_filter, properties=properties)
        elif self.v5:
            options = SubscribeOptions(qos=qos, noLocal=no_local,
                                       retainAsPublished=retain_as_published,
                                       retainHandling=retain_handling)
            rc, mid = self.client.subscribe(topic_filter, options=options, properties=properties)
        else:
            rc, mid = self.client.subscribe(topic_filter, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe failed locally: {rc}"
        with self._suback_cv:
            assert self._suback_cv.wait_for(lambda: mid in self._subacks, timeout), \
                f"no SUBACK for {topic_filter!r} within the timeout"
            return self._subacks.pop(mid)

    def unsubscribe(self, topic_filter, timeout: float = TIMEOUT) -> list[int]:
        """Unsubscribe; returns the UNSUBACK reason codes (5.0; empty for 3.x)."""
        rc, mid = self.client.unsubscribe(topic_filter)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"unsubscribe failed locally: {rc}"
        with self._suback_cv:
            assert self._suback_cv.wait_for(lambda: mid in self._unsubacks, timeout), \
                f"no UNSUBACK for {topic_filter!r} within the timeout"
            return self._unsubacks.pop(mid)

    def publish(self, topic: str, payload=b"", qos: int = 0, retain: bool = False,
                timeout: float = TIMEOUT, properties: Properties | dict | None = None) -> int:
        """Publish and wait until the QoS flow completes (sent, PUBACK, or PUBCOMP). Returns
        the reason code paho reports for 5.0: PUBACK's for QoS 1, PUBCOMP's for QoS 2 (paho
        ignores the PUBREC reason code), 0 for QoS 0."""
        if isinstance(properties, dict):
            properties = props(PacketTypes.PUBLISH, **properties)
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(timeout)
        assert info.is_published(), f"publish to {topic!r} at QoS {qos} not completed in time"
        with self._suback_cv:  # on_publish runs before paho marks the message published.
            return self._pubacks.pop(info.mid, 0)

    def ack(self, message) -> None:
        """Acknowledge a message by hand (a client made with manual_ack=True): PUBACK for QoS 1,
        PUBCOMP for QoS 2 (paho sent PUBREC on arrival already)."""
        assert self.client.ack(message.mid, message.qos) == mqtt.MQTT_ERR_SUCCESS

    def get_message(self, timeout: float = TIMEOUT):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout} s") from None

    def get_messages(self, count: int, timeout: float = TIMEOUT) -> list:
        return [self.get_message(timeout) for _ in range(count)]

    def drain(self, within: float) -> list:
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

    def disconnect(self, timeout: float = TIMEOUT, *, reason_code: ReasonCode | None = None,
                   properties: Properties | dict | None = None) -> None:
        """Send DISCONNECT (5.0: with a reason code and properties) and wait for paho to report
        the connection closed."""
        if isinstance(properties, dict):
            properties = props(PacketTypes.DISCONNECT, **properties)
        self.client.disconnect(reasoncode=reason_code, properties=properties)
        assert self.disconnected.wait(timeout), "disconnect did not complete in time"
        self.client.loop_stop()

    def vanish(self) -> None:
        """Close the connection without DISCONNECT (an abnormal disconnect for the broker).

        shutdown() sends FIN at once and wakes paho's network thread, which sees end of file and
        stops (a lost connection: paho sends nothing more); loop_stop() then returns without
        waiting out paho's 1 s select timeout."""
        sock = self.client.socket()
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.client.loop_stop()
        sock.close()

    def wait_disconnected(self, timeout: float = TIMEOUT) -> ReasonCode:
        """Wait until the connection is closed (e.g. by the server); returns the reason code."""
        assert self.disconnected.wait(timeout), f"still connected after {timeout} s"
        return self.disconnect_rc

    def stop(self) -> None:
        """Stop the network thread, whatever state the connection is in (test cleanup)."""
        try:
            if self.connected.is_set() and not self.disconnected.is_set():
                self.client.disconnect()
                self.disconnected.wait(2)
        finally:
            self.client.loop_stop()

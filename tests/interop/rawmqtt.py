"""A minimal raw-packet MQTT 3.1 / 3.1.1 / 5.0 client for the cases paho-mqtt cannot express.

paho always acknowledges, always pings and always closes politely. The interoperability tests
also need a client that never sends PUBACK or PUBREC, never sends PINGREQ, drops its socket
without DISCONNECT, and looks at the exact bits of what the broker sent (DUP flag, QoS,
CONNACK return code). This module encodes the few packets those tests send and parses what
they receive, with a timeout on every read.

MQTT 5.0 support is minimal: CONNECT (and its will) may carry properties built with
`properties()`, PUBLISH and SUBSCRIBE get a property section, and received packets are decoded
with their reason code and properties (`Packet.reason_code`, `Packet.properties`, a dict from
property identifier to a list of values). A RawClient switches to 5.0 when it sends a 5.0
CONNECT.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

# Control packet types, MQTT 3.1.1 section 2.2.1.
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

PACKET_NAMES = {
    CONNECT: "CONNECT",
    CONNACK: "CONNACK",
    PUBLISH: "PUBLISH",
    PUBACK: "PUBACK",
    PUBREC: "PUBREC",
    PUBREL: "PUBREL",
    PUBCOMP: "PUBCOMP",
    SUBSCRIBE: "SUBSCRIBE",
    SUBACK: "SUBACK",
    UNSUBSCRIBE: "UNSUBSCRIBE",
    UNSUBACK: "UNSUBACK",
    PINGREQ: "PINGREQ",
    PINGRESP: "PINGRESP",
    DISCONNECT: "DISCONNECT",
}

# Protocol levels as carried in CONNECT.
MQTT_V31 = 3
MQTT_V311 = 4
MQTT_V5 = 5

# MQTT 5.0 property identifiers (section 2.2.2.2) used by the tests, and their value types.
PAYLOAD_FORMAT_INDICATOR = 0x01
MESSAGE_EXPIRY_INTERVAL = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_IDENTIFIER = 0x0B
SESSION_EXPIRY_INTERVAL = 0x11
ASSIGNED_CLIENT_IDENTIFIER = 0x12
SERVER_KEEP_ALIVE = 0x13
REASON_STRING = 0x1F
WILL_DELAY_INTERVAL = 0x18
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27

_BYTE_PROPS = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
_U16_PROPS = {0x13, 0x21, 0x22, 0x23}
_U32_PROPS = {0x02, 0x11, 0x18, 0x27}
_VARINT_PROPS = {0x0B}
_STRING_PROPS = {0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F}
_BINARY_PROPS = {0x09, 0x16}
_PAIR_PROPS = {0x26}


class ConnectionClosed(Exception):
    """The broker closed the connection (EOF or reset) while a packet was expected."""


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


def encode_remaining_length(n: int) -> bytes:
    """Variable byte integer of MQTT 3.1.1 section 2.2.3."""
    if not 0 <= n <= 268_435_455:
        raise ValueError(f"remaining length {n} out of range")
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            byte |= 0x80
        out.append(byte)
        if not n:
            return bytes(out)


def _utf8(s: str | bytes) -> bytes:
    data = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(data)) + data


def properties(*items: tuple[int, object]) -> bytes:
    """Encode MQTT 5.0 properties, without the length prefix: ``properties((0x11, 60), ...)``.
    A user property's value is a (key, value) pair."""
    out = bytearray()
    for ident, value in items:
        out += encode_remaining_length(ident)
        if ident in _BYTE_PROPS:
            out.append(value)
        elif ident in _U16_PROPS:
            out += struct.pack("!H", value)
        elif ident in _U32_PROPS:
            out += struct.pack("!I", value)
        elif ident in _VARINT_PROPS:
            out += encode_remaining_length(value)
        elif ident in _STRING_PROPS or ident in _BINARY_PROPS:
            out += _utf8(value)
        elif ident in _PAIR_PROPS:
            out += _utf8(value[0]) + _utf8(value[1])
        else:
            raise ValueError(f"unknown property identifier {ident:#x}")
    return bytes(out)


def _with_length(props: bytes) -> bytes:
    return encode_remaining_length(len(props)) + props


def _packet(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes([(ptype << 4) | flags]) + encode_remaining_length(len(body)) + body


@dataclass
class Will:
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False


def encode_connect(
    client_id: str,
    *,
    clean_session: bool = True,
    keepalive: int = 60,
    will: Will | None = None,
    username: str | None = None,
    password: bytes | None = None,
    protocol: int = MQTT_V311,
    props: bytes = b"",
    will_props: bytes = b"",
    protocol_name: str | None = None,
) -> bytes:
    """CONNECT. For MQTT_V5, `props` and `will_props` are encoded properties (see
    `properties()`); `protocol_name` overrides the name, to send a wrong one."""
    if protocol == MQTT_V311:
        header = _utf8(protocol_name or "MQTT") + bytes([4])
    elif protocol == MQTT_V5:
        header = _utf8(protocol_name or "MQTT") + bytes([5])
    elif protocol == MQTT_V31:
        header = _utf8("MQIsdp") + bytes([3])
    else:
        raise ValueError(f"unsupported protocol level {protocol}")
    flags = 0
    if clean_session:
        flags |= 0x02
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    v5 = protocol == MQTT_V5
    body = header + bytes([flags]) + struct.pack("!H", keepalive)
    if v5:
        body += _with_length(props)
    body += _utf8(client_id)
    if will is not None:
        if v5:
            body += _with_length(will_props)
        body += _utf8(will.topic) + _utf8(will.payload)
    if username is not None:
        body += _utf8(username)
    if password is not None:
        body += _utf8(password)
    return _packet(CONNECT, 0, body)


def encode_publish(
    topic: str,
    payload: bytes = b"",
    *,
    qos: int = 0,
    retain: bool = False,
    dup: bool = False,
    packet_id: int | None = None,
    v5: bool = False,
    props: bytes = b"",
) -> bytes:
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = _utf8(topic)
    if qos > 0:
        if not packet_id:
            raise ValueError("QoS 1 and 2 PUBLISH need a non-zero packet id")
        body += struct.pack("!H", packet_id)
    if v5:
        body += _with_length(props)
    return _packet(PUBLISH, flags, body + payload)


def encode_subscribe(packet_id: int, filters: list[tuple[str, int]], v5: bool = False) -> bytes:
    """SUBSCRIBE; for 5.0 the second item of each pair is the whole subscription options byte."""
    body = struct.pack("!H", packet_id)
    if v5:
        body += _with_length(b"")
    for topic_filter, qos in filters:
        body += _utf8(topic_filter) + bytes([qos])
    return _packet(SUBSCRIBE, 0x02, body)


def encode_unsubscribe(packet_id: int, filters: list[str]) -> bytes:
    body = struct.pack("!H", packet_id) + b"".join(_utf8(f) for f in filters)
    return _packet(UNSUBSCRIBE, 0x02, body)


def encode_puback(packet_id: int) -> bytes:
    return _packet(PUBACK, 0, struct.pack("!H", packet_id))


def encode_pubrec(packet_id: int) -> bytes:
    return _packet(PUBREC, 0, struct.pack("!H", packet_id))


def encode_pubrel(packet_id: int) -> bytes:
    # [MQTT-3.6.1-1] PUBREL fixed header flags are 0010.
    return _packet(PUBREL, 0x02, struct.pack("!H", packet_id))


def encode_pubcomp(packet_id: int) -> bytes:
    return _packet(PUBCOMP, 0, struct.pack("!H", packet_id))


def encode_pingreq() -> bytes:
    return _packet(PINGREQ, 0, b"")


def encode_disconnect(reason_code: int | None = None, props: bytes = b"") -> bytes:
    """DISCONNECT; a reason code (and properties) only for 5.0."""
    if reason_code is None:
        return _packet(DISCONNECT, 0, b"")
    return _packet(DISCONNECT, 0, bytes([reason_code]) + _with_length(props))


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


@dataclass
class Packet:
    """One decoded control packet. Fields that do not apply to the type stay at their defaults."""

    type: int
    flags: int
    body: bytes = field(repr=False)
    packet_id: int | None = None
    # PUBLISH
    topic: str | None = None
    payload: bytes = field(default=b"", repr=False)
    qos: int = 0
    dup: bool = False
    retain: bool = False
    # CONNACK
    session_present: bool = False
    return_code: int | None = None
    # SUBACK (for 5.0: the reason codes), UNSUBACK (5.0 only)
    granted: list[int] = field(default_factory=list)
    # 5.0: the reason code of CONNACK (also in return_code), PUBACK, PUBREC, PUBREL, PUBCOMP,
    # DISCONNECT (0 when omitted), and the properties, identifier -> list of values.
    reason_code: int | None = None
    properties: dict[int, list] = field(default_factory=dict)

    def prop(self, ident: int, default=None):
        """The (first) value of a property, or `default`."""
        values = self.properties.get(ident)
        return values[0] if values else default

    @property
    def name(self) -> str:
        return PACKET_NAMES.get(self.type, f"type {self.type}")


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, multiplier = 0, 1
    while True:
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) * multiplier
        multiplier *= 128
        if not byte & 0x80:
            return value, pos


def decode_properties(data: bytes, pos: int) -> tuple[dict[int, list], int]:
    """Decode a length-prefixed MQTT 5.0 property section at `pos`; returns (props, end)."""
    length, pos = _read_varint(data, pos)
    end = pos + length
    props: dict[int, list] = {}
    while pos < end:
        ident, pos = _read_varint(data, pos)
        if ident in _BYTE_PROPS:
            value, pos = data[pos], pos + 1
        elif ident in _U16_PROPS:
            (value,), pos = struct.unpack_from("!H", data, pos), pos + 2
        elif ident in _U32_PROPS:
            (value,), pos = struct.unpack_from("!I", data, pos), pos + 4
        elif ident in _VARINT_PROPS:
            value, pos = _read_varint(data, pos)
        elif ident in _STRING_PROPS or ident in _BINARY_PROPS:
            (n,) = struct.unpack_from("!H", data, pos)
            raw = data[pos + 2 : pos + 2 + n]
            value, pos = (raw.decode() if ident in _STRING_PROPS else bytes(raw)), pos + 2 + n
        elif ident in _PAIR_PROPS:
            (n,) = struct.unpack_from("!H", data, pos)
            key = data[pos + 2 : pos + 2 + n].decode()
            pos += 2 + n
            (n,) = struct.unpack_from("!H", data, pos)
            value = (key, data[pos + 2 : pos + 2 + n].decode())
            pos += 2 + n
        else:
            raise ValueError(f"unknown property identifier {ident:#x} from broker")
        props.setdefault(ident, []).append(value)
    if pos != end:
        raise ValueError("property section overruns its length")
    return props, end


def decode_packet(first_byte: int, body: bytes, v5: bool = False) -> Packet:
    ptype, flags = first_byte >> 4, first_byte & 0x0F
    p = Packet(type=ptype, flags=flags, body=body)
    if v5:
        return _decode_v5(p)
    if ptype == PUBLISH:
        p.dup = bool(flags & 0x08)
        p.qos = (flags >> 1) & 0x03
        p.retain = bool(flags & 0x01)
        (tlen,) = struct.unpack_from("!H", body, 0)
        p.topic = body[2 : 2 + tlen].decode()
        pos = 2 + tlen
        if p.qos > 0:
            (p.packet_id,) = struct.unpack_from("!H", body, pos)
            pos += 2
        p.payload = body[pos:]
    elif ptype == CONNACK:
        p.session_present = bool(body[0] & 0x01)
        p.return_code = body[1]
    elif ptype == SUBACK:
        (p.packet_id,) = struct.unpack_from("!H", body, 0)
        p.granted = list(body[2:])
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK):
        (p.packet_id,) = struct.unpack_from("!H", body, 0)
    return p


def _decode_v5(p: Packet) -> Packet:
    body, ptype = p.body, p.type
    if ptype == PUBLISH:
        p.dup = bool(p.flags & 0x08)
        p.qos = (p.flags >> 1) & 0x03
        p.retain = bool(p.flags & 0x01)
        (tlen,) = struct.unpack_from("!H", body, 0)
        p.topic = body[2 : 2 + tlen].decode()
        pos = 2 + tlen
        if p.qos > 0:
            (p.packet_id,) = struct.unpack_from("!H", body, pos)
            pos += 2
        p.properties, pos = decode_properties(body, pos)
        p.payload = body[pos:]
    elif ptype == CONNACK:
        p.session_present = bool(body[0] & 0x01)
        p.return_code = p.reason_code = body[1]
        if len(body) > 2:
            p.properties, _ = decode_properties(body, 2)
    elif ptype in (SUBACK, UNSUBACK):
        (p.packet_id,) = struct.unpack_from("!H", body, 0)
        p.properties, pos = decode_properties(body, 2)
        p.granted = list(body[pos:])
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        (p.packet_id,) = struct.unpack_from("!H", body, 0)
        p.reason_code = body[2] if len(body) > 2 else 0
        if len(body) > 3:
            p.properties, _ = decode_properties(body, 3)
    elif ptype == DISCONNECT:
        p.reason_code = body[0] if body else 0
        if len(body) > 1:
            p.properties, _ = decode_properties(body, 1)
    return p


class RawClient:
    """A blocking TCP MQTT connection that sends exactly what it is told and nothing else."""

    def __init__(self, host: str, port: int, *, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self._next_id = 0
        self.v5 = False  # Set by a 5.0 CONNECT: packets are then encoded and decoded as 5.0.

    # -- plumbing ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def next_packet_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def _fill(self, n: int, deadline: float) -> None:
        while len(self._buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete packet within the timeout ({len(self._buf)} bytes buffered)")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError) as e:
                raise ConnectionClosed(str(e)) from e
            if not chunk:
                raise ConnectionClosed("broker closed the connection")
            self._buf += chunk

    def recv_packet(self, timeout: float = 5.0) -> Packet:
        """The next packet from the broker. Raises TimeoutError or ConnectionClosed."""
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        # Remaining length: up to four bytes after the first.
        length, multiplier, pos = 0, 1, 1
        while True:
            self._fill(pos + 1, deadline)
            byte = self._buf[pos]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            pos += 1
            if not byte & 0x80:
                break
            if pos > 4:
                raise ValueError("malformed remaining length from broker")
        self._fill(pos + length, deadline)
        first = self._buf[0]
        body = bytes(self._buf[pos : pos + length])
        del self._buf[: pos + length]
        return decode_packet(first, body, self.v5)

    def expect(self, ptype: int, timeout: float = 5.0) -> Packet:
        p = self.recv_packet(timeout)
        assert p.type == ptype, f"expected {PACKET_NAMES[ptype]}, got {p}"
        return p

    def expect_nothing(self, within: float, why: str = "") -> None:
        """Assert that no packet arrives (and the connection stays open) for `within` seconds."""
        try:
            p = self.recv_packet(within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected packet{' (' + why + ')' if why else ''}: {p}")

    def wait_closed(self, timeout: float) -> bool:
        """Read and discard packets until the broker closes the connection; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                self.recv_packet(remaining)
            except ConnectionClosed:
                return True
            except TimeoutError:
                return False

    def close(self) -> None:
        """Drop the TCP connection without DISCONNECT (an abnormal disconnect for the broker)."""
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self) -> None:
        """Reset the connection (RST instead of FIN), the harshest way a client can vanish."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    # -- protocol steps -----------------------------------------------------------------------

    def connect(self, client_id: str, *, timeout: float = 5.0, **kwargs) -> Packet:
        """Send CONNECT and return the CONNACK (whatever its return code)."""
        self.v5 = kwargs.get("protocol") == MQTT_V5
        self.send(encode_connect(client_id, **kwargs))
        return self.expect(CONNACK, timeout)

    def subscribe(self, filters: list[tuple[str, int]], timeout: float = 5.0) -> list[int]:
        pid = self.next_packet_id()
        self.send(encode_subscribe(pid, filters, v5=self.v5))
        suback = self.expect(SUBACK, timeout)
        assert suback.packet_id == pid, f"SUBACK for {suback.packet_id}, expected {pid}"
        return suback.granted

    def publish(self, topic: str, payload: bytes = b"", *, qos: int = 0, retain: bool = False,
                timeout: float = 5.0, props: bytes = b"") -> None:
        """Publish and complete the QoS flow (PUBACK, or PUBREC/PUBREL/PUBCOMP)."""
        pid = self.next_packet_id() if qos else None
        self.send(encode_publish(topic, payload, qos=qos, retain=retain, packet_id=pid,
                                 v5=self.v5, props=props))
        if qos == 1:
            assert self.expect(PUBACK, timeout).packet_id == pid
        elif qos == 2:
            assert self.expect(PUBREC, timeout).packet_id == pid
            self.send(encode_pubrel(pid))
            assert self.expect(PUBCOMP, timeout).packet_id == pid

    def disconnect(self) -> None:
        try:
            self.send(encode_disconnect())
        finally:
            self.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

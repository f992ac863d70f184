"""A minimal raw-packet MQTT 3.1 / 3.1.1 client for the cases paho-mqtt cannot express.

paho always acknowledges, always pings and always closes politely. The interoperability tests
also need a client that never sends PUBACK or PUBREC, never sends PINGREQ, drops its socket
without DISCONNECT, and looks at the exact bits of what the broker sent (DUP flag, QoS,
CONNACK return code). This module encodes the few packets those tests send and parses what
they receive, with a timeout on every read. It knows nothing of MQTT 5.
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
) -> bytes:
    if protocol == MQTT_V311:
        header = _utf8("MQTT") + bytes([4])
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
    body = header + bytes([flags]) + struct.pack("!H", keepalive) + _utf8(client_id)
    if will is not None:
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
) -> bytes:
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = _utf8(topic)
    if qos > 0:
        if not packet_id:
            raise ValueError("QoS 1 and 2 PUBLISH need a non-zero packet id")
        body += struct.pack("!H", packet_id)
    return _packet(PUBLISH, flags, body + payload)


def encode_subscribe(packet_id: int, filters: list[tuple[str, int]]) -> bytes:
    body = struct.pack("!H", packet_id)
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


def encode_disconnect() -> bytes:
    return _packet(DISCONNECT, 0, b"")


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
    # SUBACK
    granted: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return PACKET_NAMES.get(self.type, f"type {self.type}")


def decode_packet(first_byte: int, body: bytes) -> Packet:
    ptype, flags = first_byte >> 4, first_byte & 0x0F
    p = Packet(type=ptype, flags=flags, body=body)
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


class RawClient:
    """A blocking TCP MQTT connection that sends exactly what it is told and nothing else."""

    def __init__(self, host: str, port: int, *, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self._next_id = 0

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
        return decode_packet(first, body)

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
        self.send(encode_connect(client_id, **kwargs))
        return self.expect(CONNACK, timeout)

    def subscribe(self, filters: list[tuple[str, int]], timeout: float = 5.0) -> list[int]:
        pid = self.next_packet_id()
        self.send(encode_subscribe(pid, filters))
        suback = self.expect(SUBACK, timeout)
        assert suback.packet_id == pid, f"SUBACK for {suback.packet_id}, expected {pid}"
        return suback.granted

    def publish(self, topic: str, payload: bytes = b"", *, qos: int = 0, retain: bool = False,
                timeout: float = 5.0) -> None:
        """Publish and complete the QoS flow (PUBACK, or PUBREC/PUBREL/PUBCOMP)."""
        pid = self.next_packet_id() if qos else None
        self.send(encode_publish(topic, payload, qos=qos, retain=retain, packet_id=pid))
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

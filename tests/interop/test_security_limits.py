"""Connection limits as a client sees them, with raw sockets: the CONNECT timeout, a
listener's `max_connections` and `max_connection_rate`. These tests need a Tern configuration
and run against Tern only.
"""

from __future__ import annotations

import json
import socket
import ssl
import time

import pytest

import rawmqtt
from pahoclient import unique_id

CONNECT_TIMEOUT = 1  # [limits] connect_timeout_secs
SLACK = 1.5          # what the broker may take beyond it


def q(value) -> str:
    return json.dumps(str(value))


def listener(protocol: str = "mqtt", pki=None, **options) -> str:
    lines = ["[[listeners]]", f"protocol = {q(protocol)}", 'address = "127.0.0.1:0"']
    lines += [f"{key} = {value}" for key, value in options.items()]
    if protocol in ("mqtts", "wss"):
        lines += ["[listeners.tls]", f"cert = {q(pki.server_cert)}", f"key = {q(pki.server_key)}"]
    return "\n".join(lines) + "\n"


def attempt(endpoint, timeout: float = 2.0) -> tuple[str, rawmqtt.RawClient | None]:
    """Open a TCP connection and send CONNECT: ("connack", client) when a CONNACK 0 comes,
    ("closed", None) when the broker closes (or refuses) the connection instead."""
    try:
        raw = rawmqtt.RawClient(endpoint.host, endpoint.port, timeout=timeout)
    except ConnectionRefusedError:
        return "closed", None
    try:
        connack = raw.connect(unique_id("lim"), timeout=timeout)
    except (rawmqtt.ConnectionClosed, ConnectionResetError, BrokenPipeError):
        raw.close()
        return "closed", None
    assert connack.return_code == 0, connack
    return "connack", raw


def wait_closed_after(raw: rawmqtt.RawClient, opened: float, limit: float) -> float:
    """Wait until the broker closes `raw`; returns the seconds since `opened`."""
    closed = raw.wait_closed(limit - (time.monotonic() - opened))
    elapsed = time.monotonic() - opened
    assert closed, f"connection still open {elapsed:.1f} s after it was opened (limit {limit:.1f} s)"
    return elapsed


@pytest.mark.parametrize("protocol", ["mqtt", "mqtts", "ws"])
def test_silent_connection_is_closed_after_connect_timeout(start_broker, pki, protocol):
    """A TCP connection that sends nothing at all (no CONNECT; for mqtts no ClientHello, for ws
    no HTTP upgrade) is closed once connect_timeout_secs = 1 has passed, not before 0.5 s and
    not later than 2.5 s: an idle socket must not hold a slot for longer, whatever the
    transport."""
    broker = start_broker(config=listener(protocol, pki) + f"\n[limits]\nconnect_timeout_secs = {CONNECT_TIMEOUT}\n")
    endpoint = broker.endpoint(protocol)
    opened = time.monotonic()
    with rawmqtt.RawClient(endpoint.host, endpoint.port) as raw:
        elapsed = wait_closed_after(raw, opened, CONNECT_TIMEOUT + SLACK)
    assert elapsed >= CONNECT_TIMEOUT / 2, f"closed after only {elapsed:.2f} s"


def test_tls_client_without_connect_is_closed_after_connect_timeout(start_broker, pki):
    """Over mqtts, a client that completes the TLS handshake and then sends no CONNECT is
    closed after connect_timeout_secs = 1 (0.5 to 2.5 s after the handshake)."""
    broker = start_broker(config=listener("mqtts", pki) + f"\n[limits]\nconnect_timeout_secs = {CONNECT_TIMEOUT}\n")
    context = ssl.create_default_context(cafile=pki.ca)
    tcp = socket.create_connection((broker.host, broker.port_of("mqtts")), timeout=5)
    with context.wrap_socket(tcp, server_hostname="localhost") as tls:
        opened = time.monotonic()
        tls.settimeout(CONNECT_TIMEOUT + SLACK)
        try:
            data = tls.recv(1)
        except TimeoutError:
            raise AssertionError(f"TLS connection without CONNECT still open after "
                                 f"{CONNECT_TIMEOUT + SLACK} s") from None
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        elapsed = time.monotonic() - opened
    assert data == b"", f"unexpected data before CONNECT: {data!r}"
    assert elapsed >= CONNECT_TIMEOUT / 2, f"closed after only {elapsed:.2f} s"


def test_connect_timeout_spares_a_client_that_connects(start_broker, pki):
    """The timeout is for CONNECT only: a client that connected in time stays connected past it
    (keep alive 60 s)."""
    broker = start_broker(config=listener() + f"\n[limits]\nconnect_timeout_secs = {CONNECT_TIMEOUT}\n")
    status, raw = attempt(broker.endpoint("mqtt"))
    assert status == "connack"
    with raw:
        raw.expect_nothing(CONNECT_TIMEOUT + 0.5, "a connected client must not be timed out")
        raw.send(rawmqtt.encode_pingreq())
        raw.expect(rawmqtt.PINGRESP)


def test_listener_max_connections(start_broker):
    """max_connections = 2 on the listener: two clients connect; the third TCP connection is
    closed at once (no CONNACK) while the first two keep working; once one leaves, a new client
    gets in."""
    broker = start_broker(config=listener(max_connections=2))
    endpoint = broker.endpoint("mqtt")
    first = attempt(endpoint)
    second = attempt(endpoint)
    assert [first[0], second[0]] == ["connack", "connack"]
    began = time.monotonic()
    third, extra = attempt(endpoint)
    assert third == "closed", "a third connection was accepted beyond max_connections = 2"
    assert time.monotonic() - began < 1.0, "the third connection was not closed at once"
    for _, raw in (first, second):
        raw.send(rawmqtt.encode_pingreq())
        raw.expect(rawmqtt.PINGRESP)
    first[1].disconnect()
    deadline = time.monotonic() + 3.0
    while (status := attempt(endpoint))[0] != "connack":
        assert time.monotonic() < deadline, "no room for a new client 3 s after one left"
        time.sleep(0.1)
    status[1].close()
    second[1].close()


def test_listener_max_connection_rate(start_broker):
    """max_connection_rate = 2: of 10 connections opened at once, at most a burst's worth (2,
    3 with a refill while they are opened) get a CONNACK and the rest are closed at once; a
    second later new connections are accepted again."""
    broker = start_broker(config=listener(max_connection_rate=2))
    endpoint = broker.endpoint("mqtt")
    began = time.monotonic()
    sockets = []
    for _ in range(10):
        try:
            sockets.append(rawmqtt.RawClient(endpoint.host, endpoint.port, timeout=2.0))
        except ConnectionRefusedError:
            sockets.append(None)
    outcomes = []
    for raw in sockets:
        if raw is None:
            outcomes.append("closed")
            continue
        try:
            raw.send(rawmqtt.encode_connect(unique_id("rate")))
            packet = raw.recv_packet(2.0)
            outcomes.append("connack" if packet.type == rawmqtt.CONNACK and packet.return_code == 0
                            else f"unexpected {packet}")
        except (rawmqtt.ConnectionClosed, ConnectionResetError, BrokenPipeError):
            outcomes.append("closed")
        except TimeoutError:
            outcomes.append("no answer")
    elapsed = time.monotonic() - began
    accepted, closed = outcomes.count("connack"), outcomes.count("closed")
    assert 1 <= accepted <= 3 and closed == 10 - accepted, outcomes
    assert elapsed < 2.0, f"the refused connections were not closed at once ({elapsed:.1f} s)"
    for raw in sockets:
        if raw is not None:
            raw.close()
    time.sleep(1.1)
    status, raw = attempt(endpoint)
    assert status == "connack", "a new connection was refused a second after the burst"
    raw.close()

"""TLS and mutual TLS listeners (`mqtts`) with real clients: mosquitto_pub / mosquitto_sub
(`--cafile`, `--cert`/`--key`, `--tls-version`) and paho-mqtt (`tls_set`).

Certificates come from certs.py (a test CA, a server certificate for DNS:localhost and
IP:127.0.0.1, a client certificate with CN `certuser`, and a rogue CA nobody trusts), made with
the openssl CLI at test time. These tests need a Tern configuration and run against Tern only.
"""

from __future__ import annotations

import json
import time

import pytest

from certs import CLIENT_CN
from pahoclient import MQTTv5, unique_id

TIMEOUT = 10.0


def q(value) -> str:
    """A TOML string (JSON's string syntax is valid TOML)."""
    return json.dumps(str(value))


def tls_table(pki, *, client_ca: bool = False, require: bool = False,
              username_from: str | None = None) -> str:
    lines = ["[listeners.tls]", f"cert = {q(pki.server_cert)}", f"key = {q(pki.server_key)}"]
    if client_ca:
        lines.append(f"client_ca = {q(pki.ca)}")
    if require:
        lines.append("require_client_certificate = true")
    if username_from:
        lines.append(f"username_from_certificate = {q(username_from)}")
    return "\n".join(lines)


def mqtts_config(pki, **tls) -> str:
    """A plain mqtt listener (for observers) and an mqtts one."""
    return "\n".join([
        "[[listeners]]", 'protocol = "mqtt"', 'address = "127.0.0.1:0"', "",
        "[[listeners]]", 'protocol = "mqtts"', 'address = "127.0.0.1:0"',
        tls_table(pki, **tls), "",
    ])


def tls_args(broker, *extra, host: str = "localhost") -> list[str]:
    return ["-h", host, "-p", str(broker.port_of("mqtts")), *extra]


def expect_failure(proc, what: str) -> str:
    """The client exits non-zero within the timeout; returns its output."""
    code = proc.wait_exit(TIMEOUT)
    output = "\n".join(proc.lines)
    assert code != 0, f"{what}: expected a failure, but it exited 0; output:\n{output}"
    return output


# -- TLS -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["tlsv1.2", "tlsv1.3"])
def test_mosquitto_clients_round_trip_over_tls(start_broker, pki, cli, version):
    """mosquitto_sub and mosquitto_pub verify the server certificate against the test CA (host
    name `localhost`, SAN DNS:localhost) with the TLS version forced, and a message goes through."""
    broker = start_broker(config=mqtts_config(pki))
    topic = f"tls/{version}"
    common = ["--cafile", pki.ca, "--tls-version", version]
    sub = cli("mosquitto_sub", *tls_args(broker, *common), "-d", "-C", "1", "-W", "10", "-t", topic, "-v")
    sub.wait_subscribed()
    pub = cli("mosquitto_pub", *tls_args(broker, *common), "-q", "1", "-t", topic, "-m", f"over {version}")
    assert pub.wait_exit() == 0, "\n".join(pub.lines)
    sub.wait_line(lambda line: line == f"{topic} over {version}", what="the message")
    assert sub.wait_exit() == 0


def test_mosquitto_pub_verifies_ip_address_san(start_broker, pki, cli):
    """Connecting to 127.0.0.1 verifies against the certificate's IP:127.0.0.1 SAN."""
    broker = start_broker(config=mqtts_config(pki))
    pub = cli("mosquitto_pub", *tls_args(broker, "--cafile", pki.ca, host="127.0.0.1"),
              "-t", "tls/ip", "-m", "x")
    assert pub.wait_exit() == 0, "\n".join(pub.lines)


def test_client_that_does_not_trust_the_ca_fails(start_broker, make_paho, pki, cli):
    """mosquitto_pub with another CA as --cafile cannot complete the handshake, and its message
    is not delivered."""
    broker = start_broker(config=mqtts_config(pki))
    observer = make_paho(broker.endpoint("mqtt"), unique_id("observer")).connect()
    observer.subscribe("tls/#", 1)
    pub = cli("mosquitto_pub", *tls_args(broker, "--cafile", pki.rogue_ca), "-q", "1",
              "-t", "tls/untrusted", "-m", "should not arrive")
    output = expect_failure(pub, "mosquitto_pub trusting only the rogue CA")
    assert "certificate verify failed" in output.lower() or "error" in output.lower(), output
    observer.expect_no_message(0.5)
    assert broker.alive()


def test_plain_mqtt_to_tls_port_fails(start_broker, pki, cli):
    """A client speaking plain MQTT to the TLS port gets no CONNACK: mosquitto_pub fails."""
    broker = start_broker(config=mqtts_config(pki))
    pub = cli("mosquitto_pub", *tls_args(broker), "-t", "tls/plain", "-m", "x")
    expect_failure(pub, "plain MQTT to an mqtts listener")
    assert broker.alive()


def test_paho_round_trip_over_tls(start_broker, make_paho, make_v5, pki):
    """paho-mqtt with tls_set(ca_certs=CA), 3.1.1 and 5.0, against the mqtts listener."""
    broker = start_broker(config=mqtts_config(pki))
    endpoint = broker.endpoint("mqtts")
    tls = {"ca_certs": pki.ca}
    sub = make_paho(endpoint, unique_id("tls-sub"), tls=tls).connect()
    assert sub.subscribe("tls/paho", 1) == [1]
    pub = make_v5(endpoint, unique_id("tls-pub5"), tls=tls).connect()
    pub.publish("tls/paho", b"paho over tls", qos=1)
    msg = sub.get_message()
    assert (msg.topic, msg.payload, msg.qos) == ("tls/paho", b"paho over tls", 1)


def test_paho_with_untrusted_ca_fails(start_broker, make_paho, pki):
    broker = start_broker(config=mqtts_config(pki))
    client = make_paho(broker.endpoint("mqtts"), unique_id("tls-bad"), tls={"ca_certs": pki.rogue_ca})
    with pytest.raises(Exception) as info:
        client.connect(timeout=5)
    assert "certificate" in str(info.value).lower() or "ssl" in type(info.value).__name__.lower(), \
        repr(info.value)


# -- Mutual TLS ------------------------------------------------------------------------------


def mtls_args(broker, pki, *extra, cert: bool = True, rogue: bool = False) -> list[str]:
    args = tls_args(broker, "--cafile", pki.ca)
    if cert:
        if rogue:
            args += ["--cert", pki.rogue_client_cert, "--key", pki.rogue_client_key]
        else:
            args += ["--cert", pki.client_cert, "--key", pki.client_key]
    return args + list(extra)


def test_mutual_tls_requires_a_client_certificate(start_broker, make_paho, pki, cli):
    """require_client_certificate: with --cert/--key signed by the client CA the publish is
    delivered; without a certificate, or with one from the rogue CA, mosquitto_pub fails."""
    broker = start_broker(config=mqtts_config(pki, client_ca=True, require=True))
    observer = make_paho(broker.endpoint("mqtt"), unique_id("observer")).connect()
    observer.subscribe("mtls/#", 1)

    ok = cli("mosquitto_pub", *mtls_args(broker, pki, "-q", "1", "-t", "mtls/ok", "-m", "with cert"))
    assert ok.wait_exit() == 0, "\n".join(ok.lines)
    msg = observer.get_message()
    assert (msg.topic, msg.payload) == ("mtls/ok", b"with cert")

    none = cli("mosquitto_pub", *mtls_args(broker, pki, "-q", "1", "-t", "mtls/none", "-m", "x", cert=False))
    expect_failure(none, "mosquitto_pub without a client certificate")
    rogue = cli("mosquitto_pub", *mtls_args(broker, pki, "-q", "1", "-t", "mtls/rogue", "-m", "x", rogue=True))
    expect_failure(rogue, "mosquitto_pub with a certificate from an untrusted CA")
    observer.expect_no_message(0.5)


def test_paho_mutual_tls(start_broker, make_paho, pki):
    broker = start_broker(config=mqtts_config(pki, client_ca=True, require=True))
    client = make_paho(broker.endpoint("mqtts"), unique_id("mtls-paho"),
                       tls={"ca_certs": pki.ca, "certfile": pki.client_cert, "keyfile": pki.client_key})
    client.connect()
    assert client.subscribe("mtls/paho", 1) == [1]
    client.publish("mtls/paho", b"both ways", qos=1)
    assert client.get_message().payload == b"both ways"


def test_username_from_certificate_cn_with_acl(start_broker, make_paho, pki, cli, tmp_path):
    """username_from_certificate = "cn": the certificate's CN (`certuser`) is the user the ACL
    names. It may write cn/topic only: that message arrives; one to another topic is dropped
    (3.1.1: PUBACK all the same; 5.0: PUBACK 0x87, which mosquitto_pub reports)."""
    acl = tmp_path / "acl"
    acl.write_text("\n".join([
        "# anonymous clients (the observer on the plain listener) read everything",
        "topic read #",
        f"user {CLIENT_CN}",
        "topic write cn/topic",
    ]) + "\n")
    config = mqtts_config(pki, client_ca=True, require=True, username_from="cn")
    config += f"\n[auth]\nallow_anonymous = true\nacl_file = {q(acl)}\n"
    broker = start_broker(config=config)
    observer = make_paho(broker.endpoint("mqtt"), unique_id("observer")).connect()
    assert observer.subscribe("#", 1) == [1]

    allowed = cli("mosquitto_pub", *mtls_args(broker, pki, "-q", "1", "-t", "cn/topic", "-m", "from cn"))
    assert allowed.wait_exit() == 0, "\n".join(allowed.lines)
    msg = observer.get_message()
    assert (msg.topic, msg.payload) == ("cn/topic", b"from cn")

    denied = cli("mosquitto_pub", *mtls_args(broker, pki, "-d", "-q", "1", "-t", "cn/other", "-m", "dropped"))
    denied.wait_exit()
    assert any("received PUBACK" in line for line in denied.lines), \
        "3.1.1: the refused PUBLISH is still acknowledged:\n" + "\n".join(denied.lines)
    denied5 = cli("mosquitto_pub", *mtls_args(broker, pki, "-V", "mqttv5", "-q", "1",
                                              "-t", "cn/other", "-m", "dropped v5"))
    denied5.wait_exit()
    assert any("not authorized" in line.lower() for line in denied5.lines), \
        "5.0: mosquitto_pub reports PUBACK 0x87:\n" + "\n".join(denied5.lines)
    observer.expect_no_message(0.5)

    # The certificate, not CONNECT, names the user: claiming another name changes nothing.
    claimed = cli("mosquitto_pub", *mtls_args(broker, pki, "-u", "someoneelse", "-q", "1",
                                              "-t", "cn/topic", "-m", "still certuser"))
    assert claimed.wait_exit() == 0, "\n".join(claimed.lines)
    assert observer.get_message().payload == b"still certuser"

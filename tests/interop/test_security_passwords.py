"""Password files: one written by `tern passwd`, one by the real `mosquitto_passwd`; CONNACK
codes for bad, unknown and missing credentials as mosquitto_pub, paho-mqtt and a raw client
see them; SIGHUP reloading the file without dropping connected clients; failed attempts logged
with the client's address. These tests need a Tern configuration and run against Tern only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

import rawmqtt
from conftest import TERN_BIN
from pahoclient import MQTTv5, unique_id

RELOAD_DEADLINE = 5.0


def q(value) -> str:
    return json.dumps(str(value))


def tern_passwd(*args) -> None:
    result = subprocess.run([str(TERN_BIN), "passwd", *map(str, args)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, f"tern passwd {args} failed:\n{result.stdout}{result.stderr}"


@pytest.fixture
def passwords(tmp_path, broker_kind):
    """A password file with alice/secret (tern passwd) and bob/pw (mosquitto_passwd)."""
    if broker_kind != "tern":
        pytest.skip("a whole Tern configuration has no mosquitto mapping; Tern only")
    if not shutil.which("mosquitto_passwd"):
        pytest.fail("mosquitto_passwd not found: apt-get install -y mosquitto")
    made_by_tern, made_by_mosquitto = tmp_path / "tern.passwd", tmp_path / "mosquitto.passwd"
    tern_passwd("-c", "-b", made_by_tern, "alice", "secret")
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(made_by_mosquitto), "bob", "pw"],
                   check=True, timeout=30, capture_output=True)
    combined = tmp_path / "passwd"
    combined.write_text(made_by_tern.read_text() + made_by_mosquitto.read_text())
    return combined


def password_config(password_file) -> str:
    return "\n".join([
        "[[listeners]]", 'protocol = "mqtt"', 'address = "127.0.0.1:0"', "",
        "[auth]", f"password_file = {q(password_file)}", "",
    ])


def raw_connack(broker, *, username=None, password=None, v5=False) -> int:
    """The CONNACK return code (5.0: reason code) a raw client gets."""
    with rawmqtt.RawClient(broker.host, broker.port) as raw:
        kwargs = {"protocol": rawmqtt.MQTT_V5} if v5 else {}
        connack = raw.connect(unique_id("raw"), username=username,
                              password=password.encode() if password is not None else None, **kwargs)
        return connack.return_code


def mosquitto_pub(cli, broker, *args) -> tuple[int, str]:
    proc = cli("mosquitto_pub", "-h", broker.host, "-p", broker.port, "-t", "pw/t", "-m", "x", *args)
    code = proc.wait_exit()
    return code, "\n".join(proc.lines)


def test_users_from_tern_passwd_and_mosquitto_passwd_connect(start_broker, make_paho, make_v5,
                                                            passwords, cli):
    """alice (hash by `tern passwd`) and bob (hash by `mosquitto_passwd`) both get in, with
    paho 3.1.1, paho 5.0 and mosquitto_pub, and a message goes from one to the other."""
    broker = start_broker(config=password_config(passwords))
    alice = make_paho(broker, unique_id("alice"), username="alice", password="secret").connect()
    assert alice.subscribe("pw/#", 1) == [1]
    bob = make_v5(broker, unique_id("bob"), username="bob", password="pw").connect()
    bob.publish("pw/from-bob", b"hi alice", qos=1)
    assert alice.get_message().payload == b"hi alice"
    for user, password in (("alice", "secret"), ("bob", "pw")):
        code, output = mosquitto_pub(cli, broker, "-u", user, "-P", password, "-q", "1")
        assert code == 0, f"mosquitto_pub as {user}: {output}"
    assert [alice.get_message().topic for _ in range(2)] == ["pw/t", "pw/t"]


@pytest.mark.parametrize("user,password", [("alice", "wrong"), ("bob", "secret"), ("mallory", "pw")],
                         ids=["wrong-password-tern-hash", "wrong-password-mosquitto-hash", "unknown-user"])
def test_bad_credentials_are_refused(start_broker, make_v5, passwords, cli, user, password):
    """A wrong password or an unknown user: 3.1.1 CONNACK 0x04 (mosquitto_pub: "bad user name
    or password"), 5.0 CONNACK 0x86 (paho: "Bad user name or password")."""
    broker = start_broker(config=password_config(passwords))
    assert raw_connack(broker, username=user, password=password) == 0x04
    assert raw_connack(broker, username=user, password=password, v5=True) == 0x86

    code, output = mosquitto_pub(cli, broker, "-u", user, "-P", password)
    assert code != 0 and "bad user name or password" in output.lower(), output
    code, output = mosquitto_pub(cli, broker, "-V", "mqttv5", "-u", user, "-P", password)
    assert code != 0 and "bad user name or password" in output.lower(), output

    client = make_v5(broker, unique_id("bad"), username=user, password=password)
    client.connect_async_wait()
    assert client.connack_rc.value == 0x86, client.connack_rc
    assert str(client.connack_rc) == "Bad user name or password"


def test_no_credentials_when_anonymous_is_not_allowed(start_broker, make_v5, passwords, cli):
    """A password file makes allow_anonymous default to false: a client without credentials
    gets 3.1.1 CONNACK 0x05 (not authorised), 5.0 CONNACK 0x87 (Not authorized)."""
    broker = start_broker(config=password_config(passwords))
    assert raw_connack(broker) == 0x05
    assert raw_connack(broker, v5=True) == 0x87
    code, output = mosquitto_pub(cli, broker)
    assert code != 0 and "not authorised" in output.lower(), output
    client = make_v5(broker, unique_id("anon"))
    client.connect_async_wait()
    assert client.connack_rc.value == 0x87, client.connack_rc
    assert str(client.connack_rc) == "Not authorized"


def test_failed_attempt_is_logged_with_the_client_address(start_broker, passwords):
    broker = start_broker(config=password_config(passwords))
    assert raw_connack(broker, username="alice", password="wrong") == 0x04
    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in broker.stderr().splitlines() if "Authentication failed" in line]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert lines, f"no 'Authentication failed' line; stderr:\n{broker.stderr()}"
    assert any("127.0.0.1" in line and "alice" in line for line in lines), lines
    assert not any("wrong" in line for line in lines), f"the password was logged: {lines}"


def wait_for_connack(broker, expected: int, **credentials) -> None:
    """After a reload: poll (bounded) until a new connection gets `expected`."""
    deadline = time.monotonic() + RELOAD_DEADLINE
    while (got := raw_connack(broker, **credentials)) != expected:
        assert time.monotonic() < deadline, \
            f"{credentials}: CONNACK {got:#04x} {RELOAD_DEADLINE} s after SIGHUP, expected {expected:#04x}"
        time.sleep(0.1)


def test_sighup_reloads_the_password_file(start_broker, make_paho, passwords):
    """`tern passwd -D` + SIGHUP: the deleted user is refused from then on, while its client
    already connected stays connected and keeps receiving; `tern passwd -b` (a new user) +
    SIGHUP lets the new user in."""
    broker = start_broker(config=password_config(passwords))
    alice = make_paho(broker, unique_id("alice"), username="alice", password="secret").connect()
    assert alice.subscribe("hup/#", 1) == [1]

    tern_passwd("-D", passwords, "alice")
    assert "alice:" not in passwords.read_text()
    broker.reload()
    wait_for_connack(broker, 0x04, username="alice", password="secret")
    assert raw_connack(broker, username="bob", password="pw") == 0x00, "bob must still get in"

    assert not alice.disconnected.is_set(), f"alice was disconnected: {alice.disconnect_rc}"
    bob = make_paho(broker, unique_id("bob"), username="bob", password="pw").connect()
    bob.publish("hup/still-there", b"after reload", qos=1)
    msg = alice.get_message()
    assert (msg.topic, msg.payload) == ("hup/still-there", b"after reload")

    assert raw_connack(broker, username="carol", password="pw3") == 0x04
    tern_passwd("-b", passwords, "carol", "pw3")
    broker.reload()
    wait_for_connack(broker, 0x00, username="carol", password="pw3")
    make_paho(broker, unique_id("carol"), username="carol", password="pw3").connect()

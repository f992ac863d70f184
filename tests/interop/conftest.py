"""Broker fixtures for the interoperability suite.

The broker under test is chosen by TERN_TEST_BROKER:

* ``tern`` (default): the binary at TERN_BIN (default ``<repo>/target/debug/tern``), started as
  ``tern serve --listen 127.0.0.1:0 --in-memory [--config FILE]``. Readiness is the log line
  ``listener ready ... addr=127.0.0.1:PORT`` on stderr.
* ``mosquitto``: ``mosquitto -c FILE`` with one loopback listener on a free port, anonymous
  access and no persistence. Used to prove the tests themselves right before Tern exists.

``start_broker(config=TOML)`` starts Tern with a whole configuration of its own (several
``[[listeners]]``, TLS, ``[auth]``): no ``--listen`` is added, every listener's port is parsed
from its ready line (``Broker.listeners``, ``Broker.endpoint(kind)``). Such tests are Tern's
only and are skipped for mosquitto.

Every test gets a fresh broker, so retained messages and sessions never leak between tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
BROKER_KIND = os.environ.get("TERN_TEST_BROKER", "tern").strip().lower()
TERN_BIN = Path(os.environ.get("TERN_BIN", REPO_ROOT / "target" / "debug" / "tern"))

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
TERN_READY_RE = re.compile(r"listener ready.*addr=([0-9.]+):(\d+)")
# One line per listener, in configuration order: `listener ready kind="mqtts" addr=IP:PORT`.
TERN_LISTENER_RE = re.compile(r'listener ready.*?kind="?(\w+)"?.*?addr=([0-9.]+):(\d+)')
LISTENERS_TABLE_RE = re.compile(r"^\s*\[\[listeners\]\]\s*(#.*)?$", re.MULTILINE)
# Log lines may carry ANSI colour codes (e.g. between `addr` and `=`); match on the plain text.
ANSI_ESCAPE_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# The `[limits]` keys of Tern's TOML configuration that tests may set, and their mosquitto
# equivalents. The Tern key names are provisional (see the README of this directory).
MOSQUITTO_LIMITS = {
    "max_queued_messages": "max_queued_messages",
    "max_inflight_messages": "max_inflight_messages",
    "max_packet_size": "max_packet_size",
    "max_connections": "max_connections",  # a per-listener option in mosquitto
    # The Server Keep Alive a 5.0 client gets when it asks for more (mosquitto: at least 10).
    "max_keep_alive": "max_keepalive",
    # The Topic Alias Maximum in CONNACK (a per-listener option in mosquitto).
    "topic_alias_maximum": "max_topic_alias",
}
MOSQUITTO_LISTENER_OPTIONS = {"max_connections", "max_topic_alias"}  # mosquitto names
# Tern's `[mqtt]` table (response_information, shared_subscription_strategy) has no mosquitto
# equivalent: a test that sets it is skipped for mosquitto.

if BROKER_KIND not in ("tern", "mosquitto"):
    raise pytest.UsageError(f"TERN_TEST_BROKER must be 'tern' or 'mosquitto', not {BROKER_KIND!r}")


def pytest_report_header(config):
    where = TERN_BIN if BROKER_KIND == "tern" else shutil.which("mosquitto")
    return f"broker under test: {BROKER_KIND} ({where})"


@dataclass
class Broker:
    """A running broker process and where to reach it."""

    kind: str
    host: str
    port: int
    proc: subprocess.Popen
    stderr_path: Path
    argv: list[str] = field(default_factory=list)
    # Set by stop() when a test stops the broker itself: its exit status.
    stopped_status: int | None = None
    # Every listener as (kind, port), in configuration order (Tern; kind mqtt/mqtts/ws/wss).
    listeners: list[tuple[str, int]] = field(default_factory=list)

    def port_of(self, kind: str, index: int = 0) -> int:
        """The port of the `index`-th listener of `kind` ("mqtt", "mqtts", "ws", "wss")."""
        ports = [port for k, port in self.listeners if k == kind]
        assert len(ports) > index, f"no {kind} listener #{index} in {self.listeners}"
        return ports[index]

    def endpoint(self, kind: str, index: int = 0) -> "Endpoint":
        """Where one listener is, as an object with `host` and `port` that PahoClient,
        RawClient and the other helpers accept in place of a Broker."""
        return Endpoint(self.host, self.port_of(kind, index), kind, self)

    def reload(self) -> None:
        """SIGHUP: Tern re-reads passwords, the ACL and certificates. Waits (bounded) until the
        broker has logged that it is reloading; what follows is for the test to poll."""
        before = self.stderr().count("Reloading")
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + READY_TIMEOUT
        while self.stderr().count("Reloading") <= before:
            assert self.alive(), f"{self.kind} exited after SIGHUP; stderr:\n{_stderr_tail(self.stderr())}"
            assert time.monotonic() < deadline, "no 'Reloading' log line within 10 s of SIGHUP"
            time.sleep(0.02)

    @property
    def is_tern(self) -> bool:
        return self.kind == "tern"

    @property
    def is_mosquitto(self) -> bool:
        return self.kind == "mosquitto"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        try:
            return ANSI_ESCAPE_RE.sub("", self.stderr_path.read_text(errors="replace"))
        except OSError:
            return ""

    def rss_kib(self) -> int:
        """Resident set size of the broker process, from /proc/<pid>/status."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS for broker pid {self.pid}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM the broker mid-test and wait for it to exit; returns its exit status. The
        fixture then only checks that the status was 0."""
        assert self.alive(), f"{self.kind} had already exited with status {self.proc.returncode}"
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.stopped_status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.kind} did not exit within {timeout:.0f} s of SIGTERM; "
                                 f"stderr:\n{_stderr_tail(self.stderr())}") from None
        return self.stopped_status


@dataclass
class Endpoint:
    """One listener of a broker: what clients need to reach it."""

    host: str
    port: int
    kind: str
    broker: Broker


def _stderr_tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def _wait_ready(proc: subprocess.Popen, stderr_path: Path, ready, what: str) -> tuple[str, int]:
    """Poll the captured stderr until `ready(text)` returns (host, port)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        text = ANSI_ESCAPE_RE.sub("", stderr_path.read_text(errors="replace"))
        found = ready(text)
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with status {proc.returncode} before it was ready; stderr:\n"
                        f"{_stderr_tail(text)}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"{what} printed no ready line within {READY_TIMEOUT:.0f} s; stderr:\n"
                        f"{_stderr_tail(text)}")
        time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _write_tern_config(path: Path, limits: dict, mqtt: dict | None = None) -> None:
    lines = ["[limits]"]
    lines += [f"{key} = {int(value)}" for key, value in limits.items()]
    if mqtt:
        # A JSON string is a valid TOML basic string.
        lines += ["", "[mqtt]"] + [f"{key} = {json.dumps(str(value))}" for key, value in mqtt.items()]
    path.write_text("\n".join(lines) + "\n")


def _start_tern(tmp: Path, limits: dict | None, extra_args: list[str],
                mqtt: dict | None = None, config_text: str | None = None) -> Broker:
    if not TERN_BIN.is_file():
        pytest.fail(f"no tern binary at {TERN_BIN}: run `cargo build -p tern` or set TERN_BIN "
                    f"(or TERN_TEST_BROKER=mosquitto to validate the tests against mosquitto)")
    if config_text is not None:
        # A whole configuration: its listeners are the broker's (no --listen).
        assert not (limits or mqtt), "pass [limits]/[mqtt] inside config=, not beside it"
        expected = len(LISTENERS_TABLE_RE.findall(config_text))
        assert expected, "config= needs at least one [[listeners]] table"
        config = tmp / "tern.toml"
        config.write_text(config_text)
        argv = [str(TERN_BIN), "serve", "--in-memory", "--config", str(config), *extra_args]
        return _launch_tern(tmp, argv, expected)
    argv = [str(TERN_BIN), "serve", "--listen", f"{HOST}:0", "--in-memory"]
    if limits or mqtt:
        config = tmp / "tern.toml"
        _write_tern_config(config, limits or {}, mqtt)
        argv += ["--config", str(config)]
    argv += extra_args
    return _launch_tern(tmp, argv, 1)


def _launch_tern(tmp: Path, argv: list[str], listeners: int) -> Broker:
    """Starts tern and waits for `listeners` ready lines; the first is the Broker's port."""
    stderr_path = tmp / "tern.stderr"
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                cwd=tmp, env={**os.environ, "NO_COLOR": "1"})

    found: list[tuple[str, str, int]] = []

    def ready(text):
        text = ANSI_ESCAPE_RE.sub("", text)
        lines = [m for m in (TERN_LISTENER_RE.search(line) or TERN_READY_RE.search(line)
                             for line in text.splitlines()) if m]
        if len(lines) < listeners:
            return None
        found[:] = [(m.group(1), m.group(2), int(m.group(3))) if m.re is TERN_LISTENER_RE
                    else ("mqtt", m.group(1), int(m.group(2))) for m in lines]
        return found[0][1], found[0][2]

    host, port = _wait_ready(proc, stderr_path, ready, "tern")
    return Broker("tern", host, port, proc, stderr_path, argv,
                  listeners=[(kind, p) for kind, _, p in found])


def _start_mosquitto(tmp: Path, limits: dict | None, extra_args: list[str],
                     mqtt: dict | None = None) -> Broker:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if extra_args:
        pytest.skip(f"tern-only command-line options {extra_args} have no mosquitto mapping")
    if mqtt:
        pytest.skip(f"tern-only option [mqtt] {', '.join(sorted(mqtt))} has no mosquitto equivalent")
    limits = limits or {}
    unmapped = sorted(set(limits) - set(MOSQUITTO_LIMITS))
    if unmapped:
        pytest.skip(f"tern-only option [limits] {', '.join(unmapped)} has no mosquitto equivalent")
    # Binding a free port and releasing it races with other processes; retry a few times.
    for attempt in range(5):
        port = _free_port()
        general, listener = [], []
        for key, value in limits.items():
            target = listener if MOSQUITTO_LIMITS[key] in MOSQUITTO_LISTENER_OPTIONS else general
            target.append(f"{MOSQUITTO_LIMITS[key]} {int(value)}")
        conf = tmp / "mosquitto.conf"
        conf.write_text("\n".join([
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            *general,
            f"listener {port} {HOST}",
            "allow_anonymous true",
            *listener,
        ]) + "\n")
        stderr_path = tmp / f"mosquitto.{attempt}.stderr"
        argv = [exe, "-c", str(conf)]
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=tmp)

        def ready(text):
            return (HOST, port) if "running" in text and "listen socket" in text else None

        try:
            host, got_port = _wait_ready(proc, stderr_path, ready, "mosquitto")
        except pytest.fail.Exception:
            if "Address already in use" in stderr_path.read_text(errors="replace"):
                continue
            raise
        return Broker("mosquitto", host, got_port, proc, stderr_path, argv)
    pytest.fail("could not start mosquitto on a free port after 5 attempts")


def _stop(broker: Broker) -> str | None:
    """SIGTERM, wait, then SIGKILL. Returns a failure description, or None on a clean exit."""
    if broker.stopped_status is not None:
        if broker.stopped_status != 0:
            return (f"{broker.kind} exited with status {broker.stopped_status} after SIGTERM "
                    f"(sent by the test); stderr:\n{_stderr_tail(broker.stderr())}")
        return None
    if broker.proc.poll() is not None:
        return (f"{broker.kind} had already exited with status {broker.proc.returncode} "
                f"during the test; stderr:\n{_stderr_tail(broker.stderr())}")
    broker.proc.send_signal(signal.SIGTERM)
    try:
        code = broker.proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        broker.proc.kill()
        broker.proc.wait()
        return (f"{broker.kind} did not exit within {STOP_TIMEOUT:.0f} s of SIGTERM and was "
                f"killed; stderr:\n{_stderr_tail(broker.stderr())}")
    if code != 0:
        return (f"{broker.kind} exited with status {code} after SIGTERM; stderr:\n"
                f"{_stderr_tail(broker.stderr())}")
    return None


@pytest.fixture
def start_broker(tmp_path):
    """Factory: ``start_broker(limits={...}, mqtt={...}, extra_args=[...])`` starts a fresh
    broker.

    ``limits`` become Tern's ``[limits]`` table (through ``--config``) or the equivalent
    mosquitto options; a key mosquitto lacks skips the test for mosquitto only. ``config`` is
    a whole Tern TOML configuration instead (its ``[[listeners]]`` are the broker's, ports in
    ``Broker.listeners``); it skips the test for mosquitto. ``mqtt`` becomes
    Tern's ``[mqtt]`` table (string values) and always skips the test for mosquitto. All
    brokers started are stopped with SIGTERM at the end of the test (unless the test did so
    with ``Broker.stop()``), and an unclean exit fails it.
    """
    started: list[Broker] = []

    def start(limits: dict | None = None, extra_args: list[str] | None = None,
              mqtt: dict | None = None, config: str | None = None) -> Broker:
        if config is not None and BROKER_KIND != "tern":
            pytest.skip("a whole Tern configuration (listeners, TLS, [auth]) has no mosquitto "
                        "mapping; these tests run against Tern only")
        workdir = tmp_path / f"broker{len(started)}"
        workdir.mkdir()
        if BROKER_KIND == "tern":
            broker = _start_tern(workdir, limits, list(extra_args or []), mqtt, config)
        else:
            broker = _start_mosquitto(workdir, limits, list(extra_args or []), mqtt)
        started.append(broker)
        return broker

    yield start

    failures = [f for f in (_stop(b) for b in started) if f]
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


@pytest.fixture
def broker(start_broker) -> Broker:
    """A fresh broker with default settings."""
    return start_broker()


@pytest.fixture
def broker_kind() -> str:
    return BROKER_KIND


@pytest.fixture
def make_paho(start_broker):
    """Factory for PahoClient objects (not yet connected); all are stopped after the test.
    ``make_paho(broker_or_endpoint, client_id, username=, password=, tls={...},
    websocket_path="/mqtt", **PahoClient kwargs)``.

    Depends on start_broker so that clients are torn down before the brokers they use.
    """
    from pahoclient import PahoClient

    made: list[PahoClient] = []

    def make(broker: Broker, client_id: str = "", *, username: str | None = None,
             password: str | None = None, tls: dict | None = None,
             websocket_path: str | None = None, **kwargs) -> PahoClient:
        client = PahoClient(broker, client_id, **kwargs)
        made.append(client)
        # Transport and credentials (an Endpoint from Broker.endpoint() names the listener):
        # `tls` is passed to paho's tls_set (ca_certs, certfile, keyfile, ...), and
        # `websocket_path` switches to the websockets transport with that path.
        if username is not None:
            client.client.username_pw_set(username, password)
        if tls is not None:
            client.client.tls_set(**tls)
        if websocket_path is not None:
            client.client.transport = "websockets"
            client.client.ws_set_options(path=websocket_path)
        return client

    yield make
    for client in made:
        client.stop()


@pytest.fixture
def make_raw(start_broker):
    """Factory for rawmqtt.RawClient connections (TCP connected, nothing sent yet)."""
    from rawmqtt import RawClient

    made: list[RawClient] = []

    def make(broker: Broker, timeout: float = 5.0) -> RawClient:
        client = RawClient(broker.host, broker.port, timeout=timeout)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def make_v5(make_paho):
    """Factory for MQTT 5.0 PahoClient objects: ``make_v5(broker, client_id, **kwargs)``."""
    from pahoclient import MQTTv5

    def make(broker: Broker, client_id: str = "", **kwargs):
        return make_paho(broker, client_id, protocol=MQTTv5, **kwargs)

    return make


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """Test certificates (see certs.py), made once per run with the openssl CLI in a temporary
    directory."""
    from certs import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def cli(start_broker):
    """Factory: ``cli("mosquitto_pub", "-h", host, "-p", port, ...)`` starts a command-line
    client (test_mosquitto_clients.Proc: output read line by line, every wait bounded); all are
    killed after the test, before the brokers stop."""
    from test_mosquitto_clients import Proc

    missing = [p for p in ("mosquitto_pub", "mosquitto_sub", "stdbuf") if not shutil.which(p)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: apt-get install -y mosquitto-clients coreutils")
    procs: list = []

    def start(program: str, *args) -> "Proc":
        proc = Proc([program, *map(str, args)])
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()

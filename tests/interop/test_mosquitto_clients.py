"""mosquitto_pub and mosquitto_sub (the Eclipse Mosquitto command-line clients) against the broker.

A subscriber is known to be subscribed when its debug output (`-d`) shows `received SUBACK`;
only then does the test publish, so nothing depends on timing.
"""

from __future__ import annotations

import queue
import shutil
import signal
import subprocess
import threading
import time

import pytest

from pahoclient import unique_id

TIMEOUT = 10.0



class Proc:
    """A command-line client whose merged stdout/stderr is read line by line on a thread."""

    def __init__(self, argv: list[str]):
        self.argv = argv
        # The clients' stdout is block-buffered on a pipe, which would hide the SUBACK line until
        # exit; stdbuf makes it line-buffered.
        self.proc = subprocess.Popen(["stdbuf", "-oL", *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines: list[str] = []
        self.ended = False  # All output has been read.
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _output(self) -> str:
        return "\n".join(self.lines) or "(no output)"

    def wait_until(self, condition, timeout: float = TIMEOUT, what: str = "condition") -> None:
        """Read output lines until `condition()` holds; fail with the output on timeout, or
        if the program ends (all output read) without the condition holding."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.ended:
                raise AssertionError(f"{self.argv[0]} exited (status {self.proc.returncode}) "
                                     f"without {what}; output:\n{self._output()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.argv[0]}: no {what} within {timeout} s; output:\n"
                                     f"{self._output()}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(5)  # EOF on the pipe: the exit status follows at once.
                self.ended = True
            else:
                self.lines.append(line)

    def wait_line(self, predicate, timeout: float = TIMEOUT, what: str = "line") -> str:
        """Wait for an output line satisfying `predicate` (a callable or a substring)."""
        match = predicate if callable(predicate) else (lambda line: predicate in line)
        self.wait_until(lambda: any(match(line) for line in self.lines), timeout, what)
        return next(line for line in self.lines if match(line))

    def wait_subscribed(self) -> None:
        self.wait_line("received SUBACK", what="SUBACK")

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        """Wait for the program to exit, collecting all its output; returns the exit status."""
        self.wait_until(lambda: self.ended, timeout, what="exit")
        return self.proc.returncode

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(5)


@pytest.fixture
def run(broker):
    """Factory: ``run("mosquitto_sub", "-t", "x")`` starts a client aimed at the broker."""
    missing = [p for p in ("mosquitto_pub", "mosquitto_sub", "stdbuf") if not shutil.which(p)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: apt-get install -y mosquitto-clients coreutils")
    procs: list[Proc] = []

    def start(program: str, *args: str) -> Proc:
        proc = Proc([program, "-h", broker.host, "-p", str(broker.port), *args])
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()


def pub(run, *args: str) -> Proc:
    """Run mosquitto_pub to completion and check it succeeded."""
    proc = run("mosquitto_pub", *args)
    code = proc.wait_exit()
    assert code == 0, f"mosquitto_pub failed with status {code}:\n{proc._output()}"
    return proc


def test_mosquitto_sub_receives_message_from_mosquitto_pub(run):
    """The basic command-line round trip: mosquitto_sub -C 1 prints the message and exits 0."""
    sub = run("mosquitto_sub", "-d", "-C", "1", "-W", "10", "-t", "cli/t", "-v")
    sub.wait_subscribed()
    pub(run, "-t", "cli/t", "-m", "hello from mosquitto_pub")
    sub.wait_line(lambda line: line == "cli/t hello from mosquitto_pub", what="the message")
    assert sub.wait_exit() == 0


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mosquitto_pub_and_sub_deliver_at_requested_qos(run, qos):
    """A message published with `-q N` to a subscriber with `-q N` arrives at QoS N
    [MQTT-3.3.5-1], and both QoS flows complete (both programs exit 0)."""
    sub = run("mosquitto_sub", "-d", "-C", "1", "-W", "10", "-q", str(qos), "-t", "cli/qos", "-v")
    sub.wait_subscribed()
    assert sub.wait_line("Subscribed (mid").endswith(f": {qos}"), "granted QoS differs"
    publisher = pub(run, "-d", "-q", str(qos), "-t", "cli/qos", "-m", f"at qos {qos}")
    if qos == 1:
        publisher.wait_line("received PUBACK", what="PUBACK")
    elif qos == 2:
        publisher.wait_line("received PUBCOMP", what="PUBCOMP")
    line = sub.wait_line("received PUBLISH", what="PUBLISH")
    assert f"q{qos}," in line, line
    sub.wait_line(lambda l: l == f"cli/qos at qos {qos}", what="the message")
    assert sub.wait_exit() == 0


def test_retained_message_from_mosquitto_pub_reaches_later_mosquitto_sub(run):
    """[MQTT-3.3.1-6] A message published with `-r` is stored and sent, with the retain flag
    [MQTT-3.3.1-8], to a subscriber that arrives later."""
    pub(run, "-r", "-q", "1", "-t", "cli/retained", "-m", "kept")
    sub = run("mosquitto_sub", "-C", "1", "-W", "10", "-t", "cli/retained", "-F", "%t %r %p")
    sub.wait_line(lambda line: line == "cli/retained 1 kept", what="the retained message")
    assert sub.wait_exit() == 0


def test_will_of_killed_mosquitto_sub_is_delivered(run):
    """[MQTT-3.1.2-8] A mosquitto_sub killed with SIGKILL (no DISCONNECT) has its will published
    to another mosquitto_sub."""
    watcher = run("mosquitto_sub", "-d", "-C", "1", "-W", "10", "-t", "cli/will", "-v")
    watcher.wait_subscribed()
    willer = run("mosquitto_sub", "-d", "-t", "cli/ignored", "-i", unique_id("clwill"),
                 "--will-topic", "cli/will", "--will-payload", "willer died", "--will-qos", "1")
    willer.wait_subscribed()
    willer.kill(signal.SIGKILL)
    watcher.wait_line(lambda line: line == "cli/will willer died", what="the will")
    assert watcher.wait_exit() == 0


def test_persistent_session_of_mosquitto_sub_receives_message_published_while_offline(run):
    """[MQTT-3.1.2-5] `mosquitto_sub -c -i ID -q 1` leaves a session behind; a QoS 1 message
    published while it is away is delivered when it comes back with the same id."""
    cid = unique_id("clpersist")
    first = run("mosquitto_sub", "-c", "-i", cid, "-q", "1", "-t", "cli/persist", "-E")
    assert first.wait_exit() == 0, first._output()
    pub(run, "-q", "1", "-t", "cli/persist", "-m", "queued while offline")
    again = run("mosquitto_sub", "-c", "-i", cid, "-q", "1", "-t", "cli/persist",
                "-C", "1", "-W", "10", "-v")
    again.wait_line(lambda line: line == "cli/persist queued while offline",
                    what="the queued message")
    assert again.wait_exit() == 0


def test_second_mosquitto_sub_with_same_id_disconnects_the_first(run):
    """[MQTT-3.1.4-2] A second client with the same id makes the server disconnect the first.
    mosquitto_sub notices, and (over 3.1.1) reconnects: its output shows a second CONNECT, or it
    exits."""
    cid = unique_id("cltakeover")
    first = run("mosquitto_sub", "-d", "-i", cid, "-t", "cli/takeover")
    first.wait_subscribed()
    connects_before = sum("sending CONNECT" in line for line in first.lines)
    second = run("mosquitto_sub", "-d", "-i", cid, "-t", "cli/takeover")
    second.wait_subscribed()

    first.wait_until(
        lambda: first.proc.poll() is not None
        or sum("sending CONNECT" in line for line in first.lines) > connects_before,
        what="sign of the disconnect (a reconnect or an exit)")
    # Stop them before they take the id back and forth for the rest of the test.
    first.kill()
    second.kill()


def test_mosquitto_pub_lines_arrive_in_order_at_qos1(run):
    """[MQTT-4.6.0-6] `mosquitto_pub -l` sends each stdin line as a message; 50 QoS 1 messages
    arrive at mosquitto_sub in order."""
    count = 50
    sub = run("mosquitto_sub", "-d", "-C", str(count), "-W", "10", "-q", "1", "-t", "cli/lines")
    sub.wait_subscribed()
    publisher = run("mosquitto_pub", "-l", "-q", "1", "-t", "cli/lines")
    publisher.proc.stdin.write("".join(f"line {i}\n" for i in range(count)))
    publisher.proc.stdin.close()
    assert publisher.wait_exit() == 0, publisher._output()
    assert sub.wait_exit() == 0, sub._output()
    messages = [line for line in sub.lines if line.startswith("line ")]
    assert messages == [f"line {i}" for i in range(count)]

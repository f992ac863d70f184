"""Resource limits a user would notice: a slow or absent consumer must not grow the broker
without bound nor stall publishers ("every queue has a budget", DESIGN.md principle 3).

The thresholds here are Tern's targets, not spec requirements; each is named in capitals below.
The second test needs a configuration file (`[limits]`, key names provisional) and so is one of
the few tests in this suite that depend on Tern's config format.
"""

from __future__ import annotations

import threading
import time

import rawmqtt
from pahoclient import unique_id

# -- Tern-specific thresholds (not from the spec) ---------------------------------------------
# Enough QoS 0 traffic (about 117 MiB of payload) that a broker which buffered all of it for a
# subscriber that never reads would blow well past RSS_GROWTH_LIMIT_KIB.
SLOW_CONSUMER_MESSAGES = 120_000
SLOW_CONSUMER_PAYLOAD = 1024
RSS_GROWTH_LIMIT_KIB = 64 * 1024
# The publisher must get its final PUBACK within this long: a slow subscriber may not block it.
PUBLISHER_DEADLINE = 45.0

# -- Offline queue limit (needs the [limits] table) -------------------------------------------
MAX_QUEUED = 10
MAX_INFLIGHT = 5
OFFLINE_PUBLISHED = 100


def test_slow_consumer_does_not_grow_broker_memory_or_block_publisher(broker, make_raw, make_paho):
    """A QoS 1 subscriber that stops reading its socket while about 117 MiB of QoS 0 messages
    are published to it: the broker's RSS grows by less than RSS_GROWTH_LIMIT_KIB, the publisher
    is acknowledged within PUBLISHER_DEADLINE (it is not held back by the slow consumer), and
    other clients are still served afterwards."""
    stuck = make_raw(broker)
    assert stuck.connect(unique_id("stuck")).return_code == 0
    assert stuck.subscribe([("slow/#", 1)]) == [1]
    # From here on `stuck` never reads: the broker's writes to it fill the socket buffers.

    rss_before = broker.rss_kib()
    peak = [rss_before]
    sampling = threading.Event()

    def sample():
        while not sampling.wait(0.05):
            try:
                peak[0] = max(peak[0], broker.rss_kib())
            except (OSError, AssertionError):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    publisher = make_raw(broker, timeout=PUBLISHER_DEADLINE)
    assert publisher.connect(unique_id("flood")).return_code == 0
    packet = rawmqtt.encode_publish("slow/flood", b"x" * SLOW_CONSUMER_PAYLOAD, qos=0)
    batch = packet * 100
    start = time.monotonic()
    try:
        for _ in range(SLOW_CONSUMER_MESSAGES // 100):
            publisher.send(batch)  # Times out (socket timeout) if the broker stops reading us.
        # The broker handles one connection's packets in order, so this PUBACK means every QoS 0
        # message before it has been processed.
        publisher.publish("slow/flood", b"last", qos=1, timeout=PUBLISHER_DEADLINE)
    finally:
        sampling.set()
        sampler.join(2)
    elapsed = time.monotonic() - start
    growth = peak[0] - rss_before
    print(f"{broker.kind}: published {SLOW_CONSUMER_MESSAGES} in {elapsed:.1f} s, "
          f"RSS {rss_before} KiB -> peak {peak[0]} KiB (+{growth} KiB)")
    assert elapsed < PUBLISHER_DEADLINE, f"publisher took {elapsed:.1f} s"
    assert growth < RSS_GROWTH_LIMIT_KIB, (
        f"broker RSS grew by {growth // 1024} MiB for a consumer that never reads "
        f"(limit {RSS_GROWTH_LIMIT_KIB // 1024} MiB)")

    # The broker still serves everyone else.
    other = make_paho(broker, unique_id("other")).connect()
    other.subscribe("slow/other", 1)
    other.publish("slow/other", b"still alive", qos=1)
    assert other.get_message().payload == b"still alive"


def test_offline_queue_is_capped_by_max_queued_messages(start_broker, make_paho):
    """TERN CONFIG: `[limits] max_queued_messages = 10`, `max_inflight_messages = 5`
    (mosquitto: the options of the same names). An offline persistent QoS 1 subscriber gets at
    most queued + in-flight (15) of the 100 messages published while it was away, in publish
    order, and its session keeps working afterwards."""
    broker = start_broker(limits={"max_queued_messages": MAX_QUEUED,
                                  "max_inflight_messages": MAX_INFLIGHT})
    cid = unique_id("capped")
    sub = make_paho(broker, cid, clean_session=False).connect()
    sub.subscribe("capped/t", 1)
    sub.disconnect()

    publisher = make_paho(broker, unique_id("cappub")).connect()
    for i in range(OFFLINE_PUBLISHED):
        publisher.publish("capped/t", str(i).encode(), qos=1)

    back = make_paho(broker, cid, clean_session=False).connect()
    assert back.session_present
    got = [back.get_message()] + back.drain(1.0)
    numbers = [int(m.payload) for m in got]
    print(f"{broker.kind}: {len(numbers)} of {OFFLINE_PUBLISHED} queued messages delivered: "
          f"{numbers}")
    assert len(numbers) <= MAX_QUEUED + MAX_INFLIGHT, (
        f"{len(numbers)} messages delivered, more than max_queued_messages + "
        f"max_inflight_messages = {MAX_QUEUED + MAX_INFLIGHT}")
    assert numbers == sorted(set(numbers)), "queued messages out of order or duplicated"

    publisher.publish("capped/t", b"after reconnect", qos=1)
    assert back.get_message().payload == b"after reconnect"

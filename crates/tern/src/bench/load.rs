//! The load loops: a publisher that batches PUBLISH packets into large writes within its
//! in-flight window, and a subscriber that acknowledges and checks every message. Each runs
//! on one connection in one task, reading and writing the socket halves with `select!`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::BytesMut;
use hdrhistogram::Histogram;
use tern_codec::{encode, Packet, PacketId, Properties, ProtocolVersion, PubResponse, Publish, QoS, TopicName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{sleep_until, Instant};

use super::conn::{next_buffered, Conn, Pinger, BATCH_BYTES};
use super::payload::{Clock, Header};
use super::stats::{latency_histogram, Counters, Delivery};

/// After the load stops, how long acknowledgements and deliveries in flight may take, unless
/// `--drain` says otherwise.
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How often a subscriber looks whether the publishers are done.
const SUBSCRIBER_TICK: Duration = Duration::from_millis(50);

/// What every connection task of one run shares. Owned by the run (behind an `Arc`); the
/// atomics are the only mutable parts.
pub struct Run {
    pub clock: Clock,
    pub counters: Counters,
    /// No new publish starts after this.
    pub deadline: Instant,
    /// Every loop ends by this: `deadline` plus `drain`.
    pub hard_deadline: Instant,
    /// How long subscribers wait for messages in flight once the publishers are done.
    pub drain: Duration,
    /// Whether publishers of this process feed the subscribers (`pubsub`).
    pub local_publishers: bool,
    /// Publishers still sending; subscribers drain once it reaches 0.
    pub publishers_running: AtomicU32,
    /// Messages sent by each publisher (by index), once it has finished.
    pub published_by: Vec<AtomicU64>,
    /// Distinct messages received by the members of a shared subscription, together.
    pub shared_unique: AtomicU64,
}

impl Run {
    /// Messages the publishers in `sources` sent, counting those that have finished.
    fn published_from(&self, sources: &[u32]) -> u64 {
        sources
            .iter()
            .filter_map(|&index| self.published_by.get(usize::try_from(index).ok()?))
            .map(|count| count.load(Ordering::Acquire))
            .sum()
    }
}

/// How one publisher sends.
#[derive(Debug, Clone)]
pub struct PublisherPlan {
    pub index: u32,
    pub topic: TopicName,
    pub qos: QoS,
    pub size: usize,
    pub interval: Option<Duration>,
    pub limit: Option<u64>,
    pub inflight: u16,
}

/// Packet ids in use by unacknowledged publishes, each with the time it was sent.
struct PacketIds {
    /// Nanoseconds on the run's clock when the publish under this id was encoded; `None` if
    /// the id is free.
    sent_at: Vec<Option<u64>>,
    next: u16,
    count: usize,
}

impl PacketIds {
    fn new() -> PacketIds {
        PacketIds { sent_at: vec![None; usize::from(u16::MAX) + 1], next: 1, count: 0 }
    }

    /// A free id for a publish sent at `now_nanos`; the caller keeps `count` below 65,535
    /// through its window.
    fn take(&mut self, now_nanos: u64) -> PacketId {
        while self.sent_at[usize::from(self.next)].is_some() || self.next == 0 {
            self.next = self.next.wrapping_add(1);
        }
        let id = self.next;
        self.sent_at[usize::from(id)] = Some(now_nanos);
        self.count += 1;
        self.next = id.wrapping_add(1);
        PacketId::new(id).expect("id 0 is skipped")
    }

    /// Frees `id`, returning when its publish was sent; `None` if it was not in use.
    fn release(&mut self, id: PacketId) -> Option<u64> {
        let sent_at = self.sent_at[usize::from(id.get())].take();
        self.count -= usize::from(sent_at.is_some());
        sent_at
    }
}

/// What one publisher did: messages sent, and the time from each QoS 1/2 publish to its
/// PUBACK or PUBCOMP.
pub struct Published {
    pub sent: u64,
    pub ack_latency: Histogram<u64>,
}

/// Publishes until the deadline or the limit, then waits (within the grace) for the
/// acknowledgements still due. Returns what was sent and acknowledged, and how it ended.
pub async fn publish(mut conn: Conn, plan: &PublisherPlan, run: &Run) -> (Published, anyhow::Result<()>) {
    let mut published = Published { sent: 0, ack_latency: latency_histogram() };
    let result = publish_loop(&mut conn, plan, run, &mut published).await;
    let closed = conn.close().await;
    (published, result.and(closed))
}

async fn publish_loop(
    conn: &mut Conn,
    plan: &PublisherPlan,
    run: &Run,
    published: &mut Published,
) -> anyhow::Result<()> {
    let Published { sent, ack_latency } = published;
    let window = match plan.qos {
        QoS::AtMostOnce => usize::MAX,
        _ => usize::from(plan.inflight.min(conn.receive_maximum)),
    };
    let version = conn.version;
    let mut ids = PacketIds::new();
    let start = Instant::now();
    let mut pinger = Pinger::new(conn.keep_alive);
    let Conn { stream, read_buf, write_buf, .. } = conn;
    let (mut reader, mut writer) = tokio::io::split(stream);
    loop {
        let now = Instant::now();
        let sending = now < run.deadline && plan.limit.is_none_or(|limit| *sent < limit);
        let mut wake = run.hard_deadline;
        if sending {
            wake = run.deadline;
            let due = match plan.interval {
                None => u64::MAX,
                Some(interval) => u64::try_from((now - start).as_nanos() / interval.as_nanos()).unwrap_or(u64::MAX) + 1,
            };
            let limit = plan.limit.unwrap_or(u64::MAX).min(due);
            let before = *sent;
            while write_buf.len() < BATCH_BYTES && ids.count < window && *sent < limit {
                let sent_at_nanos = run.clock.now_nanos();
                let packet_id = (plan.qos != QoS::AtMostOnce).then(|| ids.take(sent_at_nanos));
                let header = Header { publisher: plan.index, sequence: *sent, sent_at_nanos };
                let publish = Publish {
                    dup: false,
                    qos: plan.qos,
                    retain: false,
                    topic: plan.topic.clone(),
                    packet_id,
                    payload: header.payload(plan.size),
                    properties: Properties::default(),
                };
                encode(&Packet::Publish(publish), version, write_buf).context("cannot encode PUBLISH")?;
                *sent += 1;
            }
            Counters::add(&run.counters.sent, *sent - before);
            if *sent > before {
                pinger.sent(now);
            }
            if let Some(interval) = plan.interval.filter(|_| *sent >= due) {
                let next = start
                    + Duration::from_nanos(
                        u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX).saturating_mul(*sent),
                    );
                wake = wake.min(next);
            }
        } else if write_buf.is_empty() && ids.count == 0 {
            return Ok(());
        }
        if let Some(ping) = pinger.poll(now, write_buf, version)? {
            wake = wake.min(ping);
        }
        if now >= run.hard_deadline {
            bail!(
                "run over with {} bytes unwritten (the broker stopped reading) and {} publishes unacknowledged",
                write_buf.len(),
                ids.count
            );
        }
        tokio::select! {
            read = reader.read_buf(read_buf) => {
                if read.context("reading from the broker")? == 0 {
                    bail!("connection closed by the broker");
                }
                while let Some(packet) = next_buffered(read_buf, version)? {
                    handle_ack(packet, &mut ids, ack_latency, version, write_buf, run)?;
                }
            }
            written = writer.write_buf(write_buf), if !write_buf.is_empty() => {
                written.context("writing to the broker")?;
            }
            () = sleep_until(wake) => {}
        }
    }
}

/// Handles what the broker sends a publisher: PUBACK, PUBREC (answered with PUBREL), PUBCOMP.
fn handle_ack(
    packet: Packet,
    ids: &mut PacketIds,
    ack_latency: &mut Histogram<u64>,
    version: ProtocolVersion,
    write_buf: &mut BytesMut,
    run: &Run,
) -> anyhow::Result<()> {
    match packet {
        Packet::PubAck(ack) | Packet::PubComp(ack) => {
            if ack.reason_code >= 0x80 {
                Counters::add(&run.counters.errors, 1);
            }
            if let Some(sent_at) = ids.release(ack.packet_id) {
                Counters::add(&run.counters.acked, 1);
                ack_latency.saturating_record(run.clock.now_nanos().saturating_sub(sent_at).max(1));
            }
        }
        Packet::PubRec(rec) if rec.reason_code >= 0x80 => {
            Counters::add(&run.counters.errors, 1);
            ids.release(rec.packet_id);
        }
        Packet::PubRec(rec) => encode(&Packet::PubRel(PubResponse::new(rec.packet_id)), version, write_buf)?,
        Packet::Disconnect(disconnect) => bail!("disconnected by the broker (reason {:#04x})", disconnect.reason_code),
        Packet::PingResp | Packet::Publish(_) => {}
        other => bail!("unexpected {} from the broker", other.name()),
    }
    Ok(())
}

/// When a subscriber stops.
#[derive(Debug, Clone)]
pub struct SubscriberPlan {
    /// Distinct messages to wait for when no publishers run in this process.
    pub limit: Option<u64>,
    /// The local publishers whose topics its filter matches.
    pub sources: Vec<u32>,
    /// Whether it is one member of a shared subscription (it then waits for the group).
    pub shared: bool,
}

/// Receives, acknowledges and checks messages until the run is over. Returns what arrived,
/// and how it ended.
pub async fn subscribe(mut conn: Conn, plan: &SubscriberPlan, run: &Run) -> (Delivery, anyhow::Result<()>) {
    let mut delivery = Delivery::default();
    let result = subscribe_loop(&mut conn, plan, run, &mut delivery).await;
    let closed = conn.close().await;
    (delivery, result.and(closed))
}

async fn subscribe_loop(
    conn: &mut Conn,
    plan: &SubscriberPlan,
    run: &Run,
    delivery: &mut Delivery,
) -> anyhow::Result<()> {
    let version = conn.version;
    let mut pinger = Pinger::new(conn.keep_alive);
    let Conn { stream, read_buf, write_buf, .. } = conn;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut drain_until = None;
    loop {
        let now = Instant::now();
        if now >= run.hard_deadline {
            return Ok(());
        }
        if run.local_publishers {
            if run.publishers_running.load(Ordering::Acquire) == 0 {
                let until = *drain_until.get_or_insert(now + run.drain);
                let have = if plan.shared { run.shared_unique.load(Ordering::Acquire) } else { delivery.unique() };
                if have >= run.published_from(&plan.sources) || now >= until {
                    return Ok(());
                }
            }
        } else if now >= run.deadline || plan.limit.is_some_and(|limit| delivery.unique() >= limit) {
            return Ok(());
        }
        if !write_buf.is_empty() {
            pinger.sent(now);
        }
        pinger.poll(now, write_buf, version)?;
        tokio::select! {
            read = reader.read_buf(read_buf) => {
                if read.context("reading from the broker")? == 0 {
                    bail!("connection closed by the broker");
                }
                let (before, unique_before) = (delivery.received, delivery.unique());
                while let Some(packet) = next_buffered(read_buf, version)? {
                    receive(packet, version, write_buf, run, delivery)?;
                }
                Counters::add(&run.counters.received, delivery.received - before);
                if plan.shared {
                    run.shared_unique.fetch_add(delivery.unique() - unique_before, Ordering::AcqRel);
                }
            }
            written = writer.write_buf(write_buf), if !write_buf.is_empty() => {
                written.context("writing to the broker")?;
            }
            () = sleep_until(now + SUBSCRIBER_TICK) => {}
        }
    }
}

/// Records a delivery and queues its acknowledgement; answers PUBREL with PUBCOMP.
fn receive(
    packet: Packet,
    version: ProtocolVersion,
    write_buf: &mut BytesMut,
    run: &Run,
    delivery: &mut Delivery,
) -> anyhow::Result<()> {
    match packet {
        Packet::Publish(publish) => {
            delivery.record(&publish.payload, run.clock.now_nanos());
            let ack = match (publish.qos, publish.packet_id) {
                (QoS::AtLeastOnce, Some(id)) => Packet::PubAck(PubResponse::new(id)),
                (QoS::ExactlyOnce, Some(id)) => Packet::PubRec(PubResponse::new(id)),
                (QoS::AtMostOnce, _) => return Ok(()),
                (_, None) => bail!("QoS {} PUBLISH without packet id", publish.qos as u8),
            };
            encode(&ack, version, write_buf)?;
        }
        Packet::PubRel(rel) => encode(&Packet::PubComp(PubResponse::new(rel.packet_id)), version, write_buf)?,
        Packet::Disconnect(disconnect) => bail!("disconnected by the broker (reason {:#04x})", disconnect.reason_code),
        Packet::PingResp => {}
        other => bail!("unexpected {} from the broker", other.name()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_ids_skip_those_in_use_and_zero() {
        let mut ids = PacketIds::new();
        let first = ids.take(10);
        assert_eq!(first.get(), 1);
        ids.next = u16::MAX;
        assert_eq!(ids.take(20).get(), u16::MAX);
        // Wraps past 0, and past 1 which is still in use.
        assert_eq!(ids.take(30).get(), 2);
        assert_eq!(ids.release(first), Some(10));
        assert_eq!(ids.release(first), None);
        assert_eq!(ids.count, 2);
    }
}

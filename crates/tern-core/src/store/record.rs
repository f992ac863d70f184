//! The records the broker keeps in a store, and their encoding. Backends store them as opaque
//! bytes; a record that does not decode is reported as [`StoreError::Corrupt`].
//!
//! A message is kept as a 5.0 PUBLISH packet (tern-codec's own encoding) behind a small
//! header; times are kept as Unix milliseconds, so an expired message stays expired across a
//! restart. Every record starts with a format version byte.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tern_codec::{
    decode, encode, DecodeOptions, Packet, PacketId, ProtocolVersion, Publish, QoS, RetainHandling,
    SubscriptionOptions, TopicFilter,
};

use super::StoreError;
use crate::client_id::ClientId;
use crate::message::{Delivery, Message};
use crate::subscriptions::Subscription;

const FORMAT: u8 = 1;

/// A monotonic instant and the wall-clock time at that instant, to turn one into the other.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub instant: Instant,
    pub wall: SystemTime,
}

impl Clock {
    pub fn now() -> Clock {
        Clock { instant: Instant::now(), wall: SystemTime::now() }
    }

    fn to_unix_ms(self, at: Instant) -> u64 {
        let wall = if at >= self.instant {
            self.wall + (at - self.instant)
        } else {
            self.wall.checked_sub(self.instant - at).unwrap_or(UNIX_EPOCH)
        };
        // 0 means "none" in records, so a time at the epoch itself is kept as 1 ms.
        u64::try_from(wall.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX).max(1)
    }

    fn instant_of_unix_ms(self, ms: u64) -> Instant {
        let wall = UNIX_EPOCH + Duration::from_millis(ms);
        match wall.duration_since(self.wall) {
            Ok(ahead) => self.instant + ahead,
            Err(behind) => self.instant.checked_sub(behind.duration()).unwrap_or(self.instant),
        }
    }
}

/// What is kept of a persistent session besides its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub client_id: ClientId,
    /// Seconds the session outlives its connection ([`crate::SESSION_NEVER_EXPIRES`] for a
    /// 3.x persistent session).
    pub expiry_interval: u32,
    /// When the offline session ends; None while connected or when it never expires.
    pub expires_at: Option<Instant>,
    pub subscriptions: Vec<(TopicFilter, Subscription)>,
    /// The will of the connected client, published after a restart because the connection
    /// ended without DISCONNECT; or a delayed will waiting to be published.
    pub will: Option<StoredWill>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWill {
    pub message: Message,
    /// 5.0 Will Delay Interval, counted from the restart (or from the disconnection when
    /// `due` is set).
    pub delay_secs: u32,
    /// When a delayed will of an offline session falls due.
    pub due: Option<Instant>,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} record is truncated or malformed"))
}

struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl Reader<'_> {
    fn need(&self, n: usize) -> Result<(), StoreError> {
        if self.buf.remaining() < n {
            return Err(corrupt(self.what));
        }
        Ok(())
    }
    fn u8(&mut self) -> Result<u8, StoreError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }
    fn u16(&mut self) -> Result<u16, StoreError> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }
    fn u32(&mut self) -> Result<u32, StoreError> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }
    fn u64(&mut self) -> Result<u64, StoreError> {
        self.need(8)?;
        Ok(self.buf.get_u64())
    }
    fn bytes(&mut self, n: usize) -> Result<&[u8], StoreError> {
        self.need(n)?;
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn format(&mut self) -> Result<(), StoreError> {
        match self.u8()? {
            FORMAT => Ok(()),
            other => Err(StoreError::Corrupt(format!("{} record has unknown format {other}", self.what))),
        }
    }
}

fn put_message(buf: &mut BytesMut, message: &Message, subscription_identifiers: &[u32], clock: Clock) {
    buf.put_u64(message.expires_at.map_or(0, |at| clock.to_unix_ms(at)));
    let mut properties = message.properties.clone();
    properties.subscription_identifiers = subscription_identifiers.to_vec();
    let publish = Publish {
        dup: false,
        qos: message.qos,
        retain: message.retain,
        topic: message.topic.clone(),
        packet_id: (message.qos != QoS::AtMostOnce).then(|| PacketId::new(1).expect("1 is a valid packet id")),
        payload: message.payload.clone(),
        properties,
    };
    // A message the broker accepted always encodes: it came in as a valid PUBLISH.
    if encode(&Packet::Publish(publish), ProtocolVersion::V5, buf).is_err() {
        tracing::error!(topic = %message.topic, "A message could not be encoded for the store");
    }
}

fn read_message(reader: &mut Reader<'_>, clock: Clock) -> Result<(Message, Vec<u32>), StoreError> {
    let expires_ms = reader.u64()?;
    let mut packet = BytesMut::from(reader.buf);
    let options = DecodeOptions { version: ProtocolVersion::V5, max_packet_size: usize::MAX };
    let before = packet.len();
    let Ok(Some(Packet::Publish(mut publish))) = decode(&mut packet, &options) else {
        return Err(corrupt(reader.what));
    };
    reader.buf = &reader.buf[before - packet.len()..];
    let subscription_identifiers = std::mem::take(&mut publish.properties.subscription_identifiers);
    let message = Message {
        topic: publish.topic,
        payload: publish.payload,
        qos: publish.qos,
        retain: publish.retain,
        properties: publish.properties,
        expires_at: (expires_ms != 0).then(|| clock.instant_of_unix_ms(expires_ms)),
        origin: None,
    };
    Ok((message, subscription_identifiers))
}

/// A retained message's record.
pub fn encode_message(message: &Message, clock: Clock) -> Bytes {
    let mut buf = BytesMut::with_capacity(message.payload.len() + message.topic.as_str().len() + 32);
    buf.put_u8(FORMAT);
    put_message(&mut buf, message, &[], clock);
    buf.freeze()
}

pub fn decode_message(record: &[u8], clock: Clock) -> Result<Message, StoreError> {
    let mut reader = Reader { buf: record, what: "message" };
    reader.format()?;
    Ok(read_message(&mut reader, clock)?.0)
}

/// A queued delivery's record: the message and what is particular to this subscriber.
pub fn encode_delivery(delivery: &Delivery, clock: Clock) -> Bytes {
    let message = &delivery.message;
    let mut buf = BytesMut::with_capacity(message.payload.len() + message.topic.as_str().len() + 40);
    buf.put_u8(FORMAT);
    buf.put_u8(delivery.qos as u8);
    buf.put_u8(u8::from(delivery.retain));
    put_message(&mut buf, message, &delivery.subscription_identifiers, clock);
    buf.freeze()
}

/// The delivery of a queued record. Shared-subscription deliveries come back as ordinary
/// deliveries to the session that held them.
pub fn decode_delivery(record: &[u8], clock: Clock) -> Result<Delivery, StoreError> {
    let mut reader = Reader { buf: record, what: "queued message" };
    reader.format()?;
    let qos = QoS::from_u8(reader.u8()?).ok_or_else(|| corrupt("queued message"))?;
    let retain = reader.u8()? != 0;
    let (message, subscription_identifiers) = read_message(&mut reader, clock)?;
    Ok(Delivery {
        message: std::sync::Arc::new(message),
        qos,
        retain,
        subscription_identifiers,
        shared_group: None,
        stored: None,
    })
}

fn options_byte(options: &SubscriptionOptions) -> u8 {
    options.qos as u8
        | u8::from(options.no_local) << 2
        | u8::from(options.retain_as_published) << 3
        | (options.retain_handling as u8) << 4
}

fn options_of(byte: u8) -> Result<SubscriptionOptions, StoreError> {
    let qos = QoS::from_u8(byte & 0b11).ok_or_else(|| corrupt("session"))?;
    let retain_handling = match (byte >> 4) & 0b11 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        _ => return Err(corrupt("session")),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & 0b100 != 0,
        retain_as_published: byte & 0b1000 != 0,
        retain_handling,
    })
}

pub fn encode_session(session: &StoredSession, clock: Clock) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_u8(FORMAT);
    buf.put_u32(session.expiry_interval);
    buf.put_u64(session.expires_at.map_or(0, |at| clock.to_unix_ms(at)));
    buf.put_u32(u32::try_from(session.subscriptions.len()).unwrap_or(u32::MAX));
    for (filter, subscription) in &session.subscriptions {
        let filter = filter.as_str().as_bytes();
        buf.put_u16(u16::try_from(filter.len()).unwrap_or(u16::MAX));
        buf.put_slice(filter);
        buf.put_u8(options_byte(&subscription.options));
        buf.put_u32(subscription.identifier.unwrap_or(0));
    }
    match &session.will {
        None => buf.put_u8(0),
        Some(will) => {
            buf.put_u8(1);
            buf.put_u32(will.delay_secs);
            buf.put_u64(will.due.map_or(0, |at| clock.to_unix_ms(at)));
            put_message(&mut buf, &will.message, &[], clock);
        }
    }
    buf.freeze()
}

pub fn decode_session(client_id: &ClientId, record: &[u8], clock: Clock) -> Result<StoredSession, StoreError> {
    let mut reader = Reader { buf: record, what: "session" };
    reader.format()?;
    let expiry_interval = reader.u32()?;
    let expires_ms = reader.u64()?;
    let count = reader.u32()?;
    let mut subscriptions = Vec::new();
    for _ in 0..count {
        let len = usize::from(reader.u16()?);
        let filter = std::str::from_utf8(reader.bytes(len)?).map_err(|_| corrupt("session"))?;
        let filter = TopicFilter::new(filter).map_err(|_| corrupt("session"))?;
        let options = options_of(reader.u8()?)?;
        let identifier = Some(reader.u32()?).filter(|id| *id != 0);
        subscriptions.push((filter, Subscription { options, identifier }));
    }
    let will = match reader.u8()? {
        0 => None,
        _ => {
            let delay_secs = reader.u32()?;
            let due_ms = reader.u64()?;
            let (mut message, _) = read_message(&mut reader, clock)?;
            message.origin = Some(client_id.clone());
            Some(StoredWill { message, delay_secs, due: (due_ms != 0).then(|| clock.instant_of_unix_ms(due_ms)) })
        }
    };
    Ok(StoredSession {
        client_id: client_id.clone(),
        expiry_interval,
        expires_at: (expires_ms != 0).then(|| clock.instant_of_unix_ms(expires_ms)),
        subscriptions,
        will,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tern_codec::{Properties, TopicName};

    use super::*;

    fn message(expires_at: Option<Instant>) -> Message {
        Message {
            topic: TopicName::new("a/b").unwrap(),
            payload: Bytes::from_static(b"payload"),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: Properties {
                content_type: Some("text/plain".into()),
                user_properties: vec![("k".into(), "v".into())],
                ..Properties::default()
            },
            expires_at,
            origin: None,
        }
    }

    /// Millisecond precision is what a record keeps.
    fn close(a: Option<Instant>, b: Option<Instant>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => a.max(b) - a.min(b) <= Duration::from_millis(1),
            (a, b) => a == b,
        }
    }

    #[test]
    fn message_round_trips_with_its_expiry() {
        let clock = Clock::now();
        let original = message(Some(clock.instant + Duration::from_secs(30)));
        let back = decode_message(&encode_message(&original, clock), clock).unwrap();
        assert!(close(back.expires_at, original.expires_at));
        assert_eq!(Message { expires_at: original.expires_at, ..back }, original);
    }

    #[test]
    fn expiry_is_wall_clock_time_so_it_survives_a_restart() {
        let clock = Clock::now();
        let record = encode_message(&message(Some(clock.instant + Duration::from_secs(10))), clock);
        // A later process, 60 s on: the message expired 50 s before it started.
        let later = Clock { instant: Instant::now(), wall: clock.wall + Duration::from_secs(60) };
        let back = decode_message(&record, later).unwrap();
        assert!(back.is_expired(later.instant));
    }

    #[test]
    fn delivery_keeps_its_own_qos_retain_and_subscription_ids() {
        let clock = Clock::now();
        let delivery = Delivery {
            message: Arc::new(message(None)),
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_identifiers: vec![3, 70000],
            shared_group: None,
            stored: None,
        };
        let back = decode_delivery(&encode_delivery(&delivery, clock), clock).unwrap();
        assert_eq!(back.qos, QoS::AtLeastOnce);
        assert!(!back.retain);
        assert_eq!(back.subscription_identifiers, vec![3, 70000]);
        assert_eq!(*back.message, message(None));
    }

    #[test]
    fn session_round_trips_with_subscriptions_and_will() {
        let clock = Clock::now();
        let options = SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::DoNotSend,
        };
        let client_id = ClientId::new("c1");
        let mut will = message(None);
        will.origin = Some(client_id.clone());
        let session = StoredSession {
            client_id: client_id.clone(),
            expiry_interval: 3600,
            expires_at: Some(clock.instant + Duration::from_secs(5)),
            subscriptions: vec![(TopicFilter::new("a/+").unwrap(), Subscription { options, identifier: Some(9) })],
            will: Some(StoredWill { message: will, delay_secs: 30, due: None }),
        };
        let back = decode_session(&client_id, &encode_session(&session, clock), clock).unwrap();
        assert!(close(back.expires_at, session.expires_at));
        assert_eq!(StoredSession { expires_at: session.expires_at, ..back }, session);
    }

    #[test]
    fn damaged_records_are_corrupt_not_panics() {
        let clock = Clock::now();
        let record = encode_session(
            &StoredSession {
                client_id: ClientId::new("c"),
                expiry_interval: 1,
                expires_at: None,
                subscriptions: vec![],
                will: Some(StoredWill { message: message(None), delay_secs: 0, due: None }),
            },
            clock,
        );
        for len in 0..record.len() {
            assert!(matches!(decode_session(&ClientId::new("c"), &record[..len], clock), Err(StoreError::Corrupt(_))));
        }
        let mut wrong_format = record.to_vec();
        wrong_format[0] = 99;
        assert!(decode_session(&ClientId::new("c"), &wrong_format, clock).is_err());
        assert!(decode_delivery(b"\x01\x07", clock).is_err());
    }
}

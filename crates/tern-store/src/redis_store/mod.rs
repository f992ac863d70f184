//! The Redis store: every write goes to one Redis server, so brokers of a cluster (or a
//! broker restarted on another machine) share sessions, queues and retained messages.
//!
//! Writes are queued and sent by a writer thread in MULTI/EXEC batches ([`writer`]); reads go
//! to Redis on their own connection after waiting until the writer has sent every write made
//! before them, so they see them. What reaches the disk is Redis's own persistence setting
//! (`appendonly`, `appendfsync`); see ARCHITECTURE.md, "Redis store".

mod conn;
mod keys;
mod scripts;
mod writer;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use redis::Value;
use tern_codec::TopicName;
use tern_core::{
    ClientId, Commit, QueueSeq, QueueSummary, QueuedRecord, SessionRecord, Store, StoreError, StoreOp, Ticket,
};

use self::conn::{redact, Conn};
use self::keys::{decode_mark, parse_packet_id, parse_seq, seq_member, Keys};
use self::writer::{Entry, Shared, Writer};
use crate::{Durability, StoreOptions};

/// The key prefix of [`RedisStore::connect`].
pub const DEFAULT_PREFIX: &str = "tern";

/// A [`Store`] kept in Redis. Dropping it sends what is still queued, then stops the writer.
pub struct RedisStore {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    client: redis::Client,
    /// The read connection; reads are rare (startup, paging a queue back in), so one is enough.
    reader: Mutex<Option<Conn>>,
    keys: Keys,
    durability: Durability,
    /// The URL without its password, for messages.
    url: String,
    prefix: String,
    /// The last ticket a `flush` covered: the next one reports failures after it.
    flushed: Mutex<u64>,
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`, with `user:password@` if needed) with the
    /// key prefix [`DEFAULT_PREFIX`].
    pub fn connect(url: &str, options: StoreOptions) -> Result<RedisStore, StoreError> {
        Self::connect_with_prefix(url, DEFAULT_PREFIX, options)
    }

    /// Connects with a key prefix of its own, so several brokers or tests can share one server.
    /// Every key the store uses starts with `{prefix}:`; one prefix must not be another
    /// followed by `:c:`.
    pub fn connect_with_prefix(url: &str, prefix: &str, options: StoreOptions) -> Result<RedisStore, StoreError> {
        let shown = redact(url);
        let fail = |what: String| StoreError::Backend(format!("redis store at {shown}: {what}"));
        let client = redis::Client::open(url).map_err(|error| fail(format!("invalid URL: {error}")))?;
        let reader = Conn::open(&client).map_err(fail)?;
        let writer_conn = Conn::open(&client).map_err(fail)?;
        let shared = Shared::new();
        let keys = Keys::new(prefix);
        let writer = Writer {
            shared: Arc::clone(&shared),
            client: client.clone(),
            conn: Some(writer_conn),
            keys: keys.clone(),
            durability: options.durability,
            url: shown.clone(),
            down: false,
        };
        let writer = std::thread::Builder::new()
            .name("tern-redis-writer".to_string())
            .spawn(move || writer.run())
            .map_err(|error| fail(format!("cannot start the writer thread: {error}")))?;
        Ok(RedisStore {
            shared,
            writer: Some(writer),
            client,
            reader: Mutex::new(Some(reader)),
            keys,
            durability: options.durability,
            url: shown,
            prefix: prefix.to_string(),
            flushed: Mutex::new(0),
        })
    }

    fn error(&self, what: impl std::fmt::Display) -> StoreError {
        StoreError::Backend(format!("redis store at {}: {what}", self.url))
    }

    /// Runs a read after every write made so far is in Redis, on the read connection. A read
    /// failing on a connection that had been working is retried once on a new one.
    fn read<T>(&self, what: &str, query: impl Fn(&mut Conn) -> redis::RedisResult<T>) -> Result<T, StoreError> {
        self.shared.wait_processed(self.shared.last_ticket());
        let mut reader = self.reader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let fresh = reader.is_none();
        for attempt in 0..2 {
            let conn = match reader.as_mut() {
                Some(conn) => conn,
                None => reader.insert(Conn::open(&self.client).map_err(|error| self.error(error))?),
            };
            match query(conn) {
                Ok(value) => return Ok(value),
                Err(error) => {
                    *reader = None;
                    if fresh || attempt == 1 {
                        return Err(self.error(format!("{what} failed: {error}")));
                    }
                }
            }
        }
        Err(self.error(format!("{what} failed")))
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.shared.shut_down();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Store for RedisStore {
    fn write(&self, op: StoreOp) -> Result<Ticket, StoreError> {
        Ok(Ticket(self.shared.push(Entry::Op(op))))
    }

    fn commit(&self, ticket: Ticket) -> Commit {
        match self.durability {
            Durability::Sync => Box::pin(self.shared.commit(ticket.0)),
            // Redis acknowledges soon enough and persists by its own settings; only an
            // outage already seen is reported.
            Durability::Relaxed | Durability::None => {
                let result = match self.shared.down() {
                    Some(message) => Err(StoreError::Backend(message)),
                    None => Ok(()),
                };
                Box::pin(std::future::ready(result))
            }
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        let ticket = self.shared.push(Entry::Sync);
        self.shared.wait_processed(ticket);
        let mut flushed = self.flushed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let failure = self.shared.failed_between(*flushed, ticket);
        *flushed = ticket.max(*flushed);
        match failure {
            Some(message) => Err(StoreError::Backend(message)),
            None => Ok(()),
        }
    }

    fn sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        let client_prefix = self.keys.client_prefix();
        let rows: Vec<Value> = self.read("listing sessions", |conn| {
            redis::cmd("EVALSHA")
                .arg(&conn.shas.sessions)
                .arg(1)
                .arg(self.keys.sessions())
                .arg(&client_prefix)
                .query(&mut conn.con)
        })?;
        let mut sessions = rows.into_iter().map(parse_session).collect::<Result<Vec<_>, _>>()?;
        sessions.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(sessions)
    }

    fn retained(&self) -> Result<Vec<(TopicName, Bytes)>, StoreError> {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = self.read("listing retained messages", |conn| {
            redis::cmd("HGETALL").arg(self.keys.retained()).query(&mut conn.con)
        })?;
        let mut retained = pairs
            .into_iter()
            .map(|(topic, record)| {
                let topic =
                    String::from_utf8(topic).ok().and_then(|topic| TopicName::new(&topic).ok()).ok_or_else(|| {
                        StoreError::Corrupt("a retained message's topic is not a valid topic name".into())
                    })?;
                Ok((topic, Bytes::from(record)))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        retained.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(retained)
    }

    fn queue_page(&self, client_id: &ClientId, from: QueueSeq, limit: usize) -> Result<Vec<QueuedRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let client = self.keys.client(client_id);
        let limit = limit.min(i64::MAX as usize);
        let flat: Vec<Value> = self.read("reading a queue page", |conn| {
            redis::cmd("EVALSHA")
                .arg(&conn.shas.queue_page)
                .arg(3)
                .arg(&client.queue)
                .arg(&client.index)
                .arg(&client.marks)
                .arg(seq_member(from))
                .arg(limit)
                .query(&mut conn.con)
        })?;
        flat.chunks(3)
            .map(|chunk| {
                let [seq, record, mark] = chunk else {
                    return Err(corrupt("a queue page is not seq, record, mark triples"));
                };
                let mark = match mark {
                    Value::Nil => None,
                    other => Some(decode_mark(&bytes_of(other)?)?),
                };
                Ok(QueuedRecord { seq: parse_seq(&bytes_of(seq)?)?, record: Bytes::from(bytes_of(record)?), mark })
            })
            .collect()
    }

    fn describe(&self) -> String {
        let level = match self.durability {
            Durability::Sync => "sync",
            Durability::Relaxed => "relaxed",
            Durability::None => "none",
        };
        format!("redis store at {} (prefix {}), {level}", self.url, self.prefix)
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("redis store: {what}"))
}

fn bytes_of(value: &Value) -> Result<Vec<u8>, StoreError> {
    match value {
        Value::BulkString(bytes) => Ok(bytes.clone()),
        Value::SimpleString(text) => Ok(text.clone().into_bytes()),
        Value::Int(number) => Ok(number.to_string().into_bytes()),
        other => Err(corrupt(&format!("expected a string, got {other:?}"))),
    }
}

fn u64_of(value: &Value) -> Result<u64, StoreError> {
    let bytes = bytes_of(value)?;
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or_else(|| corrupt(&format!("expected a count, got {:?}", String::from_utf8_lossy(&bytes))))
}

/// One row of the sessions script: id, record, count, bytes, last seq or nil, packet ids.
fn parse_session(row: Value) -> Result<SessionRecord, StoreError> {
    let Value::Array(fields) = row else { return Err(corrupt("a session row is not an array")) };
    let [id, record, count, bytes, last, ids] = &fields[..] else {
        return Err(corrupt("a session row does not have six fields"));
    };
    let client_id = String::from_utf8(bytes_of(id)?).map_err(|_| corrupt("a client id is not UTF-8"))?;
    let last_seq = match last {
        Value::Nil => None,
        seq => Some(parse_seq(&bytes_of(seq)?)?),
    };
    let mut incoming_qos2 = match ids {
        Value::Array(ids) => {
            ids.iter().map(|id| parse_packet_id(&bytes_of(id)?)).collect::<Result<Vec<_>, StoreError>>()?
        }
        Value::Set(ids) => {
            ids.iter().map(|id| parse_packet_id(&bytes_of(id)?)).collect::<Result<Vec<_>, StoreError>>()?
        }
        _ => return Err(corrupt("incoming QoS 2 ids are not an array")),
    };
    incoming_qos2.sort();
    Ok(SessionRecord {
        client_id: ClientId::new(&client_id),
        record: Bytes::from(bytes_of(record)?),
        incoming_qos2,
        queue: QueueSummary { messages: u64_of(count)?, bytes: u64_of(bytes)?, last_seq },
    })
}

//! The Lua scripts of the Redis store. Each runs atomically in Redis, which lets one command
//! do what plain commands cannot without a round trip: keep the queue's byte count right on a
//! dequeue (the record's length is only known to Redis), mark a message only if it is queued,
//! and read a queue page or every session as one consistent snapshot.
//!
//! They are loaded with SCRIPT LOAD on every new connection (a restarted server has an empty
//! script cache) and called with EVALSHA.

/// A queue write. KEYS: queue hash, index sorted set, marks hash, byte counter.
/// ARGV: `enq` seq record | `mark` seq mark | `deq` seq. Enqueueing a seq again replaces the
/// record and drops its mark, as the reference store does.
pub(crate) const QUEUE_WRITE: &str = r#"
local queue, index, marks, bytes = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op, seq = ARGV[1], ARGV[2]
if op == 'enq' then
  local old = redis.call('HSTRLEN', queue, seq)
  redis.call('HSET', queue, seq, ARGV[3])
  redis.call('ZADD', index, 0, seq)
  redis.call('HDEL', marks, seq)
  redis.call('INCRBY', bytes, string.len(ARGV[3]) - old)
elseif op == 'mark' then
  if redis.call('HEXISTS', queue, seq) == 1 then
    redis.call('HSET', marks, seq, ARGV[3])
  end
elseif op == 'deq' then
  local len = redis.call('HSTRLEN', queue, seq)
  if redis.call('HDEL', queue, seq) == 1 then
    redis.call('ZREM', index, seq)
    redis.call('HDEL', marks, seq)
    if redis.call('HLEN', queue) == 0 then
      redis.call('DEL', bytes)
    else
      redis.call('DECRBY', bytes, len)
    end
  end
else
  return redis.error_reply('tern: unknown queue op ' .. op)
end
return 0
"#;

/// One page of a queue. KEYS: queue hash, index sorted set, marks hash. ARGV: first seq,
/// limit. Returns seq, record, mark (nil when unmarked) for each message, flattened.
pub(crate) const QUEUE_PAGE: &str = r#"
local seqs = redis.call('ZRANGEBYLEX', KEYS[2], '[' .. ARGV[1], '+', 'LIMIT', '0', ARGV[2])
local out = {}
for _, seq in ipairs(seqs) do
  out[#out + 1] = seq
  out[#out + 1] = redis.call('HGET', KEYS[1], seq)
  out[#out + 1] = redis.call('HGET', KEYS[3], seq)
end
return out
"#;

/// Every session with its queue summary and incoming QoS 2 ids. KEYS: sessions hash. ARGV:
/// the client key prefix (`{prefix}:c:`); the client's keys are built here from the
/// hex-encoded id exactly as `Keys::client` builds them. Returns, per session: client id,
/// record, message count, byte count, last seq (nil when the queue is empty), packet ids.
pub(crate) const SESSIONS: &str = r#"
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local hex = string.gsub(all[i], '.', function(c) return string.format('%02x', string.byte(c)) end)
  local base = ARGV[1] .. hex
  local count = redis.call('HLEN', base .. ':q')
  local bytes = redis.call('GET', base .. ':qb') or '0'
  local last = redis.call('ZRANGE', base .. ':qi', -1, -1)[1] or false
  local ids = redis.call('SMEMBERS', base .. ':in2')
  out[#out + 1] = {all[i], all[i + 1], count, bytes, last, ids}
end
return out
"#;

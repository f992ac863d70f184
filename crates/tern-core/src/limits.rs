//! Limits the broker enforces and the protocol features it offers, with their defaults.

/// Per-session and global budgets. Every queue the broker keeps is bounded by these. The
/// configuration file's `[limits]` table deserializes into this struct directly.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest packet accepted from a client, whole packet included; advertised to 5.0
    /// clients as Maximum Packet Size.
    pub max_packet_size: usize,
    /// Unacknowledged QoS 1/2 messages sent to one client at a time (further capped by a 5.0
    /// client's Receive Maximum).
    pub max_inflight_messages: usize,
    /// Messages waiting in one session's queue (online or offline); beyond it QoS 0 messages
    /// are dropped first, then new messages are refused for that session.
    pub max_queued_messages: usize,
    /// Bytes (payload and topic) waiting in one session's queue.
    pub max_queued_bytes: usize,
    /// Simultaneous client connections; 0 means no limit.
    pub max_connections: usize,
    /// Seconds a new socket may stay silent before sending CONNECT.
    pub connect_timeout_secs: u64,
    /// Receive Maximum advertised to 5.0 clients: QoS 2 messages a client may have
    /// unreleased at once before it is disconnected with 0x93.
    pub receive_maximum: u16,
    /// Topic Alias Maximum advertised to 5.0 clients (inbound aliases per connection).
    pub topic_alias_maximum: u16,
    /// Largest keep alive accepted, in seconds; a client asking for more (or for none) is
    /// told this value as Server Keep Alive (5.0). 0 means no maximum.
    pub max_keep_alive: u16,
    /// PUBLISH packets one client may send per second (bursts of one second's worth); beyond
    /// it the client is disconnected (5.0: reason 0x96). 0 means no limit.
    pub max_publish_rate: u32,
    /// PUBLISH payload bytes one client may send per second, as above. 0 means no limit.
    pub max_publish_bytes_rate: u32,
    /// Longest client identifier accepted, in bytes; longer ones are refused (CONNACK 0x02 /
    /// 0x85).
    pub max_client_id_length: usize,
    /// Longest topic name or filter, in bytes. A longer PUBLISH topic closes the connection
    /// (5.0: DISCONNECT 0x90); a longer filter gets a SUBACK failure.
    pub max_topic_length: usize,
    /// Most `/`-separated levels in a topic name or filter, treated like the length.
    pub max_topic_levels: usize,
    /// Subscriptions one session may hold; a new one beyond it gets a SUBACK failure (5.0:
    /// 0x97 Quota exceeded). 0 means no limit.
    pub max_subscriptions_per_client: usize,
    /// Messages kept in the store for one persistent session (its whole queue, offline or
    /// not); beyond it new QoS 1/2 messages are refused for that session, counted in
    /// `dropped_store_full` and logged.
    pub max_stored_messages_per_session: u64,
    /// Bytes of stored records for one persistent session, as above.
    pub max_stored_bytes_per_session: u64,
    /// Messages kept in the store for all sessions together, as above.
    pub max_stored_messages: u64,
    /// Bytes of stored records for all sessions together, as above.
    pub max_stored_bytes: u64,
}

impl Limits {
    /// Whether a topic name or filter is within the length and level limits.
    pub fn topic_within_limits(&self, topic: &str) -> bool {
        topic.len() <= self.max_topic_length && topic.split('/').count() <= self.max_topic_levels
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_size: 1024 * 1024,
            max_inflight_messages: 32,
            max_queued_messages: 1000,
            max_queued_bytes: 64 * 1024 * 1024,
            max_connections: 0,
            connect_timeout_secs: 10,
            receive_maximum: 256,
            topic_alias_maximum: 64,
            max_keep_alive: 0,
            max_publish_rate: 0,
            max_publish_bytes_rate: 0,
            max_client_id_length: 256,
            max_topic_length: 65_535,
            max_topic_levels: 128,
            max_subscriptions_per_client: 0,
            max_stored_messages_per_session: 1_000_000,
            max_stored_bytes_per_session: 1024 * 1024 * 1024,
            max_stored_messages: 10_000_000,
            max_stored_bytes: 8 * 1024 * 1024 * 1024,
        }
    }
}

/// Protocol features whose behaviour is configured rather than budgeted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Features {
    /// Response Information returned to 5.0 clients that request it: the prefix of the
    /// topics they may use for responses. `{client_id}` is replaced by the client id.
    pub response_information: Option<String>,
}

//! Limits the broker enforces, with their defaults.

/// Per-session and global budgets. Every queue the broker keeps is bounded by these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest packet accepted from a client, whole packet included.
    pub max_packet_size: usize,
    /// Unacknowledged QoS 1/2 messages sent to one client at a time.
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
        }
    }
}

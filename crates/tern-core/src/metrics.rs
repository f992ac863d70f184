//! Broker counters. Every metric the broker keeps is declared here, once.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters and gauges, updated with relaxed atomics from every connection task.
#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_current: AtomicU64,
    pub connections_total: AtomicU64,
    pub connections_refused: AtomicU64,
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    /// QoS 0 messages dropped because a session's queue was full.
    pub dropped_qos0_queue_full: AtomicU64,
    /// QoS 1/2 messages not queued for a session because its queue was full.
    pub dropped_queue_full: AtomicU64,
    pub malformed_packets: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub wills_published: AtomicU64,
    /// Messages not sent to one client because they exceed its Maximum Packet Size (5.0).
    pub dropped_too_large: AtomicU64,
    /// Messages not delivered because their Message Expiry Interval passed (5.0).
    pub dropped_expired: AtomicU64,
    /// Offline sessions ended because their Session Expiry Interval passed.
    pub sessions_expired: AtomicU64,
    /// Shared-subscription messages handed to another member when theirs left.
    pub shared_redispatched: AtomicU64,
    /// Clients disconnected for exceeding their publish rate.
    pub publish_rate_exceeded: AtomicU64,
    /// CONNECTs refused by authentication (bad credentials, not authorized).
    pub auth_failures: AtomicU64,
    /// PUBLISH packets (and wills) refused by the authorizer.
    pub publish_denied: AtomicU64,
    /// Topic filters refused by the authorizer at SUBSCRIBE.
    pub subscribe_denied: AtomicU64,
    /// Writes to the store that failed (logged too).
    pub store_errors: AtomicU64,
    /// QoS 1/2 messages not queued for a persistent session because a stored budget was full.
    pub dropped_store_full: AtomicU64,
    /// Gauges: messages and record bytes kept in the store for persistent sessions' queues.
    pub stored_messages: AtomicU64,
    pub stored_bytes: AtomicU64,
}

impl Metrics {
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn decr(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

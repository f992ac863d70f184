//! Durable backends of tern-core's [`Store`](tern_core::Store) trait.
//!
//! - [`embedded`]: the default, files in a data directory, no external service.
//! - [`redis_store`]: a Redis server, the shared backend a cluster uses.
//!
//! Both pass `tern_test_support::store_conformance`; the durability levels are common.

pub mod embedded;
pub mod redis_store;

use std::time::Duration;

/// How safe a write is when the broker acknowledges it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// A commit resolves only after the write is on disk (fsync); many writes share one fsync
    /// (group commit). Nothing acknowledged is lost, even on power loss.
    #[default]
    Sync,
    /// Commits resolve at once; writes are synced every flush interval. A process crash
    /// loses nothing written; a power loss or OS crash may lose up to one interval.
    Relaxed,
    /// Commits resolve at once; the OS decides when writes reach the disk (synced only at
    /// shutdown).
    None,
}

/// Settings common to the durable backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    pub durability: Durability,
    /// How often `relaxed` syncs.
    pub flush_interval: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { durability: Durability::Sync, flush_interval: Duration::from_millis(1000) }
    }
}

//! `[storage]`: where the broker keeps what must survive a restart, and how safely.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tern_store::{Durability, StoreOptions};

/// Which store keeps sessions, queues and retained messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// Files in `data_dir`; no external service. The default.
    #[default]
    Embedded,
    /// A Redis server at `redis_url`, the shared backend of a cluster.
    Redis,
    /// Nothing is kept: everything is lost on restart (as `--in-memory`).
    Memory,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    /// The embedded store's directory.
    pub data_dir: PathBuf,
    /// The same as `backend = "memory"`; kept for `--in-memory`.
    pub in_memory: bool,
    /// `sync` (acknowledge after fsync, group commit), `relaxed` (sync every
    /// `flush_interval_ms`) or `none` (the OS decides).
    pub durability: Durability,
    pub flush_interval_ms: u64,
    /// `redis://host:port/db` for `backend = "redis"`.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so brokers can share a server.
    pub redis_prefix: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: StorageBackend::Embedded,
            data_dir: PathBuf::from("./tern-data"),
            in_memory: false,
            durability: Durability::Sync,
            flush_interval_ms: 1000,
            redis_url: None,
            redis_prefix: "tern".to_string(),
        }
    }
}

impl StorageConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.flush_interval_ms == 0 {
            return Err("storage.flush_interval_ms must be at least 1".into());
        }
        if self.backend() == StorageBackend::Redis && self.redis_url.as_deref().is_none_or(str::is_empty) {
            return Err("storage.redis_url is needed with backend = \"redis\"".into());
        }
        Ok(())
    }

    /// The backend in force (`in_memory` wins).
    pub fn backend(&self) -> StorageBackend {
        if self.in_memory {
            StorageBackend::Memory
        } else {
            self.backend
        }
    }

    pub fn options(&self) -> StoreOptions {
        StoreOptions { durability: self.durability, flush_interval: Duration::from_millis(self.flush_interval_ms) }
    }
}

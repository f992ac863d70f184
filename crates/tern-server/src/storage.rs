//! Opening the configured store.

use std::sync::Arc;

use tern_core::{Store, StoreError};
use tern_store::embedded::EmbeddedStore;
use tern_store::redis_store::RedisStore;

use crate::config::{StorageBackend, StorageConfig};

/// The store `[storage]` asks for, or None for memory only. A store that cannot be opened
/// (unreadable or corrupt directory, unreachable Redis) is an error naming it: the broker
/// must not start empty in place of the data it was given.
pub fn open_store(config: &StorageConfig) -> Result<Option<Arc<dyn Store>>, StoreError> {
    Ok(match config.backend() {
        StorageBackend::Memory => None,
        StorageBackend::Embedded => Some(Arc::new(EmbeddedStore::open(&config.data_dir, config.options())?)),
        StorageBackend::Redis => {
            let url = config.redis_url.as_deref().unwrap_or_default();
            Some(Arc::new(RedisStore::connect_with_prefix(url, &config.redis_prefix, config.options())?))
        }
    })
}

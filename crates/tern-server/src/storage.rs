//! Opening the configured store.

use std::sync::Arc;

use tern_core::{Store, StoreError};

use crate::config::{StorageBackend, StorageConfig};

/// The store `[storage]` asks for, or None for memory only. A store that cannot be opened
/// (unreadable or corrupt directory, unreachable Redis) is an error naming it: the broker
/// must not start empty in place of the data it was given.
pub fn open_store(config: &StorageConfig) -> Result<Option<Arc<dyn Store>>, StoreError> {
    Ok(match config.backend() {
        StorageBackend::Memory => None,
        StorageBackend::Embedded | StorageBackend::Redis => return Err(StoreError::Backend("pending".into())),
    })
}

//! The client identifier newtype.

use std::fmt;
use std::sync::Arc;

/// A client identifier as the broker knows it: the one the client sent, or one the broker
/// assigned to a client that sent none ([MQTT-3.1.3-6]). Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(Arc<str>);

impl ClientId {
    pub fn new(id: &str) -> ClientId {
        ClientId(Arc::from(id))
    }

    /// A fresh identifier for a client that connected with an empty one.
    pub fn generate() -> ClientId {
        use rand::Rng;
        let suffix: u64 = rand::thread_rng().gen();
        ClientId::new(&format!("tern-{suffix:016x}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

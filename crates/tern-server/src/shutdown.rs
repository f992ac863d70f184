//! Clean shutdown in two phases, so that wills reach subscribers before connections close.
//!
//! 1. [`Phase::PublishWills`]: listeners stop accepting; every connection publishes its will
//!    and keeps serving, so deliveries (wills included) are still written out.
//! 2. [`Phase::Close`]: once every connection has published its will (or the grace period
//!    ran out), connections send what they have queued and close.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{watch, Notify};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    PublishWills,
    Close,
}

/// Counts connections that have finished phase 1.
#[derive(Debug, Default)]
pub struct WillBarrier {
    published: AtomicUsize,
    changed: Notify,
}

impl WillBarrier {
    /// A connection has published its will (or had none).
    pub fn arrive(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_one();
    }

    /// Waits until `arrived >= live()` or `grace` passes; `live` is re-read after each
    /// arrival because connections also leave on their own.
    pub async fn wait(&self, live: impl Fn() -> usize, grace: Duration) -> bool {
        tokio::time::timeout(grace, async {
            loop {
                let changed = self.changed.notified();
                if self.published.load(Ordering::Relaxed) >= live() {
                    return;
                }
                // Connections that leave without arriving (not yet connected) only lower
                // `live`, so re-check periodically as well as on arrivals.
                let _ = tokio::time::timeout(Duration::from_millis(50), changed).await;
            }
        })
        .await
        .is_ok()
    }
}

pub type PhaseReceiver = watch::Receiver<Phase>;

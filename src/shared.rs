//! What the bot, the executor and the workers all hold: the store, the configuration, the
//! texts, the clock, the metrics, and the wake-ups of the queues. Built once by the
//! application; cheap to clone.

use crate::chat::Texts;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::Store;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Clone)]
pub struct Core {
    pub store: Store,
    pub config: Arc<Config>,
    pub texts: Texts,
    pub clock: SharedClock,
    pub metrics: Arc<Metrics>,
    /// Wakes the outbox worker after a commit.
    pub outbox_notify: Arc<Notify>,
    /// Wakes the inbox worker after an event is recorded.
    pub inbox_notify: Arc<Notify>,
}

impl Core {
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}

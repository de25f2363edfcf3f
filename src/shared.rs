//! What the bot, the executor and the workers all hold: the store, the configuration, the
//! texts, the clock, the metrics, and the wake-ups of the queues. Built once by the
//! application; cheap to clone.

use crate::chat::Texts;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    /// Wakes the scheduler after a handler planned a firing.
    pub scheduler_notify: Arc<Notify>,
    /// Tells the executor that an execution changed.
    pub executions: Arc<Wakers>,
}

impl Core {
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// The tasks of the executions this process runs, to wake them after a change.
#[derive(Debug, Default)]
pub struct Wakers {
    tasks: Mutex<HashMap<i64, Arc<Notify>>>,
    /// Wakes the runner's claim loop.
    pub runner: Notify,
}

impl Wakers {
    pub fn register(&self, id: i64) -> Arc<Notify> {
        let n = Arc::new(Notify::new());
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, n.clone());
        n
    }

    pub fn unregister(&self, id: i64, n: &Arc<Notify>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if tasks.get(&id).is_some_and(|m| Arc::ptr_eq(m, n)) {
            tasks.remove(&id);
        }
    }

    /// An execution changed (committed): its task, if this process runs it, looks again
    /// at once; otherwise the runner claims it.
    pub fn wake(&self, id: i64) {
        if let Some(n) = self.tasks.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            n.notify_one();
        }
        self.runner.notify_one();
    }

    /// Whether this process runs a task for the execution.
    pub fn is_running(&self, id: i64) -> bool {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&id)
    }

    /// The executions whose tasks run here.
    pub fn running(&self) -> Vec<i64> {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }
}

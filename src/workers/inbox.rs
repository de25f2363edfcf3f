//! The inbox worker: handles recorded events, several at once, one *lane* per order key
//! (a ticket, the role set …) so that events of one key are handled in the order they
//! came and events of different keys do not wait for each other. Across replicas the
//! order is kept too: an event whose earlier sibling is still waiting (claimed by another
//! worker) is given back and taken again shortly.

use crate::bot::Bot;
use crate::inbox::{DEFER, LEASE_MS};
use crate::runtime::Heartbeat;
use crate::store::inbox::{self as q, InboxRow};
use futures::FutureExt;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// A claimed event waits this long before it is taken again, when an earlier event of
/// its key is still being handled elsewhere.
const SIBLING_WAIT_MS: i64 = 200;
/// Lanes (keys) handled at once (PostgreSQL).
pub const CONCURRENCY: usize = 16;
/// Events claimed at once for one writer (SQLite).
pub const BATCH: usize = 64;

struct Inner {
    bot: Bot,
    /// SQLite has one writer: events are handled in batches, in order, several per
    /// transaction, by one task at a time. PostgreSQL: lanes per key, at once.
    batches: bool,
    /// Events claimed and waiting in their key's lane, by key; a key is here while its lane runs.
    lanes: Mutex<HashMap<String, VecDeque<InboxRow>>>,
    slots: Arc<Semaphore>,
}

/// Handles recorded events; cheap to clone.
#[derive(Clone)]
pub struct InboxWorker {
    inner: Arc<Inner>,
    pub heartbeat: Arc<Heartbeat>,
}

impl InboxWorker {
    pub fn new(bot: Bot) -> Self {
        let heartbeat = Arc::new(Heartbeat::new("inbox", bot.clock.clone()));
        let batches = bot.store.backend == crate::store::Backend::Sqlite;
        Self {
            inner: Arc::new(Inner {
                bot,
                batches,
                lanes: Mutex::new(HashMap::new()),
                slots: Arc::new(Semaphore::new(if batches { 1 } else { CONCURRENCY })),
            }),
            heartbeat,
        }
    }

    /// Claims as many due events as there are free lanes and puts each in its key's lane,
    /// starting lanes in `tasks`. Returns how many events it claimed.
    async fn dispatch(&self, tasks: &mut JoinSet<usize>, limit: usize) -> anyhow::Result<usize> {
        let free = self.inner.slots.available_permits().min(limit);
        if free == 0 {
            return Ok(0);
        }
        let bot = &self.inner.bot;
        if self.inner.batches {
            let rows = q::claim(&bot.store, bot.now(), LEASE_MS, BATCH as i64).await?;
            let n = rows.len();
            if n > 0 {
                let permit = self.inner.slots.clone().acquire_owned().await?;
                let inner = self.inner.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    run_batch(&inner, rows).await
                });
            }
            return Ok(n);
        }
        let rows = q::claim(&bot.store, bot.now(), LEASE_MS, free as i64).await?;
        let n = rows.len();
        for row in rows {
            let key = row.order_key.clone();
            let start = {
                let mut lanes = self.inner.lanes.lock().unwrap_or_else(|p| p.into_inner());
                match lanes.get_mut(&key) {
                    Some(lane) => {
                        lane.push_back(row);
                        false
                    }
                    None => {
                        lanes.insert(key.clone(), VecDeque::from([row]));
                        true
                    }
                }
            };
            if start {
                let permit = self.inner.slots.clone().acquire_owned().await?;
                let inner = self.inner.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    run_lane(&inner, key).await
                });
            }
        }
        Ok(n)
    }

    /// Handles every due event, several keys at once, and waits until they are done.
    /// Returns how many were handled. Tests drive the inbox with it.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        self.heartbeat.beat();
        let mut tasks = JoinSet::new();
        let mut handled = 0;
        loop {
            self.dispatch(&mut tasks, usize::MAX).await?;
            match tasks.join_next().await {
                Some(Ok(n)) => handled += n,
                Some(Err(e)) => tracing::error!(error = %e, "inbox lane"),
                None => break,
            }
        }
        self.heartbeat.progress(handled);
        Ok(handled)
    }

    /// Runs until `shutdown` fires; then lets the lanes finish the event each has under
    /// way (for at most `grace`) and stops. What was not started stays for the next start.
    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken, grace: Duration) {
        let bot = self.inner.bot.clone();
        let mut tasks: JoinSet<usize> = JoinSet::new();
        loop {
            self.heartbeat.beat();
            bot.intake.pressure.calm(DEFER).await;
            if let Err(e) = self.dispatch(&mut tasks, usize::MAX).await {
                tracing::error!(error = %format!("{e:#}"), "inbox worker");
            }
            let wait = match crate::store::lease::next_due(&bot.store, &crate::store::lease::INBOX, None).await {
                Ok(Some(t)) => {
                    let due = t <= bot.now();
                    self.heartbeat
                        .set_waiting(due && self.inner.slots.available_permits() == 0);
                    (t - bot.now()).clamp(5, 1_000)
                }
                _ => {
                    self.heartbeat.set_waiting(false);
                    1_000
                }
            };
            tokio::select! {
                _ = bot.inbox_notify.notified() => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => match done {
                    Ok(n) => self.heartbeat.progress(n),
                    Err(e) => tracing::error!(error = %e, "inbox lane"),
                },
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        // Stop taking work: lanes finish the event under way, the rest is given back.
        let queued: Vec<InboxRow> = {
            let mut lanes = self.inner.lanes.lock().unwrap_or_else(|p| p.into_inner());
            lanes.values_mut().flat_map(|l| l.drain(..)).collect()
        };
        give_back(&bot, &queued, bot.now()).await;
        if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tracing::warn!(
                "inbox: events still being handled at the deadline; they are handled again at the next start"
            );
            tasks.abort_all();
        }
        if let Err(e) = crate::store::lease::release_owned(&bot.store, &crate::store::lease::INBOX, bot.now()).await {
            tracing::warn!(error = %format!("{e:#}"), "inbox: could not free its leases");
        }
        tracing::info!("inbox worker stopped");
    }
}

/// Gives claimed events back so that they are taken again at once (by anyone).
async fn give_back(bot: &Bot, rows: &[InboxRow], due: i64) {
    if rows.is_empty() {
        return;
    }
    let result = async {
        let mut tx = bot.store.begin().await?;
        for r in rows {
            q::release(&mut tx, &bot.store.owner, r.id, due).await?;
        }
        tx.commit().await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %format!("{e:#}"), "inbox: could not give events back; they return after their lease");
    }
}

/// Handles the events of one key in order until its lane is empty; how many it handled.
async fn run_lane(inner: &Inner, key: String) -> usize {
    let bot = &inner.bot;
    let mut handled = 0;
    loop {
        let next = {
            let mut lanes = inner.lanes.lock().unwrap_or_else(|p| p.into_inner());
            match lanes.get_mut(&key).and_then(VecDeque::pop_front) {
                Some(row) => Some(row),
                None => {
                    lanes.remove(&key);
                    None
                }
            }
        };
        let Some(row) = next else {
            return handled;
        };
        // An earlier event of this key that another worker holds goes first.
        match earlier_waits(bot, &row).await {
            Ok(false) => {}
            Ok(true) => {
                let rest: Vec<InboxRow> = {
                    let mut lanes = inner.lanes.lock().unwrap_or_else(|p| p.into_inner());
                    lanes.remove(&key).map(Vec::from).unwrap_or_default()
                };
                let mut all = vec![row];
                all.extend(rest);
                give_back(bot, &all, bot.now() + SIBLING_WAIT_MS).await;
                return handled;
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "inbox: checking the order of events"),
        }
        handle_one(bot, row).await;
        handled += 1;
    }
}

/// Handles a batch of claimed events (SQLite); those its transactions could not take are
/// handled one by one.
async fn run_batch(inner: &Inner, rows: Vec<InboxRow>) -> usize {
    let bot = &inner.bot;
    let n = rows.len();
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let rest = match bot.process_batch(rows).await {
        Ok(rest) => rest,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "inbox: handling a batch; its events are taken again after their lease");
            let _ = ids;
            return 0;
        }
    };
    for row in rest {
        handle_one(bot, row).await;
    }
    n
}

/// Handles one event in its own transaction; a panic marks it failed and tells its author.
async fn handle_one(bot: &Bot, row: InboxRow) {
    let id = row.id;
    match std::panic::AssertUnwindSafe(bot.process_row(row)).catch_unwind().await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(inbox_id = id, error = %format!("{e:#}"), "inbox: handling an event"),
        Err(panic) => {
            let why = panic
                .downcast::<String>()
                .map(|s| *s)
                .or_else(|p| p.downcast::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|_| "unknown panic".into());
            if let Err(e) = bot.panicked(id, &why).await {
                tracing::error!(inbox_id = id, error = %format!("{e:#}"), "inbox: recording a panic");
            }
        }
    }
}

async fn earlier_waits(bot: &Bot, row: &InboxRow) -> anyhow::Result<bool> {
    let mut conn = bot.store.read.acquire().await?;
    q::has_earlier_pending(&mut conn, &row.order_key, row.id).await
}

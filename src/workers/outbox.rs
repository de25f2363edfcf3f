//! Outbound delivery: every due delivery queue (a channel, a user's direct messages, an
//! interaction's answers) at once, each queue's items in order and paced, honouring rate
//! limits, retrying with backoff, coalescing edits of one message, and reconciling a
//! delivery that may have reached the platform before a crash. Handlers queue items with
//! the unit of work (`Work::send`) in the transaction of their state change.

use crate::chat::{ChatClient, Delivery, MessageRef, Reconciled, SendError};
use crate::chat::{Outbound, Texts};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::runtime::Heartbeat;
use crate::store::outbox::{self as q, Outcome};
use crate::store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

/// Average gap between two messages in one channel (Slack: ~1 message/s/channel, short
/// bursts allowed: see `store::outbox::BURST_MS`).
pub const CHANNEL_PACE_MS: i64 = 1_000;
/// Longer than a reconciliation and a send may take together, so that a dead worker's
/// queues return soon.
const LEASE_MS: i64 = 45_000;
const MAX_BACKOFF_MS: i64 = 5 * 60_000;
const DEFAULT_RETRY_AFTER_MS: i64 = 30_000;
/// A progress message whose execution could not be read is tried again after this long.
const DRAW_RETRY_MS: i64 = 5_000;
/// Deliveries under way at once, per platform.
pub const CONCURRENCY_PER_PLATFORM: usize = 256;
/// While this many deliveries are under way, new claims wait for more to finish (claims
/// and outcomes are written in batches, one transaction each).
const BATCH_WHEN_BUSY: usize = CONCURRENCY_PER_PLATFORM / 2;
/// Outcomes finishing within this long of each other are recorded together.
const GATHER: Duration = Duration::from_millis(3);
/// Platforms the outbox delivers to (items of a platform without a client fail).
const PLATFORMS: &[&str] = &[
    crate::chat::slack::PLATFORM,
    crate::chat::discord::PLATFORM,
    crate::chat::dingtalk::PLATFORM,
    crate::chat::local::PLATFORM,
];

fn paced(out_kind: &str) -> bool {
    matches!(out_kind, "post" | "update" | "direct" | "reply" | "progress")
}

struct Inner {
    store: Store,
    clients: HashMap<String, Arc<dyn ChatClient>>,
    texts: Texts,
    /// Draws progress messages (services' names).
    config: Arc<crate::config::Config>,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    slots: HashMap<&'static str, Arc<Semaphore>>,
    /// Turns a message's page into a link (none in tests of the worker alone).
    links: Option<Arc<crate::chat::links::Links>>,
}

/// The delivery worker; cheap to clone.
#[derive(Clone)]
pub struct OutboxWorker {
    inner: Arc<Inner>,
    pub notify: Arc<Notify>,
    pub heartbeat: Arc<Heartbeat>,
    /// The intake's pressure: new deliveries wait for a pause in a burst of requests.
    pressure: Arc<crate::runtime::Pressure>,
}

/// What one round of the worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub delivered: usize,
    pub retrying: usize,
    pub failed: usize,
}

impl Round {
    pub fn attempted(&self) -> usize {
        self.delivered + self.retrying + self.failed
    }

    fn add(&mut self, a: &Attempt) {
        match a.outcome {
            Done::Sent(_) => self.delivered += 1,
            Done::Retry { .. } => self.retrying += 1,
            Done::Failed(_) => self.failed += 1,
        }
    }
}

/// What became of one item's delivery: recorded with the others of its round in one
/// transaction.
struct Attempt {
    item: q::Item,
    outcome: Done,
    /// The queue's pacing after this attempt: its theoretical next-message time.
    tat: i64,
    /// When the queue may send next.
    due: i64,
}

enum Done {
    Sent(Option<MessageRef>),
    Failed(String),
    Retry { at: i64, error: String, certain: bool },
}

/// Deliveries finished and not yet recorded.
type Tasks = JoinSet<Attempt>;

impl OutboxWorker {
    pub fn new(
        core: &crate::shared::Core,
        clients: HashMap<String, Arc<dyn ChatClient>>,
        links: Option<Arc<crate::chat::links::Links>>,
    ) -> Self {
        let heartbeat = Arc::new(Heartbeat::new("outbox", core.clock.clone()));
        let slots = PLATFORMS
            .iter()
            .map(|p| (*p, Arc::new(Semaphore::new(CONCURRENCY_PER_PLATFORM))))
            .collect();
        Self {
            inner: Arc::new(Inner {
                store: core.store.clone(),
                clients,
                texts: core.texts.clone(),
                config: core.config.clone(),
                clock: core.clock.clone(),
                metrics: core.metrics.clone(),
                slots,
                links,
            }),
            notify: core.outbox_notify.clone(),
            heartbeat,
            pressure: Arc::default(),
        }
    }

    /// Defers new deliveries while the intake acknowledges a burst (see [`Pressure`]).
    ///
    /// [`Pressure`]: crate::runtime::Pressure
    pub fn yielding_to(mut self, pressure: Arc<crate::runtime::Pressure>) -> Self {
        self.pressure = pressure;
        self
    }

    /// Gives up, at start, on messages for platforms this process has no client for
    /// (their configuration was removed): they could never be delivered.
    pub async fn fail_unconfigured(&self) -> anyhow::Result<u64> {
        let mut n = 0;
        for platform in PLATFORMS.iter().filter(|p| !self.inner.clients.contains_key(**p)) {
            let now = self.inner.clock.now_ms();
            n += q::fail_platform(
                &self.inner.store,
                platform,
                &format!("platform {platform} is not configured"),
                now,
            )
            .await?;
        }
        Ok(n)
    }

    /// Claims due queues of every configured platform, as many as it has free delivery
    /// slots, and starts delivering the first item of each. Returns how many started.
    async fn dispatch(&self, tasks: &mut Tasks) -> anyhow::Result<usize> {
        let now = self.inner.clock.now_ms();
        let wanted: Vec<(&str, usize)> = PLATFORMS
            .iter()
            .filter(|p| self.inner.clients.contains_key(**p))
            .map(|p| (*p, self.inner.slots[p].available_permits()))
            .collect();
        if wanted.iter().all(|(_, n)| *n == 0) {
            return Ok(0);
        }
        let items = q::claim(&self.inner.store, &wanted, now, LEASE_MS).await?;
        if items.is_empty() {
            return Ok(0);
        }
        self.inner
            .metrics
            .observe("releasebot_outbox_claimed_per_transaction", items.len() as f64);
        let keys: Vec<&str> = items
            .iter()
            .filter(|i| matches!(i.kind.as_str(), "update" | "reply" | "progress"))
            .filter_map(|i| i.msg_key.as_deref())
            .collect();
        let refs = q::get_refs(&self.inner.store, &keys).await?;
        let started = items.len();
        for item in items {
            let Some(slots) = PLATFORMS
                .iter()
                .find(|p| **p == item.platform)
                .map(|p| self.inner.slots[p].clone())
            else {
                continue;
            };
            let permit = slots.acquire_owned().await?;
            let inner = self.inner.clone();
            let existing = item.msg_key.as_ref().and_then(|k| refs.get(k)).cloned();
            tasks.spawn(async move {
                let _permit = permit;
                deliver(&inner, item, existing).await
            });
        }
        Ok(started)
    }

    /// Records finished deliveries in one transaction.
    async fn record(&self, done: Vec<Attempt>) -> anyhow::Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let now = self.inner.clock.now_ms();
        let outcomes: Vec<q::Finished<'_>> = done
            .iter()
            .map(|a| q::Finished {
                item: &a.item,
                outcome: match &a.outcome {
                    Done::Sent(r) => Outcome::Sent(r.as_ref()),
                    Done::Failed(e) => Outcome::Failed(e),
                    Done::Retry { at, error, certain } => Outcome::Retry {
                        at: *at,
                        error,
                        certain: *certain,
                    },
                },
                tat: a.tat,
                due: a.due,
            })
            .collect();
        q::finish_many(&self.inner.store, &outcomes, now).await?;
        self.inner
            .metrics
            .observe("releasebot_outbox_recorded_per_transaction", outcomes.len() as f64);
        self.notify_metrics(&done, now);
        Ok(())
    }

    fn notify_metrics(&self, done: &[Attempt], now: i64) {
        let m = &self.inner.metrics;
        for a in done {
            let platform = a.item.platform.as_str();
            match &a.outcome {
                Done::Sent(_) => {
                    m.inc(
                        "releasebot_outbox_delivered_total",
                        &[("platform", platform), ("kind", &a.item.kind)],
                    );
                    m.observe(
                        "releasebot_outbox_delivery_latency_seconds",
                        (now - a.item.created_at).max(0) as f64 / 1000.0,
                    );
                }
                Done::Failed(_) => m.inc("releasebot_outbox_failed_total", &[("platform", platform)]),
                Done::Retry { certain, .. } => m.inc(
                    "releasebot_outbox_retries_total",
                    &[
                        ("platform", platform),
                        ("reason", if *certain { "rate_limited" } else { "transient" }),
                    ],
                ),
            }
        }
    }

    /// Delivers everything due now, every queue at once, and waits for the attempts to
    /// end. Tests drive the outbox with it; `serve` runs [`OutboxWorker::run`].
    pub async fn round(&self) -> anyhow::Result<Round> {
        self.heartbeat.beat();
        let mut tasks = Tasks::new();
        let mut round = Round::default();
        loop {
            if self.dispatch(&mut tasks).await? == 0 && tasks.is_empty() {
                break;
            }
            let mut done = Vec::new();
            while let Some(a) = tasks.join_next().await {
                done.extend(joined(a));
            }
            done.iter().for_each(|a| round.add(a));
            self.record(done).await?;
        }
        self.heartbeat.progress(round.attempted());
        Ok(round)
    }

    /// When the next queue falls due, if any waits.
    pub async fn next_wake(&self) -> anyhow::Result<Option<i64>> {
        q::next_wake(&self.inner.store).await
    }

    /// Runs until `shutdown` fires; then lets deliveries under way finish (for at most
    /// `grace`) and stops, leaving the rest queued for the next start.
    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken, grace: Duration) {
        if let Err(e) = self.fail_unconfigured().await {
            tracing::warn!(error = %format!("{e:#}"), "outbox: giving up on messages of unconfigured platforms");
        }
        let mut tasks = Tasks::new();
        loop {
            self.heartbeat.beat();
            // Claims go in batches: when few slots are free, wait for more to finish.
            if tasks.len() < BATCH_WHEN_BUSY {
                self.pressure.calm(crate::inbox::DEFER).await;
                match self.dispatch(&mut tasks).await {
                    Ok(n) if n > 0 => self.heartbeat.progress(n),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "outbox worker"),
                }
            }
            let wait = match self.next_wake().await {
                Ok(Some(t)) => {
                    let waiting = t <= self.inner.clock.now_ms();
                    self.heartbeat.set_waiting(waiting && tasks.is_empty());
                    (t - self.inner.clock.now_ms()).clamp(5, 1_000)
                }
                _ => {
                    self.heartbeat.set_waiting(false);
                    1_000
                }
            };
            tokio::select! {
                _ = self.notify.notified() => {}
                Some(first) = tasks.join_next(), if !tasks.is_empty() => {
                    // What finishes within a moment is recorded together, in one transaction.
                    let mut done: Vec<Attempt> = joined(first).into_iter().collect();
                    let gather = tokio::time::sleep(GATHER);
                    tokio::pin!(gather);
                    while !tasks.is_empty() && done.len() < CONCURRENCY_PER_PLATFORM {
                        tokio::select! {
                            Some(more) = tasks.join_next() => done.extend(joined(more)),
                            _ = &mut gather => break,
                        }
                    }
                    if let Err(e) = self.record(done).await {
                        tracing::error!(error = %format!("{e:#}"), "outbox: recording deliveries; their queues resume after the lease, reconciled first");
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        let stop = tokio::time::timeout(grace, async {
            let mut done = Vec::new();
            while let Some(a) = tasks.join_next().await {
                done.extend(joined(a));
            }
            if let Err(e) = self.record(done).await {
                tracing::error!(error = %format!("{e:#}"), "outbox: recording deliveries");
            }
        })
        .await;
        if stop.is_err() {
            tracing::warn!("outbox: deliveries still under way at the deadline; they resume at the next start");
            tasks.abort_all();
        }
        if let Err(e) = crate::store::lease::release_owned(
            &self.inner.store,
            &crate::store::lease::OUTBOX_CHANNELS,
            self.inner.clock.now_ms(),
        )
        .await
        {
            tracing::warn!(error = %format!("{e:#}"), "outbox: could not free its leases");
        }
        tracing::info!("outbox worker stopped");
    }
}

/// A finished delivery task's attempt; a task that panicked leaves its queue leased
/// (reconciled after the lease).
fn joined(done: Result<Attempt, tokio::task::JoinError>) -> Option<Attempt> {
    match done {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::error!(error = %e, "a delivery task failed; its queue resumes after its lease, reconciled first");
            None
        }
    }
}

/// Delivers one claimed item (`existing`: where the message to edit lives).
async fn deliver(inner: &Inner, item: q::Item, existing: Option<MessageRef>) -> Attempt {
    let now = inner.clock.now_ms();
    let Some(client) = inner.clients.get(&item.platform) else {
        let why = format!("platform {} is not configured", item.platform);
        return given_up(item, why, now);
    };
    let out = match drawn(inner, &item, existing.is_some(), now).await {
        Ok(out) => out,
        Err(done) => return Attempt::now(item, done, now),
    };
    let out = crate::chat::links::with_page_link(out, inner.links.as_deref(), &inner.texts);
    if matches!(out, Outbound::Update { .. }) && existing.is_none() {
        return given_up(item, "the message to edit was never posted".into(), now);
    }
    let delivery = Delivery {
        id: item.id,
        created_at: item.created_at,
    };
    let result = match reconciled(inner, client.as_ref(), &item, delivery, &out).await {
        Some(r) => r,
        None => client.send(&inner.texts, delivery, &out, existing.as_ref()).await,
    };
    attempt(item, result, inner.clock.now_ms())
}

/// An item refused for good.
fn given_up(item: q::Item, why: String, now: i64) -> Attempt {
    Attempt::now(item, Done::Failed(why), now)
}

impl Attempt {
    /// An attempt that sent nothing: its queue's pacing unchanged, due again from `now`.
    fn now(item: q::Item, outcome: Done, now: i64) -> Self {
        let due = match &outcome {
            Done::Retry { at, .. } => *at,
            _ => now,
        };
        Attempt {
            tat: item.tat,
            item,
            outcome,
            due,
        }
    }
}

/// What the item sends: its payload, or a progress message drawn now from the
/// execution's latest state (posted the first time, edited after). `Err` is the attempt's
/// outcome when there is nothing to send.
async fn drawn(inner: &Inner, item: &q::Item, posted: bool, now: i64) -> Result<Outbound, Done> {
    let out: Outbound = match serde_json::from_str(&item.payload) {
        Ok(o) => o,
        Err(e) => return Err(Done::Failed(format!("unreadable payload: {e}"))),
    };
    let Outbound::Progress { channel, execution } = out else {
        return Ok(out);
    };
    match crate::executor::progress::shown(&inner.store, &inner.texts, &inner.config, execution, now).await {
        Ok(Some(shown)) if posted => Ok(Outbound::Update {
            channel,
            message: shown.message,
        }),
        Ok(Some(shown)) => Ok(Outbound::Post {
            channel,
            message: shown.message,
        }),
        Ok(None) => Err(Done::Failed(format!("execution {execution} does not exist"))),
        // The execution could not be drawn (its plan unreadable …): it never will be, and
        // the channel's later messages must not wait behind it. The next move of the
        // execution adds a new item.
        Err(e) if e.downcast_ref::<sqlx::Error>().is_none() => {
            Err(Done::Failed(format!("drawing the progress message: {e:#}")))
        }
        // It could not be read: nothing reached the platform; the same item, a moment later.
        Err(e) => {
            tracing::warn!(outbox_id = item.id, error = %format!("{e:#}"), "drawing a progress message; will retry");
            Err(Done::Retry {
                at: now + DRAW_RETRY_MS,
                error: format!("drawing the progress message: {e:#}"),
                certain: true,
            })
        }
    }
}

/// For a post whose earlier attempt may have reached the platform: what reconciliation
/// found (`None`: send it).
async fn reconciled(
    inner: &Inner,
    client: &dyn ChatClient,
    item: &q::Item,
    delivery: Delivery,
    out: &Outbound,
) -> Option<Result<Option<crate::chat::Location>, SendError>> {
    if !(item.uncertain && matches!(out, Outbound::Post { .. } | Outbound::Direct { .. })) {
        return None;
    }
    match client.reconcile(&inner.texts, delivery, out).await {
        Ok(Reconciled::Delivered(location)) => {
            tracing::info!(outbox_id = item.id, platform = %item.platform, "an earlier attempt had delivered the message; not sending it again");
            inner
                .metrics
                .inc("releasebot_outbox_reconciled_total", &[("platform", &item.platform)]);
            Some(Ok(location))
        }
        Ok(Reconciled::SendAgain) => None,
        Ok(Reconciled::Unknown) => {
            tracing::warn!(outbox_id = item.id, platform = %item.platform, "cannot tell whether an earlier attempt delivered the message; sending it again");
            None
        }
        Err(e) => Some(Err(e)),
    }
}

/// The attempt a platform's answer makes: sent, retried after a backoff or a rate limit,
/// or failed; and the queue's pacing after it.
fn attempt(item: q::Item, result: Result<Option<crate::chat::Location>, SendError>, now: i64) -> Attempt {
    // Pacing (GCRA): one message per CHANNEL_PACE_MS on average, with a short burst.
    let (tat, due) = if paced(&item.kind) {
        let tat = item.tat.max(now) + CHANNEL_PACE_MS;
        (tat, (tat - q::BURST_MS).max(now))
    } else {
        (item.tat, now)
    };
    let outcome = match result {
        Ok(location) => Done::Sent(location.map(|loc| MessageRef {
            platform: item.platform.clone(),
            channel: loc.channel,
            ts: loc.ts,
        })),
        Err(SendError::RateLimited(after)) => {
            let wait = after
                .map(|d| d.as_millis() as i64)
                .unwrap_or(DEFAULT_RETRY_AFTER_MS)
                .max(1);
            tracing::debug!(outbox_id = item.id, platform = %item.platform, wait_ms = wait, "rate limited; holding the channel");
            return Attempt {
                outcome: Done::Retry {
                    at: now + wait,
                    error: "rate limited".into(),
                    certain: !item.uncertain,
                },
                item,
                // Held until then, and no burst right after.
                tat: now + wait + q::BURST_MS,
                due: now + wait,
            };
        }
        Err(SendError::Transient(e)) => {
            let backoff = (1_000i64 << (item.attempts - 1).clamp(0, 16)).min(MAX_BACKOFF_MS);
            tracing::warn!(outbox_id = item.id, platform = %item.platform, error = %e, backoff_ms = backoff, "delivery failed; will retry");
            Done::Retry {
                at: now + backoff,
                error: e,
                certain: false,
            }
        }
        Err(SendError::Permanent(e)) => {
            tracing::error!(outbox_id = item.id, platform = %item.platform, error = %e, "the platform refused a message");
            Done::Failed(e)
        }
    };
    Attempt {
        item,
        outcome,
        tat,
        due,
    }
}

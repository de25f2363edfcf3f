//! Outbound delivery. Handlers call [`enqueue`] inside the transaction of their state
//! change; the [`OutboxWorker`] delivers: every due delivery queue (a channel, a user's
//! direct messages, an interaction's answers) at once, each queue's items in order and
//! paced, honouring rate limits, retrying with backoff, coalescing edits of one message,
//! and reconciling a delivery that may have reached the platform before a crash.

use crate::chat::{Location, Outbound, Texts};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::runtime::Heartbeat;
use crate::store::outbox::{self as q, MessageRef, NewItem, Outcome};
use crate::store::{Conn, Store};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The platform said 429 (or the client's own pacing says wait); try again after
    /// this long (or a default). The message surely did not go out.
    RateLimited(Option<Duration>),
    /// 5xx, timeouts, connection errors: try again later. The message may have gone out.
    Transient(String),
    /// The platform refused the request itself: retrying cannot help.
    Permanent(String),
}

/// What reconciliation found out about an earlier attempt that may have reached the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// It did: the message is there (and here is where, for a new one).
    Delivered(Option<Location>),
    /// It did not, or sending again cannot make a second copy (the platform deduplicates).
    SendAgain,
    /// The platform cannot tell: sending again may leave a surplus copy.
    Unknown,
}

/// One outbox item's delivery, the same across attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    /// When the item was written (ms).
    pub created_at: i64,
}

impl Delivery {
    /// A key naming this delivery on the platform (≤ 25 characters, Discord's nonce
    /// limit): the item's id and creation time, so that it is unique across databases.
    pub fn key(&self) -> String {
        let mut t = self.created_at.max(0) as u64;
        let mut time = Vec::new();
        loop {
            time.push(char::from_digit((t % 36) as u32, 36).unwrap_or('0'));
            t /= 36;
            if t == 0 {
                break;
            }
        }
        let time: String = time.into_iter().rev().collect();
        format!("rb-{time}-{}", self.id)
    }
}

/// A platform's outbound client. Each client owns its platform-wide pacing (DingTalk's
/// per-robot limit, serenity's buckets); the outbox paces channels.
#[async_trait]
pub trait ChatClient: Send + Sync {
    /// Delivers one item. Clients attach `delivery`'s key where the platform can find it
    /// again (Slack message metadata, Discord's `nonce`, DingTalk's `outTrackId`).
    /// `existing` is where the message to edit lives (updates only). Returns where a new
    /// message was posted.
    async fn send(
        &self,
        texts: &Texts,
        delivery: Delivery,
        out: &Outbound,
        existing: Option<&MessageRef>,
    ) -> Result<Option<Location>, SendError>;

    /// Whether an earlier attempt of this delivery reached the platform. Asked before a
    /// post is sent again after an attempt whose outcome is unknown (a crash, a timeout).
    async fn reconcile(&self, _texts: &Texts, _delivery: Delivery, _out: &Outbound) -> Result<Reconciled, SendError> {
        Ok(Reconciled::Unknown)
    }
}

/// How long one platform call may take before it counts as a transient failure.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs a platform call within [`CALL_TIMEOUT`], its error classified by `classify`.
pub async fn timed<T, E>(
    f: impl std::future::Future<Output = Result<T, E>>,
    classify: impl FnOnce(E) -> SendError,
) -> Result<T, SendError> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(r) => r.map_err(classify),
        Err(_) => Err(SendError::Transient("timed out".into())),
    }
}

/// Minimum gap between two messages in one channel (Slack: ~1 message/s/channel).
pub const CHANNEL_PACE_MS: i64 = 1_000;
/// Longer than a reconciliation and a send may take together, so that a dead worker's
/// queues return soon.
const LEASE_MS: i64 = 45_000;
const MAX_BACKOFF_MS: i64 = 5 * 60_000;
const DEFAULT_RETRY_AFTER_MS: i64 = 30_000;
/// Deliveries under way at once, per platform.
pub const CONCURRENCY_PER_PLATFORM: usize = 32;
/// Platforms the outbox delivers to (items of a platform without a client fail).
const PLATFORMS: &[&str] = &[
    crate::chat::slack::PLATFORM,
    crate::chat::discord::PLATFORM,
    crate::chat::dingtalk::PLATFORM,
];

fn channel_key(platform: &str, out: &Outbound, id_hint: &str) -> String {
    match out {
        Outbound::Post { channel, .. } => format!("{platform}:{channel}"),
        Outbound::Update { channel, .. } => format!("{platform}:{channel}"),
        Outbound::Direct { user, .. } => format!("{platform}:dm:{user}"),
        Outbound::Ephemeral { user, .. } => format!("{platform}:ephemeral:{user}"),
        Outbound::OpenForm { .. } => format!("{platform}:form:{id_hint}"),
    }
}

/// Answers to one interaction (Discord) wait this long for the HTTP route to hand them
/// over as the interaction's synchronous answer; only what it did not take is sent later,
/// after the platform has the acknowledgement.
pub const REPLY_HOLD_MS: i64 = 2_500;

fn hold(platform: &str, out: &Outbound) -> i64 {
    match out {
        Outbound::Ephemeral { reply: Some(_), .. } => REPLY_HOLD_MS,
        // Slack's trigger lives 3 s: its forms go at once. Discord's open in the HTTP answer.
        Outbound::OpenForm { .. } if platform == crate::chat::discord::PLATFORM => REPLY_HOLD_MS,
        _ => 0,
    }
}

/// The interaction an answer belongs to, when the platform may take it synchronously.
fn reply_key<'a>(platform: &str, out: &'a Outbound) -> Option<&'a str> {
    if platform != crate::chat::discord::PLATFORM {
        return None;
    }
    match out {
        Outbound::Ephemeral { reply: Some(r), .. } => Some(r),
        Outbound::OpenForm { trigger, .. } => Some(trigger),
        _ => None,
    }
}

fn paced(out_kind: &str) -> bool {
    matches!(out_kind, "post" | "update" | "direct")
}

/// Writes an outbound effect into the outbox, in the caller's transaction.
/// An edit replaces earlier undelivered edits of the same message (or the
/// undelivered post itself), so that only the latest state is sent.
pub async fn enqueue(
    conn: &mut Conn,
    platform: &str,
    out: &Outbound,
    msg_key: Option<&str>,
    now: i64,
) -> anyhow::Result<()> {
    if let (Outbound::Update { message, .. }, Some(key)) = (out, msg_key) {
        if let Some((id, payload)) = q::pending_for_message(conn, key, "post").await? {
            let mut post: Outbound = serde_json::from_str(&payload)?;
            if let Outbound::Post { message: m, .. } = &mut post {
                *m = message.clone();
            }
            q::set_payload(conn, id, &serde_json::to_string(&post)?).await?;
            return Ok(());
        }
        if let Some((id, _)) = q::pending_for_message(conn, key, "update").await? {
            q::set_payload(conn, id, &serde_json::to_string(out)?).await?;
            return Ok(());
        }
    }
    let payload = serde_json::to_string(out)?;
    let hint = format!("{now}-{}", rand::random::<u32>());
    let key = channel_key(platform, out, &hint);
    q::insert(
        conn,
        &NewItem {
            platform,
            channel_key: &key,
            kind: out.kind(),
            msg_key,
            payload: &payload,
            not_before: now + hold(platform, out),
            reply_key: reply_key(platform, out),
        },
        now,
    )
    .await?;
    Ok(())
}

struct Inner {
    store: Store,
    clients: HashMap<String, Arc<dyn ChatClient>>,
    texts: Texts,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    slots: HashMap<&'static str, Arc<Semaphore>>,
}

/// The delivery worker; cheap to clone.
#[derive(Clone)]
pub struct OutboxWorker {
    inner: Arc<Inner>,
    pub notify: Arc<Notify>,
    pub heartbeat: Arc<Heartbeat>,
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

    fn add(&mut self, s: Sent) {
        match s {
            Sent::Delivered => self.delivered += 1,
            Sent::Retrying => self.retrying += 1,
            Sent::Failed => self.failed += 1,
        }
    }
}

/// What became of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Delivered,
    Retrying,
    Failed,
}

impl OutboxWorker {
    pub fn new(
        store: Store,
        clients: HashMap<String, Arc<dyn ChatClient>>,
        texts: Texts,
        clock: SharedClock,
        metrics: Arc<Metrics>,
        notify: Arc<Notify>,
    ) -> Self {
        let heartbeat = Arc::new(Heartbeat::new("outbox", clock.clone()));
        let slots = PLATFORMS
            .iter()
            .map(|p| (*p, Arc::new(Semaphore::new(CONCURRENCY_PER_PLATFORM))))
            .collect();
        Self {
            inner: Arc::new(Inner {
                store,
                clients,
                texts,
                clock,
                metrics,
                slots,
            }),
            notify,
            heartbeat,
        }
    }

    /// Claims due queues of every platform, as many as it has free delivery slots, and
    /// starts delivering the first item of each in `tasks`. Returns how many started.
    async fn dispatch(&self, tasks: &mut JoinSet<anyhow::Result<Sent>>) -> anyhow::Result<usize> {
        let now = self.inner.clock.now_ms();
        let mut started = 0;
        for platform in PLATFORMS {
            let slots = &self.inner.slots[platform];
            let free = slots.available_permits();
            if free == 0 {
                continue;
            }
            let items = q::claim(&self.inner.store, platform, now, LEASE_MS, free as i64).await?;
            for item in items {
                let permit = slots.clone().acquire_owned().await?;
                let inner = self.inner.clone();
                started += 1;
                tasks.spawn(async move {
                    let _permit = permit;
                    deliver(&inner, item).await
                });
            }
        }
        Ok(started)
    }

    /// Delivers everything due now, every queue at once, and waits for the attempts to
    /// end. Tests drive the outbox with it; `serve` runs [`OutboxWorker::run`].
    pub async fn round(&self) -> anyhow::Result<Round> {
        self.heartbeat.beat();
        let mut tasks = JoinSet::new();
        let mut round = Round::default();
        loop {
            self.dispatch(&mut tasks).await?;
            let Some(done) = tasks.join_next().await else {
                break;
            };
            round.add(flatten(done)?);
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
        let mut tasks: JoinSet<anyhow::Result<Sent>> = JoinSet::new();
        loop {
            self.heartbeat.beat();
            match self.dispatch(&mut tasks).await {
                Ok(n) if n > 0 => self.heartbeat.progress(n),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %format!("{e:#}"), "outbox worker"),
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
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Err(e) = flatten(done) {
                        tracing::error!(error = %format!("{e:#}"), "outbox delivery");
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        let stop = tokio::time::timeout(grace, async {
            while let Some(done) = tasks.join_next().await {
                if let Err(e) = flatten(done) {
                    tracing::error!(error = %format!("{e:#}"), "outbox delivery");
                }
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

fn flatten(done: Result<anyhow::Result<Sent>, tokio::task::JoinError>) -> anyhow::Result<Sent> {
    match done {
        Ok(r) => r,
        Err(e) if e.is_panic() => {
            tracing::error!("a delivery panicked; its queue resumes after its lease, reconciled first");
            Ok(Sent::Failed)
        }
        Err(e) => Err(anyhow::anyhow!("delivery task: {e}")),
    }
}

/// Gives up on an item that can never be delivered.
async fn give_up(inner: &Inner, item: &q::Item, why: &str, now: i64) -> anyhow::Result<Sent> {
    q::finish(&inner.store, item, Outcome::Failed(why), now, now).await?;
    inner
        .metrics
        .inc("releasebot_outbox_failed_total", &[("platform", &item.platform)]);
    Ok(Sent::Failed)
}

/// Delivers one claimed item and gives its queue back.
async fn deliver(inner: &Inner, item: q::Item) -> anyhow::Result<Sent> {
    let now = inner.clock.now_ms();
    let store = &inner.store;
    let Some(client) = inner.clients.get(&item.platform) else {
        return give_up(
            inner,
            &item,
            &format!("platform {} is not configured", item.platform),
            now,
        )
        .await;
    };
    let out: Outbound = match serde_json::from_str(&item.payload) {
        Ok(o) => o,
        Err(e) => return give_up(inner, &item, &format!("unreadable payload: {e}"), now).await,
    };
    let existing = match (&out, &item.msg_key) {
        (Outbound::Update { .. }, Some(key)) => match q::get_ref(&mut *store.read.acquire().await?, key).await? {
            Some(r) => Some(r),
            None => return give_up(inner, &item, "the message to edit was never posted", now).await,
        },
        _ => None,
    };
    let delivery = Delivery {
        id: item.id,
        created_at: item.created_at,
    };
    let mut result = None;
    if item.uncertain && matches!(out, Outbound::Post { .. } | Outbound::Direct { .. }) {
        match client.reconcile(&inner.texts, delivery, &out).await {
            Ok(Reconciled::Delivered(location)) => {
                tracing::info!(outbox_id = item.id, platform = %item.platform, "an earlier attempt had delivered the message; not sending it again");
                inner
                    .metrics
                    .inc("releasebot_outbox_reconciled_total", &[("platform", &item.platform)]);
                result = Some(Ok(location));
            }
            Ok(Reconciled::SendAgain) => {}
            Ok(Reconciled::Unknown) => {
                tracing::warn!(outbox_id = item.id, platform = %item.platform, "cannot tell whether an earlier attempt delivered the message; sending it again");
            }
            Err(e) => result = Some(Err(e)),
        }
    }
    let result = match result {
        Some(r) => r,
        None => client.send(&inner.texts, delivery, &out, existing.as_ref()).await,
    };
    let now = inner.clock.now_ms();
    let pace_until = if paced(&item.kind) { now + CHANNEL_PACE_MS } else { now };
    match result {
        Ok(location) => {
            let r = location.map(|loc| MessageRef {
                platform: item.platform.clone(),
                channel: loc.channel,
                ts: loc.ts,
            });
            q::finish(store, &item, Outcome::Sent(r.as_ref()), pace_until, now).await?;
            inner.metrics.inc(
                "releasebot_outbox_delivered_total",
                &[("platform", &item.platform), ("kind", &item.kind)],
            );
            inner.metrics.observe(
                "releasebot_outbox_delivery_latency_seconds",
                (now - item.created_at).max(0) as f64 / 1000.0,
            );
            Ok(Sent::Delivered)
        }
        Err(SendError::RateLimited(after)) => {
            let wait = after
                .map(|d| d.as_millis() as i64)
                .unwrap_or(DEFAULT_RETRY_AFTER_MS)
                .max(1);
            tracing::debug!(outbox_id = item.id, platform = %item.platform, wait_ms = wait, "rate limited; holding the channel");
            let retry = Outcome::Retry {
                at: now + wait,
                error: "rate limited",
                certain: !item.uncertain,
            };
            q::finish(store, &item, retry, now + wait, now).await?;
            inner.metrics.inc(
                "releasebot_outbox_retries_total",
                &[("platform", &item.platform), ("reason", "rate_limited")],
            );
            Ok(Sent::Retrying)
        }
        Err(SendError::Transient(e)) => {
            let backoff = (1_000i64 << (item.attempts - 1).clamp(0, 16)).min(MAX_BACKOFF_MS);
            tracing::warn!(outbox_id = item.id, platform = %item.platform, error = %e, backoff_ms = backoff, "delivery failed; will retry");
            let retry = Outcome::Retry {
                at: now + backoff,
                error: &e,
                certain: false,
            };
            q::finish(store, &item, retry, pace_until, now).await?;
            inner.metrics.inc(
                "releasebot_outbox_retries_total",
                &[("platform", &item.platform), ("reason", "transient")],
            );
            Ok(Sent::Retrying)
        }
        Err(SendError::Permanent(e)) => {
            tracing::error!(outbox_id = item.id, platform = %item.platform, error = %e, "the platform refused a message");
            q::finish(store, &item, Outcome::Failed(&e), pace_until, now).await?;
            inner
                .metrics
                .inc("releasebot_outbox_failed_total", &[("platform", &item.platform)]);
            Ok(Sent::Failed)
        }
    }
}

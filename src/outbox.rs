//! Outbound delivery. Handlers call [`enqueue`] inside the transaction of their state
//! change; the [`OutboxWorker`] delivers in order per channel, paces each channel,
//! honours rate limits, retries with backoff and coalesces edits of one message.

use crate::chat::{Location, Outbound, Texts};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::store::outbox::{self as q, MessageRef, NewItem};
use crate::store::{Conn, Store};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The platform said 429; try again after this long (or a default).
    RateLimited(Option<Duration>),
    /// 5xx, timeouts, connection errors: try again later.
    Transient(String),
    /// The platform refused the request itself: retrying cannot help.
    Permanent(String),
}

/// A platform's outbound client.
#[async_trait]
pub trait ChatClient: Send + Sync {
    /// Delivers one item. `existing` is where the message to edit lives (updates only).
    /// Returns where a new message was posted.
    async fn send(
        &self,
        texts: &Texts,
        out: &Outbound,
        existing: Option<&MessageRef>,
    ) -> Result<Option<Location>, SendError>;
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
/// DingTalk robots take about 20 messages a minute, then are throttled for 10 minutes.
pub const DINGTALK_PACE_MS: i64 = 3_000;

fn pace_ms(platform: &str) -> i64 {
    match platform {
        crate::chat::dingtalk::PLATFORM => DINGTALK_PACE_MS,
        _ => CHANNEL_PACE_MS,
    }
}
/// Longer than a platform call may take (calls time out after 15 s), so a dead worker's items return soon.
const LEASE_MS: i64 = 20_000;
const MAX_BACKOFF_MS: i64 = 5 * 60_000;
const DEFAULT_RETRY_AFTER_MS: i64 = 30_000;

fn channel_key(platform: &str, out: &Outbound, id_hint: &str) -> String {
    if platform == crate::chat::dingtalk::PLATFORM {
        // DingTalk limits each robot, not each conversation: one queue, paced as a whole.
        return format!("{platform}:robot");
    }
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
        q::supersede_pending(conn, key, "update").await?;
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
        },
        now,
    )
    .await?;
    Ok(())
}

pub struct OutboxWorker {
    store: Store,
    clients: HashMap<String, Arc<dyn ChatClient>>,
    texts: Texts,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    pub notify: Arc<Notify>,
}

/// What one step of the worker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Idle,
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
        Self {
            store,
            clients,
            texts,
            clock,
            metrics,
            notify,
        }
    }

    /// Delivers at most one item.
    pub async fn step(&self) -> anyhow::Result<Step> {
        let now = self.clock.now_ms();
        let Some(item) = q::lease_next(&self.store, now, LEASE_MS).await? else {
            return Ok(Step::Idle);
        };
        let Some(client) = self.clients.get(&item.platform) else {
            q::mark_failed(
                &self.store,
                item.id,
                now,
                &format!("platform {} is not configured", item.platform),
            )
            .await?;
            self.metrics
                .inc("releasebot_outbox_failed_total", &[("platform", &item.platform)]);
            return Ok(Step::Failed);
        };
        let out: Outbound = match serde_json::from_str(&item.payload) {
            Ok(o) => o,
            Err(e) => {
                q::mark_failed(&self.store, item.id, now, &format!("unreadable payload: {e}")).await?;
                return Ok(Step::Failed);
            }
        };
        let existing = match (&out, &item.msg_key) {
            (Outbound::Update { .. }, Some(key)) => match q::get_ref(&self.store, key).await? {
                Some(r) => Some(r),
                None => {
                    q::mark_failed(&self.store, item.id, now, "the message to edit was never posted").await?;
                    self.metrics
                        .inc("releasebot_outbox_failed_total", &[("platform", &item.platform)]);
                    return Ok(Step::Failed);
                }
            },
            _ => None,
        };
        let result = client.send(&self.texts, &out, existing.as_ref()).await;
        let now = self.clock.now_ms();
        match result {
            Ok(location) => {
                if let (Some(loc), Some(key)) = (location, &item.msg_key) {
                    let r = MessageRef {
                        platform: item.platform.clone(),
                        channel: loc.channel,
                        ts: loc.ts,
                    };
                    q::put_ref(&self.store, key, &r, now).await?;
                }
                q::mark_sent(&self.store, item.id, now).await?;
                if paced(&item.kind) || item.platform == crate::chat::dingtalk::PLATFORM {
                    q::pace_channel(&self.store, &item.channel_key, now + pace_ms(&item.platform)).await?;
                }
                self.metrics.inc(
                    "releasebot_outbox_delivered_total",
                    &[("platform", &item.platform), ("kind", &item.kind)],
                );
                self.metrics.observe(
                    "releasebot_outbox_delivery_latency_seconds",
                    (now - item.created_at).max(0) as f64 / 1000.0,
                );
                Ok(Step::Delivered)
            }
            Err(SendError::RateLimited(after)) => {
                let wait = after
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(DEFAULT_RETRY_AFTER_MS)
                    .max(1);
                tracing::warn!(outbox_id = item.id, platform = %item.platform, wait_ms = wait, "rate limited; holding the channel");
                q::pace_channel(&self.store, &item.channel_key, now + wait).await?;
                q::reschedule(&self.store, item.id, now + wait, "rate limited").await?;
                self.metrics.inc(
                    "releasebot_outbox_retries_total",
                    &[("platform", &item.platform), ("reason", "rate_limited")],
                );
                Ok(Step::Retrying)
            }
            Err(SendError::Transient(e)) => {
                let backoff = (1_000i64 << item.attempts.clamp(0, 16)).min(MAX_BACKOFF_MS);
                tracing::warn!(outbox_id = item.id, platform = %item.platform, error = %e, backoff_ms = backoff, "delivery failed; will retry");
                q::reschedule(&self.store, item.id, now + backoff, &e).await?;
                self.metrics.inc(
                    "releasebot_outbox_retries_total",
                    &[("platform", &item.platform), ("reason", "transient")],
                );
                Ok(Step::Retrying)
            }
            Err(SendError::Permanent(e)) => {
                tracing::error!(outbox_id = item.id, platform = %item.platform, error = %e, "the platform refused a message");
                q::mark_failed(&self.store, item.id, now, &e).await?;
                self.metrics
                    .inc("releasebot_outbox_failed_total", &[("platform", &item.platform)]);
                Ok(Step::Failed)
            }
        }
    }

    /// Runs until `shutdown` fires, then delivers what is due and stops.
    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            match self.step().await {
                Ok(Step::Idle) => {}
                Ok(_) => continue,
                Err(e) => tracing::error!(error = %format!("{e:#}"), "outbox worker"),
            }
            if shutdown.is_cancelled() {
                break;
            }
            let wait = match q::next_wake(&self.store).await {
                Ok(Some(t)) => (t - self.clock.now_ms()).clamp(10, 1_000),
                _ => 1_000,
            };
            tokio::select! {
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        // Flush what can be flushed now; paced or failing items stay for the next start.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            match self.step().await {
                Ok(Step::Delivered) => continue,
                _ => break,
            }
        }
        tracing::info!("outbox worker stopped");
    }
}

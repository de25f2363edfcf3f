//! What every platform's outbound client is to the outbox: the [`ChatClient`] trait, a
//! delivery's identity, how a call failed, and where a posted message lives.

use super::{Location, Outbound, Texts};
use async_trait::async_trait;
use std::time::Duration;

/// Where a posted message lives, so that later edits find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub platform: String,
    pub channel: String,
    pub ts: String,
}

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

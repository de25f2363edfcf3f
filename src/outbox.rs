//! The outbox's write side. Handlers call [`enqueue`] (or push to the unit of work's
//! [`Batch`]) inside the transaction of their state change; the delivery worker
//! (`workers::outbox`) delivers.

use crate::chat::Outbound;
use crate::store::outbox::{self as q, NewItem};
use crate::store::Conn;

fn channel_key(platform: &str, out: &Outbound, id_hint: &str) -> String {
    match out {
        Outbound::Post { channel, .. } => format!("{platform}:{channel}"),
        Outbound::Update { channel, .. } | Outbound::Reply { channel, .. } | Outbound::Progress { channel, .. } => {
            format!("{platform}:{channel}")
        }
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

/// One outbound effect waiting to be written.
struct Queued {
    platform: String,
    out: Outbound,
    msg_key: Option<String>,
    now: i64,
}

/// The outbound effects of one transaction, written together before it commits: one
/// statement for the items, one for their queues, whatever their number.
#[derive(Default)]
pub struct Batch {
    items: Vec<Queued>,
}

impl Batch {
    pub fn push(&mut self, platform: &str, out: &Outbound, msg_key: Option<&str>, now: i64) {
        // A progress message is drawn when it is sent: one waiting is enough.
        if matches!(out, Outbound::Progress { .. })
            && self.items.iter().any(|q| {
                matches!(q.out, Outbound::Progress { .. }) && q.msg_key.as_deref() == msg_key && q.platform == platform
            })
        {
            return;
        }
        // An edit of a message whose post or edit is still here replaces it: only the
        // latest state is sent.
        if let (Outbound::Update { message, .. }, Some(key)) = (out, msg_key) {
            if let Some(earlier) = self
                .items
                .iter_mut()
                .rev()
                .find(|q| q.msg_key.as_deref() == Some(key) && q.platform == platform)
            {
                match &mut earlier.out {
                    Outbound::Post { message: m, .. } | Outbound::Update { message: m, .. } => {
                        *m = message.clone();
                        return;
                    }
                    _ => {}
                }
            }
        }
        self.items.push(Queued {
            platform: platform.to_string(),
            out: out.clone(),
            msg_key: msg_key.map(str::to_string),
            now,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Adds another batch's effects after these.
    pub fn append(&mut self, other: &Batch) {
        for q in &other.items {
            self.push(&q.platform, &q.out, q.msg_key.as_deref(), q.now);
        }
    }

    /// Writes the effects in the caller's transaction. An edit of a message whose post or
    /// edit is still undelivered replaces its payload instead; a progress message already
    /// waiting is not written again.
    pub async fn flush(&mut self, conn: &mut Conn) -> anyhow::Result<()> {
        let batch = Batch {
            items: std::mem::take(&mut self.items),
        };
        if batch.is_empty() {
            return Ok(());
        }
        let rows = batch.rows()?;
        let edits: Vec<&str> = rows
            .iter()
            .filter(|r| r.edit.is_some())
            .filter_map(|r| r.msg_key.as_deref())
            .collect();
        let waiting = q::pending_for_messages(conn, &edits).await?;
        let drawn: Vec<&str> = rows
            .iter()
            .filter(|r| r.once)
            .filter_map(|r| r.msg_key.as_deref())
            .collect();
        let drawn_waiting = q::pending_progress(conn, &drawn).await?;
        let mut new = Vec::with_capacity(rows.len());
        let mut replaced: Vec<(i64, String)> = Vec::new();
        for row in &rows {
            if row.once && row.msg_key.as_ref().is_some_and(|k| drawn_waiting.contains(k)) {
                continue;
            }
            if let (Some(message), Some(key)) = (&row.edit, &row.msg_key) {
                if let Some((id, kind, payload)) = waiting.get(key) {
                    let payload = match kind.as_str() {
                        "post" => {
                            let mut post: serde_json::Value = serde_json::from_str(payload)?;
                            post["message"] = serde_json::from_str(message)?;
                            post.to_string()
                        }
                        _ => row.payload.clone(),
                    };
                    replaced.push((*id, payload));
                    continue;
                }
            }
            new.push(row.item());
        }
        q::set_payloads(conn, &replaced).await?;
        let now = rows.iter().map(|r| r.now).max().unwrap_or(0);
        q::insert_many(conn, &new, now).await
    }

    /// The effects as outbox rows (each edit of a named message with its message alone,
    /// which replaces the message of an undelivered post of it).
    pub(crate) fn rows(&self) -> anyhow::Result<Vec<Row>> {
        self.items
            .iter()
            .map(|queued| {
                let edit = match (&queued.out, &queued.msg_key) {
                    (Outbound::Update { message, .. }, Some(_)) => Some(serde_json::to_string(message)?),
                    _ => None,
                };
                let hint = format!("{}-{}", queued.now, rand::random::<u32>());
                Ok(Row {
                    platform: queued.platform.clone(),
                    channel_key: channel_key(&queued.platform, &queued.out, &hint),
                    kind: queued.out.kind(),
                    msg_key: queued.msg_key.clone(),
                    payload: serde_json::to_string(&queued.out)?,
                    not_before: queued.now + hold(&queued.platform, &queued.out),
                    reply_key: reply_key(&queued.platform, &queued.out).map(str::to_string),
                    edit,
                    once: matches!(queued.out, Outbound::Progress { .. }),
                    now: queued.now,
                })
            })
            .collect()
    }
}

/// An outbound effect as a row of the outbox.
pub(crate) struct Row {
    platform: String,
    channel_key: String,
    kind: &'static str,
    msg_key: Option<String>,
    payload: String,
    not_before: i64,
    reply_key: Option<String>,
    /// An edit of a named message: the message (JSON).
    pub edit: Option<String>,
    /// Written only if no item of its kind waits for the same message (a progress
    /// message, drawn when it is sent).
    pub once: bool,
    pub now: i64,
}

impl Row {
    pub(crate) fn item(&self) -> NewItem<'_> {
        NewItem {
            platform: &self.platform,
            channel_key: &self.channel_key,
            kind: self.kind,
            msg_key: self.msg_key.as_deref(),
            payload: &self.payload,
            not_before: self.not_before,
            reply_key: self.reply_key.as_deref(),
        }
    }
}

/// Writes an outbound effect into the outbox at once, in the caller's transaction (a unit
/// of work buffers its messages instead: `Work::send`). An edit replaces earlier undelivered edits of the same
/// message (or the undelivered post itself), so that only the latest state is sent.
pub async fn enqueue(
    conn: &mut Conn,
    platform: &str,
    out: &Outbound,
    msg_key: Option<&str>,
    now: i64,
) -> anyhow::Result<()> {
    let mut batch = Batch::default();
    batch.push(platform, out, msg_key, now);
    batch.flush(conn).await
}

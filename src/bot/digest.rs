//! The daily digest (`[calendar] digest`, a cron schedule): per channel, one message with
//! the tickets waiting for a decision (oldest first: which stage, which role, for how
//! long) and the releases running or paused. A channel with nothing to say gets nothing.

use super::Bot;
use crate::chat::{Message, Outbound};
use crate::domain::ticket::TicketStatus;
use crate::store::firings::Firing;
use crate::store::tickets::ListFilter;
use crate::work::Work;
use serde_json::json;
use std::collections::BTreeMap;

/// Tickets and releases looked at, at most.
const LIMIT: i64 = 1_000;

/// A channel's lines: tickets waiting (with when they started waiting), releases.
type Lines = (Vec<(i64, String)>, Vec<String>);

pub async fn fire(bot: &Bot, f: &Firing) -> anyhow::Result<()> {
    let now = bot.now();
    let mut tx = Work::begin(&bot.core).await?;
    if !super::jobs::finish(bot, &mut tx, f).await? {
        tx.rollback().await?;
        return Ok(());
    }
    let mut by_channel: BTreeMap<(String, String), Lines> = BTreeMap::new();
    let mut waiting = crate::store::tickets::list(&mut tx, ListFilter::Pending, LIMIT).await?;
    waiting.sort_by_key(|t| (t.updated_at, t.id.0));
    for t in waiting {
        let TicketStatus::InApproval(i) = t.status else {
            continue;
        };
        let Some(flow) = bot.config.flows.get(&t.flow_id) else {
            continue;
        };
        let Some(st) = flow.stages.get(i) else { continue };
        let platform = t.submitter.platform.clone();
        let channel = st
            .channel
            .as_ref()
            .and_then(|c| c.on(&platform))
            .map(str::to_string)
            .unwrap_or_else(|| t.channel.clone());
        let waited = crate::chat::texts::duration(&bot.texts, ((now - t.updated_at).max(0) / 60_000 * 60) as u64)?;
        let line = bot.texts.render(
            "digest_waiting",
            &json!({ "ticket": t.id.to_string(), "application": t.application, "stage": st.name, "role": st.role, "waited": waited }),
        )?;
        by_channel
            .entry((platform, channel))
            .or_default()
            .0
            .push((t.updated_at, line));
    }
    for e in crate::store::executions::unfinished(&mut tx, LIMIT).await? {
        let status = bot
            .texts
            .plain(&format!("exec_status_{}", e.status))
            .unwrap_or_else(|_| e.status.clone());
        let line = bot.texts.render(
            "digest_release",
            &json!({ "ticket": crate::domain::ticket::TicketId(e.ticket).to_string(), "application": e.application,
                     "status": status, "since": crate::domain::fields::format_ms(e.started_at) }),
        )?;
        by_channel.entry((e.platform, e.channel)).or_default().1.push(line);
    }
    for ((platform, channel), (tickets, releases)) in by_channel {
        let mut body = Vec::new();
        if !tickets.is_empty() {
            body.push(
                bot.texts
                    .render("digest_waiting_title", &json!({ "count": tickets.len() }))?,
            );
            body.extend(tickets.into_iter().map(|(_, l)| l));
        }
        if !releases.is_empty() {
            body.push(
                bot.texts
                    .render("digest_releases_title", &json!({ "count": releases.len() }))?,
            );
            body.extend(releases);
        }
        let message = Message {
            title: bot.texts.plain("digest_title")?,
            body: Some(body.join("\n")),
            ..Default::default()
        };
        bot.send(&mut tx, &platform, Outbound::Post { channel, message }, None)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

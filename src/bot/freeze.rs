//! `/freeze start|end|list`: ad-hoc freezes of an application's (or every) release, and
//! the list of what blocks releases now (configured windows, freezes, locks).

use super::calendar::{announce, block_lines, need_role, when};
use super::roles;
use super::{Bot, Handled};
use crate::chat::mention;
use crate::chat::Inbound;
use crate::chat::Message;
use crate::domain::calendar::Block;
use crate::domain::calendar::Scope;
use crate::store::calendar as q;
use crate::work::Work;
use serde_json::json;

/// `/freeze start APP|all [--env ENV] [--for DURATION] reason` (admin).
pub async fn freeze_start(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    application: Option<String>,
    environment: Option<String>,
    for_ms: Option<i64>,
    reason: &str,
) -> anyhow::Result<Handled> {
    if !roles::is_admin(bot, tx, &ev.actor).await? {
        return need_role(bot, tx, ev, "admin").await;
    }
    let scope = Scope {
        applications: application.into_iter().collect(),
        environments: environment.into_iter().collect(),
    };
    let now = bot.now();
    let until = for_ms.map(|d| now.saturating_add(d));
    let id = q::start_freeze(tx, &scope, reason, &ev.actor.to_string(), now, until).await?;
    let data = json!({ "id": format!("FRZ-{id}"), "actor": mention(&ev.actor), "scope": scope.describe(),
                       "reason": reason, "until": until.map(when) });
    announce(bot, tx, ev, "calendar_freeze_started", data.clone()).await?;
    bot.audit(tx, &ev.actor, None, "freeze_started", data).await?;
    Ok(Handled::Done)
}

/// `/freeze end FREEZE-ID` (admin).
pub async fn freeze_end(bot: &Bot, tx: &mut Work, ev: &Inbound, id: i64) -> anyhow::Result<Handled> {
    if !roles::is_admin(bot, tx, &ev.actor).await? {
        return need_role(bot, tx, ev, "admin").await;
    }
    if !q::end_freeze(tx, id, &ev.actor.to_string(), bot.now()).await? {
        bot.say(tx, ev, "calendar_no_freeze", json!({ "id": format!("FRZ-{id}") }))
            .await?;
        return Ok(Handled::Done);
    }
    let data = json!({ "id": format!("FRZ-{id}"), "actor": mention(&ev.actor) });
    announce(bot, tx, ev, "calendar_freeze_ended", data.clone()).await?;
    bot.audit(tx, &ev.actor, None, "freeze_ended", data).await?;
    Ok(Handled::Done)
}

/// `/freeze list`: freezes holding now (configured and ad-hoc), the configured ones to
/// come, and the locks.
pub async fn list(bot: &Bot, tx: &mut Work, ev: &Inbound) -> anyhow::Result<Handled> {
    let now = bot.now();
    let mut lines = Vec::new();
    for f in &bot.config.freezes {
        let next = match &f.window {
            crate::domain::calendar::Window::Fixed { from, .. } => Some(*from).filter(|t| *t > now),
            crate::domain::calendar::Window::Recurring { schedule, tz, .. } => {
                crate::domain::schedule::next_after_in(schedule, now, *tz)
            }
        };
        let data = json!({ "name": f.name, "scope": f.scope.describe(), "reason": f.reason,
                           "until": f.window.holds_until(now).map(when), "next": next.map(when) });
        lines.push(bot.texts.render("calendar_list_configured", &data)?);
    }
    let mut current = Vec::new();
    for f in q::open_freezes(tx, now).await? {
        current.push(Block::Freeze {
            name: format!("FRZ-{}", f.id),
            scope: f.scope.describe(),
            reason: f.reason,
            until: f.until,
        });
    }
    for l in q::locks(tx).await? {
        current.push(Block::Lock {
            application: l.application,
            environment: l.environment,
            reason: l.reason,
            by: l.by,
            since: l.since,
        });
    }
    lines.extend(block_lines(bot, &current)?);
    let body = if lines.is_empty() {
        bot.texts.plain("calendar_list_empty")?
    } else {
        lines.join("\n")
    };
    bot.ephemeral(
        tx,
        ev,
        Message {
            title: bot.texts.plain("calendar_list_title")?,
            body: Some(body),
            ..Default::default()
        },
    )
    .await?;
    Ok(Handled::Done)
}

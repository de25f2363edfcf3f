//! The release calendar in chat: what blocks a release from starting (configured and
//! ad-hoc freezes, deploy locks), and what `/freeze` (`freeze.rs`), `/lock` (`lock.rs`)
//! and `/release override` (`releases.rs`) share. A freeze or a lock stops a release from
//! starting; it never stops a rollback (rollbacks do not ask).

use super::{roles, Bot, Handled};
use crate::chat::{mention, Inbound, Message, Outbound};
use crate::domain::calendar::Block;
use crate::domain::ticket::Ticket;
use crate::domain::Actor;
use crate::store::calendar as q;
use crate::work::Work;
use serde_json::json;

/// Calendar changes are handled in order with one another.
pub const ORDER_KEY: &str = "calendar";

pub(super) fn when(ms: i64) -> String {
    crate::domain::fields::format_ms(ms)
}

/// Everything that stops `ticket` from starting its release now (nothing when its round
/// was overridden).
pub async fn blocks(bot: &Bot, conn: &mut Work, ticket: &Ticket) -> anyhow::Result<Vec<Block>> {
    if q::has_override(conn, ticket.id.0, ticket.round).await? {
        return Ok(vec![]);
    }
    blocks_for(bot, conn, &ticket.application, &crate::executor::environment_of(ticket)).await
}

/// What stops a release of `application` to `environment` from starting now.
pub async fn blocks_for(
    bot: &Bot,
    conn: &mut Work,
    application: &str,
    environment: &str,
) -> anyhow::Result<Vec<Block>> {
    let now = bot.now();
    let mut out = Vec::new();
    for f in &bot.config.freezes {
        if let Some(until) = f
            .window
            .holds_until(now)
            .filter(|_| f.scope.covers(application, environment))
        {
            out.push(Block::Freeze {
                name: f.name.clone(),
                scope: f.scope.describe(),
                reason: f.reason.clone(),
                until: Some(until),
            });
        }
    }
    for f in q::open_freezes(conn, now).await? {
        if f.scope.covers(application, environment) {
            out.push(Block::Freeze {
                name: format!("FRZ-{}", f.id),
                scope: f.scope.describe(),
                reason: f.reason,
                until: f.until,
            });
        }
    }
    if let Some(windows) = bot.config.release_windows.get(application) {
        if !windows.iter().any(|w| w.holds_until(now).is_some()) {
            out.push(Block::OutsideWindow {
                application: application.to_string(),
                next: crate::domain::calendar::next_window(windows, now),
            });
        }
    }
    for l in q::locks(conn).await? {
        if l.application.eq_ignore_ascii_case(application)
            && (l.environment == "*" || l.environment.eq_ignore_ascii_case(environment))
        {
            out.push(Block::Lock {
                application: l.application,
                environment: l.environment,
                reason: l.reason,
                by: l.by,
                since: l.since,
            });
        }
    }
    Ok(out)
}

/// One line per block, in the reader's language.
pub fn block_lines(bot: &Bot, blocks: &[Block]) -> anyhow::Result<Vec<String>> {
    blocks
        .iter()
        .map(|b| match b {
            Block::Freeze {
                name,
                scope,
                reason,
                until,
            } => bot.texts.render(
                "calendar_block_freeze",
                &json!({ "name": name, "scope": scope, "reason": reason, "until": until.map(when) }),
            ),
            Block::OutsideWindow { application, next } => bot.texts.render(
                "calendar_block_window",
                &json!({ "application": application, "next": next.map(when) }),
            ),
            Block::Lock {
                application,
                environment,
                reason,
                by,
                since,
            } => {
                let by = Actor::parse(by).map(|a| mention(&a)).unwrap_or_else(|| by.clone());
                bot.texts.render(
                    "calendar_block_lock",
                    &json!({ "application": application, "environment": environment, "reason": reason, "by": by, "since": when(*since) }),
                )
            }
        })
        .collect()
}

/// Refuses to start `ticket`'s release while something blocks it: the approver is told
/// what, until when, and how to override; nothing changes. True when it refused.
pub async fn refuse_blocked(bot: &Bot, tx: &mut Work, ev: &Inbound, ticket: &Ticket) -> anyhow::Result<bool> {
    let blocks = blocks(bot, tx, ticket).await?;
    if blocks.is_empty() {
        return Ok(false);
    }
    bot.metrics.inc("releasebot_refusals_total", &[("reason", "calendar")]);
    let message = Message {
        title: bot
            .texts
            .render("calendar_blocked", &json!({ "ticket": ticket.id.to_string() }))?,
        body: Some(block_lines(bot, &blocks)?.join("\n")),
        page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
        context: Some(bot.texts.render(
            "calendar_override_hint",
            &json!({ "ticket": ticket.id.to_string(), "role": bot.config.calendar.override_role }),
        )?),
        ..Default::default()
    };
    bot.ephemeral(tx, ev, message).await?;
    Ok(true)
}

pub(super) async fn is_role(bot: &Bot, conn: &mut Work, actor: &Actor, role: &str) -> anyhow::Result<bool> {
    Ok(roles::has_role(bot, conn, actor, role, "").await? || roles::is_admin(bot, conn, actor).await?)
}

pub(super) async fn need_role(bot: &Bot, tx: &mut Work, ev: &Inbound, role: &str) -> anyhow::Result<Handled> {
    bot.say(tx, ev, "calendar_need_role", json!({ "role": role })).await?;
    Ok(Handled::Done)
}

/// Says something to the channel the command came from, for everyone.
pub(super) async fn announce(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    key: &str,
    data: serde_json::Value,
) -> anyhow::Result<()> {
    let message = Message {
        title: bot.texts.render(key, &data)?,
        ..Default::default()
    };
    bot.send(
        tx,
        &ev.actor.platform,
        Outbound::Post {
            channel: ev.channel.clone(),
            message,
        },
        None,
    )
    .await
}

//! The release calendar in chat: what blocks a release from starting (configured and
//! ad-hoc freezes, deploy locks), `/freeze`, `/lock`, `/unlock`, and the emergency
//! `/release override`. A freeze or a lock stops a release from starting; it never stops
//! a rollback (rollbacks do not ask).

use super::{roles, Bot, Handled};
use crate::chat::{mention, Inbound, Message, Outbound};
use crate::domain::calendar::{Block, Scope};
use crate::domain::ticket::{Ticket, TicketId};
use crate::domain::Actor;
use crate::store::calendar as q;
use crate::work::Work;
use serde_json::json;

/// Calendar changes are handled in order with one another.
pub const ORDER_KEY: &str = "calendar";

fn when(ms: i64) -> String {
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

async fn is_role(bot: &Bot, conn: &mut Work, actor: &Actor, role: &str) -> anyhow::Result<bool> {
    Ok(roles::has_role(bot, conn, actor, role, "").await? || roles::is_admin(bot, conn, actor).await?)
}

async fn need_role(bot: &Bot, tx: &mut Work, ev: &Inbound, role: &str) -> anyhow::Result<Handled> {
    bot.say(tx, ev, "calendar_need_role", json!({ "role": role })).await?;
    Ok(Handled::Done)
}

/// Says something to the channel the command came from, for everyone.
async fn announce(bot: &Bot, tx: &mut Work, ev: &Inbound, key: &str, data: serde_json::Value) -> anyhow::Result<()> {
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

/// `/lock APP [ENV] reason` (ops or admin): the environment when the first word is one.
pub async fn lock(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    application: &str,
    words: &[String],
) -> anyhow::Result<Handled> {
    if !is_role(bot, tx, &ev.actor, "ops").await? {
        return need_role(bot, tx, ev, "ops").await;
    }
    let (environment, reason) = match words.split_first() {
        Some((first, rest))
            if !rest.is_empty() && bot.config.environments.iter().any(|e| e.eq_ignore_ascii_case(first)) =>
        {
            (first.to_ascii_lowercase(), rest.join(" "))
        }
        _ => ("*".to_string(), words.join(" ")),
    };
    let l = q::Lock {
        application: application.to_string(),
        environment: environment.clone(),
        reason: reason.clone(),
        by: ev.actor.to_string(),
        since: bot.now(),
    };
    if !q::lock(tx, &l).await? {
        bot.say(
            tx,
            ev,
            "calendar_locked_already",
            json!({ "application": application, "environment": environment }),
        )
        .await?;
        return Ok(Handled::Done);
    }
    let data = json!({ "application": application, "environment": environment, "reason": reason, "actor": mention(&ev.actor) });
    announce(bot, tx, ev, "calendar_locked", data.clone()).await?;
    bot.audit(tx, &ev.actor, None, "locked", data).await?;
    Ok(Handled::Done)
}

/// `/unlock APP [ENV]` (ops or admin).
pub async fn unlock(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    application: &str,
    environment: Option<&str>,
) -> anyhow::Result<Handled> {
    if !is_role(bot, tx, &ev.actor, "ops").await? {
        return need_role(bot, tx, ev, "ops").await;
    }
    let environment = environment.map(str::to_ascii_lowercase).unwrap_or_else(|| "*".into());
    if !q::unlock(tx, application, &environment).await? {
        bot.say(
            tx,
            ev,
            "calendar_not_locked",
            json!({ "application": application, "environment": environment }),
        )
        .await?;
        return Ok(Handled::Done);
    }
    let data = json!({ "application": application, "environment": environment, "actor": mention(&ev.actor) });
    announce(bot, tx, ev, "calendar_unlocked", data.clone()).await?;
    bot.audit(tx, &ev.actor, None, "unlocked", data).await?;
    Ok(Handled::Done)
}

/// `/release override REL-ID reason` (the override role): the ticket's release may start
/// through the freezes and locks that block it now; announced in its channel and audited.
pub async fn release_override(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    id: TicketId,
    reason: &str,
) -> anyhow::Result<Handled> {
    let role = bot.config.calendar.override_role.clone();
    if !is_role(bot, tx, &ev.actor, &role).await? {
        return need_role(bot, tx, ev, &role).await;
    }
    let Some(ticket) = crate::store::tickets::get(tx, id).await? else {
        bot.say(tx, ev, "ticket_not_found", json!({ "ticket": id.to_string() }))
            .await?;
        return Ok(Handled::Done);
    };
    if !ticket.status.is_open() {
        bot.say(tx, ev, "calendar_override_closed", json!({ "ticket": id.to_string() }))
            .await?;
        return Ok(Handled::Done);
    }
    let blocking = blocks(bot, tx, &ticket).await?;
    if !q::add_override(tx, id.0, ticket.round, reason, &ev.actor.to_string(), bot.now()).await? {
        bot.say(tx, ev, "calendar_override_already", json!({ "ticket": id.to_string() }))
            .await?;
        return Ok(Handled::Done);
    }
    let lines = block_lines(bot, &blocking)?;
    let message = Message {
        title: bot.texts.render(
            "calendar_override_announced",
            &json!({ "ticket": id.to_string(), "actor": mention(&ev.actor), "reason": reason }),
        )?,
        body: (!lines.is_empty()).then(|| lines.join("\n")),
        page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
        ..Default::default()
    };
    bot.send(
        tx,
        &ticket.submitter.platform,
        Outbound::Post {
            channel: ticket.channel.clone(),
            message,
        },
        None,
    )
    .await?;
    bot.say(tx, ev, "calendar_override_done", json!({ "ticket": id.to_string() }))
        .await?;
    let detail = json!({ "reason": reason, "round": ticket.round, "blocks": blocking });
    bot.audit(tx, &ev.actor, Some(id), "release_override", detail).await?;
    Ok(Handled::Done)
}

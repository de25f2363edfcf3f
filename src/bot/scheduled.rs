//! Scheduled releases (seed 001's 定时自动发版): a release stage approved before the
//! ticket's planned time does not start; it waits for that time, announced in the
//! ticket's channel with **Start now** / **Postpone** / **Cancel**, the release role is
//! reminded `release_reminder` before, and the plan starts at the time unless someone
//! acted. The timers are the scheduler jobs `release:{ticket}` (the start) and
//! `release-reminder:{ticket}`; a restart neither loses nor repeats them.

use super::{roles, Bot, Handled};
use crate::chat::actions::ScheduleAction;
use crate::chat::{mention, Button, ButtonStyle, Inbound, Message, Outbound};
use crate::domain::ticket::{Ticket, TicketId, TicketStatus};
use crate::domain::{Actor, FieldKind};
use crate::store::firings::{self, Firing};
use crate::work::Work;
use serde_json::json;

fn start_job(id: TicketId) -> String {
    crate::domain::jobs::Job::ReleaseStart(id.0).key()
}

fn reminder_job(id: TicketId) -> String {
    crate::domain::jobs::Job::ReleaseReminder(id.0).key()
}

fn message_key(id: TicketId) -> String {
    format!("t{}:scheduled", id.0)
}

fn when(ms: i64) -> String {
    crate::domain::fields::format_ms(ms)
}

/// The ticket's planned time: its submission's date-and-time answer.
pub fn planned(bot: &Bot, ticket: &Ticket) -> Option<i64> {
    let flow = bot.config.flows.get(&ticket.flow_id)?;
    let field = flow
        .stages
        .first()?
        .fields
        .iter()
        .find(|f| f.kind == FieldKind::DateTime)?;
    let raw = ticket.fields.get(&field.id)?;
    crate::domain::fields::parse_datetime(raw).map(|t| t.timestamp_millis())
}

/// The role of the stage that starts the release (`ops` when the flow has none).
fn release_role(bot: &Bot, ticket: &Ticket) -> String {
    bot.config
        .flows
        .get(&ticket.flow_id)
        .and_then(|fl| fl.stages.iter().find(|s| s.starts_execution))
        .map(|s| s.role.clone())
        .unwrap_or_else(|| "ops".into())
}

fn buttons(bot: &Bot, id: TicketId) -> anyhow::Result<Vec<Button>> {
    let b = |key: &str, a: ScheduleAction, style| -> anyhow::Result<Button> {
        Ok(Button {
            label: bot.texts.plain(key)?,
            action: a.encode(),
            style,
            confirm: None,
        })
    };
    Ok(vec![
        b(
            "btn_sched_start",
            ScheduleAction::StartNow { ticket: id },
            ButtonStyle::Primary,
        )?,
        b(
            "btn_sched_postpone",
            ScheduleAction::Postpone { ticket: id },
            ButtonStyle::Default,
        )?,
        b(
            "btn_sched_cancel",
            ScheduleAction::Cancel { ticket: id },
            ButtonStyle::Danger,
        )?,
    ])
}

/// The scheduled release's message, waiting for `at`.
fn waiting(bot: &Bot, ticket: &Ticket, at: i64) -> anyhow::Result<Message> {
    let data = json!({ "ticket": ticket.id.to_string(), "application": ticket.application, "at": when(at),
                       "postpone": crate::chat::texts::duration(&bot.texts, (bot.config.calendar.postpone.ms() / 1000) as u64)? });
    Ok(Message {
        page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
        title: bot.texts.render("sched_title", &data)?,
        body: Some(bot.texts.render("sched_body", &data)?),
        buttons: buttons(bot, ticket.id)?,
        ..Default::default()
    })
}

async fn edit(bot: &Bot, tx: &mut Work, ticket: &Ticket, message: Message) -> anyhow::Result<()> {
    let out = Outbound::Update {
        channel: ticket.channel.clone(),
        message,
    };
    bot.send(tx, &ticket.submitter.platform, out, Some(&message_key(ticket.id)))
        .await
}

async fn plan(bot: &Bot, conn: &mut Work, ticket: &Ticket, at: i64) -> anyhow::Result<()> {
    let round = ticket.round.to_string();
    firings::set(conn, &start_job(ticket.id), at, &round).await?;
    let remind_at = at.saturating_sub(bot.config.calendar.release_reminder.ms());
    if remind_at > bot.now() {
        firings::set(conn, &reminder_job(ticket.id), remind_at, &round).await?;
    } else {
        firings::cancel(conn, &reminder_job(ticket.id)).await?;
    }
    conn.wake_scheduler();
    Ok(())
}

async fn unplan(conn: &mut Work, id: TicketId) -> anyhow::Result<()> {
    firings::cancel(conn, &start_job(id)).await?;
    firings::cancel(conn, &reminder_job(id)).await
}

/// Holds a release approved before its ticket's planned time: plans its start and its
/// reminder and says so in the ticket's channel. True when it held it.
pub async fn hold(bot: &Bot, tx: &mut Work, ticket: &Ticket) -> anyhow::Result<bool> {
    if !bot.config.calendar.hold_until_planned {
        return Ok(false);
    }
    let Some(at) = planned(bot, ticket).filter(|at| *at > bot.now()) else {
        return Ok(false);
    };
    plan(bot, tx, ticket, at).await?;
    let post = Outbound::Post {
        channel: ticket.channel.clone(),
        message: waiting(bot, ticket, at)?,
    };
    bot.send(tx, &ticket.submitter.platform, post, Some(&message_key(ticket.id)))
        .await?;
    let system = Actor::new("releasebot", "scheduler");
    bot.audit(tx, &system, Some(ticket.id), "release_scheduled", json!({ "at": at }))
        .await?;
    Ok(true)
}

/// Whether the ticket's release waits for its time (approved, not started).
async fn is_waiting(tx: &mut Work, ticket: &Ticket) -> anyhow::Result<bool> {
    Ok(matches!(ticket.status, TicketStatus::Releasing(_))
        && crate::store::executions::for_ticket::<serde_json::Value>(tx, ticket.id)
            .await?
            .is_none())
}

/// Starts the plan now (its time came, or someone pressed Start now).
async fn start(bot: &Bot, tx: &mut Work, ticket: &Ticket, by: Option<&Actor>) -> anyhow::Result<()> {
    let Some(plan) = bot.config.plan_of_service(&ticket.service) else {
        return Ok(());
    };
    unplan(tx, ticket.id).await?;
    let started = crate::executor::start(&bot.exec_deps(), tx, ticket, plan).await?;
    if let crate::executor::Started::Running(id) = started {
        tx.wake_execution(id);
    }
    let data = json!({ "ticket": ticket.id.to_string(), "at": when(bot.now()), "by": by.map(mention) });
    edit(
        bot,
        tx,
        ticket,
        Message {
            title: bot.texts.render("sched_started", &data)?,
            page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
            ..Default::default()
        },
    )
    .await
}

/// A scheduled release's timer fired: its reminder, or its start.
pub async fn on_timer(bot: &Bot, f: &Firing, id: i64, reminder: bool) -> anyhow::Result<()> {
    let mut tx = Work::begin(&bot.core).await?;
    if !super::jobs::finish(bot, &mut tx, f).await? {
        tx.rollback().await?;
        return Ok(());
    }
    let Some(ticket) = crate::store::tickets::get(&mut tx, TicketId(id)).await? else {
        tx.commit().await?;
        return Ok(());
    };
    if ticket.round.to_string() != f.payload || !is_waiting(&mut tx, &ticket).await? {
        tx.commit().await?;
        return Ok(());
    }
    if reminder {
        let role = release_role(bot, &ticket);
        let members: Vec<String> = roles::members(bot, &mut tx, &role, &ticket.application)
            .await?
            .iter()
            .filter(|a| a.platform == ticket.submitter.platform)
            .map(mention)
            .collect();
        let at = firings::pending(&mut tx, &start_job(ticket.id))
            .await?
            .map(|(_, due)| due)
            .unwrap_or(f.due);
        let mut message = waiting(bot, &ticket, at)?;
        message.title = bot.texts.render(
            "sched_reminder",
            &json!({ "ticket": ticket.id.to_string(), "at": when(at), "members": members.join(" ") }),
        )?;
        let post = Outbound::Post {
            channel: ticket.channel.clone(),
            message,
        };
        bot.send(&mut tx, &ticket.submitter.platform, post, None).await?;
    } else {
        let blocks = super::calendar::blocks(bot, &mut tx, &ticket).await?;
        if blocks.is_empty() {
            start(bot, &mut tx, &ticket, None).await?;
        } else {
            // A freeze or a lock holds at the planned time: it waits for a person.
            let mut message = waiting(bot, &ticket, f.due)?;
            message.title = bot
                .texts
                .render("sched_blocked", &json!({ "ticket": ticket.id.to_string() }))?;
            message.body = Some(super::calendar::block_lines(bot, &blocks)?.join("\n"));
            edit(bot, &mut tx, &ticket, message).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Start now / Postpone / Cancel: the release role, ops or an admin.
pub async fn on_action(bot: &Bot, tx: &mut Work, ev: &Inbound, a: ScheduleAction) -> anyhow::Result<Handled> {
    let Some(mut ticket) = crate::store::tickets::get(tx, a.ticket()).await? else {
        bot.say(tx, ev, "ticket_not_found", json!({ "ticket": a.ticket().to_string() }))
            .await?;
        return Ok(Handled::Done);
    };
    if !is_waiting(tx, &ticket).await? {
        bot.say(tx, ev, "sched_not_waiting", json!({ "ticket": ticket.id.to_string() }))
            .await?;
        return Ok(Handled::Done);
    }
    let role = release_role(bot, &ticket);
    let allowed = roles::has_role(bot, tx, &ev.actor, &role, &ticket.application).await?
        || roles::has_role(bot, tx, &ev.actor, "ops", &ticket.application).await?
        || roles::is_admin(bot, tx, &ev.actor).await?;
    if !allowed {
        bot.say(tx, ev, "calendar_need_role", json!({ "role": role })).await?;
        return Ok(Handled::Done);
    }
    match a {
        ScheduleAction::StartNow { .. } => {
            if super::calendar::refuse_blocked(bot, tx, ev, &ticket).await? {
                return Ok(Handled::Done);
            }
            start(bot, tx, &ticket, Some(&ev.actor)).await?;
            bot.audit(tx, &ev.actor, Some(ticket.id), "release_started_early", json!({}))
                .await?;
        }
        ScheduleAction::Postpone { .. } => {
            let due = firings::pending(tx, &start_job(ticket.id))
                .await?
                .map(|(_, due)| due)
                .unwrap_or_else(|| bot.now());
            let at = due.max(bot.now()).saturating_add(bot.config.calendar.postpone.ms());
            plan(bot, tx, &ticket, at).await?;
            edit(bot, tx, &ticket, waiting(bot, &ticket, at)?).await?;
            bot.say(
                tx,
                ev,
                "sched_postponed",
                json!({ "ticket": ticket.id.to_string(), "at": when(at) }),
            )
            .await?;
            bot.audit(tx, &ev.actor, Some(ticket.id), "release_postponed", json!({ "at": at }))
                .await?;
        }
        ScheduleAction::Cancel { .. } => {
            unplan(tx, ticket.id).await?;
            ticket.apply(TicketStatus::Closed);
            if !crate::store::tickets::update(tx, &ticket, bot.now()).await? {
                return Ok(Handled::Conflict);
            }
            let data = json!({ "ticket": ticket.id.to_string(), "actor": mention(&ev.actor), "at": when(bot.now()) });
            edit(
                bot,
                tx,
                &ticket,
                Message {
                    title: bot.texts.render("sched_cancelled", &data)?,
                    page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
                    ..Default::default()
                },
            )
            .await?;
            bot.audit(
                tx,
                &ev.actor,
                Some(ticket.id),
                "closed",
                json!({ "comment": bot.texts.plain("sched_cancel_reason")? }),
            )
            .await?;
        }
    }
    Ok(Handled::Done)
}

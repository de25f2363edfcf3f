//! SLA reminders and escalation: a stage with `sla` whose decision is late reminds its
//! role's members once per SLA period (a reply under the stage's message);
//! after `escalate_after` reminders, a stage with `escalate_to` is escalated — that role
//! may then decide it too — announced and audited. The timer is the scheduler job
//! `sla:{ticket}`: a reminder checks that the stage still waits (same round, same stage,
//! still with an SLA) and stops silently otherwise, so a decision, a withdrawal or a
//! changed flow ends the reminders.

use super::{roles, Bot};
use crate::chat::{mention, Message, Outbound};
use crate::domain::ticket::{Ticket, TicketStatus};
use crate::domain::Actor;
use crate::store::calendar as q;
use crate::store::firings::{self, Firing};
use crate::work::Work;
use serde_json::json;

fn job(ticket: i64) -> String {
    crate::domain::jobs::Job::SlaReminder(ticket).key()
}

/// Plans the first reminder of the stage a ticket now waits at (when it has an SLA).
pub async fn plan(bot: &Bot, conn: &mut Work, ticket: &Ticket, stage: usize) -> anyhow::Result<()> {
    let Some(flow) = bot.config.flows.get(&ticket.flow_id) else {
        return Ok(());
    };
    match flow.stages.get(stage).and_then(|s| s.sla) {
        Some(sla) => {
            let payload = format!("{}:{stage}:1", ticket.round);
            firings::set(conn, &job(ticket.id.0), bot.now().saturating_add(sla.ms()), &payload).await?;
            conn.wake_scheduler();
        }
        None => firings::cancel(conn, &job(ticket.id.0)).await?,
    }
    Ok(())
}

/// Whether `actor` may decide the stage as the role it was escalated to.
pub async fn may_decide_as_backup(
    bot: &Bot,
    conn: &mut Work,
    ticket: &Ticket,
    stage: usize,
    actor: &Actor,
) -> anyhow::Result<bool> {
    match q::escalated_to(conn, ticket.id.0, ticket.round, stage).await? {
        Some(role) => roles::has_role(bot, conn, actor, &role, &ticket.application).await,
        None => Ok(false),
    }
}

/// A reminder fired.
pub async fn on_timer(bot: &Bot, f: &Firing, ticket: i64) -> anyhow::Result<()> {
    let mut parts = f.payload.split(':').map(|p| p.parse::<u32>().ok());
    let (Some(Some(round)), Some(Some(stage)), Some(Some(n))) = (parts.next(), parts.next(), parts.next()) else {
        anyhow::bail!("bad reminder {}", f.payload);
    };
    let stage = stage as usize;
    let mut tx = Work::begin(&bot.core).await?;
    if !super::jobs::finish(bot, &mut tx, f).await? {
        tx.rollback().await?;
        return Ok(());
    }
    remind(bot, &mut tx, ticket, round, stage, n).await?;
    tx.commit().await?;
    Ok(())
}

async fn remind(bot: &Bot, tx: &mut Work, id: i64, round: u32, stage: usize, n: u32) -> anyhow::Result<()> {
    let Some(ticket) = crate::store::tickets::get(tx, crate::domain::ticket::TicketId(id)).await? else {
        return Ok(());
    };
    // Decided, sent back, withdrawn, or the flow changed: the reminders stop.
    if ticket.status != TicketStatus::InApproval(stage) || ticket.round != round {
        return Ok(());
    }
    let Some(flow) = bot.config.flows.get(&ticket.flow_id) else {
        return Ok(());
    };
    let Some(st) = flow.stages.get(stage) else {
        return Ok(());
    };
    let Some(sla) = st.sla else {
        return Ok(());
    };
    let platform = ticket.submitter.platform.clone();
    let channel = st
        .channel
        .as_ref()
        .and_then(|c| c.on(&platform))
        .map(str::to_string)
        .unwrap_or_else(|| ticket.channel.clone());
    let service = bot.config.service_name(&ticket.service);
    let members = |list: Vec<Actor>| {
        list.into_iter()
            .filter(|a| a.platform == platform)
            .map(|a| mention(&a))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let waited = sla.ms().saturating_mul(i64::from(n));
    let waited = crate::chat::texts::duration(&bot.texts, (waited / 1000).max(0) as u64)?;
    let who = members(roles::members(bot, tx, &st.role, &ticket.application).await?);
    let data = json!({ "ticket": ticket.id.to_string(), "service": service, "stage": st.name, "role": st.role,
                       "waited": waited, "members": who, "n": n });
    let mut message = Message {
        title: bot.texts.render("sla_reminder", &data)?,
        body: Some(bot.texts.render("sla_reminder_body", &data)?),
        page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
        ..Default::default()
    };
    let escalate = st.escalate_to.as_ref().filter(|_| n >= st.escalate_after);
    if let Some(backup) = escalate {
        if q::escalate(tx, id, round, stage, backup, bot.now()).await? {
            let backups = members(roles::members(bot, tx, backup, &ticket.application).await?);
            let data = json!({ "ticket": ticket.id.to_string(), "stage": st.name, "role": st.role, "backup": backup,
                               "waited": data["waited"], "members": backups });
            message = Message {
                title: bot.texts.render("sla_escalated", &data)?,
                body: Some(bot.texts.render("sla_escalated_body", &data)?),
                page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
                ..Default::default()
            };
            bot.metrics.inc("releasebot_escalations_total", &[]);
            bot.audit(
                tx,
                &Actor::new("releasebot", "scheduler"),
                Some(ticket.id),
                "escalated",
                json!({ "stage": stage, "stage_name": st.name, "role": st.role, "backup": backup, "reminders": n }),
            )
            .await?;
        }
    }
    // Under the stage's message (its thread on Slack, a reply on Discord).
    let parent = super::tickets::stage_key(ticket.id, round, stage);
    bot.send(tx, &platform, Outbound::Reply { channel, message }, Some(&parent))
        .await?;
    bot.metrics.inc("releasebot_sla_reminders_total", &[]);
    // The next reminder, one SLA period on.
    let payload = format!("{round}:{stage}:{}", n + 1);
    firings::set(tx, &job(id), bot.now().saturating_add(sla.ms()), &payload).await?;
    Ok(())
}

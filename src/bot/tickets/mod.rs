//! Tickets: submission, stage decisions, resubmission, withdrawal, show and list.

use super::actions::{Action, FormCallback};
use super::{roles, Bot, Handled};
use crate::chat::{Inbound, Message, Outbound};
use crate::command::ListScope;
use crate::config::ServiceConfig;
use crate::domain::fields::{self, FieldError, ValidationContext};
use crate::domain::flow::{FieldDef, Flow};
use crate::domain::ticket::{
    initial_status, DecideRequest, Decision, DecisionKind, Denied, Outcome, Ticket, TicketId, TicketStatus,
};
use crate::domain::Actor;
use crate::store::audit;
use crate::store::tickets::{self as q, ListFilter, NewTicket};
use crate::views::{self, StageState, COMMENT_FIELD};
use crate::work::Work;
use serde_json::json;
use std::collections::BTreeMap;

mod buttons;
mod checks;
mod close;
mod decide;
mod forms;
mod resubmit;
mod show;
mod submit;

pub use buttons::*;
use checks::*;
pub use close::*;
pub use decide::*;
pub use forms::*;
pub use resubmit::*;
pub use show::*;
pub use submit::*;

/// The message key of a stage message (one per stage and round).
pub(crate) fn stage_key(t: TicketId, round: u32, stage: usize) -> String {
    format!("t{}:r{round}:s{stage}", t.0)
}

fn sent_back_key(t: TicketId, round: u32) -> String {
    format!("t{}:r{round}:back", t.0)
}

pub(crate) struct Loaded<'a> {
    pub ticket: Ticket,
    pub flow: &'a Flow,
    pub service: &'a ServiceConfig,
}

async fn load<'a>(bot: &'a Bot, tx: &mut Work, id: TicketId) -> anyhow::Result<Option<Loaded<'a>>> {
    let Some(ticket) = q::get(tx, id).await? else {
        tracing::Span::current().record("ticket", tracing::field::display(id));
        return Ok(None);
    };
    loaded(bot, ticket).map(Some)
}

/// A ticket with its flow and service from the configuration.
fn loaded(bot: &Bot, ticket: Ticket) -> anyhow::Result<Loaded<'_>> {
    let id = ticket.id;
    tracing::Span::current().record("ticket", tracing::field::display(id));
    let flow = bot
        .config
        .flows
        .get(&ticket.flow_id)
        .ok_or_else(|| anyhow::anyhow!("{id} uses flow {} which is no longer configured", ticket.flow_id))?;
    let service = bot
        .config
        .services
        .get(&ticket.service)
        .ok_or_else(|| anyhow::anyhow!("{id} uses service {} which is no longer configured", ticket.service))?;
    Ok(Loaded { ticket, flow, service })
}

/// Loads a ticket or tells the user it does not exist.
pub(crate) async fn load_or_say<'a>(
    bot: &'a Bot,
    tx: &mut Work,
    ev: &Inbound,
    id: TicketId,
) -> anyhow::Result<Option<Loaded<'a>>> {
    let l = load(bot, tx, id).await?;
    if l.is_none() {
        bot.say(tx, ev, "ticket_not_found", json!({ "ticket": id.to_string() }))
            .await?;
    }
    Ok(l)
}

async fn record(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    ticket: TicketId,
    action: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    bot.metrics.inc("releasebot_transitions_total", &[("action", action)]);
    bot.audit(tx, &ev.actor, Some(ticket), action, detail).await
}

fn stage_channel(flow: &Flow, ticket: &Ticket, stage: usize) -> String {
    flow.stages
        .get(stage)
        .and_then(|s| s.channel.as_ref())
        .and_then(|c| c.on(&ticket.submitter.platform))
        .map(str::to_string)
        .unwrap_or_else(|| ticket.channel.clone())
}

/// Posts the message asking a stage's role to decide.
async fn post_stage(bot: &Bot, tx: &mut Work, l: &Loaded<'_>, stage: usize) -> anyhow::Result<()> {
    let st = &l.flow.stages[stage];
    let platform = l.ticket.submitter.platform.clone();
    let members: Vec<Actor> = roles::members(bot, tx, &st.role, &l.ticket.application)
        .await?
        .into_iter()
        .filter(|a| a.platform == platform)
        .collect();
    let msg = views::stage_message(
        &bot.texts,
        &l.ticket,
        l.flow,
        &l.service.name,
        stage,
        StageState::Waiting {
            members: &members,
            approvals: &[],
        },
    )?;
    let channel = stage_channel(l.flow, &l.ticket, stage);
    let key = stage_key(l.ticket.id, l.ticket.round, stage);
    bot.send(tx, &platform, Outbound::Post { channel, message: msg }, Some(&key))
        .await?;
    crate::bot::reminders::plan(bot, tx, &l.ticket, stage).await
}

/// Edits a stage message in place.
async fn edit_stage(
    bot: &Bot,
    tx: &mut Work,
    l: &Loaded<'_>,
    stage: usize,
    round: u32,
    message: Message,
) -> anyhow::Result<()> {
    let channel = stage_channel(l.flow, &l.ticket, stage);
    let key = stage_key(l.ticket.id, round, stage);
    bot.send(
        tx,
        &l.ticket.submitter.platform,
        Outbound::Update { channel, message },
        Some(&key),
    )
    .await
}

async fn post_to_ticket_channel(
    bot: &Bot,
    tx: &mut Work,
    l: &Loaded<'_>,
    message: Message,
    key: Option<&str>,
) -> anyhow::Result<()> {
    bot.send(
        tx,
        &l.ticket.submitter.platform,
        Outbound::Post {
            channel: l.ticket.channel.clone(),
            message,
        },
        key,
    )
    .await
}

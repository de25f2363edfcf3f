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
use crate::store::Tx;
use crate::views::{self, StageState, COMMENT_FIELD};
use serde_json::json;
use std::collections::BTreeMap;

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

async fn load<'a>(bot: &'a Bot, tx: &mut Tx, id: TicketId) -> anyhow::Result<Option<Loaded<'a>>> {
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
    tx: &mut Tx,
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
    tx: &mut Tx,
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
async fn post_stage(bot: &Bot, tx: &mut Tx, l: &Loaded<'_>, stage: usize) -> anyhow::Result<()> {
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
    super::reminders::plan(bot, tx, &l.ticket, stage).await
}

/// Edits a stage message in place.
async fn edit_stage(
    bot: &Bot,
    tx: &mut Tx,
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
    tx: &mut Tx,
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

fn field_errors_localized(
    bot: &Bot,
    defs: &[FieldDef],
    errors: &BTreeMap<String, FieldError>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (id, e) in errors {
        let mut data = e.params();
        if let Some(label) = defs.iter().find(|d| &d.id == id).map(|d| d.label.clone()) {
            data["label"] = json!(label);
        }
        out.insert(
            id.clone(),
            bot.texts.render(&format!("field_error_{}", e.code()), &data)?,
        );
    }
    Ok(out)
}

fn validate(
    bot: &Bot,
    defs: &[FieldDef],
    values: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, BTreeMap<String, FieldError>> {
    let ctx = ValidationContext {
        now_ms: bot.now(),
        applications: &bot.config.applications,
        environments: &bot.config.environments,
    };
    fields::validate(defs, values, &ctx)
}

/// See [`Bot::precheck_form`]. Unknown callbacks and tickets pass here; processing
/// answers them.
pub async fn precheck_form(
    bot: &Bot,
    callback: &str,
    values: &BTreeMap<String, String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let Some(cb) = FormCallback::decode(callback) else {
        return Ok(BTreeMap::new());
    };
    let (ticket, stage) = match &cb {
        FormCallback::New { service } => {
            let defs = bot
                .config
                .flow_of_service(service)
                .and_then(|(_, f)| f.submission())
                .map(|s| s.fields.clone())
                .unwrap_or_default();
            return localized_errors(bot, &defs, values);
        }
        FormCallback::Decide {
            kind: DecisionKind::Reject,
            ..
        } => {
            let mut errors = BTreeMap::new();
            if values.get(COMMENT_FIELD).is_none_or(|v| v.trim().is_empty()) {
                errors.insert(
                    COMMENT_FIELD.to_string(),
                    bot.texts.plain("field_error_reason_required")?,
                );
            }
            return Ok(errors);
        }
        FormCallback::Decide { ticket, stage, .. } => (*ticket, *stage),
        FormCallback::Resubmit { ticket, .. } => (*ticket, 0),
    };
    let mut conn = bot.store.pool.acquire().await?;
    let Some(t) = q::get(&mut conn, ticket).await? else {
        return Ok(BTreeMap::new());
    };
    let defs = bot
        .config
        .flows
        .get(&t.flow_id)
        .and_then(|f| f.stages.get(stage))
        .map(|s| s.fields.clone())
        .unwrap_or_default();
    localized_errors(bot, &defs, values)
}

fn localized_errors(
    bot: &Bot,
    defs: &[FieldDef],
    values: &BTreeMap<String, String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    match validate(bot, defs, values) {
        Ok(_) => Ok(BTreeMap::new()),
        Err(e) => field_errors_localized(bot, defs, &e),
    }
}

/// Tells the user about form errors found when processing (the platform could not show them inline).
async fn say_form_errors(
    bot: &Bot,
    tx: &mut Tx,
    ev: &Inbound,
    defs: &[FieldDef],
    errors: &BTreeMap<String, FieldError>,
) -> anyhow::Result<()> {
    let localized = field_errors_localized(bot, defs, errors)?;
    let fields = localized
        .into_iter()
        .map(|(id, e)| crate::chat::Field {
            label: defs.iter().find(|d| d.id == id).map(|d| d.label.clone()).unwrap_or(id),
            value: e,
        })
        .collect();
    let title = bot.texts.plain("form_rejected")?;
    bot.ephemeral(
        tx,
        ev,
        Message {
            title,
            fields,
            ..Default::default()
        },
    )
    .await
}

async fn say_unknown_service(bot: &Bot, tx: &mut Tx, ev: &Inbound, query: Option<&str>) -> anyhow::Result<Handled> {
    let names: Vec<&str> = bot.config.services.values().map(|s| s.name.as_str()).collect();
    bot.say(
        tx,
        ev,
        "unknown_service",
        json!({ "service": query, "services": names.join(", ") }),
    )
    .await?;
    Ok(Handled::Done)
}

pub async fn open_new(
    bot: &Bot,
    tx: &mut Tx,
    ev: &Inbound,
    query: Option<&str>,
    values: &BTreeMap<String, String>,
) -> anyhow::Result<Handled> {
    let service_id = match query {
        None => Some(bot.config.default_service.as_str()),
        Some(q) => bot.config.find_service(q),
    };
    let Some((service_id, (service, flow))) = service_id.and_then(|id| Some((id, bot.config.flow_of_service(id)?)))
    else {
        return say_unknown_service(bot, tx, ev, query).await;
    };
    let Some(first) = flow.submission() else {
        anyhow::bail!("flow {} has no stages", flow.id)
    };
    if !roles::has_role(bot, tx, &ev.actor, &first.role, "").await?
        && !has_any_scoped_role(tx, &ev.actor, &first.role).await?
    {
        bot.say(
            tx,
            ev,
            "denied_submit_role",
            json!({ "role": first.role, "service": service.name }),
        )
        .await?;
        return Ok(Handled::Done);
    }
    if !values.is_empty() {
        return submit(bot, tx, ev, service_id, values).await;
    }
    let form = views::submission_form(&bot.texts, flow, service_id, &service.name, &ev.channel, None)?;
    bot.open_form(tx, ev, form).await?;
    Ok(Handled::Done)
}

/// `release approve|reject REL-ID …`: decides the ticket's current stage, as the buttons do.
pub async fn decide_by_command(
    bot: &Bot,
    tx: &mut Tx,
    ev: &Inbound,
    id: TicketId,
    kind: DecisionKind,
    values: BTreeMap<String, String>,
) -> anyhow::Result<Handled> {
    let Some(l) = load_or_say(bot, tx, ev, id).await? else {
        return Ok(Handled::Done);
    };
    let stage = match l.ticket.status {
        TicketStatus::InApproval(s) => s,
        _ => 0,
    };
    let round = l.ticket.round;
    let checked = check_decision(bot, tx, ev, &l, stage, round, kind).await?;
    if let Err(denied) = checked.outcome {
        refuse(bot, tx, ev, &l, denied, stage, round).await?;
        return Ok(Handled::Done);
    }
    let needs_form = match kind {
        DecisionKind::Reject => values.get(COMMENT_FIELD).is_none_or(|c| c.trim().is_empty()),
        DecisionKind::Approve => {
            let fields = &l.flow.stages[stage].fields;
            !fields.is_empty() && !fields.iter().any(|f| values.contains_key(&f.id))
        }
    };
    if needs_form {
        let form = views::decision_form(&bot.texts, &l.ticket, l.flow, stage, kind, &ev.channel)?;
        bot.open_form(tx, ev, form).await?;
        return Ok(Handled::Done);
    }
    decide(bot, tx, ev, l, checked, stage, round, kind, &values).await
}

/// `release resubmit REL-ID field=value …`: the answers given replace the earlier ones.
pub async fn resubmit_by_command(
    bot: &Bot,
    tx: &mut Tx,
    ev: &Inbound,
    id: TicketId,
    values: BTreeMap<String, String>,
) -> anyhow::Result<Handled> {
    let Some(l) = load_or_say(bot, tx, ev, id).await? else {
        return Ok(Handled::Done);
    };
    let round = l.ticket.round;
    if values.is_empty() {
        return on_action(bot, tx, ev, Action::Resubmit { ticket: id, round }).await;
    }
    let Some(stage0) = l.flow.submission() else {
        anyhow::bail!("flow {} has no stages", l.flow.id)
    };
    let mut merged: BTreeMap<String, String> = stage0
        .fields
        .iter()
        .filter_map(|f| l.ticket.fields.get(&f.id).map(|v| (f.id.clone(), v.clone())))
        .collect();
    merged.extend(values);
    resubmit(bot, tx, ev, id, round, &merged).await
}

/// Holds the role for at least one application (the form asks which).
async fn has_any_scoped_role(tx: &mut Tx, actor: &Actor, role: &str) -> anyhow::Result<bool> {
    Ok(crate::store::roles::all(tx)
        .await?
        .iter()
        .any(|m| m.role == role && &m.actor == actor))
}

async fn submit(
    bot: &Bot,
    tx: &mut Tx,
    ev: &Inbound,
    service_id: &str,
    values: &BTreeMap<String, String>,
) -> anyhow::Result<Handled> {
    let Some((service, flow)) = bot.config.flow_of_service(service_id) else {
        return say_unknown_service(bot, tx, ev, Some(service_id)).await;
    };
    let Some(stage0) = flow.submission() else {
        anyhow::bail!("flow {} has no stages", flow.id)
    };
    let answers = match validate(bot, &stage0.fields, values) {
        Ok(a) => a,
        Err(e) => {
            say_form_errors(bot, tx, ev, &stage0.fields, &e).await?;
            return Ok(Handled::Done);
        }
    };
    let application = answers.get("application").cloned().unwrap_or_default();
    if !roles::has_role(bot, tx, &ev.actor, &stage0.role, &application).await? {
        bot.say(
            tx,
            ev,
            "denied_submit_role",
            json!({ "role": stage0.role, "service": service.name, "application": application }),
        )
        .await?;
        return Ok(Handled::Done);
    }
    let status = initial_status(flow);
    let ticket = q::insert(
        tx,
        NewTicket {
            flow_id: &flow.id,
            service: service_id,
            application: &application,
            status,
            submitter: &ev.actor,
            fields: &answers,
            channel: &ev.channel,
            now: bot.now(),
        },
    )
    .await?;
    record(
        bot,
        tx,
        ev,
        ticket.id,
        "submitted",
        json!({ "stage": 0, "stage_name": stage0.name, "fields": answers }),
    )
    .await?;
    let l = Loaded { ticket, flow, service };
    advance_to(bot, tx, ev, &l, None).await?;
    let next = match l.ticket.status {
        TicketStatus::InApproval(i) => Some(flow.stages[i].name.clone()),
        _ => None,
    };
    bot.say(
        tx,
        ev,
        "submitted",
        json!({ "ticket": l.ticket.id.to_string(), "stage": next }),
    )
    .await?;
    Ok(Handled::Done)
}

/// Announces the ticket's current status: the next stage's message, the start of the
/// release, or the outcome.
async fn advance_to(bot: &Bot, tx: &mut Tx, ev: &Inbound, l: &Loaded<'_>, reason: Option<&str>) -> anyhow::Result<()> {
    announce(bot, tx, &ev.actor, l, reason).await
}

async fn announce(bot: &Bot, tx: &mut Tx, actor: &Actor, l: &Loaded<'_>, reason: Option<&str>) -> anyhow::Result<()> {
    match l.ticket.status {
        TicketStatus::InApproval(i) => post_stage(bot, tx, l, i).await,
        TicketStatus::Releasing(_) => match bot.config.plan_of_service(&l.ticket.service) {
            // Approved before its planned time: the release waits for it.
            Some(_) if super::scheduled::hold(bot, tx, &l.ticket).await? => Ok(()),
            Some(plan) => {
                let started = crate::executor::start(&bot.exec_deps(), tx, &l.ticket, plan).await?;
                if let crate::executor::Started::Running(id) = started {
                    bot.wake_execution(id);
                }
                Ok(())
            }
            // A flow whose release stage has no plan: the release is recorded as done by hand.
            None => release_finished(bot, tx, l.ticket.id, crate::domain::ticket::ReleaseOutcome::Released).await,
        },
        TicketStatus::Ready
        | TicketStatus::Released
        | TicketStatus::ReleaseFailed
        | TicketStatus::RolledBack
        | TicketStatus::Rejected
        | TicketStatus::Closed => {
            let msg = views::outcome(&bot.texts, &l.ticket, l.flow, &l.service.name, actor, reason)?;
            post_to_ticket_channel(bot, tx, l, msg, None).await
        }
        TicketStatus::Draft => Ok(()),
    }
}

/// The executor finished a ticket's release: record the outcome and move the ticket on
/// (to QC evaluation in the default flow), in the executor's transaction.
pub async fn release_finished(
    bot: &Bot,
    tx: &mut Tx,
    id: TicketId,
    outcome: crate::domain::ticket::ReleaseOutcome,
) -> anyhow::Result<()> {
    let Some(mut l) = load(bot, tx, id).await? else {
        anyhow::bail!("{id} vanished during its release")
    };
    let Some(next) = l.ticket.finish_release(l.flow, outcome) else {
        anyhow::bail!("{id} is {:?}, not releasing", l.ticket.status)
    };
    l.ticket.outcome = Some(outcome);
    l.ticket.apply(next);
    if !q::update(tx, &l.ticket, bot.now()).await? {
        anyhow::bail!("{id} changed while its release finished");
    }
    l.ticket.version += 1;
    let system = Actor::new(l.ticket.submitter.platform.clone(), "releasebot");
    bot.audit(
        tx,
        &system,
        Some(id),
        &format!("release_{}", outcome.as_str()),
        json!({}),
    )
    .await?;
    bot.metrics.inc(
        "releasebot_transitions_total",
        &[("action", &format!("release_{}", outcome.as_str()))],
    );
    Box::pin(announce(bot, tx, &system, &l, None)).await
}

/// Tells the actor why nothing changed.
async fn refuse(
    bot: &Bot,
    tx: &mut Tx,
    ev: &Inbound,
    l: &Loaded<'_>,
    denied: Denied,
    stage: usize,
    round: u32,
) -> anyhow::Result<()> {
    let t = l.ticket.id.to_string();
    let stage_name = l.flow.stages.get(stage).map(|s| s.name.clone());
    bot.metrics
        .inc("releasebot_refusals_total", &[("reason", denied_code(&denied))]);
    match denied {
        Denied::Stale => {
            let decisions = q::decisions(tx, l.ticket.id).await?;
            let decided = decisions.iter().rev().find(|d| {
                d.round == round
                    && d.stage == stage
                    && (d.kind == DecisionKind::Reject || is_stage_complete(l, &decisions, round, stage))
            });
            match decided {
                Some(d) => {
                    bot.say(
                        tx,
                        ev,
                        "denied_stale_decided",
                        json!({
                            "ticket": t, "stage": stage_name, "approved": d.kind == DecisionKind::Approve,
                            "actor": crate::chat::mention(&d.actor), "at": fields::format_ms(d.at),
                        }),
                    )
                    .await
                }
                None => {
                    bot.say(
                        tx,
                        ev,
                        "denied_stale",
                        json!({ "ticket": t, "status": views::status_text(&bot.texts, &l.ticket, l.flow)? }),
                    )
                    .await
                }
            }
        }
        Denied::NeedRole(role) => {
            bot.say(
                tx,
                ev,
                "denied_need_role",
                json!({ "ticket": t, "role": role, "stage": stage_name, "application": l.ticket.application }),
            )
            .await
        }
        Denied::OwnTicket => bot.say(tx, ev, "denied_own_ticket", json!({ "ticket": t })).await,
        Denied::AlreadyApproved => {
            let required = l.flow.stages.get(stage).map(|s| s.approvals_required).unwrap_or(1);
            bot.say(
                tx,
                ev,
                "denied_already_approved",
                json!({ "ticket": t, "required": required }),
            )
            .await
        }
        Denied::NotSubmitter => {
            bot.say(
                tx,
                ev,
                "denied_not_submitter",
                json!({ "ticket": t, "submitter": crate::chat::mention(&l.ticket.submitter) }),
            )
            .await
        }
        Denied::NotOpen(_) => {
            bot.say(
                tx,
                ev,
                "denied_not_open",
                json!({ "ticket": t, "status": views::status_text(&bot.texts, &l.ticket, l.flow)? }),
            )
            .await
        }
        Denied::Released => bot.say(tx, ev, "denied_released", json!({ "ticket": t })).await,
    }
}

fn is_stage_complete(l: &Loaded<'_>, decisions: &[Decision], round: u32, stage: usize) -> bool {
    let required = l.flow.stages.get(stage).map(|s| s.approvals_required).unwrap_or(1) as usize;
    decisions
        .iter()
        .filter(|d| d.round == round && d.stage == stage && d.kind == DecisionKind::Approve)
        .count()
        >= required
}

fn denied_code(d: &Denied) -> &'static str {
    match d {
        Denied::Stale => "stale",
        Denied::NeedRole(_) => "need_role",
        Denied::OwnTicket => "own_ticket",
        Denied::AlreadyApproved => "already_approved",
        Denied::NotSubmitter => "not_submitter",
        Denied::NotOpen(_) => "not_open",
        Denied::Released => "released",
    }
}

fn approvals_of(decisions: &[Decision], round: u32, stage: usize) -> Vec<Decision> {
    decisions
        .iter()
        .filter(|d| d.round == round && d.stage == stage && d.kind == DecisionKind::Approve)
        .cloned()
        .collect()
}

/// A decision checked, not yet recorded: what it would do, and the ticket's decisions so far.
struct Checked {
    outcome: Result<Outcome, Denied>,
    decisions: Vec<Decision>,
}

/// Checks a decision without recording it.
async fn check_decision(
    bot: &Bot,
    tx: &mut Tx,
    ev: &Inbound,
    l: &Loaded<'_>,
    stage: usize,
    round: u32,
    kind: DecisionKind,
) -> anyhow::Result<Checked> {
    let decisions = q::decisions(tx, l.ticket.id).await?;
    check_decision_with(bot, tx, ev, l, decisions, stage, round, kind).await
}

/// Like [`check_decision`], with the ticket's decisions already read.
#[allow(clippy::too_many_arguments)]
async fn check_decision_with(
    bot: &Bot,
    tx: &mut Tx,
    ev: &Inbound,
    l: &Loaded<'_>,
    decisions: Vec<Decision>,
    stage: usize,
    round: u32,
    kind: DecisionKind,
) -> anyhow::Result<Checked> {
    let role = l.flow.stages.get(stage).map(|s| s.role.clone()).unwrap_or_default();
    // A stage escalated after its SLA may be decided by its backup role too.
    let has_role = roles::has_role(bot, tx, &ev.actor, &role, &l.ticket.application).await?
        || super::reminders::may_decide_as_backup(bot, tx, &l.ticket, stage, &ev.actor).await?;
    let approvals: Vec<Actor> = approvals_of(&decisions, round, stage)
        .into_iter()
        .map(|d| d.actor)
        .collect();
    // Separation of duties and distinct approvers compare people: an identity linked to
    // the submitter or to an approver is them.
    let person = roles::as_known(
        bot,
        tx,
        &ev.actor,
        std::iter::once(&l.ticket.submitter).chain(&approvals),
    )
    .await?;
    let outcome = l.ticket.decide(
        l.flow,
        &approvals,
        &DecideRequest {
            actor: &person,
            has_role,
            stage,
            round,
            kind,
        },
    );
    Ok(Checked { outcome, decisions })
}

/// A click on a copy of a stage message that releasebot does not know — posted twice
/// because a lost answer could not be reconciled with the platform — takes that copy's
/// buttons away, so that only the message releasebot keeps up to date stays live. The
/// click itself counts as on the real message.
async fn retire_surplus_copy(
    bot: &Bot,
    tx: &mut Tx,
    ev: &Inbound,
    l: &Loaded<'_>,
    stage: usize,
    posted: Option<&str>,
) -> anyhow::Result<()> {
    use crate::chat::MessageRef;
    use crate::store::outbox::{find_ref, put_ref};
    let crate::chat::InboundKind::Action { message: Some(loc), .. } = &ev.kind else {
        return Ok(());
    };
    let platform = &ev.actor.platform;
    let Some(posted) = posted else {
        return Ok(());
    };
    if loc.ts.is_empty() || platform != &l.ticket.submitter.platform || posted == loc.ts {
        return Ok(());
    }
    if find_ref(tx, platform, &loc.channel, &loc.ts).await?.is_some() {
        return Ok(());
    }
    let Some(stage_name) = l.flow.stages.get(stage).map(|s| s.name.clone()) else {
        return Ok(());
    };
    tracing::warn!(ticket = %l.ticket.id, ts = %loc.ts, "a click on a second copy of a stage message: taking its buttons away");
    let key = format!("surplus:{platform}:{}", loc.ts);
    let r = MessageRef {
        platform: platform.clone(),
        channel: loc.channel.clone(),
        ts: loc.ts.clone(),
    };
    put_ref(tx, &key, &r, bot.now()).await?;
    let title = bot.texts.render(
        "stage_surplus_copy",
        &json!({ "ticket": l.ticket.id.to_string(), "stage": stage_name }),
    )?;
    let msg = Message {
        title,
        ..Default::default()
    };
    bot.send(
        tx,
        platform,
        Outbound::Update {
            channel: loc.channel.clone(),
            message: msg,
        },
        Some(&key),
    )
    .await
}

pub async fn on_action(bot: &Bot, tx: &mut Tx, ev: &Inbound, action: Action) -> anyhow::Result<Handled> {
    match action {
        Action::Decide {
            ticket,
            stage,
            round,
            kind,
        } => {
            // The ticket, its decisions and where its stage message is, in one read.
            let Some((t, decisions, posted)) =
                q::get_for_decision(tx, ticket, &stage_key(ticket, round, stage)).await?
            else {
                bot.say(tx, ev, "ticket_not_found", json!({ "ticket": ticket.to_string() }))
                    .await?;
                return Ok(Handled::Done);
            };
            let l = loaded(bot, t)?;
            retire_surplus_copy(bot, tx, ev, &l, stage, posted.as_deref()).await?;
            let checked = check_decision_with(bot, tx, ev, &l, decisions, stage, round, kind).await?;
            if let Err(denied) = checked.outcome {
                refuse(bot, tx, ev, &l, denied, stage, round).await?;
                return Ok(Handled::Done);
            }
            let needs_form = kind == DecisionKind::Reject || !l.flow.stages[stage].fields.is_empty();
            if needs_form {
                let form = views::decision_form(&bot.texts, &l.ticket, l.flow, stage, kind, &ev.channel)?;
                bot.open_form(tx, ev, form).await?;
                return Ok(Handled::Done);
            }
            decide(bot, tx, ev, l, checked, stage, round, kind, &BTreeMap::new()).await
        }
        Action::Resubmit { ticket, round } => {
            let Some(l) = load_or_say(bot, tx, ev, ticket).await? else {
                return Ok(Handled::Done);
            };
            let check = if l.ticket.round != round {
                Err(Denied::Stale)
            } else {
                let person = roles::as_known(bot, tx, &ev.actor, [&l.ticket.submitter]).await?;
                l.ticket.resubmit(l.flow, &person)
            };
            if let Err(denied) = check {
                refuse(bot, tx, ev, &l, denied, 0, round).await?;
                return Ok(Handled::Done);
            }
            let form = views::submission_form(
                &bot.texts,
                l.flow,
                &l.ticket.service,
                &l.service.name,
                &ev.channel,
                Some(&l.ticket),
            )?;
            bot.open_form(tx, ev, form).await?;
            Ok(Handled::Done)
        }
        Action::Withdraw { ticket } => close(bot, tx, ev, ticket, None).await,
        Action::Exec { ticket, cmd } => super::releases::on_command(bot, tx, ev, ticket, &cmd).await,
    }
}

pub async fn on_form(
    bot: &Bot,
    tx: &mut Tx,
    ev: &Inbound,
    cb: FormCallback,
    values: &BTreeMap<String, String>,
) -> anyhow::Result<Handled> {
    match cb {
        FormCallback::New { service } => submit(bot, tx, ev, &service, values).await,
        FormCallback::Decide {
            ticket,
            stage,
            round,
            kind,
        } => {
            let Some(l) = load_or_say(bot, tx, ev, ticket).await? else {
                return Ok(Handled::Done);
            };
            let checked = check_decision(bot, tx, ev, &l, stage, round, kind).await?;
            decide(bot, tx, ev, l, checked, stage, round, kind, values).await
        }
        FormCallback::Resubmit { ticket, round } => resubmit(bot, tx, ev, ticket, round, values).await,
    }
}

/// With `[executor] when_busy = "refuse"`, the release stage is not approved while another
/// release of the same application and environment runs: the approver is told which, and
/// nothing changes. True when it refused.
async fn refuse_busy(bot: &Bot, tx: &mut Tx, ev: &Inbound, l: &Loaded<'_>) -> anyhow::Result<bool> {
    if bot.config.executor.when_busy != crate::config::LockPolicy::Refuse
        || bot.config.plan_of_service(&l.ticket.service).is_none()
    {
        return Ok(false);
    }
    let environment = crate::executor::environment_of(&l.ticket);
    let Some(b) = crate::executor::busy(tx, &l.ticket.application, &environment).await? else {
        return Ok(false);
    };
    bot.metrics
        .inc("releasebot_refusals_total", &[("reason", "target_busy")]);
    bot.say(
        tx,
        ev,
        "exec_busy_refused",
        json!({
            "ticket": l.ticket.id.to_string(), "other": b.ticket.to_string(), "application": l.ticket.application,
            "environment": environment, "since": crate::domain::fields::format_ms(b.since),
        }),
    )
    .await?;
    Ok(true)
}

/// Records an approval or rejection: the one place where a stage is decided.
#[allow(clippy::too_many_arguments)]
async fn decide(
    bot: &Bot,
    tx: &mut Tx,
    ev: &Inbound,
    mut l: Loaded<'_>,
    checked: Checked,
    stage: usize,
    round: u32,
    kind: DecisionKind,
    values: &BTreeMap<String, String>,
) -> anyhow::Result<Handled> {
    let outcome = match checked.outcome {
        Ok(o) => o,
        Err(denied) => {
            refuse(bot, tx, ev, &l, denied, stage, round).await?;
            return Ok(Handled::Done);
        }
    };
    if let (
        DecisionKind::Approve,
        Outcome::Advanced {
            next: TicketStatus::Releasing(_),
        },
    ) = (kind, &outcome)
    {
        if refuse_busy(bot, tx, ev, &l).await? {
            return Ok(Handled::Done);
        }
        // A freeze or a deploy lock stops the release from starting (never a rollback).
        if bot.config.plan_of_service(&l.ticket.service).is_some()
            && super::calendar::refuse_blocked(bot, tx, ev, &l.ticket).await?
        {
            return Ok(Handled::Done);
        }
    }
    let st = l.flow.stages[stage].clone();
    let comment = values
        .get(COMMENT_FIELD)
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    let mut inputs = BTreeMap::new();
    match kind {
        DecisionKind::Approve => match validate(bot, &st.fields, values) {
            Ok(v) => inputs = v,
            Err(e) => {
                say_form_errors(bot, tx, ev, &st.fields, &e).await?;
                return Ok(Handled::Done);
            }
        },
        DecisionKind::Reject if comment.is_none() => {
            bot.say(tx, ev, "field_error_reason_required", json!({})).await?;
            return Ok(Handled::Done);
        }
        DecisionKind::Reject => {}
    }
    let now = bot.now();
    let decision = Decision {
        round,
        stage,
        actor: ev.actor.clone(),
        actor_name: ev.actor_name.clone(),
        kind,
        comment: comment.clone(),
        at: now,
    };
    if !q::insert_decision(tx, l.ticket.id, &decision).await? {
        // The same person decided meanwhile (a double click): the second click is told.
        return Ok(Handled::Conflict);
    }
    for (k, v) in &inputs {
        l.ticket.fields.insert(views::input_key(l.flow, stage, k), v.clone());
    }
    let before = l.ticket.clone();
    match &outcome {
        Outcome::Counted { .. } => {}
        Outcome::Advanced { next } | Outcome::SentBack { next } => l.ticket.apply(*next),
    }
    // Even a counted approval bumps the version, so that concurrent approvals serialise.
    if !q::update(tx, &l.ticket, now).await? {
        return Ok(Handled::Conflict);
    }
    l.ticket.version += 1;
    let action = match (&outcome, kind) {
        (Outcome::Counted { .. }, _) => "approval_counted",
        (_, DecisionKind::Approve) => "approved",
        (_, DecisionKind::Reject) => "rejected",
    };
    record(
        bot,
        tx,
        ev,
        l.ticket.id,
        action,
        json!({ "stage": stage, "stage_name": st.name, "comment": comment, "inputs": inputs }),
    )
    .await?;

    match outcome {
        Outcome::Counted { .. } => {
            let mut decisions = checked.decisions;
            decisions.push(decision.clone());
            let approvals = approvals_of(&decisions, round, stage);
            let platform = l.ticket.submitter.platform.clone();
            let members: Vec<Actor> = roles::members(bot, tx, &st.role, &l.ticket.application)
                .await?
                .into_iter()
                .filter(|a| a.platform == platform)
                .collect();
            let msg = views::stage_message(
                &bot.texts,
                &before,
                l.flow,
                &l.service.name,
                stage,
                StageState::Waiting {
                    members: &members,
                    approvals: &approvals,
                },
            )?;
            edit_stage(bot, tx, &l, stage, round, msg).await?;
            bot.say(tx, ev, "approval_counted", json!({ "ticket": l.ticket.id.to_string(), "approvals": approvals.len(), "required": st.approvals_required })).await?;
        }
        Outcome::Advanced { .. } | Outcome::SentBack { .. } => {
            let msg = views::stage_message(
                &bot.texts,
                &before,
                l.flow,
                &l.service.name,
                stage,
                StageState::Decided(&decision),
            )?;
            edit_stage(bot, tx, &l, stage, round, msg).await?;
            if l.ticket.status == TicketStatus::Draft {
                let msg = views::sent_back(&bot.texts, &l.ticket, l.flow, &l.service.name, &st.name, &decision)?;
                let key = sent_back_key(l.ticket.id, l.ticket.round);
                post_to_ticket_channel(bot, tx, &l, msg, Some(&key)).await?;
            } else {
                advance_to(bot, tx, ev, &l, comment.as_deref()).await?;
            }
        }
    }
    Ok(Handled::Done)
}

async fn resubmit(
    bot: &Bot,
    tx: &mut Tx,
    ev: &Inbound,
    id: TicketId,
    round: u32,
    values: &BTreeMap<String, String>,
) -> anyhow::Result<Handled> {
    let Some(mut l) = load_or_say(bot, tx, ev, id).await? else {
        return Ok(Handled::Done);
    };
    let check = if l.ticket.round != round {
        Err(Denied::Stale)
    } else {
        let person = roles::as_known(bot, tx, &ev.actor, [&l.ticket.submitter]).await?;
        l.ticket.resubmit(l.flow, &person)
    };
    let next = match check {
        Ok(n) => n,
        Err(denied) => {
            refuse(bot, tx, ev, &l, denied, 0, round).await?;
            return Ok(Handled::Done);
        }
    };
    let Some(stage0) = l.flow.submission() else {
        anyhow::bail!("flow {} has no stages", l.flow.id)
    };
    let answers = match validate(bot, &stage0.fields, values) {
        Ok(a) => a,
        Err(e) => {
            say_form_errors(bot, tx, ev, &stage0.fields, &e).await?;
            return Ok(Handled::Done);
        }
    };
    let now = bot.now();
    // A resubmission replaces the answers; inputs of later stages start over.
    l.ticket.fields = answers.clone();
    l.ticket.application = answers.get("application").cloned().unwrap_or(l.ticket.application);
    l.ticket.apply(next);
    if !q::update(tx, &l.ticket, now).await? {
        return Ok(Handled::Conflict);
    }
    record(
        bot,
        tx,
        ev,
        l.ticket.id,
        "resubmitted",
        json!({ "stage": 0, "stage_name": stage0.name, "fields": answers }),
    )
    .await?;
    let done = views::sent_back_done(
        &bot.texts,
        &l.ticket,
        &l.service.name,
        "sent_back_resubmitted",
        &ev.actor,
        now,
    )?;
    let channel = l.ticket.channel.clone();
    bot.send(
        tx,
        &l.ticket.submitter.platform,
        Outbound::Update { channel, message: done },
        Some(&sent_back_key(id, round)),
    )
    .await?;
    advance_to(bot, tx, ev, &l, None).await?;
    bot.say(
        tx,
        ev,
        "submitted",
        json!({ "ticket": id.to_string(), "stage": l.flow.stages.get(1).map(|s| s.name.clone()) }),
    )
    .await?;
    Ok(Handled::Done)
}

/// Withdraw (submitter) or cancel (admin) before release.
async fn close(bot: &Bot, tx: &mut Tx, ev: &Inbound, id: TicketId, reason: Option<String>) -> anyhow::Result<Handled> {
    let Some(mut l) = load_or_say(bot, tx, ev, id).await? else {
        return Ok(Handled::Done);
    };
    let is_admin = roles::is_admin(bot, tx, &ev.actor).await?;
    let person = roles::as_known(bot, tx, &ev.actor, [&l.ticket.submitter]).await?;
    let next = match l.ticket.cancel(&person, is_admin) {
        Ok(n) => n,
        Err(denied) => {
            refuse(bot, tx, ev, &l, denied, 0, l.ticket.round).await?;
            return Ok(Handled::Done);
        }
    };
    let before = l.ticket.clone();
    let now = bot.now();
    l.ticket.apply(next);
    if !q::update(tx, &l.ticket, now).await? {
        return Ok(Handled::Conflict);
    }
    record(bot, tx, ev, id, "closed", json!({ "comment": reason })).await?;
    // The message that was waiting for someone loses its buttons.
    match before.status {
        TicketStatus::InApproval(stage) => {
            let msg = views::stage_message(
                &bot.texts,
                &before,
                l.flow,
                &l.service.name,
                stage,
                StageState::Closed { by: &ev.actor, at: now },
            )?;
            edit_stage(bot, tx, &l, stage, before.round, msg).await?;
        }
        TicketStatus::Draft => {
            let done = views::sent_back_done(
                &bot.texts,
                &before,
                &l.service.name,
                "sent_back_withdrawn",
                &ev.actor,
                now,
            )?;
            let channel = l.ticket.channel.clone();
            bot.send(
                tx,
                &l.ticket.submitter.platform,
                Outbound::Update { channel, message: done },
                Some(&sent_back_key(id, before.round)),
            )
            .await?;
        }
        _ => {}
    }
    advance_to(bot, tx, ev, &l, reason.as_deref()).await?;
    Ok(Handled::Done)
}

pub async fn cancel(
    bot: &Bot,
    tx: &mut Tx,
    ev: &Inbound,
    id: TicketId,
    reason: Option<String>,
) -> anyhow::Result<Handled> {
    close(bot, tx, ev, id, reason).await
}

pub async fn show(bot: &Bot, tx: &mut Tx, ev: &Inbound, id: TicketId) -> anyhow::Result<Handled> {
    let Some(l) = load_or_say(bot, tx, ev, id).await? else {
        return Ok(Handled::Done);
    };
    let entries = audit::for_ticket(tx, id).await?;
    let msg = views::show(&bot.texts, &l.ticket, l.flow, &l.service.name, &entries)?;
    bot.ephemeral(tx, ev, msg).await?;
    Ok(Handled::Done)
}

pub async fn list(bot: &Bot, tx: &mut Tx, ev: &Inbound, scope: ListScope) -> anyhow::Result<Handled> {
    let (filter, key) = match scope {
        ListScope::Mine => (ListFilter::Mine(&ev.actor), "mine"),
        ListScope::Pending => (ListFilter::Pending, "pending"),
        ListScope::All => (ListFilter::All, "all"),
    };
    let tickets = q::list(tx, filter, 20).await?;
    let mut rows = Vec::new();
    for t in tickets {
        let status = match bot.config.flows.get(&t.flow_id) {
            Some(f) => views::status_text(&bot.texts, &t, f)?,
            None => t.status.key().to_string(),
        };
        rows.push((t, status));
    }
    let msg = views::list(&bot.texts, key, &rows)?;
    bot.ephemeral(tx, ev, msg).await?;
    Ok(Handled::Done)
}

//! `/release approve|reject` and the stage buttons: a stage decided, the ticket moved on.

use super::*;
use crate::work::Work;

/// `release approve|reject REL-ID …`: decides the ticket's current stage, as the buttons do.
pub async fn decide_by_command(
    bot: &Bot,
    tx: &mut Work,
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
    decide(bot, tx, ev, l, checked, Choice { stage, round, kind }, &values).await
}

pub(super) fn is_stage_complete(l: &Loaded<'_>, decisions: &[Decision], round: u32, stage: usize) -> bool {
    let required = l.flow.stages.get(stage).map(|s| s.approvals_required).unwrap_or(1) as usize;
    decisions
        .iter()
        .filter(|d| d.round == round && d.stage == stage && d.kind == DecisionKind::Approve)
        .count()
        >= required
}

pub(super) fn approvals_of(decisions: &[Decision], round: u32, stage: usize) -> Vec<Decision> {
    decisions
        .iter()
        .filter(|d| d.round == round && d.stage == stage && d.kind == DecisionKind::Approve)
        .cloned()
        .collect()
}

/// With `[executor] when_busy = "refuse"`, the release stage is not approved while another
/// release of the same application and environment runs: the approver is told which, and
/// nothing changes. True when it refused.
pub(super) async fn refuse_busy(bot: &Bot, tx: &mut Work, ev: &Inbound, l: &Loaded<'_>) -> anyhow::Result<bool> {
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

/// What a person chose: approve or reject a stage of a round.
#[derive(Debug, Clone, Copy)]
pub(super) struct Choice {
    pub stage: usize,
    pub round: u32,
    pub kind: DecisionKind,
}

/// Records an approval or rejection: the one place where a stage is decided.
pub(super) async fn decide(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    mut l: Loaded<'_>,
    checked: Checked,
    choice: Choice,
    values: &BTreeMap<String, String>,
) -> anyhow::Result<Handled> {
    let Choice { stage, round, kind } = choice;
    let outcome = match checked.outcome {
        Ok(o) => o,
        Err(denied) => {
            refuse(bot, tx, ev, &l, denied, stage, round).await?;
            return Ok(Handled::Done);
        }
    };
    if starts_release(kind, &outcome) && release_refused(bot, tx, ev, &l).await? {
        return Ok(Handled::Done);
    }
    let st = l.flow.stages[stage].clone();
    let comment = values
        .get(COMMENT_FIELD)
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    let Some(inputs) = inputs_or_say(bot, tx, ev, &st, kind, values).await? else {
        return Ok(Handled::Done);
    };
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
    let decided = Decided {
        before: &before,
        decision: &decision,
        earlier: checked.decisions,
    };
    tell_decided(bot, tx, ev, &l, outcome, decided).await?;
    Ok(Handled::Done)
}

/// Whether this decision starts the release.
fn starts_release(kind: DecisionKind, outcome: &Outcome) -> bool {
    matches!(
        (kind, outcome),
        (
            DecisionKind::Approve,
            Outcome::Advanced {
                next: TicketStatus::Releasing(_)
            }
        )
    )
}

/// Refuses (and says why) a release that cannot start now: its target is busy, or a
/// freeze or a deploy lock stops it (never a rollback).
async fn release_refused(bot: &Bot, tx: &mut Work, ev: &Inbound, l: &Loaded<'_>) -> anyhow::Result<bool> {
    if refuse_busy(bot, tx, ev, l).await? {
        return Ok(true);
    }
    Ok(bot.config.plan_of_service(&l.ticket.service).is_some()
        && crate::bot::calendar::refuse_blocked(bot, tx, ev, &l.ticket).await?)
}

/// The stage's inputs of an approval, validated; a rejection needs a reason. `None` after
/// telling the person what is wrong.
async fn inputs_or_say(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    st: &crate::domain::Stage,
    kind: DecisionKind,
    values: &BTreeMap<String, String>,
) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    if let Some((key, data)) = comment_problem(bot, kind, values)? {
        bot.say(tx, ev, key, data).await?;
        return Ok(None);
    }
    match kind {
        DecisionKind::Approve => match validate(bot, &st.fields, values) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                say_form_errors(bot, tx, ev, &st.fields, &e).await?;
                Ok(None)
            }
        },
        DecisionKind::Reject => Ok(Some(BTreeMap::new())),
    }
}

/// A decision just recorded: the ticket as it was, the decision, and the stage's decisions
/// before it.
struct Decided<'a> {
    before: &'a Ticket,
    decision: &'a Decision,
    earlier: Vec<Decision>,
}

/// Edits the stage message to show the decision, and tells what follows: the approvals
/// counted so far, the ticket sent back, or the next stage.
async fn tell_decided(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    l: &Loaded<'_>,
    outcome: Outcome,
    d: Decided<'_>,
) -> anyhow::Result<()> {
    let Decision { stage, round, .. } = *d.decision;
    let st = &l.flow.stages[stage];
    match outcome {
        Outcome::Counted { .. } => {
            let mut decisions = d.earlier;
            decisions.push(d.decision.clone());
            let approvals = approvals_of(&decisions, round, stage);
            let platform = l.ticket.submitter.platform.clone();
            let members: Vec<Actor> = roles::members(bot, tx, &st.role, &l.ticket.application)
                .await?
                .into_iter()
                .filter(|a| a.platform == platform)
                .collect();
            let msg = views::stage_message(
                &bot.texts,
                d.before,
                l.flow,
                &l.service.name,
                stage,
                StageState::Waiting {
                    members: &members,
                    approvals: &approvals,
                },
            )?;
            edit_stage(bot, tx, l, stage, round, msg).await?;
            bot.say(tx, ev, "approval_counted", json!({ "ticket": l.ticket.id.to_string(), "approvals": approvals.len(), "required": st.approvals_required })).await?;
        }
        Outcome::Advanced { .. } | Outcome::SentBack { .. } => {
            let msg = views::stage_message(
                &bot.texts,
                d.before,
                l.flow,
                &l.service.name,
                stage,
                StageState::Decided(d.decision),
            )?;
            edit_stage(bot, tx, l, stage, round, msg).await?;
            if l.ticket.status == TicketStatus::Draft {
                let msg = views::sent_back(&bot.texts, &l.ticket, l.flow, &l.service.name, &st.name, d.decision)?;
                let key = sent_back_key(l.ticket.id, l.ticket.round);
                post_to_ticket_channel(bot, tx, l, msg, Some(&key)).await?;
            } else {
                advance_to(bot, tx, ev, l, d.decision.comment.as_deref()).await?;
            }
        }
    }
    Ok(())
}

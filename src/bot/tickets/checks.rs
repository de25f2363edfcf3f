//! Whether a person may decide a stage (roles, separation of duties, freezes), and the
//! refusal they see when not.

use super::*;
use crate::work::Work;

/// Tells the actor why nothing changed.
pub(super) async fn refuse(
    bot: &Bot,
    tx: &mut Work,
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

pub(super) fn denied_code(d: &Denied) -> &'static str {
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

/// A decision checked, not yet recorded: what it would do, and the ticket's decisions so far.
pub(super) struct Checked {
    pub(super) outcome: Result<Outcome, Denied>,
    pub(super) decisions: Vec<Decision>,
}

/// Checks a decision without recording it.
pub(super) async fn check_decision(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    l: &Loaded<'_>,
    stage: usize,
    round: u32,
    kind: DecisionKind,
) -> anyhow::Result<Checked> {
    let decisions = q::decisions(tx, l.ticket.id).await?;
    check_decision_with(bot, tx, ev, l, decisions, Choice { stage, round, kind }).await
}

/// Like [`check_decision`], with the ticket's decisions already read.
pub(super) async fn check_decision_with(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    l: &Loaded<'_>,
    decisions: Vec<Decision>,
    choice: Choice,
) -> anyhow::Result<Checked> {
    let Choice { stage, round, kind } = choice;
    let role = l.flow.stages.get(stage).map(|s| s.role.clone()).unwrap_or_default();
    // A stage escalated after its SLA may be decided by its backup role too.
    let has_role = roles::has_role(bot, tx, &ev.actor, &role, &l.ticket.application).await?
        || crate::bot::reminders::may_decide_as_backup(bot, tx, &l.ticket, stage, &ev.actor).await?;
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

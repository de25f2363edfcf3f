//! `/release cancel`, withdrawal, and the ending of a ticket when its release ends.

use super::*;
use crate::work::Work;

/// The executor finished a ticket's release: record the outcome and move the ticket on
/// (to QC evaluation in the default flow), in the executor's transaction.
pub async fn release_finished(
    bot: &Bot,
    tx: &mut Work,
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

/// Withdraw (submitter) or cancel (admin) before release.
pub(super) async fn close(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    id: TicketId,
    reason: Option<String>,
) -> anyhow::Result<Handled> {
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
    tx: &mut Work,
    ev: &Inbound,
    id: TicketId,
    reason: Option<String>,
) -> anyhow::Result<Handled> {
    close(bot, tx, ev, id, reason).await
}

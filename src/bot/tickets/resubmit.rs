//! `/release resubmit`: a ticket sent back, submitted again.

use super::*;
use crate::work::Work;

/// `release resubmit REL-ID field=value …`: the answers given replace the earlier ones.
pub async fn resubmit_by_command(
    bot: &Bot,
    tx: &mut Work,
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

pub(super) async fn resubmit(
    bot: &Bot,
    tx: &mut Work,
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

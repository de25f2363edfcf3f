//! Buttons and forms pressed on a ticket's messages, including copies of them that
//! releasebot does not know.

use super::*;
use crate::work::Work;

/// A click on a copy of a stage message that releasebot does not know — posted twice
/// because a lost answer could not be reconciled with the platform — takes that copy's
/// buttons away, so that only the message releasebot keeps up to date stays live. The
/// click itself counts as on the real message.
pub(super) async fn retire_surplus_copy(
    bot: &Bot,
    tx: &mut Work,
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

pub async fn on_action(bot: &Bot, tx: &mut Work, ev: &Inbound, action: Action) -> anyhow::Result<Handled> {
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
            let checked = check_decision_with(bot, tx, ev, &l, decisions, Choice { stage, round, kind }).await?;
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
            decide(bot, tx, ev, l, checked, Choice { stage, round, kind }, &BTreeMap::new()).await
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
        Action::Exec { ticket, cmd } => crate::bot::releases::on_command(bot, tx, ev, ticket, &cmd).await,
    }
}

pub async fn on_form(
    bot: &Bot,
    tx: &mut Work,
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
            decide(bot, tx, ev, l, checked, Choice { stage, round, kind }, values).await
        }
        FormCallback::Resubmit { ticket, round } => resubmit(bot, tx, ev, ticket, round, values).await,
    }
}

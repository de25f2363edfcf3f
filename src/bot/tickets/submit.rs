//! `/release new` and a submitted form: a ticket opened, its first stage posted.

use super::*;
use crate::work::Work;

pub async fn open_new(
    bot: &Bot,
    tx: &mut Work,
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

/// Holds the role for at least one application (the form asks which).
pub(super) async fn has_any_scoped_role(tx: &mut Work, actor: &Actor, role: &str) -> anyhow::Result<bool> {
    Ok(crate::store::roles::all(tx)
        .await?
        .iter()
        .any(|m| m.role == role && &m.actor == actor))
}

pub(super) async fn submit(
    bot: &Bot,
    tx: &mut Work,
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
pub(super) async fn advance_to(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    l: &Loaded<'_>,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    announce(bot, tx, &ev.actor, l, reason).await
}

pub(super) async fn announce(
    bot: &Bot,
    tx: &mut Work,
    actor: &Actor,
    l: &Loaded<'_>,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    match l.ticket.status {
        TicketStatus::InApproval(i) => post_stage(bot, tx, l, i).await,
        TicketStatus::Releasing(_) => match bot.config.plan_of_service(&l.ticket.service) {
            // Approved before its planned time: the release waits for it.
            Some(_) if crate::bot::scheduled::hold(bot, tx, &l.ticket).await? => Ok(()),
            Some(plan) => {
                let started = crate::executor::start(&bot.exec_deps(), tx, &l.ticket, plan).await?;
                if let crate::executor::Started::Running(id) = started {
                    tx.wake_execution(id);
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

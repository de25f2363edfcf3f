//! `/release plan|status|rollback|baselines|override` and the buttons of a progress
//! message: what is asked of a ticket's release rather than of its stages.

use super::calendar::{block_lines, blocks, is_role, need_role};
use super::tickets::load_or_say;
use super::{Bot, Handled};
use crate::chat::Inbound;
use crate::chat::{mention, Message, Outbound};
use crate::domain::events::SystemEvent;
use crate::domain::execution::{Command, Effect, Refused};
use crate::domain::ticket::TicketId;
use crate::executor::commands;
use crate::store::calendar as q;
use crate::views;
use crate::work::Work;
use serde_json::json;

/// `/release plan REL-ID`: steps, gates, thresholds, targets and expected duration.
pub async fn dry_run(bot: &Bot, tx: &mut Work, ev: &Inbound, id: TicketId) -> anyhow::Result<Handled> {
    let Some(l) = load_or_say(bot, tx, ev, id).await? else {
        return Ok(Handled::Done);
    };
    let Some(plan) = bot.config.plan_of_service(&l.ticket.service) else {
        bot.say(
            tx,
            ev,
            "plan_none",
            json!({ "ticket": id.to_string(), "service": l.service.name }),
        )
        .await?;
        return Ok(Handled::Done);
    };
    let mut msg = views::dry_run(&bot.texts, &l.ticket, plan)?;
    // What would stop it from starting now: freezes and locks.
    let blocks = super::calendar::blocks(bot, tx, &l.ticket).await?;
    if !blocks.is_empty() {
        let mut lines = vec![bot.texts.render("calendar_plan_blocked", &json!({}))?];
        lines.extend(super::calendar::block_lines(bot, &blocks)?);
        let body = msg.body.take().unwrap_or_default();
        msg.body = Some(format!("{body}\n\n{}", lines.join("\n")));
    }
    bot.ephemeral(tx, ev, msg).await?;
    Ok(Handled::Done)
}

/// The role that may steer a ticket's release: the release stage's role, or `ops`.
fn may_steer(bot: &Bot, flow: &crate::domain::Flow) -> Vec<String> {
    let mut roles: Vec<String> = flow
        .stages
        .iter()
        .filter(|s| s.starts_execution)
        .map(|s| s.role.clone())
        .collect();
    roles.push("ops".to_string());
    roles.dedup();
    let _ = bot;
    roles
}

/// The wording of a command's button (`Rollback`).
fn command_label(bot: &Bot, cmd: Command) -> anyhow::Result<String> {
    bot.texts.plain(&format!("btn_{}", cmd.as_str()))
}

/// A button on the progress message, an alert or a gate.
pub async fn on_command(bot: &Bot, tx: &mut Work, ev: &Inbound, id: TicketId, cmd: &str) -> anyhow::Result<Handled> {
    let Some(cmd) = Command::parse(cmd) else {
        bot.say(tx, ev, "unknown_action", json!({})).await?;
        return Ok(Handled::Done);
    };
    let Some(l) = load_or_say(bot, tx, ev, id).await? else {
        return Ok(Handled::Done);
    };
    let Some((row, plan)) = crate::executor::load(tx, id).await? else {
        bot.say(tx, ev, "exec_none", json!({ "ticket": id.to_string() }))
            .await?;
        return Ok(Handled::Done);
    };
    let roles = match cmd {
        Command::Continue => row
            .state
            .exec
            .running()
            .and_then(|i| plan.steps[i].role.clone())
            .into_iter()
            .collect(),
        _ => may_steer(bot, l.flow),
    };
    let mut allowed = false;
    for r in &roles {
        allowed |= super::roles::has_role(bot, tx, &ev.actor, r, &l.ticket.application).await?;
    }
    if !allowed {
        bot.metrics.inc("releasebot_refusals_total", &[("reason", "need_role")]);
        bot.say(
            tx,
            ev,
            "exec_denied_role",
            json!({ "ticket": id.to_string(), "roles": roles.join(" / "), "command": command_label(bot, cmd)? }),
        )
        .await?;
        return Ok(Handled::Done);
    }
    let deps = bot.exec_deps();
    let by = crate::chat::mention(&ev.actor);
    let effect = match commands::apply(&deps, tx, &row, &plan, cmd, &by).await? {
        None => return Ok(Handled::Conflict),
        Some(Ok(effect)) => effect,
        Some(Err(refused)) => {
            let status = bot.texts.plain(&format!(
                "exec_status_{}",
                if row.state.exec.rolling_back && !row.state.exec.status.is_final() {
                    "ROLLING_BACK"
                } else {
                    row.status.as_str()
                }
            ))?;
            let key = match refused {
                Refused::Finished => "exec_refused_finished",
                Refused::NotNow => "exec_refused_now",
            };
            bot.say(
                tx,
                ev,
                key,
                json!({ "ticket": id.to_string(), "status": status, "command": command_label(bot, cmd)? }),
            )
            .await?;
            return Ok(Handled::Done);
        }
    };
    let step_name = |i: usize| plan.steps[i].name.clone();
    let detail = match effect {
        Effect::Applied => json!({}),
        Effect::Cancelled(i) => json!({ "cancelled": step_name(i) }),
        Effect::Queued(i) => json!({ "queued_behind": step_name(i) }),
        Effect::Terminate(i) => json!({ "terminated": step_name(i) }),
        Effect::Relayed(i) => json!({ "relayed_by": step_name(i) }),
    };
    crate::executor::audit_command(tx, bot.now(), id, &ev.actor, cmd, detail).await?;
    bot.metrics
        .inc("releasebot_exec_commands_total", &[("command", cmd.as_str())]);
    tx.wake_execution(row.id);
    reply_effect(bot, tx, ev, &l.ticket, (&plan, &row), (cmd, effect)).await?;
    Ok(Handled::Done)
}

/// Tells the person what their command did to the release (its plan and execution): what
/// happened, never "done" for what only waits.
async fn reply_effect(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    ticket: &crate::domain::ticket::Ticket,
    (plan, row): (&crate::domain::plan::Plan, &crate::executor::Row),
    (cmd, effect): (Command, Effect),
) -> anyhow::Result<()> {
    let base = match cmd {
        Command::StopRollback => Command::Rollback,
        Command::StopAbort => Command::Abort,
        c => c,
    };
    let gate = row.state.exec.running().map(|i| plan.steps[i].name.clone());
    // The answer links to the release's page, where the command's effect shows.
    let on_page = |message: crate::chat::Message| crate::chat::Message {
        page: Some(crate::chat::links::Page::Execution(row.id)),
        ..message
    };
    let mut data = json!({
        "ticket": ticket.id.to_string(), "command": command_label(bot, base)?, "gate": gate,
        "grace": bot.config.executor.stop_grace.0.as_secs(),
    });
    match effect {
        Effect::Applied | Effect::Cancelled(_) => {
            let mut title = bot.texts.render(&format!("exec_now_{}", base.as_str()), &data)?;
            if let Effect::Cancelled(i) = effect {
                data["step"] = json!(plan.steps[i].name);
                title.push(' ');
                title.push_str(&bot.texts.render("exec_step_cancelled", &data)?);
            }
            bot.ephemeral(tx, ev, on_page(crate::executor::plain(title))).await
        }
        Effect::Queued(i) => {
            data["step"] = json!(plan.steps[i].name);
            data["since"] = json!(row.state.steps[i]
                .started_at
                .map(crate::domain::fields::format_ms)
                .unwrap_or_default());
            let title = bot.texts.render("exec_queued", &data)?;
            let stop = match base {
                Command::Rollback => Some(Command::StopRollback),
                Command::Abort => Some(Command::StopAbort),
                _ => None,
            };
            let buttons = stop
                .map(|c| crate::executor::progress::stop_button(&bot.texts, ticket, c))
                .transpose()?
                .into_iter()
                .collect();
            let msg = crate::chat::Message {
                title,
                buttons,
                ..Default::default()
            };
            bot.ephemeral(tx, ev, on_page(msg)).await
        }
        Effect::Relayed(i) => {
            data["step"] = json!(plan.steps[i].name);
            let title = bot.texts.render("exec_relayed", &data)?;
            bot.ephemeral(tx, ev, on_page(crate::executor::plain(title))).await
        }
        Effect::Terminate(i) => {
            data["step"] = json!(plan.steps[i].name);
            let title = bot
                .texts
                .render(&format!("exec_terminating_{}", base.as_str()), &data)?;
            bot.ephemeral(tx, ev, on_page(crate::executor::plain(title))).await
        }
    }
}

/// What the executor recorded for the handlers.
pub async fn on_system(bot: &Bot, tx: &mut Work, event: &SystemEvent) -> anyhow::Result<Handled> {
    match event {
        SystemEvent::ExecutionEnded { ticket, outcome, .. } => {
            super::tickets::release_finished(bot, tx, TicketId(*ticket), *outcome).await?;
        }
        SystemEvent::NeedsAttention {
            ticket,
            step,
            reaction,
            evidence,
            ..
        } => {
            on_attention(bot, tx, TicketId(*ticket), *step, *reaction, evidence).await?;
        }
    }
    Ok(Handled::Done)
}

/// A step failed or was interrupted: the alert, mentioning the on-call role.
async fn on_attention(
    bot: &Bot,
    tx: &mut Work,
    id: TicketId,
    step: usize,
    reaction: Option<crate::domain::execution::Reaction>,
    evidence: &str,
) -> anyhow::Result<()> {
    let Some((row, plan)) = crate::executor::load(tx, id).await? else {
        anyhow::bail!("{id} has no execution to alert about");
    };
    let Some(ticket) = crate::store::tickets::get(tx, id).await? else {
        anyhow::bail!("{id} vanished");
    };
    if step >= plan.steps.len() {
        anyhow::bail!("{id}: no step {step} to alert about");
    }
    let members = super::roles::members(bot, tx, "ops", &ticket.application).await?;
    let members: Vec<_> = members.into_iter().filter(|a| a.platform == row.platform).collect();
    let msg = match reaction {
        Some(r) => {
            let alarm = crate::executor::progress::Alarm {
                step,
                reaction: r,
                evidence,
            };
            crate::executor::progress::alert(&bot.texts, &row, &plan, &ticket, alarm, &members)?
        }
        None => crate::executor::progress::interrupted(&bot.texts, &row, &plan, &ticket, step, &members)?,
    };
    bot.send(
        tx,
        &row.platform,
        crate::chat::Outbound::Post {
            channel: row.channel.clone(),
            message: msg,
        },
        None,
    )
    .await
}

/// `/release status REL-ID`: the execution as its progress message shows it.
pub async fn status(bot: &Bot, tx: &mut Work, ev: &Inbound, id: TicketId) -> anyhow::Result<Handled> {
    let Some(l) = load_or_say(bot, tx, ev, id).await? else {
        return Ok(Handled::Done);
    };
    let Some((row, plan)) = crate::executor::load(tx, id).await? else {
        let status = views::status_text(&bot.texts, &l.ticket, l.flow)?;
        bot.say(
            tx,
            ev,
            "exec_not_started",
            json!({ "ticket": id.to_string(), "status": status }),
        )
        .await?;
        return Ok(Handled::Done);
    };
    let msg = crate::executor::progress::message(&bot.texts, &row, &plan, &l.ticket, &l.service.name, bot.now())?;
    bot.ephemeral(tx, ev, msg).await?;
    Ok(Handled::Done)
}

/// `/release rollback REL-ID [--to BASELINE]`: during a release, the same as the Rollback
/// button; after it, traffic goes back to the old version and the baseline is restored
/// (by default the one the release started from).
pub async fn rollback(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    id: TicketId,
    to: Option<i64>,
) -> anyhow::Result<Handled> {
    let Some(l) = load_or_say(bot, tx, ev, id).await? else {
        return Ok(Handled::Done);
    };
    let Some((row, plan)) = crate::executor::load(tx, id).await? else {
        bot.say(tx, ev, "exec_none", json!({ "ticket": id.to_string() }))
            .await?;
        return Ok(Handled::Done);
    };
    if !row.state.exec.status.is_final() {
        return on_command(bot, tx, ev, id, "rollback").await;
    }
    let roles = may_steer(bot, l.flow);
    let mut allowed = false;
    for r in &roles {
        allowed |= super::roles::has_role(bot, tx, &ev.actor, r, &l.ticket.application).await?;
    }
    if !allowed {
        let command = bot.texts.plain("btn_rollback")?;
        bot.say(
            tx,
            ev,
            "exec_denied_role",
            json!({ "ticket": id.to_string(), "roles": roles.join(" / "), "command": command }),
        )
        .await?;
        return Ok(Handled::Done);
    }
    if row.state.later_rollback.as_ref().is_some_and(|l| !l.done) {
        bot.say(tx, ev, "exec_rollback_pending", json!({ "ticket": id.to_string() }))
            .await?;
        return Ok(Handled::Done);
    }
    let baseline = match to {
        Some(b) => crate::store::executions::baseline(tx, b)
            .await?
            .filter(|b| b.application == row.application && b.environment == row.environment),
        None => crate::store::executions::baseline_before(tx, row.id, &row.application, &row.environment).await?,
    };
    let Some(baseline) = baseline else {
        let asked = to.map(|b| format!("#{b}")).unwrap_or_default();
        bot.say(tx, ev, "exec_bad_baseline", json!({ "ticket": id.to_string(), "baseline": asked, "application": row.application, "environment": row.environment })).await?;
        return Ok(Handled::Done);
    };
    let data = json!({
        "ticket": id.to_string(), "baseline": baseline.id, "version": baseline.version,
        "application": row.application, "environment": row.environment, "plan": plan.name,
    });
    // The version is redeployed through the plan's DEPLOY step; without one it cannot be.
    if crate::executor::baselines::redeploy_step(&plan).is_none() {
        bot.say(tx, ev, "exec_rollback_no_deploy", data).await?;
        return Ok(Handled::Done);
    }
    let image = baseline.workload.deployable().map(str::to_string);
    if baseline.version == crate::domain::execution::UNKNOWN && image.is_none() {
        bot.say(tx, ev, "exec_rollback_unknown_version", data).await?;
        return Ok(Handled::Done);
    }
    let mut run = row.state.clone();
    run.later_rollback = Some(crate::executor::LaterRollback {
        baseline: baseline.id,
        version: baseline.version.clone(),
        image,
        requested_by: crate::chat::mention(&ev.actor),
        done: false,
        started: false,
    });
    if !crate::store::executions::reopen(tx, row.id, row.version, &run, bot.now()).await? {
        return Ok(Handled::Conflict);
    }
    crate::executor::audit_command(
        tx,
        bot.now(),
        id,
        &ev.actor,
        Command::Rollback,
        json!({ "baseline": baseline.id, "version": baseline.version }),
    )
    .await?;
    tx.wake_execution(row.id);
    // Never queued behind a release of the same target, but whoever asks should know of it.
    let other = crate::executor::busy(tx, &row.application, &row.environment)
        .await?
        .filter(|b| b.execution != row.id);
    let mut title = bot.texts.render("exec_rollback_queued", &data)?;
    if let Some(b) = other {
        title.push(' ');
        title.push_str(&bot.texts.render(
            "exec_rollback_while_releasing",
            &json!({ "other": b.ticket.to_string(), "application": row.application, "environment": row.environment }),
        )?);
    }
    bot.ephemeral(tx, ev, crate::executor::plain(title)).await?;
    Ok(Handled::Done)
}

/// `/release baselines APPLICATION [ENVIRONMENT]`: what rollbacks can return to.
pub async fn baselines(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    application: &str,
    environment: Option<&str>,
) -> anyhow::Result<Handled> {
    let environment = environment.unwrap_or(crate::executor::DEFAULT_ENVIRONMENT);
    let rows = crate::store::executions::list_baselines(tx, application, environment, 20).await?;
    let mut lines = Vec::new();
    for (b, ticket) in &rows {
        lines.push(bot.texts.render(
            "baseline_line",
            &json!({
                "id": b.id, "kind": bot.texts.plain(&format!("baseline_kind_{}", b.kind))?, "ticket": ticket.map(|t| t.to_string()),
                "version": b.version, "replicas": b.replicas, "config": b.config_version, "at": crate::domain::fields::format_ms(b.recorded_at),
                "simulated": b.simulated, "image": b.workload.deployable(), "refs": b.workload.config_refs.join(", "),
            }),
        )?);
    }
    let data = json!({ "application": application, "environment": environment });
    let body = if lines.is_empty() {
        bot.texts.render("baselines_none", &data)?
    } else {
        lines.join("\n")
    };
    let title = bot.texts.render("baselines_title", &data)?;
    bot.ephemeral(
        tx,
        ev,
        crate::chat::Message {
            title,
            body: Some(body),
            ..Default::default()
        },
    )
    .await?;
    Ok(Handled::Done)
}

/// `/release override REL-ID reason` (the override role): the ticket's release may start
/// through the freezes and locks that block it now; announced in its channel and audited.
pub async fn release_override(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    id: TicketId,
    reason: &str,
) -> anyhow::Result<Handled> {
    let role = bot.config.calendar.override_role.clone();
    if !is_role(bot, tx, &ev.actor, &role).await? {
        return need_role(bot, tx, ev, &role).await;
    }
    let Some(ticket) = crate::store::tickets::get(tx, id).await? else {
        bot.say(tx, ev, "ticket_not_found", json!({ "ticket": id.to_string() }))
            .await?;
        return Ok(Handled::Done);
    };
    if !ticket.status.is_open() {
        bot.say(tx, ev, "calendar_override_closed", json!({ "ticket": id.to_string() }))
            .await?;
        return Ok(Handled::Done);
    }
    let blocking = blocks(bot, tx, &ticket).await?;
    if !q::add_override(tx, id.0, ticket.round, reason, &ev.actor.to_string(), bot.now()).await? {
        bot.say(tx, ev, "calendar_override_already", json!({ "ticket": id.to_string() }))
            .await?;
        return Ok(Handled::Done);
    }
    let lines = block_lines(bot, &blocking)?;
    let message = Message {
        title: bot.texts.render(
            "calendar_override_announced",
            &json!({ "ticket": id.to_string(), "actor": mention(&ev.actor), "reason": reason }),
        )?,
        body: (!lines.is_empty()).then(|| lines.join("\n")),
        page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
        ..Default::default()
    };
    bot.send(
        tx,
        &ticket.submitter.platform,
        Outbound::Post {
            channel: ticket.channel.clone(),
            message,
        },
        None,
    )
    .await?;
    bot.say(tx, ev, "calendar_override_done", json!({ "ticket": id.to_string() }))
        .await?;
    let detail = json!({ "reason": reason, "round": ticket.round, "blocks": blocking });
    bot.audit(tx, &ev.actor, Some(id), "release_override", detail).await?;
    Ok(Handled::Done)
}

//! Releases: the dry run of a ticket's plan (the executor builds on this).

use super::tickets::load_or_say;
use super::{views, Bot, Handled};
use crate::chat::Inbound;
use crate::domain::ticket::TicketId;
use crate::store::Tx;
use serde_json::json;

/// `/release plan REL-ID`: steps, gates, thresholds, targets and expected duration.
pub async fn dry_run(bot: &Bot, tx: &mut Tx, ev: &Inbound, id: TicketId) -> anyhow::Result<Handled> {
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
    let msg = views::dry_run(&bot.texts, &l.ticket, plan)?;
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

/// A button on the progress message, an alert or a gate.
pub async fn on_command(bot: &Bot, tx: &mut Tx, ev: &Inbound, id: TicketId, cmd: &str) -> anyhow::Result<Handled> {
    let Some(cmd) = crate::executor::Command::parse(cmd) else {
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
        crate::executor::Command::Continue => row
            .state
            .exec
            .steps
            .iter()
            .position(|s| s.status == crate::domain::execution::StepStatus::Running)
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
        bot.say(tx, ev, "exec_denied_role", json!({ "ticket": id.to_string(), "roles": roles.join(" / "), "command": bot.texts.plain(&format!("btn_{}", cmd.as_str()))? })).await?;
        return Ok(Handled::Done);
    }
    let mut run = row.state.clone();
    let now = bot.now();
    if let Err(refused) = cmd.apply(&mut run, &plan, now) {
        let status = bot.texts.plain(&format!(
            "exec_status_{}",
            if row.state.exec.rolling_back && !row.state.exec.status.is_final() {
                "ROLLING_BACK"
            } else {
                row.status.as_str()
            }
        ))?;
        let key = match refused {
            crate::domain::execution::Refused::Finished => "exec_refused_finished",
            crate::domain::execution::Refused::NotNow => "exec_refused_now",
        };
        bot.say(tx, ev, key, json!({ "ticket": id.to_string(), "status": status, "command": bot.texts.plain(&format!("btn_{}", cmd.as_str()))? })).await?;
        return Ok(Handled::Done);
    }
    if !crate::executor::save_command(bot, tx, &row, &plan, &l.ticket, run).await? {
        return Ok(Handled::Conflict);
    }
    crate::executor::audit_command(bot, tx, id, &ev.actor, cmd).await?;
    bot.metrics
        .inc("releasebot_exec_commands_total", &[("command", cmd.as_str())]);
    bot.say(
        tx,
        ev,
        "exec_done",
        json!({ "ticket": id.to_string(), "command": bot.texts.plain(&format!("btn_{}", cmd.as_str()))? }),
    )
    .await?;
    bot.executor_notify.notify_one();
    Ok(Handled::Done)
}

/// `/release status REL-ID`: the execution as its progress message shows it.
pub async fn status(bot: &Bot, tx: &mut Tx, ev: &Inbound, id: TicketId) -> anyhow::Result<Handled> {
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
pub async fn rollback(bot: &Bot, tx: &mut Tx, ev: &Inbound, id: TicketId, to: Option<i64>) -> anyhow::Result<Handled> {
    let Some(l) = load_or_say(bot, tx, ev, id).await? else {
        return Ok(Handled::Done);
    };
    let Some((row, _plan)) = crate::executor::load(tx, id).await? else {
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
        None => crate::store::executions::baseline_before(tx, row.id).await?,
    };
    let Some(baseline) = baseline else {
        let asked = to.map(|b| format!("#{b}")).unwrap_or_default();
        bot.say(tx, ev, "exec_bad_baseline", json!({ "ticket": id.to_string(), "baseline": asked, "application": row.application, "environment": row.environment })).await?;
        return Ok(Handled::Done);
    };
    let mut run = row.state.clone();
    run.later_rollback = Some(crate::executor::LaterRollback {
        baseline: baseline.id,
        version: baseline.version.clone(),
        requested_by: crate::chat::mention(&ev.actor),
        done: false,
    });
    if !crate::store::executions::reopen(tx, row.id, row.version, &run, bot.now()).await? {
        return Ok(Handled::Conflict);
    }
    crate::executor::audit_command(bot, tx, id, &ev.actor, crate::executor::Command::Rollback).await?;
    bot.say(
        tx,
        ev,
        "exec_rollback_queued",
        json!({ "ticket": id.to_string(), "baseline": baseline.id, "version": baseline.version }),
    )
    .await?;
    bot.executor_notify.notify_one();
    Ok(Handled::Done)
}

/// `/release baselines APPLICATION [ENVIRONMENT]`: what rollbacks can return to.
pub async fn baselines(
    bot: &Bot,
    tx: &mut Tx,
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

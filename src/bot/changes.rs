//! `/release scale` and `/release restart` (ops): changes to where an application runs
//! that carry no new version, as the seed's release platform records them — a change
//! record (a ticket with no approval stages) that runs at once as a one-step release of
//! the application's Kubernetes target (`[applications.kubernetes]`). Freezes and locks
//! apply as to any release; the release lock queues it behind a release of the same
//! target; a failed scale is rolled back to the replicas recorded before it; the audit
//! trail and the channel have it, with its progress message and baselines.

use super::calendar::{block_lines, blocks_for, is_role, need_role};
use super::{Bot, Handled};
use crate::chat::{Inbound, Message};
use crate::domain::plan::{FailurePolicy, KubeAction, Plan, Provider, StepDef, StepType, Template};
use crate::domain::ticket::TicketStatus;
use crate::executor::{Started, DEFAULT_ENVIRONMENT};
use crate::work::Work;
use serde_json::json;
use std::collections::BTreeMap;

/// How long the change's rollout may take before it fails (and is rolled back).
const CHANGE_TIMEOUT_SECS: u64 = 600;

/// `/release scale APP [ENV] N` and `/release restart APP [ENV]`.
pub async fn change(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    application: &str,
    environment: Option<&str>,
    action: KubeAction,
) -> anyhow::Result<Handled> {
    if !is_role(bot, tx, &ev.actor, "ops").await? {
        return need_role(bot, tx, ev, "ops").await;
    }
    let environment = environment.unwrap_or(DEFAULT_ENVIRONMENT).to_ascii_lowercase();
    let what = match &action {
        KubeAction::Scale { replicas } => bot
            .texts
            .render("change_what_scale", &json!({ "replicas": replicas }))?,
        KubeAction::Restart { .. } => bot.texts.plain("change_what_restart")?,
    };
    let mut data = json!({ "application": application, "environment": environment, "what": what });
    if !bot.config.environments.contains(&environment) {
        data["environments"] = json!(bot.config.environments.join(", "));
        bot.say(tx, ev, "change_unknown_environment", data).await?;
        return Ok(Handled::Done);
    }
    let target = bot.config.kube_target(application, &environment);
    if !target
        .as_ref()
        .is_some_and(|t| t.namespace.is_some() && t.deployment.is_some() && t.container.is_some())
    {
        bot.say(tx, ev, "change_no_target", data).await?;
        return Ok(Handled::Done);
    }
    let blocks = blocks_for(bot, tx, application, &environment).await?;
    if !blocks.is_empty() {
        bot.metrics.inc("releasebot_refusals_total", &[("reason", "calendar")]);
        let msg = Message {
            title: bot.texts.render("change_blocked", &data)?,
            body: Some(block_lines(bot, &blocks)?.join("\n")),
            ..Default::default()
        };
        bot.ephemeral(tx, ev, msg).await?;
        return Ok(Handled::Done);
    }
    let service = bot.config.default_service.clone();
    let Some((_, flow)) = bot.config.flow_of_service(&service) else {
        anyhow::bail!("the default service {service} has no flow");
    };
    let version = crate::store::executions::last_completed(tx, application, &environment)
        .await?
        .map(|b| b.version)
        .unwrap_or_else(|| crate::domain::execution::UNKNOWN.into());
    let fields = BTreeMap::from([
        ("environment".to_string(), environment.clone()),
        ("version".to_string(), version),
        ("change".to_string(), what.clone()),
    ]);
    let ticket = crate::store::tickets::insert(
        tx,
        crate::store::tickets::NewTicket {
            flow_id: &flow.id,
            service: &service,
            application,
            // No approval stages: it ends when its release does.
            status: TicketStatus::Releasing(flow.stages.len()),
            submitter: &ev.actor,
            fields: &fields,
            channel: &ev.channel,
            now: bot.now(),
        },
    )
    .await?;
    let step = StepDef {
        on_failure: FailurePolicy::Rollback,
        timeout_secs: Some(CHANGE_TIMEOUT_SECS),
        ..StepDef::new("change", &what, StepType::Deploy, change_provider(&action))
    };
    let plan = Plan {
        id: "change".into(),
        name: bot.texts.render("change_plan", &data)?,
        template: Template::Custom,
        steps: vec![step],
    };
    let started = crate::executor::start(&bot.exec_deps(), tx, &ticket, &plan).await?;
    let action_name = match action {
        KubeAction::Scale { .. } => "change_scale",
        KubeAction::Restart { .. } => "change_restart",
    };
    let detail = json!({ "reason": format!("{environment}: {what}") });
    bot.audit(tx, &ev.actor, Some(ticket.id), action_name, detail).await?;
    data["ticket"] = json!(ticket.id.to_string());
    let key = match started {
        Started::Running(id) => {
            tx.wake_execution(id);
            "change_started"
        }
        Started::Queued { behind, .. } => {
            data["behind"] = json!(behind.ticket.to_string());
            "change_queued"
        }
        Started::Already => anyhow::bail!("{} has an execution already", ticket.id),
    };
    let title = bot.texts.render(key, &data)?;
    bot.ephemeral(
        tx,
        ev,
        Message {
            title,
            page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
            ..Default::default()
        },
    )
    .await?;
    Ok(Handled::Done)
}

/// The change's one step: the application's target (filled in when it starts), `action`.
fn change_provider(action: &KubeAction) -> Provider {
    Provider::Kubernetes {
        namespace: String::new(),
        deployment: String::new(),
        container: String::new(),
        context: None,
        image: None,
        api_url: None,
        token_env: None,
        strategy: None,
        ingress: None,
        route: None,
        backend: None,
        service: None,
        action: Some(action.clone()),
    }
}

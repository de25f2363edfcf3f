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
    let action_name = match action {
        KubeAction::Scale { .. } => "change_scale",
        KubeAction::Restart { .. } => "change_restart",
    };
    let change = Change {
        application,
        environment: &environment,
        what: &what,
        provider: change_provider(&action),
        audit: action_name,
        version: None,
    };
    record_and_start(bot, tx, ev, change, data).await
}

/// A change record about to be made: where, what (as people read it), its one step.
pub struct Change<'a> {
    pub application: &'a str,
    pub environment: &'a str,
    pub what: &'a str,
    pub provider: Provider,
    /// The audit trail's action (`change_scale`).
    pub audit: &'a str,
    /// The version it deploys; none for a change to what runs (scale, restart).
    pub version: Option<&'a str>,
}

/// Records the change as a ticket with no approval stages and starts its one-step
/// release now (or queues it behind a release of the same target), audited; tells the
/// person which, with `data` (application, environment, what).
pub async fn record_and_start(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    c: Change<'_>,
    mut data: serde_json::Value,
) -> anyhow::Result<Handled> {
    let service = bot.config.default_service.clone();
    let Some((_, flow)) = bot.config.flow_of_service(&service) else {
        anyhow::bail!("the default service {service} has no flow");
    };
    let version = match c.version {
        Some(v) => v.to_string(),
        None => crate::store::executions::last_completed(tx, c.application, c.environment)
            .await?
            .map(|b| b.version)
            .unwrap_or_else(|| crate::domain::execution::UNKNOWN.into()),
    };
    let fields = BTreeMap::from([
        ("environment".to_string(), c.environment.to_string()),
        ("version".to_string(), version),
        ("change".to_string(), c.what.to_string()),
    ]);
    let ticket = crate::store::tickets::insert(
        tx,
        crate::store::tickets::NewTicket {
            flow_id: &flow.id,
            service: &service,
            application: c.application,
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
        ..StepDef::new("change", c.what, StepType::Deploy, c.provider)
    };
    let plan = Plan {
        id: "change".into(),
        name: bot.texts.render("change_plan", &data)?,
        template: Template::Custom,
        steps: vec![step],
    };
    let started = crate::executor::start(&bot.exec_deps(), tx, &ticket, &plan).await?;
    let detail = json!({ "reason": format!("{}: {}", c.environment, c.what) });
    bot.audit(tx, &ev.actor, Some(ticket.id), c.audit, detail).await?;
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
    kubernetes_step(String::new(), Some(action.clone()), None)
}

/// A `kubernetes` step in `namespace` (empty: the target's) doing `action`, or deploying
/// the version (creating the Deployment from `from_namespace`'s when it is missing).
pub fn kubernetes_step(namespace: String, action: Option<KubeAction>, from_namespace: Option<String>) -> Provider {
    Provider::Kubernetes {
        namespace,
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
        action,
        from_namespace,
    }
}

//! `/swimlane deploy NAME APP VERSION`: one of a lane's applications released into the
//! lane's namespace by the executor, with the application's own Kubernetes target (its
//! Deployment and container; the Deployment copied from the application's namespace when
//! the lane has none yet). A change record, as `/release scale` is, whose environment is
//! the lane (its own release lock and baselines); it counts as the lane's activity.

use super::*;
use crate::bot::changes::{kubernetes_step, record_and_start, Change};

pub async fn deploy(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    name: &str,
    app: &str,
    version: &str,
) -> anyhow::Result<Handled> {
    let Some(mut l) = find_or_say(bot, tx, ev, name).await? else {
        return Ok(Handled::Done);
    };
    if !may_manage(bot, tx, &ev.actor, &l).await? {
        return refuse(bot, tx, ev, &l, "deploy").await;
    }
    let data = json!({ "name": l.name, "application": app, "version": version, "apps": l.apps.join(", ") });
    if !l.apps.iter().any(|a| a == app) {
        bot.say(tx, ev, "lane_deploy_not_in_lane", data).await?;
        return Ok(Handled::Done);
    }
    let home = bot.config.kube_target(app, crate::executor::DEFAULT_ENVIRONMENT);
    let Some(home_namespace) = home
        .filter(|t| t.deployment.is_some() && t.container.is_some())
        .and_then(|t| t.namespace)
    else {
        bot.say(tx, ev, "lane_deploy_no_target", data).await?;
        return Ok(Handled::Done);
    };
    // A deploy is the lane in use: its idle clock starts again.
    let now = bot.now();
    let was_pending = l.status == LaneStatus::PendingDeletion;
    if !l.touch(now, true) {
        return not_now(bot, tx, ev, "lane_not_deployable", &l, l.status).await;
    }
    if let Some(c) = save(bot, tx, &l).await? {
        return Ok(c);
    }
    plan_timer(bot, tx, &l, None).await?;
    if was_pending {
        let until = l.prompt_at(&policy(bot));
        let kept = json!({ "name": l.name, "at": when(now), "until": when(until) });
        edit_current(bot, tx, &l, prompt_outcome(bot, &l, "lane_kept_by_activity", kept)?).await?;
    }
    audit(
        bot,
        tx,
        &ev.actor,
        &l,
        "swimlane_deploy",
        json!({ "what": format!("{app} {version}") }),
    )
    .await?;
    let what = bot
        .texts
        .render("lane_deploy_what", &json!({ "version": version, "name": l.name }))?;
    let environment = format!("lane-{}", l.name);
    let namespace = bot.config.swimlanes.namespace.replace("{lane}", &l.name);
    let change = Change {
        application: app,
        environment: &environment,
        what: &what,
        provider: kubernetes_step(namespace, None, Some(home_namespace)),
        audit: "swimlane_deploy",
        version: Some(version),
    };
    let data = json!({ "application": app, "environment": environment, "what": what });
    record_and_start(bot, tx, ev, change, data).await
}

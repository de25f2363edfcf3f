//! Baselines: the recorded state of an application in an environment. An execution
//! records where it starts from (`before`: the last completed state of its target, taken
//! when it really starts — after any release it queued behind) and what it leaves
//! (`after`, or `failed`); `/release rollback --to` returns to any of them. Values that
//! come from the simulated fleet are marked as such.

use super::{Row, Run, TargetStatus};
use crate::domain::execution::{Left, UNKNOWN};
use crate::domain::plan::{KubeStrategy, Plan, Provider, StepDef, StepType};
use crate::domain::ticket::{ReleaseOutcome, Ticket};
use crate::store::executions::{self as q, Baseline};
use crate::store::Conn;

/// Whether the plan deploys on the simulated fleet (its values are simulated).
pub fn simulated(plan: &Plan) -> bool {
    match plan.steps.iter().find(|s| s.kind == StepType::Deploy) {
        Some(deploy) => deploy.simulated(),
        None => plan.steps.iter().any(|s| s.simulated()),
    }
}

/// Records where an execution starts from: the last completed state of its target.
pub async fn record_before(conn: &mut Conn, row: &Row, plan: &Plan, now: i64) -> anyhow::Result<Baseline> {
    let last = q::last_completed(conn, &row.application, &row.environment).await?;
    let mut b = Baseline {
        id: 0,
        application: row.application.clone(),
        environment: row.environment.clone(),
        execution: Some(row.id),
        kind: "before".into(),
        version: last
            .as_ref()
            .map(|b| b.version.clone())
            .unwrap_or_else(|| UNKNOWN.into()),
        replicas: last.as_ref().map(|b| b.replicas).unwrap_or(0),
        config_version: last
            .as_ref()
            .map(|b| b.config_version.clone())
            .unwrap_or_else(|| "-".into()),
        recorded_at: now,
        simulated: last.as_ref().is_some_and(|b| b.simulated) || (last.is_none() && simulated(plan)),
        workload: last.map(|b| b.workload).unwrap_or_default(),
    };
    b.id = q::record_baseline(conn, &b).await?;
    Ok(b)
}

/// How many targets the release's deploy reached, if it deployed to named targets.
fn deployed_targets(run: &Run) -> Option<i64> {
    let done = run.targets.iter().filter(|(_, s)| *s == TargetStatus::Done).count();
    (done > 0).then_some(done as i64)
}

/// Records what an execution left: the new version when it was released, the state it
/// started from when it was rolled back, and a `failed` record otherwise (not a state a
/// later release starts from).
pub async fn record_after(
    conn: &mut Conn,
    row: &Row,
    plan: &Plan,
    ticket: &Ticket,
    outcome: ReleaseOutcome,
    now: i64,
) -> anyhow::Result<Baseline> {
    let mut before = q::baseline_before(conn, row.id, &row.application, &row.environment).await?;
    // What the DEPLOY found running, when it looked (Kubernetes), completes the record
    // of where the release started.
    if let (Some(b), Some(found)) = (before.as_mut(), &row.state.kube) {
        if b.workload.image.is_none() {
            b.workload = found.workload();
            if b.replicas == 0 {
                b.replicas = i64::from(found.replicas);
            }
            q::fill_workload(conn, b.id, &b.workload, b.replicas).await?;
        }
    }
    let mut b = after(before.as_ref(), row, plan, ticket, outcome, now);
    b.id = q::record_baseline(conn, &b).await?;
    Ok(b)
}

/// What an execution leaves: the new version when it was released, the state it started
/// from when it was rolled back, and a `failed` record otherwise.
pub fn left(row: &Row, plan: &Plan, ticket: &Ticket, outcome: ReleaseOutcome) -> Left {
    let (kind, version, replicas) = match outcome {
        ReleaseOutcome::Released => (
            "after",
            Some(ticket.fields.get("version").cloned().unwrap_or_else(|| UNKNOWN.into())),
            deployed_targets(&row.state),
        ),
        ReleaseOutcome::RolledBack => ("after", None, None),
        ReleaseOutcome::Failed if !row.state.deployed => ("failed", None, None),
        ReleaseOutcome::Failed => (
            "failed",
            Some(UNKNOWN.into()),
            Some(deployed_targets(&row.state).unwrap_or(0)),
        ),
    };
    Left {
        kind,
        version,
        replicas,
        simulated: simulated(plan),
    }
}

/// What [`record_after`] records, given the baseline the execution started from.
fn after(
    before: Option<&Baseline>,
    row: &Row,
    plan: &Plan,
    ticket: &Ticket,
    outcome: ReleaseOutcome,
    now: i64,
) -> Baseline {
    let left = left(row, plan, ticket, outcome);
    // What runs on Kubernetes after a release that rolled out there.
    let released = row
        .state
        .kube_released
        .as_ref()
        .filter(|_| outcome == ReleaseOutcome::Released);
    Baseline {
        id: 0,
        application: row.application.clone(),
        environment: row.environment.clone(),
        execution: Some(row.id),
        kind: left.kind.into(),
        version: left
            .version
            .or_else(|| before.map(|b| b.version.clone()))
            .unwrap_or_else(|| UNKNOWN.into()),
        replicas: released
            .map(|k| i64::from(k.replicas))
            .or(left.replicas)
            .or(before.map(|b| b.replicas))
            .unwrap_or(0),
        config_version: before.map(|b| b.config_version.clone()).unwrap_or_else(|| "-".into()),
        recorded_at: now,
        simulated: left.simulated,
        workload: match released {
            Some(k) => k.workload(),
            None => before.map(|b| b.workload.clone()).unwrap_or_default(),
        },
    }
}

/// Records that a rollback returned the target to `to`.
pub async fn record_rollback(conn: &mut Conn, row: &Row, to: &Baseline, plan: &Plan, now: i64) -> anyhow::Result<()> {
    q::record_baseline(
        conn,
        &Baseline {
            id: 0,
            application: row.application.clone(),
            environment: row.environment.clone(),
            execution: Some(row.id),
            kind: "rollback".into(),
            version: to.version.clone(),
            replicas: to.replicas,
            config_version: to.config_version.clone(),
            recorded_at: now,
            simulated: to.simulated || simulated(plan),
            workload: to.workload.clone(),
        },
    )
    .await?;
    Ok(())
}

/// The step a later rollback redeploys with: the plan's DEPLOY step, if it has one.
pub fn redeploy_step(plan: &Plan) -> Option<usize> {
    plan.steps.iter().position(|s| s.kind == StepType::Deploy)
}

/// The step that redeploys a baseline: the plan's DEPLOY, setting the baseline's image
/// (by digest) where the provider takes one — on the stable Deployment for a canary plan,
/// since the release that made the canary is over.
pub fn redeploy_of(deploy: &StepDef, image: Option<&str>) -> StepDef {
    let mut step = deploy.clone();
    match (&mut step.provider, image) {
        (
            Provider::Kubernetes {
                image: set, strategy, ..
            },
            Some(i),
        ) => {
            *set = Some(i.to_string());
            if *strategy == Some(KubeStrategy::Canary) {
                *strategy = Some(KubeStrategy::Rolling);
            }
        }
        (Provider::ArgoRollouts { image: set, .. }, Some(i)) => *set = Some(i.to_string()),
        _ => {}
    }
    step
}

/// The ticket as the redeploy of `version` sees it: the same fields, that version.
pub fn with_version(ticket: &Ticket, version: &str) -> Ticket {
    let mut t = ticket.clone();
    t.fields.insert("version".into(), version.into());
    t
}

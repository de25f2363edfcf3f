//! Starting a release: one execution per ticket, and at most one release per application
//! and environment at a time. A second release of a target is queued behind the one
//! running (its progress message says behind which, and it starts when that one ends) or
//! refused at approval, as `[executor] when_busy` says. Rollbacks never wait for the lock.

use super::{baselines, send_progress, status_str, Behind, Deps, Row, Run};
use crate::domain::plan::Plan;
use crate::domain::ticket::{Ticket, TicketId};
use crate::store::executions::{self as q, Lease, NewExec};
use crate::work::Work;

/// The release running on an application and environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    pub execution: i64,
    pub ticket: TicketId,
    pub since: i64,
}

/// Another release running on the application and environment, if one does.
pub async fn busy(tx: &mut Work, application: &str, environment: &str) -> anyhow::Result<Option<Busy>> {
    Ok(q::lock_holder(tx, application, environment)
        .await?
        .map(|(execution, ticket, since)| Busy {
            execution,
            ticket,
            since,
        }))
}

/// What [`start`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// The release runs now.
    Running(i64),
    /// The release waits for another one of the same target.
    Queued { id: i64, behind: Busy },
    /// The ticket has an execution already (released at most once).
    Already,
}

/// Starts the release of a ticket whose release stage was just approved, in the caller's
/// transaction. The caller wakes the executor after its commit.
pub async fn start(deps: &Deps, tx: &mut Work, ticket: &Ticket, plan: &Plan) -> anyhow::Result<Started> {
    let now = deps.now();
    let environment = super::environment_of(ticket);
    // What its Kubernetes steps leave unsaid comes from where the application runs.
    let plan = &deps.config.plan_for(plan, &ticket.application, &environment);
    let mut run = Run::new(plan);
    let plan_json = serde_json::to_string(plan)?;
    let never = crate::domain::execution::NEVER;
    let Some(id) = q::insert(
        tx,
        NewExec {
            ticket: ticket.id,
            plan_id: &plan.id,
            plan_json: &plan_json,
            application: &ticket.application,
            environment: &environment,
            status: "QUEUED",
            state: &run,
            platform: &ticket.submitter.platform,
            channel: &ticket.channel,
            due_at: never,
            now,
        },
    )
    .await?
    else {
        return Ok(Started::Already);
    };
    let started = if q::take_lock(tx, &ticket.application, &environment, id, now).await? {
        Started::Running(id)
    } else {
        let behind = busy(tx, &ticket.application, &environment)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the release lock of {} in {environment} vanished", ticket.application))?;
        run.queued_behind = Some(Behind {
            execution: behind.execution,
            ticket: behind.ticket.0,
        });
        Started::Queued { id, behind }
    };
    let due = match started {
        Started::Running(_) => now,
        _ => never,
    };
    if !q::save(
        tx,
        &deps.store.owner,
        &q::Save {
            id,
            version: 0,
            status: status_str(&run),
            state: &serde_json::to_string(&run)?,
            next_wake: due,
            finished_at: None,
            lease: Lease::Wake(due),
            now,
        },
    )
    .await?
    {
        anyhow::bail!("execution {id} changed while it was created");
    }
    let row = Row {
        id,
        ticket: ticket.id,
        plan_id: plan.id.clone(),
        application: ticket.application.clone(),
        environment,
        status: status_str(&run).into(),
        state: run,
        platform: ticket.submitter.platform.clone(),
        channel: ticket.channel.clone(),
        version: 1,
        next_wake: due,
        started_at: now,
        finished_at: None,
        lease_owner: None,
    };
    if matches!(started, Started::Running(_)) {
        baselines::record_before(tx, &row, plan, now).await?;
    }
    send_progress(deps, tx, &row).await?;
    deps.metrics
        .inc("releasebot_executions_started_total", &[("plan", &plan.id)]);
    Ok(started)
}

/// An execution that held its target's release lock ended: the lock passes to the
/// oldest release waiting for it, which starts now (from the state the ended one left).
/// Returns the execution started, for the caller to wake after its commit.
pub(crate) async fn pass_lock(deps: &Deps, tx: &mut Work, ended: &Row) -> anyhow::Result<Option<i64>> {
    if !q::release_lock(tx, &ended.application, &ended.environment, ended.id).await? {
        return Ok(None);
    }
    let now = deps.now();
    let Some(next) = q::next_queued(tx, &ended.application, &ended.environment).await? else {
        return Ok(None);
    };
    if !q::take_lock(tx, &ended.application, &ended.environment, next, now).await? {
        return Ok(None);
    }
    let row = q::get::<Run>(tx, next)
        .await?
        .ok_or_else(|| anyhow::anyhow!("execution {next} vanished"))?;
    // A plan this version cannot read does not hold the ending of the release before it:
    // the execution starts without its `before` baseline, and its own task ends it as
    // failed, saying why.
    let plan = serde_json::from_str::<Plan>(&q::plan_json(tx, next).await?).ok();
    let mut run = row.state.clone();
    run.queued_behind = None;
    if !q::save(
        tx,
        &deps.store.owner,
        &q::Save {
            id: row.id,
            version: row.version,
            status: status_str(&run),
            state: &serde_json::to_string(&run)?,
            next_wake: now,
            finished_at: None,
            lease: Lease::Wake(now),
            now,
        },
    )
    .await?
    {
        anyhow::bail!("execution {next} changed while it was started");
    }
    q::set_started(tx, row.id, now).await?;
    let started = Row {
        started_at: now,
        ..row.clone()
    };
    if let Some(plan) = &plan {
        baselines::record_before(tx, &started, plan, now).await?;
    }
    super::edit_progress(deps, tx, &started, run, now, now).await?;
    Ok(Some(next))
}

//! People steer executions: Pause, Resume, Retry, Skip, Rollback, Abort, Continue (and
//! Stop … for a step that must otherwise be let finish). A command is applied to the
//! pure state machine and saved by the handler, in its transaction; the execution's task
//! is then woken and acts on it within a second — cancelling a step that is safe to run
//! again, terminating one when asked to.

use super::{edit_progress, status_str, Deps, Row, Run};
use crate::domain::execution::{Command, Effect, Refused};
use crate::domain::plan::Plan;
use crate::domain::ticket::TicketId;
use crate::store::audit;
use crate::store::executions::{self as q, Lease};
use crate::work::Work;

/// Loads the execution of a ticket with its plan.
pub async fn load(tx: &mut Work, ticket: TicketId) -> anyhow::Result<Option<(Row, Plan)>> {
    let Some(row) = q::for_ticket::<Run>(tx, ticket).await? else {
        return Ok(None);
    };
    let plan: Plan = serde_json::from_str(&q::plan_json(tx, row.id).await?)?;
    Ok(Some((row, plan)))
}

/// Applies a person's command to an execution and saves it in the caller's transaction,
/// its progress message edited. `Ok(None)` when someone changed the execution meanwhile
/// (the handler runs again). The caller wakes the execution after its commit.
pub async fn apply(
    deps: &Deps,
    tx: &mut Work,
    row: &Row,
    plan: &Plan,
    cmd: Command,
    by: &str,
) -> anyhow::Result<Option<Result<Effect, Refused>>> {
    let now = deps.now();
    let mut run = row.state.clone();
    let effect = match run.exec.command(plan, cmd, by, now) {
        Ok(e) => e,
        Err(refused) => return Ok(Some(Err(refused))),
    };
    if cmd == Command::Continue {
        if let Some(i) = row.state.running() {
            run.steps[i].ended_at = Some(now);
        }
    }
    if let Effect::Cancelled(i) = effect {
        let info = &mut run.steps[i];
        info.polling = false;
        info.ended_at = Some(now);
        info.result = Some(super::render(
            &deps.texts,
            "result_cancelled",
            serde_json::json!({ "command": deps.texts.plain(&format!("btn_{}", cmd.as_str()))? }),
        ));
    }
    if !save_command(deps, tx, row, run).await? {
        return Ok(None);
    }
    Ok(Some(Ok(effect)))
}

/// Saves a person's change in the caller's transaction: progress edited, the execution
/// due now (unless its task holds it; the caller wakes the task after the commit).
pub async fn save_command(deps: &Deps, tx: &mut Work, row: &Row, run: Run) -> anyhow::Result<bool> {
    let now = deps.now();
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
        return Ok(false);
    }
    edit_progress(deps, tx, row, run, now, now).await?;
    Ok(true)
}

/// Appends to a ticket's audit trail for an execution event.
pub async fn audit_command(
    tx: &mut Work,
    now: i64,
    ticket: TicketId,
    actor: &crate::domain::Actor,
    cmd: Command,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    tx.audit(audit::AuditEntry {
        ticket: Some(ticket),
        at: now,
        platform: actor.platform.clone(),
        actor: actor.to_string(),
        action: format!("exec_{}", cmd.as_str().replace('-', "_")),
        detail,
    });
    Ok(())
}

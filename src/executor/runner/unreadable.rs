//! An execution whose stored plan cannot be read: it ends as failed at once, saying why.

use super::*;
use crate::work::Work;

/// The plan an execution stored when it started cannot be read (by this version of
/// releasebot): nothing of it can run, and trying again would not change that.
#[derive(Debug, Clone)]
pub(super) struct UnreadablePlan(pub(super) String);

impl std::fmt::Display for UnreadablePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "its stored plan cannot be read: {}", self.0)
    }
}

impl std::error::Error for UnreadablePlan {}

/// Ends an execution whose plan cannot be read as failed, in one transaction: the channel
/// is told why (and that nothing was rolled back), the ticket moves on as after a failed
/// release, and a release waiting for the target starts.
pub(super) async fn fail_unreadable(inner: &Inner, id: i64, error: &str) -> anyhow::Result<()> {
    let deps = &inner.deps;
    let now = deps.now();
    let run = async {
        let mut tx = Work::begin(&deps.core).await?;
        let Some(row) = q::get::<Run>(&mut tx, id).await? else {
            return Ok(());
        };
        if row.finished_at.is_some() || row.lease_owner.as_deref() != Some(deps.store.owner.as_ref()) {
            return Ok(());
        }
        let mut run = row.state.clone();
        run.exec.status = ExecStatus::Failed;
        run.finalized = true;
        let state = serde_json::to_string(&run)?;
        let status = status_str(&run);
        if !q::save(
            &mut tx,
            &deps.store.owner,
            &q::Save {
                id,
                version: row.version,
                status,
                state: &state,
                next_wake: NEVER,
                finished_at: Some(now),
                lease: Lease::Release,
                now,
            },
        )
        .await?
        {
            tx.rollback().await?;
            return Ok(());
        }
        let ended = Row {
            state: run,
            finished_at: Some(now),
            status: status.to_string(),
            ..row
        };
        let title = deps.texts.render(
            "exec_plan_unreadable",
            &json!({
                "ticket": ended.ticket.to_string(),
                "application": ended.application,
                "environment": ended.environment,
                "error": error,
            }),
        )?;
        deps.post(&mut tx, &ended, super::super::plain(title)).await?;
        let (key, event) = ended_event(&ended, ReleaseOutcome::Failed);
        record_event(&mut tx, &ended, &key, event, now).await?;
        if let Some(next) = start::pass_lock(deps, &mut tx, &ended).await? {
            tx.wake_execution(next);
        }
        tx.commit().await?;
        tracing::error!(
            execution = id,
            error,
            "executor: the execution's plan cannot be read; it ended as failed"
        );
        deps.metrics
            .inc("releasebot_executions_finished_total", &[("outcome", "failed")]);
        Ok(())
    };
    run.await
}

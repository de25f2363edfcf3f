//! Returning traffic to the old version, and a rollback asked for after the release ended.

use super::*;
use crate::work::Work;

impl Mover<'_> {
    /// Returns all traffic to the old version with the provider of the plan's traffic
    /// steps (weight 0), or on the simulated fleet.
    pub(super) async fn rollback_traffic(&self, run: &mut Run, now: i64) -> (bool, String) {
        let plan = self.plan;
        let texts = &self.deps().texts;
        let shift = plan
            .steps
            .iter()
            .rposition(|s| s.kind == StepType::TrafficShift && !s.simulated())
            // A rolling release on Kubernetes shifts no traffic: its DEPLOY step sets back
            // what ran before.
            .or_else(|| {
                plan.steps
                    .iter()
                    .position(|s| s.kind == StepType::Deploy && s.provider.sets_desired_state())
                    .filter(|_| run.kube.is_some())
            });
        let Some(j) = shift else {
            run.traffic = 0;
            let back = providers::summary("traffic_back", json!({ "restored": run.deployed }));
            return (true, back.render(texts));
        };
        let mut step = plan.steps[j].clone();
        step.kind = StepType::Rollback;
        step.weight = Some(0);
        let stop = CancellationToken::new();
        let outcome = tokio::time::timeout(
            ROLLBACK_LIMIT,
            providers::run(StepCtx {
                index: j,
                step: &step,
                ticket: self.ticket,
                run,
                sim: &self.inner.sim,
                started_at: now,
                now,
                stop: &stop,
                grace: self.inner.grace,
            }),
        )
        .await;
        match outcome {
            Ok(StepOutcome::Done { ok: true, summary, .. }) => {
                run.traffic = 0;
                // What the provider restored says more than "traffic back".
                let said = if plan.steps[j].provider.sets_desired_state() {
                    summary
                } else {
                    providers::summary("traffic_back", json!({ "restored": false }))
                };
                (true, said.render(texts))
            }
            Ok(StepOutcome::Done { summary, .. }) => {
                let reason = summary.render(texts);
                (
                    false,
                    providers::summary("rollback_failed", json!({ "reason": reason })).render(texts),
                )
            }
            Ok(StepOutcome::Continue { .. }) | Err(_) => (
                false,
                providers::summary("rollback_unfinished", json!({})).render(texts),
            ),
        }
    }

    /// Carries out a `/release rollback` asked for after the execution ended: the
    /// baseline's version redeployed through the plan's DEPLOY step, then traffic back.
    pub(super) async fn later_rollback(&self, row: Row) -> anyhow::Result<Flow> {
        let deps = self.deps();
        let plan = self.plan;
        let now = deps.now();
        let mut run = row.state.clone();
        let Some(mut lr) = run.later_rollback.clone() else {
            return self.give_back(&row, NEVER).await;
        };
        let (ok, result) = if lr.started {
            // A previous task started the redeploy and is gone: it may or may not have run.
            (
                false,
                render(&deps.texts, "result_later_rollback_interrupted", json!({})),
            )
        } else {
            lr.started = true;
            run.later_rollback = Some(lr.clone());
            let mut tx = Work::begin(&deps.core).await?;
            let saved = q::save(
                &mut tx,
                &deps.store.owner,
                &q::Save {
                    id: row.id,
                    version: row.version,
                    status: &row.status,
                    state: &serde_json::to_string(&run)?,
                    next_wake: NEVER,
                    finished_at: row.finished_at,
                    lease: Lease::Hold(now + LEASE_MS),
                    now,
                },
            )
            .await?;
            if !saved {
                tx.rollback().await?;
                return Ok(Flow::Continue);
            }
            tx.commit().await?;
            self.redeploy_and_shift(&mut run, &lr, now).await
        };
        lr.done = true;
        run.later_rollback = Some(lr.clone());
        run.rollback_result = Some(result.clone());
        let now = deps.now();
        let current = {
            let mut conn = deps.store.pool.acquire().await?;
            q::get::<Run>(&mut conn, row.id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("execution {} vanished", row.id))?
        };
        let mut tx = Work::begin(&deps.core).await?;
        if !q::save(
            &mut tx,
            &deps.store.owner,
            &q::Save {
                id: row.id,
                version: current.version,
                status: &current.status,
                state: &serde_json::to_string(&run)?,
                next_wake: NEVER,
                finished_at: Some(now),
                lease: Lease::Release,
                now,
            },
        )
        .await?
        {
            tx.rollback().await?;
            return Ok(Flow::Continue);
        }
        if ok {
            if let Some(b) = q::baseline(&mut tx, lr.baseline).await? {
                baselines::record_rollback(&mut tx, &row, &b, plan, now).await?;
            }
        }
        let saved = Row {
            finished_at: Some(now),
            ..current.clone()
        };
        edit_progress(deps, &mut tx, &saved, run, NEVER, now).await?;
        let msg = progress::later_rollback(&deps.texts, self.ticket, &lr, ok, &result)?;
        deps.send(
            &mut tx,
            &row.platform,
            Outbound::Post {
                channel: row.channel.clone(),
                message: msg,
            },
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(Flow::Exit)
    }

    /// The redeploy of a baseline's version, then traffic back to the old version.
    pub(super) async fn redeploy_and_shift(
        &self,
        run: &mut Run,
        lr: &super::super::LaterRollback,
        now: i64,
    ) -> (bool, String) {
        let texts = &self.deps().texts;
        let Some(d) = baselines::redeploy_step(self.plan) else {
            return (false, render(texts, "result_no_deploy_step", json!({})));
        };
        let ticket = baselines::with_version(self.ticket, &lr.version);
        let step = baselines::redeploy_of(&self.plan.steps[d], lr.image.as_deref());
        let stop = CancellationToken::new();
        // A provider that waits for what it set (a rollout) is looked at again until it
        // is done, within the rollback's own time limit.
        let mut deployed = StepOutcome::Continue { next_at: now };
        let mut wait = std::time::Duration::from_millis(200);
        let until = tokio::time::Instant::now() + ROLLBACK_LIMIT;
        while let StepOutcome::Continue { .. } = deployed {
            if tokio::time::Instant::now() > until {
                break;
            }
            deployed = providers::run(StepCtx {
                index: d,
                step: &step,
                ticket: &ticket,
                run,
                sim: &self.inner.sim,
                started_at: now,
                now,
                stop: &stop,
                grace: self.inner.grace,
            })
            .await;
            if let StepOutcome::Continue { .. } = deployed {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(15));
            }
        }
        let redeployed = match deployed {
            StepOutcome::Done { ok: true, summary, .. } => summary.render(texts),
            StepOutcome::Done { summary, .. } => {
                let reason = summary.render(texts);
                return (
                    false,
                    render(texts, "result_redeploy_failed", json!({ "reason": reason })),
                );
            }
            StepOutcome::Continue { .. } => {
                return (false, render(texts, "result_redeploy_failed", json!({ "reason": "" })));
            }
        };
        // Setting the baseline's image is the whole of it on a platform whose DEPLOY sets a
        // desired state and whose plan shifts no traffic (a rolling release): rolling
        // "back" after it would restore what ran before the release instead.
        let shifts = self
            .plan
            .steps
            .iter()
            .any(|s| s.kind == StepType::TrafficShift && !s.simulated());
        let (ok, back) = if step.provider.sets_desired_state() && !shifts {
            run.traffic = 0;
            (true, render(texts, "result_redeploy_is_all", json!({})))
        } else {
            self.rollback_traffic(run, now).await
        };
        let result = render(
            texts,
            "result_redeployed",
            json!({ "version": lr.version, "deploy": redeployed, "traffic": back }),
        );
        (ok, result)
    }
}

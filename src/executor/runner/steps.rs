//! Moving an execution on: its task claims it, runs its steps one after another (a
//! provider call each, listening for commands meanwhile) and records each outcome.

use super::*;

pub(super) async fn advance_all(inner: &Inner, id: i64, wake: &Notify) -> anyhow::Result<()> {
    let deps = &inner.deps;
    let Some((plan, ticket)) = Box::pin(async {
        let mut conn = deps.store.read.acquire().await?;
        let plan = inner
            .plans
            .get(q::plan_json(&mut conn, id).await?)
            .map_err(|e| anyhow::Error::new(UnreadablePlan(format!("{e:#}"))))?;
        let Some(row) = q::get::<Run>(&mut conn, id).await? else {
            return anyhow::Ok(None);
        };
        let ticket = tickets::get(&mut conn, row.ticket)
            .await?
            .ok_or_else(|| anyhow::anyhow!("{} vanished", row.ticket))?;
        Ok(Some((plan, ticket)))
    })
    .await?
    else {
        return Ok(());
    };
    let mover = Mover {
        inner,
        plan: &plan,
        ticket: &ticket,
        wake,
        last_end: std::sync::Mutex::new(None),
        end_alone: std::sync::atomic::AtomicBool::new(false),
        told: std::sync::atomic::AtomicBool::new(false),
    };
    loop {
        let row = Box::pin(async {
            let mut conn = deps.store.read.acquire().await?;
            q::get::<Run>(&mut conn, id).await
        })
        .await?;
        let Some(row) = row else { return Ok(()) };
        if row.lease_owner.as_deref() != Some(deps.store.owner.as_ref()) {
            return Ok(());
        }
        // A move is boxed and its steps run from here: a task rests inside a step for far
        // longer than it decides, and what it holds meanwhile is what it costs.
        let mut flow = Box::pin(mover.advance(row)).await?;
        while let Flow::Steps(steps) = flow {
            flow = mover.run_steps(*steps).await?;
        }
        if matches!(flow, Flow::Exit) {
            return Ok(());
        }
    }
}

/// Moves one execution on; holds what does not change during a task.
pub(super) struct Mover<'a> {
    pub(super) inner: &'a Inner,
    pub(super) plan: &'a Plan,
    pub(super) ticket: &'a Ticket,
    pub(super) wake: &'a Notify,
    /// When this task's last provider call returned: the time to the next call is the
    /// executor's own overhead between steps.
    pub(super) last_end: std::sync::Mutex<Option<std::time::Instant>>,
    /// The ending is committed alone ([`Mover::ending_in_group`]).
    pub(super) end_alone: std::sync::atomic::AtomicBool,
    /// Someone changed the execution while its step ran (a command waits for the step):
    /// the step's result is committed before anything else starts ([`Unsaved`]).
    pub(super) told: std::sync::atomic::AtomicBool,
}

/// The executor's own time between one step's provider returning and the next one's
/// starting (saving, progress, events), in seconds.
pub const STEP_OVERHEAD: &str = "releasebot_executor_step_overhead_seconds";

/// How a provider call ended.
pub(super) enum Called {
    Outcome(StepOutcome),
    /// A person's command stopped a step that is safe to run again; its result is theirs.
    Cancelled,
    /// The move that started the step was not written (the execution changed first): the
    /// step was let go, and the move's result is to be applied again.
    Lost(Box<Unsaved>),
}

impl Mover<'_> {
    pub(super) fn deps(&self) -> &Deps {
        &self.inner.deps
    }

    pub(super) async fn give_back(&self, row: &Row, due: i64) -> anyhow::Result<Flow> {
        q::release(&self.deps().store, row.id, due).await?;
        Ok(Flow::Exit)
    }

    /// One move.
    pub(super) async fn advance(&self, row: Row) -> anyhow::Result<Flow> {
        let now = self.deps().now();
        let plan = self.plan;
        if row.state.later_rollback.as_ref().is_some_and(|l| !l.done) {
            return Box::pin(self.later_rollback(row)).await;
        }
        if row.finished_at.is_some() {
            return self.give_back(&row, NEVER).await;
        }
        let mut run = row.state.clone();
        if run.queued_behind.is_some() && !run.exec.status.is_final() {
            if !run.exec.rolling_back {
                // Waits for another release of its target; that one's end starts it.
                return self.give_back(&row, NEVER).await;
            }
            // Rolled back before it started: nothing was deployed, nothing to undo.
            run.rollback_result = Some(render(&self.deps().texts, "result_cancelled_queued", json!({})));
            let _ = run.exec.rollback_finished(true);
            return self.commit_flow(&row, run, now, None).await;
        }
        // A step left running by a task that is gone (a crash, a restart).
        if let Some(i) = run.running() {
            if !run.steps[i].polling && plan.steps[i].kind != StepType::ApprovalGate {
                let interrupted = run.exec.recover(plan);
                let key = if interrupted.is_some() {
                    "result_interrupted_held"
                } else {
                    "result_interrupted_rerun"
                };
                run.steps[i].log.push(render(&self.deps().texts, key, json!({})));
                tracing::warn!(step = %plan.steps[i].id, interrupted = interrupted.is_some(), "recovered a step after a restart");
                let alert = interrupted.map(Alert::Interrupted);
                return self.commit_flow(&row, run, now, alert).await;
            }
        }
        match run.exec.next(now) {
            Next::Finished => self.commit_flow(&row, run, now, None).await,
            Next::Wait(w) => match run.running() {
                Some(i) if run.steps[i].polling => {
                    if row.next_wake > now {
                        return self.give_back(&row, row.next_wake).await;
                    }
                    Ok(Flow::Steps(Box::new(Steps {
                        row: Row { state: run, ..row },
                        i,
                        now,
                        unsaved: None,
                    })))
                }
                Some(_) => self.give_back(&row, NEVER).await,
                None => self.give_back(&row, w.unwrap_or(NEVER)).await,
            },
            Next::Rollback => {
                let (ok, result) = self.rollback_traffic(&mut run, now).await;
                run.rollback_result = Some(result);
                let _ = run.exec.rollback_finished(ok);
                self.commit_flow(&row, run, self.deps().now(), None).await
            }
            Next::Run(i) => {
                if run.exec.begin(i, now).is_err() {
                    return self.commit_flow(&row, run, now, None).await;
                }
                if !run.exec.preconditions_met(plan, i) {
                    let needs = plan.steps[i].requires.join(", ");
                    let outcome = StepOutcome::Done {
                        ok: false,
                        summary: providers::summary("precondition", json!({ "needs": needs })),
                        log: vec![],
                    };
                    let finished = self.finish(&row, run, i, outcome, now).await?;
                    return Ok(go_on(finished, now));
                }
                run.steps[i].started_at = Some(now);
                if plan.steps[i].kind == StepType::ApprovalGate {
                    // Waits for Continue; announced with its button.
                    return self.commit_flow(&row, run, now, Some(Alert::Gate(i))).await;
                }
                // The start is committed before the side effect; the lease is held through it.
                let Some(started) = self.commit(&row, run, now, None, true, false).await? else {
                    return Ok(Flow::Continue);
                };
                Ok(Flow::Steps(Box::new(Steps {
                    row: started.row,
                    i,
                    now,
                    unsaved: None,
                })))
            }
        }
    }

    /// Runs step `i` (its start committed in `row`), and each step that follows it at
    /// once: one step's result and the next one's start are committed together.
    pub(super) async fn run_steps(&self, steps: Steps) -> anyhow::Result<Flow> {
        let Steps {
            mut row,
            mut i,
            mut now,
            mut unsaved,
        } = steps;
        // The run is held once, not also in the row, while the step runs.
        let mut run = std::mem::take(&mut row.state);
        loop {
            let (step, outcome) = match self.call(&row, i, &mut run, now, unsaved.take()).await? {
                Called::Outcome(outcome) => {
                    now = self.deps().now();
                    (i, outcome)
                }
                Called::Cancelled => return Ok(Flow::Continue),
                Called::Lost(lost) => {
                    // The execution as it is now, and the lost move's result applied to it.
                    let latest = Box::pin(async {
                        let mut conn = self.deps().store.pool.acquire().await?;
                        q::get::<Run>(&mut conn, row.id).await
                    })
                    .await?;
                    let Some(latest) = latest else {
                        return Ok(Flow::Exit);
                    };
                    row = latest;
                    run = row.state.clone();
                    now = lost.now;
                    (lost.step, lost.outcome)
                }
            };
            match Box::pin(self.finish(&row, run, step, outcome, now)).await? {
                Finished::Moved(flow) => return Ok(flow),
                Finished::Started(next_row, j, next_unsaved) => {
                    row = *next_row;
                    run = std::mem::take(&mut row.state);
                    i = j;
                    unsaved = next_unsaved;
                }
            }
        }
    }

    /// Runs (or polls) step `i`, listening for commands and renewing the lease meanwhile.
    /// With `unsaved`, the move that started the step is still being written: its answer
    /// comes first — a person's command is looked at only after it, and if the move was
    /// not written the step is let go ([`Called::Lost`]).
    pub(super) async fn call(
        &self,
        row: &Row,
        i: usize,
        run: &mut Run,
        now: i64,
        mut unsaved: Option<Box<Unsaved>>,
    ) -> anyhow::Result<Called> {
        let deps = self.deps();
        let step = &self.plan.steps[i];
        let stop = CancellationToken::new();
        let started_at = run.steps[i].started_at.unwrap_or(now);
        let ended = self.last_end.lock().map(|mut l| l.take()).unwrap_or(None);
        if let Some(ended) = ended {
            deps.metrics.observe(STEP_OVERHEAD, ended.elapsed().as_secs_f64());
        }
        let call = providers::run(StepCtx {
            index: i,
            step,
            ticket: self.ticket,
            run,
            sim: &self.inner.sim,
            started_at,
            now,
            stop: &stop,
            grace: self.inner.grace,
        });
        tokio::pin!(call);
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + RENEW_EVERY, RENEW_EVERY);
        loop {
            let mut answered = None;
            let called = tokio::select! {
                answer = async {
                    match unsaved.as_mut() {
                        Some(u) => (&mut u.answer).await,
                        None => std::future::pending().await,
                    }
                }, if unsaved.is_some() => {
                    answered = Some(super::super::committer::settled(answer)?);
                    None
                }
                outcome = &mut call => {
                    if let Ok(mut l) = self.last_end.lock() {
                        *l = Some(std::time::Instant::now());
                    }
                    Some(Called::Outcome(outcome))
                }
                _ = self.wake.notified(), if unsaved.is_none() => {
                    // Boxed, as below: seldom, and the task would carry their size all along.
                    let latest = Box::pin(async {
                        let mut conn = deps.store.read.acquire().await?;
                        q::get::<Run>(&mut conn, row.id).await
                    })
                    .await?;
                    let Some(latest) = latest else { continue };
                    self.told.store(true, Ordering::Relaxed);
                    let e = &latest.state.exec;
                    if e.steps[i].status == StepStatus::Running && !e.status.is_final() {
                        continue;
                    }
                    if e.terminate == Some(i) {
                        tracing::info!(step = %step.id, "terminating the step's processes, as asked");
                        stop.cancel();
                        None
                    } else if interruptible(self.plan, i) {
                        tracing::info!(step = %step.id, "cancelled by a person's command");
                        Some(Called::Cancelled)
                    } else {
                        None
                    }
                }
                _ = renew.tick() => {
                    if !Box::pin(q::extend(&deps.store, row.id, deps.now() + LEASE_MS)).await? {
                        tracing::warn!(step = %step.id, "lost the execution's lease; stopping the step");
                        Some(Called::Cancelled)
                    } else {
                        None
                    }
                }
            };
            if let Some(saved) = answered {
                let lost = unsaved.take();
                match lost {
                    Some(lost) if !saved => {
                        tracing::debug!(step = %step.id, "the execution changed before the step's start was written; letting the step go");
                        return Ok(Called::Lost(lost));
                    }
                    _ => continue,
                }
            }
            let Some(called) = called else { continue };
            // Nothing is decided before the move that started the step is written.
            if let Some(mut lost) = unsaved.take() {
                let answer = (&mut lost.answer).await;
                if !super::super::committer::settled(answer)? {
                    return Ok(Called::Lost(lost));
                }
            }
            return Ok(called);
        }
    }

    /// Applies a provider's answer to step `i` and commits it. If a person changed the
    /// execution meanwhile, the answer is applied again to their version: a result is
    /// never lost.
    pub(super) async fn finish(
        &self,
        row: &Row,
        run: Run,
        i: usize,
        outcome: StepOutcome,
        now: i64,
    ) -> anyhow::Result<Finished> {
        if let (StepOutcome::Done { .. }, Some(started)) = (&outcome, run.steps[i].started_at) {
            let kind = serde_json::to_value(self.plan.steps[i].kind).ok();
            let kind = kind.as_ref().and_then(|k| k.as_str()).unwrap_or("");
            self.deps().metrics.observe_with(
                "releasebot_executor_step_duration_seconds",
                &[("type", kind)],
                ((now - started).max(0) as f64) / 1000.0,
            );
        }
        let (mut row, mut run) = (row.clone(), run);
        for _ in 0..5 {
            let (mut next, next_wake, alert) = apply_outcome(&self.deps().texts, self.plan, run, i, &outcome, now);
            let attempt = Row {
                next_wake: next_wake.unwrap_or(row.next_wake),
                ..row.clone()
            };
            let started = start_next(self.plan, &mut next, now);
            // A next step that is safe to run again starts while its start is written —
            // unless a person changed the execution meanwhile (their command waits for
            // this result: nothing else starts before it is applied).
            let told = self.told.swap(false, Ordering::Relaxed);
            let later = alert.is_none() && !told && started.is_some_and(|j| interruptible(self.plan, j));
            if let Some(c) = self
                .commit(&attempt, next, now, alert, started.is_some(), later)
                .await?
            {
                let unsaved = c.unsaved.map(|(answer, turn)| {
                    Box::new(Unsaved {
                        answer,
                        _turn: turn,
                        step: i,
                        outcome: outcome.clone(),
                        now,
                    })
                });
                return Ok(match started {
                    Some(j) => Finished::Started(Box::new(c.row), j, unsaved),
                    None if c.released => Finished::Moved(Flow::Exit),
                    None => Finished::Moved(Flow::Continue),
                });
            }
            let mut conn = self.deps().store.pool.acquire().await?;
            row = q::get::<Run>(&mut conn, row.id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("execution {} vanished", row.id))?;
            run = row.state.clone();
        }
        anyhow::bail!(
            "execution {}: could not record the result of step {i} after 5 concurrent changes",
            row.id
        )
    }
}

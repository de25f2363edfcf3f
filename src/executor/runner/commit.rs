//! Committing a move: the run saved with its progress message, alerts and events, in
//! the committer's group or alone, and the ending of an execution that is over.

use super::*;
use crate::work::Work;

impl Mover<'_> {
    pub(super) async fn commit_flow(
        &self,
        row: &Row,
        run: Run,
        now: i64,
        alert: Option<Alert>,
    ) -> anyhow::Result<Flow> {
        match self.commit(row, run, now, alert, false, false).await? {
            Some(c) if c.released => Ok(Flow::Exit),
            // Someone changed it meanwhile: the next move starts from their version.
            _ => Ok(Flow::Continue),
        }
    }

    /// Saves the run, edits the progress message and posts or records what must be told,
    /// in one transaction; ends the execution when it is over. The task keeps the
    /// execution when its next move is due now (or `hold`), and gives it back otherwise.
    /// `None` when someone changed it meanwhile. With `later`, an ordinary move is handed
    /// to the committer and not waited for (its answer is in [`Committed::unsaved`]).
    pub(super) async fn commit(
        &self,
        row: &Row,
        run: Run,
        now: i64,
        alert: Option<Alert>,
        hold: bool,
        later: bool,
    ) -> anyhow::Result<Option<Committed>> {
        let turn = self.inner.moving.clone().acquire_owned().await?;
        // Boxed: a task waits in a step far longer than it commits; its resting size counts.
        let mut committed = Box::pin(self.commit_buffered(row, run, now, alert, hold, later)).await?;
        if let Some((_, held)) = committed.as_mut().and_then(|c| c.unsaved.as_mut()) {
            *held = Some(turn);
        }
        Ok(committed)
    }

    pub(super) async fn commit_buffered(
        &self,
        row: &Row,
        mut run: Run,
        now: i64,
        alert: Option<Alert>,
        hold: bool,
        later: bool,
    ) -> anyhow::Result<Option<Committed>> {
        let deps = self.deps();
        let plan = self.plan;
        let mut finished_at = None;
        let ending = run.exec.status.is_final() && !run.finalized;
        if ending {
            run.finalized = true;
            finished_at = Some(now);
        }
        let next_wake = self.next_wake(row, &run, now);
        let release = !hold && next_wake > now;
        let lease = if release {
            Lease::Release
        } else {
            Lease::Hold(now + LEASE_MS)
        };
        // What is written is prepared before the writer is taken.
        run.record(now);
        let state = serde_json::to_string(&run)?;
        let saved_row = saved_after(
            &Row {
                finished_at,
                lease_owner: (!release).then(|| deps.store.owner.to_string()),
                ..row.clone()
            },
            run.clone(),
            next_wake,
            now,
        );
        let announcement = match &alert {
            Some(Alert::Gate(i)) => Some(progress::gate(&deps.texts, &saved_row, plan, self.ticket, *i)?),
            Some(Alert::Notice(i)) => Some(progress::notice(&deps.texts, &saved_row, plan, self.ticket, *i)?),
            _ => None,
        };
        let p = Prepared {
            state,
            saved_row,
            announcement,
            next_wake,
            finished_at,
            lease,
            release,
            ending,
        };
        let raises = matches!(alert, Some(Alert::Failed(..)) | Some(Alert::Interrupted(..)));
        let ended = if ending && !raises {
            self.ending_in_group(&p.saved_row, row.version, now)?
        } else {
            None
        };
        if raises || (ending && ended.is_none()) {
            // Boxed: the rare path holds a transaction; the ordinary one waits for its group.
            return Box::pin(self.commit_alone(row, run, p, alert, now)).await;
        }
        // Written with other executions' moves.
        let (extra, report) = ended.unzip();
        let outbox = group_messages(row, p.announcement, report, now);
        let m = super::super::committer::Move {
            id: row.id,
            version: row.version,
            status: status_str(&run),
            state: p.state,
            next_wake: p.next_wake,
            finished_at: p.finished_at,
            lease: p.lease,
            now,
            outbox,
            extra: extra.unwrap_or_default(),
        };
        if later && !ending {
            return Ok(Some(Committed {
                row: p.saved_row,
                released: p.release,
                unsaved: Some((self.inner.committer.submit(m), None)),
            }));
        }
        if !self.inner.committer.commit(m).await? {
            if ending {
                self.end_alone.store(true, Ordering::Relaxed);
            }
            return Ok(None);
        }
        if ending {
            self.ended(&p.saved_row);
            deps.inbox_notify.notify_one();
        }
        Ok(Some(Committed {
            row: p.saved_row,
            released: p.release,
            unsaved: None,
        }))
    }

    /// When the execution must be looked at next after this move: never once it is over or
    /// waits for a person, at the provider's next poll, or when its status says.
    fn next_wake(&self, row: &Row, run: &Run, now: i64) -> i64 {
        let plan = self.plan;
        if run.exec.status.is_final() {
            NEVER
        } else if run.running().is_some_and(|i| run.steps[i].polling) {
            row.next_wake.max(now)
        } else if run
            .running()
            .is_some_and(|i| plan.steps[i].kind == StepType::ApprovalGate)
            || (run.exec.status == ExecStatus::Paused && run.running().is_none())
        {
            NEVER
        } else {
            match run.exec.next(now) {
                Next::Wait(Some(t)) => t,
                Next::Wait(None) if run.running().is_none() => NEVER,
                _ => now,
            }
        }
    }

    /// Commits a move that ends the execution or raises an alert, in its own transaction.
    pub(super) async fn commit_alone(
        &self,
        row: &Row,
        run: Run,
        p: Prepared,
        alert: Option<Alert>,
        now: i64,
    ) -> anyhow::Result<Option<Committed>> {
        let deps = self.deps();
        let mut tx = Work::begin(&deps.core).await?;
        let saved = q::save(
            &mut tx,
            &deps.store.owner,
            &q::Save {
                id: row.id,
                version: row.version,
                status: status_str(&run),
                state: &p.state,
                next_wake: p.next_wake,
                finished_at: p.finished_at,
                lease: p.lease,
                now,
            },
        )
        .await?;
        if !saved {
            tx.rollback().await?;
            return Ok(None);
        }
        send_progress(deps, &mut tx, &p.saved_row).await?;
        if let Some(msg) = p.announcement {
            deps.post(&mut tx, row, msg).await?;
        }
        let attention = match alert {
            Some(Alert::Failed(i, reaction, evidence)) => Some((i, "attention", Some(reaction), evidence)),
            Some(Alert::Interrupted(i)) => Some((i, "interrupted", None, String::new())),
            Some(Alert::Gate(_)) | Some(Alert::Notice(_)) | None => None,
        };
        if let Some((i, what, reaction, evidence)) = attention {
            let event = SystemEvent::NeedsAttention {
                ticket: row.ticket.0,
                execution: row.id,
                step: i,
                reaction,
                evidence,
            };
            let key = format!("x{}:{what}:{i}:{}", row.id, run.exec.steps[i].attempts);
            record_event(&mut tx, row, &key, event, now).await?;
        }
        if p.ending {
            if let Some(next) = self.end(&mut tx, &p.saved_row, now).await? {
                tx.wake_execution(next);
            }
        }
        tx.commit().await?;
        Ok(Some(Committed {
            row: p.saved_row,
            released: p.release,
            unsaved: None,
        }))
    }

    /// The execution ended: the baseline it left, the report, the event the ticket moves
    /// on with, and the release lock for whoever waits for it.
    pub(super) async fn end(&self, tx: &mut Work, row: &Row, now: i64) -> anyhow::Result<Option<i64>> {
        let deps = self.deps();
        let outcome = outcome(row);
        if row.state.queued_behind.is_none() {
            baselines::record_after(tx, row, self.plan, self.ticket, outcome, now).await?;
        }
        deps.post(tx, row, self.report(row, outcome, now)?).await?;
        let (key, event) = ended_event(row, outcome);
        record_event(tx, row, &key, event, now).await?;
        let next = start::pass_lock(deps, tx, row).await?;
        self.ended(row);
        Ok(next)
    }

    /// [`end`](Self::end) as statements of the move that ends the execution, written with
    /// other executions' moves (SQLite's group commit), and its report — or `None` when the
    /// ending is committed alone: the store is PostgreSQL (its moves are not written in one
    /// request), the execution never started (it was queued), it ran on Kubernetes, or such a move of it was not
    /// written already (a release of the same target waits to be started by this one — the
    /// move's fence —, or a person changed it). `row` is the execution as the move saves
    /// it, from `version`.
    pub(super) fn ending_in_group(
        &self,
        row: &Row,
        version: i64,
        now: i64,
    ) -> anyhow::Result<Option<(Vec<crate::store::Statement>, crate::chat::Outbound)>> {
        let deps = self.deps();
        // A release that ran on Kubernetes leaves a workload (image, digest, config) for
        // its baselines, which `end` records: it ends alone.
        if deps.store.backend != crate::store::Backend::Sqlite
            || row.state.queued_behind.is_some()
            || row.state.kube.is_some()
            || self.end_alone.load(Ordering::Relaxed)
        {
            return Ok(None);
        }
        let outcome = outcome(row);
        let left = baselines::left(row, self.plan, self.ticket, outcome);
        let report = crate::chat::Outbound::Post {
            channel: row.channel.clone(),
            message: self.report(row, outcome, now)?,
        };
        let (key, event) = ended_event(row, outcome);
        let event = new_event(row, key, event)?;
        let statements = q::ending_statements(
            deps.store.backend,
            (row.id, version, &deps.store.owner),
            (&row.application, &row.environment),
            &left,
            &event,
            now,
        );
        Ok(Some((statements, report)))
    }

    /// The final report of an execution that ended.
    pub(super) fn report(&self, row: &Row, outcome: ReleaseOutcome, now: i64) -> anyhow::Result<crate::chat::Message> {
        let deps = self.deps();
        let service = deps.service_name(self.ticket);
        progress::report(&deps.texts, row, self.plan, self.ticket, &service, outcome, now)
    }

    /// Counts an ending, once it is committed.
    pub(super) fn ended(&self, row: &Row) {
        self.deps().metrics.inc(
            "releasebot_executions_finished_total",
            &[("outcome", outcome(row).as_str())],
        );
    }
}

/// How an ended execution ended, as its ticket records it.
pub(super) fn outcome(row: &Row) -> ReleaseOutcome {
    match row.state.exec.status {
        ExecStatus::Completed => ReleaseOutcome::Released,
        ExecStatus::RolledBack => ReleaseOutcome::RolledBack,
        _ => ReleaseOutcome::Failed,
    }
}

/// The event an ended execution leaves for its ticket, with its key.
pub(super) fn ended_event(row: &Row, outcome: ReleaseOutcome) -> (String, SystemEvent) {
    let event = SystemEvent::ExecutionEnded {
        ticket: row.ticket.0,
        execution: row.id,
        outcome,
    };
    (format!("x{}:ended", row.id), event)
}

/// An event for the handlers of the execution's ticket, as the inbox records it.
pub(super) fn new_event(row: &Row, key: String, event: SystemEvent) -> anyhow::Result<crate::store::inbox::NewEvent> {
    let ev = crate::chat::Inbound {
        actor: crate::domain::Actor::new(row.platform.clone(), "releasebot"),
        actor_name: "releasebot".into(),
        channel: row.channel.clone(),
        trigger: None,
        reply: None,
        kind: crate::chat::InboundKind::System(event),
    };
    Ok(crate::store::inbox::NewEvent {
        platform: row.platform.clone(),
        dedupe_key: key,
        order_key: format!("ticket:{}", row.ticket.0),
        payload: serde_json::to_string(&ev)?,
    })
}

/// Records an event for the handlers in the caller's transaction.
pub(super) async fn record_event(
    tx: &mut Work,
    row: &Row,
    key: &str,
    event: SystemEvent,
    now: i64,
) -> anyhow::Result<()> {
    let e = new_event(row, key.to_string(), event)?;
    crate::store::inbox::insert_in(tx, &[e], now).await?;
    tx.wake_inbox();
    Ok(())
}

/// The run after a provider's answer, the wake time it asks for, and what to announce.
pub(super) fn apply_outcome(
    texts: &crate::chat::Texts,
    plan: &Plan,
    mut run: Run,
    i: usize,
    outcome: &StepOutcome,
    now: i64,
) -> (Run, Option<i64>, Option<Alert>) {
    match outcome {
        StepOutcome::Continue { next_at } => {
            if run.exec.steps[i].status == StepStatus::Running {
                run.steps[i].polling = true;
            }
            (run, Some(*next_at), None)
        }
        StepOutcome::Done { ok, summary, log } => {
            let info = &mut run.steps[i];
            info.polling = false;
            info.ended_at = Some(now);
            let text = summary.render(texts);
            info.result = Some(text.clone());
            info.log.extend(log.iter().cloned());
            let keep = info.log.len().saturating_sub(providers::LOG_TAIL);
            info.log.drain(..keep);
            if run.exec.steps[i].status != StepStatus::Running {
                // Rolled back or aborted by a person while the step ran: only its result is kept.
                run.exec.terminate = None;
                return (run, Some(now), None);
            }
            let (run, wake, alert) = if *ok {
                if plan.steps[i].kind == StepType::TrafficShift {
                    // Whatever shifted it (a script, a webhook, nginx, the simulation), the
                    // new version now has this share: monitors judge it and progress shows it.
                    run.traffic = plan.steps[i].weight.unwrap_or(100);
                }
                if plan.steps[i].kind == StepType::Deploy
                    && plan.steps[i].provider.sets_desired_state()
                    && !plan.steps.iter().any(|s| s.kind == StepType::TrafficShift)
                {
                    // A rolling update on Kubernetes: once it is rolled out, every pod is new.
                    run.traffic = 100;
                }
                let _ = run.exec.succeed(i);
                let notice = plan.steps[i].notify || plan.steps[i].kind == StepType::Notify;
                (run, Some(now), notice.then_some(Alert::Notice(i)))
            } else {
                match run.exec.fail(plan, i, now) {
                    Ok(Reaction::Retrying { at }) => {
                        let line = providers::summary("retrying", json!({ "result": text })).render(texts);
                        run.steps[i].log.push(line);
                        (run, Some(at), None)
                    }
                    Ok(reaction) => (run, Some(now), Some(Alert::Failed(i, reaction, text))),
                    Err(_) => (run, None, None),
                }
            };
            let mut run = run;
            // A command that waited for the step applies now.
            if let Some((q, r)) = run.exec.step_ended(plan, now) {
                tracing::info!(
                    command = q.command.as_str(),
                    applied = r.is_ok(),
                    "applied a command that waited for the step"
                );
            }
            (run, wake, alert)
        }
    }
}

/// The messages of a move written with other executions' moves: its progress message, an
/// announcement (a gate, a notice) and the report of an ending.
fn group_messages(
    row: &Row,
    announcement: Option<crate::chat::Message>,
    report: Option<crate::chat::Outbound>,
    now: i64,
) -> crate::outbox::Batch {
    let mut outbox = crate::outbox::Batch::default();
    outbox.push(
        &row.platform,
        &progress_out(row),
        Some(&super::super::progress_key(row.id)),
        now,
    );
    if let Some(message) = announcement {
        let post = crate::chat::Outbound::Post {
            channel: row.channel.clone(),
            message,
        };
        outbox.push(&row.platform, &post, None, now);
    }
    if let Some(report) = report {
        outbox.push(&row.platform, &report, None, now);
    }
    outbox
}

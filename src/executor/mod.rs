//! The durable release executor. Each execution's state lives in one row; a runner
//! leases a due execution, decides the next move with the pure state machine
//! (`domain::execution`), commits the step's start before any side effect, runs the
//! provider, and commits the result together with the chat messages announcing it.

pub mod net;
pub mod progress;
pub mod providers;

use crate::bot::Bot;
use crate::chat::{Message, Outbound};
use crate::domain::execution::{ExecStatus, Execution, Next, Reaction, Refused, StepStatus};
use crate::domain::plan::{Plan, StepType};
use crate::domain::ticket::{ReleaseOutcome, Ticket, TicketId};
use crate::store::executions::{self as q, Baseline, ExecRow, NewExec};
use crate::store::{audit, tickets, Tx};
use providers::{SimConfig, StepCtx, StepOutcome, NEVER};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    Pending,
    Done,
    Failed,
}

/// Measurements of old and new versions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub new_success: f64,
    pub old_success: f64,
    pub new_p95: u64,
    pub old_p95: u64,
    #[serde(default)]
    pub new_p99: u64,
    #[serde(default)]
    pub old_p99: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepInfo {
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub result: Option<String>,
    /// The tail of the step's output.
    pub log: Vec<String>,
    /// A long-running step (monitor) that the runner polls.
    pub polling: bool,
    /// Provider scratch: consecutive health successes, or "submitted" for a polled webhook.
    #[serde(default)]
    pub counter: u32,
}

/// Everything about one execution, stored as one JSON document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub exec: Execution,
    pub steps: Vec<StepInfo>,
    /// The new version's share of traffic, in percent.
    pub traffic: u8,
    pub sample: Option<Sample>,
    pub deployed: bool,
    /// Per-target status of the deploy, in rollout order.
    #[serde(default)]
    pub targets: Vec<(String, TargetStatus)>,
    pub rollback_result: Option<String>,
    pub finalized: bool,
    /// A rollback asked for after the execution ended (`/release rollback`).
    #[serde(default)]
    pub later_rollback: Option<LaterRollback>,
}

/// `/release rollback` on a finished release: traffic back to the old version and the
/// chosen baseline restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaterRollback {
    pub baseline: i64,
    pub version: String,
    pub requested_by: String,
    pub done: bool,
}

impl Run {
    pub fn new(plan: &Plan) -> Self {
        Self {
            exec: Execution::new(plan),
            steps: vec![StepInfo::default(); plan.steps.len()],
            traffic: 0,
            sample: None,
            deployed: false,
            targets: vec![],
            rollback_result: None,
            finalized: false,
            later_rollback: None,
        }
    }

    fn running(&self) -> Option<usize> {
        self.exec.steps.iter().position(|s| s.status == StepStatus::Running)
    }
}

pub type Row = ExecRow<Run>;

const LEASE_MS: i64 = 15 * 60_000;
/// The environment a release goes to when the ticket does not name one.
pub const DEFAULT_ENVIRONMENT: &str = "prod";

/// The ticket's `environment` field, or `prod`.
pub fn environment_of(ticket: &Ticket) -> String {
    ticket
        .fields
        .get("environment")
        .cloned()
        .unwrap_or_else(|| DEFAULT_ENVIRONMENT.to_string())
}

fn status_str(s: ExecStatus) -> &'static str {
    match s {
        ExecStatus::Running => "RUNNING",
        ExecStatus::Paused => "PAUSED",
        ExecStatus::Completed => "COMPLETED",
        ExecStatus::Failed => "FAILED",
        ExecStatus::RolledBack => "ROLLED_BACK",
    }
}

pub fn progress_key(id: i64) -> String {
    format!("x{id}:progress")
}

/// Starts the release of a ticket whose release stage was just approved, in the caller's
/// transaction. Returns false when the ticket already has an execution.
pub async fn start(bot: &Bot, tx: &mut Tx, ticket: &Ticket, plan: &Plan, service: &str) -> anyhow::Result<bool> {
    let now = bot.now();
    let run = Run::new(plan);
    let plan_json = serde_json::to_string(plan)?;
    let environment = environment_of(ticket);
    let Some(id) = q::insert(
        tx,
        NewExec {
            ticket: ticket.id,
            plan_id: &plan.id,
            plan_json: &plan_json,
            application: &ticket.application,
            environment: &environment,
            status: status_str(run.exec.status),
            state: &run,
            platform: &ticket.submitter.platform,
            channel: &ticket.channel,
            now,
        },
    )
    .await?
    else {
        return Ok(false);
    };
    // The baseline a rollback returns to.
    let before = q::latest_baseline(tx, &ticket.application, &environment).await?;
    q::record_baseline(
        tx,
        &Baseline {
            id: 0,
            application: ticket.application.clone(),
            environment: environment.clone(),
            execution: Some(id),
            kind: "before".into(),
            version: before
                .as_ref()
                .map(|b| b.version.clone())
                .unwrap_or_else(|| "unknown".into()),
            replicas: before.as_ref().map(|b| b.replicas).unwrap_or(0),
            config_version: before
                .as_ref()
                .map(|b| b.config_version.clone())
                .unwrap_or_else(|| "-".into()),
            recorded_at: now,
        },
    )
    .await?;
    let row = Row {
        id,
        ticket: ticket.id,
        plan_id: plan.id.clone(),
        application: ticket.application.clone(),
        environment,
        status: status_str(run.exec.status).into(),
        state: run,
        platform: ticket.submitter.platform.clone(),
        channel: ticket.channel.clone(),
        version: 0,
        next_wake: now,
        started_at: now,
        finished_at: None,
    };
    let msg = progress::message(&bot.texts, &row, plan, ticket, service, now)?;
    bot.send(
        tx,
        &row.platform,
        Outbound::Post {
            channel: row.channel.clone(),
            message: msg,
        },
        Some(&progress_key(id)),
    )
    .await?;
    bot.metrics
        .inc("releasebot_executions_started_total", &[("plan", &plan.id)]);
    Ok(true)
}

/// The runner. Tests drive [`Executor::step`]; `serve` runs [`Executor::run`].
#[derive(Clone)]
pub struct Executor {
    pub bot: Bot,
    pub sim: SimConfig,
    pub notify: std::sync::Arc<tokio::sync::Notify>,
}

/// What the runner will commit after the provider answered.
enum Commit {
    Outcome(usize, StepOutcome),
    Save,
}

impl Executor {
    /// Advances one due execution by one move; false when none was due.
    pub async fn step(&self) -> anyhow::Result<bool> {
        let now = self.bot.now();
        let Some(row) = q::lease_due::<Run>(&self.bot.store, now, LEASE_MS).await? else {
            return Ok(false);
        };
        let plan: Plan = {
            let mut conn = self.bot.store.pool.acquire().await?;
            serde_json::from_str(&q::plan_json(&mut conn, row.id).await?)?
        };
        let span = tracing::info_span!("execution", id = row.id, ticket = %row.ticket);
        tracing::Instrument::instrument(self.advance(row, plan, now), span).await
    }

    /// One move of a leased execution.
    async fn advance(&self, row: Row, plan: Plan, now: i64) -> anyhow::Result<bool> {
        if row.state.later_rollback.as_ref().is_some_and(|l| !l.done) {
            return self.later_rollback(row, &plan, now).await.map(|_| true);
        }
        let ticket = {
            let mut conn = self.bot.store.pool.acquire().await?;
            tickets::get(&mut conn, row.ticket)
                .await?
                .ok_or_else(|| anyhow::anyhow!("{} vanished", row.ticket))?
        };
        let mut run = row.state.clone();
        // A step left running by a runner that is gone (its lease expired).
        if let Some(i) = run.running() {
            if !run.steps[i].polling && plan.steps[i].kind != StepType::ApprovalGate {
                let interrupted = run.exec.recover(&plan);
                let key = if interrupted.is_some() {
                    "interrupted_held"
                } else {
                    "interrupted_rerun"
                };
                run.steps[i]
                    .log
                    .push(providers::summary(key, serde_json::json!({})).render(&self.bot.texts));
                tracing::warn!(step = %plan.steps[i].id, interrupted = interrupted.is_some(), "recovered a step after a restart");
                let alert = interrupted.map(Alert::Interrupted);
                self.commit(&row, &plan, &ticket, run, now, alert).await?;
                return Ok(true);
            }
        }
        let commit = match run.exec.next(now) {
            Next::Finished => Commit::Save,
            Next::Wait(_) => match run.running().filter(|i| run.steps[*i].polling) {
                Some(i) => {
                    let outcome = self.call(&plan, i, &ticket, &mut run, now).await;
                    Commit::Outcome(i, outcome)
                }
                None => Commit::Save,
            },
            Next::Rollback => {
                let (ok, result) = self.rollback_traffic(&plan, &ticket, &mut run, now).await;
                run.rollback_result = Some(result);
                let _ = run.exec.rollback_finished(ok);
                Commit::Save
            }
            Next::Run(i) => {
                if run.exec.begin(i, now).is_err() {
                    Commit::Save
                } else if !run.exec.preconditions_met(&plan, i) {
                    let needs = plan.steps[i].requires.join(", ");
                    Commit::Outcome(
                        i,
                        StepOutcome::Done {
                            ok: false,
                            summary: providers::summary("precondition", serde_json::json!({ "needs": needs })),
                            log: vec![],
                        },
                    )
                } else {
                    run.steps[i].started_at = Some(now);
                    if plan.steps[i].kind == StepType::ApprovalGate {
                        // Waits for Continue; announced with its button.
                        self.commit(&row, &plan, &ticket, run, now, Some(Alert::Gate(i)))
                            .await?;
                        return Ok(true);
                    }
                    // The start is committed before the side effect; the lease is held through it.
                    let lease = now + plan.steps[i].timeout_secs.map(|t| t as i64 * 1000).unwrap_or(LEASE_MS) + 60_000;
                    let Some(row) = self
                        .commit_with(&row, &plan, &ticket, run.clone(), now, None, lease)
                        .await?
                    else {
                        return Ok(true);
                    };
                    let outcome = self.call(&plan, i, &ticket, &mut run, now).await;
                    let now = self.bot.now();
                    return self
                        .finish(&row, &plan, &ticket, run, i, outcome, now)
                        .await
                        .map(|_| true);
                }
            }
        };
        match commit {
            Commit::Save => {
                if self.commit(&row, &plan, &ticket, run, now, None).await?.is_none() {
                    // Redone from the new state at once.
                    let mut conn = self.bot.store.pool.acquire().await?;
                    q::save_lease(&mut conn, row.id, 0).await?;
                }
            }
            Commit::Outcome(i, outcome) => self.finish(&row, &plan, &ticket, run, i, outcome, now).await?,
        }
        Ok(true)
    }

    /// Carries out a `/release rollback` asked for after the execution ended.
    async fn later_rollback(&self, row: Row, plan: &Plan, now: i64) -> anyhow::Result<()> {
        let bot = &self.bot;
        let ticket = {
            let mut conn = bot.store.pool.acquire().await?;
            tickets::get(&mut conn, row.ticket)
                .await?
                .ok_or_else(|| anyhow::anyhow!("{} vanished", row.ticket))?
        };
        let mut run = row.state.clone();
        let (ok, result) = self.rollback_traffic(plan, &ticket, &mut run, now).await;
        let Some(lr) = run.later_rollback.as_mut() else {
            return Ok(());
        };
        lr.done = true;
        let lr = lr.clone();
        run.rollback_result = Some(result.clone());
        let mut tx = bot.store.begin().await?;
        if !q::save(
            &mut tx,
            row.id,
            row.version,
            &row.status,
            &run,
            NEVER,
            Some(now),
            0,
            now,
        )
        .await?
        {
            tx.rollback().await?;
            return Ok(());
        }
        if ok {
            let b = q::baseline(&mut tx, lr.baseline).await?;
            q::record_baseline(
                &mut tx,
                &Baseline {
                    id: 0,
                    application: row.application.clone(),
                    environment: row.environment.clone(),
                    execution: Some(row.id),
                    kind: "rollback".into(),
                    version: lr.version.clone(),
                    replicas: b.as_ref().map(|b| b.replicas).unwrap_or(0),
                    config_version: b.map(|b| b.config_version).unwrap_or_else(|| "-".into()),
                    recorded_at: now,
                },
            )
            .await?;
        }
        let saved = Row {
            finished_at: Some(now),
            ..row.clone()
        };
        edit_progress(bot, &mut tx, &saved, plan, &ticket, run, NEVER, now).await?;
        let msg = progress::later_rollback(&bot.texts, &ticket, &lr, ok, &result)?;
        bot.send(
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
        bot.outbox_notify.notify_one();
        Ok(())
    }

    /// Returns all traffic to the old version with the provider of the plan's traffic
    /// steps (weight 0), or on the simulated fleet.
    async fn rollback_traffic(&self, plan: &Plan, ticket: &Ticket, run: &mut Run, now: i64) -> (bool, String) {
        let shift = plan
            .steps
            .iter()
            .rposition(|s| s.kind == StepType::TrafficShift && s.provider != "sim");
        let texts = &self.bot.texts;
        let Some(j) = shift else {
            run.traffic = 0;
            let back = providers::summary("traffic_back", serde_json::json!({ "restored": run.deployed }));
            return (true, back.render(texts));
        };
        let mut step = plan.steps[j].clone();
        step.kind = StepType::Rollback;
        step.weight = Some(0);
        let outcome = providers::run(StepCtx {
            index: j,
            step: &step,
            ticket,
            run,
            sim: &self.sim,
            started_at: now,
            now,
        })
        .await;
        match outcome {
            StepOutcome::Done { ok: true, .. } => {
                run.traffic = 0;
                (
                    true,
                    providers::summary("traffic_back", serde_json::json!({ "restored": false })).render(texts),
                )
            }
            StepOutcome::Done { summary, .. } => {
                let reason = summary.render(texts);
                (
                    false,
                    providers::summary("rollback_failed", serde_json::json!({ "reason": reason })).render(texts),
                )
            }
            StepOutcome::Continue { .. } => (
                false,
                providers::summary("rollback_unfinished", serde_json::json!({})).render(texts),
            ),
        }
    }

    async fn call(&self, plan: &Plan, i: usize, ticket: &Ticket, run: &mut Run, now: i64) -> StepOutcome {
        let started_at = run.steps[i].started_at.unwrap_or(now);
        providers::run(StepCtx {
            index: i,
            step: &plan.steps[i],
            ticket,
            run,
            sim: &self.sim,
            started_at,
            now,
        })
        .await
    }

    /// Applies a provider's answer to step `i` and commits it. If a person changed the
    /// execution meanwhile, the answer is applied again to their version: a result is
    /// never lost.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        row: &Row,
        plan: &Plan,
        ticket: &Ticket,
        run: Run,
        i: usize,
        outcome: StepOutcome,
        now: i64,
    ) -> anyhow::Result<()> {
        let (mut row, mut run) = (row.clone(), run);
        for _ in 0..5 {
            let (next, next_wake, alert) = apply_outcome(&self.bot.texts, plan, run, i, &outcome, now);
            let attempt = Row {
                next_wake: next_wake.unwrap_or(row.next_wake),
                ..row.clone()
            };
            if self.commit(&attempt, plan, ticket, next, now, alert).await?.is_some() {
                return Ok(());
            }
            let mut conn = self.bot.store.pool.acquire().await?;
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

    /// Saves the run (releasing the lease), edits the progress message and posts any
    /// alert, in one transaction; finishes the ticket when the execution ended.
    /// Returns the row as saved, or `None` when someone changed it meanwhile.
    async fn commit(
        &self,
        row: &Row,
        plan: &Plan,
        ticket: &Ticket,
        run: Run,
        now: i64,
        alert: Option<Alert>,
    ) -> anyhow::Result<Option<Row>> {
        self.commit_with(row, plan, ticket, run, now, alert, 0).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit_with(
        &self,
        row: &Row,
        plan: &Plan,
        ticket: &Ticket,
        mut run: Run,
        now: i64,
        alert: Option<Alert>,
        lease_until: i64,
    ) -> anyhow::Result<Option<Row>> {
        let bot = &self.bot;
        let mut tx = bot.store.begin().await?;
        let mut finished_at = None;
        let ending = run.exec.status.is_final() && !run.finalized;
        if ending {
            run.finalized = true;
            finished_at = Some(now);
        }
        let next_wake = if run.exec.status.is_final() {
            NEVER
        } else if run.running().is_some_and(|i| run.steps[i].polling) {
            // A monitor keeps observing even while paused (a pause takes effect between steps).
            row.next_wake.max(now)
        } else if run.exec.status == ExecStatus::Paused
            || run
                .running()
                .is_some_and(|i| plan.steps[i].kind == StepType::ApprovalGate)
        {
            NEVER
        } else {
            match run.exec.next(now) {
                Next::Wait(Some(t)) => t,
                _ => now,
            }
        };
        let saved = q::save(
            &mut tx,
            row.id,
            row.version,
            status_str(run.exec.status),
            &run,
            next_wake,
            finished_at,
            lease_until,
            now,
        )
        .await?;
        if !saved {
            // A person pressed a button meanwhile: their change stands.
            tx.rollback().await?;
            return Ok(None);
        }
        let saved_row = Row {
            finished_at,
            ..row.clone()
        };
        let saved_row = edit_progress(bot, &mut tx, &saved_row, plan, ticket, run.clone(), next_wake, now).await?;
        if let Some(alert) = alert {
            let members = crate::bot::roles::members(bot, &mut tx, "ops", &ticket.application).await?;
            let members: Vec<_> = members.into_iter().filter(|a| a.platform == row.platform).collect();
            let msg = match alert {
                Alert::Failed(i, reaction, evidence) => {
                    progress::alert(&bot.texts, &saved_row, plan, ticket, i, reaction, &evidence, &members)?
                }
                Alert::Interrupted(i) => progress::interrupted(&bot.texts, &saved_row, plan, ticket, i, &members)?,
                Alert::Gate(i) => progress::gate(&bot.texts, &saved_row, plan, ticket, i)?,
                Alert::Notice(i) => progress::notice(&bot.texts, &saved_row, plan, ticket, i)?,
            };
            bot.send(
                &mut tx,
                &row.platform,
                Outbound::Post {
                    channel: row.channel.clone(),
                    message: msg,
                },
                None,
            )
            .await?;
        }
        if ending {
            self.end(&mut tx, &saved_row, plan, ticket, now).await?;
        }
        tx.commit().await?;
        bot.outbox_notify.notify_one();
        Ok(Some(saved_row))
    }

    /// The execution ended: record the baseline, report, and move the ticket on.
    async fn end(&self, tx: &mut Tx, row: &Row, plan: &Plan, ticket: &Ticket, now: i64) -> anyhow::Result<()> {
        let bot = &self.bot;
        let outcome = match row.state.exec.status {
            ExecStatus::Completed => ReleaseOutcome::Released,
            ExecStatus::RolledBack => ReleaseOutcome::RolledBack,
            _ => ReleaseOutcome::Failed,
        };
        bot.metrics
            .inc("releasebot_executions_finished_total", &[("outcome", outcome.as_str())]);
        let before = q::latest_baseline(tx, &row.application, &row.environment).await?;
        let version = match outcome {
            ReleaseOutcome::Released => ticket.fields.get("version").cloned().unwrap_or_default(),
            _ => before
                .as_ref()
                .map(|b| b.version.clone())
                .unwrap_or_else(|| "unknown".into()),
        };
        q::record_baseline(
            tx,
            &Baseline {
                id: 0,
                application: row.application.clone(),
                environment: row.environment.clone(),
                execution: Some(row.id),
                kind: "after".into(),
                version,
                replicas: i64::from(self.sim.hosts),
                config_version: before.map(|b| b.config_version).unwrap_or_else(|| "-".into()),
                recorded_at: now,
            },
        )
        .await?;
        let report = progress::report(&bot.texts, row, plan, ticket, &service_name(bot, ticket), outcome, now)?;
        bot.send(
            tx,
            &row.platform,
            Outbound::Post {
                channel: row.channel.clone(),
                message: report,
            },
            None,
        )
        .await?;
        crate::bot::tickets::release_finished(bot, tx, ticket.id, outcome).await
    }

    /// Runs until shutdown.
    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            match self.step().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::error!(error = %format!("{e:#}"), "executor"),
            }
            if shutdown.is_cancelled() {
                break;
            }
            let wait = match q::next_wake(&self.bot.store).await {
                Ok(Some(t)) => (t - self.bot.now()).clamp(10, 1_000),
                _ => 1_000,
            };
            tokio::select! {
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(wait as u64)) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        tracing::info!("executor stopped");
    }
}

/// The run after a provider's answer, the wake time it asks for, and what to announce.
fn apply_outcome(
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
            if run.exec.steps[i].status != StepStatus::Running {
                // Rolled back or aborted by a person while the step ran: only its result is kept.
                return (run, None, None);
            }
            if *ok {
                let _ = run.exec.succeed(i);
                let notice = plan.steps[i].notify || plan.steps[i].kind == StepType::Notify;
                return (run, Some(now), notice.then_some(Alert::Notice(i)));
            }
            match run.exec.fail(plan, i, now) {
                Ok(Reaction::Retrying { at }) => {
                    let line = providers::summary("retrying", serde_json::json!({ "result": text })).render(texts);
                    run.steps[i].log.push(line);
                    (run, Some(at), None)
                }
                Ok(reaction) => (run, Some(now), Some(Alert::Failed(i, reaction, text))),
                Err(_) => (run, None, None),
            }
        }
    }
}

enum Alert {
    Failed(usize, Reaction, String),
    Interrupted(usize),
    Gate(usize),
    Notice(usize),
}

/// A person's command on an execution (from a button).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Pause,
    Resume,
    Retry,
    Skip,
    Rollback,
    Abort,
    Continue,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Retry => "retry",
            Command::Skip => "skip",
            Command::Rollback => "rollback",
            Command::Abort => "abort",
            Command::Continue => "continue",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Command::Pause,
            Command::Resume,
            Command::Retry,
            Command::Skip,
            Command::Rollback,
            Command::Abort,
            Command::Continue,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// Applies the command to the run; the step a Continue completes must be a waiting gate.
    pub fn apply(self, run: &mut Run, plan: &Plan, now: i64) -> Result<(), Refused> {
        match self {
            Command::Pause => run.exec.pause(),
            Command::Resume => run.exec.resume(),
            Command::Retry => run.exec.retry(),
            Command::Skip => run.exec.skip(),
            Command::Rollback => run.exec.rollback(),
            Command::Abort => run.exec.abort(),
            Command::Continue => {
                let i = run
                    .running()
                    .filter(|i| plan.steps[*i].kind == StepType::ApprovalGate)
                    .ok_or(Refused::NotNow)?;
                run.steps[i].ended_at = Some(now);
                run.exec.succeed(i)
            }
        }
    }
}

/// Loads the execution of a ticket with its plan.
pub async fn load(tx: &mut Tx, ticket: TicketId) -> anyhow::Result<Option<(Row, Plan)>> {
    let Some(row) = q::for_ticket::<Run>(tx, ticket).await? else {
        return Ok(None);
    };
    let plan: Plan = serde_json::from_str(&q::plan_json(tx, row.id).await?)?;
    Ok(Some((row, plan)))
}

/// Saves a person's change in the caller's transaction: progress edited, runner woken.
pub async fn save_command(
    bot: &Bot,
    tx: &mut Tx,
    row: &Row,
    plan: &Plan,
    ticket: &Ticket,
    run: Run,
) -> anyhow::Result<bool> {
    let now = bot.now();
    let next_wake = now;
    if !q::save(
        tx,
        row.id,
        row.version,
        status_str(run.exec.status),
        &run,
        next_wake,
        None,
        q::KEEP_LEASE,
        now,
    )
    .await?
    {
        return Ok(false);
    }
    edit_progress(bot, tx, row, plan, ticket, run, next_wake, now).await?;
    Ok(true)
}

/// The display name of a ticket's service.
fn service_name(bot: &Bot, ticket: &Ticket) -> String {
    bot.config
        .services
        .get(&ticket.service)
        .map(|s| s.name.clone())
        .unwrap_or_else(|| ticket.service.clone())
}

/// After a save: the row as stored, and its progress message edited in the same transaction.
#[allow(clippy::too_many_arguments)]
async fn edit_progress(
    bot: &Bot,
    tx: &mut Tx,
    row: &Row,
    plan: &Plan,
    ticket: &Ticket,
    run: Run,
    next_wake: i64,
    now: i64,
) -> anyhow::Result<Row> {
    let saved = Row {
        version: row.version + 1,
        status: status_str(run.exec.status).into(),
        state: run,
        next_wake,
        ..row.clone()
    };
    let msg = progress::message(&bot.texts, &saved, plan, ticket, &service_name(bot, ticket), now)?;
    let out = Outbound::Update {
        channel: row.channel.clone(),
        message: msg,
    };
    bot.send(tx, &row.platform, out, Some(&progress_key(row.id))).await?;
    Ok(saved)
}

/// Appends to a ticket's audit trail for an execution event.
pub async fn audit_command(
    bot: &Bot,
    tx: &mut Tx,
    ticket: TicketId,
    actor: &crate::domain::Actor,
    cmd: Command,
) -> anyhow::Result<()> {
    audit::append(
        tx,
        &audit::AuditEntry {
            ticket: Some(ticket),
            at: bot.now(),
            platform: actor.platform.clone(),
            actor: actor.to_string(),
            action: format!("exec_{}", cmd.as_str()),
            detail: serde_json::json!({}),
        },
    )
    .await
}

/// A message for a ticket's channel without buttons.
pub fn plain(title: String) -> Message {
    Message {
        title,
        ..Default::default()
    }
}

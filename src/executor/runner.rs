//! The runner: claims due executions and advances each in its own task, so that a long
//! step of one release never delays another release's monitor, gate or rollback.
//!
//! A task holds its execution's lease (renewed while a step runs) and moves it on until
//! it must wait — for a time (the next monitor sample, a retry's backoff), a person (a
//! paused execution, a gate) or another release (the release lock) — then gives it back,
//! due when it must be looked at again. While a provider runs, the task also listens for
//! a person's command: a step that is safe to run again is cancelled at once, a step
//! being stopped is terminated, any other step is let finish and the command applied
//! after it.

use super::providers::{self, StepCtx, StepOutcome};
use super::{
    baselines, edit_progress, progress, progress_out, render, saved_after, send_progress, start, status_str, Deps, Row,
    Run,
};
use crate::chat::Outbound;
use crate::config::SimConfig;
use crate::domain::events::SystemEvent;
use crate::domain::execution::NEVER;
use crate::domain::execution::{interruptible, ExecStatus, Next, Reaction, StepStatus};
use crate::domain::plan::{Plan, StepType};
use crate::domain::ticket::{ReleaseOutcome, Ticket};
use crate::runtime::Heartbeat;
use crate::store::executions::{self as q, Lease};
use crate::store::{tickets, Tx};
use futures::FutureExt;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// How long a claim lasts; a task renews it while a step runs.
pub const LEASE_MS: i64 = 60_000;
const RENEW_EVERY: Duration = Duration::from_secs(20);
/// Moves prepared or being written at once. A move holds copies of its run (as the
/// state written, in the progress message, as statement arguments) until it is written;
/// when hundreds of executions move in the same instant — all of them starting at once —
/// the others wait for a turn holding only their run, so that the memory an execution
/// costs does not depend on how many moved with it. Far above what waits in an ordinary
/// moment (a step's move takes a fraction of a millisecond).
const MOVES_AT_ONCE: usize = 32;
/// A task that failed gives its execution back for this long.
const BACKOFF_MS: i64 = 5_000;
/// A rollback never runs longer than this, whatever its provider.
const ROLLBACK_LIMIT: Duration = Duration::from_secs(15 * 60);

/// What [`Executor::drain`] waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// Every task to end.
    All,
    /// Every task but those of these executions (tests use it to act while another
    /// release's long step runs).
    Except(Vec<i64>),
}

struct Inner {
    deps: Deps,
    /// Writes ordinary moves of many executions together.
    committer: super::committer::Committer,
    sim: SimConfig,
    /// SIGTERM → SIGKILL grace of a terminated step.
    grace: Duration,
    slots: Arc<Semaphore>,
    /// Turns to prepare and write a move ([`MOVES_AT_ONCE`]).
    moving: Arc<Semaphore>,
    /// Tasks alive.
    active: AtomicUsize,
    /// Fired whenever a task ends.
    changed: Notify,
    /// Plans of executions in flight, shared by those that run the same one.
    plans: Plans,
}

/// Executions store their plan as it was when they started; most of those in flight run
/// the same few plans, parsed once here and shared while a task uses them.
#[derive(Default)]
struct Plans(std::sync::Mutex<std::collections::HashMap<String, std::sync::Weak<Plan>>>);

impl Plans {
    fn get(&self, json: String) -> anyhow::Result<Arc<Plan>> {
        let Ok(mut plans) = self.0.lock() else {
            return Ok(Arc::new(serde_json::from_str(&json)?));
        };
        if let Some(plan) = plans.get(&json).and_then(std::sync::Weak::upgrade) {
            return Ok(plan);
        }
        let plan = Arc::new(serde_json::from_str::<Plan>(&json)?);
        plans.retain(|_, p| p.strong_count() > 0);
        plans.insert(json, Arc::downgrade(&plan));
        Ok(plan)
    }
}

/// The runner; cheap to clone.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
    pub heartbeat: Arc<Heartbeat>,
}

/// Counts a live task (and frees its slot) until dropped, even by a panic.
struct TaskGuard {
    inner: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.inner.active.fetch_sub(1, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }
}

/// What the task does after a move.
enum Flow {
    Continue,
    Exit,
    /// Run step `i`, started (committed) in `row`, and those that follow it.
    Steps(Box<Steps>),
}

struct Steps {
    /// As saved: its state is the run.
    row: Row,
    i: usize,
    now: i64,
    /// The move that started step `i`, while it is not yet written.
    unsaved: Option<Box<Unsaved>>,
}

/// A move that started a step safe to run again, handed to the committer and not yet
/// written: the step runs meanwhile, and nothing else is decided before the answer. If
/// the execution changed first (a person's command), the step is let go and the result
/// the move recorded, `outcome` of step `step`, is applied again to the execution as it
/// is then — as a move that waited for its commit would have done.
struct Unsaved {
    answer: super::committer::Answer,
    /// The move's turn ([`MOVES_AT_ONCE`]), until it is written.
    _turn: Option<OwnedSemaphorePermit>,
    step: usize,
    outcome: StepOutcome,
    now: i64,
}

/// Carries on after a result: runs the step started with it, if any.
fn go_on(finished: Finished, now: i64) -> Flow {
    match finished {
        Finished::Moved(flow) => flow,
        Finished::Started(row, i, unsaved) => Flow::Steps(Box::new(Steps {
            row: *row,
            i,
            now,
            unsaved,
        })),
    }
}

/// A move ready to be written.
struct Prepared {
    state: String,
    saved_row: Row,
    announcement: Option<crate::chat::Message>,
    next_wake: i64,
    finished_at: Option<i64>,
    lease: Lease,
    release: bool,
    ending: bool,
}

/// What recording a step's result led to.
enum Finished {
    Moved(Flow),
    /// The next step, `usize`, was started in the same commit (saved in the row, or to be:
    /// see [`Unsaved`]).
    Started(Box<Row>, usize, Option<Box<Unsaved>>),
}

/// Starts the step that is due right after a result, when a provider runs it at once (not
/// an approval gate, its requirements met); which one.
fn start_next(plan: &Plan, run: &mut Run, now: i64) -> Option<usize> {
    let Next::Run(j) = run.exec.next(now) else { return None };
    if plan.steps[j].kind == StepType::ApprovalGate || !run.exec.preconditions_met(plan, j) {
        return None;
    }
    run.exec.begin(j, now).ok()?;
    run.steps[j].started_at = Some(now);
    Some(j)
}

/// What the runner commits alongside a move.
enum Alert {
    Failed(usize, Reaction, String),
    Interrupted(usize),
    Gate(usize),
    Notice(usize),
}

/// A committed move.
struct Committed {
    row: Row,
    /// The task gave the execution back (it waits for a time, a person, or has ended).
    released: bool,
    /// Handed to the committer and not yet written (asked for with `later`): its answer,
    /// and its turn.
    unsaved: Option<(super::committer::Answer, Option<OwnedSemaphorePermit>)>,
}

impl Executor {
    pub fn new(deps: Deps, sim: SimConfig, concurrency: usize, grace: Duration) -> Self {
        let heartbeat = Arc::new(Heartbeat::new("executor", deps.clock.clone()));
        Self {
            inner: Arc::new(Inner {
                committer: super::committer::Committer::start(deps.store.clone(), deps.outbox_notify.clone()),
                deps,
                sim,
                grace,
                slots: Arc::new(Semaphore::new(concurrency.max(1))),
                moving: Arc::new(Semaphore::new(MOVES_AT_ONCE)),
                active: AtomicUsize::new(0),
                changed: Notify::new(),
                plans: Plans::default(),
            }),
            heartbeat,
        }
    }

    pub fn deps(&self) -> &Deps {
        &self.inner.deps
    }

    /// Executions whose tasks are alive.
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::SeqCst)
    }

    /// Claims due executions (as many as there are free slots) and starts a task for each.
    async fn dispatch(&self) -> anyhow::Result<usize> {
        let free = self.inner.slots.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let deps = &self.inner.deps;
        let ids = q::claim(&deps.store, deps.now(), LEASE_MS, free as i64).await?;
        let mut started = 0;
        for id in &ids {
            if deps.wakers.is_running(*id) {
                // Its task here outlived the lease (a stall): the claim renewed it; carry on.
                continue;
            }
            started += 1;
            let permit = self.inner.slots.clone().acquire_owned().await?;
            self.inner.active.fetch_add(1, Ordering::SeqCst);
            let guard = TaskGuard {
                inner: self.inner.clone(),
                _permit: permit,
            };
            let inner = self.inner.clone();
            let id = *id;
            let wake = deps.wakers.register(id);
            tokio::spawn(async move {
                let _guard = guard;
                task(&inner, id, wake).await;
            });
        }
        Ok(started)
    }

    /// Advances every due execution until each waits (for a time, a person or another
    /// release) — but those [`Wait::Except`] names, whose tasks may keep running. Returns
    /// how many tasks it started. Tests drive the executor with it.
    pub async fn drain(&self, wait: Wait) -> anyhow::Result<usize> {
        self.heartbeat.beat();
        let mut started = 0;
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let n = self.dispatch().await?;
            started += n;
            let busy = match &wait {
                Wait::All => self.inner.active.load(Ordering::SeqCst),
                Wait::Except(ids) => self
                    .inner
                    .deps
                    .wakers
                    .running()
                    .into_iter()
                    .filter(|id| !ids.contains(id))
                    .count(),
            };
            if busy == 0 && n == 0 {
                return Ok(started);
            }
            if busy > 0 {
                changed.await;
            }
        }
    }

    /// When the next execution falls due, if any waits for a time.
    pub async fn next_wake(&self) -> anyhow::Result<Option<i64>> {
        q::next_wake(&self.inner.deps.store).await
    }

    /// Runs until `shutdown` fires; then stops claiming, lets tasks finish their move (for
    /// at most `grace`) and stops. A step still running then is interrupted: the next
    /// start resumes it (idempotent steps) or asks a person (the others).
    pub async fn run(self, shutdown: CancellationToken, grace: Duration) {
        let deps = self.inner.deps.clone();
        let mut watch = tokio::time::interval(Duration::from_secs(1));
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
        loop {
            self.heartbeat.beat();
            match self.dispatch().await {
                Ok(n) => self.heartbeat.progress(n),
                Err(e) => tracing::error!(error = %format!("{e:#}"), "executor"),
            }
            let wait = match self.next_wake().await {
                Ok(Some(t)) => {
                    self.heartbeat
                        .set_waiting(t <= deps.now() && self.inner.slots.available_permits() == 0);
                    (t - deps.now()).clamp(5, 1_000)
                }
                _ => {
                    self.heartbeat.set_waiting(false);
                    1_000
                }
            };
            tokio::select! {
                _ = deps.wakers.runner.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = watch.tick() => {
                    // Another replica's handler changed one of ours: wake its task.
                    if deps.store.backend == crate::store::Backend::Postgres {
                        watch_versions(&deps, &mut seen).await;
                    }
                }
                _ = shutdown.cancelled() => break,
            }
        }
        let stop = async {
            loop {
                let changed = self.inner.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if self.inner.active.load(Ordering::SeqCst) == 0 {
                    break;
                }
                changed.await;
            }
        };
        if tokio::time::timeout(grace, stop).await.is_err() {
            tracing::warn!(
                tasks = self.inner.active.load(Ordering::SeqCst),
                "executor: steps still running at the deadline; the next start resumes or interrupts them"
            );
        }
        if let Err(e) =
            crate::store::lease::release_owned(&deps.store, &crate::store::lease::EXECUTIONS, deps.now()).await
        {
            tracing::warn!(error = %format!("{e:#}"), "executor: could not free its leases");
        }
        tracing::info!("executor stopped");
    }
}

/// Wakes the tasks of executions whose version changed since the last look.
async fn watch_versions(deps: &Deps, seen: &mut std::collections::HashMap<i64, i64>) {
    let ids = deps.wakers.running();
    match q::versions(&deps.store, &ids).await {
        Ok(versions) => {
            seen.retain(|id, _| ids.contains(id));
            for (id, v) in versions {
                if seen.insert(id, v).is_some_and(|old| old != v) {
                    deps.wakers.wake(id);
                }
            }
        }
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "executor: watching executions"),
    }
}

/// One execution's task: moves it on until it waits, then gives it back.
async fn task(inner: &Inner, id: i64, wake: Arc<Notify>) {
    let deps = &inner.deps;
    let span = tracing::info_span!("execution", id);
    let result = std::panic::AssertUnwindSafe(tracing::Instrument::instrument(advance_all(inner, id, &wake), span))
        .catch_unwind()
        .await;
    deps.wakers.unregister(id, &wake);
    let mut unreadable = None;
    let failed = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            unreadable = e.downcast_ref::<UnreadablePlan>().cloned();
            Some(format!("{e:#}"))
        }
        Err(panic) => Some(
            panic
                .downcast::<String>()
                .map(|s| *s)
                .or_else(|p| p.downcast::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|_| "a panic".into()),
        ),
    };
    if let Some(why) = failed {
        if let Some(UnreadablePlan(error)) = unreadable {
            match Box::pin(fail_unreadable(inner, id, &error)).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(execution = id, error = %format!("{e:#}"), "executor: could not end an execution whose plan is unreadable")
                }
            }
        }
        tracing::error!(execution = id, error = %why, "executor: a move failed; trying again shortly");
        if let Err(e) = q::release(&deps.store, id, deps.now() + BACKOFF_MS).await {
            tracing::warn!(execution = id, error = %format!("{e:#}"), "executor: could not give an execution back");
        }
    }
}

/// The plan an execution stored when it started cannot be read (by this version of
/// releasebot): nothing of it can run, and trying again would not change that.
#[derive(Debug, Clone)]
struct UnreadablePlan(String);

impl std::fmt::Display for UnreadablePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "its stored plan cannot be read: {}", self.0)
    }
}

impl std::error::Error for UnreadablePlan {}

/// Ends an execution whose plan cannot be read as failed, in one transaction: the channel
/// is told why (and that nothing was rolled back), the ticket moves on as after a failed
/// release, and a release waiting for the target starts.
async fn fail_unreadable(inner: &Inner, id: i64, error: &str) -> anyhow::Result<()> {
    let deps = &inner.deps;
    let now = deps.now();
    crate::outbox::buffered(async {
        let mut tx = deps.store.begin().await?;
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
        if !q::save_json(
            &mut tx,
            &deps.store.owner,
            id,
            row.version,
            status,
            &state,
            NEVER,
            Some(now),
            Lease::Release,
            now,
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
        deps.post(&mut tx, &ended, super::plain(title)).await?;
        let (key, event) = ended_event(&ended, ReleaseOutcome::Failed);
        record_event(&mut tx, &ended, &key, event, now).await?;
        let next = start::pass_lock(deps, &mut tx, &ended).await?;
        crate::outbox::flush(&mut tx).await?;
        tx.commit().await?;
        tracing::error!(
            execution = id,
            error,
            "executor: the execution's plan cannot be read; it ended as failed"
        );
        deps.metrics
            .inc("releasebot_executions_finished_total", &[("outcome", "failed")]);
        deps.outbox_notify.notify_one();
        deps.inbox_notify.notify_one();
        if let Some(next) = next {
            deps.wakers.wake(next);
        }
        Ok(())
    })
    .await
}

async fn advance_all(inner: &Inner, id: i64, wake: &Notify) -> anyhow::Result<()> {
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
struct Mover<'a> {
    inner: &'a Inner,
    plan: &'a Plan,
    ticket: &'a Ticket,
    wake: &'a Notify,
    /// When this task's last provider call returned: the time to the next call is the
    /// executor's own overhead between steps.
    last_end: std::sync::Mutex<Option<std::time::Instant>>,
    /// The ending is committed alone ([`Mover::ending_in_group`]).
    end_alone: std::sync::atomic::AtomicBool,
    /// Someone changed the execution while its step ran (a command waits for the step):
    /// the step's result is committed before anything else starts ([`Unsaved`]).
    told: std::sync::atomic::AtomicBool,
}

/// The executor's own time between one step's provider returning and the next one's
/// starting (saving, progress, events), in seconds.
pub const STEP_OVERHEAD: &str = "releasebot_executor_step_overhead_seconds";

/// How a provider call ended.
enum Called {
    Outcome(StepOutcome),
    /// A person's command stopped a step that is safe to run again; its result is theirs.
    Cancelled,
    /// The move that started the step was not written (the execution changed first): the
    /// step was let go, and the move's result is to be applied again.
    Lost(Box<Unsaved>),
}

impl Mover<'_> {
    fn deps(&self) -> &Deps {
        &self.inner.deps
    }

    async fn give_back(&self, row: &Row, due: i64) -> anyhow::Result<Flow> {
        q::release(&self.deps().store, row.id, due).await?;
        Ok(Flow::Exit)
    }

    /// One move.
    async fn advance(&self, row: Row) -> anyhow::Result<Flow> {
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
    async fn run_steps(&self, steps: Steps) -> anyhow::Result<Flow> {
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
    async fn call(
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
                    answered = Some(super::committer::settled(answer)?);
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
                if !super::committer::settled(answer)? {
                    return Ok(Called::Lost(lost));
                }
            }
            return Ok(called);
        }
    }

    /// Applies a provider's answer to step `i` and commits it. If a person changed the
    /// execution meanwhile, the answer is applied again to their version: a result is
    /// never lost.
    async fn finish(&self, row: &Row, run: Run, i: usize, outcome: StepOutcome, now: i64) -> anyhow::Result<Finished> {
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

    async fn commit_flow(&self, row: &Row, run: Run, now: i64, alert: Option<Alert>) -> anyhow::Result<Flow> {
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
    async fn commit(
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
        let mut committed =
            crate::outbox::buffered(Box::pin(self.commit_buffered(row, run, now, alert, hold, later))).await?;
        if let Some((_, held)) = committed.as_mut().and_then(|c| c.unsaved.as_mut()) {
            *held = Some(turn);
        }
        Ok(committed)
    }

    async fn commit_buffered(
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
        let next_wake = if run.exec.status.is_final() {
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
        };
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
        let mut outbox = crate::outbox::Batch::default();
        outbox.push(
            &row.platform,
            &progress_out(row),
            Some(&super::progress_key(row.id)),
            now,
        );
        if let Some(message) = p.announcement {
            let post = crate::chat::Outbound::Post {
                channel: row.channel.clone(),
                message,
            };
            outbox.push(&row.platform, &post, None, now);
        }
        let (extra, report) = ended.unzip();
        if let Some(report) = report {
            outbox.push(&row.platform, &report, None, now);
        }
        let m = super::committer::Move {
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

    /// Commits a move that ends the execution or raises an alert, in its own transaction.
    async fn commit_alone(
        &self,
        row: &Row,
        run: Run,
        p: Prepared,
        alert: Option<Alert>,
        now: i64,
    ) -> anyhow::Result<Option<Committed>> {
        let deps = self.deps();
        let mut tx = deps.store.begin().await?;
        let saved = q::save_json(
            &mut tx,
            &deps.store.owner,
            row.id,
            row.version,
            status_str(&run),
            &p.state,
            p.next_wake,
            p.finished_at,
            p.lease,
            now,
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
        let recorded = p.ending || attention.is_some();
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
        let mut wake = vec![];
        if p.ending {
            wake.extend(self.end(&mut tx, &p.saved_row, now).await?);
        }
        crate::outbox::flush(&mut tx).await?;
        tx.commit().await?;
        deps.outbox_notify.notify_one();
        if recorded {
            deps.inbox_notify.notify_one();
        }
        for id in &wake {
            deps.wakers.wake(*id);
        }
        Ok(Some(Committed {
            row: p.saved_row,
            released: p.release,
            unsaved: None,
        }))
    }

    /// The execution ended: the baseline it left, the report, the event the ticket moves
    /// on with, and the release lock for whoever waits for it.
    async fn end(&self, tx: &mut Tx, row: &Row, now: i64) -> anyhow::Result<Option<i64>> {
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
    /// request), the execution never started (it was queued), or such a move of it was not
    /// written already (a release of the same target waits to be started by this one — the
    /// move's fence —, or a person changed it). `row` is the execution as the move saves
    /// it, from `version`.
    fn ending_in_group(
        &self,
        row: &Row,
        version: i64,
        now: i64,
    ) -> anyhow::Result<Option<(Vec<crate::store::Statement>, crate::chat::Outbound)>> {
        let deps = self.deps();
        if deps.store.backend != crate::store::Backend::Sqlite
            || row.state.queued_behind.is_some()
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
    fn report(&self, row: &Row, outcome: ReleaseOutcome, now: i64) -> anyhow::Result<crate::chat::Message> {
        let deps = self.deps();
        let service = deps.service_name(self.ticket);
        progress::report(&deps.texts, row, self.plan, self.ticket, &service, outcome, now)
    }

    /// Counts an ending, once it is committed.
    fn ended(&self, row: &Row) {
        self.deps().metrics.inc(
            "releasebot_executions_finished_total",
            &[("outcome", outcome(row).as_str())],
        );
    }

    /// Returns all traffic to the old version with the provider of the plan's traffic
    /// steps (weight 0), or on the simulated fleet.
    async fn rollback_traffic(&self, run: &mut Run, now: i64) -> (bool, String) {
        let plan = self.plan;
        let texts = &self.deps().texts;
        let shift = plan
            .steps
            .iter()
            .rposition(|s| s.kind == StepType::TrafficShift && !s.simulated());
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
            Ok(StepOutcome::Done { ok: true, .. }) => {
                run.traffic = 0;
                (
                    true,
                    providers::summary("traffic_back", json!({ "restored": false })).render(texts),
                )
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
    async fn later_rollback(&self, row: Row) -> anyhow::Result<Flow> {
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
            let mut tx = deps.store.begin().await?;
            let saved = q::save(
                &mut tx,
                &deps.store.owner,
                row.id,
                row.version,
                &row.status,
                &run,
                NEVER,
                row.finished_at,
                Lease::Hold(now + LEASE_MS),
                now,
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
        let mut tx = deps.store.begin().await?;
        if !q::save(
            &mut tx,
            &deps.store.owner,
            row.id,
            current.version,
            &current.status,
            &run,
            NEVER,
            Some(now),
            Lease::Release,
            now,
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
        deps.outbox_notify.notify_one();
        Ok(Flow::Exit)
    }

    /// The redeploy of a baseline's version, then traffic back to the old version.
    async fn redeploy_and_shift(&self, run: &mut Run, lr: &super::LaterRollback, now: i64) -> (bool, String) {
        let texts = &self.deps().texts;
        let Some(d) = baselines::redeploy_step(self.plan) else {
            return (false, render(texts, "result_no_deploy_step", json!({})));
        };
        let ticket = baselines::with_version(self.ticket, &lr.version);
        let step = &self.plan.steps[d];
        let stop = CancellationToken::new();
        let deployed = {
            providers::run(StepCtx {
                index: d,
                step,
                ticket: &ticket,
                run,
                sim: &self.inner.sim,
                started_at: now,
                now,
                stop: &stop,
                grace: self.inner.grace,
            })
            .await
        };
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
        let (ok, back) = self.rollback_traffic(run, now).await;
        let result = render(
            texts,
            "result_redeployed",
            json!({ "version": lr.version, "deploy": redeployed, "traffic": back }),
        );
        (ok, result)
    }
}

/// How an ended execution ended, as its ticket records it.
fn outcome(row: &Row) -> ReleaseOutcome {
    match row.state.exec.status {
        ExecStatus::Completed => ReleaseOutcome::Released,
        ExecStatus::RolledBack => ReleaseOutcome::RolledBack,
        _ => ReleaseOutcome::Failed,
    }
}

/// The event an ended execution leaves for its ticket, with its key.
fn ended_event(row: &Row, outcome: ReleaseOutcome) -> (String, SystemEvent) {
    let event = SystemEvent::ExecutionEnded {
        ticket: row.ticket.0,
        execution: row.id,
        outcome,
    };
    (format!("x{}:ended", row.id), event)
}

/// An event for the handlers of the execution's ticket, as the inbox records it.
fn new_event(row: &Row, key: String, event: SystemEvent) -> anyhow::Result<crate::store::inbox::NewEvent> {
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
async fn record_event(tx: &mut Tx, row: &Row, key: &str, event: SystemEvent, now: i64) -> anyhow::Result<()> {
    let e = new_event(row, key.to_string(), event)?;
    crate::store::inbox::insert_in(tx, &[e], now).await?;
    Ok(())
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

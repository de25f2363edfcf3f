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
use crate::store::tickets;
use futures::FutureExt;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

mod commit;
mod rollback;
mod steps;
mod unreadable;

use commit::*;
pub use steps::STEP_OVERHEAD;
use steps::*;
use unreadable::*;

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
            if deps.executions.is_running(*id) {
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
            let wake = deps.executions.register(id);
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
                    .executions
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
                _ = deps.executions.runner.notified() => {}
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
    let ids = deps.executions.running();
    match q::versions(&deps.store, &ids).await {
        Ok(versions) => {
            seen.retain(|id, _| ids.contains(id));
            for (id, v) in versions {
                if seen.insert(id, v).is_some_and(|old| old != v) {
                    deps.executions.wake(id);
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
    deps.executions.unregister(id, &wake);
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

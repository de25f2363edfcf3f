//! The durable release executor. Each execution's state lives in one row and advances in
//! its own task: a runner claims due executions (the one lease mechanism), and the task of
//! each decides its next move with the pure state machine (`domain::execution`), commits
//! a step's start before any side effect, runs the provider — cancellable at once when a
//! person's command makes that safe — and commits the result together with the chat
//! messages announcing it. No execution waits for another.
//!
//! The executor holds no `Bot` and calls no handler: what the ticket side must know (an
//! execution ended, a step needs attention) it records as an event in the inbox, in the
//! transaction of the change.
//!
//! - [`start`]: an execution is created by the release stage's approval; one release per
//!   application and environment runs at a time (the others queue, or are refused).
//! - [`runner`]: the claim loop and the per-execution tasks.
//! - [`commands`]: Pause, Resume, Rollback … from buttons, and the wake-ups that make
//!   them act within a second.
//! - [`baselines`]: what a release started from and ended with; rollbacks to them.

pub mod baselines;
pub mod commands;
mod committer;
pub mod hooks;
pub mod kubernetes;
pub mod net;
pub mod progress;
pub mod providers;
pub mod runner;
pub mod start;

pub use crate::domain::execution::Command;
pub use crate::shared::Wakers;
pub use commands::{audit_command, load, save_command};
pub use runner::{Executor, Wait, STEP_OVERHEAD};
pub use start::{busy, start, Busy, Started};

use crate::chat::{Message, Outbound, Texts};
use crate::domain::execution::{ExecStatus, Execution, StepStatus};
use crate::domain::plan::Plan;
use crate::domain::ticket::Ticket;
use crate::store::executions::ExecRow;
use crate::work::Work;
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

/// The release an execution waits for (one release per application and environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Behind {
    pub execution: i64,
    pub ticket: i64,
}

/// Everything about one execution, stored as one JSON document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// Waiting for another release of the same application and environment to end.
    #[serde(default)]
    pub queued_behind: Option<Behind>,
    /// Traffic and measurements over time, for the release page's charts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Point>,
    /// What ran on Kubernetes before the release (the `kubernetes` provider's DEPLOY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube: Option<kubernetes::Before>,
    /// What the Argo Rollout showed at the last look (the `argo-rollouts` provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argo: Option<kubernetes::argo::Mirror>,
    /// What runs on Kubernetes once DEPLOY rolled out (for the release's baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_released: Option<kubernetes::Before>,
}

/// The traffic split and the last measurements at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub at: i64,
    pub traffic: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<Sample>,
}

/// Points kept per execution; older ones are thinned out (every other one dropped).
const HISTORY_POINTS: usize = 400;

/// `/release rollback` on a finished release: the chosen baseline's version redeployed
/// through the plan's DEPLOY step, and traffic back to the old version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaterRollback {
    pub baseline: i64,
    pub version: String,
    /// The image the baseline's pods ran, by digest when known (Kubernetes): what the
    /// redeploy sets, rather than the version as a tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub requested_by: String,
    pub done: bool,
    /// The redeploy was started (committed before its side effect, like a step).
    #[serde(default)]
    pub started: bool,
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
            queued_behind: None,
            history: Vec::new(),
            kube: None,
            argo: None,
            kube_released: None,
        }
    }

    /// Records the traffic split and measurements at `now` when they changed.
    pub fn record(&mut self, now: i64) {
        let point = Point {
            at: now,
            traffic: self.traffic,
            sample: self.sample,
        };
        if self
            .history
            .last()
            .is_some_and(|p| p.traffic == point.traffic && p.sample == point.sample)
        {
            return;
        }
        if self.history.len() >= HISTORY_POINTS {
            let mut i = 0;
            self.history.retain(|_| {
                i += 1;
                i % 2 == 1
            });
        }
        self.history.push(point);
    }

    fn running(&self) -> Option<usize> {
        self.exec.steps.iter().position(|s| s.status == StepStatus::Running)
    }
}

pub type Row = ExecRow<Run>;

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

/// The status column of a run.
pub fn status_str(run: &Run) -> &'static str {
    if run.queued_behind.is_some() && !run.exec.status.is_final() {
        return "QUEUED";
    }
    match run.exec.status {
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

/// What the executor needs from the rest of the daemon.
#[derive(Clone)]
pub struct Deps {
    /// What the executor shares with the bot and the workers (its fields read as these).
    pub core: crate::shared::Core,
}

impl std::ops::Deref for Deps {
    type Target = crate::shared::Core;

    fn deref(&self) -> &crate::shared::Core {
        &self.core
    }
}

impl Deps {
    /// The display name of a ticket's service.
    pub fn service_name(&self, ticket: &Ticket) -> String {
        self.config.service_name(&ticket.service)
    }

    /// Writes a chat message in the caller's transaction.
    pub async fn send(
        &self,
        tx: &mut Work,
        platform: &str,
        out: Outbound,
        msg_key: Option<&str>,
    ) -> anyhow::Result<()> {
        tx.send(platform, &out, msg_key, self.now());
        Ok(())
    }

    /// Posts a message to the execution's channel.
    pub async fn post(&self, tx: &mut Work, row: &Row, message: Message) -> anyhow::Result<()> {
        self.send(
            tx,
            &row.platform,
            Outbound::Post {
                channel: row.channel.clone(),
                message,
            },
            None,
        )
        .await
    }
}

/// After a save: the row as stored, and its progress message edited in the same transaction.
pub(crate) async fn edit_progress(
    deps: &Deps,
    tx: &mut Work,
    row: &Row,
    run: Run,
    next_wake: i64,
    now: i64,
) -> anyhow::Result<Row> {
    let saved = saved_after(row, run, next_wake, now);
    send_progress(deps, tx, &saved).await?;
    Ok(saved)
}

/// The row as a save of `run` stores it.
pub(crate) fn saved_after(row: &Row, mut run: Run, next_wake: i64, now: i64) -> Row {
    if run.exec.steps.iter().any(|s| s.status != StepStatus::Pending) {
        run.record(now);
    }
    Row {
        version: row.version + 1,
        status: status_str(&run).into(),
        state: run,
        next_wake,
        ..row.clone()
    }
}

/// The execution's progress message, posted or edited: drawn from the execution's state
/// when it is delivered, so that a move writes no message, and an edit already waiting
/// covers every move made before it goes out.
pub(crate) fn progress_out(row: &Row) -> Outbound {
    Outbound::Progress {
        channel: row.channel.clone(),
        execution: row.id,
    }
}

/// Queues the post or edit of the execution's progress message.
pub(crate) async fn send_progress(deps: &Deps, tx: &mut Work, row: &Row) -> anyhow::Result<()> {
    deps.send(tx, &row.platform, progress_out(row), Some(&progress_key(row.id)))
        .await
}

/// A message for a ticket's channel without buttons.
pub fn plain(title: String) -> Message {
    Message {
        title,
        ..Default::default()
    }
}

/// Renders a template, for results and notices.
pub(crate) fn render(texts: &Texts, key: &str, data: serde_json::Value) -> String {
    texts.render(key, &data).unwrap_or_else(|_| format!("{key} {data}"))
}

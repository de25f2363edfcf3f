//! The execution state machine: one run of a plan. Pure: the runner asks what to do
//! next, reports outcomes, and people press Pause / Resume / Retry / Skip / Rollback /
//! Abort. Every transition is checked here, so no step runs twice once completed.

use super::plan::{FailurePolicy, Plan, StepType};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecStatus {
    #[default]
    Running,
    Paused,
    Completed,
    Failed,
    RolledBack,
}

impl ExecStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ExecStatus::Completed | ExecStatus::Failed | ExecStatus::RolledBack
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Skipped,
    /// Was running when the process stopped, and is not safe to run again unasked.
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRun {
    pub status: StepStatus,
    pub attempts: u32,
    /// A retry waits until then (Unix ms).
    pub not_before: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    pub status: ExecStatus,
    pub steps: Vec<StepRun>,
    /// Traffic goes back to the old version; the rollback procedure runs next.
    pub rolling_back: bool,
    /// The step that made the execution pause (failure or interruption), if any.
    pub blocked_on: Option<usize>,
    /// A command waiting for the running step to end (that step must not be interrupted).
    #[serde(default)]
    pub queued: Option<Queued>,
    /// A running step whose processes are to be terminated (Stop and roll back / abort).
    #[serde(default)]
    pub terminate: Option<usize>,
    /// A command for the controller the running step mirrors (Pause, Resume, Promote,
    /// Abort of an Argo Rollout), which that step passes on at its next look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<Queued>,
}

/// A person's command on an execution (from a button or `/release rollback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Pause,
    Resume,
    Retry,
    Skip,
    Rollback,
    Abort,
    Continue,
    /// Terminate the running step (a script, a deploy) and roll back.
    StopRollback,
    /// Terminate the running step and stop the execution as failed.
    StopAbort,
    /// Let a controller that runs its own steps (an Argo Rollout) go on to the next one.
    Promote,
}

impl Command {
    pub const ALL: [Command; 10] = [
        Command::Pause,
        Command::Resume,
        Command::Retry,
        Command::Skip,
        Command::Rollback,
        Command::Abort,
        Command::Continue,
        Command::StopRollback,
        Command::StopAbort,
        Command::Promote,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Retry => "retry",
            Command::Skip => "skip",
            Command::Rollback => "rollback",
            Command::Abort => "abort",
            Command::Continue => "continue",
            Command::StopRollback => "stop-rollback",
            Command::StopAbort => "stop-abort",
            Command::Promote => "promote",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A command that waits for the running step to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    pub command: Command,
    /// Who asked (a mention token).
    pub by: String,
    pub at: i64,
}

/// What a command did to the execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// It took effect.
    Applied,
    /// It took effect, and the running step `i` (safe to run again) is cancelled at once.
    Cancelled(usize),
    /// It waits for the running step `i`, which must not be interrupted, to end.
    Queued(usize),
    /// It took effect, and the running step `i` is to be terminated (its processes killed).
    Terminate(usize),
    /// It is passed on by the running step `i` to the controller that step mirrors.
    Relayed(usize),
}

/// Whether a running step may be stopped at any moment: its effect is idempotent
/// (traffic weights, probes, monitors) or it waits for a person (a gate).
pub fn interruptible(plan: &Plan, i: usize) -> bool {
    plan.steps[i].idempotent()
}

/// What the runner should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Run(usize),
    Rollback,
    /// Nothing until a person acts, or until this time (a retry's backoff).
    Wait(Option<i64>),
    Finished,
}

/// What a failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reaction {
    Retrying { at: i64 },
    Paused,
    Skipped,
    RollingBack,
    Aborted,
}

/// Why a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The execution has ended.
    Finished,
    /// Not possible in this state (e.g. Resume while running).
    NotNow,
}

impl Execution {
    pub fn new(plan: &Plan) -> Self {
        Self {
            status: ExecStatus::Running,
            steps: plan
                .steps
                .iter()
                .map(|_| StepRun {
                    status: StepStatus::Pending,
                    attempts: 0,
                    not_before: 0,
                })
                .collect(),
            rolling_back: false,
            blocked_on: None,
            queued: None,
            terminate: None,
            relay: None,
        }
    }

    /// The step under way, if any.
    pub fn running(&self) -> Option<usize> {
        self.running_step()
    }

    fn running_step(&self) -> Option<usize> {
        self.steps.iter().position(|s| s.status == StepStatus::Running)
    }

    /// Whether every precondition of step `i` completed.
    pub fn preconditions_met(&self, plan: &Plan, i: usize) -> bool {
        plan.steps[i].requires.iter().all(|r| {
            plan.step_index(r)
                .is_some_and(|j| self.steps[j].status == StepStatus::Completed)
        })
    }

    pub fn next(&self, now: i64) -> Next {
        if self.status.is_final() {
            return Next::Finished;
        }
        if self.status == ExecStatus::Paused {
            return Next::Wait(None);
        }
        if self.rolling_back {
            return Next::Rollback;
        }
        if self.running_step().is_some() {
            // A step is under way (an approval gate waiting for Continue, or a provider call).
            return Next::Wait(None);
        }
        match self.steps.iter().position(|s| s.status == StepStatus::Pending) {
            Some(i) if self.steps[i].not_before > now => Next::Wait(Some(self.steps[i].not_before)),
            Some(i) => Next::Run(i),
            None => Next::Finished,
        }
    }

    fn check_live(&self) -> Result<(), Refused> {
        if self.status.is_final() {
            Err(Refused::Finished)
        } else {
            Ok(())
        }
    }

    /// Marks step `i` as started. Refused unless it is the next step to run.
    pub fn begin(&mut self, i: usize, now: i64) -> Result<(), Refused> {
        self.check_live()?;
        if self.next(now) != Next::Run(i) {
            return Err(Refused::NotNow);
        }
        let s = &mut self.steps[i];
        s.status = StepStatus::Running;
        s.attempts += 1;
        Ok(())
    }

    fn finish_if_done(&mut self) {
        if !self.rolling_back
            && self
                .steps
                .iter()
                .all(|s| matches!(s.status, StepStatus::Completed | StepStatus::Skipped))
        {
            self.status = ExecStatus::Completed;
        }
    }

    pub fn succeed(&mut self, i: usize) -> Result<(), Refused> {
        self.check_live()?;
        if self.steps.get(i).map(|s| s.status) != Some(StepStatus::Running) {
            return Err(Refused::NotNow);
        }
        self.steps[i].status = StepStatus::Completed;
        self.finish_if_done();
        Ok(())
    }

    /// Applies step `i`'s failure policy.
    pub fn fail(&mut self, plan: &Plan, i: usize, now: i64) -> Result<Reaction, Refused> {
        self.check_live()?;
        if self.steps.get(i).map(|s| s.status) != Some(StepStatus::Running) {
            return Err(Refused::NotNow);
        }
        let attempts = self.steps[i].attempts;
        let mut policy = &plan.steps[i].on_failure;
        // Retries granted by earlier links of the chain.
        let mut used = attempts.saturating_sub(1);
        loop {
            match policy {
                FailurePolicy::Retry {
                    times,
                    backoff_secs,
                    then,
                } => {
                    if used < *times {
                        let factor = 1u64 << used.min(16);
                        let at = now + (backoff_secs.saturating_mul(factor) as i64).saturating_mul(1000);
                        let s = &mut self.steps[i];
                        s.status = StepStatus::Pending;
                        s.not_before = at;
                        return Ok(Reaction::Retrying { at });
                    }
                    used -= *times;
                    policy = then;
                }
                FailurePolicy::Rollback => {
                    self.steps[i].status = StepStatus::Failed;
                    self.rolling_back = true;
                    return Ok(Reaction::RollingBack);
                }
                FailurePolicy::Pause => {
                    self.steps[i].status = StepStatus::Failed;
                    self.status = ExecStatus::Paused;
                    self.blocked_on = Some(i);
                    return Ok(Reaction::Paused);
                }
                FailurePolicy::Skip => {
                    self.steps[i].status = StepStatus::Skipped;
                    self.finish_if_done();
                    return Ok(Reaction::Skipped);
                }
                FailurePolicy::Abort => {
                    self.steps[i].status = StepStatus::Failed;
                    self.status = ExecStatus::Failed;
                    return Ok(Reaction::Aborted);
                }
            }
        }
    }

    /// Pause between steps (the running step, if any, finishes first).
    pub fn pause(&mut self) -> Result<(), Refused> {
        self.check_live()?;
        if self.status != ExecStatus::Running || self.rolling_back {
            return Err(Refused::NotNow);
        }
        self.status = ExecStatus::Paused;
        Ok(())
    }

    /// Resume a paused execution that is not blocked on a failed step.
    pub fn resume(&mut self) -> Result<(), Refused> {
        self.check_live()?;
        if self.status != ExecStatus::Paused || self.blocked_on.is_some() {
            return Err(Refused::NotNow);
        }
        self.status = ExecStatus::Running;
        Ok(())
    }

    /// Run the failed or interrupted step again.
    pub fn retry(&mut self) -> Result<(), Refused> {
        self.check_live()?;
        let i = self
            .blocked_on
            .filter(|_| self.status == ExecStatus::Paused)
            .ok_or(Refused::NotNow)?;
        self.steps[i].status = StepStatus::Pending;
        self.steps[i].not_before = 0;
        self.blocked_on = None;
        self.status = ExecStatus::Running;
        Ok(())
    }

    /// Carry on past the failed or interrupted step.
    pub fn skip(&mut self) -> Result<(), Refused> {
        self.check_live()?;
        let i = self
            .blocked_on
            .filter(|_| self.status == ExecStatus::Paused)
            .ok_or(Refused::NotNow)?;
        self.steps[i].status = StepStatus::Skipped;
        self.blocked_on = None;
        self.status = ExecStatus::Running;
        self.finish_if_done();
        Ok(())
    }

    /// Return to the old version now.
    pub fn rollback(&mut self) -> Result<(), Refused> {
        self.check_live()?;
        if self.rolling_back {
            return Err(Refused::NotNow);
        }
        if let Some(i) = self.running_step() {
            self.steps[i].status = StepStatus::Failed;
        }
        self.rolling_back = true;
        self.blocked_on = None;
        self.status = ExecStatus::Running;
        Ok(())
    }

    /// Stop here, as failed, without rolling back.
    pub fn abort(&mut self) -> Result<(), Refused> {
        self.check_live()?;
        if let Some(i) = self.running_step() {
            self.steps[i].status = StepStatus::Failed;
        }
        self.status = ExecStatus::Failed;
        Ok(())
    }

    /// The rollback procedure ended.
    pub fn rollback_finished(&mut self, ok: bool) -> Result<(), Refused> {
        self.check_live()?;
        if !self.rolling_back {
            return Err(Refused::NotNow);
        }
        self.status = if ok { ExecStatus::RolledBack } else { ExecStatus::Failed };
        Ok(())
    }

    /// After a restart: idempotent steps that were running run again; the others are
    /// `interrupted` and the execution pauses for a person to choose.
    pub fn recover(&mut self, plan: &Plan) -> Option<usize> {
        if self.status.is_final() {
            return None;
        }
        let i = self.running_step()?;
        if plan.steps[i].idempotent() {
            self.steps[i].status = StepStatus::Pending;
            None
        } else {
            self.steps[i].status = StepStatus::Interrupted;
            self.status = ExecStatus::Paused;
            self.blocked_on = Some(i);
            // A command that waited for the step applies now that it has ended.
            if let Some(q) = self.queued.take() {
                let _ = self.command(plan, q.command, &q.by, q.at);
            }
            Some(i)
        }
    }

    /// Applies a person's command. A step that must not be interrupted (a script, a
    /// deploy, a webhook) is not: the command waits for it to end, unless it is a Stop
    /// command, which has the step terminated. Steps safe to run again are cancelled.
    pub fn command(&mut self, plan: &Plan, cmd: Command, by: &str, now: i64) -> Result<Effect, Refused> {
        self.check_live()?;
        let running = self.running_step();
        // A step mirroring a controller passes these on to it; the execution runs on.
        let relays = matches!(
            cmd,
            Command::Pause | Command::Resume | Command::Promote | Command::Abort
        );
        if let Some(i) = running.filter(|&i| relays && plan.steps[i].relays_commands() && !self.rolling_back) {
            if self.relay.is_some() {
                return Err(Refused::NotNow);
            }
            self.relay = Some(Queued {
                command: cmd,
                by: by.to_string(),
                at: now,
            });
            return Ok(Effect::Relayed(i));
        }
        let guarded = running.filter(|&i| !interruptible(plan, i));
        let queue = |e: &mut Self, i: usize| {
            e.queued = Some(Queued {
                command: cmd,
                by: by.to_string(),
                at: now,
            });
            Ok(Effect::Queued(i))
        };
        match cmd {
            Command::Pause => {
                if self.status != ExecStatus::Running || self.rolling_back {
                    return Err(Refused::NotNow);
                }
                if let Some(i) = guarded {
                    return queue(self, i);
                }
                self.status = ExecStatus::Paused;
                match running {
                    // A gate keeps waiting while paused; Continue then takes effect on Resume.
                    Some(i) if plan.steps[i].kind != StepType::ApprovalGate => {
                        self.steps[i].status = StepStatus::Pending;
                        Ok(Effect::Cancelled(i))
                    }
                    _ => Ok(Effect::Applied),
                }
            }
            Command::Resume => {
                if self.queued.as_ref().is_some_and(|q| q.command == Command::Pause) {
                    self.queued = None;
                    return Ok(Effect::Applied);
                }
                self.resume().map(|_| Effect::Applied)
            }
            Command::Retry => self.retry().map(|_| Effect::Applied),
            Command::Skip => self.skip().map(|_| Effect::Applied),
            Command::Continue => {
                let i = running
                    .filter(|i| plan.steps[*i].kind == StepType::ApprovalGate)
                    .ok_or(Refused::NotNow)?;
                self.succeed(i).map(|_| Effect::Applied)
            }
            Command::Rollback | Command::Abort => {
                if cmd == Command::Rollback && self.rolling_back {
                    return Err(Refused::NotNow);
                }
                if let Some(i) = guarded {
                    return queue(self, i);
                }
                if cmd == Command::Rollback {
                    self.rollback()?;
                } else {
                    self.abort()?;
                }
                self.queued = None;
                Ok(running.map(Effect::Cancelled).unwrap_or(Effect::Applied))
            }
            Command::StopRollback | Command::StopAbort => {
                let base = if cmd == Command::StopRollback {
                    Command::Rollback
                } else {
                    Command::Abort
                };
                let Some(i) = guarded else {
                    return self.command(plan, base, by, now);
                };
                if base == Command::Rollback {
                    if self.rolling_back {
                        return Err(Refused::NotNow);
                    }
                    self.rollback()?;
                } else {
                    self.abort()?;
                }
                self.queued = None;
                self.terminate = Some(i);
                Ok(Effect::Terminate(i))
            }
            // Only a step mirroring a controller has a next step to promote to.
            Command::Promote => Err(Refused::NotNow),
        }
    }

    /// After the running step ended (its outcome applied): applies the command that waited
    /// for it, if any, and what it did.
    pub fn step_ended(&mut self, plan: &Plan, now: i64) -> Option<(Queued, Result<Effect, Refused>)> {
        self.terminate = None;
        let q = self.queued.take()?;
        let r = self.command(plan, q.command, &q.by, now);
        Some((q, r))
    }
}

/// "Never" for a step that waits for a person.
pub const NEVER: i64 = i64::MAX / 4;

/// What a target is known to run when nothing was recorded yet.
pub const UNKNOWN: &str = "unknown";

/// What an execution leaves, as far as it is known without the baseline it started from:
/// `None` where the value is the one it started from.
pub struct Left {
    pub kind: &'static str,
    pub version: Option<String>,
    pub replicas: Option<i64>,
    pub simulated: bool,
}

#[cfg(test)]
mod tests {
    use super::super::plan::{StepDef, StepType, Template};
    use super::*;
    use proptest::prelude::*;

    fn step(id: &str, kind: StepType, on_failure: FailurePolicy) -> StepDef {
        StepDef {
            on_failure,
            ..StepDef::new(id, id, kind, super::super::plan::Provider::Sim)
        }
    }

    fn plan(policies: Vec<FailurePolicy>) -> Plan {
        let kinds = [
            StepType::Deploy,
            StepType::TrafficShift,
            StepType::Monitor,
            StepType::Script,
            StepType::ApprovalGate,
        ];
        Plan {
            id: "p".into(),
            name: "p".into(),
            template: Template::Custom,
            steps: policies
                .into_iter()
                .enumerate()
                .map(|(i, p)| step(&format!("s{i}"), kinds[i % kinds.len()], p))
                .collect(),
        }
    }

    #[test]
    fn commands_for_an_argo_rollout_are_passed_on_one_at_a_time_and_the_release_runs_on() {
        let mut p = plan(vec![FailurePolicy::Rollback; 2]);
        p.steps[0].provider = crate::domain::plan::Provider::ArgoRollouts {
            namespace: "pay".into(),
            rollout: "pay".into(),
            container: "app".into(),
            context: None,
            image: None,
            api_url: None,
            token_env: None,
        };
        let mut e = Execution::new(&p);
        let Next::Run(0) = e.next(0) else {
            panic!("the rollout first")
        };
        e.begin(0, 0).unwrap();
        assert_eq!(e.command(&p, Command::Pause, "@olga", 1), Ok(Effect::Relayed(0)));
        assert_eq!(
            e.status,
            ExecStatus::Running,
            "the Rollout pauses, the step keeps watching it"
        );
        assert_eq!(
            e.command(&p, Command::Promote, "@oscar", 2),
            Err(Refused::NotNow),
            "one at a time"
        );
        e.relay = None;
        assert_eq!(e.command(&p, Command::Promote, "@oscar", 3), Ok(Effect::Relayed(0)));
        e.relay = None;
        // Rollback is releasebot's own: the watching step is cancelled and the image set back.
        assert_eq!(e.command(&p, Command::Rollback, "@oscar", 4), Ok(Effect::Cancelled(0)));
        assert!(e.rolling_back);
        // Promote means nothing to a step that runs no controller's steps.
        let mut other = Execution::new(&plan(vec![FailurePolicy::Rollback; 2]));
        other.begin(0, 0).unwrap();
        let p2 = plan(vec![FailurePolicy::Rollback; 2]);
        assert_eq!(other.command(&p2, Command::Promote, "@oscar", 1), Err(Refused::NotNow));
    }

    fn run_ok(e: &mut Execution, now: i64) {
        while let Next::Run(i) = e.next(now) {
            e.begin(i, now).unwrap();
            e.succeed(i).unwrap();
        }
    }

    #[test]
    fn a_clean_run_completes_every_step_once() {
        let p = plan(vec![FailurePolicy::Pause; 3]);
        let mut e = Execution::new(&p);
        run_ok(&mut e, 0);
        assert_eq!(e.status, ExecStatus::Completed);
        assert!(e
            .steps
            .iter()
            .all(|s| s.status == StepStatus::Completed && s.attempts == 1));
        assert_eq!(e.next(0), Next::Finished);
        assert_eq!(e.begin(0, 0), Err(Refused::Finished));
    }

    #[test]
    fn retry_backs_off_then_chains() {
        let p = plan(vec![FailurePolicy::Retry {
            times: 2,
            backoff_secs: 10,
            then: Box::new(FailurePolicy::Rollback),
        }]);
        let mut e = Execution::new(&p);
        e.begin(0, 0).unwrap();
        assert_eq!(e.fail(&p, 0, 0), Ok(Reaction::Retrying { at: 10_000 }));
        assert_eq!(e.next(5_000), Next::Wait(Some(10_000)));
        assert_eq!(e.begin(0, 5_000), Err(Refused::NotNow), "not before the backoff");
        e.begin(0, 10_000).unwrap();
        assert_eq!(
            e.fail(&p, 0, 10_000),
            Ok(Reaction::Retrying { at: 30_000 }),
            "backoff doubles"
        );
        e.begin(0, 30_000).unwrap();
        assert_eq!(e.fail(&p, 0, 30_000), Ok(Reaction::RollingBack));
        assert_eq!(e.next(30_000), Next::Rollback);
        e.rollback_finished(true).unwrap();
        assert_eq!(e.status, ExecStatus::RolledBack);
    }

    #[test]
    fn pause_policy_waits_for_a_person() {
        let p = plan(vec![FailurePolicy::Pause, FailurePolicy::Pause]);
        let mut e = Execution::new(&p);
        e.begin(0, 0).unwrap();
        assert_eq!(e.fail(&p, 0, 0), Ok(Reaction::Paused));
        assert_eq!(e.next(0), Next::Wait(None));
        assert_eq!(
            e.resume(),
            Err(Refused::NotNow),
            "a failed step needs Retry, Skip, Rollback or Abort"
        );
        e.retry().unwrap();
        assert_eq!(e.next(0), Next::Run(0));
        e.begin(0, 0).unwrap();
        e.fail(&p, 0, 0).unwrap();
        e.skip().unwrap();
        assert_eq!(e.steps[0].status, StepStatus::Skipped);
        run_ok(&mut e, 0);
        assert_eq!(e.status, ExecStatus::Completed);
    }

    #[test]
    fn skip_and_abort_policies() {
        let p = plan(vec![FailurePolicy::Skip, FailurePolicy::Abort]);
        let mut e = Execution::new(&p);
        e.begin(0, 0).unwrap();
        assert_eq!(e.fail(&p, 0, 0), Ok(Reaction::Skipped));
        e.begin(1, 0).unwrap();
        assert_eq!(e.fail(&p, 1, 0), Ok(Reaction::Aborted));
        assert_eq!(e.status, ExecStatus::Failed);
    }

    #[test]
    fn manual_pause_resume_and_rollback() {
        let p = plan(vec![FailurePolicy::Pause; 3]);
        let mut e = Execution::new(&p);
        e.begin(0, 0).unwrap();
        e.pause().unwrap();
        e.succeed(0).unwrap();
        assert_eq!(e.next(0), Next::Wait(None), "paused between steps");
        e.resume().unwrap();
        assert_eq!(e.next(0), Next::Run(1));
        e.begin(1, 0).unwrap();
        e.rollback().unwrap();
        assert_eq!(e.steps[1].status, StepStatus::Failed);
        assert_eq!(e.pause(), Err(Refused::NotNow), "a rollback is not paused");
        assert_eq!(e.next(0), Next::Rollback);
        e.rollback_finished(false).unwrap();
        assert_eq!(e.status, ExecStatus::Failed);
    }

    #[test]
    fn a_deploy_that_sets_a_desired_state_runs_again_after_a_crash() {
        let mut p = plan(vec![FailurePolicy::Pause; 2]);
        let mut e = Execution::new(&p);
        e.begin(0, 0).unwrap();
        // A script's DEPLOY is interrupted …
        assert_eq!(e.clone().recover(&p), Some(0));
        // … a Kubernetes one (it sets an image; twice is once) runs again.
        p.steps[0].provider = crate::domain::plan::Provider::Kubernetes {
            namespace: "ns".into(),
            deployment: "web".into(),
            container: "app".into(),
            context: None,
            image: None,
            api_url: None,
            token_env: None,
            strategy: None,
            ingress: None,
            route: None,
            backend: None,
            service: None,
            action: None,
            from_namespace: None,
        };
        assert_eq!(e.recover(&p), None);
        assert_eq!(e.next(0), Next::Run(0));
    }

    #[test]
    fn recovery_reruns_idempotent_steps_and_interrupts_the_others() {
        let p = plan(vec![FailurePolicy::Pause; 4]);
        let mut e = Execution::new(&p);
        // s1 is a TRAFFIC_SHIFT: idempotent.
        e.begin(0, 0).unwrap();
        e.succeed(0).unwrap();
        e.begin(1, 0).unwrap();
        assert_eq!(e.recover(&p), None);
        assert_eq!(e.next(0), Next::Run(1));
        // s3 is a SCRIPT: interrupted, paused, offered Retry / Skip / Rollback.
        run_until(&mut e, 3);
        e.begin(3, 0).unwrap();
        assert_eq!(e.recover(&p), Some(3));
        assert_eq!(
            (e.status, e.steps[3].status),
            (ExecStatus::Paused, StepStatus::Interrupted)
        );
        assert_eq!(e.steps[0].attempts, 1, "completed steps are not run again");
        e.retry().unwrap();
        assert_eq!(e.next(0), Next::Run(3));
    }

    fn run_until(e: &mut Execution, stop: usize) {
        while let Next::Run(i) = e.next(0) {
            if i == stop {
                return;
            }
            e.begin(i, 0).unwrap();
            e.succeed(i).unwrap();
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Starts the next step (and leaves it running), or ends the running one.
        Step(bool),
        Cmd(Command),
        RollbackDone(bool),
        Recover,
        Tick(u16),
    }

    fn policy() -> impl Strategy<Value = FailurePolicy> {
        let leaf = prop_oneof![
            Just(FailurePolicy::Rollback),
            Just(FailurePolicy::Pause),
            Just(FailurePolicy::Skip),
            Just(FailurePolicy::Abort),
        ];
        leaf.prop_recursive(2, 4, 1, |inner| {
            (1u32..3, 0u64..3, inner).prop_map(|(times, backoff_secs, then)| FailurePolicy::Retry {
                times,
                backoff_secs,
                then: Box::new(then),
            })
        })
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => any::<bool>().prop_map(Op::Step),
            6 => proptest::sample::select(Command::ALL.to_vec()).prop_map(Op::Cmd),
            1 => any::<bool>().prop_map(Op::RollbackDone),
            1 => Just(Op::Recover),
            2 => (0u16..20).prop_map(Op::Tick),
        ]
    }

    proptest! {
        /// Whatever the outcomes, policies and button presses: a completed step never runs
        /// again, at most one step runs at a time, a finished execution never changes,
        /// Completed means every step completed or was skipped, and a running step that
        /// must not be interrupted is left running by every command but a Stop.
        #[test]
        fn no_step_runs_twice_and_finished_executions_stay_finished(
            policies in proptest::collection::vec(policy(), 1..6),
            ops in proptest::collection::vec(op(), 0..80),
        ) {
            let p = plan(policies);
            let mut e = Execution::new(&p);
            let mut now = 0i64;
            let mut completed_begins = vec![0u32; p.steps.len()];
            for o in ops {
                let before = e.clone();
                let guarded = e.running().filter(|&i| !interruptible(&p, i));
                match &o {
                    Op::Step(ok) => {
                        if let Some(i) = e.running().filter(|i| p.steps[*i].kind != StepType::ApprovalGate) {
                            if *ok { e.succeed(i).unwrap(); } else { e.fail(&p, i, now).unwrap(); }
                            if e.steps[i].status == StepStatus::Completed { completed_begins[i] += 1; }
                            e.step_ended(&p, now);
                        } else if let Next::Run(i) = e.next(now) {
                            prop_assert!(before.steps[i].status == StepStatus::Pending);
                            e.begin(i, now).unwrap();
                        }
                    }
                    Op::Cmd(c) => {
                        let r = e.command(&p, *c, "<@slack:U1>", now);
                        if let Ok(Effect::Queued(i)) = r {
                            prop_assert_eq!(Some(i), guarded);
                            prop_assert_eq!(e.steps[i].status, StepStatus::Running);
                        }
                        if let Ok(Effect::Terminate(i)) = r {
                            prop_assert_eq!(Some(i), guarded);
                            prop_assert_eq!(e.terminate, Some(i));
                        }
                        if let (Some(i), false) = (guarded, matches!(c, Command::StopRollback | Command::StopAbort)) {
                            prop_assert_eq!(e.steps[i].status, StepStatus::Running, "{:?} interrupted a guarded step", c);
                        }
                    }
                    Op::RollbackDone(ok) => {
                        if e.running().is_none() { let _ = e.rollback_finished(*ok); }
                    }
                    Op::Recover => { e.recover(&p); }
                    Op::Tick(s) => now += i64::from(*s) * 1000,
                }
                if before.status.is_final() {
                    prop_assert_eq!(&e, &before, "a finished execution never changes");
                }
                for (i, s) in before.steps.iter().enumerate() {
                    if s.status == StepStatus::Completed {
                        prop_assert_eq!(e.steps[i].status, StepStatus::Completed, "a completed step stays completed");
                    }
                }
                prop_assert!(completed_begins.iter().all(|n| *n <= 1), "a step completed twice");
                prop_assert!(e.steps.iter().filter(|s| s.status == StepStatus::Running).count() <= 1);
                if e.status == ExecStatus::Completed {
                    prop_assert!(e.steps.iter().all(|s| matches!(s.status, StepStatus::Completed | StepStatus::Skipped)));
                }
                if e.status == ExecStatus::RolledBack {
                    prop_assert!(before.rolling_back);
                }
            }
        }
    }
}

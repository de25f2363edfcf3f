//! The ticket state machine: pure functions from (ticket, flow, request) to an outcome.

use super::actor::Actor;
use super::flow::Flow;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Coarse status of a ticket. `InApproval(i)` waits on `flow.stages[i]` (i ≥ 1);
/// `Draft` waits on the submitter (stage 0) after a rejection sent it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TicketStatus {
    Draft,
    InApproval(usize),
    /// Every stage approved (a flow without a release plan).
    Ready,
    /// The executor runs the plan; the ticket then goes on to this stage (or ends).
    Releasing(usize),
    /// Every stage approved after a release that completed.
    Released,
    /// Every stage approved after a release that failed.
    ReleaseFailed,
    /// Every stage approved after a release that was rolled back.
    RolledBack,
    Rejected,
    /// Withdrawn or cancelled.
    Closed,
}

/// How a ticket's release ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseOutcome {
    Released,
    Failed,
    RolledBack,
}

impl ReleaseOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseOutcome::Released => "released",
            ReleaseOutcome::Failed => "failed",
            ReleaseOutcome::RolledBack => "rolled_back",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "released" => Some(ReleaseOutcome::Released),
            "failed" => Some(ReleaseOutcome::Failed),
            "rolled_back" => Some(ReleaseOutcome::RolledBack),
            _ => None,
        }
    }

    /// The ticket's final status once every stage is approved.
    pub fn final_status(self) -> TicketStatus {
        match self {
            ReleaseOutcome::Released => TicketStatus::Released,
            ReleaseOutcome::Failed => TicketStatus::ReleaseFailed,
            ReleaseOutcome::RolledBack => TicketStatus::RolledBack,
        }
    }
}

impl TicketStatus {
    pub fn is_open(self) -> bool {
        matches!(
            self,
            TicketStatus::Draft | TicketStatus::InApproval(_) | TicketStatus::Ready | TicketStatus::Releasing(_)
        )
    }

    /// `(status, stage)` as stored.
    pub fn to_db(self) -> (&'static str, i64) {
        match self {
            TicketStatus::Draft => ("draft", 0),
            TicketStatus::InApproval(i) => ("in_approval", i as i64),
            TicketStatus::Ready => ("ready", 0),
            TicketStatus::Releasing(i) => ("releasing", i as i64),
            TicketStatus::Released => ("released", 0),
            TicketStatus::ReleaseFailed => ("release_failed", 0),
            TicketStatus::RolledBack => ("rolled_back", 0),
            TicketStatus::Rejected => ("rejected", 0),
            TicketStatus::Closed => ("closed", 0),
        }
    }

    pub fn from_db(status: &str, stage: i64) -> Option<Self> {
        Some(match status {
            "draft" => TicketStatus::Draft,
            "in_approval" => TicketStatus::InApproval(usize::try_from(stage).ok()?),
            "ready" => TicketStatus::Ready,
            "releasing" => TicketStatus::Releasing(usize::try_from(stage).ok()?),
            "released" => TicketStatus::Released,
            "release_failed" => TicketStatus::ReleaseFailed,
            "rolled_back" => TicketStatus::RolledBack,
            "rejected" => TicketStatus::Rejected,
            "closed" => TicketStatus::Closed,
            _ => return None,
        })
    }

    /// Key of the status name in `messages/*/status_*.hbs`.
    pub fn key(self) -> &'static str {
        self.to_db().0
    }
}

/// `REL-42`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TicketId(pub i64);

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "REL-{}", self.0)
    }
}

impl TicketId {
    /// Accepts `REL-42`, `rel-42`, `#42` and `42`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let digits = s
            .get(..4)
            .filter(|p| p.eq_ignore_ascii_case("rel-"))
            .map(|_| &s[4..])
            .or_else(|| s.strip_prefix('#'))
            .unwrap_or(s);
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().filter(|n| *n > 0).map(TicketId)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: TicketId,
    pub flow_id: String,
    pub service: String,
    pub status: TicketStatus,
    /// Incremented each time the ticket goes back to an earlier stage.
    pub round: u32,
    pub submitter: Actor,
    pub application: String,
    /// Answers gathered so far: submission fields, then stage inputs (`stage.field`).
    pub fields: BTreeMap<String, String>,
    /// Where the ticket was opened; stages without a channel of their own post here.
    pub channel: String,
    /// Set once, when the ticket's release ends: a ticket is released at most once.
    pub outcome: Option<ReleaseOutcome>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Approve,
    Reject,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Approve => "approve",
            DecisionKind::Reject => "reject",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "approve" => Some(DecisionKind::Approve),
            "reject" => Some(DecisionKind::Reject),
            _ => None,
        }
    }
}

/// A recorded decision on one stage of one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub round: u32,
    pub stage: usize,
    pub actor: Actor,
    pub actor_name: String,
    pub kind: DecisionKind,
    pub comment: Option<String>,
    pub at: i64,
}

/// What the clicker asks for: the button names the stage and round it was posted for.
#[derive(Debug, Clone)]
pub struct DecideRequest<'a> {
    pub actor: &'a Actor,
    /// Whether the actor holds the stage's role (for the ticket's application).
    pub has_role: bool,
    pub stage: usize,
    pub round: u32,
    pub kind: DecisionKind,
}

/// Why nothing changed. Every variant is told to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The ticket has moved on since the button was posted (someone else decided, or it was closed).
    Stale,
    NeedRole(String),
    /// Separation of duties: the submitter may not approve their own ticket.
    OwnTicket,
    /// The actor already approved this countersign stage.
    AlreadyApproved,
    /// Only the submitter (or an admin) may do this.
    NotSubmitter,
    /// The ticket is no longer open.
    NotOpen(TicketStatus),
    /// The release has started (or happened): withdrawing is no longer possible.
    Released,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// One more approval of a countersign stage; the stage still waits for more.
    Counted { approvals: u32, required: u32 },
    /// The stage is approved; the ticket moved to `next`.
    Advanced { next: TicketStatus },
    /// Rejected; the ticket moved to `next` (Draft, an earlier stage, or Rejected).
    SentBack { next: TicketStatus },
}

impl Ticket {
    /// Approve or reject the current stage. `approvals` are this round's approvals of that stage.
    pub fn decide(&self, flow: &Flow, approvals: &[Actor], req: &DecideRequest<'_>) -> Result<Outcome, Denied> {
        let TicketStatus::InApproval(current) = self.status else {
            return Err(if self.status.is_open() {
                Denied::Stale
            } else {
                Denied::NotOpen(self.status)
            });
        };
        if req.stage != current || req.round != self.round {
            return Err(Denied::Stale);
        }
        let stage = flow.stage(current).ok_or(Denied::Stale)?;
        if !req.has_role {
            return Err(Denied::NeedRole(stage.role.clone()));
        }
        match req.kind {
            DecisionKind::Approve => {
                if flow.separation_of_duties && *req.actor == self.submitter {
                    return Err(Denied::OwnTicket);
                }
                if approvals.contains(req.actor) {
                    return Err(Denied::AlreadyApproved);
                }
                let approvals = approvals.len() as u32 + 1;
                let required = stage.approvals_required.max(1);
                if approvals < required {
                    return Ok(Outcome::Counted { approvals, required });
                }
                let next = if stage.starts_execution && self.outcome.is_none() {
                    TicketStatus::Releasing(current + 1)
                } else if current + 1 < flow.stages.len() {
                    TicketStatus::InApproval(current + 1)
                } else {
                    self.outcome
                        .map(ReleaseOutcome::final_status)
                        .unwrap_or(TicketStatus::Ready)
                };
                Ok(Outcome::Advanced { next })
            }
            DecisionKind::Reject => {
                let next = match flow.reject_destination(current) {
                    Some(0) => TicketStatus::Draft,
                    Some(i) if i < current => TicketStatus::InApproval(i),
                    // Validated at start; a destination that is not earlier ends the ticket.
                    Some(_) | None => TicketStatus::Rejected,
                };
                Ok(Outcome::SentBack { next })
            }
        }
    }

    /// The status a transition moves to, and whether it starts a new round.
    pub fn apply(&mut self, next: TicketStatus) {
        let back = match (self.status, next) {
            (TicketStatus::InApproval(a), TicketStatus::InApproval(b)) => b <= a,
            (_, TicketStatus::Draft) => true,
            _ => false,
        };
        if back {
            self.round += 1;
        }
        self.status = next;
    }

    /// The submitter sends a ticket that was returned to them back into approval.
    pub fn resubmit(&self, flow: &Flow, actor: &Actor) -> Result<TicketStatus, Denied> {
        if self.status != TicketStatus::Draft {
            return Err(if self.status.is_open() {
                Denied::Stale
            } else {
                Denied::NotOpen(self.status)
            });
        }
        if *actor != self.submitter {
            return Err(Denied::NotSubmitter);
        }
        Ok(if flow.stages.len() > 1 {
            TicketStatus::InApproval(1)
        } else {
            TicketStatus::Ready
        })
    }

    /// The release ended: the ticket goes on to the stage after the release (QC), or ends.
    pub fn finish_release(&self, flow: &Flow, outcome: ReleaseOutcome) -> Option<TicketStatus> {
        let TicketStatus::Releasing(next) = self.status else {
            return None;
        };
        Some(if next < flow.stages.len() {
            TicketStatus::InApproval(next)
        } else {
            outcome.final_status()
        })
    }

    /// Withdraw (submitter) or cancel (admin) before release.
    pub fn cancel(&self, actor: &Actor, is_admin: bool) -> Result<TicketStatus, Denied> {
        if !self.status.is_open() {
            return Err(Denied::NotOpen(self.status));
        }
        if self.outcome.is_some() || matches!(self.status, TicketStatus::Releasing(_)) {
            return Err(Denied::Released);
        }
        if *actor != self.submitter && !is_admin {
            return Err(Denied::NotSubmitter);
        }
        Ok(TicketStatus::Closed)
    }
}

/// The status of a new ticket of `flow`.
pub fn initial_status(flow: &Flow) -> TicketStatus {
    if flow.stages.len() > 1 {
        TicketStatus::InApproval(1)
    } else {
        TicketStatus::Ready
    }
}

#[cfg(test)]
mod tests {
    use super::super::flow::fixtures::{flow, stage};
    use super::super::flow::RejectTarget;
    use super::*;
    use proptest::prelude::*;

    fn ticket(f: &Flow) -> Ticket {
        Ticket {
            id: TicketId(1),
            flow_id: f.id.clone(),
            service: "s".into(),
            status: initial_status(f),
            round: 0,
            submitter: Actor::new("slack", "P"),
            application: "app".into(),
            fields: BTreeMap::new(),
            channel: "C".into(),
            outcome: None,
            version: 0,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn req(actor: &Actor, stage: usize, round: u32, kind: DecisionKind) -> DecideRequest<'_> {
        DecideRequest {
            actor,
            has_role: true,
            stage,
            round,
            kind,
        }
    }

    #[test]
    fn ticket_ids_parse() {
        assert_eq!(TicketId::parse("REL-42"), Some(TicketId(42)));
        assert_eq!(TicketId::parse("rel-7"), Some(TicketId(7)));
        assert_eq!(TicketId::parse("#3"), Some(TicketId(3)));
        assert_eq!(TicketId::parse("12"), Some(TicketId(12)));
        assert_eq!(TicketId::parse("REL-"), None);
        assert_eq!(TicketId::parse("REL-0"), None);
        assert_eq!(TicketId::parse("REL-x"), None);
        assert_eq!(TicketId::parse("é"), None);
        assert_eq!(TicketId(42).to_string(), "REL-42");
    }

    #[test]
    fn approvals_walk_every_stage_in_order() {
        let f = flow();
        let mut t = ticket(&f);
        let u = Actor::new("slack", "U");
        for stage in 1..f.stages.len() {
            assert_eq!(t.status, TicketStatus::InApproval(stage));
            let out = t.decide(&f, &[], &req(&u, stage, 0, DecisionKind::Approve)).unwrap();
            let Outcome::Advanced { next } = out else {
                panic!("{out:?}")
            };
            t.apply(next);
        }
        assert_eq!(t.status, TicketStatus::Ready);
        assert_eq!(t.round, 0);
    }

    #[test]
    fn role_is_required() {
        let f = flow();
        let t = ticket(&f);
        let u = Actor::new("slack", "U");
        let mut r = req(&u, 1, 0, DecisionKind::Approve);
        r.has_role = false;
        assert_eq!(t.decide(&f, &[], &r), Err(Denied::NeedRole("test".into())));
    }

    #[test]
    fn separation_of_duties_blocks_the_submitter_only_when_set() {
        let mut f = flow();
        let t = ticket(&f);
        let p = t.submitter.clone();
        assert!(t.decide(&f, &[], &req(&p, 1, 0, DecisionKind::Approve)).is_ok());
        f.separation_of_duties = true;
        assert_eq!(
            t.decide(&f, &[], &req(&p, 1, 0, DecisionKind::Approve)),
            Err(Denied::OwnTicket)
        );
        // Rejecting your own ticket is allowed.
        assert!(t.decide(&f, &[], &req(&p, 1, 0, DecisionKind::Reject)).is_ok());
    }

    #[test]
    fn stale_buttons_are_refused() {
        let f = flow();
        let mut t = ticket(&f);
        let u = Actor::new("slack", "U");
        t.apply(TicketStatus::InApproval(2));
        assert_eq!(
            t.decide(&f, &[], &req(&u, 1, 0, DecisionKind::Approve)),
            Err(Denied::Stale)
        );
        assert_eq!(
            t.decide(&f, &[], &req(&u, 2, 1, DecisionKind::Approve)),
            Err(Denied::Stale)
        );
        t.apply(TicketStatus::Closed);
        assert_eq!(
            t.decide(&f, &[], &req(&u, 2, 0, DecisionKind::Approve)),
            Err(Denied::NotOpen(TicketStatus::Closed))
        );
    }

    #[test]
    fn countersign_needs_distinct_approvers() {
        let mut f = flow();
        f.stages[2].approvals_required = 2;
        let mut t = ticket(&f);
        t.apply(TicketStatus::InApproval(2));
        let a = Actor::new("slack", "A");
        let b = Actor::new("discord", "A");
        assert_eq!(
            t.decide(&f, &[], &req(&a, 2, 0, DecisionKind::Approve)),
            Ok(Outcome::Counted {
                approvals: 1,
                required: 2
            })
        );
        assert_eq!(
            t.decide(&f, std::slice::from_ref(&a), &req(&a, 2, 0, DecisionKind::Approve)),
            Err(Denied::AlreadyApproved)
        );
        assert_eq!(
            t.decide(&f, &[a], &req(&b, 2, 0, DecisionKind::Approve)),
            Ok(Outcome::Advanced {
                next: TicketStatus::InApproval(3)
            })
        );
    }

    #[test]
    fn rejection_targets() {
        let mut f = flow();
        f.stages[2].on_reject = RejectTarget::Stage("test".into());
        f.stages[3].on_reject = RejectTarget::End;
        let u = Actor::new("slack", "U");
        let mut t = ticket(&f);
        assert_eq!(
            t.decide(&f, &[], &req(&u, 1, 0, DecisionKind::Reject)),
            Ok(Outcome::SentBack {
                next: TicketStatus::Draft
            })
        );
        t.apply(TicketStatus::InApproval(2));
        let Ok(Outcome::SentBack { next }) = t.decide(&f, &[], &req(&u, 2, 0, DecisionKind::Reject)) else {
            panic!()
        };
        assert_eq!(next, TicketStatus::InApproval(1));
        t.apply(next);
        assert_eq!(t.round, 1, "going back starts a new round");
        t.apply(TicketStatus::InApproval(3));
        assert_eq!(
            t.decide(&f, &[], &req(&u, 3, 1, DecisionKind::Reject)),
            Ok(Outcome::SentBack {
                next: TicketStatus::Rejected
            })
        );
    }

    #[test]
    fn resubmit_and_cancel_rules() {
        let f = flow();
        let mut t = ticket(&f);
        let p = t.submitter.clone();
        let other = Actor::new("slack", "O");
        assert_eq!(t.resubmit(&f, &p), Err(Denied::Stale));
        t.apply(TicketStatus::Draft);
        assert_eq!(t.resubmit(&f, &other), Err(Denied::NotSubmitter));
        assert_eq!(t.resubmit(&f, &p), Ok(TicketStatus::InApproval(1)));
        assert_eq!(t.cancel(&other, false), Err(Denied::NotSubmitter));
        assert_eq!(t.cancel(&other, true), Ok(TicketStatus::Closed));
        assert_eq!(t.cancel(&p, false), Ok(TicketStatus::Closed));
        t.apply(TicketStatus::Closed);
        assert_eq!(t.cancel(&p, false), Err(Denied::NotOpen(TicketStatus::Closed)));
    }

    #[test]
    fn a_release_stage_starts_the_executor_once_and_the_outcome_is_final() {
        let mut f = flow();
        f.stages[2].starts_execution = true;
        let mut t = ticket(&f);
        let u = Actor::new("slack", "U");
        t.apply(TicketStatus::InApproval(2));
        let Ok(Outcome::Advanced { next }) = t.decide(&f, &[], &req(&u, 2, 0, DecisionKind::Approve)) else {
            panic!()
        };
        assert_eq!(next, TicketStatus::Releasing(3));
        t.apply(next);
        assert_eq!(t.cancel(&t.submitter.clone(), true), Err(Denied::Released));
        assert_eq!(
            t.decide(&f, &[], &req(&u, 3, 0, DecisionKind::Approve)),
            Err(Denied::Stale),
            "QC waits for the release"
        );
        assert_eq!(
            t.finish_release(&f, ReleaseOutcome::RolledBack),
            Some(TicketStatus::InApproval(3))
        );
        t.apply(TicketStatus::InApproval(3));
        t.outcome = Some(ReleaseOutcome::RolledBack);
        let Ok(Outcome::Advanced { next }) = t.decide(&f, &[], &req(&u, 3, 0, DecisionKind::Approve)) else {
            panic!()
        };
        assert_eq!(
            next,
            TicketStatus::RolledBack,
            "QC's sign-off ends the ticket with the release's outcome"
        );
        // Sent back to the release stage after a release: approving it does not release again.
        t.apply(TicketStatus::InApproval(2));
        let Ok(Outcome::Advanced { next }) = t.decide(&f, &[], &req(&u, 2, 1, DecisionKind::Approve)) else {
            panic!()
        };
        assert_eq!(next, TicketStatus::InApproval(3));
        // The last stage may itself start the release.
        let mut g = flow();
        g.stages[3].starts_execution = true;
        let mut t = ticket(&g);
        t.apply(TicketStatus::InApproval(3));
        let Ok(Outcome::Advanced { next }) = t.decide(&g, &[], &req(&u, 3, 0, DecisionKind::Approve)) else {
            panic!()
        };
        t.apply(next);
        assert_eq!(
            t.finish_release(&g, ReleaseOutcome::Released),
            Some(TicketStatus::Released)
        );
    }

    #[test]
    fn single_stage_flow_is_ready_at_once() {
        let f = Flow {
            id: "x".into(),
            name: "x".into(),
            separation_of_duties: false,
            stages: vec![stage("submit", "product")],
        };
        assert_eq!(initial_status(&f), TicketStatus::Ready);
    }

    #[derive(Debug, Clone)]
    enum Act {
        Decide {
            user: u8,
            stage: usize,
            round_delta: u8,
            approve: bool,
            has_role: bool,
        },
        Resubmit {
            user: u8,
        },
        Cancel {
            user: u8,
            admin: bool,
        },
    }

    fn act() -> impl Strategy<Value = Act> {
        prop_oneof![
            6 => (0u8..4, 0usize..6, 0u8..2, any::<bool>(), any::<bool>()).prop_map(|(user, stage, round_delta, approve, has_role)| Act::Decide { user, stage, round_delta, approve, has_role }),
            2 => (0u8..4).prop_map(|user| Act::Resubmit { user }),
            1 => (0u8..4, any::<bool>()).prop_map(|(user, admin)| Act::Cancel { user, admin }),
        ]
    }

    proptest! {
        /// No sequence of actions reaches an illegal state, skips a stage or
        /// reopens a finished ticket; countersign stages need distinct approvers.
        #[test]
        fn no_sequence_skips_a_stage(acts in proptest::collection::vec(act(), 0..60), sod in any::<bool>(), countersign in 1u32..3) {
            let mut f = flow();
            f.separation_of_duties = sod;
            f.stages[2].approvals_required = countersign;
            f.stages[2].on_reject = RejectTarget::Stage("test".into());
            f.stages[3].on_reject = RejectTarget::End;
            let mut t = ticket(&f);
            // user 0 is the submitter
            t.submitter = Actor::new("slack", "u0");
            let mut approvals: Vec<Actor> = vec![];
            let mut approved_in_round: Vec<usize> = vec![];
            for a in acts {
                let before = t.status;
                match a {
                    Act::Decide { user, stage, round_delta, approve, has_role } => {
                        let actor = Actor::new("slack", format!("u{user}"));
                        let kind = if approve { DecisionKind::Approve } else { DecisionKind::Reject };
                        let r = DecideRequest { actor: &actor, has_role, stage, round: t.round + round_delta as u32, kind };
                        match t.decide(&f, &approvals, &r) {
                            Ok(Outcome::Counted { approvals: n, required }) => {
                                prop_assert!(n < required);
                                approvals.push(actor.clone());
                            }
                            Ok(Outcome::Advanced { next }) => {
                                prop_assert!(has_role);
                                prop_assert!(!(sod && actor == t.submitter));
                                let TicketStatus::InApproval(cur) = before else { unreachable!() };
                                prop_assert_eq!(approvals.len() as u32 + 1, f.stages[cur].approvals_required);
                                match next {
                                    TicketStatus::InApproval(n) => prop_assert_eq!(n, cur + 1),
                                    TicketStatus::Ready => {
                                        prop_assert_eq!(cur, f.stages.len() - 1);
                                        let expected: Vec<usize> = (1..f.stages.len()).collect();
                                        prop_assert_eq!(&approved_in_round, &expected[..approved_in_round.len()]);
                                    }
                                    other => prop_assert!(false, "approval moved to {other:?}"),
                                }
                                approved_in_round.push(cur);
                                t.apply(next);
                                approvals.clear();
                            }
                            Ok(Outcome::SentBack { next }) => {
                                prop_assert!(has_role);
                                let TicketStatus::InApproval(cur) = before else { unreachable!() };
                                if let TicketStatus::InApproval(n) = next { prop_assert!(n < cur) }
                                t.apply(next);
                                approvals.clear();
                                approved_in_round.retain(|s| matches!(next, TicketStatus::InApproval(n) if *s < n));
                            }
                            Err(_) => prop_assert_eq!(t.status, before),
                        }
                    }
                    Act::Resubmit { user } => {
                        let actor = Actor::new("slack", format!("u{user}"));
                        if let Ok(next) = t.resubmit(&f, &actor) {
                            prop_assert_eq!(before, TicketStatus::Draft);
                            prop_assert_eq!(&actor, &t.submitter);
                            t.apply(next);
                            approved_in_round.clear();
                        }
                    }
                    Act::Cancel { user, admin } => {
                        let actor = Actor::new("slack", format!("u{user}"));
                        if let Ok(next) = t.cancel(&actor, admin) {
                            prop_assert!(before.is_open());
                            t.apply(next);
                        }
                    }
                }
                if let TicketStatus::InApproval(i) = t.status {
                    prop_assert!(i >= 1 && i < f.stages.len());
                }
                if !before.is_open() {
                    prop_assert_eq!(t.status, before, "a finished ticket never changes");
                }
            }
        }
    }
}

//! Semantic actions carried by buttons and forms, encoded as short strings
//! (`approve:42:1:0`) that fit every platform's limits (Discord: 100 chars).

use crate::domain::ticket::{DecisionKind, TicketId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Approve or reject stage `stage` of round `round`.
    Decide {
        ticket: TicketId,
        stage: usize,
        round: u32,
        kind: DecisionKind,
    },
    /// Edit and resubmit a ticket sent back to its submitter.
    Resubmit { ticket: TicketId, round: u32 },
    /// Withdraw a ticket.
    Withdraw { ticket: TicketId },
    /// Pause / Resume / Retry / Skip / Rollback / Abort / Continue the ticket's release.
    Exec { ticket: TicketId, cmd: String },
}

/// What submitting a form does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormCallback {
    /// Create a ticket of this service.
    New {
        service: String,
    },
    /// Record a decision with the stage's inputs or the rejection reason.
    Decide {
        ticket: TicketId,
        stage: usize,
        round: u32,
        kind: DecisionKind,
    },
    Resubmit {
        ticket: TicketId,
        round: u32,
    },
}

/// A button on a swimlane's message (`lane:renew:7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneAction {
    /// Keep the lane (its prompt's **Renew**).
    Renew { lane: i64 },
    /// Delete it now (the prompt's **Delete now**, a confirmation's **Delete**).
    Delete { lane: i64 },
}

impl LaneAction {
    pub fn lane(&self) -> i64 {
        match self {
            LaneAction::Renew { lane } | LaneAction::Delete { lane } => *lane,
        }
    }

    pub fn encode(&self) -> String {
        match self {
            LaneAction::Renew { lane } => format!("lane:renew:{lane}"),
            LaneAction::Delete { lane } => format!("lane:delete:{lane}"),
        }
    }

    pub fn decode(s: &str) -> Option<Self> {
        let mut parts = s.split(':');
        if parts.next() != Some("lane") {
            return None;
        }
        let op = parts.next()?;
        let lane = parts.next()?.parse::<i64>().ok()?;
        if parts.next().is_some() {
            return None;
        }
        match op {
            "renew" => Some(LaneAction::Renew { lane }),
            "delete" => Some(LaneAction::Delete { lane }),
            _ => None,
        }
    }
}

/// A button on a scheduled release's message (`sched:start:7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleAction {
    StartNow { ticket: TicketId },
    Postpone { ticket: TicketId },
    Cancel { ticket: TicketId },
}

impl ScheduleAction {
    pub fn ticket(&self) -> TicketId {
        match self {
            ScheduleAction::StartNow { ticket }
            | ScheduleAction::Postpone { ticket }
            | ScheduleAction::Cancel { ticket } => *ticket,
        }
    }

    pub fn encode(&self) -> String {
        match self {
            ScheduleAction::StartNow { ticket } => format!("sched:start:{}", ticket.0),
            ScheduleAction::Postpone { ticket } => format!("sched:postpone:{}", ticket.0),
            ScheduleAction::Cancel { ticket } => format!("sched:cancel:{}", ticket.0),
        }
    }

    pub fn decode(s: &str) -> Option<Self> {
        let mut parts = s.split(':');
        if parts.next() != Some("sched") {
            return None;
        }
        let op = parts.next()?;
        let ticket = TicketId(parts.next()?.parse::<i64>().ok()?);
        if parts.next().is_some() {
            return None;
        }
        match op {
            "start" => Some(ScheduleAction::StartNow { ticket }),
            "postpone" => Some(ScheduleAction::Postpone { ticket }),
            "cancel" => Some(ScheduleAction::Cancel { ticket }),
            _ => None,
        }
    }
}

impl Action {
    /// The ticket the action is about.
    pub fn ticket(&self) -> TicketId {
        match self {
            Action::Decide { ticket, .. }
            | Action::Resubmit { ticket, .. }
            | Action::Withdraw { ticket }
            | Action::Exec { ticket, .. } => *ticket,
        }
    }

    pub fn encode(&self) -> String {
        match self {
            Action::Decide {
                ticket,
                stage,
                round,
                kind,
            } => format!("{}:{}:{stage}:{round}", kind.as_str(), ticket.0),
            Action::Resubmit { ticket, round } => format!("resubmit:{}:{round}", ticket.0),
            Action::Withdraw { ticket } => format!("withdraw:{}", ticket.0),
            Action::Exec { ticket, cmd } => format!("exec:{cmd}:{}", ticket.0),
        }
    }

    pub fn decode(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.split(':').collect();
        let id = |i: usize| parts.get(i).and_then(|p| p.parse::<i64>().ok()).map(TicketId);
        let num = |i: usize| parts.get(i).and_then(|p| p.parse::<u32>().ok());
        match (parts.first().copied(), parts.len()) {
            (Some(k @ ("approve" | "reject")), 4) => Some(Action::Decide {
                ticket: id(1)?,
                stage: num(2)? as usize,
                round: num(3)?,
                kind: DecisionKind::parse(k)?,
            }),
            (Some("resubmit"), 3) => Some(Action::Resubmit {
                ticket: id(1)?,
                round: num(2)?,
            }),
            (Some("withdraw"), 2) => Some(Action::Withdraw { ticket: id(1)? }),
            (Some("exec"), 3) if crate::domain::execution::Command::parse(parts[1]).is_some() => Some(Action::Exec {
                ticket: id(2)?,
                cmd: parts[1].to_string(),
            }),
            _ => None,
        }
    }
}

impl FormCallback {
    /// The ticket the form is about (none for a new one).
    pub fn ticket(&self) -> Option<TicketId> {
        match self {
            FormCallback::New { .. } => None,
            FormCallback::Decide { ticket, .. } | FormCallback::Resubmit { ticket, .. } => Some(*ticket),
        }
    }

    pub fn encode(&self) -> String {
        match self {
            FormCallback::New { service } => format!("new:{service}"),
            FormCallback::Decide {
                ticket,
                stage,
                round,
                kind,
            } => Action::Decide {
                ticket: *ticket,
                stage: *stage,
                round: *round,
                kind: *kind,
            }
            .encode(),
            FormCallback::Resubmit { ticket, round } => Action::Resubmit {
                ticket: *ticket,
                round: *round,
            }
            .encode(),
        }
    }

    pub fn decode(s: &str) -> Option<Self> {
        if let Some(service) = s.strip_prefix("new:") {
            return (!service.is_empty()).then(|| FormCallback::New {
                service: service.to_string(),
            });
        }
        match Action::decode(s)? {
            Action::Decide {
                ticket,
                stage,
                round,
                kind,
            } => Some(FormCallback::Decide {
                ticket,
                stage,
                round,
                kind,
            }),
            Action::Resubmit { ticket, round } => Some(FormCallback::Resubmit { ticket, round }),
            Action::Withdraw { .. } | Action::Exec { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let all = [
            Action::Decide {
                ticket: TicketId(42),
                stage: 3,
                round: 1,
                kind: DecisionKind::Approve,
            },
            Action::Decide {
                ticket: TicketId(1),
                stage: 1,
                round: 0,
                kind: DecisionKind::Reject,
            },
            Action::Resubmit {
                ticket: TicketId(7),
                round: 2,
            },
            Action::Withdraw { ticket: TicketId(9) },
            Action::Exec {
                ticket: TicketId(3),
                cmd: "rollback".into(),
            },
        ];
        for a in all {
            let s = a.encode();
            assert!(s.len() <= 100);
            assert_eq!(Action::decode(&s), Some(a));
        }
        let f = FormCallback::New {
            service: "app-release".into(),
        };
        assert_eq!(FormCallback::decode(&f.encode()), Some(f));
        assert_eq!(Action::decode("approve:x:1:0"), None);
        assert_eq!(Action::decode("approve:1:1"), None);
        assert_eq!(Action::decode("launch:1"), None);
        assert_eq!(Action::decode("exec:launch:1"), None);
        assert_eq!(FormCallback::decode("withdraw:1"), None);
        assert_eq!(FormCallback::decode("new:"), None);
        for a in [LaneAction::Renew { lane: 7 }, LaneAction::Delete { lane: 12 }] {
            assert_eq!(LaneAction::decode(&a.encode()), Some(a));
            assert_eq!(Action::decode(&a.encode()), None);
        }
        assert_eq!(LaneAction::decode("lane:renew:x"), None);
        assert_eq!(LaneAction::decode("lane:rename:1"), None);
        for a in [
            ScheduleAction::StartNow { ticket: TicketId(3) },
            ScheduleAction::Postpone { ticket: TicketId(3) },
            ScheduleAction::Cancel { ticket: TicketId(3) },
        ] {
            assert_eq!(ScheduleAction::decode(&a.encode()), Some(a));
        }
    }
}

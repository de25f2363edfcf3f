//! What lower layers tell the handlers. The executor never calls a ticket handler: it
//! records an event (in the same transaction as the state change it reports), and the
//! inbox hands it to the bot like any inbound event, in order with the ticket's others.

use super::execution::Reaction;
use super::ticket::{ReleaseOutcome, TicketId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SystemEvent {
    /// An execution ended: the ticket moves on to its next stage with the outcome.
    ExecutionEnded {
        ticket: i64,
        execution: i64,
        outcome: ReleaseOutcome,
    },
    /// A step failed (and what that led to) or was interrupted by a restart: the on-call
    /// role is alerted with the evidence.
    NeedsAttention {
        ticket: i64,
        execution: i64,
        step: usize,
        /// `None` for a step interrupted by a restart.
        reaction: Option<Reaction>,
        evidence: String,
    },
}

impl SystemEvent {
    pub fn ticket(&self) -> TicketId {
        match self {
            SystemEvent::ExecutionEnded { ticket, .. } | SystemEvent::NeedsAttention { ticket, .. } => {
                TicketId(*ticket)
            }
        }
    }
}

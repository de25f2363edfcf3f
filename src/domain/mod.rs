//! Pure types and state machines: no I/O, no async, no platform types.

pub mod actor;
pub mod calendar;
pub mod events;
pub mod execution;
pub mod fields;
pub mod flow;
pub mod jobs;
pub mod plan;
pub mod schedule;
pub mod swimlane;
pub mod ticket;
pub mod token;

pub use actor::Actor;
pub use flow::{FieldDef, FieldKind, Flow, RejectTarget, Stage};
pub use ticket::{Decision, DecisionKind, Denied, Outcome, Ticket, TicketStatus};

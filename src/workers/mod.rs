//! The workers: long-running tasks that take work from the database and hand it to the
//! layers below — recorded events to the bot, queued messages to the platforms, due
//! firings to the bot's jobs, expired rows to deletion.

pub mod inbox;
pub mod outbox;
pub mod pruner;
pub mod scheduler;

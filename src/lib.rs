//! releasebot: release tickets, approvals and (later) releases, run from chat.

pub mod app;
pub mod bot;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod command;
pub mod config;
pub mod demo;
pub mod domain;
pub mod executor;
pub mod inbox;

pub mod metrics;
pub mod outbox;
pub mod runtime;
pub mod server;
pub mod shared;
pub mod store;
pub mod telemetry;
pub mod views;
pub mod work;
pub mod workers;

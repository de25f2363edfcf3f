//! Slack: request signatures, payload parsing, the Block Kit renderer and the Web API
//! client (slack-morphism). Nothing outside this module knows Slack's types.

pub mod client;
pub mod manifest;
pub mod parse;
pub mod render;
pub mod verify;

pub use client::SlackChat;

pub const PLATFORM: &str = "slack";

//! DingTalk (钉钉): the enterprise robot's signed inbound messages and card callbacks,
//! interactive cards for decisions, robot messages, and the signed group-robot webhook
//! for announcements. A small client of our own on reqwest: there is no SDK.

pub mod client;
pub mod parse;
pub mod stream;
pub mod verify;

pub use client::DingTalkChat;

pub const PLATFORM: &str = "dingtalk";

//! Discord over HTTP interactions (no gateway): Ed25519 signatures, interaction
//! parsing, the renderer (embeds, buttons, modals within Discord's limits) and the
//! outbound client (serenity's HTTP client). Nothing outside this module knows
//! serenity's types.

pub mod client;
pub mod parse;
pub mod render;
pub mod verify;

pub use client::DiscordChat;

pub const PLATFORM: &str = "discord";

/// Interaction response types.
pub mod response {
    pub const PONG: u8 = 1;
    pub const MESSAGE: u8 = 4;
    pub const DEFERRED_UPDATE: u8 = 6;
    pub const UPDATE_MESSAGE: u8 = 7;
    pub const MODAL: u8 = 9;
    /// Message flag: only the user who interacted sees it.
    pub const EPHEMERAL: u64 = 1 << 6;
}

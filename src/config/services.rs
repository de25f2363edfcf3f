//! `[roles]`, `[services]` and `[[applications]]`.

use super::*;

/// Platforms a role member may belong to.
pub const PLATFORMS: &[&str] = &crate::domain::actor::PLATFORMS;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    pub flow: String,
    /// The release plan its `starts_execution` stage runs.
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationConfig {
    pub name: String,
    #[serde(default)]
    pub owner: Option<String>,
    /// Where it is released (`["prod"]` when empty).
    #[serde(default)]
    pub environments: Vec<String>,
    /// When its releases may start (`{ start = "0 0 10 * * Mon-Fri", duration = "6h" }`);
    /// any time when empty. A release outside them needs an override.
    #[serde(default)]
    pub release_windows: Vec<WindowConfig>,
}

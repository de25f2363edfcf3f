//! `[executor]`, `[runtime]` and `[sim]`: how releases run, the daemon's housekeeping, the
//! simulated fleet.

use super::*;

/// `[executor]`: how releases run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    /// Executions advanced at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// A second release of an application and environment: `queue` (default) or `refuse`.
    #[serde(default)]
    pub when_busy: LockPolicy,
    /// A step being stopped gets SIGTERM, then SIGKILL after this long.
    #[serde(default = "default_stop_grace")]
    pub stop_grace: Span,
}

pub(super) fn default_concurrency() -> usize {
    CONCURRENCY
}

pub(super) fn default_stop_grace() -> Span {
    Span::secs(10)
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            concurrency: default_concurrency(),
            when_busy: Default::default(),
            stop_grace: default_stop_grace(),
        }
    }
}

/// `[runtime]`: the daemon's housekeeping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Handled inbox events and delivered outbox messages are deleted after this long
    /// (the audit trail is kept for ever).
    #[serde(default = "default_retention")]
    pub retention: Span,
    /// At SIGTERM, work under way may take this long to finish before the daemon exits.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: Span,
}

pub(super) fn default_retention() -> Span {
    Span::secs(7 * 86_400)
}

pub(super) fn default_shutdown_grace() -> Span {
    Span::secs(10)
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            retention: default_retention(),
            shutdown_grace: default_shutdown_grace(),
        }
    }
}

/// Executions advanced at once, by default.
pub const CONCURRENCY: usize = 512;

/// What a release does when another release of its application and environment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockPolicy {
    /// It waits, and starts when the other ends.
    #[default]
    Queue,
    /// The release stage's approval is refused until the other ends.
    Refuse,
}

/// Faults and numbers of the simulated fleet (`[sim]` in the configuration).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    #[serde(default = "four")]
    pub hosts: u32,
    /// Percent of requests the new version fails.
    #[serde(default)]
    pub new_error_rate: f64,
    /// The versions that fail `new_error_rate` percent of requests (an injected fault);
    /// every version when empty.
    #[serde(default)]
    pub faulty_versions: Vec<String>,
    #[serde(default = "old_error_rate")]
    pub old_error_rate: f64,
    #[serde(default = "new_p95")]
    pub new_p95_ms: u64,
    #[serde(default = "old_p95")]
    pub old_p95_ms: u64,
    /// Steps (by id) that fail.
    #[serde(default)]
    pub fail_steps: Vec<String>,
    /// Steps (by id) that never finish (their timeout fails them).
    #[serde(default)]
    pub hang_steps: Vec<String>,
    /// Hosts where a deploy fails.
    #[serde(default)]
    pub failing_hosts: Vec<String>,
    /// How long each simulated step (but a MONITOR's tick) takes, in milliseconds, give
    /// or take half; 0 for instant.
    #[serde(default)]
    pub step_ms: u64,
}

pub(super) fn four() -> u32 {
    4
}
pub(super) fn old_error_rate() -> f64 {
    0.1
}
pub(super) fn new_p95() -> u64 {
    120
}
pub(super) fn old_p95() -> u64 {
    130
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            hosts: 4,
            new_error_rate: 0.0,
            faulty_versions: vec![],
            old_error_rate: old_error_rate(),
            new_p95_ms: new_p95(),
            old_p95_ms: old_p95(),
            fail_steps: vec![],
            hang_steps: vec![],
            failing_hosts: vec![],
            step_ms: 0,
        }
    }
}

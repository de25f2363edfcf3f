//! Settings (command line and environment) and the TOML configuration.

use crate::domain::flow::{FieldKind, Flow, RejectTarget};
use crate::domain::Actor;
use anyhow::Context;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

/// A secret value: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// Process settings: every flag can also be given as an environment variable (or in `.env`).
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// SQLite (`sqlite://file?mode=rwc`) or PostgreSQL (`postgres://…`) URL.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        default_value = "sqlite://releasebot.db?mode=rwc",
        hide_env_values = true
    )]
    pub database_url: String,
    /// HTTP listen address.
    #[arg(long, global = true, env = "RELEASEBOT_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: String,
    /// Base of links in messages.
    #[arg(
        long,
        global = true,
        env = "RELEASEBOT_PUBLIC_URL",
        default_value = "http://127.0.0.1:3000"
    )]
    pub public_url: String,
    /// TOML file with roles, flows and services; the built-in defaults when absent.
    #[arg(long, global = true, env = "RELEASEBOT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Language of every message: `en` or `zh-CN`.
    #[arg(long, global = true, env = "RELEASEBOT_LOCALE", default_value = "en")]
    pub locale: String,
    /// Log format: `text` or `json`.
    #[arg(long, global = true, env = "RELEASEBOT_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Slack signing secret (Slack is off when unset).
    #[arg(long, global = true, env = "SLACK_SIGNING_SECRET", hide_env_values = true)]
    pub slack_signing_secret: Option<Secret>,
    /// Slack bot token, `xoxb-…` (Slack is off when unset).
    #[arg(long, global = true, env = "SLACK_BOT_TOKEN", hide_env_values = true)]
    pub slack_bot_token: Option<Secret>,
    /// Base URL of the Slack Web API.
    #[arg(
        long,
        global = true,
        env = "SLACK_API_URL",
        default_value = "https://slack.com/api",
        hide_env_values = true
    )]
    pub slack_api_url: String,
    /// Discord application public key, hex (Discord is off when unset).
    #[arg(long, global = true, env = "DISCORD_PUBLIC_KEY")]
    pub discord_public_key: Option<String>,
    /// Discord bot token.
    #[arg(long, global = true, env = "DISCORD_BOT_TOKEN", hide_env_values = true)]
    pub discord_bot_token: Option<Secret>,
    /// Discord application id.
    #[arg(long, global = true, env = "DISCORD_APPLICATION_ID")]
    pub discord_application_id: Option<String>,
    /// Base URL of the Discord API.
    #[arg(
        long,
        global = true,
        env = "DISCORD_API_URL",
        default_value = "https://discord.com/api/v10",
        hide_env_values = true
    )]
    pub discord_api_url: String,
    /// DingTalk enterprise robot app key (DingTalk is off when unset).
    #[arg(long, global = true, env = "DINGTALK_APP_KEY")]
    pub dingtalk_app_key: Option<String>,
    /// DingTalk app secret: signs inbound requests and obtains access tokens.
    #[arg(long, global = true, env = "DINGTALK_APP_SECRET", hide_env_values = true)]
    pub dingtalk_app_secret: Option<Secret>,
    /// DingTalk robot code (usually the app key).
    #[arg(long, global = true, env = "DINGTALK_ROBOT_CODE")]
    pub dingtalk_robot_code: Option<String>,
    /// Base URL of the DingTalk open API.
    #[arg(
        long,
        global = true,
        env = "DINGTALK_API_URL",
        default_value = "https://api.dingtalk.com",
        hide_env_values = true
    )]
    pub dingtalk_api_url: String,
    /// Group robot webhook for announcements (progress, alerts, digests).
    #[arg(long, global = true, env = "DINGTALK_WEBHOOK_URL", hide_env_values = true)]
    pub dingtalk_webhook_url: Option<Secret>,
    /// Signing secret of the group robot (`SEC…`).
    #[arg(long, global = true, env = "DINGTALK_WEBHOOK_SECRET", hide_env_values = true)]
    pub dingtalk_webhook_secret: Option<Secret>,
    /// The interactive card template (variables `title`, `markdown`, `buttons`).
    #[arg(
        long,
        global = true,
        env = "DINGTALK_CARD_TEMPLATE_ID",
        default_value = "releasebot.card"
    )]
    pub dingtalk_card_template: String,
    /// The key under which releasebot registers its card callback URL with DingTalk
    /// (`RELEASEBOT_PUBLIC_URL/dingtalk/events`); cards name it, so presses come back.
    #[arg(
        long,
        global = true,
        env = "DINGTALK_CALLBACK_ROUTE_KEY",
        default_value = "releasebot"
    )]
    pub dingtalk_callback_route_key: String,
    /// Base URL of DingTalk's older server API (`topapi`), where people's names are read.
    #[arg(
        long,
        global = true,
        env = "DINGTALK_OAPI_URL",
        default_value = "https://oapi.dingtalk.com",
        hide_env_values = true
    )]
    pub dingtalk_oapi_url: String,
    /// Receive DingTalk events over Stream mode (an outgoing websocket) instead of HTTP.
    #[arg(long, global = true, env = "DINGTALK_STREAM", default_value_t = false)]
    pub dingtalk_stream: bool,
    /// Bearer token of `POST /swimlanes/{name}/activity` (CI reporting deploys); the route
    /// is off when unset.
    #[arg(long, global = true, env = "RELEASEBOT_ACTIVITY_TOKEN", hide_env_values = true)]
    pub activity_token: Option<Secret>,
    /// Key that signs the links to the release and ticket pages (and the local chat's
    /// sessions); generated once and kept in the database when unset.
    #[arg(long, global = true, env = "RELEASEBOT_LINK_SECRET", hide_env_values = true)]
    pub link_secret: Option<Secret>,
    /// The local chat in the browser: on when no platform is configured, unless `false`;
    /// `true` turns it on beside real platforms.
    #[arg(long, global = true, env = "RELEASEBOT_LOCAL_CHAT")]
    pub local_chat: Option<bool>,
}

/// Discord credentials: public key, bot token, application id.
#[derive(Debug, Clone)]
pub struct DiscordSettings {
    pub public_key: String,
    pub token: Secret,
    pub application_id: String,
    pub api_url: String,
}

/// DingTalk credentials and endpoints.
#[derive(Debug, Clone)]
pub struct DingTalkSettings {
    pub app_key: String,
    pub app_secret: Secret,
    pub robot_code: String,
    pub api_url: String,
    pub webhook_url: Option<Secret>,
    pub webhook_secret: Option<Secret>,
    pub card_template: String,
    /// How card button presses arrive: over Stream mode, or over HTTP to `callback_url`
    /// under `callback_route_key` (registered with DingTalk at start).
    pub stream: bool,
    pub callback_route_key: String,
    pub callback_url: String,
    /// Base URL of DingTalk's older API (people's names).
    pub oapi_url: String,
}

impl Settings {
    /// Settings on the embedded defaults, for tests and the demo.
    pub fn defaults() -> Self {
        Self {
            database_url: "sqlite://releasebot.db?mode=rwc".into(),
            listen: "127.0.0.1:3000".into(),
            public_url: "http://127.0.0.1:3000".into(),
            config: None,
            locale: "en".into(),
            log_format: "text".into(),
            slack_signing_secret: None,
            slack_bot_token: None,
            slack_api_url: "https://slack.com/api".into(),
            discord_public_key: None,
            discord_bot_token: None,
            discord_application_id: None,
            discord_api_url: "https://discord.com/api/v10".into(),
            dingtalk_app_key: None,
            dingtalk_app_secret: None,
            dingtalk_robot_code: None,
            dingtalk_api_url: "https://api.dingtalk.com".into(),
            dingtalk_webhook_url: None,
            dingtalk_webhook_secret: None,
            dingtalk_card_template: "releasebot.card".into(),
            dingtalk_stream: false,
            dingtalk_callback_route_key: "releasebot".into(),
            dingtalk_oapi_url: "https://oapi.dingtalk.com".into(),
            activity_token: None,
            link_secret: None,
            local_chat: None,
        }
    }

    pub fn discord(&self) -> Option<DiscordSettings> {
        let key = self.discord_public_key.as_deref().filter(|k| !k.trim().is_empty())?;
        let token = self.discord_bot_token.clone().filter(|t| !t.expose().is_empty())?;
        let app = self
            .discord_application_id
            .as_deref()
            .filter(|a| !a.trim().is_empty())?;
        Some(DiscordSettings {
            public_key: key.trim().to_string(),
            token,
            application_id: app.trim().to_string(),
            api_url: self.discord_api_url.clone(),
        })
    }

    pub fn dingtalk(&self) -> Option<DingTalkSettings> {
        let key = self.dingtalk_app_key.as_deref().filter(|k| !k.trim().is_empty())?;
        let secret = self.dingtalk_app_secret.clone().filter(|s| !s.expose().is_empty())?;
        Some(DingTalkSettings {
            app_key: key.trim().to_string(),
            app_secret: secret,
            robot_code: self
                .dingtalk_robot_code
                .clone()
                .filter(|c| !c.trim().is_empty())
                .unwrap_or_else(|| key.trim().to_string()),
            api_url: self.dingtalk_api_url.clone(),
            webhook_url: self.dingtalk_webhook_url.clone().filter(|u| !u.expose().is_empty()),
            webhook_secret: self.dingtalk_webhook_secret.clone().filter(|s| !s.expose().is_empty()),
            card_template: self.dingtalk_card_template.clone(),
            stream: self.dingtalk_stream,
            callback_route_key: self.dingtalk_callback_route_key.clone(),
            callback_url: format!("{}/dingtalk/events", self.public_url.trim_end_matches('/')),
            oapi_url: self.dingtalk_oapi_url.clone(),
        })
    }

    pub fn slack(&self) -> Option<(Secret, Secret)> {
        match (&self.slack_signing_secret, &self.slack_bot_token) {
            (Some(s), Some(t)) if !s.expose().is_empty() && !t.expose().is_empty() => Some((s.clone(), t.clone())),
            _ => None,
        }
    }
}

pub const DEFAULT_CONFIG: &str = include_str!("../config/default.toml");

/// The locales a name may be given in.
pub const LOCALES: &[&str] = &["en", "zh-CN"];

/// Replaces every per-locale text (a table whose keys are all locales and whose values
/// are all strings) by its text in `locale`.
fn localize(table: &mut toml::Table, locale: &str) {
    for (_, v) in table.iter_mut() {
        localize_value(v, locale);
    }
}

fn localize_value(v: &mut toml::Value, locale: &str) {
    match v {
        toml::Value::Table(t) => {
            let per_locale = !t.is_empty() && t.iter().all(|(k, v)| LOCALES.contains(&k.as_str()) && v.is_str());
            if per_locale {
                let text = t
                    .get(locale)
                    .or_else(|| t.get("en"))
                    .or_else(|| t.values().next())
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string();
                *v = toml::Value::String(text);
            } else {
                localize(t, locale);
            }
        }
        toml::Value::Array(items) => {
            for i in items {
                localize_value(i, locale);
            }
        }
        _ => {}
    }
}

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

/// A recurring window: from each start of a cron schedule, for a duration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    pub start: String,
    pub duration: Span,
}

/// A duration as the configuration writes it: `"500ms"`, `"90s"`, `"15m"`, `"4h"`, `"6d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub std::time::Duration);

impl Span {
    pub fn secs(s: u64) -> Self {
        Self(std::time::Duration::from_secs(s))
    }

    pub fn ms(&self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Parses `"90s"`, `"15m"`, `"4h"`, `"6d"` or `"500ms"`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let bad = || format!("\"{text}\" is not a duration (write it like \"90s\", \"15m\", \"4h\" or \"6d\")");
    let n: u64 = n.parse().map_err(|_| bad())?;
    let ms = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(ms).map(std::time::Duration::from_millis).ok_or_else(bad)
}

impl serde::Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.ms()))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map(Span).map_err(serde::de::Error::custom)
    }
}

/// `[executor]`: how releases run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    /// Executions advanced at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// A second release of an application and environment: `queue` (default) or `refuse`.
    #[serde(default)]
    pub when_busy: crate::executor::LockPolicy,
    /// A step being stopped gets SIGTERM, then SIGKILL after this long.
    #[serde(default = "default_stop_grace")]
    pub stop_grace: Span,
}

fn default_concurrency() -> usize {
    crate::executor::runner::CONCURRENCY
}

fn default_stop_grace() -> Span {
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

fn default_retention() -> Span {
    Span::secs(7 * 86_400)
}

fn default_shutdown_grace() -> Span {
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

/// `[swimlanes]`: the lifecycle of feature environments, their naming and their hooks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwimlaneConfig {
    /// Idle this long, a lane is announced as pending deletion.
    #[serde(default = "default_idle")]
    pub idle: Span,
    /// Pending deletion this long without a renewal, it is deleted.
    #[serde(default = "default_grace")]
    pub grace: Span,
    /// No lane lives longer than this from its creation (an admin may extend one).
    #[serde(default)]
    pub max_lifetime: Option<Span>,
    /// Where lane messages go; the channel the lane was created in when absent.
    #[serde(default)]
    pub channel: Option<crate::domain::flow::StageChannel>,
    /// Patterns of the derived facts: `{lane}` is the lane's name, `{app}` an application.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default = "default_branch")]
    pub branch: String,
    #[serde(default = "default_internal_domain")]
    pub internal_domain: String,
    #[serde(default)]
    pub external_domain: Option<String>,
    /// A cron schedule (`"0 0 9 * * *"`, UTC) of the daily list, per channel, of lanes
    /// deleted within 24 hours; no list when absent.
    #[serde(default)]
    pub expiring_list: Option<String>,
    /// Failed provisioning is retried this many times before the lane fails; a failed
    /// deletion is retried until it succeeds.
    #[serde(default = "default_hook_retries")]
    pub hook_retries: u32,
    /// The first retry waits this long, each next one twice as long (at most an hour).
    #[serde(default = "default_hook_backoff")]
    pub hook_backoff: Span,
    /// A hook taking longer than this has failed.
    #[serde(default = "default_hook_timeout")]
    pub hook_timeout: Span,
    /// Run in order at creation, in reverse order at deletion.
    #[serde(default)]
    pub hooks: Vec<HookConfig>,
}

/// One provisioning/deletion hook of a lane.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "provider", rename_all = "snake_case", deny_unknown_fields)]
pub enum HookConfig {
    /// `sh -c` with `RELEASEBOT_LANE`, `RELEASEBOT_LANE_NAMESPACE`, … in its environment.
    Script {
        #[serde(default)]
        create: Option<String>,
        #[serde(default)]
        delete: Option<String>,
    },
    /// `POST url` with `{"event": "create"|"delete", "lane": …}` and an `Idempotency-Key`.
    Http { url: String },
    /// Creates the lane's namespace (labelled with lane, owner and expiry) and deletes it.
    Kubernetes {
        /// The API server; the in-cluster account or the kubeconfig when absent.
        #[serde(default)]
        api_url: Option<String>,
        /// The environment variable holding a bearer token for `api_url`.
        #[serde(default)]
        token_env: Option<String>,
    },
}

impl HookConfig {
    pub fn name(&self) -> &'static str {
        match self {
            HookConfig::Script { .. } => "script",
            HookConfig::Http { .. } => "http",
            HookConfig::Kubernetes { .. } => "kubernetes",
        }
    }
}

fn default_idle() -> Span {
    Span::secs(6 * 86_400)
}
fn default_grace() -> Span {
    Span::secs(86_400)
}
fn default_namespace() -> String {
    "{lane}".into()
}
fn default_branch() -> String {
    "feature/{lane}".into()
}
fn default_internal_domain() -> String {
    "{app}.{lane}".into()
}
fn default_hook_retries() -> u32 {
    3
}
fn default_hook_backoff() -> Span {
    Span::secs(30)
}
fn default_hook_timeout() -> Span {
    Span::secs(600)
}

impl Default for SwimlaneConfig {
    fn default() -> Self {
        Self {
            idle: default_idle(),
            grace: default_grace(),
            max_lifetime: None,
            channel: None,
            namespace: default_namespace(),
            branch: default_branch(),
            internal_domain: default_internal_domain(),
            external_domain: None,
            expiring_list: None,
            hook_retries: default_hook_retries(),
            hook_backoff: default_hook_backoff(),
            hook_timeout: default_hook_timeout(),
            hooks: Vec::new(),
        }
    }
}

impl SwimlaneConfig {
    pub fn policy(&self) -> crate::domain::swimlane::Policy {
        crate::domain::swimlane::Policy {
            idle_ms: self.idle.ms(),
            grace_ms: self.grace.ms(),
            max_lifetime_ms: self.max_lifetime.map(|m| m.ms()),
        }
    }

    pub fn patterns(&self) -> crate::domain::swimlane::Patterns {
        crate::domain::swimlane::Patterns {
            namespace: self.namespace.clone(),
            branch: self.branch.clone(),
            internal_domain: self.internal_domain.clone(),
            external_domain: self.external_domain.clone(),
        }
    }

    /// Every problem of the section, with its path.
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let positive = [
            ("idle", Some(self.idle)),
            ("grace", Some(self.grace)),
            ("max_lifetime", self.max_lifetime),
            ("hook_backoff", Some(self.hook_backoff)),
            ("hook_timeout", Some(self.hook_timeout)),
        ];
        for (key, span) in positive {
            if span.is_some_and(|s| s.0 < std::time::Duration::from_secs(1)) {
                out.push(format!("swimlanes.{key}: must be at least \"1s\""));
            }
        }
        if let Some(max) = self.max_lifetime {
            if max.0 <= self.grace.0 {
                out.push("swimlanes.max_lifetime: must be longer than swimlanes.grace".to_string());
            }
        }
        if !self.namespace.contains("{lane}") {
            out.push("swimlanes.namespace: must contain {lane} (each lane has its own namespace)".to_string());
        } else {
            let sample = self.namespace.replace("{lane}", "x");
            if crate::domain::swimlane::sanitize(&sample).ok().as_deref() != Some(sample.as_str()) {
                out.push(format!("swimlanes.namespace: \"{}\" does not make a Kubernetes namespace name (lowercase letters, digits and '-')", self.namespace));
            }
        }
        for (key, pattern) in [
            ("branch", Some(&self.branch)),
            ("internal_domain", Some(&self.internal_domain)),
            ("external_domain", self.external_domain.as_ref()),
        ] {
            if pattern.is_some_and(|p| !p.contains("{lane}")) {
                out.push(format!("swimlanes.{key}: must contain {{lane}}"));
            }
        }
        match &self.channel {
            Some(crate::domain::flow::StageChannel::All(c)) if c.trim().is_empty() => out.push(
                "swimlanes.channel: must not be empty (leave it out to use the channel a lane is created in)"
                    .to_string(),
            ),
            Some(crate::domain::flow::StageChannel::PerPlatform(m)) => {
                for p in m.keys().filter(|p| !PLATFORMS.contains(&p.as_str())) {
                    out.push(format!(
                        "swimlanes.channel.{p}: unknown platform (expected one of {})",
                        PLATFORMS.join(", ")
                    ));
                }
            }
            _ => {}
        }
        if let Some(s) = &self.expiring_list {
            if let Err(why) = crate::scheduler::parse_schedule(s) {
                out.push(format!("swimlanes.expiring_list: {why}"));
            }
        }
        if self.hook_retries > 20 {
            out.push("swimlanes.hook_retries: at most 20".to_string());
        }
        for (i, h) in self.hooks.iter().enumerate() {
            let at = format!("swimlanes.hooks[{i}]");
            match h {
                HookConfig::Script {
                    create: None,
                    delete: None,
                } => out.push(format!("{at}: a script hook needs `create`, `delete` or both")),
                HookConfig::Http { url } if !url.starts_with("http://") && !url.starts_with("https://") => {
                    out.push(format!("{at}.url: \"{url}\" is not an http(s) URL"))
                }
                HookConfig::Kubernetes { api_url: Some(u), .. } if url::Url::parse(u).is_err() => {
                    out.push(format!("{at}.api_url: \"{u}\" is not a URL"))
                }
                _ => {}
            }
        }
        out
    }
}

/// `[[freezes]]`: a window in which releases do not start (rollbacks always do).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeConfig {
    pub name: String,
    #[serde(default)]
    pub reason: String,
    /// A cron schedule (with seconds, in `[calendar] timezone`) of the freeze's starts, with `duration`.
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub duration: Option<Span>,
    /// Or fixed dates (`"2026-12-24 00:00"`, UTC, or RFC 3339).
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
    /// What it covers; all applications and environments when empty.
    #[serde(default)]
    pub applications: Vec<String>,
    #[serde(default)]
    pub environments: Vec<String>,
}

/// A configured freeze, checked.
#[derive(Debug, Clone)]
pub struct Freeze {
    pub name: String,
    pub reason: String,
    pub window: crate::domain::calendar::Window,
    pub scope: crate::domain::calendar::Scope,
}

impl FreezeConfig {
    fn checked(&self, at: &str, tz: crate::scheduler::Tz, errors: &mut Vec<String>) -> Option<Freeze> {
        let date = |key: &str, v: &str, errors: &mut Vec<String>| {
            let t = crate::domain::fields::parse_datetime(v).map(|t| t.timestamp_millis());
            if t.is_none() {
                errors.push(format!(
                    "{at}.{key}: \"{v}\" is not a date and time (write \"2026-12-24 00:00\", UTC)"
                ));
            }
            t
        };
        let window = match (&self.start, self.duration, &self.from, &self.until) {
            (Some(start), Some(d), None, None) => match crate::scheduler::parse_schedule(start) {
                Ok(schedule) if d.0 >= std::time::Duration::from_secs(1) => {
                    crate::domain::calendar::Window::Recurring {
                        schedule: Box::new(schedule),
                        duration_ms: d.ms(),
                        tz,
                    }
                }
                Ok(_) => {
                    errors.push(format!("{at}.duration: must be at least \"1s\""));
                    return None;
                }
                Err(why) => {
                    errors.push(format!("{at}.start: {why}"));
                    return None;
                }
            },
            (None, None, Some(from), Some(until)) => {
                let (from, until) = (date("from", from, errors)?, date("until", until, errors)?);
                if until <= from {
                    errors.push(format!("{at}.until: must be after `from`"));
                    return None;
                }
                crate::domain::calendar::Window::Fixed { from, until }
            }
            _ => {
                errors.push(format!(
                    "{at}: give `start` (a cron schedule) and `duration`, or `from` and `until`"
                ));
                return None;
            }
        };
        Some(Freeze {
            name: self.name.clone(),
            reason: self.reason.clone(),
            window,
            scope: crate::domain::calendar::Scope {
                applications: self.applications.clone(),
                environments: self.environments.clone(),
            },
        })
    }
}

/// `[calendar]`: who may let a release through a freeze or lock, and the daily digest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// The role that may `/release override` a freeze or a lock (reason required).
    #[serde(default = "default_override_role")]
    pub override_role: String,
    /// A cron schedule of the daily digest per channel (tickets waiting, releases running).
    #[serde(default)]
    pub digest: Option<String>,
    /// The timezone every schedule is read in: `local` (the daemon's `TZ`), `UTC`, `+08:00`.
    #[serde(default, rename = "timezone", deserialize_with = "tz")]
    pub tz: crate::scheduler::Tz,
    /// A release approved before its ticket's planned time waits for it.
    #[serde(default = "yes")]
    pub hold_until_planned: bool,
    /// The release role is reminded this long before a scheduled release starts.
    #[serde(default = "default_release_reminder")]
    pub release_reminder: Span,
    /// How much later **Postpone** moves a scheduled release.
    #[serde(default = "default_postpone")]
    pub postpone: Span,
}

fn yes() -> bool {
    true
}

fn default_release_reminder() -> Span {
    Span::secs(30 * 60)
}

fn default_postpone() -> Span {
    Span::secs(3600)
}

fn tz<'de, D: serde::Deserializer<'de>>(d: D) -> Result<crate::scheduler::Tz, D::Error> {
    let text = String::deserialize(d)?;
    crate::scheduler::Tz::parse(&text).map_err(serde::de::Error::custom)
}

fn default_override_role() -> String {
    "admin".into()
}

impl Default for CalendarConfig {
    fn default() -> Self {
        Self {
            override_role: default_override_role(),
            digest: None,
            tz: crate::scheduler::Tz::Local,
            hold_until_planned: true,
            release_reminder: default_release_reminder(),
            postpone: default_postpone(),
        }
    }
}

/// Deserializes `value` as a `T`; the problem, if any, with its dotted path under `path`.
fn shaped<T: serde::de::DeserializeOwned>(value: &toml::Value, path: &str, out: &mut Vec<String>) {
    if let Err(e) = serde_path_to_error::deserialize::<_, T>(value.clone()) {
        let inner = e.path().to_string();
        let at = match (path.is_empty(), inner.as_str()) {
            (_, ".") => path.to_string(),
            (true, inner) => inner.to_string(),
            (false, inner) if inner.starts_with('[') => format!("{path}{inner}"),
            (false, inner) => format!("{path}.{inner}"),
        };
        out.push(format!("{at}: {}", humane(&e.into_inner().to_string())));
    }
}

/// Each entry of a table (`roles.*`) or array (`applications[*]`) on its own.
fn shaped_each<T: serde::de::DeserializeOwned>(value: &toml::Value, path: &str, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(t) => t.iter().for_each(|(k, v)| shaped::<T>(v, &format!("{path}.{k}"), out)),
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| shaped::<T>(v, &format!("{path}[{i}]"), out)),
        _ => shaped::<BTreeMap<String, T>>(value, path, out),
    }
}

/// A table whose `list` (stages, steps) is checked item by item, the rest as a `T`.
fn shaped_with_list<T: serde::de::DeserializeOwned, I: serde::de::DeserializeOwned>(
    value: &toml::Value,
    path: &str,
    list: &str,
    out: &mut Vec<String>,
) {
    let toml::Value::Table(t) = value else {
        return shaped::<T>(value, path, out);
    };
    let mut rest = t.clone();
    if let Some(items) = rest.insert(list.to_string(), toml::Value::Array(vec![])) {
        shaped_each::<I>(&items, &format!("{path}.{list}"), out);
    }
    shaped::<T>(&toml::Value::Table(rest), path, out);
}

/// Every problem of a configuration file's shape (unknown keys, wrong types, values out of
/// range), each with its dotted path.
fn shape_problems(table: &toml::Table) -> Vec<String> {
    const KEYS: [&str; 12] = [
        "default_service",
        "roles",
        "applications",
        "services",
        "flows",
        "plans",
        "executor",
        "runtime",
        "sim",
        "swimlanes",
        "freezes",
        "calendar",
    ];
    let mut out = Vec::new();
    for (key, v) in table {
        match key.as_str() {
            "default_service" => shaped::<String>(v, key, &mut out),
            "roles" => shaped_each::<RoleConfig>(v, key, &mut out),
            "applications" => shaped_each::<ApplicationConfig>(v, key, &mut out),
            "services" => shaped_each::<ServiceConfig>(v, key, &mut out),
            "flows" => match v {
                toml::Value::Table(flows) => {
                    for (id, f) in flows {
                        shaped_with_list::<RawFlow, crate::domain::Stage>(
                            f,
                            &format!("flows.{id}"),
                            "stages",
                            &mut out,
                        );
                    }
                }
                _ => shaped::<BTreeMap<String, RawFlow>>(v, key, &mut out),
            },
            "plans" => match v {
                toml::Value::Table(plans) => {
                    for (id, p) in plans {
                        shaped_with_list::<crate::domain::plan::Plan, crate::domain::plan::StepDef>(
                            p,
                            &format!("plans.{id}"),
                            "steps",
                            &mut out,
                        );
                    }
                }
                _ => shaped::<BTreeMap<String, crate::domain::plan::Plan>>(v, key, &mut out),
            },
            "executor" => shaped::<ExecutorConfig>(v, key, &mut out),
            "runtime" => shaped::<RuntimeConfig>(v, key, &mut out),
            "sim" => shaped::<crate::executor::providers::SimConfig>(v, key, &mut out),
            "swimlanes" => shaped_with_list::<SwimlaneConfig, HookConfig>(v, key, "hooks", &mut out),
            "freezes" => shaped_each::<FreezeConfig>(v, key, &mut out),
            "calendar" => shaped::<CalendarConfig>(v, key, &mut out),
            other => out.push(format!("{other}: unknown key (expected one of {})", KEYS.join(", "))),
        }
    }
    out
}

/// A deserializer's message in the words of the configuration, not of Rust's types.
fn humane(message: &str) -> String {
    // The path is given already: the parser's own "in `key`" line goes.
    let mut m = message.lines().next().unwrap_or_default().trim_end().to_string();
    for (rust, words) in [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a string", "expected text in quotes"),
        ("unknown field", "unknown key"),
    ] {
        m = m.replace(rust, words);
    }
    // `expected struct Thresholds`, `expected enum FailurePolicy`: name the shape instead.
    for (marker, words) in [
        ("expected struct ", "expected a table"),
        ("expected enum ", "expected one of the documented values"),
    ] {
        if let Some(i) = m.find(marker) {
            let end = m[i + marker.len()..]
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .map(|e| i + marker.len() + e)
                .unwrap_or(m.len());
            m.replace_range(i..end, words);
        }
    }
    m
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    roles: BTreeMap<String, RoleConfig>,
    #[serde(default)]
    services: BTreeMap<String, ServiceConfig>,
    #[serde(default)]
    flows: BTreeMap<String, RawFlow>,
    #[serde(default)]
    applications: Vec<ApplicationConfig>,
    #[serde(default)]
    default_service: Option<String>,
    #[serde(default)]
    plans: BTreeMap<String, crate::domain::plan::Plan>,
    #[serde(default)]
    sim: crate::executor::providers::SimConfig,
    #[serde(default)]
    executor: ExecutorConfig,
    #[serde(default)]
    runtime: RuntimeConfig,
    #[serde(default)]
    swimlanes: SwimlaneConfig,
    #[serde(default)]
    freezes: Vec<FreezeConfig>,
    #[serde(default)]
    calendar: CalendarConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    name: String,
    #[serde(default)]
    separation_of_duties: bool,
    #[serde(default)]
    stages: Vec<crate::domain::Stage>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub roles: BTreeMap<String, RoleConfig>,
    /// Members seeded from the file, by role.
    pub role_members: BTreeMap<String, Vec<Actor>>,
    pub services: BTreeMap<String, ServiceConfig>,
    pub flows: BTreeMap<String, Flow>,
    pub applications: Vec<String>,
    /// Release windows by application (only applications that declare some).
    pub release_windows: BTreeMap<String, Vec<crate::domain::calendar::Window>>,
    /// Every environment of the registered applications; `["prod"]` when none are named.
    pub environments: Vec<String>,
    pub default_service: String,
    pub plans: BTreeMap<String, crate::domain::plan::Plan>,
    /// The simulated fleet of the `sim` provider.
    pub sim: crate::executor::providers::SimConfig,
    pub executor: ExecutorConfig,
    pub runtime: RuntimeConfig,
    pub swimlanes: SwimlaneConfig,
    /// Configured freezes (`[[freezes]]`).
    pub freezes: Vec<Freeze>,
    pub calendar: CalendarConfig,
}

/// Every problem found in a configuration, each with its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl Config {
    pub fn builtin() -> Self {
        Self::builtin_for("en")
    }

    /// The built-in configuration, its names in `locale`.
    pub fn builtin_for(locale: &str) -> Self {
        match Self::parse_for(DEFAULT_CONFIG, locale) {
            Ok(c) => c,
            // The built-in file is covered by a unit test; this cannot happen in a released build.
            Err(e) => panic!("built-in configuration is invalid: {e}"),
        }
    }

    /// Loads the file named by the settings, or the built-in defaults.
    pub fn load(path: Option<&std::path::Path>, locale: &str) -> anyhow::Result<Self> {
        match path {
            None => Ok(Self::builtin_for(locale)),
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                Self::parse_for(&text, locale)
                    .map_err(|e| anyhow::anyhow!("{}: {} problem(s)\n{e}", p.display(), e.0.len()))
            }
        }
    }

    /// Parses a configuration with its names in English.
    pub fn parse(text: &str) -> Result<Self, ConfigErrors> {
        Self::parse_for(text, "en")
    }

    /// Parses a configuration; a name given per locale (`name = { en = "App release",
    /// zh-CN = "应用发布" }`) is taken in `locale` (English, or the first given, when it
    /// lacks that one).
    pub fn parse_for(text: &str, locale: &str) -> Result<Self, ConfigErrors> {
        // A file that is not TOML has one problem, at a line and column; one that is
        // TOML but not a configuration has every problem named by its dotted path.
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigErrors(vec![e.to_string().trim_end().to_string()]))?;
        localize(&mut table, locale);
        let raw: RawConfig = match RawConfig::deserialize(toml::Value::Table(table.clone())) {
            Ok(raw) => raw,
            Err(e) => {
                let mut problems = shape_problems(&table);
                if problems.is_empty() {
                    problems.push(humane(&e.to_string()));
                }
                return Err(ConfigErrors(problems));
            }
        };
        let mut errors = Vec::new();
        let mut role_members = BTreeMap::new();
        for (name, role) in &raw.roles {
            if !valid_name(name) {
                errors.push(format!(
                    "roles.{name}: role names use lowercase letters, digits, '-' and '_'"
                ));
            }
            let mut members = Vec::new();
            for (i, m) in role.members.iter().enumerate() {
                match Actor::member(m) {
                    Ok(a) => members.push(a),
                    Err(why) => errors.push(format!("roles.{name}.members[{i}]: {why}")),
                }
            }
            role_members.insert(name.clone(), members);
        }
        if !raw.roles.contains_key("admin") {
            errors.push("roles: the \"admin\" role is required".to_string());
        }
        let mut flows = BTreeMap::new();
        for (id, rf) in &raw.flows {
            let path = format!("flows.{id}");
            if !valid_name(id) {
                errors.push(format!("{path}: flow ids use lowercase letters, digits, '-' and '_'"));
            }
            if rf.stages.is_empty() {
                errors.push(format!(
                    "{path}.stages: a flow needs at least one stage (the submission)"
                ));
            }
            let mut seen = BTreeSet::new();
            for (i, st) in rf.stages.iter().enumerate() {
                let sp = format!("{path}.stages[{i}]");
                if !valid_name(&st.id) {
                    errors.push(format!(
                        "{sp}.id: \"{}\" must use lowercase letters, digits, '-' and '_'",
                        st.id
                    ));
                }
                if !seen.insert(st.id.clone()) {
                    errors.push(format!("{sp}.id: duplicate stage id \"{}\"", st.id));
                }
                if !raw.roles.contains_key(&st.role) {
                    errors.push(format!("{sp}.role: unknown role \"{}\"", st.role));
                }
                if let Some(sla) = st.sla {
                    if sla.0 < std::time::Duration::from_secs(1) {
                        errors.push(format!("{sp}.sla: must be at least \"1s\""));
                    }
                    if i == 0 {
                        errors.push(format!("{sp}.sla: the submission stage waits for nobody"));
                    }
                }
                if let Some(r) = &st.escalate_to {
                    if !raw.roles.contains_key(r) {
                        errors.push(format!("{sp}.escalate_to: unknown role \"{r}\""));
                    } else if st.sla.is_none() {
                        errors.push(format!(
                            "{sp}.escalate_to: needs an `sla` (escalation follows its reminders)"
                        ));
                    }
                }
                if st.escalate_after == 0 {
                    errors.push(format!("{sp}.escalate_after: must be at least 1"));
                }
                if st.approvals_required == 0 {
                    errors.push(format!("{sp}.approvals_required: must be at least 1"));
                }
                match &st.channel {
                    Some(crate::domain::flow::StageChannel::PerPlatform(m)) => {
                        for (p, c) in m {
                            if !PLATFORMS.contains(&p.as_str()) {
                                errors.push(format!(
                                    "{sp}.channel.{p}: unknown platform (expected one of {})",
                                    PLATFORMS.join(", ")
                                ));
                            } else if c.trim().is_empty() {
                                errors.push(format!("{sp}.channel.{p}: must not be empty (leave it out to post in the ticket's channel)"));
                            }
                        }
                    }
                    Some(crate::domain::flow::StageChannel::All(c)) if c.trim().is_empty() => {
                        errors.push(format!(
                            "{sp}.channel: must not be empty (leave it out to post in the ticket's channel)"
                        ));
                    }
                    _ => {}
                }
                if st.starts_execution && i == 0 {
                    errors.push(format!(
                        "{sp}.starts_execution: the submission stage cannot start the release (an approval stage does)"
                    ));
                } else if st.starts_execution && rf.stages[..i].iter().any(|s| s.starts_execution) {
                    errors.push(format!(
                        "{sp}.starts_execution: only one stage starts the release (an earlier one does already)"
                    ));
                }
                if i == 0 && st.approvals_required != 1 {
                    errors.push(format!("{sp}.approvals_required: the submission stage is not approved"));
                }
                if let RejectTarget::Stage(target) = &st.on_reject {
                    match rf.stages.iter().position(|s| &s.id == target) {
                        None => errors.push(format!("{sp}.on_reject: unknown stage \"{target}\"")),
                        Some(t) if t >= i => errors.push(format!(
                            "{sp}.on_reject: stage \"{target}\" is not earlier than this one"
                        )),
                        Some(_) => {}
                    }
                }
                let mut field_ids = BTreeSet::new();
                for (j, f) in st.fields.iter().enumerate() {
                    let fp = format!("{sp}.fields[{j}]");
                    if !valid_name(&f.id) {
                        errors.push(format!(
                            "{fp}.id: \"{}\" must use lowercase letters, digits, '-' and '_'",
                            f.id
                        ));
                    }
                    if !field_ids.insert(f.id.clone()) {
                        errors.push(format!("{fp}.id: duplicate field id \"{}\"", f.id));
                    }
                    if f.label.trim().is_empty() {
                        errors.push(format!("{fp}.label: must not be empty"));
                    }
                    match (f.kind, f.options.is_empty()) {
                        (FieldKind::Select, true) => errors.push(format!("{fp}.options: a select field needs options")),
                        (FieldKind::Select, false) => {
                            let mut options = BTreeSet::new();
                            for (k, o) in f.options.iter().enumerate() {
                                if o.trim().is_empty() {
                                    errors.push(format!("{fp}.options[{k}]: must not be empty"));
                                } else if !options.insert(o.trim()) {
                                    errors.push(format!("{fp}.options[{k}]: duplicate option \"{o}\""));
                                }
                            }
                        }
                        (_, false) => errors.push(format!("{fp}.options: only select fields have options")),
                        (_, true) => {}
                    }
                }
            }
            let mut flow = Flow {
                id: id.clone(),
                name: rf.name.clone(),
                separation_of_duties: rf.separation_of_duties,
                stages: rf.stages.clone(),
            };
            flow.id = id.clone();
            flows.insert(id.clone(), flow);
        }
        let role_names: BTreeSet<String> = raw.roles.keys().cloned().collect();
        let mut plans = BTreeMap::new();
        for (id, plan) in &raw.plans {
            if !valid_name(id) {
                errors.push(format!(
                    "plans.{id}: plan ids use lowercase letters, digits, '-' and '_'"
                ));
            }
            let mut plan = plan.clone();
            plan.id = id.clone();
            errors.extend(plan.problems(&format!("plans.{id}"), &role_names));
            plans.insert(id.clone(), plan);
        }
        for (id, s) in &raw.services {
            if !valid_name(id) {
                errors.push(format!(
                    "services.{id}: service ids use lowercase letters, digits, '-' and '_'"
                ));
            }
            if !raw.flows.contains_key(&s.flow) {
                errors.push(format!("services.{id}.flow: unknown flow \"{}\"", s.flow));
            }
            if let Some(p) = s.plan.as_ref().filter(|p| !raw.plans.contains_key(*p)) {
                errors.push(format!("services.{id}.plan: unknown plan \"{p}\""));
            }
        }
        let default_service = match &raw.default_service {
            Some(s) => {
                if !raw.services.contains_key(s) {
                    errors.push(format!("default_service: unknown service \"{s}\""));
                }
                s.clone()
            }
            None => match raw.services.keys().next() {
                Some(s) => s.clone(),
                None => {
                    errors.push("services: at least one service is required".to_string());
                    String::new()
                }
            },
        };
        let mut applications = Vec::new();
        for (i, a) in raw.applications.iter().enumerate() {
            if a.name.trim().is_empty() {
                errors.push(format!("applications[{i}].name: must not be empty"));
            } else if applications.contains(&a.name) {
                errors.push(format!("applications[{i}].name: duplicate application \"{}\"", a.name));
            } else {
                applications.push(a.name.clone());
            }
        }
        let mut release_windows = BTreeMap::new();
        for (i, a) in raw.applications.iter().enumerate() {
            let mut windows = Vec::new();
            for (k, w) in a.release_windows.iter().enumerate() {
                let at = format!("applications[{i}].release_windows[{k}]");
                match crate::scheduler::parse_schedule(&w.start) {
                    Ok(_) if w.duration.0 < std::time::Duration::from_secs(60) => {
                        errors.push(format!("{at}.duration: must be at least \"1m\""))
                    }
                    Ok(schedule) => windows.push(crate::domain::calendar::Window::Recurring {
                        schedule: Box::new(schedule),
                        duration_ms: w.duration.ms(),
                        tz: raw.calendar.tz,
                    }),
                    Err(why) => errors.push(format!("{at}.start: {why}")),
                }
            }
            if !windows.is_empty() {
                release_windows.insert(a.name.clone(), windows);
            }
        }
        let mut environments: Vec<String> = Vec::new();
        for (i, a) in raw.applications.iter().enumerate() {
            for (k, e) in a.environments.iter().enumerate() {
                if !valid_name(e) {
                    errors.push(format!(
                        "applications[{i}].environments[{k}]: \"{e}\" must use lowercase letters, digits, '-' and '_'"
                    ));
                } else if !environments.contains(e) {
                    environments.push(e.clone());
                }
            }
        }
        if environments.is_empty() {
            environments.push("prod".to_string());
        }
        if raw.executor.concurrency == 0 {
            errors.push("executor.concurrency: must be at least 1".to_string());
        }
        if raw.runtime.retention.0 < std::time::Duration::from_secs(3600) {
            errors.push("runtime.retention: keep handled events at least \"1h\"".to_string());
        }
        errors.extend(raw.swimlanes.problems());
        let freezes: Vec<Freeze> = raw
            .freezes
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.checked(&format!("freezes[{i}]"), raw.calendar.tz, &mut errors))
            .collect();
        for (i, f) in raw.freezes.iter().enumerate() {
            for (k, a) in f.applications.iter().enumerate() {
                if !applications.is_empty() && !applications.contains(a) {
                    errors.push(format!("freezes[{i}].applications[{k}]: unknown application \"{a}\""));
                }
            }
            for (k, e) in f.environments.iter().enumerate() {
                if !environments.contains(e) {
                    errors.push(format!(
                        "freezes[{i}].environments[{k}]: unknown environment \"{e}\" (known: {})",
                        environments.join(", ")
                    ));
                }
            }
        }
        if let Some(Err(why)) = raw.calendar.digest.as_deref().map(crate::scheduler::parse_schedule) {
            errors.push(format!("calendar.digest: {why}"));
        }
        if !raw.roles.contains_key(&raw.calendar.override_role) {
            errors.push(format!(
                "calendar.override_role: unknown role \"{}\"",
                raw.calendar.override_role
            ));
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Config {
            roles: raw.roles,
            role_members,
            services: raw.services,
            flows,
            applications,
            release_windows,
            environments,
            default_service,
            plans,
            sim: raw.sim,
            executor: raw.executor,
            runtime: raw.runtime,
            swimlanes: raw.swimlanes,
            freezes,
            calendar: raw.calendar,
        })
    }

    /// The cron jobs of the configuration: (job, schedule).
    pub fn cron_jobs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(s) = &self.swimlanes.expiring_list {
            out.push((crate::bot::swimlanes::EXPIRING_JOB.to_string(), s.clone()));
        }
        if let Some(s) = &self.calendar.digest {
            out.push((crate::bot::digest::JOB.to_string(), s.clone()));
        }
        out
    }

    /// The display name of a service (its id when it is no longer configured).
    pub fn service_name(&self, service: &str) -> String {
        self.services
            .get(service)
            .map(|s| s.name.clone())
            .unwrap_or_else(|| service.to_string())
    }

    /// The release plan a service runs, if it has one.
    pub fn plan_of_service(&self, service: &str) -> Option<&crate::domain::plan::Plan> {
        self.plans.get(self.services.get(service)?.plan.as_ref()?)
    }

    pub fn flow_of_service(&self, service: &str) -> Option<(&ServiceConfig, &Flow)> {
        let s = self.services.get(service)?;
        Some((s, self.flows.get(&s.flow)?))
    }

    /// Finds a service by id or by name, case-insensitively.
    pub fn find_service(&self, query: &str) -> Option<&str> {
        let q = query.trim();
        self.services
            .iter()
            .find(|(id, s)| id.eq_ignore_ascii_case(q) || s.name.eq_ignore_ascii_case(q))
            .map(|(id, _)| id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_config_is_the_seed_flow() {
        let c = Config::builtin();
        let (service, flow) = c.flow_of_service("app-release").unwrap();
        assert_eq!(service.name, "App release");
        let roles: Vec<&str> = flow.stages.iter().map(|s| s.role.as_str()).collect();
        assert_eq!(roles, ["product", "test", "ops", "ops", "qc"]);
        assert_eq!(c.find_service("app release"), Some("app-release"));
        let canary = c.plan_of_service("app-release").unwrap();
        let weights: Vec<u8> = canary.steps.iter().filter_map(|s| s.weight).collect();
        assert_eq!(weights, [10, 50, 100], "the seed's 10% → 50% → 100%");
        assert_eq!(
            canary.expected_secs(),
            30 * 60 + 15 * 60 + 30 + 300 + 60 + 180 + 90 + 60 + 1
        );
        assert_eq!(c.plans.len(), 3);
    }

    #[test]
    fn swimlane_policy_schedules_and_hooks_are_checked_with_their_paths() {
        let text =
            format!("{DEFAULT_CONFIG}\n[swimlanes]\nidle = \"6 days\"\n[[swimlanes.hooks]]\nprovider = \"ftp\"\n");
        let err = Config::parse(&text).unwrap_err();
        assert!(
            err.0[0].starts_with("swimlanes.hooks[0].provider: unknown variant `ftp`"),
            "{err}"
        );
        assert!(
            err.0[1].starts_with("swimlanes.idle: \"6 days\" is not a duration"),
            "{err}"
        );
        let text = format!(
            "{DEFAULT_CONFIG}\n[swimlanes]\nidle = \"90s\"\ngrace = \"0s\"\nnamespace = \"team\"\nexpiring_list = \"0 9 * * *\"\n\
             [[swimlanes.hooks]]\nprovider = \"script\"\n[[swimlanes.hooks]]\nprovider = \"http\"\nurl = \"ftp://x\"\n"
        );
        let err = Config::parse(&text).unwrap_err();
        assert_eq!(
            err.0,
            vec![
                "swimlanes.grace: must be at least \"1s\"",
                "swimlanes.namespace: must contain {lane} (each lane has its own namespace)",
                "swimlanes.expiring_list: \"0 9 * * *\" has 5 fields; a schedule has 6 (seconds minutes hours day-of-month month day-of-week), e.g. \"0 0 10 * * Mon-Fri\"",
                "swimlanes.hooks[0]: a script hook needs `create`, `delete` or both",
                "swimlanes.hooks[1].url: \"ftp://x\" is not an http(s) URL",
            ]
        );
        let ok = Config::parse(&format!(
            "{DEFAULT_CONFIG}\n[swimlanes]\nidle = \"2m\"\ngrace = \"1m\"\nexpiring_list = \"0 0 9 * * Mon-Fri\"\n[[swimlanes.hooks]]\nprovider = \"kubernetes\"\n"
        ))
        .unwrap();
        assert_eq!(ok.swimlanes.policy().idle_ms, 120_000);
        assert_eq!(
            ok.cron_jobs(),
            vec![("cron:swimlanes.expiring".to_string(), "0 0 9 * * Mon-Fri".to_string())]
        );
    }

    #[test]
    fn freezes_and_the_calendar_are_checked_with_their_paths() {
        let text = format!(
            "{DEFAULT_CONFIG}\n[calendar]\ndigest = \"0 10 * * *\"\noverride_role = \"boss\"\n\
             [[freezes]]\nname = \"a\"\nstart = \"0 0 18 * * Fri\"\n\
             [[freezes]]\nname = \"b\"\nfrom = \"soon\"\nuntil = \"2026-12-24 00:00\"\nenvironments = [\"staging\"]\n"
        );
        let err = Config::parse(&text).unwrap_err();
        assert_eq!(
            err.0,
            vec![
                "freezes[0]: give `start` (a cron schedule) and `duration`, or `from` and `until`",
                "freezes[1].from: \"soon\" is not a date and time (write \"2026-12-24 00:00\", UTC)",
                "freezes[1].environments[0]: unknown environment \"staging\" (known: prod)",
                "calendar.digest: \"0 10 * * *\" has 5 fields; a schedule has 6 (seconds minutes hours day-of-month month day-of-week), e.g. \"0 0 10 * * Mon-Fri\"",
                "calendar.override_role: unknown role \"boss\"",
            ]
        );
        let err = Config::parse(&format!("{DEFAULT_CONFIG}\n[calendar]\ntimezone = \"Mars\"\n")).unwrap_err();
        assert!(
            err.0[0].starts_with("calendar.timezone: \"Mars\" is not a timezone"),
            "{err}"
        );
    }

    #[test]
    fn every_shape_problem_is_reported_at_once_in_the_configurations_words() {
        let text = r#"
[roles.qc]
membres = []

[plans.p]
name = "P"
template = "CUSTOM"
steps = [
  { id = "a", name = "A", type = "DEPLOI" },
  { id = "b", name = "B", type = "TRAFFIC_SHIFT", weight = 300 },
  { id = "c", name = "C", type = "MONITOR", duration_secs = 60, thresholds = "high" },
]

[executor]
concurrency = "many"

[bogus]
x = 1
"#;
        let err = Config::parse(text).unwrap_err();
        assert_eq!(
            err.0,
            vec![
                "bogus: unknown key (expected one of default_service, roles, applications, services, flows, plans, executor, runtime, sim, swimlanes, freezes, calendar)",
                "executor.concurrency: invalid type: string \"many\", expected a whole number, 0 or more",
                "plans.p.steps[0].type: unknown variant `DEPLOI`, expected one of `VERIFY_PACKAGE`, `DEPLOY`, `HEALTH_CHECK`, `TEST`, `TRAFFIC_SHIFT`, `MONITOR`, `APPROVAL_GATE`, `SCRIPT`, `NOTIFY`, `ROLLBACK`",
                "plans.p.steps[1].weight: invalid value: integer `300`, expected a whole number from 0 to 255",
                "plans.p.steps[2].thresholds: invalid type: string \"high\", expected a table",
                "roles.qc.membres: unknown key `membres`, expected `description` or `members`",
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let text = DEFAULT_CONFIG.replace(
            "role = \"ops\"\non_reject = \"submitter\"\n\n[[flows.app-release.stages]]\nid = \"release\"",
            "role = \"opz\"\non_reject = \"submitter\"\n\n[[flows.app-release.stages]]\nid = \"release\"",
        )
            + "\n[roles.bad]\nmembers = [\"U123\", \"irc:x\", \"slack:U9X><!channel>\", \"discord:bob\"]\n[services.other]\nname = \"x\"\nflow = \"nope\"\n";
        let err = Config::parse(&text).unwrap_err();
        assert_eq!(
            err.0,
            vec![
                "roles.bad.members[0]: \"U123\" is not of the form platform:user-id (slack:U0123ABCD)".to_string(),
                "roles.bad.members[1]: unknown platform \"irc\" (expected one of slack, discord, dingtalk, local)".to_string(),
                "roles.bad.members[2]: \"slack:U9X><!channel>\": a Slack user id starts with U or W and has only capital letters and digits (U0123ABCD)".to_string(),
                "roles.bad.members[3]: \"discord:bob\": a Discord user id is a number (its snowflake, e.g. 80351110224678912)".to_string(),
                "flows.app-release.stages[2].role: unknown role \"opz\"".to_string(),
                "services.other.flow: unknown flow \"nope\"".to_string(),
            ]
        );
    }

    #[test]
    fn unknown_keys_and_bad_references_are_refused() {
        let err = Config::parse("[roles.admin]\ncolour = \"red\"\n").unwrap_err();
        assert_eq!(
            err.0,
            ["roles.admin.colour: unknown key `colour`, expected `description` or `members`"]
        );
        let text = r#"
[roles.admin]
[roles.ops]
[services.s]
name = "S"
flow = "f"
[flows.f]
name = "F"
[[flows.f.stages]]
id = "submit"
role = "ops"
name = "Submit"
fields = [{ id = "x", label = "X", kind = "select" }, { id = "x", label = "", kind = "md5", options = ["a"] }, { id = "y", label = "Y", kind = "select", options = ["a", "", "a"] }]
starts_execution = true
[[flows.f.stages]]
id = "a"
name = "A"
role = "ops"
approvals_required = 0
on_reject = { stage = "b" }
channel = ""
starts_execution = true
[[flows.f.stages]]
id = "b"
name = "B"
role = "ops"
channel = { slack = "C0OPS", irc = "ops", discord = " " }
"#;
        let err = Config::parse(text).unwrap_err();
        assert_eq!(
            err.0,
            vec![
                "flows.f.stages[0].starts_execution: the submission stage cannot start the release (an approval stage does)".to_string(),
                "flows.f.stages[0].fields[0].options: a select field needs options".to_string(),
                "flows.f.stages[0].fields[1].id: duplicate field id \"x\"".to_string(),
                "flows.f.stages[0].fields[1].label: must not be empty".to_string(),
                "flows.f.stages[0].fields[1].options: only select fields have options".to_string(),
                "flows.f.stages[0].fields[2].options[1]: must not be empty".to_string(),
                "flows.f.stages[0].fields[2].options[2]: duplicate option \"a\"".to_string(),
                "flows.f.stages[1].approvals_required: must be at least 1".to_string(),
                "flows.f.stages[1].channel: must not be empty (leave it out to post in the ticket's channel)".to_string(),
                "flows.f.stages[1].starts_execution: only one stage starts the release (an earlier one does already)".to_string(),
                "flows.f.stages[1].on_reject: stage \"b\" is not earlier than this one".to_string(),
                "flows.f.stages[2].channel.discord: must not be empty (leave it out to post in the ticket's channel)".to_string(),
                "flows.f.stages[2].channel.irc: unknown platform (expected one of slack, discord, dingtalk, local)"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn a_stage_channel_is_one_for_all_or_one_per_platform() {
        use crate::domain::flow::StageChannel;
        let one: StageChannel = toml::from_str::<toml::Value>("c = \"C0OPS\"").unwrap()["c"]
            .clone()
            .try_into()
            .unwrap();
        assert_eq!((one.on("slack"), one.on("discord")), (Some("C0OPS"), Some("C0OPS")));
        let per: StageChannel = toml::from_str::<toml::Value>("c = { slack = \"C0OPS\", dingtalk = \"cid1\" }")
            .unwrap()["c"]
            .clone()
            .try_into()
            .unwrap();
        assert_eq!(
            (per.on("slack"), per.on("dingtalk"), per.on("discord")),
            (Some("C0OPS"), Some("cid1"), None)
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let s = Secret::new("xoxb-very-secret");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
    }
}

//! Settings: the command line and the environment (`RELEASEBOT_*`), secrets redacted.

use super::*;

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

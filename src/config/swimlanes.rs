//! `[swimlanes]`: the lifecycle of feature environments, their naming and hooks.

use super::*;

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

pub(super) fn default_idle() -> Span {
    Span::secs(6 * 86_400)
}
pub(super) fn default_grace() -> Span {
    Span::secs(86_400)
}
pub(super) fn default_namespace() -> String {
    "{lane}".into()
}
pub(super) fn default_branch() -> String {
    "feature/{lane}".into()
}
pub(super) fn default_internal_domain() -> String {
    "{app}.{lane}".into()
}
pub(super) fn default_hook_retries() -> u32 {
    3
}
pub(super) fn default_hook_backoff() -> Span {
    Span::secs(30)
}
pub(super) fn default_hook_timeout() -> Span {
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
    pub(super) fn problems(&self) -> Vec<String> {
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
            if let Err(why) = crate::domain::schedule::parse_schedule(s) {
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

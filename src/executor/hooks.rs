//! A swimlane's provisioning and deletion hooks: the executor's `script` and `http`
//! providers, and a native `kubernetes` provider that creates and deletes the lane's
//! namespace. Every hook is idempotent (run again after a crash or a failure, it does
//! what is left): a namespace that exists already is created, one that is gone is deleted.

use crate::config::HookConfig;
use crate::domain::swimlane::{Derived, Lane};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Create,
    Delete,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Create => "create",
            Event::Delete => "delete",
        }
    }
}

/// A hook that failed: which one, why, and the last lines it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookFailure {
    pub hook: String,
    pub error: String,
    pub log: Vec<String>,
}

/// What the hooks are told about a lane.
pub struct Subject<'a> {
    pub lane: &'a Lane,
    pub derived: &'a Derived,
    /// When it is deleted unless renewed (ms).
    pub expires_at: Option<i64>,
}

/// Runs every hook for `event`: in order at creation, in reverse order at deletion,
/// stopping at the first failure. Returns what they printed.
pub async fn run(
    hooks: &[HookConfig],
    event: Event,
    s: &Subject<'_>,
    timeout: Duration,
) -> Result<Vec<String>, HookFailure> {
    let ordered: Vec<&HookConfig> = match event {
        Event::Create => hooks.iter().collect(),
        Event::Delete => hooks.iter().rev().collect(),
    };
    let mut log = Vec::new();
    for h in ordered {
        let result = match h {
            HookConfig::Script { create, delete } => {
                let command = match event {
                    Event::Create => create,
                    Event::Delete => delete,
                };
                match command {
                    Some(c) => super::providers::run_command(c, env(event, s), timeout).await,
                    None => Ok(vec![]),
                }
            }
            HookConfig::Http { url } => http(url, event, s).await.map_err(|e| (e, vec![])),
            HookConfig::Kubernetes { api_url, token_env } => {
                kubernetes(api_url.as_deref(), token_env.as_deref(), event, s)
                    .await
                    .map(|line| vec![line])
                    .map_err(|e| (e, vec![]))
            }
        };
        match result {
            Ok(lines) => log.extend(lines),
            Err((error, lines)) => {
                return Err(HookFailure {
                    hook: h.name().to_string(),
                    error,
                    log: lines,
                })
            }
        }
    }
    Ok(log)
}

/// A script's environment: the lane and what is derived from it (nothing of the daemon's).
pub fn env(event: Event, s: &Subject<'_>) -> Vec<(String, String)> {
    let l = s.lane;
    let domains = |d: &[(String, String)]| d.iter().map(|(_, x)| x.as_str()).collect::<Vec<_>>().join(",");
    vec![
        ("RELEASEBOT_LANE_EVENT".into(), event.as_str().into()),
        ("RELEASEBOT_LANE".into(), l.name.clone()),
        ("RELEASEBOT_LANE_NAMESPACE".into(), s.derived.namespace.clone()),
        ("RELEASEBOT_LANE_BRANCH".into(), s.derived.branch.clone()),
        ("RELEASEBOT_LANE_APPS".into(), l.apps.join(",")),
        ("RELEASEBOT_LANE_OWNER".into(), l.owner.to_string()),
        ("RELEASEBOT_LANE_INTERNAL_DOMAINS".into(), domains(&s.derived.internal)),
        ("RELEASEBOT_LANE_EXTERNAL_DOMAINS".into(), domains(&s.derived.external)),
        (
            "RELEASEBOT_LANE_EXPIRES_AT".into(),
            s.expires_at.map(|t| (t / 1000).to_string()).unwrap_or_default(),
        ),
    ]
}

async fn http(url: &str, event: Event, s: &Subject<'_>) -> Result<Vec<String>, String> {
    let l = s.lane;
    let body = serde_json::json!({
        "event": event.as_str(), "lane": l.name, "namespace": s.derived.namespace, "branch": s.derived.branch,
        "apps": l.apps, "owner": l.owner.to_string(), "internal_domains": s.derived.internal,
        "external_domains": s.derived.external, "expires_at": s.expires_at.map(|t| t / 1000),
    });
    let res = super::net::client()
        .post(url)
        .header("Idempotency-Key", format!("lane-{}-{}", l.id, event.as_str()))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    if res.status().is_success() {
        Ok(vec![format!("POST {url}: {}", res.status().as_u16())])
    } else {
        Err(format!("POST {url} answered {}", res.status().as_u16()))
    }
}

/// A label value Kubernetes accepts: letters, digits, `-`, `_`, `.`, at most 63, starting
/// and ending with a letter or digit.
fn label_value(s: &str) -> String {
    let v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '.'
            }
        })
        .take(63)
        .collect();
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

async fn kubernetes(
    api_url: Option<&str>,
    token_env: Option<&str>,
    event: Event,
    s: &Subject<'_>,
) -> Result<String, String> {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
    let client = super::kubernetes::client(api_url, token_env).await?;
    let api: Api<Namespace> = Api::all(client);
    let name = s.derived.namespace.clone();
    let status = |e: &kube::Error| match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    };
    match event {
        Event::Create => {
            let mut labels = BTreeMap::new();
            labels.insert("app.kubernetes.io/managed-by".to_string(), "releasebot".to_string());
            labels.insert("releasebot.io/swimlane".to_string(), label_value(&s.lane.name));
            labels.insert(
                "releasebot.io/owner".to_string(),
                label_value(&s.lane.owner.to_string()),
            );
            if let Some(t) = s.expires_at {
                labels.insert("releasebot.io/expires".to_string(), (t / 1000).to_string());
            }
            let mut annotations = BTreeMap::new();
            annotations.insert("releasebot.io/owner".to_string(), s.lane.owner.to_string());
            annotations.insert("releasebot.io/apps".to_string(), s.lane.apps.join(","));
            let ns = Namespace {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(labels),
                    annotations: Some(annotations),
                    ..Default::default()
                },
                ..Default::default()
            };
            match api.create(&PostParams::default(), &ns).await {
                Ok(_) => Ok(format!("namespace {name} created")),
                Err(e) if status(&e) == Some(409) => Ok(format!("namespace {name} exists already")),
                Err(e) => Err(format!("creating namespace {name}: {e}")),
            }
        }
        Event::Delete => match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(format!("namespace {name} deleted")),
            Err(e) if status(&e) == Some(404) => Ok(format!("namespace {name} was gone already")),
            Err(e) => Err(format!("deleting namespace {name}: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_what_kubernetes_accepts() {
        assert_eq!(super::label_value("slack:U123"), "slack.U123");
        assert_eq!(super::label_value("-x-"), "x");
    }
}

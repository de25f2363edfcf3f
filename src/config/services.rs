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
    /// Where it runs on Kubernetes (`[applications.kubernetes]`), with per-environment
    /// differences under `[applications.kubernetes.environments.ENV]`.
    #[serde(default)]
    pub kubernetes: Option<KubeTarget>,
}

/// Where an application runs on Kubernetes: what `kubernetes` and `argo-rollouts` steps
/// leave unsaid comes from here, and `/release scale` and `/release restart` act on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeTarget {
    /// The kubeconfig context (`KUBECONFIG`'s clusters); by default the in-cluster
    /// service account, or the kubeconfig's current context.
    pub context: Option<String>,
    pub api_url: Option<String>,
    /// The variable holding the bearer token for `api_url` (never the token itself).
    pub token_env: Option<String>,
    pub namespace: Option<String>,
    pub deployment: Option<String>,
    /// The Argo Rollout (the `argo-rollouts` provider).
    pub rollout: Option<String>,
    pub container: Option<String>,
    /// What differs in an environment (its own cluster context, namespace…).
    #[serde(default)]
    pub environments: BTreeMap<String, KubeTarget>,
}

impl KubeTarget {
    /// Whether it says `field` (a provider setting's name).
    pub fn has(&self, field: &str) -> bool {
        match field {
            "namespace" => self.namespace.is_some(),
            "deployment" => self.deployment.is_some(),
            "rollout" => self.rollout.is_some(),
            "container" => self.container.is_some(),
            _ => false,
        }
    }

    /// The target in `environment`: its settings over the application's.
    pub fn in_environment(&self, environment: &str) -> KubeTarget {
        let Some(e) = self.environments.get(environment) else {
            return KubeTarget {
                environments: BTreeMap::new(),
                ..self.clone()
            };
        };
        let pick = |a: &Option<String>, b: &Option<String>| a.clone().or_else(|| b.clone());
        KubeTarget {
            context: pick(&e.context, &self.context),
            api_url: pick(&e.api_url, &self.api_url),
            token_env: pick(&e.token_env, &self.token_env),
            namespace: pick(&e.namespace, &self.namespace),
            deployment: pick(&e.deployment, &self.deployment),
            rollout: pick(&e.rollout, &self.rollout),
            container: pick(&e.container, &self.container),
            environments: BTreeMap::new(),
        }
    }
}

//! Reaching the API server (in-cluster, a kubeconfig context, or a URL and a token), what
//! `releasebot check` says about it, and the permissions the providers use.

use crate::domain::plan::Provider;

/// Every permission the provider uses, and no other: (API group, resource, verbs). The
/// Role in `deploy/kubernetes/role.yaml` is [`role_yaml`] of it (a test keeps them equal,
/// and another that every request the provider makes is allowed by it).
pub const RBAC: &[(&str, &str, &[&str])] = &[
    ("apps", "deployments", &["get", "patch", "create", "delete"]),
    ("", "pods", &["list"]),
    ("", "pods/log", &["get"]),
    ("", "services", &["get", "patch"]),
    ("networking.k8s.io", "ingresses", &["patch"]),
    ("gateway.networking.k8s.io", "httproutes", &["get", "patch"]),
    ("argoproj.io", "rollouts", &["get", "patch"]),
    ("argoproj.io", "rollouts/status", &["patch"]),
];

/// The least-privilege Role (and its binding to the `releasebot` ServiceAccount) for a
/// namespace releasebot releases into.
pub fn role_yaml(namespace: &str) -> String {
    let mut out = format!(
        "# The permissions releasebot's kubernetes provider uses in namespace {namespace}, and no\n# others (generated from src/executor/kubernetes/access.rs `RBAC`).\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: releasebot\n  namespace: {namespace}\nrules:\n"
    );
    for (group, resource, verbs) in RBAC {
        out.push_str(&format!(
            "  - apiGroups: [\"{group}\"]\n    resources: [\"{resource}\"]\n    verbs: [{}]\n",
            verbs.iter().map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(", ")
        ));
    }
    out.push_str(&format!(
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: releasebot\n  namespace: {namespace}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: releasebot\nsubjects:\n  - kind: ServiceAccount\n    name: releasebot\n    namespace: releasebot\n"
    ));
    out
}

/// Where to reach the API server: a URL (and the variable holding its token), a
/// kubeconfig context, or neither (the in-cluster service account, else `KUBECONFIG`'s
/// current context).
#[derive(Debug, Clone, Copy, Default)]
pub struct Access<'a> {
    pub api_url: Option<&'a str>,
    pub token_env: Option<&'a str>,
    pub context: Option<&'a str>,
}

/// What `releasebot check` finds about reaching the clusters the configuration names:
/// each kubeconfig context must be in the kubeconfig (`KUBECONFIG`, else `~/.kube/config`)
/// and each token variable must be set — without connecting to any cluster.
pub fn access_problems(config: &crate::config::Config) -> Vec<String> {
    let mut contexts = Vec::new();
    let mut tokens = Vec::new();
    let mut note = |at: String, context: &Option<String>, token_env: &Option<String>| {
        if let Some(c) = context {
            contexts.push((at.clone(), c.clone()));
        }
        if let Some(t) = token_env {
            tokens.push((at, t.clone()));
        }
    };
    for (app, t) in &config.kube_targets {
        note(format!("applications.{app}.kubernetes"), &t.context, &t.token_env);
        for (env, e) in &t.environments {
            note(
                format!("applications.{app}.kubernetes.environments.{env}"),
                &e.context,
                &e.token_env,
            );
        }
    }
    for (id, plan) in &config.plans {
        for (k, s) in plan.steps.iter().enumerate() {
            if let Provider::Kubernetes { context, token_env, .. } | Provider::ArgoRollouts { context, token_env, .. } =
                &s.provider
            {
                note(format!("plans.{id}.steps[{k}]"), context, token_env);
            }
        }
    }
    let mut problems: Vec<String> = tokens
        .into_iter()
        .filter(|(_, var)| std::env::var_os(var).is_none())
        .map(|(at, var)| format!("{at}.token_env: {var} (the Kubernetes token) is not set"))
        .collect();
    if !contexts.is_empty() {
        match kube::config::Kubeconfig::read() {
            Ok(k) => {
                let known: Vec<&str> = k.contexts.iter().map(|c| c.name.as_str()).collect();
                for (at, c) in contexts.iter().filter(|(_, c)| !known.contains(&c.as_str())) {
                    problems.push(format!(
                        "{at}.context: the kubeconfig has no context \"{c}\" (it has: {})",
                        known.join(", ")
                    ));
                }
            }
            Err(e) => problems.push(format!(
                "{}.context: \"{}\" needs a kubeconfig (KUBECONFIG or ~/.kube/config): {e}",
                contexts[0].0, contexts[0].1
            )),
        }
    }
    problems
}

/// A client for `api_url` with the token in `token_env`, a kubeconfig `context`, or the
/// in-cluster service account / `KUBECONFIG` when neither is given.
pub async fn client_for(a: Access<'_>) -> Result<kube::Client, String> {
    if let (None, Some(context)) = (a.api_url, a.context) {
        let options = kube::config::KubeConfigOptions {
            context: Some(context.to_string()),
            ..Default::default()
        };
        let config = kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| format!("kubeconfig context \"{context}\": {e}"))?;
        return kube::Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"));
    }
    client(a.api_url, a.token_env).await
}

/// A client for `api_url` with the token in `token_env`, or the in-cluster service
/// account / `KUBECONFIG` when no URL is given.
pub async fn client(api_url: Option<&str>, token_env: Option<&str>) -> Result<kube::Client, String> {
    let config = match api_url {
        Some(u) => {
            let uri: axum::http::Uri = u.parse().map_err(|e| format!("api_url \"{u}\": {e}"))?;
            let mut c = kube::Config::new(uri);
            if let Some(var) = token_env {
                let token = std::env::var(var).map_err(|_| format!("{var} (the Kubernetes token) is not set"))?;
                c.auth_info.token = Some(token.into());
            }
            c
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| format!("no Kubernetes configuration: {e}"))?,
    };
    kube::Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))
}

//! Where a step's work is done: each provider with its own settings, parsed and checked.

use super::*;

/// Where a step's work is done, with that provider's own settings only (`provider =
/// "nginx"` carries nginx's fields; a setting of another provider is a `check` error).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase", deny_unknown_fields)]
pub enum Provider {
    /// The simulated fleet (demo, tests, benchmarks); always labelled as simulated.
    Sim,
    /// Approval gates and notices.
    Builtin,
    /// VERIFY_PACKAGE: fetches the ticket's package URL and checks its MD5.
    Download,
    /// A shell command; ticket fields arrive as environment variables.
    Script { command: String },
    /// A webhook, optionally polled at `status_url` until done.
    Http {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status_url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval_secs: Option<u64>,
    },
    /// An HTTP probe until `successes` consecutive 2xx answers.
    Health {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        successes: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval_secs: Option<u64>,
    },
    /// A weighted upstream file and a reload command.
    Nginx {
        upstream_file: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upstream_name: Option<String>,
        old_server: String,
        new_server: String,
        reload_command: String,
    },
    /// Requests to the old and the new version, compared.
    Probe {
        old_url: String,
        new_url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requests: Option<u32>,
    },
    /// Instant PromQL queries for each side; success as a ratio (0–1), p95 in seconds.
    Prometheus { url: String, queries: PromQueries },
    /// A Deployment's container on Kubernetes: a rolling DEPLOY sets its image and waits
    /// for the rollout, HEALTH_CHECK looks at its pods, a rollback restores the image (by
    /// digest) and replicas it had. `{application}`, `{environment}` and `{version}` are
    /// filled in from the ticket.
    Kubernetes {
        /// Empty: from the application's `[applications.kubernetes]` target.
        #[serde(default)]
        namespace: String,
        #[serde(default)]
        deployment: String,
        #[serde(default)]
        container: String,
        /// The kubeconfig context to use (of `KUBECONFIG`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
        /// The new image (`registry/app:{version}`); by default the current image with
        /// the version as its tag.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        /// The API server; by default the in-cluster service account or `KUBECONFIG`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_url: Option<String>,
        /// The variable holding the bearer token for `api_url` (never the token itself).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_env: Option<String>,
        /// How DEPLOY releases: `rolling` (the default) sets the image on the Deployment;
        /// `canary` starts a second Deployment (`NAME-canary`) that TRAFFIC_SHIFT steps
        /// scale against the stable one by pod ratio.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strategy: Option<KubeStrategy>,
        /// TRAFFIC_SHIFT through ingress-nginx: the canary Ingress whose
        /// `nginx.ingress.kubernetes.io/canary-weight` the step sets.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ingress: Option<String>,
        /// TRAFFIC_SHIFT through the Gateway API: the `HTTPRoute` whose backend weights
        /// the step sets, `backend` (the new version's Service) getting the weight.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        route: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backend: Option<String>,
        /// The Service a blue-green release switches.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        /// A change instead of a new image: `{ kind = "scale", replicas = 5 }` or
        /// `{ kind = "restart", at = "…" }` (a change record's one step, `/release scale`
        /// and `/release restart`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<KubeAction>,
        /// A Deployment missing in `namespace` is made from the one of the same name in
        /// this namespace (the new image, one replica): a swimlane's copy of the
        /// application (`/swimlane deploy`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_namespace: Option<String>,
    },
    /// An Argo Rollout, for teams that run Argo Rollouts: DEPLOY sets the container's
    /// image and mirrors the Rollout's own steps, weights, pauses and analysis runs until it
    /// is healthy (Pause, Resume, Promote and Abort go to the Rollout); a rollback sets
    /// the image it had back, which Argo Rollouts takes straight to the stable version.
    #[serde(rename = "argo-rollouts")]
    ArgoRollouts {
        #[serde(default)]
        namespace: String,
        #[serde(default)]
        rollout: String,
        #[serde(default)]
        container: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_env: Option<String>,
    },
}

/// A change made to a Deployment without a new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum KubeAction {
    /// Set the replicas (`/release scale`).
    Scale { replicas: i32 },
    /// Restart every pod as `kubectl rollout restart` does: the pod template's
    /// `kubectl.kubernetes.io/restartedAt` annotation set to `at` (`/release restart`).
    Restart { at: String },
}

/// How the `kubernetes` provider's DEPLOY releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KubeStrategy {
    Rolling,
    Canary,
    /// `NAME-blue` and `NAME-green`, the Service's selector (`slot`) naming the live one:
    /// DEPLOY readies the idle one, TRAFFIC_SHIFT to 100 switches the Service to it.
    BlueGreen,
}

/// Every provider's name, the settings it takes, and which of them it needs.
pub const PROVIDER_SETTINGS: &[(&str, &[&str], &[&str])] = &[
    ("sim", &[], &[]),
    ("builtin", &[], &[]),
    ("download", &[], &[]),
    ("script", &["command"], &["command"]),
    ("http", &["url", "status_url", "interval_secs"], &["url"]),
    ("health", &["url", "successes", "interval_secs"], &["url"]),
    (
        "nginx",
        &[
            "upstream_file",
            "upstream_name",
            "old_server",
            "new_server",
            "reload_command",
        ],
        &["upstream_file", "old_server", "new_server", "reload_command"],
    ),
    ("probe", &["old_url", "new_url", "requests"], &["old_url", "new_url"]),
    ("prometheus", &["url", "queries"], &["url", "queries"]),
    (
        "kubernetes",
        &[
            "namespace",
            "deployment",
            "container",
            "context",
            "image",
            "api_url",
            "token_env",
            "strategy",
            "ingress",
            "route",
            "backend",
            "service",
            "action",
            "from_namespace",
        ],
        // Each may come from the application's target instead (checked with it).
        &[],
    ),
    (
        "argo-rollouts",
        &[
            "namespace",
            "rollout",
            "container",
            "context",
            "image",
            "api_url",
            "token_env",
        ],
        &[],
    ),
];

impl Provider {
    /// Whether the provider sets a desired state on the platform (Kubernetes): running it
    /// twice is once, it records what it replaced, and its rollback restores that — so the
    /// runner re-runs it after a crash and lets its DEPLOY step roll a release back.
    pub fn sets_desired_state(&self) -> bool {
        matches!(self, Provider::Kubernetes { .. } | Provider::ArgoRollouts { .. })
    }

    /// The settings it needs that the step leaves to the application's target.
    pub fn unsaid(&self) -> Vec<&'static str> {
        let blank = |v: &str| v.trim().is_empty();
        let fields: Vec<(&'static str, &str)> = match self {
            Provider::Kubernetes {
                namespace,
                deployment,
                container,
                ..
            } => vec![
                ("namespace", namespace),
                ("deployment", deployment),
                ("container", container),
            ],
            Provider::ArgoRollouts {
                namespace,
                rollout,
                container,
                ..
            } => vec![("namespace", namespace), ("rollout", rollout), ("container", container)],
            _ => vec![],
        };
        fields.into_iter().filter(|(_, v)| blank(v)).map(|(k, _)| k).collect()
    }

    pub fn name(&self) -> &'static str {
        match self {
            Provider::Sim => "sim",
            Provider::Builtin => "builtin",
            Provider::Download => "download",
            Provider::Script { .. } => "script",
            Provider::Http { .. } => "http",
            Provider::Health { .. } => "health",
            Provider::Nginx { .. } => "nginx",
            Provider::Probe { .. } => "probe",
            Provider::Prometheus { .. } => "prometheus",
            Provider::Kubernetes { .. } => "kubernetes",
            Provider::ArgoRollouts { .. } => "argo-rollouts",
        }
    }

    /// Parses a provider and its settings; every problem, each naming its setting.
    pub fn parse(name: &str, settings: &BTreeMap<String, serde_json::Value>) -> Result<Self, Vec<(String, String)>> {
        let Some((_, known, required)) = PROVIDER_SETTINGS.iter().find(|(n, _, _)| *n == name) else {
            let names: Vec<&str> = PROVIDER_SETTINGS.iter().map(|(n, _, _)| *n).collect();
            return Err(vec![(
                "provider".into(),
                format!("unknown provider \"{name}\" (available: {})", names.join(", ")),
            )]);
        };
        let mut problems = Vec::new();
        for key in settings.keys().filter(|k| !known.contains(&k.as_str())) {
            let owners: Vec<&str> = PROVIDER_SETTINGS
                .iter()
                .filter(|(_, s, _)| s.contains(&key.as_str()))
                .map(|(n, _, _)| *n)
                .collect();
            problems.push((
                key.clone(),
                if owners.is_empty() {
                    "unknown setting".to_string()
                } else {
                    format!(
                        "not a setting of the {name} provider (it belongs to {})",
                        owners.join(", ")
                    )
                },
            ));
        }
        for key in required.iter().filter(|k| !settings.contains_key(**k)) {
            let extra = match *key {
                "queries" => " (new_success, old_success)",
                _ => "",
            };
            problems.push((key.to_string(), format!("the {name} provider needs {key}{extra}")));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut map: serde_json::Map<String, serde_json::Value> =
            settings.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        map.insert("provider".into(), serde_json::Value::String(name.into()));
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| {
            let msg = e.to_string();
            let field = msg.split('`').nth(1).filter(|f| known.contains(f));
            match field {
                Some(f) if msg.starts_with("missing field") => {
                    vec![(f.to_string(), format!("the {name} provider needs {f}"))]
                }
                Some(f) => vec![(f.to_string(), format!("the {name} provider: {msg}"))],
                None => vec![("provider".to_string(), format!("the {name} provider: {msg}"))],
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromQueries {
    pub new_success: String,
    pub old_success: String,
    #[serde(default)]
    pub new_p95: Option<String>,
    #[serde(default)]
    pub old_p95: Option<String>,
    #[serde(default)]
    pub new_p99: Option<String>,
    #[serde(default)]
    pub old_p99: Option<String>,
}

/// The settings a step's provider cannot do without (`sp` is its path).
pub(super) fn check_provider(s: &StepDef, sp: &str, out: &mut Vec<String>) {
    let blank = |v: &str| v.trim().is_empty();
    match &s.provider {
        Provider::Script { command } if blank(command) => {
            out.push(format!("{sp}.command: a script step needs a command"));
        }
        Provider::Nginx {
            upstream_file,
            old_server,
            new_server,
            reload_command,
            ..
        } => {
            for (name, v) in [
                ("upstream_file", upstream_file),
                ("old_server", old_server),
                ("new_server", new_server),
                ("reload_command", reload_command),
            ] {
                if blank(v) {
                    out.push(format!("{sp}.{name}: the nginx provider needs {name}"));
                }
            }
        }
        Provider::Kubernetes {
            api_url,
            ingress,
            route,
            backend,
            strategy,
            service,
            ..
        } => {
            if *strategy == Some(KubeStrategy::BlueGreen) && service.as_deref().is_none_or(blank) {
                out.push(format!(
                    "{sp}.service: a blue-green release needs the Service it switches"
                ));
            }
            if route.is_some() && backend.as_deref().is_none_or(blank) {
                out.push(format!(
                    "{sp}.backend: a Gateway API route needs the new version's backend (its Service)"
                ));
            }
            if ingress.is_some() && route.is_some() {
                out.push(format!(
                    "{sp}.route: a step shifts traffic through an ingress or a route, not both"
                ));
            }
            check_api_url(api_url.as_deref(), sp, out);
        }
        Provider::ArgoRollouts {
            namespace,
            rollout,
            container,
            api_url,
            ..
        } => {
            for (name, v) in [("namespace", namespace), ("rollout", rollout), ("container", container)] {
                if blank(v) {
                    out.push(format!("{sp}.{name}: the argo-rollouts provider needs {name}"));
                }
            }
            check_api_url(api_url.as_deref(), sp, out);
        }
        _ => {}
    }
}

fn check_api_url(api_url: Option<&str>, sp: &str, out: &mut Vec<String>) {
    if let Some(u) = api_url.filter(|u| !(u.starts_with("https://") || u.starts_with("http://"))) {
        out.push(format!(
            "{sp}.api_url: \"{u}\" is not an http(s) URL of a Kubernetes API server"
        ));
    }
}

//! Settings (command line and environment) and the TOML configuration.

use crate::domain::flow::{FieldKind, Flow, RejectTarget};
use crate::domain::schedule::Span;
use crate::domain::Actor;
use anyhow::Context;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

mod calendar;
mod executor;
mod locale;
mod services;
mod settings;
mod shape;
mod swimlanes;
mod validate;

pub use calendar::*;
pub use executor::*;
pub use locale::*;
pub use services::*;
pub use settings::*;
use shape::*;
pub use swimlanes::*;

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
    sim: SimConfig,
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
    /// Where applications run on Kubernetes, by application.
    pub kube_targets: BTreeMap<String, KubeTarget>,
    /// Release windows by application (only applications that declare some).
    pub release_windows: BTreeMap<String, Vec<crate::domain::calendar::Window>>,
    /// Every environment of the registered applications; `["prod"]` when none are named.
    pub environments: Vec<String>,
    pub default_service: String,
    pub plans: BTreeMap<String, crate::domain::plan::Plan>,
    /// The simulated fleet of the `sim` provider.
    pub sim: SimConfig,
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
                // What the file means is checked in the same run, its unknown keys set
                // aside (a value of the wrong type leaves nothing sure to check).
                if let Some(raw) = without_unknown_keys(&table) {
                    if let Err(ConfigErrors(more)) = Self::from_raw(raw) {
                        problems.extend(more);
                    }
                }
                return Err(ConfigErrors(problems));
            }
        };
        Self::from_raw(raw)
    }

    /// The configuration a well-shaped file describes, or every problem with its meaning.
    fn from_raw(raw: RawConfig) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let role_members = validate::roles(&raw, &mut errors);
        let flows = validate::flows(&raw, &mut errors);
        let plans = validate::plans(&raw, &mut errors);
        let default_service = validate::services(&raw, &mut errors);
        let (applications, release_windows, environments) = validate::applications(&raw, &mut errors);
        let freezes = validate::calendar(&raw, &applications, &environments, &mut errors);
        let kube_targets = validate::kube_targets(&raw, &plans, &mut errors);
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Config {
            roles: raw.roles,
            role_members,
            services: raw.services,
            flows,
            applications,
            kube_targets,
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
            out.push((crate::domain::jobs::Job::ExpiringList.key(), s.clone()));
        }
        if let Some(s) = &self.calendar.digest {
            out.push((crate::domain::jobs::Job::Digest.key(), s.clone()));
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

    /// Where `application` runs on Kubernetes in `environment`, if it says.
    pub fn kube_target(&self, application: &str, environment: &str) -> Option<KubeTarget> {
        self.kube_targets
            .get(application)
            .map(|t| t.in_environment(environment))
    }

    /// `plan` for a release of `application` in `environment`: what its Kubernetes steps
    /// leave unsaid filled in from the application's target.
    pub fn plan_for(
        &self,
        plan: &crate::domain::plan::Plan,
        application: &str,
        environment: &str,
    ) -> crate::domain::plan::Plan {
        let mut plan = plan.clone();
        if let Some(t) = self.kube_target(application, environment) {
            for s in &mut plan.steps {
                fill_from(&mut s.provider, &t);
            }
        }
        plan
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

/// Fills what a Kubernetes step leaves unsaid from the application's target.
fn fill_from(p: &mut crate::domain::plan::Provider, t: &KubeTarget) {
    use crate::domain::plan::Provider;
    let fill = |v: &mut String, from: &Option<String>| {
        if v.trim().is_empty() {
            if let Some(f) = from {
                v.clone_from(f);
            }
        }
    };
    let fill_opt = |v: &mut Option<String>, from: &Option<String>| {
        if v.is_none() {
            v.clone_from(from);
        }
    };
    let (settings, access) = match p {
        Provider::Kubernetes {
            namespace,
            deployment,
            container,
            api_url,
            token_env,
            context,
            ..
        } => (
            [
                (namespace, &t.namespace),
                (deployment, &t.deployment),
                (container, &t.container),
            ],
            (api_url, token_env, context),
        ),
        Provider::ArgoRollouts {
            namespace,
            rollout,
            container,
            api_url,
            token_env,
            context,
            ..
        } => (
            [
                (namespace, &t.namespace),
                (rollout, &t.rollout),
                (container, &t.container),
            ],
            (api_url, token_env, context),
        ),
        _ => return,
    };
    for (v, from) in settings {
        fill(v, from);
    }
    // A step that names its own API server keeps its own credentials.
    let (api_url, token_env, context) = access;
    if api_url.is_none() && context.is_none() {
        fill_opt(api_url, &t.api_url);
        fill_opt(token_env, &t.token_env);
        fill_opt(context, &t.context);
    }
}

#[cfg(test)]
mod tests;

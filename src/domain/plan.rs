//! Release plans: ordered steps with providers, timeouts, preconditions and failure
//! policies. Pure data plus validation and estimates.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Template {
    BlueGreen,
    Canary,
    Rolling,
    Custom,
}

/// Providers this build can run; the others are refused by `releasebot check`.
pub const AVAILABLE_PROVIDERS: &[&str] = &[
    "sim",
    "script",
    "builtin",
    "http",
    "health",
    "nginx",
    "probe",
    "prometheus",
    "download",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepType {
    VerifyPackage,
    Deploy,
    HealthCheck,
    Test,
    TrafficShift,
    Monitor,
    ApprovalGate,
    Script,
    Notify,
    Rollback,
}

impl StepType {
    /// Whether running the step twice has the same effect as once, so that it may be
    /// re-run after a crash (traffic weights, probes, monitors). Others are `interrupted`.
    pub fn idempotent(self) -> bool {
        matches!(
            self,
            StepType::VerifyPackage
                | StepType::HealthCheck
                | StepType::TrafficShift
                | StepType::Monitor
                | StepType::ApprovalGate
                | StepType::Notify
        )
    }

    /// A rough duration for the dry run when the plan gives none.
    pub fn default_secs(self) -> u64 {
        match self {
            StepType::VerifyPackage => 30,
            StepType::Deploy => 300,
            StepType::HealthCheck => 60,
            StepType::Test => 180,
            StepType::TrafficShift => 30,
            StepType::Monitor => 300,
            StepType::ApprovalGate => 0,
            StepType::Script => 60,
            StepType::Notify => 1,
            StepType::Rollback => 120,
        }
    }

    /// Providers that can carry out this step type.
    pub fn providers(self) -> &'static [&'static str] {
        match self {
            StepType::VerifyPackage => &["download", "script", "sim"],
            StepType::Deploy => &["script", "http", "sim"],
            StepType::HealthCheck => &["health", "sim"],
            StepType::Test => &["script", "http", "sim"],
            StepType::TrafficShift => &["nginx", "script", "http", "sim"],
            StepType::Monitor => &["prometheus", "probe", "sim"],
            StepType::ApprovalGate => &["builtin"],
            StepType::Script => &["script", "sim"],
            StepType::Notify => &["builtin"],
            StepType::Rollback => &["script", "http", "nginx", "sim"],
        }
    }
}

/// What a failed step does. Retry chains into another policy once its attempts are used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Return traffic to the old version and restore the baseline, automatically.
    Rollback,
    /// Alert and wait for a human: Retry / Skip / Rollback / Abort.
    Pause,
    /// Try again `times` more times, `backoff_secs` apart (doubling), then apply `then`.
    Retry {
        times: u32,
        #[serde(default = "default_backoff")]
        backoff_secs: u64,
        #[serde(default = "default_then")]
        then: Box<FailurePolicy>,
    },
    /// Carry on as if it had succeeded (marked skipped).
    Skip,
    /// Stop the execution as failed, without rolling back.
    Abort,
}

fn default_backoff() -> u64 {
    10
}

fn default_then() -> Box<FailurePolicy> {
    Box::new(FailurePolicy::Pause)
}

fn default_policy() -> FailurePolicy {
    FailurePolicy::Pause
}

/// Limits a MONITOR step checks the new version against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Lowest acceptable success rate of the new version, in percent.
    #[serde(default = "default_success")]
    pub min_success_rate: f64,
    /// Highest acceptable p95 latency of the new version, in milliseconds.
    #[serde(default)]
    pub max_p95_ms: Option<u64>,
    /// Highest acceptable p99 latency of the new version, in milliseconds.
    #[serde(default)]
    pub max_p99_ms: Option<u64>,
    /// How many percentage points the new version's success rate may trail the old one's.
    #[serde(default)]
    pub max_success_rate_drop: Option<f64>,
}

fn default_success() -> f64 {
    99.0
}

/// Rolls a step over targets: a first batch, then batches of `size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batches {
    #[serde(default = "one")]
    pub first: u32,
    pub size: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: StepType,
    /// `sim`, `script`, `http`, `health`, `nginx`, `prometheus`, `probe`, `builtin`.
    #[serde(default = "default_provider")]
    pub provider: String,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Steps that must have completed (not skipped) before this one runs.
    #[serde(default)]
    pub requires: Vec<String>,
    #[serde(default = "default_policy")]
    pub on_failure: FailurePolicy,
    /// TRAFFIC_SHIFT: the new version's share, in percent.
    #[serde(default)]
    pub weight: Option<u8>,
    /// MONITOR: the observation window.
    #[serde(default)]
    pub duration_secs: Option<u64>,
    #[serde(default)]
    pub thresholds: Option<Thresholds>,
    /// APPROVAL_GATE: who presses Continue.
    #[serde(default)]
    pub role: Option<String>,
    /// SCRIPT (and script providers): the command; ticket fields arrive as environment variables.
    #[serde(default)]
    pub command: Option<String>,
    /// http / health / probe providers.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub batches: Option<Batches>,
    /// Post-action: announce the step's result in the ticket's channel.
    #[serde(default)]
    pub notify: bool,
    /// Dry-run estimate; the step type's default when absent.
    #[serde(default)]
    pub expected_secs: Option<u64>,
    /// probe: the old and the new version's endpoints, compared.
    #[serde(default)]
    pub old_url: Option<String>,
    #[serde(default)]
    pub new_url: Option<String>,
    /// probe: requests per endpoint and sample (default 20).
    #[serde(default)]
    pub requests: Option<u32>,
    /// health: consecutive successes needed (default 3).
    #[serde(default)]
    pub successes: Option<u32>,
    /// health / http status polling: seconds between tries (default 5).
    #[serde(default)]
    pub interval_secs: Option<u64>,
    /// http: polled until its JSON `status` is `succeeded` or `failed`.
    #[serde(default)]
    pub status_url: Option<String>,
    /// nginx: the upstream file written with the weights, its upstream name, the two
    /// servers (`host:port`) and the reload command.
    #[serde(default)]
    pub upstream_file: Option<String>,
    #[serde(default)]
    pub upstream_name: Option<String>,
    #[serde(default)]
    pub old_server: Option<String>,
    #[serde(default)]
    pub new_server: Option<String>,
    #[serde(default)]
    pub reload_command: Option<String>,
    /// prometheus: instant queries (PromQL) for each side; success as a ratio (0–1),
    /// p95 in seconds, as Prometheus conventions go.
    #[serde(default)]
    pub queries: Option<PromQueries>,
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

fn default_provider() -> String {
    "sim".to_string()
}

impl StepDef {
    pub fn expected_secs(&self) -> u64 {
        self.expected_secs
            .or(self.duration_secs.filter(|_| self.kind == StepType::Monitor))
            .unwrap_or(self.kind.default_secs())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The key in `[plans.*]` (set from it; kept in stored snapshots of the plan).
    #[serde(default)]
    pub id: String,
    pub name: String,
    pub template: Template,
    pub steps: Vec<StepDef>,
}

impl Plan {
    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id == id)
    }

    /// The expected duration, not counting approval gates (they wait for people).
    pub fn expected_secs(&self) -> u64 {
        self.steps.iter().map(StepDef::expected_secs).sum()
    }

    /// Every problem, each with its path below `path` (`plans.canary`).
    pub fn problems(&self, path: &str, roles: &BTreeSet<String>) -> Vec<String> {
        let mut out = Vec::new();
        if self.steps.is_empty() {
            out.push(format!("{path}.steps: a plan needs at least one step"));
        }
        let mut seen = BTreeSet::new();
        let mut last_weight: Option<(usize, u8)> = None;
        for (i, s) in self.steps.iter().enumerate() {
            let sp = format!("{path}.steps[{i}]");
            if s.id.is_empty()
                || !s
                    .id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                out.push(format!(
                    "{sp}.id: \"{}\" must use lowercase letters, digits, '-' and '_'",
                    s.id
                ));
            }
            if !seen.insert(s.id.clone()) {
                out.push(format!("{sp}.id: duplicate step id \"{}\"", s.id));
            }
            for r in &s.requires {
                match self.step_index(r) {
                    None => out.push(format!("{sp}.requires: unknown step \"{r}\"")),
                    Some(j) if j >= i => out.push(format!("{sp}.requires: step \"{r}\" does not come before this one")),
                    Some(_) => {}
                }
            }
            if !AVAILABLE_PROVIDERS.contains(&s.provider.as_str()) && s.kind.providers().contains(&s.provider.as_str())
            {
                out.push(format!(
                    "{sp}.provider: the \"{}\" provider is not available in this version (available: {})",
                    s.provider,
                    AVAILABLE_PROVIDERS.join(", ")
                ));
            }
            if !s.kind.providers().contains(&s.provider.as_str()) {
                out.push(format!(
                    "{sp}.provider: \"{}\" cannot run a {:?} step (use one of {})",
                    s.provider,
                    s.kind,
                    s.kind.providers().join(", ")
                ));
            }
            if s.timeout_secs == Some(0) {
                out.push(format!("{sp}.timeout_secs: must be more than 0"));
            }
            check_policy(&s.on_failure, &format!("{sp}.on_failure"), &mut out);
            match s.kind {
                StepType::TrafficShift => match s.weight {
                    None => out.push(format!(
                        "{sp}.weight: a TRAFFIC_SHIFT step needs the new version's weight (1-100)"
                    )),
                    Some(w) if w == 0 || w > 100 => out.push(format!("{sp}.weight: {w} is not between 1 and 100")),
                    Some(w) => {
                        if let Some((_, prev)) = last_weight.filter(|(_, p)| w <= *p) {
                            out.push(format!(
                                "{sp}.weight: {w} does not increase on the previous shift ({prev})"
                            ));
                        }
                        last_weight = Some((i, w));
                    }
                },
                StepType::Monitor if s.duration_secs.unwrap_or(0) == 0 => {
                    out.push(format!(
                        "{sp}.duration_secs: a MONITOR step needs an observation window"
                    ));
                }
                StepType::ApprovalGate => match &s.role {
                    None => out.push(format!(
                        "{sp}.role: an APPROVAL_GATE step needs the role that continues it"
                    )),
                    Some(r) if !roles.contains(r) => out.push(format!("{sp}.role: unknown role \"{r}\"")),
                    Some(_) => {}
                },
                StepType::Script if s.command.as_deref().unwrap_or("").trim().is_empty() && s.provider == "script" => {
                    out.push(format!("{sp}.command: a script step needs a command"));
                }
                _ => {}
            }
            if matches!(s.provider.as_str(), "http" | "health" | "prometheus") && s.url.is_none() {
                out.push(format!("{sp}.url: the {} provider needs a url", s.provider));
            }
            if s.provider == "prometheus" && s.queries.is_none() {
                out.push(format!(
                    "{sp}.queries: the prometheus provider needs queries (new_success, old_success)"
                ));
            }
            if s.provider == "probe" && (s.old_url.is_none() || s.new_url.is_none()) {
                out.push(format!("{sp}.old_url: the probe provider needs old_url and new_url"));
            }
            if s.provider == "nginx" && s.kind.providers().contains(&"nginx") {
                for (name, v) in [
                    ("upstream_file", &s.upstream_file),
                    ("old_server", &s.old_server),
                    ("new_server", &s.new_server),
                    ("reload_command", &s.reload_command),
                ] {
                    if v.as_deref().unwrap_or("").trim().is_empty() {
                        out.push(format!("{sp}.{name}: the nginx provider needs {name}"));
                    }
                }
            }
            if let Some(b) = &s.batches {
                if b.first == 0 || b.size == 0 {
                    out.push(format!("{sp}.batches: first and size must be at least 1"));
                }
            }
        }
        if let Some((i, w)) = last_weight {
            if w != 100 {
                out.push(format!(
                    "{path}.steps[{i}].weight: the last traffic shift must reach 100 (it stops at {w})"
                ));
            }
        }
        out
    }
}

fn check_policy(p: &FailurePolicy, path: &str, out: &mut Vec<String>) {
    if let FailurePolicy::Retry { times, then, .. } = p {
        if *times == 0 {
            out.push(format!("{path}.retry.times: must be at least 1"));
        }
        check_policy(then, &format!("{path}.retry.then"), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Plan {
        let mut p: Plan = toml::from_str(text).unwrap();
        p.id = "p".into();
        p
    }

    fn roles() -> BTreeSet<String> {
        ["ops".to_string()].into_iter().collect()
    }

    #[test]
    fn policies_parse_from_toml_and_chain() {
        let p = plan(
            r#"
name = "P"
template = "CANARY"
[[steps]]
id = "deploy"
name = "Deploy"
type = "DEPLOY"
on_failure = { retry = { times = 2, backoff_secs = 5, then = "rollback" } }
[[steps]]
id = "shift"
name = "Shift"
type = "TRAFFIC_SHIFT"
weight = 100
requires = ["deploy"]
"#,
        );
        assert_eq!(
            p.steps[0].on_failure,
            FailurePolicy::Retry {
                times: 2,
                backoff_secs: 5,
                then: Box::new(FailurePolicy::Rollback)
            }
        );
        assert_eq!(p.steps[1].on_failure, FailurePolicy::Pause);
        assert!(
            p.problems("plans.p", &roles()).is_empty(),
            "{:?}",
            p.problems("plans.p", &roles())
        );
        assert_eq!(p.expected_secs(), 330);
    }

    #[test]
    fn every_problem_is_named_with_its_path() {
        let p = plan(
            r#"
name = "P"
template = "CUSTOM"
[[steps]]
id = "a"
name = "A"
type = "TRAFFIC_SHIFT"
weight = 50
requires = ["b"]
on_failure = { retry = { times = 0 } }
[[steps]]
id = "b"
name = "B"
type = "TRAFFIC_SHIFT"
weight = 40
[[steps]]
id = "b"
name = "M"
type = "MONITOR"
provider = "prometheus"
[[steps]]
id = "g"
name = "G"
type = "APPROVAL_GATE"
provider = "builtin"
role = "opz"
[[steps]]
id = "h"
name = "H"
type = "HEALTH_CHECK"
provider = "nginx"
"#,
        );
        assert_eq!(
            p.problems("plans.p", &roles()),
            vec![
                "plans.p.steps[0].requires: step \"b\" does not come before this one",
                "plans.p.steps[0].on_failure.retry.times: must be at least 1",
                "plans.p.steps[1].weight: 40 does not increase on the previous shift (50)",
                "plans.p.steps[2].id: duplicate step id \"b\"",
                "plans.p.steps[2].duration_secs: a MONITOR step needs an observation window",
                "plans.p.steps[2].url: the prometheus provider needs a url",
                "plans.p.steps[2].queries: the prometheus provider needs queries (new_success, old_success)",
                "plans.p.steps[3].role: unknown role \"opz\"",
                "plans.p.steps[4].provider: \"nginx\" cannot run a HealthCheck step (use one of health, sim)",
                "plans.p.steps[1].weight: the last traffic shift must reach 100 (it stops at 40)",
            ]
        );
    }

    #[test]
    fn unknown_step_types_are_refused() {
        let err = toml::from_str::<Plan>(
            "name = \"P\"\ntemplate = \"CANARY\"\n[[steps]]\nid = \"x\"\nname = \"X\"\ntype = \"LAUNCH\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown variant `LAUNCH`"), "{err}");
    }
}

//! Release plans: ordered steps with providers, timeouts, preconditions and failure
//! policies. Pure data plus validation and estimates.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

mod provider;
pub use provider::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Template {
    BlueGreen,
    Canary,
    Rolling,
    Custom,
}

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
    /// The name as written in the configuration (`HEALTH_CHECK`).
    pub fn name(self) -> &'static str {
        match self {
            StepType::VerifyPackage => "VERIFY_PACKAGE",
            StepType::Deploy => "DEPLOY",
            StepType::HealthCheck => "HEALTH_CHECK",
            StepType::Test => "TEST",
            StepType::TrafficShift => "TRAFFIC_SHIFT",
            StepType::Monitor => "MONITOR",
            StepType::ApprovalGate => "APPROVAL_GATE",
            StepType::Script => "SCRIPT",
            StepType::Notify => "NOTIFY",
            StepType::Rollback => "ROLLBACK",
        }
    }

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
            StepType::Deploy => &["kubernetes", "argo-rollouts", "script", "http", "sim"],
            StepType::HealthCheck => &["kubernetes", "health", "sim"],
            StepType::Test => &["script", "http", "sim"],
            StepType::TrafficShift => &["kubernetes", "nginx", "script", "http", "sim"],
            StepType::Monitor => &["prometheus", "probe", "sim"],
            StepType::ApprovalGate => &["builtin"],
            StepType::Script => &["script", "sim"],
            StepType::Notify => &["builtin"],
            StepType::Rollback => &["kubernetes", "argo-rollouts", "script", "http", "nginx", "sim"],
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
        #[serde(default = "default_backoff", alias = "backoff", deserialize_with = "secs")]
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

#[derive(Deserialize)]
#[serde(untagged)]
enum SecsOrText {
    Secs(u64),
    Text(String),
}

impl SecsOrText {
    fn secs<E: serde::de::Error>(self) -> Result<u64, E> {
        match self {
            SecsOrText::Secs(n) => Ok(n),
            SecsOrText::Text(t) => {
                let d = crate::domain::schedule::parse_duration(&t).map_err(E::custom)?;
                if d.subsec_nanos() != 0 {
                    return Err(E::custom(format!("\"{t}\": use whole seconds")));
                }
                Ok(d.as_secs())
            }
        }
    }
}

/// Seconds written as a number (`300`) or as every duration of the configuration is
/// (`"5m"`, `"90s"`), so that `timeout = "15m"` and `timeout_secs = 900` say the same.
fn secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    SecsOrText::deserialize(d)?.secs()
}

/// Like [`secs`], absent or `null` (as a stored plan writes it) being none.
fn opt_secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<SecsOrText>::deserialize(d)?.map(SecsOrText::secs).transpose()
}

/// A step as written in the configuration: the step's own fields, and the provider's
/// settings gathered by name (checked against the provider in [`Provider::parse`]).
#[derive(Debug, Clone, Deserialize)]
struct RawStep {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: StepType,
    #[serde(default = "default_provider")]
    provider: String,
    #[serde(default, alias = "timeout", deserialize_with = "opt_secs")]
    timeout_secs: Option<u64>,
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default = "default_policy")]
    on_failure: FailurePolicy,
    #[serde(default)]
    weight: Option<u8>,
    #[serde(default, alias = "duration", deserialize_with = "opt_secs")]
    duration_secs: Option<u64>,
    #[serde(default)]
    thresholds: Option<Thresholds>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    batches: Option<Batches>,
    #[serde(default)]
    notify: bool,
    #[serde(default, alias = "expected", deserialize_with = "opt_secs")]
    expected_secs: Option<u64>,
    #[serde(flatten)]
    settings: BTreeMap<String, serde_json::Value>,
}

impl From<RawStep> for StepDef {
    fn from(r: RawStep) -> Self {
        // Plans stored by earlier versions carry every setting, unset ones as null.
        let settings: BTreeMap<String, serde_json::Value> =
            r.settings.into_iter().filter(|(_, v)| !v.is_null()).collect();
        let (provider, invalid) = match Provider::parse(&r.provider, &settings) {
            Ok(p) => (p, None),
            Err(problems) => (
                Provider::Sim,
                Some(Invalid {
                    provider: r.provider.clone(),
                    problems,
                }),
            ),
        };
        StepDef {
            id: r.id,
            name: r.name,
            kind: r.kind,
            timeout_secs: r.timeout_secs,
            requires: r.requires,
            on_failure: r.on_failure,
            weight: r.weight,
            duration_secs: r.duration_secs,
            thresholds: r.thresholds,
            role: r.role,
            batches: r.batches,
            notify: r.notify,
            expected_secs: r.expected_secs,
            provider,
            invalid,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawStep")]
pub struct StepDef {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: StepType,
    pub timeout_secs: Option<u64>,
    /// Steps that must have completed (not skipped) before this one runs.
    pub requires: Vec<String>,
    pub on_failure: FailurePolicy,
    /// TRAFFIC_SHIFT: the new version's share, in percent.
    pub weight: Option<u8>,
    /// MONITOR: the observation window.
    pub duration_secs: Option<u64>,
    pub thresholds: Option<Thresholds>,
    /// APPROVAL_GATE: who presses Continue.
    pub role: Option<String>,
    /// DEPLOY: roll over the ticket's targets in batches.
    pub batches: Option<Batches>,
    /// Post-action: announce the step's result in the ticket's channel.
    pub notify: bool,
    /// Dry-run estimate; the step type's default when absent.
    pub expected_secs: Option<u64>,
    #[serde(flatten)]
    pub provider: Provider,
    /// Settings that did not fit the provider (reported by `check`, with their paths).
    #[serde(skip)]
    pub invalid: Option<Invalid>,
}

/// A provider whose settings were not valid: its name and the problems, by setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub provider: String,
    pub problems: Vec<(String, String)>,
}

fn default_provider() -> String {
    "sim".to_string()
}

impl StepDef {
    /// A step with its type's defaults, run by `provider`.
    pub fn new(id: &str, name: &str, kind: StepType, provider: Provider) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            kind,
            timeout_secs: None,
            requires: vec![],
            on_failure: default_policy(),
            weight: None,
            duration_secs: None,
            thresholds: None,
            role: None,
            batches: None,
            notify: false,
            expected_secs: None,
            provider,
            invalid: None,
        }
    }

    /// Whether running it twice has the same effect as once (see
    /// [`StepType::idempotent`]); a Kubernetes step sets a desired state, so it is.
    pub fn idempotent(&self) -> bool {
        self.kind.idempotent() || self.provider.sets_desired_state()
    }

    /// Whether, while it runs, the step mirrors a controller that runs its own steps (an
    /// Argo Rollout's DEPLOY): Pause, Resume, Promote and Abort go to that controller.
    pub fn relays_commands(&self) -> bool {
        self.kind == StepType::Deploy && matches!(self.provider, Provider::ArgoRollouts { .. })
    }

    /// Whether it runs on the simulated fleet.
    pub fn simulated(&self) -> bool {
        self.provider == Provider::Sim
    }

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
            let provider = s
                .invalid
                .as_ref()
                .map(|i| i.provider.as_str())
                .unwrap_or(s.provider.name());
            let known = PROVIDER_SETTINGS.iter().any(|(n, _, _)| *n == provider);
            if known && !s.kind.providers().contains(&provider) {
                out.push(format!(
                    "{sp}.provider: \"{}\" cannot run a {} step (use one of {})",
                    provider,
                    s.kind.name(),
                    s.kind.providers().join(", ")
                ));
            } else if let Some(invalid) = &s.invalid {
                for (key, why) in &invalid.problems {
                    out.push(format!("{sp}.{key}: {why}"));
                }
            }
            if s.timeout_secs == Some(0) {
                out.push(format!("{sp}.timeout_secs: must be more than 0"));
            }
            check_policy(&s.on_failure, &format!("{sp}.on_failure"), &mut out);
            if let Some(w) = check_kind(s, &sp, roles, last_weight.map(|(_, w)| w), &mut out) {
                last_weight = Some((i, w));
            }
            check_provider(s, &sp, &mut out);
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

/// What a step's type asks of it (`sp` is its path): a traffic shift's weight (above the
/// previous shift's, `last`), a monitor's window and thresholds, a gate's role. The weight
/// of a traffic shift that has a valid one.
fn check_kind(s: &StepDef, sp: &str, roles: &BTreeSet<String>, last: Option<u8>, out: &mut Vec<String>) -> Option<u8> {
    match s.kind {
        StepType::TrafficShift => match s.weight {
            None => out.push(format!(
                "{sp}.weight: a TRAFFIC_SHIFT step needs the new version's weight (1-100)"
            )),
            Some(w) if w == 0 || w > 100 => out.push(format!("{sp}.weight: {w} is not between 1 and 100")),
            Some(w) => {
                if let Some(prev) = last.filter(|p| w <= *p) {
                    out.push(format!(
                        "{sp}.weight: {w} does not increase on the previous shift ({prev})"
                    ));
                }
                return Some(w);
            }
        },
        StepType::Monitor => {
            if s.duration_secs.unwrap_or(0) == 0 {
                out.push(format!(
                    "{sp}.duration_secs: a MONITOR step needs an observation window"
                ));
            }
            match &s.thresholds {
                // A monitor never passes unjudged.
                None => out.push(format!(
                    "{sp}.thresholds: a MONITOR step needs thresholds to judge the new version by"
                )),
                Some(t) => check_thresholds(t, &format!("{sp}.thresholds"), out),
            }
        }
        StepType::ApprovalGate => match &s.role {
            None => out.push(format!(
                "{sp}.role: an APPROVAL_GATE step needs the role that continues it"
            )),
            Some(r) if !roles.contains(r) => out.push(format!("{sp}.role: unknown role \"{r}\"")),
            Some(_) => {}
        },
        _ => {}
    }
    None
}

/// The longest wait between two attempts of a step.
pub const MAX_BACKOFF_SECS: u64 = 3_600;
/// The most attempts a retry may add.
pub const MAX_RETRIES: u32 = 10;

fn check_policy(p: &FailurePolicy, path: &str, out: &mut Vec<String>) {
    if let FailurePolicy::Retry {
        times,
        backoff_secs,
        then,
    } = p
    {
        if *times == 0 || *times > MAX_RETRIES {
            out.push(format!(
                "{path}.retry.times: {times} is not between 1 and {MAX_RETRIES}"
            ));
        }
        if *backoff_secs == 0 || *backoff_secs > MAX_BACKOFF_SECS {
            out.push(format!(
                "{path}.retry.backoff_secs: {backoff_secs} is not between 1 and {MAX_BACKOFF_SECS} (an hour)"
            ));
        }
        if matches!(**then, FailurePolicy::Retry { .. }) {
            out.push(format!(
                "{path}.retry.then: a retry cannot end in another retry (use more times)"
            ));
        }
    }
}

fn check_thresholds(t: &Thresholds, path: &str, out: &mut Vec<String>) {
    let percent = |v: f64| (0.0..=100.0).contains(&v);
    if !percent(t.min_success_rate) {
        out.push(format!(
            "{path}.min_success_rate: {} is not a percentage (0-100)",
            t.min_success_rate
        ));
    }
    if let Some(d) = t.max_success_rate_drop.filter(|d| !percent(*d)) {
        out.push(format!("{path}.max_success_rate_drop: {d} is not a percentage (0-100)"));
    }
    for (key, v) in [("max_p95_ms", t.max_p95_ms), ("max_p99_ms", t.max_p99_ms)] {
        if v == Some(0) {
            out.push(format!("{path}.{key}: must be more than 0 ms"));
        }
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
    fn durations_are_written_as_everywhere_else_or_in_seconds() {
        let p = plan(
            r#"
name = "P"
template = "CANARY"
[[steps]]
id = "deploy"
name = "Deploy"
type = "DEPLOY"
timeout = "15m"
on_failure = { retry = { times = 2, backoff = "30s" } }
[[steps]]
id = "watch"
name = "Watch"
type = "MONITOR"
duration = "1h"
thresholds = { min_success_rate = 99.0 }
[[steps]]
id = "shift"
name = "Shift"
type = "TRAFFIC_SHIFT"
timeout_secs = 60
"#,
        );
        assert_eq!(p.steps[0].timeout_secs, Some(900));
        assert!(matches!(
            p.steps[0].on_failure,
            FailurePolicy::Retry { backoff_secs: 30, .. }
        ));
        assert_eq!(p.steps[1].duration_secs, Some(3600));
        assert_eq!(p.steps[2].timeout_secs, Some(60));
        let bad: Result<Plan, _> = toml::from_str(
            "name = \"P\"\ntemplate = \"CUSTOM\"\n[[steps]]\nid = \"a\"\nname = \"A\"\ntype = \"DEPLOY\"\ntimeout = \"soon\"\n",
        );
        assert!(bad.unwrap_err().to_string().contains("\"soon\" is not a duration"));
        // A plan stored with an execution (absent values written as null) reads back.
        let stored = serde_json::to_string(&p).unwrap();
        let back: Plan = serde_json::from_str(&stored).unwrap();
        assert_eq!(back.steps[2].duration_secs, None);
        assert_eq!(back.steps[0].timeout_secs, Some(900));
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
on_failure = { retry = { times = 2, backoff_secs = 99999999, then = { retry = { times = 1 } } } }
[[steps]]
id = "w"
name = "W"
type = "MONITOR"
duration_secs = 60
thresholds = { min_success_rate = 995, max_p95_ms = 0 }
"#,
        );
        assert_eq!(
            p.problems("plans.p", &roles()),
            vec![
                "plans.p.steps[0].requires: step \"b\" does not come before this one",
                "plans.p.steps[0].on_failure.retry.times: 0 is not between 1 and 10",
                "plans.p.steps[1].weight: 40 does not increase on the previous shift (50)",
                "plans.p.steps[2].id: duplicate step id \"b\"",
                "plans.p.steps[2].url: the prometheus provider needs url",
                "plans.p.steps[2].queries: the prometheus provider needs queries (new_success, old_success)",
                "plans.p.steps[2].duration_secs: a MONITOR step needs an observation window",
                "plans.p.steps[2].thresholds: a MONITOR step needs thresholds to judge the new version by",
                "plans.p.steps[3].role: unknown role \"opz\"",
                "plans.p.steps[4].provider: \"nginx\" cannot run a HEALTH_CHECK step (use one of kubernetes, health, sim)",
                "plans.p.steps[4].on_failure.retry.backoff_secs: 99999999 is not between 1 and 3600 (an hour)",
                "plans.p.steps[4].on_failure.retry.then: a retry cannot end in another retry (use more times)",
                "plans.p.steps[5].thresholds.min_success_rate: 995 is not a percentage (0-100)",
                "plans.p.steps[5].thresholds.max_p95_ms: must be more than 0 ms",
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

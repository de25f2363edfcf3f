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
                match crate::domain::schedule::parse_schedule(&w.start) {
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
        if let Some(Err(why)) = raw
            .calendar
            .digest
            .as_deref()
            .map(crate::domain::schedule::parse_schedule)
        {
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
mod tests;

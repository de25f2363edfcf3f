//! The meaning of a configuration that has the right shape: names, references between
//! roles, flows, plans, services and applications, schedules and limits. Each check adds
//! every problem it finds, with its dotted path, to `errors`.

use super::*;

/// Role names and their members; the members seeded from the file, by role.
pub(super) fn roles(raw: &RawConfig, errors: &mut Vec<String>) -> BTreeMap<String, Vec<Actor>> {
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
    role_members
}

/// The flows, each stage and field checked.
pub(super) fn flows(raw: &RawConfig, errors: &mut Vec<String>) -> BTreeMap<String, Flow> {
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
            if !seen.insert(st.id.clone()) {
                errors.push(format!("{path}.stages[{i}].id: duplicate stage id \"{}\"", st.id));
            }
            stage(raw, rf, i, &format!("{path}.stages[{i}]"), errors);
            fields(st, &format!("{path}.stages[{i}]"), errors);
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
    flows
}

/// One stage of a flow (`sp` is its path): its id, role, SLA and escalation, channel, and
/// where a rejection sends the ticket.
fn stage(raw: &RawConfig, rf: &RawFlow, i: usize, sp: &str, errors: &mut Vec<String>) {
    let st = &rf.stages[i];
    if !valid_name(&st.id) {
        errors.push(format!(
            "{sp}.id: \"{}\" must use lowercase letters, digits, '-' and '_'",
            st.id
        ));
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
                    errors.push(format!(
                        "{sp}.channel.{p}: must not be empty (leave it out to post in the ticket's channel)"
                    ));
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
}

/// The fields of a stage (`sp` is its path).
fn fields(st: &crate::domain::Stage, sp: &str, errors: &mut Vec<String>) {
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

/// The plans, with their ids.
pub(super) fn plans(raw: &RawConfig, errors: &mut Vec<String>) -> BTreeMap<String, crate::domain::plan::Plan> {
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
    plans
}

/// The services and the default one.
pub(super) fn services(raw: &RawConfig, errors: &mut Vec<String>) -> String {
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
    match &raw.default_service {
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
    }
}

/// The registered applications, their release windows, and every environment they name
/// (`["prod"]` when none is named).
pub(super) fn applications(
    raw: &RawConfig,
    errors: &mut Vec<String>,
) -> (
    Vec<String>,
    BTreeMap<String, Vec<crate::domain::calendar::Window>>,
    Vec<String>,
) {
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
    (applications, release_windows, environments)
}

/// The executor's and the runtime's limits, the swimlanes, the freezes (over the known
/// applications and environments) and the calendar.
pub(super) fn calendar(
    raw: &RawConfig,
    applications: &[String],
    environments: &[String],
    errors: &mut Vec<String>,
) -> Vec<Freeze> {
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
        .filter_map(|(i, f)| f.checked(&format!("freezes[{i}]"), raw.calendar.tz, errors))
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
    freezes
}

/// The applications' Kubernetes targets; a step of a `kubernetes` or `argo-rollouts`
/// provider that leaves a setting it needs unsaid must find it in every target that
/// could fill it in — and there must be one.
pub(super) fn kube_targets(
    raw: &RawConfig,
    plans: &BTreeMap<String, crate::domain::plan::Plan>,
    errors: &mut Vec<String>,
) -> BTreeMap<String, KubeTarget> {
    let mut targets = BTreeMap::new();
    for (i, a) in raw.applications.iter().enumerate() {
        let Some(t) = &a.kubernetes else { continue };
        for (env, _) in t
            .environments
            .iter()
            .filter(|(e, _)| !a.environments.is_empty() && !a.environments.contains(e))
        {
            errors.push(format!(
                "applications[{i}].kubernetes.environments.{env}: {} is not released to \"{env}\" (its environments: {})",
                a.name,
                a.environments.join(", ")
            ));
        }
        if let Some(u) = t
            .api_url
            .as_deref()
            .filter(|u| !(u.starts_with("https://") || u.starts_with("http://")))
        {
            errors.push(format!(
                "applications[{i}].kubernetes.api_url: \"{u}\" is not an http(s) URL of a Kubernetes API server"
            ));
        }
        targets.insert(a.name.clone(), t.clone());
    }
    for (id, plan) in plans {
        for (k, s) in plan.steps.iter().enumerate() {
            for field in s.provider.unsaid() {
                let filled = !targets.is_empty()
                    && targets.values().all(|t| {
                        let mut envs: Vec<&str> = t.environments.keys().map(String::as_str).collect();
                        envs.push("");
                        envs.iter().all(|e| t.in_environment(e).has(field))
                    });
                if !filled {
                    errors.push(format!(
                        "plans.{id}.steps[{k}].{field}: the {} provider needs {field} (on the step, or in every application's [applications.kubernetes])",
                        s.provider.name()
                    ));
                }
            }
        }
    }
    targets
}

use super::*;
use crate::domain::plan::Provider;

#[test]
fn builtin_config_is_the_seed_flow() {
    let c = Config::builtin();
    let (service, flow) = c.flow_of_service("app-release").unwrap();
    assert_eq!(service.name, "App release");
    let roles: Vec<&str> = flow.stages.iter().map(|s| s.role.as_str()).collect();
    assert_eq!(roles, ["product", "test", "ops", "ops", "qc"]);
    assert_eq!(c.find_service("app release"), Some("app-release"));
    let canary = c.plan_of_service("app-release").unwrap();
    let weights: Vec<u8> = canary.steps.iter().filter_map(|s| s.weight).collect();
    assert_eq!(weights, [10, 50, 100], "the seed's 10% → 50% → 100%");
    assert_eq!(
        canary.expected_secs(),
        30 * 60 + 15 * 60 + 30 + 300 + 60 + 180 + 90 + 60 + 1
    );
    assert_eq!(c.plans.len(), 3);
}

#[test]
fn swimlane_policy_schedules_and_hooks_are_checked_with_their_paths() {
    let text = format!("{DEFAULT_CONFIG}\n[swimlanes]\nidle = \"6 days\"\n[[swimlanes.hooks]]\nprovider = \"ftp\"\n");
    let err = Config::parse(&text).unwrap_err();
    assert!(
        err.0[0].starts_with("swimlanes.hooks[0].provider: unknown variant `ftp`"),
        "{err}"
    );
    assert!(
        err.0[1].starts_with("swimlanes.idle: \"6 days\" is not a duration"),
        "{err}"
    );
    let text = format!(
        "{DEFAULT_CONFIG}\n[swimlanes]\nidle = \"90s\"\ngrace = \"0s\"\nnamespace = \"team\"\nexpiring_list = \"0 9 * * *\"\n\
         [[swimlanes.hooks]]\nprovider = \"script\"\n[[swimlanes.hooks]]\nprovider = \"http\"\nurl = \"ftp://x\"\n"
    );
    let err = Config::parse(&text).unwrap_err();
    assert_eq!(
        err.0,
        vec![
            "swimlanes.grace: must be at least \"1s\"",
            "swimlanes.namespace: must contain {lane} (each lane has its own namespace)",
            "swimlanes.expiring_list: \"0 9 * * *\" has 5 fields; a schedule has 6 (seconds minutes hours day-of-month month day-of-week), e.g. \"0 0 10 * * Mon-Fri\"",
            "swimlanes.hooks[0]: a script hook needs `create`, `delete` or both",
            "swimlanes.hooks[1].url: \"ftp://x\" is not an http(s) URL",
        ]
    );
    let ok = Config::parse(&format!(
        "{DEFAULT_CONFIG}\n[swimlanes]\nidle = \"2m\"\ngrace = \"1m\"\nexpiring_list = \"0 0 9 * * Mon-Fri\"\n[[swimlanes.hooks]]\nprovider = \"kubernetes\"\n"
    ))
    .unwrap();
    assert_eq!(ok.swimlanes.policy().idle_ms, 120_000);
    assert_eq!(
        ok.cron_jobs(),
        vec![("cron:swimlanes.expiring".to_string(), "0 0 9 * * Mon-Fri".to_string())]
    );
}

#[test]
fn freezes_and_the_calendar_are_checked_with_their_paths() {
    let text = format!(
        "{DEFAULT_CONFIG}\n[calendar]\ndigest = \"0 10 * * *\"\noverride_role = \"boss\"\n\
         [[freezes]]\nname = \"a\"\nstart = \"0 0 18 * * Fri\"\n\
         [[freezes]]\nname = \"b\"\nfrom = \"soon\"\nuntil = \"2026-12-24 00:00\"\nenvironments = [\"staging\"]\n"
    );
    let err = Config::parse(&text).unwrap_err();
    assert_eq!(
        err.0,
        vec![
            "freezes[0]: give `start` (a cron schedule) and `duration`, or `from` and `until`",
            "freezes[1].from: \"soon\" is not a date and time (write \"2026-12-24 00:00\", UTC)",
            "freezes[1].environments[0]: unknown environment \"staging\" (known: prod)",
            "calendar.digest: \"0 10 * * *\" has 5 fields; a schedule has 6 (seconds minutes hours day-of-month month day-of-week), e.g. \"0 0 10 * * Mon-Fri\"",
            "calendar.override_role: unknown role \"boss\"",
        ]
    );
    let err = Config::parse(&format!("{DEFAULT_CONFIG}\n[calendar]\ntimezone = \"Mars\"\n")).unwrap_err();
    assert!(
        err.0[0].starts_with("calendar.timezone: \"Mars\" is not a timezone"),
        "{err}"
    );
}

#[test]
fn every_shape_problem_is_reported_at_once_in_the_configurations_words() {
    let text = r#"
[roles.qc]
membres = []

[plans.p]
name = "P"
template = "CUSTOM"
steps = [
  { id = "a", name = "A", type = "DEPLOI" },
  { id = "b", name = "B", type = "TRAFFIC_SHIFT", weight = 300 },
  { id = "c", name = "C", type = "MONITOR", duration_secs = 60, thresholds = "high" },
]

[executor]
concurrency = "many"

[bogus]
x = 1
"#;
    let err = Config::parse(text).unwrap_err();
    assert_eq!(
        err.0,
        vec![
            "bogus: unknown key (expected one of default_service, roles, applications, services, flows, plans, executor, runtime, sim, swimlanes, freezes, calendar)",
            "executor.concurrency: invalid type: string \"many\", expected a whole number, 0 or more",
            "plans.p.steps[0].type: unknown variant `DEPLOI`, expected one of `VERIFY_PACKAGE`, `DEPLOY`, `HEALTH_CHECK`, `TEST`, `TRAFFIC_SHIFT`, `MONITOR`, `APPROVAL_GATE`, `SCRIPT`, `NOTIFY`, `ROLLBACK`",
            "plans.p.steps[1].weight: invalid value: integer `300`, expected a whole number from 0 to 255",
            "plans.p.steps[2].thresholds: invalid type: string \"high\", expected a table",
            "roles.qc.membres: unknown key `membres`, expected `description` or `members`",
        ]
    );
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let text = DEFAULT_CONFIG.replace(
        "role = \"ops\"\non_reject = \"submitter\"\n\n[[flows.app-release.stages]]\nid = \"release\"",
        "role = \"opz\"\non_reject = \"submitter\"\n\n[[flows.app-release.stages]]\nid = \"release\"",
    )
        + "\n[roles.bad]\nmembers = [\"U123\", \"irc:x\", \"slack:U9X><!channel>\", \"discord:bob\"]\n[services.other]\nname = \"x\"\nflow = \"nope\"\n";
    let err = Config::parse(&text).unwrap_err();
    assert_eq!(
        err.0,
        vec![
            "roles.bad.members[0]: \"U123\" is not of the form platform:user-id (slack:U0123ABCD)".to_string(),
            "roles.bad.members[1]: unknown platform \"irc\" (expected one of slack, discord, dingtalk, local)".to_string(),
            "roles.bad.members[2]: \"slack:U9X><!channel>\": a Slack user id starts with U or W and has only capital letters and digits (U0123ABCD)".to_string(),
            "roles.bad.members[3]: \"discord:bob\": a Discord user id is a number (its snowflake, e.g. 80351110224678912)".to_string(),
            "flows.app-release.stages[2].role: unknown role \"opz\"".to_string(),
            "services.other.flow: unknown flow \"nope\"".to_string(),
        ]
    );
}

#[test]
fn unknown_keys_and_bad_references_are_refused() {
    // The unknown key, and (in the same run) what the rest of the file lacks.
    let err = Config::parse("[roles.admin]\ncolour = \"red\"\n").unwrap_err();
    assert_eq!(
        err.0,
        [
            "roles.admin.colour: unknown key `colour`, expected `description` or `members`",
            "services: at least one service is required"
        ]
    );
    let text = r#"
[roles.admin]
[roles.ops]
[services.s]
name = "S"
flow = "f"
[flows.f]
name = "F"
[[flows.f.stages]]
id = "submit"
role = "ops"
name = "Submit"
fields = [{ id = "x", label = "X", kind = "select" }, { id = "x", label = "", kind = "md5", options = ["a"] }, { id = "y", label = "Y", kind = "select", options = ["a", "", "a"] }]
starts_execution = true
[[flows.f.stages]]
id = "a"
name = "A"
role = "ops"
approvals_required = 0
on_reject = { stage = "b" }
channel = ""
starts_execution = true
[[flows.f.stages]]
id = "b"
name = "B"
role = "ops"
channel = { slack = "C0OPS", irc = "ops", discord = " " }
"#;
    let err = Config::parse(text).unwrap_err();
    assert_eq!(
        err.0,
        vec![
            "flows.f.stages[0].starts_execution: the submission stage cannot start the release (an approval stage does)".to_string(),
            "flows.f.stages[0].fields[0].options: a select field needs options".to_string(),
            "flows.f.stages[0].fields[1].id: duplicate field id \"x\"".to_string(),
            "flows.f.stages[0].fields[1].label: must not be empty".to_string(),
            "flows.f.stages[0].fields[1].options: only select fields have options".to_string(),
            "flows.f.stages[0].fields[2].options[1]: must not be empty".to_string(),
            "flows.f.stages[0].fields[2].options[2]: duplicate option \"a\"".to_string(),
            "flows.f.stages[1].approvals_required: must be at least 1".to_string(),
            "flows.f.stages[1].channel: must not be empty (leave it out to post in the ticket's channel)".to_string(),
            "flows.f.stages[1].starts_execution: only one stage starts the release (an earlier one does already)".to_string(),
            "flows.f.stages[1].on_reject: stage \"b\" is not earlier than this one".to_string(),
            "flows.f.stages[2].channel.discord: must not be empty (leave it out to post in the ticket's channel)".to_string(),
            "flows.f.stages[2].channel.irc: unknown platform (expected one of slack, discord, dingtalk, local)"
                .to_string(),
        ]
    );
}

#[test]
fn a_stage_channel_is_one_for_all_or_one_per_platform() {
    use crate::domain::flow::StageChannel;
    let one: StageChannel = toml::from_str::<toml::Value>("c = \"C0OPS\"").unwrap()["c"]
        .clone()
        .try_into()
        .unwrap();
    assert_eq!((one.on("slack"), one.on("discord")), (Some("C0OPS"), Some("C0OPS")));
    let per: StageChannel = toml::from_str::<toml::Value>("c = { slack = \"C0OPS\", dingtalk = \"cid1\" }").unwrap()
        ["c"]
        .clone()
        .try_into()
        .unwrap();
    assert_eq!(
        (per.on("slack"), per.on("dingtalk"), per.on("discord")),
        (Some("C0OPS"), Some("cid1"), None)
    );
}

#[test]
fn secrets_are_redacted() {
    let s = Secret::new("xoxb-very-secret");
    assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
}

#[test]
fn shape_and_meaning_problems_come_in_one_run() {
    let text = DEFAULT_CONFIG
        .replacen(
            "description = \"Quality control: evaluate the release\"",
            "description = \"Quality control: evaluate the release\"\ncolour = \"red\"",
            1,
        )
        .replacen("role = \"ops\"", "role = \"opz\"", 1);
    let ConfigErrors(problems) = Config::parse(&text).expect_err("two problems");
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].starts_with("roles.qc"), "{problems:#?}");
    assert!(problems[0].contains("colour"), "{problems:#?}");
    assert!(problems[1].contains("unknown role \"opz\""), "{problems:#?}");
    // A value of the wrong type leaves nothing sure to check: shape problems only.
    let wrong = DEFAULT_CONFIG.replacen("role = \"ops\"", "role = 7", 1);
    let ConfigErrors(problems) = Config::parse(&wrong).expect_err("a problem");
    assert_eq!(problems.len(), 1, "{problems:#?}");
}

#[test]
fn a_kubernetes_step_names_what_it_lacks() {
    let text = format!(
        "{DEFAULT_CONFIG}\n[plans.k]\nname = \"K\"\ntemplate = \"ROLLING\"\nsteps = [\n  {{ id = \"d\", name = \"D\", type = \"DEPLOY\", provider = \"kubernetes\", namespace = \" \", container = \"app\", api_url = \"kube.local\" }},\n]\n"
    );
    let ConfigErrors(problems) = Config::parse(&text).expect_err("problems");
    assert_eq!(
        problems,
        [
            "plans.k.steps[0].api_url: \"kube.local\" is not an http(s) URL of a Kubernetes API server",
            "plans.k.steps[0].namespace: the kubernetes provider needs namespace (on the step, or in every application's [applications.kubernetes])",
            "plans.k.steps[0].deployment: the kubernetes provider needs deployment (on the step, or in every application's [applications.kubernetes])"
        ]
    );
}

#[test]
fn what_a_kubernetes_step_leaves_unsaid_comes_from_the_applications_target_per_environment() {
    let target = "\n[[applications]]\nname = \"payments\"\nenvironments = [\"staging\", \"prod\"]\n[applications.kubernetes]\nnamespace = \"payments\"\ndeployment = \"payments-api\"\ncontainer = \"app\"\ncontext = \"prod-cluster\"\n[applications.kubernetes.environments.staging]\nnamespace = \"payments-staging\"\ncontext = \"staging-cluster\"\n";
    let plan = "\n[plans.k]\nname = \"K\"\ntemplate = \"ROLLING\"\nsteps = [\n  { id = \"d\", name = \"D\", type = \"DEPLOY\", provider = \"kubernetes\" },\n]\n";
    let config = Config::parse(&format!("{DEFAULT_CONFIG}{target}{plan}")).expect("valid");
    let staging = config.plan_for(&config.plans["k"], "payments", "staging");
    let Provider::Kubernetes {
        namespace,
        deployment,
        context,
        ..
    } = &staging.steps[0].provider
    else {
        panic!("a kubernetes step")
    };
    assert_eq!(
        (namespace.as_str(), deployment.as_str(), context.as_deref()),
        ("payments-staging", "payments-api", Some("staging-cluster"))
    );
    let prod = config.plan_for(&config.plans["k"], "payments", "prod");
    assert!(
        matches!(&prod.steps[0].provider, Provider::Kubernetes { namespace, context, .. } if namespace == "payments" && context.as_deref() == Some("prod-cluster"))
    );

    // A target for an environment the application is not released to is a mistake.
    let wrong = target.replace("environments.staging", "environments.stagin");
    let ConfigErrors(problems) = Config::parse(&format!("{DEFAULT_CONFIG}{wrong}{plan}")).expect_err("a problem");
    assert_eq!(
        problems,
        ["applications[0].kubernetes.environments.stagin: payments is not released to \"stagin\" (its environments: staging, prod)"]
    );
}

#[test]
fn a_blue_green_step_needs_its_service() {
    let text = format!(
        "{DEFAULT_CONFIG}\n[plans.k]\nname = \"K\"\ntemplate = \"BLUE_GREEN\"\nsteps = [\n  {{ id = \"d\", name = \"D\", type = \"DEPLOY\", provider = \"kubernetes\", namespace = \"n\", deployment = \"web\", container = \"app\", strategy = \"blue-green\" }},\n]\n"
    );
    let ConfigErrors(problems) = Config::parse(&text).expect_err("a problem");
    assert_eq!(
        problems,
        ["plans.k.steps[0].service: a blue-green release needs the Service it switches"]
    );
}

#[test]
fn an_argo_rollouts_step_names_what_it_lacks_and_where_it_fits() {
    let text = format!(
        "{DEFAULT_CONFIG}\n[plans.a]\nname = \"A\"\ntemplate = \"CANARY\"\nsteps = [\n  {{ id = \"d\", name = \"D\", type = \"DEPLOY\", provider = \"argo-rollouts\", namespace = \"n\", deployment = \"web\", container = \"app\" }},\n  {{ id = \"t\", name = \"T\", type = \"TRAFFIC_SHIFT\", provider = \"argo-rollouts\", namespace = \"n\", rollout = \"web\", container = \"app\", weight = 100 }},\n]\n"
    );
    let ConfigErrors(problems) = Config::parse(&text).expect_err("problems");
    assert_eq!(
        problems,
        [
            "plans.a.steps[0].deployment: not a setting of the argo-rollouts provider (it belongs to kubernetes)",
            "plans.a.steps[1].provider: \"argo-rollouts\" cannot run a TRAFFIC_SHIFT step (use one of kubernetes, nginx, script, http, sim)"
        ]
    );
}

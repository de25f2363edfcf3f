//! The `kubernetes` provider: a rolling release of one container of a Deployment.
//!
//! - DEPLOY records what runs before (the image by the digest the pods really run,
//!   `status.containerStatuses[].imageID`, and the replicas), sets the container's image
//!   with a strategic-merge patch under the field manager `releasebot` (once: a step that
//!   resumes after a crash finds the image set and only waits), then waits for the rollout
//!   as `kubectl rollout status` does; `ProgressDeadlineExceeded` fails it.
//! - HEALTH_CHECK passes once the rollout is complete and no pod's container is waiting in
//!   `ImagePullBackOff`, `ErrImagePull`, `CrashLoopBackOff`, `CreateContainerConfigError` or
//!   `CreateContainerError`, nor was `OOMKilled`; a failure names the pod, the container
//!   and the reason, and its log holds the container's last lines.
//! - A rollback sets the recorded image and replicas back and waits for that rollout.
//!
//! Waiting is polling with a growing interval (2 s, up to 15 s), never a hot loop.
//! Errors say what a person can act on: a 403 names the verb, the resource and the
//! namespace the service account lacks; a 404 names the object.

mod access;
pub mod argo;
mod blue_green;
mod canary;
pub mod change;
mod routing;

use super::providers::{done, summary, StepCtx, StepOutcome, Summary};
use crate::domain::plan::{KubeStrategy, Provider, StepType};
use crate::domain::ticket::Ticket;
pub use access::{access_problems, client, client_for, role_yaml, Access, RBAC};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The field manager of every change releasebot makes.
pub const FIELD_MANAGER: &str = "releasebot";

/// Waiting reasons of a container that will not become ready by itself (kubectl's list).
const STUCK: [&str; 5] = [
    "ImagePullBackOff",
    "ErrImagePull",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Lines of a failing container's log kept in the step's output.
const LOG_LINES: i64 = 20;

/// The label that tells a canary's pods from the stable ones (Kubernetes' own canary
/// pattern: both Deployments share every other label, which the Service selects).
pub const TRACK: &str = "track";

/// What ran before the release, to return to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Before {
    /// The image by digest when the pods report one, else as the spec names it.
    pub image: String,
    pub replicas: i32,
    /// A canary Deployment was started beside the stable one.
    #[serde(default)]
    pub canary: bool,
    /// The blue-green slot that was live (`blue` or `green`), to switch back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// The image as the pod template named it (`image` holds the digest when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named: Option<String>,
    /// The ConfigMaps and Secrets the pod template referred to (`configmap/NAME`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<String>,
}

impl Before {
    /// What ran, as a baseline records it.
    pub fn workload(&self) -> crate::store::executions::Workload {
        crate::store::executions::Workload {
            image: Some(self.named.clone().unwrap_or_else(|| self.image.clone())),
            digest: self.image.contains("@sha256:").then(|| self.image.clone()),
            config_refs: self.config.clone(),
        }
    }
}

/// What the Deployment's `container` runs now: the image by the digest its pods report,
/// the replicas, and the ConfigMaps and Secrets its pod template refers to.
pub(super) fn snapshot(d: &Deployment, pods: &[Pod], container: &str) -> Before {
    let named = container_image(d, container);
    Before {
        image: running_digest(pods, container)
            .or_else(|| named.clone())
            .unwrap_or_default(),
        replicas: d.spec.replicas.unwrap_or(1),
        canary: false,
        slot: None,
        named,
        config: config_refs(d),
    }
}

/// The ConfigMaps and Secrets a pod template refers to (volumes, `envFrom`, and `env`
/// `valueFrom`), sorted, each once.
pub(super) fn config_refs(d: &Deployment) -> Vec<String> {
    let template = serde_json::to_value(&d.spec.template).unwrap_or_default();
    let spec = &template["spec"];
    let mut refs = std::collections::BTreeSet::new();
    for v in spec["volumes"].as_array().into_iter().flatten() {
        if let Some(n) = v["configMap"]["name"].as_str() {
            refs.insert(format!("configmap/{n}"));
        }
        if let Some(n) = v["secret"]["secretName"].as_str() {
            refs.insert(format!("secret/{n}"));
        }
    }
    let containers = spec["containers"].as_array().into_iter().flatten();
    for c in containers.chain(spec["initContainers"].as_array().into_iter().flatten()) {
        for e in c["envFrom"].as_array().into_iter().flatten() {
            if let Some(n) = e["configMapRef"]["name"].as_str() {
                refs.insert(format!("configmap/{n}"));
            }
            if let Some(n) = e["secretRef"]["name"].as_str() {
                refs.insert(format!("secret/{n}"));
            }
        }
        for e in c["env"].as_array().into_iter().flatten() {
            if let Some(n) = e["valueFrom"]["configMapKeyRef"]["name"].as_str() {
                refs.insert(format!("configmap/{n}"));
            }
            if let Some(n) = e["valueFrom"]["secretKeyRef"]["name"].as_str() {
                refs.insert(format!("secret/{n}"));
            }
        }
    }
    refs.into_iter().collect()
}

/// The step's Deployment and container, its placeholders filled in from the ticket.
pub(super) struct Target {
    pub(super) namespace: String,
    pub(super) deployment: String,
    pub(super) container: String,
    pub(super) image: Option<String>,
    pub(super) strategy: KubeStrategy,
    /// The canary Ingress whose weight TRAFFIC_SHIFT sets (ingress-nginx).
    pub(super) ingress: Option<String>,
    /// The HTTPRoute and the new version's backend whose weights TRAFFIC_SHIFT sets.
    pub(super) route: Option<(String, String)>,
    /// The Service a blue-green release switches.
    pub(super) service: Option<String>,
    /// Where a missing Deployment is copied from (a swimlane's).
    pub(super) from_namespace: Option<String>,
}

impl Target {
    pub(super) fn canary(&self) -> String {
        format!("{}-canary", self.deployment)
    }

    /// The new version's image, given what the stable Deployment runs.
    pub(super) fn wanted(&self, current: &str, ticket: &Ticket) -> String {
        wanted_image(self.image.as_deref(), current, ticket)
    }
}

pub(super) fn fill(template: &str, ticket: &Ticket) -> String {
    template
        .replace("{application}", &ticket.application)
        .replace("{environment}", &super::environment_of(ticket))
        .replace("{version}", ticket.fields.get("version").map_or("", String::as_str))
}

/// A step whose target is not all said (on the step or in the application's target): it
/// fails, naming the first setting missing.
pub(super) fn unsaid(ticket: &Ticket, settings: [(&str, &String); 3]) -> Option<StepOutcome> {
    let (setting, _) = settings.iter().find(|(_, v)| v.trim().is_empty())?;
    Some(done(
        false,
        summary(
            "k8s_no_target",
            json!({ "setting": setting, "application": ticket.application, "environment": super::environment_of(ticket) }),
        ),
    ))
}

/// The error as a result a person can act on.
pub(super) fn failure(e: &kube::Error, verb: &str, resource: &str, t: &Target) -> Summary {
    failure_in(e, verb, resource, &t.namespace, &t.deployment)
}

/// The error of a request about `name` in `namespace` as a result a person can act on.
pub(super) fn failure_in(e: &kube::Error, verb: &str, resource: &str, namespace: &str, name: &str) -> Summary {
    match e {
        kube::Error::Api(s) if s.code == 403 => summary(
            "k8s_forbidden",
            json!({ "verb": verb, "resource": resource, "namespace": namespace, "message": s.message }),
        ),
        kube::Error::Api(s) if s.code == 404 => summary(
            "k8s_not_found",
            json!({ "resource": resource, "name": name, "namespace": namespace }),
        ),
        kube::Error::Api(s) => summary(
            "k8s_refused",
            json!({ "verb": verb, "resource": resource, "code": s.code, "reason": s.reason, "message": s.message }),
        ),
        other => summary("k8s_unreachable", json!({ "error": other.to_string() })),
    }
}

/// When to look again: every 2 s at first, up to every 15 s as the wait grows.
pub(super) fn next_look(started_at: i64, now: i64) -> i64 {
    now + ((now - started_at) / 10).clamp(2_000, 15_000)
}

/// Runs (or polls) a `kubernetes` step.
pub async fn run(ctx: StepCtx<'_>) -> StepOutcome {
    let Provider::Kubernetes {
        namespace,
        deployment,
        container,
        image,
        api_url,
        token_env,
        strategy,
        ingress,
        route,
        backend,
        service,
        context,
        action,
        from_namespace,
    } = &ctx.step.provider
    else {
        return done(
            false,
            summary(
                "invalid_settings",
                json!({ "setting": "provider", "why": "not kubernetes" }),
            ),
        );
    };
    let t = Target {
        namespace: fill(namespace, ctx.ticket),
        deployment: fill(deployment, ctx.ticket),
        container: fill(container, ctx.ticket),
        image: image.as_deref().map(|i| fill(i, ctx.ticket)),
        strategy: strategy.unwrap_or(KubeStrategy::Rolling),
        ingress: ingress.as_deref().map(|i| fill(i, ctx.ticket)),
        route: route
            .as_deref()
            .map(|r| (fill(r, ctx.ticket), fill(backend.as_deref().unwrap_or(""), ctx.ticket))),
        service: service.as_deref().map(|s| fill(s, ctx.ticket)),
        from_namespace: from_namespace.as_deref().map(|n| fill(n, ctx.ticket)),
    };
    if let Some(unsaid) = unsaid(
        ctx.ticket,
        [
            ("namespace", &t.namespace),
            ("deployment", &t.deployment),
            ("container", &t.container),
        ],
    ) {
        return unsaid;
    }
    let access = Access {
        api_url: api_url.as_deref(),
        token_env: token_env.as_deref(),
        context: context.as_deref(),
    };
    let client = match client_for(access).await {
        Ok(c) => c,
        Err(e) => return done(false, summary("k8s_unreachable", json!({ "error": e }))),
    };
    if let (Some(name), StepType::TrafficShift | StepType::Rollback) = (&t.ingress, ctx.step.kind) {
        let ingresses: Api<Ingress> = Api::namespaced(client, &t.namespace);
        return routing::ingress_weight(ctx, &t, name, &ingresses).await;
    }
    if let (Some((route, backend)), StepType::TrafficShift | StepType::Rollback) = (&t.route, ctx.step.kind) {
        return routing::route_weight(ctx, &t, client, route, backend).await;
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &t.namespace);
    let pods: Api<Pod> = Api::namespaced(client, &t.namespace);
    if let (Some(action), StepType::Deploy) = (action, ctx.step.kind) {
        return change::run(ctx, &t, action, &deployments, &pods).await;
    }
    match (ctx.step.kind, t.strategy) {
        (StepType::Deploy, KubeStrategy::Rolling) => deploy(ctx, &t, &deployments, &pods).await,
        (StepType::Deploy, KubeStrategy::Canary) => canary::start(ctx, &t, &deployments).await,
        (StepType::Deploy, KubeStrategy::BlueGreen) => blue_green::ready(ctx, &t, &deployments).await,
        (StepType::TrafficShift | StepType::Rollback, KubeStrategy::BlueGreen) => {
            blue_green::switch(ctx, &t, &deployments).await
        }
        (StepType::TrafficShift, _) => canary::shift(ctx, &t, &deployments).await,
        (StepType::HealthCheck, _) => health(ctx, &t, &deployments, &pods).await,
        (StepType::Rollback, _) => rollback(ctx, &t, &deployments).await,
        (other, _) => done(
            false,
            summary("k8s_unsupported_step", json!({ "step": format!("{other:?}") })),
        ),
    }
}

pub(super) fn container_image(d: &Deployment, container: &str) -> Option<String> {
    d.spec
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == container)?
        .image
        .clone()
}

/// The new version's image: the step's `image`, else what runs now with the ticket's
/// version as its tag.
pub(super) fn wanted_image(image: Option<&str>, current: &str, ticket: &Ticket) -> String {
    let version = ticket.fields.get("version").map_or("", String::as_str);
    image.map_or_else(|| with_tag(current, version), str::to_string)
}

/// Waits before the next look (then twice as long, up to 15 s); the step's result if a
/// person asked to stop it meanwhile.
pub(super) async fn look_again_after(ctx: &StepCtx<'_>, wait: &mut std::time::Duration) -> Option<StepOutcome> {
    tokio::select! {
        _ = tokio::time::sleep(*wait) => {}
        _ = ctx.stop.cancelled() => return Some(done(false, summary("terminated", json!({ "grace": ctx.grace.as_secs() })))),
    }
    *wait = (*wait * 2).min(std::time::Duration::from_secs(15));
    None
}

/// `repo:tag` (or `repo@digest`) with `version` as its tag.
pub(super) fn with_tag(image: &str, version: &str) -> String {
    let repo = image.split('@').next().unwrap_or(image);
    // A `:` after the last `/` starts the tag (one before it is a registry's port).
    let repo = match repo.rfind(':') {
        Some(i) if i > repo.rfind('/').unwrap_or(0) => &repo[..i],
        _ => repo,
    };
    format!("{repo}:{version}")
}

/// The pods of the Deployment (by its selector's labels).
pub(super) async fn pods_of(d: &Deployment, pods: &Api<Pod>) -> Result<Vec<Pod>, kube::Error> {
    let labels = d.spec.selector.match_labels.clone().unwrap_or_default();
    let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(pods
        .list(&ListParams::default().labels(&selector.join(",")))
        .await?
        .items)
}

/// The digest the pods run for `container` (`repo@sha256:…`), if they report one.
pub(super) fn running_digest(pods: &[Pod], container: &str) -> Option<String> {
    pods.iter()
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .filter(|c| c.name == container && !c.image_id.is_empty())
        .map(|c| c.image_id.trim_start_matches("docker-pullable://").to_string())
        .find(|id| id.contains("@sha256:"))
}

/// Where the rollout stands, as `kubectl rollout status` judges it.
pub(super) enum Rollout {
    Complete,
    Waiting,
    Stalled(String),
}

pub(super) fn rollout(d: &Deployment) -> Rollout {
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = &d.status else {
        return Rollout::Waiting;
    };
    if let Some(c) = status.conditions.iter().flatten().find(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.status.as_deref() == Some("False")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return Rollout::Stalled(c.message.clone().unwrap_or_default());
    }
    let wanted = d.spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let complete = status.observed_generation.unwrap_or(0) >= generation
        && updated >= wanted
        && status.replicas.unwrap_or(0) == updated
        && status.available_replicas.unwrap_or(0) >= updated;
    if complete {
        Rollout::Complete
    } else {
        Rollout::Waiting
    }
}

async fn deploy(ctx: StepCtx<'_>, t: &Target, deployments: &Api<Deployment>, pods: &Api<Pod>) -> StepOutcome {
    let d = match deployments.get_opt(&t.deployment).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return match &t.from_namespace {
                Some(from) => change::copy_into(ctx, t, from, deployments).await,
                None => done(
                    false,
                    summary(
                        "k8s_not_found",
                        json!({ "resource": "deployments", "name": t.deployment, "namespace": t.namespace }),
                    ),
                ),
            }
        }
        Err(e) => return done(false, failure(&e, "get", "deployments", t)),
    };
    let Some(current) = container_image(&d, &t.container) else {
        return done(
            false,
            summary(
                "k8s_no_container",
                json!({ "container": t.container, "deployment": t.deployment }),
            ),
        );
    };
    let wanted = t.wanted(&current, ctx.ticket);
    let d = if current == wanted {
        // Set already (this step resumed after a restart, or the image was there).
        d
    } else {
        if ctx.run.kube.is_none() {
            match pods_of(&d, pods).await {
                Ok(p) => ctx.run.kube = Some(snapshot(&d, &p, &t.container)),
                Err(e) => return done(false, failure(&e, "list", "pods", t)),
            }
        }
        match set_image(deployments, t, &wanted).await {
            Ok(d) => d,
            Err(e) => return done(false, failure(&e, "patch", "deployments", t)),
        }
    };
    match rollout(&d) {
        Rollout::Complete => {
            ctx.run.deployed = true;
            // What runs now, by digest, for the release's baseline.
            match pods_of(&d, pods).await {
                Ok(p) => ctx.run.kube_released = Some(snapshot(&d, &p, &t.container)),
                Err(e) => return done(false, failure(&e, "list", "pods", t)),
            }
            done(
                true,
                summary("k8s_rolled_out", json!({ "deployment": t.deployment, "image": wanted })),
            )
        }
        // A stalled rollout names the pod that holds it up, when one does.
        Rollout::Stalled(why) => match pods_of(&d, pods).await.map(|p| stuck(&p, &t.container)) {
            Ok(Some(s)) => failing_pod(pods, t, s).await,
            _ => done(
                false,
                summary("k8s_stalled", json!({ "deployment": t.deployment, "why": why })),
            ),
        },
        Rollout::Waiting => StepOutcome::Continue {
            next_at: next_look(ctx.started_at, ctx.now),
        },
    }
}

/// A pod that will not become ready, as a failed step: the reason, and the container's
/// last log lines as the step's output.
pub(super) async fn failing_pod(
    pods: &Api<Pod>,
    t: &Target,
    (pod, reason, message): (String, String, String),
) -> StepOutcome {
    let log = pods
        .logs(
            &pod,
            &LogParams {
                container: Some(t.container.clone()),
                tail_lines: Some(LOG_LINES),
                ..Default::default()
            },
        )
        .await
        .map(|l| l.lines().map(str::to_string).collect())
        .unwrap_or_else(|e| vec![format!("(no log: {e})")]);
    StepOutcome::Done {
        ok: false,
        summary: summary(
            "k8s_pod_failing",
            json!({ "pod": pod, "container": t.container, "reason": reason, "message": message }),
        ),
        log,
    }
}

pub(super) async fn set_image(
    deployments: &Api<Deployment>,
    t: &Target,
    image: &str,
) -> Result<Deployment, kube::Error> {
    let patch =
        json!({ "spec": { "template": { "spec": { "containers": [{ "name": t.container, "image": image }] } } } });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    deployments
        .patch(&t.deployment, &params, &Patch::Strategic(patch))
        .await
}

async fn health(ctx: StepCtx<'_>, t: &Target, deployments: &Api<Deployment>, pods: &Api<Pod>) -> StepOutcome {
    // The new version's pods: the canary's while there is one.
    let canary = match t.strategy {
        KubeStrategy::Canary => match deployments.get_opt(&t.canary()).await {
            Ok(c) => c,
            Err(e) => return done(false, failure(&e, "get", "deployments", t)),
        },
        // The slot DEPLOY readied: the one that was not live.
        KubeStrategy::BlueGreen => {
            let was = ctx.run.kube.as_ref().and_then(|b| b.slot.clone());
            match was {
                Some(was) => match deployments
                    .get_opt(&blue_green::named(t, blue_green::other(&was)))
                    .await
                {
                    Ok(d) => d,
                    Err(e) => return done(false, failure(&e, "get", "deployments", t)),
                },
                None => None,
            }
        }
        KubeStrategy::Rolling => None,
    };
    let d = match canary {
        Some(c) => c,
        None => match deployments.get(&t.deployment).await {
            Ok(d) => d,
            Err(e) => return done(false, failure(&e, "get", "deployments", t)),
        },
    };
    let listed = match pods_of(&d, pods).await {
        Ok(p) => p,
        Err(e) => return done(false, failure(&e, "list", "pods", t)),
    };
    if let Some(s) = stuck(&listed, &t.container) {
        return failing_pod(pods, t, s).await;
    }
    let name = d.metadata.name.clone().unwrap_or_else(|| t.deployment.clone());
    match rollout(&d) {
        Rollout::Complete => {
            let ready = d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
            done(
                true,
                summary("k8s_healthy", json!({ "deployment": name, "ready": ready })),
            )
        }
        Rollout::Stalled(why) => done(false, summary("k8s_stalled", json!({ "deployment": name, "why": why }))),
        Rollout::Waiting => StepOutcome::Continue {
            next_at: next_look(ctx.started_at, ctx.now),
        },
    }
}

/// The first pod whose `container` will not become ready: (pod, reason, message).
pub(super) fn stuck(pods: &[Pod], container: &str) -> Option<(String, String, String)> {
    for p in pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        let statuses = p.status.as_ref().and_then(|s| s.container_statuses.as_ref());
        for c in statuses.into_iter().flatten().filter(|c| c.name == container) {
            if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
                let reason = w.reason.clone().unwrap_or_default();
                if STUCK.contains(&reason.as_str()) {
                    return Some((name, reason, w.message.clone().unwrap_or_default()));
                }
            }
            if let Some(term) = c.last_state.as_ref().and_then(|s| s.terminated.as_ref()) {
                if term.reason.as_deref() == Some("OOMKilled") {
                    return Some((name, "OOMKilled".into(), format!("exit code {}", term.exit_code)));
                }
            }
        }
    }
    None
}

/// Sets the recorded image and replicas back, and waits (within the rollback's own time
/// limit) for that rollout.
async fn rollback(ctx: StepCtx<'_>, t: &Target, deployments: &Api<Deployment>) -> StepOutcome {
    ctx.run.traffic = 0;
    let Some(before) = ctx.run.kube.clone() else {
        return done(true, summary("traffic_back", json!({ "restored": false })));
    };
    if before.canary {
        if let Err(e) = remove(deployments, &t.canary()).await {
            return done(false, failure(&e, "delete", "deployments", t));
        }
    }
    let patch = json!({ "spec": { "replicas": before.replicas, "template": { "spec": { "containers": [{ "name": t.container, "image": before.image }] } } } });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    if let Err(e) = deployments
        .patch(&t.deployment, &params, &Patch::Strategic(patch))
        .await
    {
        return done(false, failure(&e, "patch", "deployments", t));
    }
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        let d = match deployments.get(&t.deployment).await {
            Ok(d) => d,
            Err(e) => return done(false, failure(&e, "get", "deployments", t)),
        };
        match rollout(&d) {
            Rollout::Complete => {
                return done(
                    true,
                    summary(
                        "k8s_restored",
                        json!({ "deployment": t.deployment, "image": before.image, "replicas": before.replicas }),
                    ),
                )
            }
            Rollout::Stalled(why) => {
                return done(
                    false,
                    summary("k8s_stalled", json!({ "deployment": t.deployment, "why": why })),
                )
            }
            Rollout::Waiting => {}
        }
        if let Some(stopped) = look_again_after(&ctx, &mut wait).await {
            return stopped;
        }
    }
}

/// Deletes a Deployment; one that is gone already counts as deleted.
pub(super) async fn remove(deployments: &Api<Deployment>, name: &str) -> Result<(), kube::Error> {
    match deployments.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets a Deployment's replicas (an absolute count: setting it twice is once).
pub(super) async fn scale(deployments: &Api<Deployment>, name: &str, replicas: i32) -> Result<Deployment, kube::Error> {
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    deployments
        .patch(
            name,
            &params,
            &Patch::Strategic(json!({ "spec": { "replicas": replicas } })),
        )
        .await
}

/// Creates a Deployment under releasebot's field manager; one that exists already counts.
pub(super) async fn create(deployments: &Api<Deployment>, d: &Deployment) -> Result<(), kube::Error> {
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match deployments.create(&params, d).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_becomes_the_images_tag() {
        assert_eq!(
            with_tag("registry.example.com:5000/pay/api:1.0", "2.1.0"),
            "registry.example.com:5000/pay/api:2.1.0"
        );
        assert_eq!(with_tag("pay/api", "2.1.0"), "pay/api:2.1.0");
        assert_eq!(with_tag("pay/api@sha256:abc", "2.1.0"), "pay/api:2.1.0");
    }

    #[test]
    fn waits_grow_from_two_to_fifteen_seconds() {
        assert_eq!(next_look(0, 0), 2_000);
        assert_eq!(next_look(0, 60_000), 66_000);
        assert_eq!(next_look(0, 600_000), 615_000);
    }
}

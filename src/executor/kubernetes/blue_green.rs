//! Blue-green (`strategy = "blue-green"`): two Deployments, `NAME-blue` and `NAME-green`,
//! whose pods carry `slot: blue|green`; the Service's selector names the live slot. DEPLOY
//! puts the new image on the idle slot's Deployment (made from the live one when it does
//! not exist yet) with the live one's replicas and waits for it; a TRAFFIC_SHIFT switches
//! the Service's selector to it (all at once: blue-green has no partial split); a
//! rollback switches it back. Each change sets an absolute state (twice is once).

use super::*;
use k8s_openapi::api::core::v1::Service;

/// The pod label the Service selects the live slot by.
pub const SLOT: &str = "slot";

pub(super) fn other(slot: &str) -> &'static str {
    if slot == "green" {
        "blue"
    } else {
        "green"
    }
}

pub(super) fn named(t: &Target, slot: &str) -> String {
    format!("{}-{slot}", t.deployment)
}

/// The Service's live slot; the step's failure when it cannot be read.
async fn live_slot(t: &Target, services: &Api<Service>) -> Result<String, StepOutcome> {
    let Some(name) = t.service.as_deref() else {
        // `check` refuses such a step; a plan stored before that check may still lack it.
        return Err(done(false, summary("k8s_blue_green_needs_service", json!({}))));
    };
    let service = services
        .get(name)
        .await
        .map_err(|e| done(false, failure(&e, "get", "services", t)))?;
    let slot = service.spec.and_then(|s| s.selector).and_then(|s| s.get(SLOT).cloned());
    slot.ok_or_else(|| done(false, summary("k8s_service_needs_slot", json!({ "service": name }))))
}

/// DEPLOY: the idle slot's Deployment runs the new image with the live one's replicas.
pub(super) async fn ready(ctx: StepCtx<'_>, t: &Target, deployments: &Api<Deployment>) -> StepOutcome {
    let client = deployments.clone().into_client();
    let services: Api<Service> = Api::namespaced(client.clone(), &t.namespace);
    let live = match live_slot(t, &services).await {
        Ok(s) => s,
        Err(failed) => return failed,
    };
    let idle = other(&live);
    let live_d = match deployments.get(&named(t, &live)).await {
        Ok(d) => d,
        Err(e) => return done(false, failure(&e, "get", "deployments", t)),
    };
    let Some(current) = container_image(&live_d, &t.container) else {
        return done(
            false,
            summary(
                "k8s_no_container",
                json!({ "container": t.container, "deployment": named(t, &live) }),
            ),
        );
    };
    let wanted = t.wanted(&current, ctx.ticket);
    let replicas = live_d.spec.replicas.unwrap_or(1);
    if ctx.run.kube.is_none() {
        ctx.run.kube = Some(Before {
            image: current.clone(),
            replicas,
            canary: false,
            slot: Some(live.clone()),
            named: Some(current),
            config: super::config_refs(&live_d),
        });
    }
    let idle_name = named(t, idle);
    let idle_d = match deployments.get_opt(&idle_name).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            if let Err(e) = create(deployments, &slot_of(&live_d, t, idle, &wanted, replicas)).await {
                return done(false, failure(&e, "create", "deployments", t));
            }
            return StepOutcome::Continue {
                next_at: next_look(ctx.started_at, ctx.now),
            };
        }
        Err(e) => return done(false, failure(&e, "get", "deployments", t)),
    };
    let idle_d = if container_image(&idle_d, &t.container).as_deref() != Some(wanted.as_str())
        || idle_d.spec.replicas != Some(replicas)
    {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let patch = json!({ "spec": { "replicas": replicas, "template": { "spec": { "containers": [{ "name": t.container, "image": wanted }] } } } });
        match deployments.patch(&idle_name, &params, &Patch::Strategic(patch)).await {
            Ok(d) => d,
            Err(e) => return done(false, failure(&e, "patch", "deployments", t)),
        }
    } else {
        idle_d
    };
    match rollout(&idle_d) {
        Rollout::Complete => {
            ctx.run.deployed = true;
            done(
                true,
                summary(
                    "k8s_slot_ready",
                    json!({ "deployment": idle_name, "image": wanted, "live": named(t, &live) }),
                ),
            )
        }
        Rollout::Stalled(why) => done(
            false,
            summary("k8s_stalled", json!({ "deployment": idle_name, "why": why })),
        ),
        Rollout::Waiting => StepOutcome::Continue {
            next_at: next_look(ctx.started_at, ctx.now),
        },
    }
}

/// The idle slot's Deployment, made from the live one: its pod template with the new
/// image and the slot's label.
fn slot_of(live: &Deployment, t: &Target, slot: &str, image: &str, replicas: i32) -> Deployment {
    let mut spec = live.spec.clone();
    spec.replicas = Some(replicas);
    spec.selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(SLOT.into(), slot.into());
    spec.template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default)
        .insert(SLOT.into(), slot.into());
    if let Some(pod) = spec.template.spec.as_mut() {
        for c in pod.containers.iter_mut().filter(|c| c.name == t.container) {
            c.image = Some(image.to_string());
        }
    }
    let mut labels = live.metadata.labels.clone().unwrap_or_default();
    labels.insert(SLOT.into(), slot.into());
    Deployment {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(named(t, slot)),
            namespace: Some(t.namespace.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

/// TRAFFIC_SHIFT: the Service's selector switched to the slot DEPLOY readied (at any
/// weight: blue-green moves all traffic at once); a rollback switches it back.
pub(super) async fn switch(ctx: StepCtx<'_>, t: &Target, deployments: &Api<Deployment>) -> StepOutcome {
    let Some(before) = ctx.run.kube.clone() else {
        ctx.run.traffic = 0;
        return done(true, summary("traffic_back", json!({ "restored": false })));
    };
    let was = before.slot.unwrap_or_else(|| "blue".into());
    let (to, weight) = match ctx.step.kind {
        StepType::Rollback => (was.clone(), 0),
        _ => (other(&was).to_string(), 100),
    };
    let services: Api<Service> = Api::namespaced(deployments.clone().into_client(), &t.namespace);
    let service = t.service.clone().unwrap_or_default();
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let patch = json!({ "spec": { "selector": { SLOT: to } } });
    match services.patch(&service, &params, &Patch::Strategic(patch)).await {
        Ok(_) => {
            ctx.run.traffic = weight;
            done(
                true,
                summary(
                    "k8s_switched",
                    json!({ "service": service, "deployment": named(t, &to) }),
                ),
            )
        }
        Err(e) => done(false, failure(&e, "patch", "services", t)),
    }
}

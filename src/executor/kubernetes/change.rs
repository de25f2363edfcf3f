//! A change record's one step (`/release scale`, `/release restart`): the Deployment's
//! replicas set, or its pods restarted as `kubectl rollout restart` does (the pod
//! template's `kubectl.kubernetes.io/restartedAt` annotation), under the field manager
//! `releasebot`, then the rollout waited for. What ran before is recorded first, so the
//! step's rollback sets the replicas back; a step that resumes after a crash finds its
//! change made and only waits.

use super::super::providers::{done, summary, StepCtx, StepOutcome};
use super::{failure, next_look, pods_of, rollout, snapshot, Rollout, Target, FIELD_MANAGER};
use crate::domain::plan::KubeAction;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// The annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

pub(super) async fn run(
    ctx: StepCtx<'_>,
    t: &Target,
    action: &KubeAction,
    deployments: &Api<Deployment>,
    pods: &Api<Pod>,
) -> StepOutcome {
    let d = match deployments.get(&t.deployment).await {
        Ok(d) => d,
        Err(e) => return done(false, failure(&e, "get", "deployments", t)),
    };
    if ctx.run.kube.is_none() {
        match pods_of(&d, pods).await {
            Ok(p) => ctx.run.kube = Some(snapshot(&d, &p, &t.container)),
            Err(e) => return done(false, failure(&e, "list", "pods", t)),
        }
    }
    let patch = match action {
        KubeAction::Scale { replicas } if d.spec.replicas != Some(*replicas) => {
            Some(json!({ "spec": { "replicas": replicas } }))
        }
        KubeAction::Restart { at } if restarted_at(&d).as_deref() != Some(at.as_str()) => {
            Some(json!({ "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: at } } } } }))
        }
        // Made already (the step resumed after a restart).
        _ => None,
    };
    let d = match patch {
        None => d,
        Some(p) => {
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            match deployments.patch(&t.deployment, &params, &Patch::Strategic(p)).await {
                Ok(d) => d,
                Err(e) => return done(false, failure(&e, "patch", "deployments", t)),
            }
        }
    };
    match rollout(&d) {
        Rollout::Complete => {
            ctx.run.deployed = true;
            ctx.run.traffic = 100;
            let from = ctx.run.kube.as_ref().map_or(0, |b| b.replicas);
            let ready = d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
            if let Ok(p) = pods_of(&d, pods).await {
                ctx.run.kube_released = Some(snapshot(&d, &p, &t.container));
            }
            done(
                true,
                match action {
                    KubeAction::Scale { replicas } => summary(
                        "k8s_scaled",
                        json!({ "deployment": t.deployment, "from": from, "to": replicas, "ready": ready }),
                    ),
                    KubeAction::Restart { .. } => {
                        summary("k8s_restarted", json!({ "deployment": t.deployment, "ready": ready }))
                    }
                },
            )
        }
        Rollout::Stalled(why) => match pods_of(&d, pods).await.map(|p| super::stuck(&p, &t.container)) {
            Ok(Some(s)) => super::failing_pod(pods, t, s).await,
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

/// A swimlane's copy of the application: the Deployment of the same name in `from`, with
/// the new image and one replica, made in the lane's namespace (labelled as releasebot's);
/// the step then waits for it as for any rollout.
pub(super) async fn copy_into(ctx: StepCtx<'_>, t: &Target, from: &str, deployments: &Api<Deployment>) -> StepOutcome {
    let source: Api<Deployment> = Api::namespaced(deployments.clone().into_client(), from);
    let src = match source.get(&t.deployment).await {
        Ok(d) => d,
        Err(e) => return done(false, super::failure_in(&e, "get", "deployments", from, &t.deployment)),
    };
    let Some(current) = super::container_image(&src, &t.container) else {
        return done(
            false,
            summary(
                "k8s_no_container",
                json!({ "container": t.container, "deployment": t.deployment }),
            ),
        );
    };
    let wanted = t.wanted(&current, ctx.ticket);
    let mut spec = src.spec.clone();
    spec.replicas = Some(1);
    for c in spec.template.spec.iter_mut().flat_map(|p| p.containers.iter_mut()) {
        if c.name == t.container {
            c.image = Some(wanted.clone());
        }
    }
    let mut labels = src.metadata.labels.clone().unwrap_or_default();
    labels.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
    let copy = Deployment {
        metadata: kube::api::ObjectMeta {
            name: Some(t.deployment.clone()),
            namespace: Some(t.namespace.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        spec,
        status: None,
    };
    if let Err(e) = super::create(deployments, &copy).await {
        return done(false, failure(&e, "create", "deployments", t));
    }
    StepOutcome::Continue {
        next_at: next_look(ctx.started_at, ctx.now),
    }
}

fn restarted_at(d: &Deployment) -> Option<String> {
    d.spec
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(RESTARTED_AT)
        .cloned()
}

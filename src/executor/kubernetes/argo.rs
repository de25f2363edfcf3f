//! The `argo-rollouts` provider: a release through an Argo Rollout (`argoproj.io/v1alpha1`),
//! for teams that already run Argo Rollouts. The Rollout runs its own steps; releasebot
//! starts it, mirrors it and passes people's buttons on to it, with the same changes the
//! `kubectl argo rollouts` plugin makes:
//!
//! | What | Change |
//! |---|---|
//! | DEPLOY (`set image`) | merge patch of `spec.template.spec.containers` as read, the one image changed, with the `resourceVersion` it was read at (409: read again, patch again) |
//! | Pause | merge patch `{"spec":{"paused":true}}` |
//! | Resume | merge patch `{"spec":{"paused":false}}` |
//! | Promote | `{"spec":{"paused":false}}` when paused by spec, and through the status subresource `{"status":{"pauseConditions":null}}` — or, when nothing pauses it, `{"status":{"pauseConditions":null,"currentStepIndex":N+1}}` (the next step) |
//! | Abort | merge patch `{"status":{"abort":true}}` through the status subresource |
//! | Rollback | the image it had before set back (`undo`): the stable version, which Argo Rollouts restores at once, skipping the steps |
//!
//! While DEPLOY runs, each look records the Rollout's phase, step (`status.currentStepIndex`
//! of `spec.strategy.canary.steps`), canary weight (`status.canary.weights.canary.weight`,
//! or the last `setWeight` reached), what pauses it (`spec.paused`,
//! `status.pauseConditions[].reason`) and its analysis runs, for the progress message and
//! the release page. DEPLOY succeeds when the Rollout is `Healthy` on the new version
//! (`status.stableRS == status.currentPodHash`) and fails, by its policy, when it is
//! aborted or `Degraded`.

use super::super::providers::{done, summary, StepCtx, StepOutcome};
use super::{failure_in, next_look, Before, FIELD_MANAGER};
use crate::domain::execution::Command;
use crate::domain::plan::{Provider, StepType};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What the Rollout showed at the last look.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mirror {
    pub rollout: String,
    /// `Progressing`, `Paused`, `Healthy` or `Degraded`.
    pub phase: String,
    /// The step under way (1-based) and the number of steps.
    pub step: u32,
    pub steps: u32,
    /// The canary's share of traffic, in percent.
    pub weight: u8,
    /// Why it is paused: `paused` (by a person), or the pause conditions' reasons.
    #[serde(default)]
    pub paused: Option<String>,
    /// The analysis runs: `name: Phase (message)`.
    #[serde(default)]
    pub analysis: Vec<String>,
    #[serde(default)]
    pub message: String,
    /// The last command passed on (`pause`, `promote`…), who gave it (a mention token),
    /// and why the Rollout refused it, if it did.
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub refused: Option<String>,
}

fn api(client: kube::Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout");
    Api::namespaced_with(client, namespace, &ApiResource::from_gvk_with_plural(&gvk, "rollouts"))
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// The container's image in the Rollout's pod template.
fn container(ro: &Value, name: &str) -> Option<String> {
    ro["spec"]["template"]["spec"]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| c["image"].as_str().unwrap_or_default().to_string())
}

/// Sets the container's image. A Rollout is a custom resource: no strategic merge, and a
/// merge patch replaces `containers` whole, so the patch carries the list as read with the
/// one image changed, and the `resourceVersion` it was read at — a Rollout changed in
/// between answers 409, and the change is made again on what is there now.
async fn set_image(
    rollouts: &Api<DynamicObject>,
    name: &str,
    container: &str,
    image: &str,
) -> kube::Result<DynamicObject> {
    let mut conflicts = 0;
    loop {
        let ro = rollouts.get(name).await?;
        let mut containers = ro.data["spec"]["template"]["spec"]["containers"].clone();
        for c in containers.as_array_mut().into_iter().flatten() {
            if c["name"] == container {
                c["image"] = json!(image);
            }
        }
        let patch = json!({
            "metadata": { "resourceVersion": ro.metadata.resource_version },
            "spec": { "template": { "spec": { "containers": containers } } }
        });
        match rollouts.patch(name, &params(), &Patch::Merge(patch)).await {
            Err(kube::Error::Api(s)) if s.code == 409 && conflicts < 5 => conflicts += 1,
            other => return other,
        }
    }
}

fn no_container(t: &Target) -> StepOutcome {
    done(
        false,
        summary(
            "k8s_no_container",
            json!({ "container": t.container, "deployment": t.rollout }),
        ),
    )
}

/// The settings of an `argo-rollouts` step, placeholders filled in.
struct Target {
    namespace: String,
    rollout: String,
    container: String,
    image: Option<String>,
}

/// Runs (or polls) an `argo-rollouts` step.
pub async fn run(ctx: StepCtx<'_>) -> StepOutcome {
    let Provider::ArgoRollouts {
        namespace,
        rollout,
        container,
        image,
        api_url,
        token_env,
        context,
    } = &ctx.step.provider
    else {
        return done(
            false,
            summary(
                "invalid_settings",
                json!({ "setting": "provider", "why": "not argo-rollouts" }),
            ),
        );
    };
    let t = Target {
        namespace: super::fill(namespace, ctx.ticket),
        rollout: super::fill(rollout, ctx.ticket),
        container: super::fill(container, ctx.ticket),
        image: image.as_deref().map(|i| super::fill(i, ctx.ticket)),
    };
    let access = super::Access {
        api_url: api_url.as_deref(),
        token_env: token_env.as_deref(),
        context: context.as_deref(),
    };
    if let Some(unsaid) = super::unsaid(
        ctx.ticket,
        [
            ("namespace", &t.namespace),
            ("rollout", &t.rollout),
            ("container", &t.container),
        ],
    ) {
        return unsaid;
    }
    let client = match super::client_for(access).await {
        Ok(c) => c,
        Err(e) => return done(false, summary("k8s_unreachable", json!({ "error": e }))),
    };
    let rollouts = api(client, &t.namespace);
    match ctx.step.kind {
        StepType::Deploy => deploy(ctx, &t, &rollouts).await,
        StepType::Rollback => rollback(ctx, &t, &rollouts).await,
        other => done(
            false,
            summary("k8s_unsupported_step", json!({ "step": format!("{other:?}") })),
        ),
    }
}

async fn deploy(ctx: StepCtx<'_>, t: &Target, rollouts: &Api<DynamicObject>) -> StepOutcome {
    let fail = |e: &kube::Error, verb: &str| done(false, failure_in(e, verb, "rollouts", &t.namespace, &t.rollout));
    let mut ro = match rollouts.get(&t.rollout).await {
        Ok(r) => r,
        Err(e) => return fail(&e, "get"),
    };
    let Some(current) = container(&ro.data, &t.container) else {
        return no_container(t);
    };
    let wanted = super::wanted_image(t.image.as_deref(), &current, ctx.ticket);
    if current != wanted {
        if ctx.run.kube.is_none() {
            ctx.run.kube = Some(Before {
                image: current.clone(),
                replicas: ro.data["spec"]["replicas"].as_i64().unwrap_or(1) as i32,
                canary: false,
                slot: None,
                named: Some(current.clone()),
                config: Vec::new(),
            });
        }
        ro = match set_image(rollouts, &t.rollout, &t.container, &wanted).await {
            Ok(r) => r,
            Err(e) => return fail(&e, "patch"),
        };
    }
    let last = ctx.run.argo.take().unwrap_or_default();
    let (mut command, mut by, mut refused) = (last.command, last.by, last.refused);
    if let Some(r) = ctx.run.exec.relay.take() {
        refused = match relay(rollouts, &t.rollout, &ro.data, r.command).await {
            Ok(changed) => {
                ro = changed.unwrap_or(ro);
                None
            }
            Err(e) => Some(e.to_string()),
        };
        command = Some(r.command.as_str().to_string());
        by = Some(r.by);
    }
    let m = Mirror {
        command,
        by,
        refused,
        ..mirror(&t.rollout, &ro.data)
    };
    ctx.run.traffic = m.weight;
    let status = &ro.data["status"];
    let observed =
        status["observedGeneration"].as_str().map(str::to_string) == ro.metadata.generation.map(|g| g.to_string());
    let on_new = !status["stableRS"].is_null() && status["stableRS"] == status["currentPodHash"];
    let outcome = if status["abort"] == true || m.phase == "Degraded" {
        // The Rollout's own words, else its phase; an abort not yet reconciled has none.
        let why = Some(&m.message)
            .filter(|w| !w.is_empty())
            .or(Some(&m.phase).filter(|_| status["abort"] != true));
        done(
            false,
            summary(
                "argo_degraded",
                json!({ "rollout": t.rollout, "why": why, "analysis": m.analysis.join("; ") }),
            ),
        )
    } else if observed && on_new && m.phase == "Healthy" {
        ctx.run.traffic = 100;
        ctx.run.deployed = true;
        done(
            true,
            summary(
                "argo_healthy",
                json!({ "rollout": t.rollout, "image": wanted, "steps": m.steps }),
            ),
        )
    } else {
        StepOutcome::Continue {
            next_at: next_look(ctx.started_at, ctx.now),
        }
    };
    ctx.run.argo = Some(m);
    outcome
}

/// Passes a person's command on to the Rollout, as `kubectl argo rollouts` does; the
/// Rollout as changed, if it was.
async fn relay(
    rollouts: &Api<DynamicObject>,
    name: &str,
    ro: &Value,
    cmd: Command,
) -> kube::Result<Option<DynamicObject>> {
    let status = |patch: Value| async move {
        rollouts
            .patch_subresource("status", name, &params(), &Patch::Merge(patch))
            .await
    };
    let spec = |paused: bool| async move {
        rollouts
            .patch(name, &params(), &Patch::Merge(json!({ "spec": { "paused": paused } })))
            .await
    };
    let changed = match cmd {
        Command::Pause => spec(true).await?,
        Command::Resume => spec(false).await?,
        Command::Abort => status(json!({ "status": { "abort": true } })).await?,
        Command::Promote => {
            let mut last = None;
            if ro["spec"]["paused"] == true {
                last = Some(spec(false).await?);
            }
            let conditions = ro["status"]["pauseConditions"]
                .as_array()
                .is_some_and(|c| !c.is_empty());
            let steps = ro["spec"]["strategy"]["canary"]["steps"].as_array().map_or(0, Vec::len) as i64;
            if conditions {
                last = Some(status(json!({ "status": { "pauseConditions": null } })).await?);
            } else if last.is_none() && steps > 0 {
                let next = (ro["status"]["currentStepIndex"].as_i64().unwrap_or(0) + 1).min(steps);
                last = Some(status(json!({ "status": { "pauseConditions": null, "currentStepIndex": next } })).await?);
            }
            return Ok(last);
        }
        _ => return Ok(None),
    };
    Ok(Some(changed))
}

/// What the Rollout shows now.
fn mirror(name: &str, ro: &Value) -> Mirror {
    let status = &ro["status"];
    let steps = ro["spec"]["strategy"]["canary"]["steps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let index = status["currentStepIndex"].as_u64().unwrap_or(0) as usize;
    let settled = status["phase"] == "Healthy" && status["stableRS"] == status["currentPodHash"];
    // No canary once settled; else the weight the traffic router reports, or the last
    // `setWeight` reached.
    let weight = status["canary"]["weights"]["canary"]["weight"]
        .as_u64()
        .or_else(|| {
            steps[..index.min(steps.len())]
                .iter()
                .rev()
                .find_map(|s| s["setWeight"].as_u64())
        })
        .filter(|_| !settled)
        .unwrap_or(0)
        .min(100) as u8;
    let mut pauses: Vec<String> = status["pauseConditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["reason"].as_str().map(str::to_string))
        .collect();
    if ro["spec"]["paused"] == true {
        pauses.insert(0, "paused".into());
    }
    let analysis = ["currentStepAnalysisRunStatus", "currentBackgroundAnalysisRunStatus"]
        .iter()
        .filter_map(|k| {
            let a = &status["canary"][k];
            let name = a["name"].as_str()?;
            let phase = a["status"].as_str().unwrap_or("Pending");
            Some(match a["message"].as_str().filter(|m| !m.is_empty()) {
                Some(msg) => format!("{name}: {phase} ({msg})"),
                None => format!("{name}: {phase}"),
            })
        })
        .collect();
    Mirror {
        rollout: name.to_string(),
        phase: status["phase"].as_str().unwrap_or("Progressing").to_string(),
        step: (index.min(steps.len()) as u32 + 1).min(steps.len().max(1) as u32),
        steps: steps.len() as u32,
        weight,
        paused: (!pauses.is_empty()).then(|| pauses.join(", ")),
        analysis,
        message: status["message"].as_str().unwrap_or_default().to_string(),
        ..Mirror::default()
    }
}

/// Sets the image the Rollout had back (Argo Rollouts goes straight to its stable
/// version) and waits, within the rollback's own time limit, until it is healthy.
async fn rollback(ctx: StepCtx<'_>, t: &Target, rollouts: &Api<DynamicObject>) -> StepOutcome {
    let fail = |e: &kube::Error, verb: &str| done(false, failure_in(e, verb, "rollouts", &t.namespace, &t.rollout));
    ctx.run.traffic = 0;
    let Some(before) = ctx.run.kube.clone() else {
        return done(true, summary("traffic_back", json!({ "restored": false })));
    };
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        let ro = match rollouts.get(&t.rollout).await {
            Ok(r) => r,
            Err(e) => return fail(&e, "get"),
        };
        let Some(current) = container(&ro.data, &t.container) else {
            return no_container(t);
        };
        if current != before.image {
            if let Err(e) = set_image(rollouts, &t.rollout, &t.container, &before.image).await {
                return fail(&e, "patch");
            }
            continue;
        }
        // The commands passed on before stay on show.
        let m = match ctx.run.argo.take() {
            Some(last) => Mirror {
                command: last.command,
                by: last.by,
                refused: last.refused,
                ..mirror(&t.rollout, &ro.data)
            },
            None => mirror(&t.rollout, &ro.data),
        };
        let status = &ro.data["status"];
        let healthy = m.phase == "Healthy" && status["stableRS"] == status["currentPodHash"];
        ctx.run.argo = Some(m);
        if healthy {
            return done(
                true,
                summary("argo_restored", json!({ "rollout": t.rollout, "image": before.image })),
            );
        }
        if let Some(stopped) = super::look_again_after(&ctx, &mut wait).await {
            return stopped;
        }
    }
}

//! The pod-ratio canary (`strategy = "canary"`), as Kubernetes documents it: a second
//! Deployment, `NAME-canary`, runs the stable pod template with the new image and the
//! label `track: canary`; the Service selects the labels both share, so traffic splits
//! by replica count. A TRAFFIC_SHIFT to `w` % gives the canary `ceil(N × w / 100)` of the
//! stable Deployment's N replicas and the stable one the rest (10 replicas: 9/1 at 10 %,
//! 5/5 at 50 %, 0/10 at 100 %); at 100 % the stable Deployment then takes the new image
//! and its N replicas back and the canary is removed. Every change sets an absolute
//! state, so a step run twice (after a crash) changes nothing the second time.

use super::*;

/// DEPLOY: records what the stable Deployment runs and starts the canary beside it,
/// with no replicas yet.
pub(super) async fn start(ctx: StepCtx<'_>, t: &Target, deployments: &Api<Deployment>) -> StepOutcome {
    let stable = match deployments.get(&t.deployment).await {
        Ok(d) => d,
        Err(e) => return done(false, failure(&e, "get", "deployments", t)),
    };
    let labels = stable.spec.selector.match_labels.clone().unwrap_or_default();
    if !labels.contains_key(TRACK) {
        // Without it, the two Deployments' selectors overlap and their controllers fight.
        let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        return done(
            false,
            summary(
                "k8s_canary_needs_track",
                json!({ "deployment": t.deployment, "selector": selector.join(",") }),
            ),
        );
    }
    let Some(current) = container_image(&stable, &t.container) else {
        return done(
            false,
            summary(
                "k8s_no_container",
                json!({ "container": t.container, "deployment": t.deployment }),
            ),
        );
    };
    let wanted = t.wanted(&current, ctx.ticket);
    if ctx.run.kube.is_none() {
        let pods: Api<Pod> = Api::namespaced(deployments.clone().into_client(), &t.namespace);
        match pods_of(&stable, &pods).await {
            Ok(p) => {
                ctx.run.kube = Some(Before {
                    canary: true,
                    ..super::snapshot(&stable, &p, &t.container)
                })
            }
            Err(e) => return done(false, failure(&e, "list", "pods", t)),
        }
    }
    if let Err(e) = create(deployments, &canary_of(&stable, t, &wanted)).await {
        return done(false, failure(&e, "create", "deployments", t));
    }
    ctx.run.deployed = true;
    done(
        true,
        summary(
            "k8s_canary_started",
            json!({ "deployment": t.canary(), "image": wanted }),
        ),
    )
}

/// The canary Deployment: the stable one's pod template with the new image, `track:
/// canary` in its selector and labels, and no replicas.
fn canary_of(stable: &Deployment, t: &Target, image: &str) -> Deployment {
    let mut spec = stable.spec.clone();
    spec.replicas = Some(0);
    spec.selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(TRACK.into(), "canary".into());
    let template_meta = spec.template.metadata.get_or_insert_with(Default::default);
    template_meta
        .labels
        .get_or_insert_with(Default::default)
        .insert(TRACK.into(), "canary".into());
    if let Some(pod) = spec.template.spec.as_mut() {
        for c in pod.containers.iter_mut().filter(|c| c.name == t.container) {
            c.image = Some(image.to_string());
        }
    }
    let mut labels = stable.metadata.labels.clone().unwrap_or_default();
    labels.insert(TRACK.into(), "canary".into());
    labels.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
    Deployment {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(t.canary()),
            namespace: Some(t.namespace.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

/// The canary's share of `n` replicas at `weight` %: at least one while it takes any.
pub(super) fn canary_replicas(n: i32, weight: u8) -> i32 {
    if weight == 0 || n <= 0 {
        return 0;
    }
    ((n * i32::from(weight) + 99) / 100).clamp(1, n)
}

/// TRAFFIC_SHIFT: scales the canary and the stable Deployment to the weight's ratio and
/// waits for the canary's pods; at 100 % promotes the new image to the stable Deployment
/// and removes the canary.
pub(super) async fn shift(ctx: StepCtx<'_>, t: &Target, deployments: &Api<Deployment>) -> StepOutcome {
    let Some(before) = ctx.run.kube.clone().filter(|b| b.canary) else {
        return done(false, summary("k8s_no_canary", json!({ "deployment": t.canary() })));
    };
    let weight = ctx.step.weight.unwrap_or(100);
    let n = before.replicas.max(1);
    let stable = match deployments.get(&t.deployment).await {
        Ok(d) => d,
        Err(e) => return done(false, failure(&e, "get", "deployments", t)),
    };
    let canary = match deployments.get_opt(&t.canary()).await {
        Ok(c) => c,
        Err(e) => return done(false, failure(&e, "get", "deployments", t)),
    };
    let new_image = canary
        .as_ref()
        .and_then(|c| container_image(c, &t.container))
        .or_else(|| container_image(&stable, &t.container))
        .unwrap_or_default();
    // Promoted already (this step resumed): wait for the stable rollout, remove the canary.
    let promoted = weight == 100 && container_image(&stable, &t.container).as_deref() == Some(new_image.as_str());
    if promoted {
        return match rollout(&stable) {
            Rollout::Complete => match remove(deployments, &t.canary()).await {
                Ok(()) => {
                    ctx.run.traffic = 100;
                    done(
                        true,
                        summary(
                            "k8s_promoted",
                            json!({ "deployment": t.deployment, "image": new_image, "replicas": n }),
                        ),
                    )
                }
                Err(e) => done(false, failure(&e, "delete", "deployments", t)),
            },
            Rollout::Stalled(why) => done(
                false,
                summary("k8s_stalled", json!({ "deployment": t.deployment, "why": why })),
            ),
            Rollout::Waiting => StepOutcome::Continue {
                next_at: next_look(ctx.started_at, ctx.now),
            },
        };
    }
    let Some(canary) = canary else {
        return done(false, summary("k8s_no_canary", json!({ "deployment": t.canary() })));
    };
    let wanted = canary_replicas(n, weight);
    let canary = if canary.spec.replicas != Some(wanted) {
        match scale(deployments, &t.canary(), wanted).await {
            Ok(c) => c,
            Err(e) => return done(false, failure(&e, "patch", "deployments", t)),
        }
    } else {
        canary
    };
    if stable.spec.replicas != Some(n - wanted) {
        if let Err(e) = scale(deployments, &t.deployment, n - wanted).await {
            return done(false, failure(&e, "patch", "deployments", t));
        }
    }
    match rollout(&canary) {
        Rollout::Complete if weight == 100 => {
            // Every pod is the new version's: the stable Deployment takes it over.
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            let patch = json!({ "spec": { "replicas": n, "template": { "spec": { "containers": [{ "name": t.container, "image": new_image }] } } } });
            match deployments
                .patch(&t.deployment, &params, &Patch::Strategic(patch))
                .await
            {
                Ok(_) => StepOutcome::Continue {
                    next_at: next_look(ctx.started_at, ctx.now),
                },
                Err(e) => done(false, failure(&e, "patch", "deployments", t)),
            }
        }
        Rollout::Complete => {
            ctx.run.traffic = weight;
            done(true, super::super::providers::traffic(weight))
        }
        // A stalled canary names the pod that holds it up, when one does.
        Rollout::Stalled(why) => {
            let pods: Api<Pod> = Api::namespaced(deployments.clone().into_client(), &t.namespace);
            match pods_of(&canary, &pods).await.map(|p| stuck(&p, &t.container)) {
                Ok(Some(s)) => failing_pod(&pods, t, s).await,
                _ => done(
                    false,
                    summary("k8s_stalled", json!({ "deployment": t.canary(), "why": why })),
                ),
            }
        }
        Rollout::Waiting => StepOutcome::Continue {
            next_at: next_look(ctx.started_at, ctx.now),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_replicas_split_nine_one_then_five_five_then_none_ten() {
        let splits: Vec<(i32, i32)> = [10u8, 50, 100]
            .iter()
            .map(|w| (10 - canary_replicas(10, *w), canary_replicas(10, *w)))
            .collect();
        assert_eq!(splits, [(9, 1), (5, 5), (0, 10)]);
        assert_eq!(canary_replicas(3, 10), 1, "a canary that takes traffic has a pod");
        assert_eq!(canary_replicas(3, 0), 0);
    }
}

//! Traffic split by the cluster's routing rather than by pods: ingress-nginx's canary
//! weight on a canary Ingress, or the Gateway API's backend weights on an HTTPRoute.

use super::*;

/// The ingress-nginx annotations of a canary Ingress.
const CANARY: &str = "nginx.ingress.kubernetes.io/canary";
const CANARY_WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";

/// TRAFFIC_SHIFT (and its rollback, at 0) through ingress-nginx: the canary Ingress's
/// weight set by a merge patch of its annotations (`canary: "true"` with it, which
/// ingress-nginx needs before it reads the weight). Setting a weight twice is once.
pub(super) async fn ingress_weight(ctx: StepCtx<'_>, t: &Target, name: &str, ingresses: &Api<Ingress>) -> StepOutcome {
    let weight = match ctx.step.kind {
        StepType::Rollback => 0,
        _ => ctx.step.weight.unwrap_or(100),
    };
    let patch = json!({ "metadata": { "annotations": { CANARY: "true", CANARY_WEIGHT: weight.to_string() } } });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match ingresses.patch(name, &params, &Patch::Merge(patch)).await {
        Ok(_) => {
            ctx.run.traffic = weight;
            done(true, super::super::providers::traffic(weight))
        }
        Err(kube::Error::Api(s)) if s.code == 404 => done(
            false,
            summary(
                "k8s_not_found",
                json!({ "resource": "ingresses", "name": name, "namespace": t.namespace }),
            ),
        ),
        Err(e) => done(false, failure(&e, "patch", "ingresses", t)),
    }
}

/// TRAFFIC_SHIFT (and its rollback, at 0) through the Gateway API: in every rule of the
/// HTTPRoute, `backend` gets the weight and the other backends the rest (weights are
/// proportional). The rules are lists the API replaces whole, and the route is a custom
/// resource (strategic merge is refused), so the step sends all of `spec.rules` in a JSON
/// merge patch.
pub(super) async fn route_weight(
    ctx: StepCtx<'_>,
    t: &Target,
    client: kube::Client,
    route: &str,
    backend: &str,
) -> StepOutcome {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let weight = match ctx.step.kind {
        StepType::Rollback => 0,
        _ => ctx.step.weight.unwrap_or(100),
    };
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let routes: Api<DynamicObject> = Api::namespaced_with(
        client,
        &t.namespace,
        &ApiResource::from_gvk_with_plural(&gvk, "httproutes"),
    );
    let found = match routes.get(route).await {
        Ok(r) => r,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return done(
                false,
                summary(
                    "k8s_not_found",
                    json!({ "resource": "httproutes", "name": route, "namespace": t.namespace }),
                ),
            )
        }
        Err(e) => return done(false, failure(&e, "get", "httproutes", t)),
    };
    let mut rules = found.data["spec"]["rules"].clone();
    let mut named = false;
    for rule in rules.as_array_mut().into_iter().flatten() {
        for b in rule["backendRefs"].as_array_mut().into_iter().flatten() {
            let new = b["name"] == backend;
            named |= new;
            b["weight"] = json!(if new {
                u32::from(weight)
            } else {
                100 - u32::from(weight)
            });
        }
    }
    if !named {
        return done(
            false,
            summary(
                "k8s_route_backend_missing",
                json!({ "route": route, "backend": backend }),
            ),
        );
    }
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match routes
        .patch(route, &params, &Patch::Merge(json!({ "spec": { "rules": rules } })))
        .await
    {
        Ok(_) => {
            ctx.run.traffic = weight;
            done(true, super::super::providers::traffic(weight))
        }
        Err(e) => done(false, failure(&e, "patch", "httproutes", t)),
    }
}

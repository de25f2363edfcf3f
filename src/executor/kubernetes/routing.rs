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
    if let Err(e) = routes
        .patch(route, &params, &Patch::Merge(json!({ "spec": { "rules": rules } })))
        .await
    {
        return done(false, failure(&e, "patch", "httproutes", t));
    }
    ctx.run.traffic = weight;
    // Back to the old backend needs no gateway's word (and a rollback does not wait).
    if ctx.step.kind == StepType::Rollback {
        return done(true, super::super::providers::traffic(weight));
    }
    // The weight holds once every Gateway the route attaches to has accepted this
    // generation of it and resolved its backends.
    let read = match routes.get(route).await {
        Ok(r) => r,
        Err(e) => return done(false, failure(&e, "get", "httproutes", t)),
    };
    match route_verdict(&read.data, read.metadata.generation.unwrap_or(0)) {
        RouteVerdict::Programmed => done(true, super::super::providers::traffic(weight)),
        RouteVerdict::Refused {
            parent,
            kind,
            reason,
            message,
        } => done(
            false,
            summary(
                "k8s_route_refused",
                json!({ "route": route, "parent": parent, "condition": kind, "reason": reason, "message": message }),
            ),
        ),
        RouteVerdict::Pending => StepOutcome::Continue {
            next_at: next_look(ctx.started_at, ctx.now),
        },
    }
}

/// What the route's parents (its Gateways) say about a generation of it.
#[derive(Debug, PartialEq, Eq)]
enum RouteVerdict {
    Programmed,
    Refused {
        parent: String,
        kind: String,
        reason: String,
        message: String,
    },
    /// Not every parent has reported on this generation yet.
    Pending,
}

fn route_verdict(route: &serde_json::Value, generation: i64) -> RouteVerdict {
    let parents = route["status"]["parents"].as_array().cloned().unwrap_or_default();
    let wanted = route["spec"]["parentRefs"].as_array().map_or(1, Vec::len);
    if parents.len() < wanted {
        return RouteVerdict::Pending;
    }
    for p in &parents {
        for kind in ["Accepted", "ResolvedRefs"] {
            let c = p["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == kind && c["observedGeneration"].as_i64().unwrap_or(0) >= generation);
            match c {
                None => return RouteVerdict::Pending,
                Some(c) if c["status"] != "True" => {
                    let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                    return RouteVerdict::Refused {
                        parent: p["parentRef"]["name"].as_str().unwrap_or_default().to_string(),
                        kind: kind.to_string(),
                        reason: text("reason"),
                        message: text("message"),
                    };
                }
                Some(_) => {}
            }
        }
    }
    RouteVerdict::Programmed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(observed: i64, resolved: &str) -> serde_json::Value {
        json!({ "spec": { "parentRefs": [{ "name": "edge" }] }, "status": { "parents": [{
            "parentRef": { "name": "edge" },
            "conditions": [
                { "type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": observed },
                { "type": "ResolvedRefs", "status": resolved, "reason": "BackendNotFound", "observedGeneration": observed }
            ] }] } })
    }

    #[test]
    fn a_weight_holds_once_every_gateway_took_this_generation_of_the_route() {
        assert_eq!(route_verdict(&route(2, "True"), 2), RouteVerdict::Programmed);
        assert_eq!(
            route_verdict(&route(1, "True"), 2),
            RouteVerdict::Pending,
            "an older generation says nothing"
        );
        assert_eq!(route_verdict(&json!({ "spec": {} }), 2), RouteVerdict::Pending);
        assert!(
            matches!(route_verdict(&route(2, "False"), 2), RouteVerdict::Refused { kind, .. } if kind == "ResolvedRefs")
        );
    }
}

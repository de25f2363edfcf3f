//! A fake of the Kubernetes API's Deployment and Pod endpoints, written from the API
//! reference and strict about what it does not implement: a PATCH must be a strategic
//! merge patch (`application/strategic-merge-patch+json`) that changes only a
//! container's image or the replicas, anything else is refused as the API server would
//! (415 for another content type, 400 for a field this fake does not model); errors are
//! `Status` objects. A controller runs inside: after a change, the next GET finds the
//! rollout complete and the pods running the new image (reporting its digest in
//! `imageID`) — unless the image is one that cannot be pulled, whose new pod waits in
//! `ImagePullBackOff` and whose rollout, after a few looks, exceeds its progress deadline.
#![allow(dead_code)]

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Cluster {
    /// By (namespace, name): the Deployment as the API returns it.
    pub deployments: BTreeMap<(String, String), Value>,
    /// By (namespace, name): Ingresses (only their metadata is modelled).
    pub ingresses: BTreeMap<(String, String), Value>,
    /// By (namespace, name): Gateway API HTTPRoutes (a custom resource).
    pub routes: BTreeMap<(String, String), Value>,
    /// By (namespace, name): Services (their selector is what is modelled).
    pub services: BTreeMap<(String, String), Value>,
    /// Images whose pods never start.
    pub unpullable: BTreeSet<String>,
    /// Every request: method, path and query, content type.
    pub calls: Vec<(String, String, Option<String>)>,
    /// Refuse PATCHes as RBAC does (the service account lacks `patch`).
    pub forbid_patch: bool,
    /// The controller is slow: a rollout under way stays under way.
    pub hold: bool,
    /// How long (wall time) a rollout takes after the change that starts it; none by default.
    pub rollout: std::time::Duration,
    /// When each Deployment's last change was made.
    changed_at: HashMap<(String, String), std::time::Instant>,
    /// Each change of a Deployment's replicas or image, in order: (name, replicas, image);
    /// a removed Deployment as (name, 0, "deleted").
    pub changes: Vec<(String, i64, String)>,
    /// Looks at a stuck rollout before its progress deadline is exceeded.
    looks: HashMap<(String, String), u32>,
    /// By (namespace, name): Argo Rollouts (see `fake_argo`).
    pub rollouts: BTreeMap<(String, String), Value>,
    /// What the Argo analysis runs of the fake conclude: `Running` (by default),
    /// `Successful` or `Failed`.
    pub analysis: String,
    /// Answer the next Rollout PATCH with 409, as if someone changed it meanwhile.
    pub conflict_next: bool,
    /// Services the Gateway cannot find: a route giving one weight is not `ResolvedRefs`.
    pub missing_backends: BTreeSet<String>,
}

pub type Shared = Arc<Mutex<Cluster>>;

pub(crate) fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, "code": code });
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(body),
    )
        .into_response()
}

/// The body of a PATCH this fake takes: of one of `types` (415 otherwise, as the API
/// server answers), JSON, and changing only `fields` under `top` (400 otherwise: what the
/// fake does not model, it refuses).
fn patch_of(h: &HeaderMap, body: &str, types: &[&str], top: &str, fields: &[&str]) -> Result<Value, Box<Response>> {
    let ct = h.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !types.contains(&ct) {
        return Err(Box::new(status(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                types.join(", ")
            ),
        )));
    }
    let Ok(patch) = serde_json::from_str::<Value>(body) else {
        return Err(Box::new(status(400, "BadRequest", "the body is not JSON".into())));
    };
    if patch.as_object().is_some_and(|o| o.keys().any(|k| k != top))
        || patch[top]
            .as_object()
            .is_some_and(|o| o.keys().any(|k| !fields.contains(&k.as_str())))
    {
        return Err(Box::new(status(
            400,
            "BadRequest",
            format!("fake: unsupported patch {patch}"),
        )));
    }
    Ok(patch)
}

const STRATEGIC: &str = "application/strategic-merge-patch+json";
pub(crate) const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";

/// The digest a registry would give `image`.
pub fn digest_of(image: &str) -> String {
    use sha2::Digest;
    let repo = image.split(':').next().unwrap_or(image);
    format!("{repo}@sha256:{}", hex::encode(sha2::Sha256::digest(image.as_bytes())))
}

/// A Deployment of `replicas` pods running `image` in container `container`, its rollout
/// complete.
pub fn deployment(namespace: &str, name: &str, container: &str, image: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "namespace": namespace, "generation": 1, "resourceVersion": "1" },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": container, "image": image }] }
            }
        },
        "status": settled(1, replicas)
    })
}

fn settled(generation: i64, replicas: i64) -> Value {
    json!({
        "observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
        "readyReplicas": replicas, "availableReplicas": replicas,
        "conditions": [{ "type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable" }]
    })
}

fn image_of(d: &Value) -> String {
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

impl Cluster {
    /// The controller's work since the last look: a changed spec rolled out, or stuck.
    fn reconcile(&mut self, key: &(String, String)) {
        let unpullable = self.unpullable.clone();
        let Some(d) = self.deployments.get_mut(key) else {
            return;
        };
        if self.hold || self.changed_at.get(key).is_some_and(|t| t.elapsed() < self.rollout) {
            return;
        }
        let generation = d["metadata"]["generation"].as_i64().unwrap_or(1);
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        if !unpullable.contains(&image_of(d)) {
            d["status"] = settled(generation, replicas);
            self.looks.remove(key);
            return;
        }
        let looks = self.looks.entry(key.clone()).or_default();
        *looks += 1;
        let mut s = json!({
            "observedGeneration": generation, "replicas": replicas + 1, "updatedReplicas": 1,
            "readyReplicas": replicas, "availableReplicas": replicas,
            "conditions": [{ "type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated" }]
        });
        if *looks >= 3 {
            s["conditions"] = json!([{ "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                       "message": format!("ReplicaSet \"{}-new\" has timed out progressing.", key.1) }]);
        }
        d["status"] = s;
    }

    /// The pods the Deployment has now.
    fn pods(&self, key: &(String, String)) -> Vec<Value> {
        let Some(d) = self.deployments.get(key) else {
            return vec![];
        };
        let name = &key.1;
        let labels = d["spec"]["selector"]["matchLabels"].clone();
        let container = d["spec"]["template"]["spec"]["containers"][0]["name"].clone();
        let image = image_of(d);
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let running = |i: i64, image: &str| {
            json!({
                "metadata": { "name": format!("{name}-{i}"), "namespace": key.0, "labels": labels },
                "status": { "phase": "Running", "containerStatuses": [{
                    "name": container, "image": image, "imageID": format!("docker-pullable://{}", digest_of(image)),
                    "ready": true, "restartCount": 0, "state": { "running": { "startedAt": "2026-11-21T09:00:00Z" } }
                }] }
            })
        };
        if !self.unpullable.contains(&image) {
            return (0..replicas).map(|i| running(i, &image)).collect();
        }
        // The old pods keep running; the new one cannot pull its image.
        let old = d["metadata"]["annotations"]["fake/previous-image"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut pods: Vec<Value> = (0..replicas).map(|i| running(i, &old)).collect();
        pods.push(json!({
            "metadata": { "name": format!("{name}-new-0"), "namespace": key.0, "labels": labels },
            "status": { "phase": "Pending", "containerStatuses": [{
                "name": container, "image": image, "imageID": "", "ready": false, "restartCount": 0,
                "state": { "waiting": { "reason": "ImagePullBackOff",
                                        "message": format!("Back-off pulling image \"{image}\": manifest unknown") } }
            }] }
        }));
        pods
    }
}

pub(crate) fn record(c: &mut Cluster, method: &str, path: String, query: &HashMap<String, String>, h: &HeaderMap) {
    let mut q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    q.sort();
    let ct = h.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let path = if q.is_empty() {
        path
    } else {
        format!("{path}?{}", q.join("&"))
    };
    c.calls.push((method.into(), path, ct));
}

async fn get_deployment(
    State(c): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    let mut c = c.lock().unwrap();
    record(
        &mut c,
        "GET",
        format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}"),
        &q,
        &h,
    );
    let key = (ns.clone(), name.clone());
    c.reconcile(&key);
    match c.deployments.get(&key) {
        Some(d) => Json(d.clone()).into_response(),
        None => status(404, "NotFound", format!("deployments.apps \"{name}\" not found")),
    }
}

async fn patch_deployment(
    State(c): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    body: String,
) -> Response {
    let mut c = c.lock().unwrap();
    record(
        &mut c,
        "PATCH",
        format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}"),
        &q,
        &h,
    );
    if c.forbid_patch {
        return status(
            403,
            "Forbidden",
            format!("deployments.apps \"{name}\" is forbidden: User \"system:serviceaccount:releasebot:releasebot\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"{ns}\""),
        );
    }
    let patch = match patch_of(&h, &body, &[STRATEGIC], "spec", &["replicas", "template"]) {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let key = (ns, name.clone());
    let Some(d) = c.deployments.get_mut(&key) else {
        return status(404, "NotFound", format!("deployments.apps \"{name}\" not found"));
    };
    let spec = patch["spec"].as_object().cloned().unwrap_or_default();
    // Of the pod template, a container's image and the template's annotations (a
    // restart's `kubectl.kubernetes.io/restartedAt`) are modelled; nothing else.
    let template = &patch["spec"]["template"];
    let modelled = template
        .as_object()
        .is_none_or(|t| t.keys().all(|k| k == "spec" || k == "metadata"))
        && template["metadata"]
            .as_object()
            .is_none_or(|m| m.keys().all(|k| k == "annotations"))
        && template["spec"]
            .as_object()
            .is_none_or(|s| s.keys().all(|k| k == "containers"));
    if !modelled {
        return status(400, "BadRequest", format!("fake: unsupported patch {patch}"));
    }
    let restarted = template["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].clone();
    if let Some(a) = template["metadata"]["annotations"].as_object() {
        for (k, v) in a {
            d["spec"]["template"]["metadata"]["annotations"][k] = v.clone();
        }
    }
    let previous = image_of(d);
    if let Some(r) = spec.get("replicas") {
        d["spec"]["replicas"] = r.clone();
    }
    for c in patch["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let containers = d["spec"]["template"]["spec"]["containers"].as_array_mut();
        let Some(target) = containers.into_iter().flatten().find(|x| x["name"] == c["name"]) else {
            return status(422, "Invalid", format!("fake: no container {} to patch", c["name"]));
        };
        if let Some(image) = c.get("image") {
            target["image"] = image.clone();
        }
    }
    let generation = d["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
    d["metadata"]["generation"] = json!(generation);
    let change = (
        name.clone(),
        d["spec"]["replicas"].as_i64().unwrap_or(1),
        match restarted.as_str() {
            Some(at) => format!("restartedAt {at}"),
            None => image_of(d),
        },
    );
    let key = key.clone();
    d["metadata"]["annotations"] = json!({ "fake/previous-image": previous });
    d["status"]["conditions"] = json!([{ "type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated" }]);
    let answer = d.clone();
    c.changes.push(change);
    c.changed_at.insert(key, std::time::Instant::now());
    (StatusCode::OK, Json(answer)).into_response()
}

async fn create_deployment(
    State(c): State<Shared>,
    Path(ns): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    Json(mut d): Json<Value>,
) -> Response {
    let mut c = c.lock().unwrap();
    record(
        &mut c,
        "POST",
        format!("/apis/apps/v1/namespaces/{ns}/deployments"),
        &q,
        &h,
    );
    let name = d["metadata"]["name"].as_str().unwrap_or_default().to_string();
    if name.is_empty()
        || d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .is_none_or(|a| a.is_empty())
    {
        return status(
            422,
            "Invalid",
            "Deployment.apps is invalid: metadata.name and spec.template.spec.containers are required".into(),
        );
    }
    let key = (ns.clone(), name.clone());
    if c.deployments.contains_key(&key) {
        return status(
            409,
            "AlreadyExists",
            format!("deployments.apps \"{name}\" already exists"),
        );
    }
    d["apiVersion"] = json!("apps/v1");
    d["kind"] = json!("Deployment");
    d["metadata"]["namespace"] = json!(ns);
    d["metadata"]["generation"] = json!(1);
    d["metadata"]["resourceVersion"] = json!("1");
    d["status"] = json!({});
    c.changes
        .push((name, d["spec"]["replicas"].as_i64().unwrap_or(1), image_of(&d)));
    c.deployments.insert(key, d.clone());
    (StatusCode::CREATED, Json(d)).into_response()
}

async fn delete_deployment(
    State(c): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    let mut c = c.lock().unwrap();
    record(
        &mut c,
        "DELETE",
        format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}"),
        &q,
        &h,
    );
    match c.deployments.remove(&(ns, name.clone())) {
        Some(d) => {
            c.changes.push((name, 0, "deleted".into()));
            Json(d).into_response()
        }
        None => status(404, "NotFound", format!("deployments.apps \"{name}\" not found")),
    }
}

async fn patch_ingress(
    State(c): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    body: String,
) -> Response {
    let mut c = c.lock().unwrap();
    record(
        &mut c,
        "PATCH",
        format!("/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/{name}"),
        &q,
        &h,
    );
    let patch = match patch_of(&h, &body, &[MERGE], "metadata", &["annotations"]) {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let Some(ing) = c.ingresses.get_mut(&(ns, name.clone())) else {
        return status(
            404,
            "NotFound",
            format!("ingresses.networking.k8s.io \"{name}\" not found"),
        );
    };
    for (k, v) in patch["metadata"]["annotations"].as_object().into_iter().flatten() {
        ing["metadata"]["annotations"][k] = v.clone();
    }
    let weight = ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"]
        .as_str()
        .and_then(|w| w.parse().ok())
        .unwrap_or(-1);
    let answer = ing.clone();
    c.changes.push((name, weight, "canary-weight".into()));
    Json(answer).into_response()
}

async fn get_route(
    State(c): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    let mut c = c.lock().unwrap();
    record(
        &mut c,
        "GET",
        format!("/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes/{name}"),
        &q,
        &h,
    );
    let missing = c.missing_backends.clone();
    match c.routes.get_mut(&(ns, name.clone())) {
        Some(r) => {
            route_status(r, &missing);
            Json(r.clone()).into_response()
        }
        None => status(
            404,
            "NotFound",
            format!("httproutes.gateway.networking.k8s.io \"{name}\" not found"),
        ),
    }
}

/// The Gateway's controller: each parent reports, for the route's generation, whether it
/// accepted the route and resolved its backends (`status.parents[].conditions`).
fn route_status(r: &mut Value, missing: &BTreeSet<String>) {
    let generation = r["metadata"]["generation"].as_i64().unwrap_or(1);
    let lacking: Vec<String> = r["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rule| rule["backendRefs"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["weight"].as_i64().unwrap_or(1) > 0)
        .filter_map(|b| b["name"].as_str().map(str::to_string))
        .filter(|n| missing.contains(n))
        .collect();
    let resolved = match lacking.first() {
        None => {
            json!({ "type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "observedGeneration": generation })
        }
        Some(n) => json!({ "type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound",
                           "message": format!("Service \"{n}\" not found"), "observedGeneration": generation }),
    };
    let parents: Vec<Value> = r["spec"]["parentRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            json!({ "parentRef": p, "controllerName": "example.net/gateway-controller", "conditions": [
                { "type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": generation },
                resolved.clone()
            ] })
        })
        .collect();
    r["status"] = json!({ "parents": parents });
}

/// A custom resource: strategic merge is refused (415), and `spec.rules` is an atomic
/// list, replaced whole by a merge patch.
async fn patch_route(
    State(c): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    body: String,
) -> Response {
    let mut c = c.lock().unwrap();
    record(
        &mut c,
        "PATCH",
        format!("/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes/{name}"),
        &q,
        &h,
    );
    let patch = match patch_of(&h, &body, &[MERGE, JSON_PATCH], "spec", &["rules"]) {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let Some(route) = c.routes.get_mut(&(ns, name.clone())) else {
        return status(
            404,
            "NotFound",
            format!("httproutes.gateway.networking.k8s.io \"{name}\" not found"),
        );
    };
    if route["spec"]["rules"] != patch["spec"]["rules"] {
        route["spec"]["rules"] = patch["spec"]["rules"].clone();
        let generation = route["metadata"]["generation"].as_i64().unwrap_or(1);
        route["metadata"]["generation"] = json!(generation + 1);
    }
    let weights: Vec<String> = route["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| format!("{}={}", b["name"].as_str().unwrap_or_default(), b["weight"]))
        .collect();
    let answer = route.clone();
    c.changes.push((name, 0, weights.join(",")));
    Json(answer).into_response()
}

async fn get_service(
    State(c): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    let mut c = c.lock().unwrap();
    record(
        &mut c,
        "GET",
        format!("/api/v1/namespaces/{ns}/services/{name}"),
        &q,
        &h,
    );
    match c.services.get(&(ns, name.clone())) {
        Some(s) => Json(s.clone()).into_response(),
        None => status(404, "NotFound", format!("services \"{name}\" not found")),
    }
}

/// Only the selector may change here (a strategic merge patch, as for any built-in type).
async fn patch_service(
    State(c): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    body: String,
) -> Response {
    let mut c = c.lock().unwrap();
    record(
        &mut c,
        "PATCH",
        format!("/api/v1/namespaces/{ns}/services/{name}"),
        &q,
        &h,
    );
    let patch = match patch_of(&h, &body, &[STRATEGIC], "spec", &["selector"]) {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let Some(svc) = c.services.get_mut(&(ns, name.clone())) else {
        return status(404, "NotFound", format!("services \"{name}\" not found"));
    };
    for (k, v) in patch["spec"]["selector"].as_object().into_iter().flatten() {
        svc["spec"]["selector"][k] = v.clone();
    }
    let slot = svc["spec"]["selector"]["slot"].as_str().unwrap_or_default().to_string();
    let answer = svc.clone();
    c.changes.push((name, 0, format!("slot={slot}")));
    Json(answer).into_response()
}

async fn list_pods(
    State(c): State<Shared>,
    Path(ns): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    let mut c = c.lock().unwrap();
    record(&mut c, "GET", format!("/api/v1/namespaces/{ns}/pods"), &q, &h);
    let Some(selector) = q.get("labelSelector") else {
        return status(
            400,
            "BadRequest",
            "fake: list pods by a deployment's label selector".into(),
        );
    };
    let wanted: BTreeMap<String, Value> = selector
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let selects = |d: &Value| {
        d["spec"]["selector"]["matchLabels"].as_object().is_some_and(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>()
                == wanted
        })
    };
    let key = c
        .deployments
        .iter()
        .find(|((n, _), d)| *n == ns && selects(d))
        .map(|(k, _)| k.clone());
    let items = key.map(|k| c.pods(&k)).unwrap_or_default();
    Json(json!({ "apiVersion": "v1", "kind": "PodList", "metadata": { "resourceVersion": "1" }, "items": items }))
        .into_response()
}

async fn pod_log(
    State(c): State<Shared>,
    Path((ns, pod)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    let mut c = c.lock().unwrap();
    record(&mut c, "GET", format!("/api/v1/namespaces/{ns}/pods/{pod}/log"), &q, &h);
    format!("pulling image\nBack-off pulling image for pod {pod}\n").into_response()
}

/// Starts the fake; its base URL and its state.
pub async fn start() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let app = Router::new()
        .route(
            "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
            get(get_deployment).patch(patch_deployment).delete(delete_deployment),
        )
        .route(
            "/apis/apps/v1/namespaces/{ns}/deployments",
            axum::routing::post(create_deployment),
        )
        .route(
            "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/{name}",
            axum::routing::patch(patch_ingress),
        )
        .route(
            "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes/{name}",
            get(get_route).patch(patch_route),
        )
        .route(
            "/api/v1/namespaces/{ns}/services/{name}",
            get(get_service).patch(patch_service),
        )
        .route(
            "/apis/argoproj.io/v1alpha1/namespaces/{ns}/rollouts/{name}",
            get(super::fake_argo::get_rollout).patch(super::fake_argo::patch_rollout),
        )
        .route(
            "/apis/argoproj.io/v1alpha1/namespaces/{ns}/rollouts/{name}/status",
            axum::routing::patch(super::fake_argo::patch_status),
        )
        .route("/api/v1/namespaces/{ns}/pods", get(list_pods))
        .route("/api/v1/namespaces/{ns}/pods/{pod}/log", get(pod_log))
        .with_state(shared.clone());
    let addr = super::serve_fake(app).await;
    (format!("http://{addr}"), shared)
}

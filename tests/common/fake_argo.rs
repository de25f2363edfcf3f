//! A fake of Argo Rollouts' `Rollout` resource (`argoproj.io/v1alpha1`, a custom resource
//! with a status subresource) and of its controller, written from the API reference and
//! Argo Rollouts' types (`pkg/apis/rollouts/v1alpha1/types.go`) and plugin
//! (`pkg/kubectl-argo-rollouts/cmd/*`), and strict about what it does not model:
//!
//! - A PATCH of a custom resource takes a merge patch (RFC 7386; lists are replaced
//!   whole); a strategic-merge patch is refused with 415 as the API server refuses it, a
//!   JSON patch with 400 (not modelled). The resource takes `metadata.resourceVersion`
//!   (a precondition: another version answers 409 Conflict) and `spec.paused` /
//!   `spec.template`; the status subresource takes only `status.abort`,
//!   `status.pauseConditions` and `status.currentStepIndex`. Anything else is 400.
//! - The controller runs at each GET: a new pod template starts a new revision at step 0
//!   (or, if it is the stable one, goes back to it at once: Argo's rollback to stable);
//!   `setWeight` steps set `status.canary.weights`; a `pause: {}` step adds a
//!   `CanaryPauseStep` pause condition and waits until it is cleared (promote);
//!   `spec.paused` holds it; an `analysis` step runs an AnalysisRun that concludes as
//!   `Cluster::analysis` says (a failed one aborts the update); `status.abort` makes it
//!   `Degraded` with the canary scaled away; past the last step the new revision becomes
//!   stable and the Rollout `Healthy`.
#![allow(dead_code)]

use super::fake_kubernetes::{record, status, Cluster, Shared, MERGE};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The pod-template hash Argo Rollouts would give a template running `image`.
pub fn pod_hash(image: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(image.as_bytes()))[..10].to_string()
}

/// A Rollout of `replicas` pods of `container` running `image`, healthy, with these
/// canary `steps` (`{"setWeight": 20}`, `{"pause": {}}`, `{"analysis": {…}}`).
pub fn rollout(namespace: &str, name: &str, container: &str, image: &str, replicas: i64, steps: Value) -> Value {
    let n = steps.as_array().map_or(0, Vec::len);
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": { "name": name, "namespace": namespace, "generation": 1, "resourceVersion": "1" },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": container, "image": image }, { "name": "sidecar", "image": "envoyproxy/envoy:v1.31" }] }
            },
            "strategy": { "canary": { "steps": steps } }
        },
        "status": {
            "phase": "Healthy", "observedGeneration": "1", "currentStepIndex": n,
            "stableRS": pod_hash(image), "currentPodHash": pod_hash(image),
            "replicas": replicas, "availableReplicas": replicas
        }
    })
}

/// RFC 7386: objects merged, `null` removes, anything else (lists too) replaces.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

fn image_of(ro: &Value) -> String {
    ro["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn bump(ro: &mut Value) {
    let rv: i64 = ro["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    ro["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
}

impl Cluster {
    /// What the Argo Rollouts controller does with the Rollout since the last look.
    fn reconcile_rollout(&mut self, key: &(String, String)) {
        let verdict = if self.analysis.is_empty() {
            "Running".to_string()
        } else {
            self.analysis.clone()
        };
        let Some(ro) = self.rollouts.get_mut(key) else {
            return;
        };
        let before = ro.clone();
        let generation = ro["metadata"]["generation"].as_i64().unwrap_or(1);
        let steps = ro["spec"]["strategy"]["canary"]["steps"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let hash = pod_hash(&image_of(ro));
        let held_by_spec = ro["spec"]["paused"] == true;
        let s = &mut ro["status"];
        s["observedGeneration"] = json!(generation.to_string());
        if s["currentPodHash"] != json!(hash) {
            // A new revision: from the first step — or straight back to the stable one.
            s["currentPodHash"] = json!(hash);
            for k in [
                "abort",
                "pauseConditions",
                "canary",
                "message",
                "controllerPause",
                "fakePausedAt",
            ] {
                if let Some(o) = s.as_object_mut() {
                    o.remove(k);
                }
            }
            if s["stableRS"] == json!(hash) {
                s["currentStepIndex"] = json!(steps.len());
                s["phase"] = json!("Healthy");
            } else {
                s["currentStepIndex"] = json!(0);
                s["phase"] = json!("Progressing");
            }
        }
        let weights =
            |w: u64| json!({ "canary": { "weight": w, "podTemplateHash": hash }, "stable": { "weight": 100 - w } });
        let aborted_message =
            |why: &str| format!("RolloutAborted: Rollout aborted update to revision {generation}{why}");
        if s["phase"] == "Healthy" {
            // Nothing under way.
        } else if s["abort"] == true {
            s["phase"] = json!("Degraded");
            if s["message"].as_str().unwrap_or_default().is_empty() {
                s["message"] = json!(aborted_message(""));
            }
            s["canary"]["weights"] = weights(0);
            if let Some(o) = s.as_object_mut() {
                o.remove("pauseConditions");
            }
        } else if held_by_spec {
            s["phase"] = json!("Paused");
        } else {
            loop {
                let s = &mut ro["status"];
                let i = s["currentStepIndex"].as_u64().unwrap_or(0) as usize;
                let Some(step) = steps.get(i) else {
                    s["stableRS"] = json!(hash);
                    s["phase"] = json!("Healthy");
                    s["canary"]["weights"] = weights(0);
                    break;
                };
                if let Some(w) = step["setWeight"].as_u64() {
                    s["canary"]["weights"] = weights(w);
                } else if step.get("pause").is_some() {
                    let held = s["pauseConditions"].as_array().is_some_and(|c| !c.is_empty());
                    if s["fakePausedAt"] != json!(i) {
                        s["fakePausedAt"] = json!(i);
                        s["pauseConditions"] =
                            json!([{ "reason": "CanaryPauseStep", "startTime": "2026-11-21T09:00:00Z" }]);
                        s["phase"] = json!("Paused");
                        break;
                    }
                    if held {
                        s["phase"] = json!("Paused");
                        break;
                    }
                } else if step.get("analysis").is_some() {
                    let run = format!("{}-{hash}-{i}", key.1);
                    let a = &mut s["canary"]["currentStepAnalysisRunStatus"];
                    *a = json!({ "name": run, "status": verdict });
                    match verdict.as_str() {
                        "Successful" => {}
                        "Failed" => {
                            let why = "Metric \"success-rate\" assessed Failed due to failed (1) > failureLimit (0)";
                            a["message"] = json!(why);
                            s["abort"] = json!(true);
                            s["phase"] = json!("Degraded");
                            s["message"] = json!(aborted_message(&format!(": {why}")));
                            s["canary"]["weights"] = weights(0);
                            break;
                        }
                        _ => {
                            s["phase"] = json!("Progressing");
                            break;
                        }
                    }
                }
                s["currentStepIndex"] = json!(i + 1);
                s["phase"] = json!("Progressing");
            }
        }
        if *ro != before {
            bump(ro);
        }
    }
}

fn not_found(name: &str) -> Response {
    status(404, "NotFound", format!("rollouts.argoproj.io \"{name}\" not found"))
}

/// The body of a PATCH of a Rollout: a merge patch (415 for strategic merge, 400 for a
/// JSON patch, which this fake does not model) touching only `allowed` (path, keys).
fn merge_patch(h: &HeaderMap, body: &str, allowed: &[(&str, &[&str])]) -> Result<Value, Box<Response>> {
    let ct = h.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if ct == "application/strategic-merge-patch+json" {
        return Err(Box::new(status(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
        )));
    }
    if ct != MERGE {
        return Err(Box::new(status(
            400,
            "BadRequest",
            format!("fake: {ct} is not modelled"),
        )));
    }
    let patch: Value =
        serde_json::from_str(body).map_err(|_| Box::new(status(400, "BadRequest", "the body is not JSON".into())))?;
    let fits = patch.as_object().is_some_and(|o| {
        o.iter().all(|(k, v)| {
            allowed.iter().find(|(top, _)| top == k).is_some_and(|(_, keys)| {
                v.as_object()
                    .is_some_and(|f| f.keys().all(|f| keys.contains(&f.as_str())))
            })
        })
    });
    if !fits {
        return Err(Box::new(status(
            400,
            "BadRequest",
            format!("fake: unsupported patch {patch}"),
        )));
    }
    Ok(patch)
}

pub async fn get_rollout(
    State(c): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    let mut c = c.lock().unwrap();
    record(
        &mut c,
        "GET",
        format!("/apis/argoproj.io/v1alpha1/namespaces/{ns}/rollouts/{name}"),
        &q,
        &h,
    );
    let key = (ns, name.clone());
    c.reconcile_rollout(&key);
    match c.rollouts.get(&key) {
        Some(r) => Json(r.clone()).into_response(),
        None => not_found(&name),
    }
}

pub async fn patch_rollout(
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
        format!("/apis/argoproj.io/v1alpha1/namespaces/{ns}/rollouts/{name}"),
        &q,
        &h,
    );
    let patch = match merge_patch(
        &h,
        &body,
        &[("metadata", &["resourceVersion"]), ("spec", &["paused", "template"])],
    ) {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let conflict = std::mem::take(&mut c.conflict_next);
    let Some(ro) = c.rollouts.get_mut(&(ns, name.clone())) else {
        return not_found(&name);
    };
    let wanted = &patch["metadata"]["resourceVersion"];
    if conflict || (!wanted.is_null() && *wanted != ro["metadata"]["resourceVersion"]) {
        if conflict {
            bump(ro);
        }
        return status(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on rollouts.argoproj.io \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
        );
    }
    let mut spec_patch = patch.clone();
    if let Some(o) = spec_patch.as_object_mut() {
        o.remove("metadata");
    }
    let before = ro["spec"].clone();
    merge(ro, &spec_patch);
    if ro["spec"] != before {
        let generation = ro["metadata"]["generation"].as_i64().unwrap_or(1);
        ro["metadata"]["generation"] = json!(generation + 1);
        bump(ro);
    }
    let answer = ro.clone();
    let what = match spec_patch["spec"].get("template") {
        Some(_) => image_of(&answer),
        None => format!("spec {}", spec_patch["spec"]),
    };
    c.changes
        .push((name, answer["spec"]["replicas"].as_i64().unwrap_or(0), what));
    Json(answer).into_response()
}

pub async fn patch_status(
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
        format!("/apis/argoproj.io/v1alpha1/namespaces/{ns}/rollouts/{name}/status"),
        &q,
        &h,
    );
    let patch = match merge_patch(
        &h,
        &body,
        &[("status", &["abort", "pauseConditions", "currentStepIndex"])],
    ) {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let Some(ro) = c.rollouts.get_mut(&(ns, name.clone())) else {
        return not_found(&name);
    };
    merge(ro, &patch);
    bump(ro);
    let answer = ro.clone();
    c.changes.push((name, 0, format!("status {}", patch["status"])));
    Json(answer).into_response()
}

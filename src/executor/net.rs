//! Providers that reach real systems: `health` (HTTP probe until N consecutive
//! successes), `probe` (measures old and new endpoints: success rate and p95), `http`
//! (webhook with an idempotency key, optional status polling) and `nginx` (weighted
//! upstream file + reload command).

use super::providers::{done, monitor, script_env, summary, traffic, StepCtx, StepOutcome, Summary};
use super::Sample;
use crate::domain::plan::Provider;
use serde_json::json;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub(crate) fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default()
    })
}

fn interval_ms(interval_secs: Option<u64>) -> i64 {
    interval_secs.unwrap_or(5) as i64 * 1000
}

/// One probe of `url`: whether it answered 2xx, and how long it took.
async fn hit(url: &str) -> (bool, u64) {
    let t = Instant::now();
    let ok = client()
        .get(url)
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false);
    (ok, t.elapsed().as_millis() as u64)
}

/// `download` (VERIFY_PACKAGE): fetches the ticket's package URL, streaming, and checks
/// its MD5 against the ticket's. Read-only, so it is simply run again after a restart.
pub async fn verify_package(ctx: StepCtx<'_>, deadline: Option<i64>) -> StepOutcome {
    use md5::{Digest, Md5};
    let (Some(url), Some(expected)) = (ctx.ticket.fields.get("package_url"), ctx.ticket.fields.get("md5")) else {
        return done(false, summary("package_fields", json!({})));
    };
    let limit = deadline.map(|d| (d - ctx.now).max(1_000) as u64).unwrap_or(30 * 60_000);
    let http = match reqwest::Client::builder().timeout(Duration::from_millis(limit)).build() {
        Ok(c) => c,
        Err(e) => return done(false, summary("request_failed", json!({ "error": e.to_string() }))),
    };
    let started = Instant::now();
    let fetched: Result<(u64, String), Summary> = async {
        let mut res = http
            .get(url)
            .send()
            .await
            .map_err(|e| summary("request_failed", json!({ "error": e.without_url().to_string() })))?;
        if !res.status().is_success() {
            return Err(summary("http_status", json!({ "status": res.status().as_u16() })));
        }
        let mut hasher = Md5::new();
        let mut bytes = 0u64;
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|e| summary("request_failed", json!({ "error": e.without_url().to_string() })))?
        {
            bytes += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok((bytes, hex::encode(hasher.finalize())))
    }
    .await;
    let info = &mut ctx.run.steps[ctx.index];
    match fetched {
        Err(s) => {
            info.log.push(format!("GET {url}: {}", s.params));
            done(false, s)
        }
        Ok((bytes, got)) => {
            info.log.push(format!(
                "GET {url}: {bytes} bytes in {} ms, MD5 {got}",
                started.elapsed().as_millis()
            ));
            if got.eq_ignore_ascii_case(expected.trim()) {
                done(true, summary("package_ok", json!({ "bytes": bytes, "md5": got })))
            } else {
                done(
                    false,
                    summary(
                        "package_mismatch",
                        json!({ "expected": expected.trim().to_lowercase(), "got": got }),
                    ),
                )
            }
        }
    }
}

/// `health`: polled; done after `successes` consecutive 2xx answers.
pub async fn health(ctx: StepCtx<'_>) -> StepOutcome {
    let Provider::Health {
        url,
        successes,
        interval_secs,
    } = ctx.step.provider.clone()
    else {
        return done(false, summary("no_url", json!({})));
    };
    let need = successes.unwrap_or(3).max(1);
    let (ok, ms) = hit(&url).await;
    let info = &mut ctx.run.steps[ctx.index];
    info.counter = if ok { info.counter + 1 } else { 0 };
    info.log.push(format!(
        "GET {url}: {} in {ms} ms ({}/{need})",
        if ok { "ok" } else { "failed" },
        info.counter
    ));
    let keep = info.log.len().saturating_sub(20);
    info.log.drain(..keep);
    if info.counter >= need {
        done(true, summary("health_ok", json!({ "n": need })))
    } else {
        StepOutcome::Continue {
            next_at: ctx.now + interval_ms(interval_secs),
        }
    }
}

fn p95(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(((v.len() as f64 - 1.0) * 0.95).round() as usize)
        .copied()
        .unwrap_or(0)
}

fn p99(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(((v.len() as f64 - 1.0) * 0.99).round() as usize)
        .copied()
        .unwrap_or(0)
}

async fn measure(url: &str, n: u32) -> (f64, u64, u64) {
    let mut ok = 0u32;
    let mut times = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (good, ms) = hit(url).await;
        ok += u32::from(good);
        times.push(ms);
    }
    (
        f64::from(ok) * 100.0 / f64::from(n.max(1)),
        p95(times.clone()),
        p99(times),
    )
}

/// `probe` (MONITOR): sends requests to the old and the new version and compares them.
pub async fn probe(ctx: StepCtx<'_>) -> StepOutcome {
    let Provider::Probe {
        old_url: old,
        new_url: new,
        requests,
    } = ctx.step.provider.clone()
    else {
        return done(false, summary("probe_urls", json!({})));
    };
    let n = requests.unwrap_or(20).max(1);
    let (old_success, old_p95, old_p99) = measure(&old, n).await;
    let (new_success, new_p95, new_p99) = measure(&new, n).await;
    monitor(
        ctx,
        Sample {
            new_success,
            old_success,
            new_p95,
            old_p95,
            new_p99,
            old_p99,
        },
    )
}

/// One instant query: the first sample's value.
async fn instant(base: &str, query: &str) -> Result<f64, String> {
    let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
    let res = client()
        .get(&url)
        .query(&[("query", query)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("HTTP {}", res.status().as_u16()));
    }
    let v: serde_json::Value = res.json().await.map_err(|e| e.to_string())?;
    v.pointer("/data/result/0/value/1")
        .and_then(|x| x.as_str())
        .and_then(|x| x.parse::<f64>().ok())
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("no sample for {query}"))
}

/// `prometheus` (MONITOR): instant queries for old and new, compared with the thresholds.
pub async fn prometheus(ctx: StepCtx<'_>) -> StepOutcome {
    let Provider::Prometheus { url: base, queries: q } = ctx.step.provider.clone() else {
        return done(false, summary("no_url", json!({})));
    };
    let ms = |v: Option<Result<f64, String>>| -> Result<u64, String> {
        v.map(|r| r.map(|s| (s * 1000.0).round() as u64)).unwrap_or(Ok(0))
    };
    let sample = async {
        let new_success = instant(&base, &q.new_success).await? * 100.0;
        let old_success = instant(&base, &q.old_success).await? * 100.0;
        let mut latency = [0u64; 4];
        for (slot, query) in latency.iter_mut().zip([&q.new_p95, &q.old_p95, &q.new_p99, &q.old_p99]) {
            if let Some(query) = query {
                *slot = ms(Some(instant(&base, query).await))?;
            }
        }
        let [new_p95, old_p95, new_p99, old_p99] = latency;
        Ok::<Sample, String>(Sample {
            new_success,
            old_success,
            new_p95,
            old_p95,
            new_p99,
            old_p99,
        })
    }
    .await;
    match sample {
        Ok(s) => monitor(ctx, s),
        Err(e) => done(false, summary("query_failed", json!({ "error": e }))),
    }
}

/// `http`: POSTs the ticket to a webhook with an idempotency key; polls `status_url` if set.
pub async fn http(ctx: StepCtx<'_>) -> StepOutcome {
    let Provider::Http {
        url,
        status_url,
        interval_secs,
    } = ctx.step.provider.clone()
    else {
        return done(false, summary("no_url", json!({})));
    };
    let polling = ctx.run.steps[ctx.index].counter > 0;
    if !polling {
        let key = format!(
            "{}-{}-{}",
            ctx.ticket.id, ctx.step.id, ctx.run.exec.steps[ctx.index].attempts
        );
        let body = serde_json::json!({
            "ticket": ctx.ticket.id.to_string(), "application": ctx.ticket.application, "step": ctx.step.id,
            "weight": ctx.step.weight.or(Some(ctx.run.traffic)), "fields": ctx.ticket.fields,
        });
        let res = client()
            .post(&url)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => return done(false, summary("http_status", json!({ "status": r.status().as_u16() }))),
            Err(e) => return done(false, summary("request_failed", json!({ "error": e.to_string() }))),
        }
        if status_url.is_none() {
            return done(true, summary("accepted", json!({})));
        }
        ctx.run.steps[ctx.index].counter = 1;
    }
    let Some(status_url) = status_url else {
        return done(true, summary("accepted", json!({})));
    };
    let status = match client().get(&status_url).send().await {
        Ok(r) => r
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(str::to_string)),
        Err(_) => None,
    };
    match status.as_deref() {
        Some("succeeded" | "success" | "done") => done(true, summary("succeeded", json!({}))),
        Some("failed" | "error") => done(false, summary("job_failed", json!({}))),
        _ => StepOutcome::Continue {
            next_at: ctx.now + interval_ms(interval_secs),
        },
    }
}

/// The upstream block for a share of `weight` percent on the new server.
pub fn upstream(name: &str, old: &str, new: &str, weight: u8) -> String {
    let mut out = format!("upstream {name} {{\n");
    if weight < 100 {
        out.push_str(&format!("    server {old} weight={};\n", 100 - u32::from(weight)));
    }
    if weight > 0 {
        out.push_str(&format!("    server {new} weight={weight};\n"));
    }
    out.push_str("}\n");
    out
}

/// `nginx`: writes the weighted upstream file atomically, then runs the reload command.
pub async fn nginx(ctx: StepCtx<'_>, weight: u8) -> StepOutcome {
    let s = ctx.step;
    let Provider::Nginx {
        upstream_file: file,
        upstream_name,
        old_server: old,
        new_server: new,
        reload_command: reload,
    } = &s.provider
    else {
        return done(false, summary("nginx_settings", json!({})));
    };
    let text = upstream(upstream_name.as_deref().unwrap_or("app"), old, new, weight);
    let tmp = format!("{file}.releasebot.tmp");
    if let Err(e) = tokio::fs::write(&tmp, &text)
        .await
        .and(tokio::fs::rename(&tmp, file).await)
    {
        return done(
            false,
            summary("write_failed", json!({ "file": file, "error": e.to_string() })),
        );
    }
    let env = script_env(ctx.ticket, s, ctx.run, ctx.sim);
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(reload)
        .env_clear()
        .envs(env)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => {
            ctx.run.traffic = weight;
            done(true, traffic(weight))
        }
        Ok(o) => StepOutcome::Done {
            ok: false,
            summary: summary(
                "reload_failed",
                json!({ "code": o.status.code().map(|c| c.to_string()).unwrap_or_else(|| "signal".into()) }),
            ),
            log: String::from_utf8_lossy(&o.stderr).lines().map(str::to_string).collect(),
        },
        Err(e) => done(false, summary("reload_error", json!({ "error": e.to_string() }))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_files_carry_the_weights() {
        assert_eq!(
            upstream("app", "old:1", "new:2", 10),
            "upstream app {\n    server old:1 weight=90;\n    server new:2 weight=10;\n}\n"
        );
        assert_eq!(
            upstream("app", "old:1", "new:2", 0),
            "upstream app {\n    server old:1 weight=100;\n}\n"
        );
        assert_eq!(
            upstream("app", "old:1", "new:2", 100),
            "upstream app {\n    server new:2 weight=100;\n}\n"
        );
        assert_eq!(p95(vec![5, 1, 3, 2, 4]), 5);
    }
}

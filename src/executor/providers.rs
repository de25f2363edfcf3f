//! Step providers. `sim` is a simulated fleet (deterministic, with injectable faults);
//! `script` runs a shell command with the ticket's fields in its environment; `builtin`
//! covers approval gates and notifications.

use super::{Run, Sample, TargetStatus};
use crate::config::SimConfig;
use crate::domain::execution::NEVER;
use crate::domain::plan::{Provider, StepDef, StepType, Thresholds};
use crate::domain::ticket::Ticket;
use serde_json::json;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio_util::sync::CancellationToken;

/// How often a MONITOR step samples (and updates the progress message).
pub const MONITOR_TICK_MS: i64 = 60_000;

#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    Done {
        ok: bool,
        summary: Summary,
        log: Vec<String>,
    },
    /// Still going: look again at `next_at`.
    Continue { next_at: i64 },
}

pub struct StepCtx<'a> {
    pub index: usize,
    pub step: &'a StepDef,
    pub ticket: &'a Ticket,
    pub run: &'a mut Run,
    pub sim: &'a SimConfig,
    pub started_at: i64,
    pub now: i64,
    /// Fired when a person asked to stop the step: its processes are terminated
    /// (SIGTERM to the process group, then SIGKILL after `grace`).
    pub stop: &'a CancellationToken,
    pub grace: Duration,
}

/// A step's result or evidence, worded by `messages/*/result_<key>.hbs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub key: &'static str,
    pub params: serde_json::Value,
}

pub(crate) fn summary(key: &'static str, params: serde_json::Value) -> Summary {
    Summary { key, params }
}

impl Summary {
    pub fn render(&self, texts: &crate::chat::Texts) -> String {
        texts
            .render(&format!("result_{}", self.key), &self.params)
            .unwrap_or_else(|_| format!("{} {}", self.key, self.params))
    }
}

pub(crate) fn done(ok: bool, summary: Summary) -> StepOutcome {
    StepOutcome::Done {
        ok,
        summary,
        log: vec![],
    }
}

fn pct(v: f64) -> String {
    format!("{v:.1}")
}

/// Whether a sample breaks the thresholds; the evidence when it does.
pub fn anomaly(t: &Thresholds, s: &Sample) -> Option<Summary> {
    if s.new_success < t.min_success_rate {
        let p = json!({ "new": pct(s.new_success), "min": pct(t.min_success_rate), "old": pct(s.old_success) });
        return Some(summary("success_below", p));
    }
    if let Some(max) = t.max_p95_ms.filter(|m| s.new_p95 > *m) {
        return Some(summary(
            "p95_above",
            json!({ "new": s.new_p95, "max": max, "old": s.old_p95 }),
        ));
    }
    if let Some(max) = t.max_p99_ms.filter(|m| s.new_p99 > *m) {
        return Some(summary(
            "p99_above",
            json!({ "new": s.new_p99, "max": max, "old": s.old_p99 }),
        ));
    }
    if let Some(drop) = t.max_success_rate_drop.filter(|d| s.old_success - s.new_success > *d) {
        let p = json!({ "new": pct(s.new_success), "old": pct(s.old_success), "drop": drop });
        return Some(summary("success_trailing", p));
    }
    None
}

/// A traffic split as a result.
pub(crate) fn traffic(weight: u8) -> Summary {
    summary("traffic", json!({ "new": weight, "old": 100 - weight }))
}

fn sim_sample(sim: &SimConfig, version: &str) -> Sample {
    let faulty = sim.faulty_versions.is_empty() || sim.faulty_versions.iter().any(|v| v == version);
    Sample {
        new_success: 100.0 - if faulty { sim.new_error_rate } else { 0.0 },
        old_success: 100.0 - sim.old_error_rate,
        new_p95: sim.new_p95_ms,
        old_p95: sim.old_p95_ms,
        // The simulated tail: p99 a third above p95.
        new_p99: sim.new_p95_ms * 4 / 3,
        old_p99: sim.old_p95_ms * 4 / 3,
    }
}

/// A simulated step's duration: `step_ms`, give or take half, as real steps vary.
fn sim_duration(step_ms: u64) -> std::time::Duration {
    let half = step_ms / 2;
    std::time::Duration::from_millis(half + rand::random::<u64>() % (2 * half + 1))
}

/// Runs (or polls) one step.
pub async fn run(ctx: StepCtx<'_>) -> StepOutcome {
    let deadline = ctx.step.timeout_secs.map(|t| ctx.started_at + (t as i64) * 1000);
    if deadline.is_some_and(|d| ctx.now >= d) {
        return done(
            false,
            summary("timed_out", json!({ "secs": ctx.step.timeout_secs.unwrap_or(0) })),
        );
    }
    if let Some((key, why)) = ctx.step.invalid.as_ref().and_then(|i| i.problems.first()) {
        return done(
            false,
            summary("invalid_settings", json!({ "setting": key, "why": why })),
        );
    }
    match &ctx.step.provider {
        Provider::Sim => {
            if ctx.sim.step_ms > 0 && ctx.step.kind != StepType::Monitor {
                // The simulated work takes its time; asked to stop, it stops.
                tokio::select! {
                    _ = tokio::time::sleep(sim_duration(ctx.sim.step_ms)) => {}
                    _ = ctx.stop.cancelled() => {
                        return done(false, summary("terminated", json!({ "grace": ctx.grace.as_secs() })));
                    }
                }
            }
            sim(ctx, deadline)
        }
        Provider::Script { command } => {
            let command = command.clone();
            script(ctx, &command, deadline).await
        }
        Provider::Health { .. } => super::net::health(ctx).await,
        Provider::Probe { .. } => super::net::probe(ctx).await,
        Provider::Prometheus { .. } => super::net::prometheus(ctx).await,
        Provider::Http { .. } => super::net::http(ctx).await,
        Provider::Download => super::net::verify_package(ctx, deadline).await,
        Provider::Nginx { .. } => {
            let weight = if ctx.step.kind == StepType::Rollback {
                0
            } else {
                ctx.step.weight.unwrap_or(100)
            };
            super::net::nginx(ctx, weight).await
        }
        Provider::Builtin => builtin(ctx),
        Provider::Kubernetes { .. } => super::kubernetes::run(ctx).await,
        Provider::ArgoRollouts { .. } => super::kubernetes::argo::run(ctx).await,
    }
}

/// A MONITOR tick: record the sample, fail on an anomaly, succeed at the end of the
/// window, otherwise look again at the next tick. Every sample is judged against the
/// thresholds: a monitor never passes unjudged (one that cannot measure fails with why).
pub(crate) fn monitor(ctx: StepCtx<'_>, sample: Sample) -> StepOutcome {
    let StepCtx {
        step,
        run,
        started_at,
        now,
        ..
    } = ctx;
    run.sample = Some(sample);
    if let Some(evidence) = step.thresholds.as_ref().and_then(|t| anomaly(t, &sample)) {
        return done(false, evidence);
    }
    let end = started_at + (step.duration_secs.unwrap_or(0) as i64) * 1000;
    if now >= end {
        let p = json!({ "new": pct(sample.new_success), "new_p95": sample.new_p95, "old": pct(sample.old_success), "old_p95": sample.old_p95 });
        done(true, summary("healthy", p))
    } else {
        StepOutcome::Continue {
            next_at: end.min(now + MONITOR_TICK_MS),
        }
    }
}

fn sim(ctx: StepCtx<'_>, deadline: Option<i64>) -> StepOutcome {
    let StepCtx {
        index,
        step,
        run,
        sim,
        started_at,
        now,
        ticket,
        stop,
        grace,
    } = ctx;
    if sim.hang_steps.contains(&step.id) {
        return StepOutcome::Continue {
            next_at: deadline.unwrap_or(NEVER),
        };
    }
    if sim.fail_steps.contains(&step.id) {
        return done(false, summary("sim_failure", json!({})));
    }
    let version = ticket.fields.get("version").cloned().unwrap_or_default();
    match step.kind {
        StepType::TrafficShift => {
            let w = step.weight.unwrap_or(100);
            run.traffic = w;
            done(true, traffic(w))
        }
        StepType::Monitor => monitor(
            StepCtx {
                index,
                step,
                ticket,
                run,
                sim,
                started_at,
                now,
                stop,
                grace,
            },
            sim_sample(sim, &version),
        ),
        StepType::Deploy => {
            let batches = batches_of(targets(ticket, sim), step.batches.as_ref());
            let failed = batches
                .iter()
                .position(|b| b.iter().any(|h| sim.failing_hosts.contains(h)));
            record_targets(run, &batches, failed.unwrap_or(batches.len()), failed);
            let log = batches
                .iter()
                .enumerate()
                .take(failed.map(|f| f + 1).unwrap_or(batches.len()))
                .map(|(n, b)| {
                    format!(
                        "[{}/{}] {} → {}",
                        n + 1,
                        batches.len(),
                        b.join(","),
                        if Some(n) == failed { "✗" } else { "✓" }
                    )
                })
                .collect();
            if let Some(f) = failed {
                let hosts: Vec<&String> = batches[f].iter().filter(|h| sim.failing_hosts.contains(h)).collect();
                let hosts = hosts.iter().map(|h| h.as_str()).collect::<Vec<_>>().join(", ");
                return StepOutcome::Done {
                    ok: false,
                    summary: summary("deploy_failed_on", json!({ "hosts": hosts })),
                    log,
                };
            }
            run.deployed = true;
            let targets: usize = batches.iter().map(Vec::len).sum();
            StepOutcome::Done {
                ok: true,
                summary: summary(
                    "deployed_sim",
                    json!({ "version": version, "targets": targets, "batches": batches.len() }),
                ),
                log,
            }
        }
        StepType::Rollback => {
            run.traffic = 0;
            done(true, summary("traffic_back", json!({ "restored": false })))
        }
        _ => done(true, summary("ok_simulated", json!({}))),
    }
}

/// Hosts the release covers: the ticket's scope (`web-1,web-2`) or every simulated host.
pub fn targets(ticket: &Ticket, sim: &SimConfig) -> Vec<String> {
    match ticket
        .fields
        .get("scope")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty() && !s.ends_with('%'))
    {
        Some(scope) => scope
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        None => (1..=sim.hosts).map(|i| format!("sim-{i}")).collect(),
    }
}

/// Targets split into batches: a small first batch, then `size` at a time.
pub fn batches_of(targets: Vec<String>, batches: Option<&crate::domain::plan::Batches>) -> Vec<Vec<String>> {
    let Some(b) = batches else { return vec![targets] };
    let mut from = 0;
    batch_plan(targets.len() as u32, b.first, b.size)
        .into_iter()
        .map(|n| {
            let slice = targets[from..from + n as usize].to_vec();
            from += n as usize;
            slice
        })
        .collect()
}

/// Per-target status after a deploy: batches before `done` succeeded, `failed` failed.
fn record_targets(run: &mut Run, batches: &[Vec<String>], done: usize, failed: Option<usize>) {
    run.targets = batches
        .iter()
        .enumerate()
        .flat_map(|(n, b)| {
            let status = if Some(n) == failed {
                TargetStatus::Failed
            } else if n < done {
                TargetStatus::Done
            } else {
                TargetStatus::Pending
            };
            b.iter().map(move |h| (h.clone(), status))
        })
        .collect();
}

/// Batch sizes: `first`, then `size` at a time.
pub fn batch_plan(total: u32, first: u32, size: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut left = total;
    let mut next = first.max(1);
    while left > 0 {
        let n = next.min(left);
        out.push(n);
        left -= n;
        next = size.max(1);
    }
    out
}

/// Ticket fields as environment variables: never spliced into the command line.
pub fn script_env(ticket: &Ticket, step: &StepDef, run: &Run, sim: &SimConfig) -> Vec<(String, String)> {
    let mut env = vec![
        ("RELEASEBOT_TICKET".to_string(), ticket.id.to_string()),
        ("RELEASEBOT_APPLICATION".to_string(), ticket.application.clone()),
        ("RELEASEBOT_STEP".to_string(), step.id.clone()),
        ("RELEASEBOT_TRAFFIC".to_string(), run.traffic.to_string()),
        ("RELEASEBOT_TARGETS".to_string(), targets(ticket, sim).join(",")),
    ];
    if let Some(w) = step.weight {
        env.push(("RELEASEBOT_WEIGHT".to_string(), w.to_string()));
    }
    for (k, v) in &ticket.fields {
        let name: String = k
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        env.push((format!("RELEASEBOT_FIELD_{name}"), v.clone()));
    }
    env
}

/// Lines of a step's output kept (the last ones).
pub const LOG_TAIL: usize = 20;
/// Characters of one output line kept.
const LINE_MAX: usize = 400;

/// The hosts a ticket's scope names (`web-1,web-2`), if it names any.
fn scoped_targets(ticket: &Ticket) -> Option<Vec<String>> {
    let scope = ticket
        .fields
        .get("scope")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty() && !s.ends_with('%'))?;
    Some(
        scope
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// The last lines of a process's output, kept while it runs (never the whole output).
#[derive(Clone, Default)]
struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    fn push(&self, line: String) {
        let line = crate::chat::truncate(&line, LINE_MAX, "…");
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if t.len() == LOG_TAIL {
            t.pop_front();
        }
        t.push_back(line);
    }

    fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

async fn read_lines(stream: impl AsyncRead + Unpin, tail: Tail) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tail.push(line);
    }
}

/// Sends `signal` to every process of a process group.
fn signal_group(pgid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals the process group; it touches no memory.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Kills a process group when dropped (a step cancelled or abandoned mid-way).
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            signal_group(pgid, libc::SIGKILL);
        }
    }
}

/// How a process ended.
enum Exit {
    Code(std::process::ExitStatus),
    TimedOut,
    Stopped,
}

/// Runs `sh -c command` in its own process group with only `env` (plus PATH, HOME, LANG,
/// TZ): the daemon's own environment, secrets included, never reaches a script. Output is
/// streamed into a bounded tail. On timeout or `stop`, the whole group gets SIGTERM, then
/// SIGKILL after `grace`.
async fn sh(
    command: &str,
    env: Vec<(String, String)>,
    limit: Duration,
    stop: &CancellationToken,
    grace: Duration,
) -> Result<(Exit, Vec<String>), Summary> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .env_clear()
        .envs(env)
        .process_group(0)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for var in ["PATH", "HOME", "LANG", "TZ"] {
        if let Ok(v) = std::env::var(var) {
            cmd.env(var, v);
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| summary("could_not_start", json!({ "error": e.to_string() })))?;
    let guard = GroupGuard(child.id());
    let tail = Tail::default();
    let out = child.stdout.take().map(|o| tokio::spawn(read_lines(o, tail.clone())));
    let err = child.stderr.take().map(|e| tokio::spawn(read_lines(e, tail.clone())));
    let ended = tokio::select! {
        r = child.wait() => r.map(Exit::Code),
        _ = tokio::time::sleep(limit) => Ok(Exit::TimedOut),
        _ = stop.cancelled() => Ok(Exit::Stopped),
    };
    let exit = match ended {
        Ok(Exit::Code(status)) => Exit::Code(status),
        Ok(how) => {
            if let Some(pgid) = guard.0 {
                signal_group(pgid, libc::SIGTERM);
            }
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                if let Some(pgid) = guard.0 {
                    signal_group(pgid, libc::SIGKILL);
                }
                let _ = child.wait().await;
            }
            how
        }
        Err(e) => return Err(summary("could_not_start", json!({ "error": e.to_string() }))),
    };
    // Whatever the group left running is stopped with it.
    drop(guard);
    for reader in [out, err].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
    }
    Ok((exit, tail.lines()))
}

/// Runs `command` as a script step does (own process group, only `env`, bounded output)
/// for up to `limit`; the last lines of its output, or why it failed in words (exit code,
/// timeout) with those lines.
pub async fn run_command(
    command: &str,
    env: Vec<(String, String)>,
    limit: Duration,
) -> Result<Vec<String>, (String, Vec<String>)> {
    let never = CancellationToken::new();
    match sh(command, env, limit, &never, Duration::from_secs(5)).await {
        Ok((Exit::Code(status), lines)) if status.success() => Ok(lines),
        Ok((Exit::Code(status), lines)) => Err((format!("exit code {}", code_of(&status)), lines)),
        Ok((_, lines)) => Err((format!("timed out after {} s", limit.as_secs()), lines)),
        Err(why) => {
            let error = why
                .params
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("unknown error");
            Err((format!("could not start: {error}"), vec![]))
        }
    }
}

fn code_of(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c.to_string(),
        (None, Some(sig)) => format!("signal {sig}"),
        (None, None) => "signal".into(),
    }
}

/// `script`: the command once, or once per batch of the ticket's targets (a small first
/// batch, then the rest), stopping at the first failure.
async fn script(ctx: StepCtx<'_>, command: &str, deadline: Option<i64>) -> StepOutcome {
    let batches = match scoped_targets(ctx.ticket) {
        Some(targets) => batches_of(targets, ctx.step.batches.as_ref()),
        None => vec![vec![]],
    };
    let per_target = ctx.step.kind == StepType::Deploy && batches.iter().any(|b| !b.is_empty());
    let total = batches.len();
    let mut log: Vec<String> = Vec::new();
    let keep_tail = |log: &mut Vec<String>| {
        if log.len() > LOG_TAIL {
            log.drain(..log.len() - LOG_TAIL);
        }
    };
    for (n, batch) in batches.iter().enumerate() {
        let mut env = script_env(ctx.ticket, ctx.step, ctx.run, ctx.sim);
        env.retain(|(k, _)| k != "RELEASEBOT_TARGETS");
        env.push(("RELEASEBOT_TARGETS".to_string(), batch.join(",")));
        env.push(("RELEASEBOT_BATCH".to_string(), format!("{}/{total}", n + 1)));
        let limit = deadline
            .map(|d| Duration::from_millis((d - ctx.now).max(1) as u64))
            .unwrap_or(Duration::from_secs(3600));
        let (exit, lines) = match sh(command, env, limit, ctx.stop, ctx.grace).await {
            Ok(r) => r,
            Err(why) => {
                return StepOutcome::Done {
                    ok: false,
                    summary: why,
                    log,
                }
            }
        };
        log.extend(lines);
        let status = match exit {
            Exit::Code(status) => status,
            Exit::TimedOut => {
                keep_tail(&mut log);
                let secs = ctx.step.timeout_secs.unwrap_or(limit.as_secs());
                return StepOutcome::Done {
                    ok: false,
                    summary: summary("timed_out", json!({ "secs": secs })),
                    log,
                };
            }
            Exit::Stopped => {
                keep_tail(&mut log);
                return StepOutcome::Done {
                    ok: false,
                    summary: summary("terminated", json!({ "grace": ctx.grace.as_secs() })),
                    log,
                };
            }
        };
        let code = code_of(&status);
        if total > 1 {
            log.push(format!("[{}/{total}] {} → {code}", n + 1, batch.join(",")));
        }
        if !status.success() {
            if per_target {
                record_targets(ctx.run, &batches, n, Some(n));
            }
            keep_tail(&mut log);
            return StepOutcome::Done {
                ok: false,
                summary: summary("exit_code", json!({ "code": code })),
                log,
            };
        }
    }
    if per_target {
        record_targets(ctx.run, &batches, batches.len(), None);
    }
    if ctx.step.kind == StepType::Deploy {
        ctx.run.deployed = true;
    }
    keep_tail(&mut log);
    let result = if total > 1 {
        summary("batches_done", json!({ "batches": total }))
    } else {
        summary("exit_code", json!({ "code": "0" }))
    };
    StepOutcome::Done {
        ok: true,
        summary: result,
        log,
    }
}

fn builtin(ctx: StepCtx<'_>) -> StepOutcome {
    match ctx.step.kind {
        // Completed by a person pressing Continue.
        StepType::ApprovalGate => StepOutcome::Continue { next_at: NEVER },
        _ => done(true, summary("done", json!({}))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_start_small() {
        assert_eq!(batch_plan(10, 1, 4), vec![1, 4, 4, 1]);
        assert_eq!(batch_plan(2, 1, 5), vec![1, 1]);
        assert_eq!(batch_plan(0, 1, 5), Vec::<u32>::new());
    }

    #[test]
    fn thresholds_name_the_evidence() {
        let t = Thresholds {
            min_success_rate: 99.5,
            max_p95_ms: Some(800),
            max_p99_ms: Some(1500),
            max_success_rate_drop: Some(0.5),
        };
        let ok = Sample {
            new_success: 99.9,
            old_success: 99.9,
            new_p95: 120,
            old_p95: 130,
            new_p99: 200,
            old_p99: 210,
        };
        assert_eq!(anomaly(&t, &ok), None);
        let en = crate::chat::Texts::new("en").unwrap();
        let zh = crate::chat::Texts::new("zh-CN").unwrap();
        let bad = Sample {
            new_success: 92.0,
            ..ok
        };
        let evidence = anomaly(&t, &bad).unwrap();
        assert_eq!(evidence.render(&en), "new version success 92.0% &lt; 99.5% (old 99.9%)");
        assert_eq!(evidence.render(&zh), "新版本成功率 92.0% &lt; 99.5%（旧版本 99.9%）");
        let slow = Sample { new_p95: 900, ..ok };
        assert!(anomaly(&t, &slow)
            .unwrap()
            .render(&en)
            .contains("p95 900 ms &gt; 800 ms"));
        let tail = Sample { new_p99: 1600, ..ok };
        assert!(anomaly(&t, &tail)
            .unwrap()
            .render(&en)
            .contains("p99 1600 ms &gt; 1500 ms (old 210 ms)"));
        let trailing = Sample {
            new_success: 99.6,
            old_success: 100.0,
            ..ok
        };
        let strict = Thresholds {
            max_success_rate_drop: Some(0.3),
            ..t
        };
        assert!(anomaly(&strict, &trailing)
            .unwrap()
            .render(&en)
            .contains("trails the old"));
    }
}

//! The durable scheduler: what the daemon does on a clock (swimlane expiry, daily lists).
//!
//! A job's firings live in the database, one row per (job, due time), so that a restart
//! neither loses nor repeats one: a firing is claimed through the one lease mechanism
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several replicas fire each once), and its
//! handler marks it done in the same transaction as its state change and outbox rows — a
//! crash before that commit leaves it pending, to fire again, once, after its lease.
//!
//! Cron jobs (`"0 0 9 * * *"`, with seconds, UTC) have one pending firing at a time; the
//! next is planned from the time it fires, so firings missed while the daemon was down
//! are caught up once, not once per missed time. One-shot timers (a lane's prompt, its
//! deadline, a hook's retry) are firings set by the handlers.
//!
//! The runner sleeps until the earliest due firing (at most a second, to see firings
//! other replicas planned), so due work starts within a second of its time. Time comes
//! from the bot's clock: tests move it and call [`Scheduler::drain`].

use crate::bot::Bot;
use crate::domain::schedule::{next_after_in, parse_schedule};
use crate::runtime::Heartbeat;
use crate::store::firings::{self, Firing};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Firings handled at once. Most take a transaction; a lane's may wait on its hooks (up
/// to `hook_timeout`) without holding the database, so many may wait at once before any
/// other timer is delayed.
pub const CONCURRENCY: usize = 256;
/// The runner looks at the database at least this often.
pub const MAX_SLEEP_MS: i64 = 1_000;
/// A firing whose handler failed is tried again this much later.
pub const RETRY_MS: i64 = 30_000;

/// Fires due jobs; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    bot: Bot,
    pub heartbeat: Arc<Heartbeat>,
    lease_ms: i64,
}

impl Scheduler {
    pub fn new(bot: Bot) -> Self {
        // A firing's lease outlasts the longest hook it may run.
        let lease_ms = bot.config.swimlanes.hook_timeout.ms().saturating_add(60_000);
        Self {
            heartbeat: Arc::new(Heartbeat::new("scheduler", bot.clock.clone())),
            bot,
            lease_ms,
        }
    }

    /// Plans (at start) the next firing of every cron job of the configuration whose schedule is new
    /// or changed (a pending firing of an unchanged job is kept, so that one missed while
    /// the daemon was down fires now, once); retires jobs the configuration dropped.
    pub async fn sync(&self) -> anyhow::Result<()> {
        let bot = &self.bot;
        let now = bot.now();
        let jobs = bot.config.cron_jobs();
        let mut tx = bot.store.begin().await?;
        for old in firings::cron_jobs(&mut tx).await? {
            if !jobs.iter().any(|(j, _)| *j == old) {
                firings::forget_cron_job(&mut tx, &old).await?;
            }
        }
        for (job, schedule) in &jobs {
            let same = firings::cron_schedule(&mut tx, job).await?.as_deref() == Some(schedule.as_str());
            if same && firings::pending(&mut tx, job).await?.is_some() {
                continue;
            }
            let parsed = parse_schedule(schedule).map_err(anyhow::Error::msg)?;
            match next_after_in(&parsed, now, bot.config.calendar.tz) {
                Some(next) => firings::set(&mut tx, job, next, "").await?,
                None => firings::cancel(&mut tx, job).await?,
            }
            firings::set_cron_schedule(&mut tx, job, schedule, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn dispatch(&self, tasks: &mut JoinSet<()>) -> anyhow::Result<usize> {
        let free = CONCURRENCY.saturating_sub(tasks.len());
        if free == 0 {
            return Ok(0);
        }
        let due = firings::claim(&self.bot.store, self.bot.now(), self.lease_ms, free as i64).await?;
        let n = due.len();
        for f in due {
            let bot = self.bot.clone();
            tasks.spawn(async move { fire(&bot, f).await });
        }
        Ok(n)
    }

    /// Fires everything due now, several at once, and waits until they are done; how
    /// many fired. Tests drive the scheduler with it.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        self.heartbeat.beat();
        let mut tasks = JoinSet::new();
        let mut fired = 0;
        loop {
            fired += self.dispatch(&mut tasks).await?;
            if tasks.join_next().await.is_none() {
                break;
            }
        }
        self.heartbeat.progress(fired);
        Ok(fired)
    }

    /// Runs until `shutdown`; then lets firings under way finish within `grace`.
    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken, grace: Duration) {
        let bot = self.bot.clone();
        let mut tasks: JoinSet<()> = JoinSet::new();
        loop {
            self.heartbeat.beat();
            match self.dispatch(&mut tasks).await {
                Ok(n) => self.heartbeat.progress(n),
                Err(e) => tracing::error!(error = %format!("{e:#}"), "scheduler"),
            }
            let wait = match crate::store::lease::next_due(&bot.store, &crate::store::lease::FIRINGS, None).await {
                Ok(Some(t)) => {
                    self.heartbeat.set_waiting(t <= bot.now() && tasks.len() >= CONCURRENCY);
                    (t - bot.now()).clamp(1, MAX_SLEEP_MS)
                }
                Ok(None) => {
                    self.heartbeat.set_waiting(false);
                    MAX_SLEEP_MS
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "scheduler: reading the next firing");
                    MAX_SLEEP_MS
                }
            };
            tokio::select! {
                _ = bot.scheduler_notify.notified() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tracing::warn!("scheduler: firings still running at the deadline; they fire again at the next start");
            tasks.abort_all();
        }
        if let Err(e) = crate::store::lease::release_owned(&bot.store, &crate::store::lease::FIRINGS, bot.now()).await {
            tracing::warn!(error = %format!("{e:#}"), "scheduler: could not free its leases");
        }
        tracing::info!("scheduler stopped");
    }
}

/// Runs one firing's handler; a failure is logged and the firing tried again later.
async fn fire(bot: &Bot, f: Firing) {
    use futures::FutureExt;
    let started = std::time::Instant::now();
    let outcome = std::panic::AssertUnwindSafe(crate::bot::jobs::on_firing(bot, &f))
        .catch_unwind()
        .await;
    let why = match outcome {
        Ok(Ok(())) => {
            bot.metrics
                .inc("releasebot_scheduler_firings_total", &[("result", "ok")]);
            bot.metrics.observe(
                "releasebot_scheduler_lateness_seconds",
                (bot.now() - f.due).max(0) as f64 / 1000.0,
            );
            tracing::debug!(job = %f.job, ms = started.elapsed().as_millis() as u64, "fired");
            return;
        }
        Ok(Err(e)) => format!("{e:#}"),
        Err(_) => "the handler panicked".to_string(),
    };
    bot.metrics
        .inc("releasebot_scheduler_firings_total", &[("result", "error")]);
    tracing::error!(job = %f.job, firing = f.id, error = %why, "scheduler: a firing failed; it is tried again later");
    let retry = async {
        let mut conn = bot.store.pool.acquire().await?;
        firings::fail(&mut conn, &bot.store.owner, f.id, bot.now() + RETRY_MS, &why).await
    };
    if let Err(e) = retry.await {
        tracing::warn!(error = %format!("{e:#}"), "scheduler: could not give a firing back; it returns after its lease");
    }
}

/// How many firings of each job kind wait to fire again after a failure, and the last
/// error of each kind (read from the rows).
pub fn report_failures(m: &crate::metrics::Metrics, failing: anyhow::Result<Vec<(String, String)>>) {
    use crate::domain::jobs::{Job, JobKind};
    let failing = match failing {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "/metrics: reading the failing firings");
            return;
        }
    };
    let kind_of = |job: &str| Job::parse(job).map(|j| j.kind().name()).unwrap_or("unknown");
    let mut last: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    for kind in JobKind::ALL {
        let n = failing.iter().filter(|(job, _)| kind_of(job) == kind.name()).count();
        m.set(
            "releasebot_scheduler_failing_firings",
            &[("job", kind.name())],
            n as f64,
        );
    }
    for (job, error) in &failing {
        last.insert(kind_of(job), error.as_str());
    }
    let clipped: Vec<(&str, String)> = last
        .into_iter()
        .map(|(kind, error)| (kind, crate::chat::truncate(error, 200, "…")))
        .collect();
    let series: Vec<(Vec<(&str, &str)>, f64)> = clipped
        .iter()
        .map(|(kind, error)| (vec![("job", *kind), ("error", error.as_str())], 1.0))
        .collect();
    m.replace("releasebot_scheduler_last_error", &series);
}

//! The scheduler at volume, on SQLite.
//!
//! *Sweep*: 100,000 live swimlanes, each with its timer (a pending firing), `DUE` of them
//! due now: how long the scheduler takes to find the due ones and fire them — each a real
//! lane announcement (state change, timer, two outbox messages, an audit entry, one
//! transaction) — while the other 99,000 wait.
//!
//! *Lateness*: the scheduler's own loop (`Scheduler::run`, real clock) with firings
//! planned at random times over the next seconds: how late each fires after its due time.
//!
//! `cargo bench --bench scheduler [-- LANES [DUE]]`

use releasebot::app::App;
use releasebot::clock::{Clock, ManualClock, SystemClock};
use releasebot::config::{Config, Settings, DEFAULT_CONFIG};
use releasebot::domain::swimlane::{Lane, LaneStatus, Policy};
use releasebot::domain::Actor;
use std::sync::Arc;
use std::time::{Duration, Instant};

const T0: i64 = 1_795_251_600_000;
const DAY: i64 = 86_400_000;

async fn app(dir: &std::path::Path, clock: Arc<dyn Clock>) -> App {
    let mut settings = Settings::defaults();
    settings.database_url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
    let config = Config::parse(DEFAULT_CONFIG).expect("configuration");
    App::build(&settings, config, clock).await.expect("app")
}

/// `n` active lanes, `due` of them idle since six days (their timers due at T0), the
/// rest due over the next days; written in bulk.
async fn fill(app: &App, n: i64, due: i64) {
    let store = &app.state.bot.store;
    let policy = Policy {
        idle_ms: 6 * DAY,
        grace_ms: DAY,
        max_lifetime_ms: None,
    };
    let new = releasebot::domain::swimlane::NewLane {
        name: "NAME".into(),
        owner: Actor::new("slack", "U0BENCH"),
        owner_name: "bench".into(),
        platform: "slack".into(),
        channel: "CLANES".into(),
        apps: vec!["web".into()],
        purpose: None,
    };
    let mut lane = Lane::new(new, policy.idle_ms, &policy, T0 - 6 * DAY);
    lane.status = LaneStatus::Active;
    let template = serde_json::to_string(&lane).expect("json");
    let lanes = format!(
        "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {n})
         INSERT INTO swimlanes (name, status, owner, channel_key, data, version, updated_at)
         SELECT 'lane-' || x, 'active', 'slack:U0BENCH', 'slack:CLANES',
                replace(replace(data, '\"NAME\"', '\"lane-' || x || '\"'), '\"last_activity\":{old}', '\"last_activity\":' ||
                    CASE WHEN x <= {due} THEN {old} ELSE {old} + x * 1000 END), 0, 0
         FROM g, (SELECT $1 AS data)",
        old = T0 - 6 * DAY,
    );
    sqlx::query(&lanes)
        .bind(&template)
        .execute(&store.pool)
        .await
        .expect("lanes");
    let timers = format!(
        "INSERT INTO firings (job, due, payload, status, due_at)
         SELECT 'lane:' || id, CASE WHEN id <= {due} THEN {T0} ELSE {T0} + id * 1000 END, 'active', 'pending',
                CASE WHEN id <= {due} THEN {T0} ELSE {T0} + id * 1000 END
         FROM swimlanes"
    );
    sqlx::query(&timers).execute(&store.pool).await.expect("timers");
}

async fn sweep(n: i64, due: i64) {
    let dir = tempfile::tempdir().expect("dir");
    let clock = ManualClock::new(T0 - 1);
    let app = app(dir.path(), clock.clone()).await;
    fill(&app, n, due).await;
    // Nothing is due yet: a round reads the index and fires nothing.
    let t = Instant::now();
    let none = app.scheduler.drain().await.expect("drain");
    let idle = t.elapsed();
    assert_eq!(none, 0);
    clock.set_ms(T0);
    let t = Instant::now();
    let fired = app.scheduler.drain().await.expect("drain");
    let took = t.elapsed();
    assert_eq!(fired as i64, due, "every due timer fired");
    use sqlx::Row;
    let pending: i64 = sqlx::query("SELECT COUNT(*) AS n FROM swimlanes WHERE status = 'pending_deletion'")
        .fetch_one(&app.state.bot.store.pool)
        .await
        .expect("count")
        .get("n");
    assert_eq!(pending, due, "each due lane was announced");
    println!(
        "sweep: {n} lanes, {due} due: fired in {:.0} ms ({:.2} ms per firing); a round with none due: {:.2} ms",
        took.as_secs_f64() * 1000.0,
        took.as_secs_f64() * 1000.0 / due.max(1) as f64,
        idle.as_secs_f64() * 1000.0
    );
}

async fn lateness(firings: usize, spread_ms: i64) {
    let dir = tempfile::tempdir().expect("dir");
    let app = app(dir.path(), Arc::new(SystemClock)).await;
    let store = app.state.bot.store.clone();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn(app.scheduler.clone().run(shutdown.clone(), Duration::from_secs(5)));
    let start = SystemClock.now_ms() + 500;
    for i in 0..firings {
        let due = start + rand::random::<i64>().rem_euclid(spread_ms);
        let mut conn = store.pool.acquire().await.expect("conn");
        // A job without a handler: the scheduler marks it done (the lateness is the runner's).
        releasebot::store::firings::set(&mut conn, &format!("bench:{i}"), due, "")
            .await
            .expect("plan");
    }
    tokio::time::sleep(Duration::from_millis(
        (start + spread_ms - SystemClock.now_ms() + 1500).max(0) as u64,
    ))
    .await;
    shutdown.cancel();
    let _ = run.await;
    use sqlx::Row;
    let mut late: Vec<i64> = sqlx::query("SELECT fired_at - due AS late FROM firings WHERE job LIKE 'bench:%'")
        .fetch_all(&store.pool)
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get::<Option<i64>, _>("late").unwrap_or(i64::MAX))
        .collect();
    late.sort();
    let pct = |p: f64| late[((late.len() as f64 * p) as usize).min(late.len() - 1)];
    println!(
        "lateness: {} firings over {} s: p50 {} ms, p99 {} ms, max {} ms, unfired {}",
        late.len(),
        spread_ms / 1000,
        pct(0.5),
        pct(0.99),
        late.last().copied().unwrap_or_default(),
        late.iter().filter(|l| **l == i64::MAX).count()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let n: i64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let due: i64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000);
    sweep(n, due).await;
    lateness(500, 5_000).await;
}

//! Executor overhead: many concurrent executions of a 12-step plan on the simulated fleet
//! with instant steps, on SQLite. Reports executions/s, the runner's per-move latency
//! (p50/p99) and peak memory. `cargo bench --bench executor [-- EXECUTIONS]`.

use releasebot::clock::SystemClock;
use releasebot::config::{Config, Settings, DEFAULT_CONFIG};
use releasebot::domain::ticket::TicketStatus;
use releasebot::domain::Actor;
use releasebot::server::App;
use releasebot::store::tickets::{self, NewTicket};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

const PLAN: &str = r#"
[services.bench]
name = "Bench"
flow = "app-release"
plan = "bench"

[plans.bench]
name = "Bench (12 instant steps)"
template = "CUSTOM"
steps = [
  { id = "verify", name = "Verify", type = "VERIFY_PACKAGE" },
  { id = "deploy", name = "Deploy", type = "DEPLOY", batches = { first = 1, size = 2 } },
  { id = "health", name = "Health", type = "HEALTH_CHECK", requires = ["deploy"] },
  { id = "test", name = "Test", type = "TEST", requires = ["health"] },
  { id = "s10", name = "10%", type = "TRAFFIC_SHIFT", weight = 10 },
  { id = "check-10", name = "Check 10%", type = "SCRIPT" },
  { id = "s50", name = "50%", type = "TRAFFIC_SHIFT", weight = 50 },
  { id = "check-50", name = "Check 50%", type = "SCRIPT" },
  { id = "s100", name = "100%", type = "TRAFFIC_SHIFT", weight = 100 },
  { id = "check-100", name = "Check 100%", type = "SCRIPT" },
  { id = "retire", name = "Retire", type = "SCRIPT" },
  { id = "report", name = "Report", type = "NOTIFY", provider = "builtin" },
]
"#;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let dir = tempfile::tempdir()?;
        let mut settings = Settings::defaults();
        settings.database_url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
        let config = Config::parse(&format!("{DEFAULT_CONFIG}\n{PLAN}")).map_err(|e| anyhow::anyhow!("{e}"))?;
        let app = App::build(&settings, config, Arc::new(SystemClock)).await?;
        let bot = &app.state.bot;
        let plan = bot
            .config
            .plans
            .get("bench")
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no bench plan"))?;
        let submitter = Actor::new("slack", "UBENCH");
        let mut fields = BTreeMap::new();
        fields.insert("version".to_string(), "2.0.0".to_string());
        fields.insert("application".to_string(), "bench".to_string());
        let setup = Instant::now();
        for _ in 0..n {
            let mut tx = bot.store.begin().await?;
            let t = tickets::insert(
                &mut tx,
                NewTicket {
                    flow_id: "app-release",
                    service: "bench",
                    application: "bench",
                    status: TicketStatus::Releasing(4),
                    submitter: &submitter,
                    fields: &fields,
                    channel: "CBENCH",
                    now: bot.now(),
                },
            )
            .await?;
            releasebot::executor::start(&bot.exec_deps(), &mut tx, &t, &plan, "Bench").await?;
            tx.commit().await?;
        }
        let setup = setup.elapsed();
        let start = Instant::now();
        let mut moves = Vec::with_capacity(n * 14);
        let t = Instant::now();
        app.executor.drain(releasebot::executor::Wait::All).await?;
        moves.push(t.elapsed().as_secs_f64() * 1000.0);
        let total = start.elapsed().as_secs_f64();
        moves.sort_by(|a, b| a.total_cmp(b));
        let per_step = total * 1000.0 / (n * plan.steps.len()) as f64;
        println!(
            "executions: {n} × {} steps (sim, instant), SQLite, {} runner moves",
            plan.steps.len(),
            moves.len()
        );
        println!("setup (tickets + executions created): {:.2}s", setup.as_secs_f64());
        println!(
            "wall time: {total:.2}s → {:.1} executions/s, {:.1} steps/s, {per_step:.2} ms per step",
            n as f64 / total,
            (n * plan.steps.len()) as f64 / total
        );
        println!(
            "runner move latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&moves, 0.5),
            percentile(&moves, 0.99),
            moves.last().copied().unwrap_or(0.0)
        );
        println!("peak memory (VmHWM): {:.1} MiB", peak_rss_kib() as f64 / 1024.0);
        let mut conn = bot.store.pool.acquire().await?;
        use sqlx::Row;
        let done: i64 = sqlx::query("SELECT COUNT(*) AS n FROM executions WHERE status = 'COMPLETED'")
            .fetch_one(&mut *conn)
            .await?
            .try_get("n")?;
        anyhow::ensure!(done as usize == n, "only {done} of {n} executions completed");
        println!("all {n} executions COMPLETED");
        Ok(())
    })
}

//! Executor at volume: 1,000 executions of a 12-step plan in flight at once, on SQLite,
//! each step of the simulated fleet taking `STEP_MS` (so that every execution is inside a
//! step while the others move). Reports the executor's own overhead between one step's
//! end and the next one's start (its p99, from the executor's histogram), the wall time
//! against the ideal (12 × `STEP_MS`), and the memory each in-flight execution costs:
//! the bytes allocated (a counting allocator around the system's, its peak checked at
//! every allocation, and when it was reached), the resident set, and
//! the resident set apart from SQLite's own heap, each from before the executions are
//! claimed to their peak, divided by the executions; and the longest the write-ahead log
//! grew between two checkpoints that let it start over.
//!
//! `cargo bench --bench executor [-- EXECUTIONS [STEP_MS]]`

#[path = "common/releases.rs"]
mod releases;

use releasebot::app::App;
use releasebot::clock::SystemClock;
use releasebot::config::{Config, Settings, DEFAULT_CONFIG};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The allocator releasebot runs with, counting the bytes allocated and not yet freed:
/// what the executions hold, apart from the allocator's own slack and SQLite's page cache.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);
/// The most `LIVE` has been since the last reset: every allocation checks it, so that a
/// peak lasting a few microseconds is not missed between two samples.
static PEAK: AtomicI64 = AtomicI64::new(0);
/// When `PEAK` was last raised (µs since `EPOCH`), to place the peak in the run.
static PEAK_AT_US: AtomicU64 = AtomicU64::new(0);
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn grew(by: i64) {
    let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    if live > PEAK.load(Ordering::Relaxed) && PEAK.fetch_max(live, Ordering::Relaxed) < live {
        if let Some(epoch) = EPOCH.get() {
            PEAK_AT_US.store(epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
    }
}

unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        grew(layout.size() as i64);
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        grew(new_size as i64 - layout.size() as i64);
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn plan(n: usize, step_ms: u64) -> String {
    format!(
        r#"
[services.bench]
name = "Bench"
flow = "app-release"
plan = "bench"

[executor]
concurrency = {n}

[sim]
step_ms = {step_ms}

[plans.bench]
name = "Bench (12 steps)"
template = "CUSTOM"
steps = [
  {{ id = "verify", name = "Verify", type = "VERIFY_PACKAGE" }},
  {{ id = "deploy", name = "Deploy", type = "DEPLOY", batches = {{ first = 1, size = 2 }} }},
  {{ id = "health", name = "Health", type = "HEALTH_CHECK", requires = ["deploy"] }},
  {{ id = "test", name = "Test", type = "TEST", requires = ["health"] }},
  {{ id = "s10", name = "10%", type = "TRAFFIC_SHIFT", weight = 10 }},
  {{ id = "check-10", name = "Check 10%", type = "SCRIPT" }},
  {{ id = "s50", name = "50%", type = "TRAFFIC_SHIFT", weight = 50 }},
  {{ id = "check-50", name = "Check 50%", type = "SCRIPT" }},
  {{ id = "s100", name = "100%", type = "TRAFFIC_SHIFT", weight = 100 }},
  {{ id = "check-100", name = "Check 100%", type = "SCRIPT" }},
  {{ id = "retire", name = "Retire", type = "SCRIPT" }},
  {{ id = "report", name = "Report", type = "NOTIFY", provider = "builtin" }},
]
"#
    )
}

/// SQLite's own heap (its page caches above all), KiB: bounded by its cache size, not by
/// the executions in flight.
fn sqlite_kib() -> u64 {
    // SAFETY: a read of SQLite's memory statistics, safe from any thread.
    (unsafe { libsqlite3_sys::sqlite3_memory_used() }).max(0) as u64 / 1024
}

/// This process's resident memory, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).filter_map(|a| a.parse::<u64>().ok());
    let n = args.next().unwrap_or(1000) as usize;
    let step_ms = args.next().unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let dir = tempfile::tempdir()?;
        let mut settings = Settings::defaults();
        settings.database_url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
        let config =
            Config::parse(&format!("{DEFAULT_CONFIG}\n{}", plan(n, step_ms))).map_err(|e| anyhow::anyhow!("{e}"))?;
        let app = App::build(&settings, config, Arc::new(SystemClock)).await?;
        let bot = &app.state.bot;
        let plan = bot
            .config
            .plans
            .get("bench")
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no bench plan"))?;
        let steps = plan.steps.len();
        let setup = Instant::now();
        releases::in_flight(bot, n, "2.0.0", &plan).await?;
        let setup = setup.elapsed();

        // Memory: resident and allocated before the executions are claimed, and their
        // peaks while they run.
        let before = rss_kib();
        let outside_before = before.saturating_sub(sqlite_kib());
        let outside_peak = Arc::new(AtomicU64::new(outside_before));
        let live_before = LIVE.load(Ordering::Relaxed);
        let peak = Arc::new(AtomicU64::new(before));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, outside_peak, stop) = (peak.clone(), outside_peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let rss = rss_kib();
                    peak.fetch_max(rss, Ordering::Relaxed);
                    outside_peak.fetch_max(rss.saturating_sub(sqlite_kib()), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let start = Instant::now();
        let _ = EPOCH.set(start);
        PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
        app.executor.drain(releasebot::executor::Wait::All).await?;
        let total = start.elapsed().as_secs_f64();
        // The log's file keeps the size of its longest stretch between two starts over.
        let log_mib = std::fs::metadata(dir.path().join("bench.db-wal")).map_or(0, |m| m.len()) as f64 / 1024.0 / 1024.0;
        stop.store(true, Ordering::Relaxed);
        let _ = sampler.join();
        let peak = peak.load(Ordering::Relaxed);
        let live_peak = PEAK.load(Ordering::Relaxed);
        let peak_at = PEAK_AT_US.load(Ordering::Relaxed) as f64 / 1e6;
        let outside_peak = outside_peak.load(Ordering::Relaxed);

        use sqlx::Row;
        let done: i64 = sqlx::query("SELECT COUNT(*) AS n FROM executions WHERE status = 'COMPLETED'")
            .fetch_one(&bot.store.read)
            .await?
            .try_get("n")?;
        anyhow::ensure!(done as usize == n, "only {done} of {n} executions completed");

        let (buckets, count) = bot
            .metrics
            .buckets(releasebot::executor::STEP_OVERHEAD)
            .ok_or_else(|| anyhow::anyhow!("no step overhead was measured"))?;
        let p99 = buckets
            .iter()
            .find(|(_, at_most)| *at_most as f64 >= 0.99 * count as f64)
            .map(|(bound, _)| bound * 1000.0);
        let within_1ms = buckets
            .iter()
            .find(|(bound, _)| (*bound - 0.001).abs() < 1e-9)
            .map(|(_, c)| *c as f64 / count.max(1) as f64 * 100.0)
            .unwrap_or(0.0);
        let quantile = |q: f64| {
            buckets
                .iter()
                .find(|(_, at_most)| *at_most as f64 >= q * count as f64)
                .map(|(bound, _)| format!("≤ {:.2} ms", bound * 1000.0))
                .unwrap_or_else(|| "above 1 s".into())
        };
        let ideal = steps as f64 * step_ms as f64 / 1000.0;
        println!("executions: {n} × {steps} steps (simulated, {step_ms} ms each), SQLite, all in flight at once");
        println!("setup (tickets + executions created): {:.2} s", setup.as_secs_f64());
        println!(
            "wall time: {total:.2} s for an ideal {ideal:.2} s ({:.0} steps/s); all {n} COMPLETED",
            (n * steps) as f64 / total
        );
        match p99 {
            Some(p99) => println!(
                "step overhead ({count} step changes): p50 {}, p90 {}, p99 ≤ {p99:.2} ms; {within_1ms:.2}% within 1 ms",
                quantile(0.5),
                quantile(0.9)
            ),
            None => println!("step overhead ({count} step changes): p99 above 1 s"),
        }
        println!("SQLite's write-ahead log: {log_mib:.1} MiB at its longest (it starts over once copied)");
        println!(
            "memory: {:.1} KiB allocated per in-flight execution (heap {:.1} MiB before, peak {:.1} MiB at {peak_at:.2} s)",
            (live_peak - live_before) as f64 / 1024.0 / n as f64,
            live_before as f64 / 1024.0 / 1024.0,
            live_peak as f64 / 1024.0 / 1024.0,
        );
        println!(
            "        resident {:.1} MiB before, peak {:.1} MiB → {:.1} KiB per in-flight execution",
            before as f64 / 1024.0,
            peak as f64 / 1024.0,
            peak.saturating_sub(before) as f64 / n as f64
        );
        println!(
            "        resident apart from SQLite's heap: {:.1} MiB before, peak {:.1} MiB → {:.1} KiB per in-flight execution",
            outside_before as f64 / 1024.0,
            outside_peak as f64 / 1024.0,
            outside_peak.saturating_sub(outside_before) as f64 / n as f64
        );
        Ok(())
    })
}

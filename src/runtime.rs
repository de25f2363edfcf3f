//! The daemon's background workers and their care: each worker's heartbeat (it is alive,
//! it makes progress while it has work), a supervisor that restarts a worker that
//! panicked, and the readiness that `/readyz` reports from both.

use crate::clock::SharedClock;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A worker that had work and made no progress for this long is not ready.
pub const STALL_MS: i64 = 30_000;

/// One worker's signs of life, on the daemon's clock.
pub struct Heartbeat {
    pub name: &'static str,
    clock: SharedClock,
    /// The loop last went round (ms).
    last_beat: AtomicI64,
    /// The worker last finished an item, or had nothing to do (ms).
    last_progress: AtomicI64,
    /// Work is due that the worker has not started.
    waiting: AtomicBool,
    /// The loop is running (false before start, after a panic until restarted, and after stop).
    alive: AtomicBool,
    restarts: AtomicU64,
    done: AtomicU64,
}

impl Heartbeat {
    pub fn new(name: &'static str, clock: SharedClock) -> Self {
        Self {
            name,
            clock,
            last_beat: AtomicI64::new(0),
            last_progress: AtomicI64::new(0),
            waiting: AtomicBool::new(false),
            alive: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The loop went round.
    pub fn beat(&self) {
        let now = self.now();
        self.last_beat.store(now, Ordering::Relaxed);
        self.alive.store(true, Ordering::Relaxed);
        if !self.waiting.load(Ordering::Relaxed) {
            self.last_progress.store(now, Ordering::Relaxed);
        }
    }

    /// `n` items were finished.
    pub fn progress(&self, n: usize) {
        if n > 0 {
            self.last_progress.store(self.now(), Ordering::Relaxed);
            self.done.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Whether work is due that the worker has not taken (a backlog it is not serving).
    pub fn set_waiting(&self, waiting: bool) {
        if !waiting {
            self.last_progress.store(self.now(), Ordering::Relaxed);
        }
        self.waiting.store(waiting, Ordering::Relaxed);
    }

    fn stopped(&self) {
        self.alive.store(false, Ordering::Relaxed);
    }

    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Items finished since start.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Why the worker is not ready, if it is not.
    pub fn problem(&self) -> Option<String> {
        let now = self.now();
        if !self.alive.load(Ordering::Relaxed) {
            return Some(format!("{} worker is not running", self.name));
        }
        let beat = now - self.last_beat.load(Ordering::Relaxed);
        if beat > STALL_MS {
            return Some(format!("{} worker has not run for {} s", self.name, beat / 1000));
        }
        let stuck = now - self.last_progress.load(Ordering::Relaxed);
        if self.waiting.load(Ordering::Relaxed) && stuck > STALL_MS {
            return Some(format!(
                "{} worker has made no progress for {} s while work waits",
                self.name,
                stuck / 1000
            ));
        }
        None
    }
}

/// Acknowledgements come first. Every acknowledged request marks the pressure; while
/// requests keep arriving, background workers (handling, delivery) start new work only in
/// a pause between them or after a bounded deferral, so that a burst is acknowledged at
/// the rate of the intake alone and worked off right after it (or slowly during it, when
/// it does not end). A worker's transaction under way ends at its next item when the
/// intake's group commit waits for the writer (SQLite's only one), and the workers' next
/// transactions queue behind that commit.
pub struct Pressure {
    base: tokio::time::Instant,
    /// When the last request was acknowledged, in µs since `base`.
    last_us: AtomicU64,
    /// A group commit of acknowledgements waits for the writer.
    wanting: std::sync::atomic::AtomicBool,
}

impl Default for Pressure {
    fn default() -> Self {
        Self {
            base: tokio::time::Instant::now(),
            last_us: AtomicU64::new(0),
            wanting: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// A gap this long between requests is a pause the workers use.
const PAUSE: Duration = Duration::from_millis(2);

impl Pressure {
    /// A request is being acknowledged.
    pub fn mark(&self) {
        let now = self.base.elapsed().as_micros() as u64;
        self.last_us.store(now.max(1), Ordering::Relaxed);
    }

    /// The intake starts (`true`) or ends (`false`) waiting for the writer and writing.
    pub fn want_writer(&self, wanting: bool) {
        self.wanting.store(wanting, Ordering::SeqCst);
    }

    /// Whether a group commit of acknowledgements waits for the writer: a worker's
    /// transaction then ends with the item under way.
    pub fn wants_writer(&self) -> bool {
        self.wanting.load(Ordering::SeqCst)
    }

    /// How long since the last request.
    fn idle(&self) -> Duration {
        let last = self.last_us.load(Ordering::Relaxed);
        if last == 0 {
            return Duration::MAX;
        }
        self.base.elapsed().saturating_sub(Duration::from_micros(last))
    }

    /// Waits for a pause between requests, at most `cap`.
    pub async fn calm(&self, cap: Duration) {
        let start = tokio::time::Instant::now();
        loop {
            let idle = self.idle();
            let waited = start.elapsed();
            if idle >= PAUSE || waited >= cap {
                return;
            }
            tokio::time::sleep((PAUSE - idle).min(cap - waited)).await;
        }
    }
}

/// The workers `/readyz` answers for.
#[derive(Default, Clone)]
pub struct Health {
    pub workers: Vec<Arc<Heartbeat>>,
}

impl Health {
    /// Every reason the daemon is not ready.
    pub fn problems(&self) -> Vec<String> {
        self.workers.iter().filter_map(|w| w.problem()).collect()
    }
}

/// Runs a worker until it returns (it stops when `shutdown` fires); a worker that panics
/// is logged and started again after a short pause, until shutdown.
pub fn supervise<F, Fut>(
    heartbeat: Arc<Heartbeat>,
    shutdown: CancellationToken,
    start: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let run = tokio::spawn(start());
            match run.await {
                Ok(()) => break,
                Err(e) if e.is_panic() => {
                    heartbeat.stopped();
                    heartbeat.restarts.fetch_add(1, Ordering::Relaxed);
                    let why = e
                        .into_panic()
                        .downcast::<String>()
                        .map(|s| *s)
                        .or_else(|p| p.downcast::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|_| "unknown panic".into());
                    tracing::error!(worker = heartbeat.name, panic = %why, "a worker panicked; restarting it");
                    if shutdown.is_cancelled() {
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
                Err(_) => break,
            }
        }
        heartbeat.stopped();
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn a_worker_that_panics_is_restarted() {
        let hb = Arc::new(Heartbeat::new("test", ManualClock::new(0)));
        let shutdown = CancellationToken::new();
        let runs = Arc::new(AtomicU64::new(0));
        let (started, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let (r, s) = (runs.clone(), shutdown.clone());
        let handle = supervise(hb.clone(), shutdown.clone(), move || {
            let (r, s, started) = (r.clone(), s.clone(), started.clone());
            async move {
                let n = r.fetch_add(1, Ordering::SeqCst);
                let _ = started.send(n);
                if n == 0 {
                    panic!("first run fails");
                }
                s.cancelled().await;
            }
        });
        assert_eq!(seen.recv().await, Some(0));
        assert_eq!(seen.recv().await, Some(1), "started again after the panic");
        assert_eq!(hb.restarts(), 1);
        shutdown.cancel();
        handle.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(hb.problem().unwrap().contains("not running"));
    }

    #[test]
    fn a_worker_with_work_and_no_progress_is_not_ready() {
        let clock = ManualClock::new(1_000_000);
        let hb = Heartbeat::new("inbox", clock.clone());
        hb.beat();
        assert_eq!(hb.problem(), None);
        hb.set_waiting(true);
        clock.advance_ms(STALL_MS + 1);
        hb.beat();
        assert!(hb.problem().unwrap().contains("no progress"), "{:?}", hb.problem());
        hb.progress(1);
        assert_eq!(hb.problem(), None);
        clock.advance_ms(STALL_MS + 1);
        hb.set_waiting(false);
        assert!(hb.problem().unwrap().contains("has not run"));
    }
}

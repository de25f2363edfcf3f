//! The inbound side of the runtime.
//!
//! [`Intake`] records acknowledged events: requests hand their event to one writer task
//! that commits whatever has queued up meanwhile in one transaction (a group commit), so
//! acknowledgements stay quick however many arrive and whatever the handlers are doing.
//!
//! The inbox worker (`workers::inbox`) handles recorded events: several at once, one *lane* per order key (a
//! ticket, the role set …) so that events of one key are handled in the order they came
//! and events of different keys do not wait for each other. Across replicas the order is
//! kept too: an event whose earlier sibling is still waiting (claimed by another worker)
//! is given back and taken again shortly.

use crate::store::inbox::{self as q, NewEvent};
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify};

/// Most events one group commit writes.
const INTAKE_BATCH: usize = 512;
/// While requests come in together, a group commit waits this long for more.
const GATHER: Duration = Duration::from_micros(2_000);

type Pending = (NewEvent, oneshot::Sender<Result<Option<i64>, String>>);

/// Records inbound events with group commits; cheap to clone.
#[derive(Clone)]
pub struct Intake {
    tx: mpsc::Sender<Pending>,
    /// Marked by every request: the workers defer new work while requests arrive, and
    /// end their transaction when a group commit waits for the writer.
    pub pressure: Arc<crate::runtime::Pressure>,
}

impl Intake {
    /// Starts the writer task (on the current runtime).
    pub fn start(
        store: Store,
        clock: crate::clock::SharedClock,
        notify: Arc<Notify>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(8 * INTAKE_BATCH);
        let pressure = Arc::new(crate::runtime::Pressure::default());
        let w = pressure.clone();
        tokio::spawn(async move {
            let mut batch: Vec<Pending> = Vec::with_capacity(INTAKE_BATCH);
            let mut busy = false;
            while let Some(first) = rx.recv().await {
                batch.push(first);
                // Under load, what arrives within a moment joins this commit: fewer, larger
                // commits cost the writer (and the machine) less per event.
                let gather = tokio::time::sleep(if busy { GATHER } else { Duration::ZERO });
                tokio::pin!(gather);
                while batch.len() < INTAKE_BATCH {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) if !busy => break,
                        Err(_) => tokio::select! {
                            more = rx.recv() => match more {
                                Some(p) => batch.push(p),
                                None => break,
                            },
                            _ = &mut gather => break,
                        },
                    }
                }
                busy = batch.len() > 1;
                let events: Vec<NewEvent> = batch.iter().map(|(e, _)| e.clone()).collect();
                w.want_writer(true);
                let result = q::insert_batch_timed(&store, &events, clock.now_ms()).await;
                w.want_writer(false);
                match result {
                    Ok(q::Recorded { ids, waited, wrote }) => {
                        metrics.observe("releasebot_intake_writer_wait_seconds", waited.as_secs_f64());
                        metrics.observe("releasebot_intake_write_seconds", wrote.as_secs_f64());
                        if ids.iter().any(Option::is_some) {
                            notify.notify_one();
                        }
                        for ((_, reply), id) in batch.drain(..).zip(ids) {
                            let _ = reply.send(Ok(id));
                        }
                    }
                    Err(e) => {
                        let why = format!("{e:#}");
                        tracing::error!(error = %why, events = batch.len(), "recording inbound events failed");
                        for (_, reply) in batch.drain(..) {
                            let _ = reply.send(Err(why.clone()));
                        }
                    }
                }
            }
        });
        Self { tx, pressure }
    }

    /// Records one event; its inbox id, or `None` for a retried delivery. Returns once
    /// the event is committed.
    pub async fn record(&self, event: NewEvent) -> anyhow::Result<Option<i64>> {
        self.pressure.mark();
        let (reply, answer) = oneshot::channel();
        if self.tx.send((event, reply)).await.is_err() {
            anyhow::bail!("the inbox writer has stopped");
        }
        let recorded = answer
            .await
            .map_err(|_| anyhow::anyhow!("the inbox writer has stopped"))?
            .map_err(|e| anyhow::anyhow!("recording the event: {e}"));
        // The burst goes on from its acknowledgement: the wait for the commit is no pause.
        self.pressure.mark();
        recorded
    }
}

/// Longer than any handler takes; a dead worker's events return after it.
pub const LEASE_MS: i64 = 60_000;
/// While requests arrive, new events are taken at least this often (see [`Pressure`]).
///
/// [`Pressure`]: crate::runtime::Pressure
pub const DEFER: Duration = Duration::from_millis(20);

//! The unit of work: one transaction and what travels with it — the outbox messages and
//! audit entries it writes (buffered, written together just before the commit), the
//! executions and queues to wake once it is committed, and the roles' version it read.
//! Handlers and the executor pass it along instead of a bare transaction; [`Work::commit`]
//! is the one place that writes the buffers, commits and wakes, so no caller notifies a
//! worker by hand.

use crate::chat::Outbound;
use crate::outbox::Batch;
use crate::shared::Core;
use crate::store::audit::{self, AuditEntry};
use crate::store::{Conn, Tx};

pub struct Work {
    tx: Tx,
    core: Core,
    outbox: Batch,
    audit: Vec<AuditEntry>,
    /// Executions changed in this transaction, woken once it is committed.
    wakes: Vec<i64>,
    /// Whether firings were planned (the scheduler looks again after the commit).
    planned: bool,
    /// Whether events were recorded (the inbox worker looks again after the commit).
    recorded: bool,
    /// The roles' version this transaction read (the roles need no second look).
    roles_version: Option<i64>,
}

impl std::ops::Deref for Work {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.tx
    }
}

impl std::ops::DerefMut for Work {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.tx
    }
}

impl Work {
    /// Begins a transaction.
    pub async fn begin(core: &Core) -> anyhow::Result<Self> {
        Ok(Self {
            tx: core.store.begin().await?,
            core: core.clone(),
            outbox: Batch::default(),
            audit: Vec::new(),
            wakes: Vec::new(),
            planned: false,
            recorded: false,
            roles_version: None,
        })
    }

    /// Queues an outbound message, written with the transaction. An edit replaces earlier
    /// undelivered edits of the same message, so that only the latest state is sent.
    pub fn send(&mut self, platform: &str, out: &Outbound, msg_key: Option<&str>, now: i64) {
        self.outbox.push(platform, out, msg_key, now);
    }

    /// Appends an audit entry, written with the transaction.
    pub fn audit(&mut self, entry: AuditEntry) {
        self.audit.push(entry);
    }

    /// Tells an execution's task of a change, once the transaction is committed.
    pub fn wake_execution(&mut self, id: i64) {
        self.wakes.push(id);
    }

    /// The scheduler looks again once the transaction is committed (a firing was planned).
    pub fn wake_scheduler(&mut self) {
        self.planned = true;
    }

    /// The inbox worker looks again once the transaction is committed (an event was recorded).
    pub fn wake_inbox(&mut self) {
        self.recorded = true;
    }

    /// The roles' version this transaction read already, if any.
    pub fn roles_version(&self) -> Option<i64> {
        self.roles_version
    }

    /// Remembers (or, after a change, forgets) the roles' version the transaction read.
    pub fn set_roles_version(&mut self, v: Option<i64>) {
        self.roles_version = v;
    }

    /// Writes what is buffered into the transaction (before reading the audit trail back).
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        audit::write(&mut self.tx, &std::mem::take(&mut self.audit)).await?;
        std::mem::take(&mut self.outbox).flush(&mut self.tx).await
    }

    /// Writes what is buffered, commits, and wakes what the transaction changed: the
    /// outbox worker (for any message), the executions, the scheduler, the inbox worker.
    pub async fn commit(mut self) -> anyhow::Result<()> {
        let messages = !self.outbox.is_empty();
        self.flush().await?;
        self.tx.commit().await?;
        for id in &self.wakes {
            self.core.executions.wake(*id);
        }
        if messages {
            self.core.outbox_notify.notify_one();
        }
        if self.planned {
            self.core.scheduler_notify.notify_one();
        }
        if self.recorded {
            self.core.inbox_notify.notify_one();
        }
        Ok(())
    }

    /// Rolls back: nothing buffered is written, nothing is woken.
    pub async fn rollback(self) -> anyhow::Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

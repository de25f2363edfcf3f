//! Command parsing and the handlers, one file per feature. Handlers never see HTTP:
//! they receive neutral [`Inbound`] events from the inbox and answer by writing
//! state and outbox rows in one transaction.

pub mod actions;
pub mod command;
pub mod releases;
pub mod roles;
pub mod tickets;
pub mod views;

use crate::chat::{Form, Inbound, InboundKind, Message, Outbound, Texts};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::domain::ticket::DecisionKind;
use crate::metrics::Metrics;
use crate::outbox;
use crate::store::{inbox, Store, Tx};
use anyhow::Context;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tracing::Instrument;

/// How a handler ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Commit the transaction.
    Done,
    /// Someone changed the ticket meanwhile: roll back and run the handler again.
    Conflict,
}

#[derive(Clone)]
pub struct Bot {
    pub store: Store,
    pub config: Arc<Config>,
    pub texts: Texts,
    pub clock: SharedClock,
    pub metrics: Arc<Metrics>,
    /// Wakes the outbox worker after a commit.
    pub outbox_notify: Arc<Notify>,
    /// Wakes the inbox worker after an event is recorded.
    pub inbox_notify: Arc<Notify>,
    /// Wakes the executor after a person steers a release.
    pub executor_notify: Arc<Notify>,
}

const INBOX_LEASE_MS: i64 = 60_000;
const MAX_CONFLICT_RETRIES: usize = 5;

/// A short id that ties a user-visible error to the log line.
fn correlation_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

impl Bot {
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Records an inbound event for processing; false when it is a retried delivery.
    pub async fn accept(&self, dedupe_key: &str, ev: &Inbound) -> anyhow::Result<bool> {
        Ok(self.record(dedupe_key, ev).await?.is_some())
    }

    /// Records an inbound event; its inbox id, or `None` for a retried delivery.
    pub async fn record(&self, dedupe_key: &str, ev: &Inbound) -> anyhow::Result<Option<i64>> {
        let payload = serde_json::to_string(ev)?;
        let id = inbox::insert(&self.store, &ev.actor.platform, dedupe_key, &payload, self.now()).await?;
        if id.is_some() {
            self.inbox_notify.notify_one();
        } else {
            self.metrics.inc(
                "releasebot_inbound_duplicates_total",
                &[("platform", &ev.actor.platform)],
            );
        }
        Ok(id)
    }

    /// Processes one recorded event at once, for platforms that take the answer in the
    /// HTTP response (Discord modals); false when a worker had taken it already.
    pub async fn process_now(&self, id: i64) -> anyhow::Result<bool> {
        let Some(row) = inbox::lease_id(&self.store, id, self.now(), INBOX_LEASE_MS).await? else {
            return Ok(false);
        };
        self.run_row(row).await?;
        Ok(true)
    }

    /// Processes at most one inbound event; false when there was none.
    pub async fn step(&self) -> anyhow::Result<bool> {
        let Some(row) = inbox::lease_next(&self.store, self.now(), INBOX_LEASE_MS).await? else {
            return Ok(false);
        };
        self.run_row(row).await?;
        Ok(true)
    }

    async fn run_row(&self, row: inbox::InboxRow) -> anyhow::Result<()> {
        let ev: Inbound = match serde_json::from_str(&row.payload) {
            Ok(ev) => ev,
            Err(e) => {
                let mut conn = self.store.pool.acquire().await?;
                inbox::mark_failed(&mut conn, row.id, &format!("unreadable event: {e}"), self.now()).await?;
                return Ok(());
            }
        };
        let span = tracing::info_span!("inbound", platform = %ev.actor.platform, channel = %ev.channel, user = %ev.actor.user_id, inbox_id = row.id, ticket = tracing::field::Empty);
        self.process(row.id, &ev).instrument(span).await?;
        self.outbox_notify.notify_one();
        Ok(())
    }

    async fn process(&self, inbox_id: i64, ev: &Inbound) -> anyhow::Result<()> {
        for _ in 0..MAX_CONFLICT_RETRIES {
            let mut tx = self.store.begin().await?;
            match self.handle(&mut tx, ev).await {
                Ok(Handled::Done) => {
                    inbox::mark_done(&mut tx, inbox_id, self.now()).await?;
                    tx.commit().await.context("committing")?;
                    return Ok(());
                }
                Ok(Handled::Conflict) => {
                    tx.rollback().await?;
                    tracing::debug!("concurrent change; handling again");
                }
                Err(e) => {
                    tx.rollback().await?;
                    return self.fail(inbox_id, ev, e).await;
                }
            }
        }
        self.fail(
            inbox_id,
            ev,
            anyhow::anyhow!("gave up after {MAX_CONFLICT_RETRIES} concurrent changes"),
        )
        .await
    }

    /// An internal error: logged with a reference the user is given; nothing else changes.
    async fn fail(&self, inbox_id: i64, ev: &Inbound, e: anyhow::Error) -> anyhow::Result<()> {
        let reference = correlation_id();
        tracing::error!(reference = %reference, error = %format!("{e:#}"), "handling an inbound event failed");
        self.metrics.inc("releasebot_internal_errors_total", &[]);
        let mut tx = self.store.begin().await?;
        inbox::mark_failed(&mut tx, inbox_id, &format!("ref {reference}: {e:#}"), self.now()).await?;
        let text = self
            .texts
            .render("internal_error", &serde_json::json!({ "ref": reference }))?;
        self.ephemeral(
            &mut tx,
            ev,
            Message {
                title: text,
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn handle(&self, tx: &mut Tx, ev: &Inbound) -> anyhow::Result<Handled> {
        match &ev.kind {
            InboundKind::Command { name, text } => match command::parse(name, text) {
                Ok(cmd) => self.command(tx, ev, cmd).await,
                Err(e) => {
                    let msg = views::command_error(&self.texts, &e)?;
                    self.ephemeral(tx, ev, msg).await?;
                    Ok(Handled::Done)
                }
            },
            InboundKind::Action { action, .. } => match actions::Action::decode(action) {
                Some(a) => tickets::on_action(self, tx, ev, a).await,
                None => {
                    self.say(tx, ev, "unknown_action", serde_json::json!({})).await?;
                    Ok(Handled::Done)
                }
            },
            InboundKind::FormSubmit { callback, values } => match actions::FormCallback::decode(callback) {
                Some(cb) => tickets::on_form(self, tx, ev, cb, values).await,
                None => {
                    self.say(tx, ev, "unknown_action", serde_json::json!({})).await?;
                    Ok(Handled::Done)
                }
            },
        }
    }

    async fn command(&self, tx: &mut Tx, ev: &Inbound, cmd: command::Command) -> anyhow::Result<Handled> {
        use command::Command as C;
        match cmd {
            C::ReleaseNew { service, values } => tickets::open_new(self, tx, ev, service.as_deref(), &values).await,
            C::ReleaseApprove { id, values } => {
                tickets::decide_by_command(self, tx, ev, id, DecisionKind::Approve, values).await
            }
            C::ReleaseReject { id, reason } => {
                let values = reason
                    .map(|r| BTreeMap::from([(views::COMMENT_FIELD.to_string(), r)]))
                    .unwrap_or_default();
                tickets::decide_by_command(self, tx, ev, id, DecisionKind::Reject, values).await
            }
            C::ReleaseResubmit { id, values } => tickets::resubmit_by_command(self, tx, ev, id, values).await,
            C::ReleaseShow { id } => tickets::show(self, tx, ev, id).await,
            C::ReleaseList { scope } => tickets::list(self, tx, ev, scope).await,
            C::ReleaseCancel { id, reason } => tickets::cancel(self, tx, ev, id, reason).await,
            C::ReleasePlan { id } => releases::dry_run(self, tx, ev, id).await,
            C::ReleaseStatus { id } => releases::status(self, tx, ev, id).await,
            C::ReleaseRollback { id, to } => releases::rollback(self, tx, ev, id, to).await,
            C::ReleaseBaselines {
                application,
                environment,
            } => releases::baselines(self, tx, ev, &application, environment.as_deref()).await,
            C::Help { command } => {
                let msg = views::help(&self.texts, &command)?;
                self.ephemeral(tx, ev, msg).await?;
                Ok(Handled::Done)
            }
            C::RoleAdd {
                role,
                user,
                application,
            } => roles::add(self, tx, ev, &role, &user, application.as_deref()).await,
            C::RoleRemove {
                role,
                user,
                application,
            } => roles::remove(self, tx, ev, &role, &user, application.as_deref()).await,
            C::RoleList => roles::list(self, tx, ev).await,
            C::RoleLink { user, other } => roles::link(self, tx, ev, &user, &other).await,
        }
    }

    /// Writes an outbound message in the current transaction.
    pub async fn send(&self, tx: &mut Tx, platform: &str, out: Outbound, msg_key: Option<&str>) -> anyhow::Result<()> {
        outbox::enqueue(tx, platform, &out, msg_key, self.now()).await
    }

    /// Appends to the audit trail (a ticket's, or the global one for role changes).
    pub async fn audit(
        &self,
        tx: &mut Tx,
        actor: &crate::domain::Actor,
        ticket: Option<crate::domain::ticket::TicketId>,
        action: &str,
        detail: serde_json::Value,
    ) -> anyhow::Result<()> {
        let entry = crate::store::audit::AuditEntry {
            ticket,
            at: self.now(),
            platform: actor.platform.clone(),
            actor: actor.to_string(),
            action: action.to_string(),
            detail,
        };
        crate::store::audit::append(tx, &entry).await
    }

    /// Answers the actor privately.
    pub async fn ephemeral(&self, tx: &mut Tx, ev: &Inbound, message: Message) -> anyhow::Result<()> {
        let out = Outbound::Ephemeral {
            channel: ev.channel.clone(),
            user: ev.actor.user_id.clone(),
            message,
            reply: ev.reply.clone(),
        };
        self.send(tx, &ev.actor.platform, out, None).await
    }

    /// Asks the actor to fill in a form: a modal where the platform has them (the event
    /// carries a trigger), otherwise a private message saying which command to send.
    pub async fn open_form(&self, tx: &mut Tx, ev: &Inbound, form: Form) -> anyhow::Result<()> {
        match ev.trigger.clone() {
            Some(trigger) => {
                self.send(tx, &ev.actor.platform, Outbound::OpenForm { trigger, form }, None)
                    .await
            }
            None => {
                let msg = views::form_as_text(&self.texts, &form)?;
                self.ephemeral(tx, ev, msg).await
            }
        }
    }

    /// Answers the actor privately with one template.
    pub async fn say(&self, tx: &mut Tx, ev: &Inbound, key: &str, data: serde_json::Value) -> anyhow::Result<()> {
        let title = self.texts.render(key, &data)?;
        self.ephemeral(
            tx,
            ev,
            Message {
                title,
                ..Default::default()
            },
        )
        .await
    }

    /// Checks a submitted form before it is accepted, so that the platform can show the
    /// errors next to the fields. Returns localized errors by field id.
    pub async fn precheck_form(
        &self,
        callback: &str,
        values: &BTreeMap<String, String>,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        tickets::precheck_form(self, callback, values).await
    }

    /// Processes every pending inbound event.
    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            match self.step().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::error!(error = %format!("{e:#}"), "inbox worker"),
            }
            if shutdown.is_cancelled() {
                break;
            }
            tokio::select! {
                _ = self.inbox_notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        // Finish what was acknowledged before the shutdown signal.
        while let Ok(true) = self.step().await {}
        tracing::info!("inbox worker stopped");
    }
}

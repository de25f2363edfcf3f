//! Command parsing and the handlers, one file per feature. Handlers never see HTTP:
//! they receive neutral [`Inbound`] events from the inbox and answer by writing
//! state and outbox rows in one transaction.

pub mod calendar;
pub mod changes;
pub mod digest;
pub mod drafts;
pub mod freeze;
pub mod jobs;
pub mod lock;
pub mod releases;
pub mod reminders;
pub mod roles;
pub mod scheduled;
pub mod swimlanes;
pub mod tickets;
pub mod tokens;

pub use crate::chat::actions;
use crate::chat::{Form, Inbound, InboundKind, Message, Outbound};
use crate::command;
use crate::domain::ticket::DecisionKind;
use crate::shared::Core;
use crate::store::inbox;
use crate::views;
use crate::work::Work;
use anyhow::Context;
use std::collections::BTreeMap;
use std::sync::Arc;
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
    /// What the bot shares with the executor and the workers (its fields read as the bot's).
    pub core: Core,
    /// Records inbound events (group commits).
    pub intake: crate::inbox::Intake,
    /// The roles in memory (checked against their version).
    pub roles: Arc<roles::RolesCache>,
    /// Links to the release and ticket pages.
    pub links: Arc<crate::chat::links::Links>,
    /// Fault injection for tests.
    #[doc(hidden)]
    pub hooks: Arc<Hooks>,
}

/// A test hook run with each event.
#[doc(hidden)]
pub type EventHook = Box<dyn Fn(&Inbound) + Send + Sync>;

/// Test hooks: code that runs at fixed points so that tests can make them fail.
#[doc(hidden)]
#[derive(Default)]
pub struct Hooks {
    /// Runs before a handler sees an event (a test makes it panic).
    pub before_handle: std::sync::RwLock<Option<EventHook>>,
}

const MAX_CONFLICT_RETRIES: usize = 5;

/// The aggregate an event changes: events of one key are handled in order, events of
/// different keys at once. A ticket's events share its key; role changes share one.
pub fn order_key(ev: &Inbound) -> String {
    let ticket = match &ev.kind {
        InboundKind::Command { name, text } => match command::parse(name, text) {
            Ok(cmd) => match cmd.ticket() {
                Some(t) => Some(t),
                None if cmd.changes_roles() => return "roles".to_string(),
                None if cmd.about_lanes() => return swimlanes::ORDER_KEY.to_string(),
                None if cmd.changes_calendar() => return calendar::ORDER_KEY.to_string(),
                None => None,
            },
            Err(_) => None,
        },
        InboundKind::Action { action, .. } if actions::LaneAction::decode(action).is_some() => {
            return swimlanes::ORDER_KEY.to_string()
        }
        InboundKind::Action { action, .. } if actions::ScheduleAction::decode(action).is_some() => {
            actions::ScheduleAction::decode(action).map(|a| a.ticket())
        }
        InboundKind::Action { action, .. } => actions::Action::decode(action).map(|a| a.ticket()),
        InboundKind::FormSubmit { callback, .. } => actions::FormCallback::decode(callback).and_then(|c| c.ticket()),
        InboundKind::System(e) => Some(e.ticket()),
    };
    match ticket {
        Some(t) => format!("ticket:{}", t.0),
        None => format!("user:{}:{}", ev.actor.platform, ev.actor.user_id),
    }
}

/// A short id that ties a user-visible error to the log line.
fn correlation_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

impl std::ops::Deref for Bot {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
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
        let event = crate::store::inbox::NewEvent {
            platform: ev.actor.platform.clone(),
            dedupe_key: dedupe_key.to_string(),
            order_key: order_key(ev),
            payload: serde_json::to_string(ev)?,
        };
        let id = self.intake.record(event).await?;
        if id.is_none() {
            self.metrics.inc(
                "releasebot_inbound_duplicates_total",
                &[("platform", &ev.actor.platform)],
            );
        }
        Ok(id)
    }

    /// Processes one recorded event at once, for platforms that take the answer in the
    /// HTTP response (Discord modals); false when a worker had taken it already, or an
    /// earlier event of the same ticket is still waiting (the worker handles both in order).
    pub async fn process_now(&self, id: i64) -> anyhow::Result<bool> {
        let Some(row) = inbox::lease_id(&self.store, id, self.now(), crate::inbox::LEASE_MS).await? else {
            return Ok(false);
        };
        let earlier = {
            let mut conn = self.store.read.acquire().await?;
            inbox::has_earlier_pending(&mut conn, &row.order_key, row.id).await?
        };
        if earlier {
            let mut tx = Work::begin(&self.core).await?;
            inbox::release(&mut tx, &self.store.owner, row.id, self.now()).await?;
            tx.wake_inbox();
            tx.commit().await?;
            return Ok(false);
        }
        self.process_row(row).await?;
        Ok(true)
    }

    /// Handles one claimed event.
    pub(crate) async fn process_row(&self, row: inbox::InboxRow) -> anyhow::Result<()> {
        let ev: Inbound = match serde_json::from_str(&row.payload) {
            Ok(ev) => ev,
            Err(e) => {
                let mut conn = self.store.pool.acquire().await?;
                inbox::mark_failed(&mut conn, row.id, &format!("unreadable event: {e}"), self.now()).await?;
                return Ok(());
            }
        };
        let span = tracing::info_span!("inbound", platform = %ev.actor.platform, channel = %ev.channel, user = %ev.actor.user_id, inbox_id = row.id, ticket = tracing::field::Empty);
        self.process(row.id, &ev).instrument(span).await
    }

    /// Handles claimed events in order, as many per transaction as it can: SQLite has a
    /// single writer, where a transaction per event would pay a commit for each. A
    /// transaction ends early when acknowledgements wait for the writer, so that they never
    /// queue behind handling. Returns the events this could not handle (an error, a
    /// conflict or a panic rolled their transaction back): the caller handles those one by
    /// one, each in its own transaction.
    pub(crate) async fn process_batch(&self, rows: Vec<inbox::InboxRow>) -> anyhow::Result<Vec<inbox::InboxRow>> {
        use futures::FutureExt;
        let mut rest: std::collections::VecDeque<inbox::InboxRow> = rows.into();
        while !rest.is_empty() {
            let mut tx = Work::begin(&self.core).await?;
            let mut taken: Vec<inbox::InboxRow> = Vec::new();
            let mut undone = false;
            while let Some(row) = rest.pop_front() {
                let Ok(ev) = serde_json::from_str::<Inbound>(&row.payload) else {
                    rest.push_front(row);
                    undone = true;
                    break;
                };
                let span = tracing::info_span!("inbound", platform = %ev.actor.platform, channel = %ev.channel, user = %ev.actor.user_id, inbox_id = row.id, ticket = tracing::field::Empty);
                let handled = std::panic::AssertUnwindSafe(self.handle(&mut tx, &ev).instrument(span))
                    .catch_unwind()
                    .await;
                if !matches!(handled, Ok(Ok(Handled::Done))) {
                    rest.push_front(row);
                    undone = true;
                    break;
                }
                taken.push(row);
                // Acknowledgements waiting for the writer go next: the transaction ends
                // with the event under way.
                if self.intake.pressure.wants_writer() {
                    break;
                }
            }
            if undone {
                // The whole transaction is undone: its events go one by one.
                let _ = tx.rollback().await;
                taken.extend(rest.drain(..));
                return Ok(taken);
            }
            self.metrics
                .observe("releasebot_inbox_events_per_transaction", taken.len() as f64);
            let ids: Vec<i64> = taken.iter().map(|r| r.id).collect();
            inbox::mark_done_many(&mut tx, &ids, self.now()).await?;
            tx.commit().await.context("committing")?;
        }
        Ok(vec![])
    }

    /// A handler panicked on event `id`: the event is marked failed and its author told,
    /// as for any internal error.
    pub(crate) async fn panicked(&self, id: i64, why: &str) -> anyhow::Result<()> {
        let row = sqlx::query("SELECT payload FROM inbox WHERE id = $1")
            .bind(id)
            .fetch_one(&self.store.pool)
            .await?;
        let payload: String = sqlx::Row::try_get(&row, "payload")?;
        let ev: Inbound = serde_json::from_str(&payload)?;
        self.fail(id, &ev, anyhow::anyhow!("the handler panicked: {why}")).await
    }

    async fn process(&self, inbox_id: i64, ev: &Inbound) -> anyhow::Result<()> {
        for _ in 0..MAX_CONFLICT_RETRIES {
            let mut tx = Work::begin(&self.core).await?;
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

    /// What the executor needs, from the bot's parts.
    pub fn exec_deps(&self) -> crate::executor::Deps {
        crate::executor::Deps {
            core: self.core.clone(),
        }
    }

    /// An internal error: logged with a reference the user is given; nothing else changes.
    async fn fail(&self, inbox_id: i64, ev: &Inbound, e: anyhow::Error) -> anyhow::Result<()> {
        let reference = correlation_id();
        tracing::error!(reference = %reference, error = %format!("{e:#}"), "handling an inbound event failed");
        self.metrics.inc("releasebot_internal_errors_total", &[]);
        let mut tx = Work::begin(&self.core).await?;
        inbox::mark_failed(&mut tx, inbox_id, &format!("ref {reference}: {e:#}"), self.now()).await?;
        if matches!(ev.kind, InboundKind::System(_)) {
            // Nobody to answer: the log has it.
            tx.commit().await?;
            return Ok(());
        }
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

    async fn handle(&self, tx: &mut Work, ev: &Inbound) -> anyhow::Result<Handled> {
        if let Some(hook) = self
            .hooks
            .before_handle
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            hook(ev);
        }
        match &ev.kind {
            InboundKind::Command { name, text } => match command::parse(name, text) {
                Ok(cmd) => self.command(tx, ev, cmd).await,
                Err(e) => {
                    let msg = views::command_error(&self.texts, &e)?;
                    self.ephemeral(tx, ev, msg).await?;
                    Ok(Handled::Done)
                }
            },
            InboundKind::Action { action, .. } if actions::LaneAction::decode(action).is_some() => {
                match actions::LaneAction::decode(action) {
                    Some(a) => swimlanes::on_action(self, tx, ev, a).await,
                    None => Ok(Handled::Done),
                }
            }
            InboundKind::Action { action, .. } if actions::ScheduleAction::decode(action).is_some() => {
                match actions::ScheduleAction::decode(action) {
                    Some(a) => scheduled::on_action(self, tx, ev, a).await,
                    None => Ok(Handled::Done),
                }
            }
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
            InboundKind::System(event) => releases::on_system(self, tx, event).await,
        }
    }

    async fn command(&self, tx: &mut Work, ev: &Inbound, cmd: command::Command) -> anyhow::Result<Handled> {
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
            C::ReleaseScale {
                application,
                environment,
                replicas,
            } => {
                let action = crate::domain::plan::KubeAction::Scale { replicas };
                changes::change(self, tx, ev, &application, environment.as_deref(), action).await
            }
            C::ReleaseRestart {
                application,
                environment,
            } => {
                let at = chrono::DateTime::from_timestamp_millis(self.now())
                    .unwrap_or_default()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let action = crate::domain::plan::KubeAction::Restart { at };
                changes::change(self, tx, ev, &application, environment.as_deref(), action).await
            }
            C::Help { command } => {
                let service = self.config.service_name(&self.config.default_service);
                let msg = views::help(&self.texts, &command, &service, &ev.actor.platform)?;
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
            C::SwimlaneCreate {
                name,
                apps,
                purpose,
                days,
            } => swimlanes::create(self, tx, ev, &name, apps, purpose, days).await,
            C::SwimlaneList { all } => swimlanes::list(self, tx, ev, all).await,
            C::SwimlaneShow { name } => swimlanes::show(self, tx, ev, &name).await,
            C::SwimlaneRenew { name, days } => swimlanes::renew_by_command(self, tx, ev, &name, days).await,
            C::SwimlaneDelete { name, confirmed } => swimlanes::delete_by_command(self, tx, ev, &name, confirmed).await,
            C::SwimlaneApps { name, add, app } => swimlanes::apps(self, tx, ev, &name, add, &app).await,
            C::SwimlaneDeploy { name, app, version } => swimlanes::deploy(self, tx, ev, &name, &app, &version).await,
            C::TokenList => tokens::list(self, tx, ev).await,
            C::TokenRevoke { name } => tokens::revoke(self, tx, ev, &name).await,
            C::TokenCreate { name, applications } => tokens::create(self, tx, ev, &name, &applications).await,
            C::ReleaseOverride { id, reason } => releases::release_override(self, tx, ev, id, &reason).await,
            C::FreezeStart {
                application,
                environment,
                for_ms,
                reason,
            } => freeze::freeze_start(self, tx, ev, application, environment, for_ms, &reason).await,
            C::FreezeEnd { id } => freeze::freeze_end(self, tx, ev, id).await,
            C::FreezeList => freeze::list(self, tx, ev).await,
            C::Lock { application, words } => lock::lock(self, tx, ev, &application, &words).await,
            C::Unlock {
                application,
                environment,
            } => lock::unlock(self, tx, ev, &application, environment.as_deref()).await,
        }
    }

    /// Writes an outbound message in the current transaction.
    pub async fn send(
        &self,
        tx: &mut Work,
        platform: &str,
        out: Outbound,
        msg_key: Option<&str>,
    ) -> anyhow::Result<()> {
        tx.send(platform, &out, msg_key, self.now());
        Ok(())
    }

    /// Appends to the audit trail (a ticket's, or the global one for role changes).
    pub async fn audit(
        &self,
        tx: &mut Work,
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
        tx.audit(entry);
        Ok(())
    }

    /// Answers the actor privately.
    pub async fn ephemeral(&self, tx: &mut Work, ev: &Inbound, message: Message) -> anyhow::Result<()> {
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
    pub async fn open_form(&self, tx: &mut Work, ev: &Inbound, form: Form) -> anyhow::Result<()> {
        match ev.trigger.clone() {
            Some(trigger) => {
                let out = Outbound::OpenForm {
                    trigger,
                    form,
                    channel: ev.channel.clone(),
                    user: ev.actor.user_id.clone(),
                };
                self.send(tx, &ev.actor.platform, out, None).await
            }
            None => {
                let msg = views::form_as_text(&self.texts, &form)?;
                self.ephemeral(tx, ev, msg).await
            }
        }
    }

    /// Answers the actor privately with one template.
    pub async fn say(&self, tx: &mut Work, ev: &Inbound, key: &str, data: serde_json::Value) -> anyhow::Result<()> {
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
}

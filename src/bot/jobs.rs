//! The scheduler's jobs, answered: one handler per kind of [`Job`], and the ending of a
//! firing in the transaction of what it did.

use super::{digest, reminders, scheduled, swimlanes, Bot};
use crate::domain::jobs::Job;
use crate::domain::schedule::{next_after, parse_schedule};
use crate::store::firings::{self, Firing};
use crate::work::Work;

/// Runs the handler of a claimed scheduler firing.
pub async fn on_firing(bot: &Bot, f: &Firing) -> anyhow::Result<()> {
    match Job::parse(&f.job) {
        Ok(Job::LaneTimer(id)) => swimlanes::on_timer(bot, f, id).await,
        Ok(Job::ReleaseStart(id)) => scheduled::on_timer(bot, f, id, false).await,
        Ok(Job::ReleaseReminder(id)) => scheduled::on_timer(bot, f, id, true).await,
        Ok(Job::SlaReminder(id)) => reminders::on_timer(bot, f, id).await,
        Ok(Job::Digest) => digest::fire(bot, f).await,
        Ok(Job::ExpiringList) => swimlanes::expiring_list(bot, f).await,
        Err(unknown) => {
            // A job of an older version nobody handles any more: it is done.
            tracing::warn!(error = %unknown, "scheduler: no handler for this job; dropping its firing");
            let mut tx = Work::begin(&bot.core).await?;
            finish(bot, &mut tx, f).await?;
            tx.commit().await?;
            Ok(())
        }
    }
}

/// Marks a claimed firing done in `tx` (the transaction of what it did) and, for a cron
/// job, plans its next firing after now; false when the firing was no longer this
/// process's (roll back: someone else fires it).
pub async fn finish(bot: &Bot, tx: &mut Work, f: &Firing) -> anyhow::Result<bool> {
    let now = bot.now();
    if !firings::complete(tx, &bot.store.owner, f.id, now).await? {
        return Ok(false);
    }
    {
        if let Some(schedule) = bot
            .config
            .cron_jobs()
            .into_iter()
            .find(|(j, _)| *j == f.job)
            .map(|(_, s)| s)
        {
            if let Some(next) = parse_schedule(&schedule)
                .ok()
                .and_then(|s| next_after(&s, now.max(f.due)))
            {
                firings::add(tx, &f.job, next, "").await?;
            }
        }
    }
    Ok(true)
}

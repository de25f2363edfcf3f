//! Activity reported for a lane (`POST /api/swimlanes/{name}/activity`) keeps it alive.

use super::*;
use crate::work::Work;

/// What a deploy reported by a CI system did to a lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// The idle clock starts over; the lane is next announced at `until`.
    Kept { until: i64, was_pending: bool },
    /// No live lane of that name.
    NotFound,
    /// Being created, deleted, or failed: nothing to keep.
    NotActive(LaneStatus),
}

/// `POST /swimlanes/{name}/activity`: a deploy (or other use) reported by CI resets the
/// idle clock, and keeps a lane pending deletion.
pub async fn activity(bot: &Bot, name: &str, what: Option<&str>) -> anyhow::Result<Activity> {
    for _ in 0..5 {
        let mut tx = Work::begin(&bot.core).await?;
        let Some(mut l) = q::by_name(&mut tx, name).await? else {
            return Ok(Activity::NotFound);
        };
        let was_pending = l.status == LaneStatus::PendingDeletion;
        let now = bot.now();
        if !l.touch(now, true) {
            return Ok(Activity::NotActive(l.status));
        }
        if !q::save(&mut tx, &l, now).await? {
            tx.rollback().await?;
            continue;
        }
        plan_timer(bot, &mut tx, &l, None).await?;
        let until = l.prompt_at(&policy(bot));
        if was_pending {
            let data = json!({ "name": l.name, "at": when(now), "until": when(until) });
            edit_current(
                bot,
                &mut tx,
                &l,
                prompt_outcome(bot, &l, "lane_kept_by_activity", data)?,
            )
            .await?;
        }
        let actor = Actor::new("ci", "activity");
        audit(bot, &mut tx, &actor, &l, "swimlane_activity", json!({ "what": what })).await?;
        tx.commit().await?;
        return Ok(Activity::Kept { until, was_pending });
    }
    anyhow::bail!("the lane kept changing; try again")
}

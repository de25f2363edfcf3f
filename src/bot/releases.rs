//! Releases: the dry run of a ticket's plan (the executor builds on this).

use super::tickets::load_or_say;
use super::{views, Bot, Handled};
use crate::chat::Inbound;
use crate::domain::ticket::TicketId;
use crate::store::Tx;
use serde_json::json;

/// `/release plan REL-ID`: steps, gates, thresholds, targets and expected duration.
pub async fn dry_run(bot: &Bot, tx: &mut Tx, ev: &Inbound, id: TicketId) -> anyhow::Result<Handled> {
    let Some(l) = load_or_say(bot, tx, ev, id).await? else {
        return Ok(Handled::Done);
    };
    let Some(plan) = bot.config.plan_of_service(&l.ticket.service) else {
        bot.say(
            tx,
            ev,
            "plan_none",
            json!({ "ticket": id.to_string(), "service": l.service.name }),
        )
        .await?;
        return Ok(Handled::Done);
    };
    let msg = views::dry_run(&bot.texts, &l.ticket, plan)?;
    bot.ephemeral(tx, ev, msg).await?;
    Ok(Handled::Done)
}

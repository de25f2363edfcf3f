//! `/release show` and `/release list`.

use super::*;
use crate::work::Work;

pub async fn show(bot: &Bot, tx: &mut Work, ev: &Inbound, id: TicketId) -> anyhow::Result<Handled> {
    let Some(l) = load_or_say(bot, tx, ev, id).await? else {
        return Ok(Handled::Done);
    };
    tx.flush().await?;
    let entries = audit::for_ticket(tx, id).await?;
    let msg = views::show(&bot.texts, &l.ticket, l.flow, &l.service.name, &entries)?;
    bot.ephemeral(tx, ev, msg).await?;
    Ok(Handled::Done)
}

pub async fn list(bot: &Bot, tx: &mut Work, ev: &Inbound, scope: ListScope) -> anyhow::Result<Handled> {
    let (filter, key) = match scope {
        ListScope::Mine => (ListFilter::Mine(&ev.actor), "mine"),
        ListScope::Pending => (ListFilter::Pending, "pending"),
        ListScope::All => (ListFilter::All, "all"),
    };
    let tickets = q::list(tx, filter, 20).await?;
    let mut rows = Vec::new();
    for t in tickets {
        let status = match bot.config.flows.get(&t.flow_id) {
            Some(f) => views::status_text(&bot.texts, &t, f)?,
            None => t.status.key().to_string(),
        };
        rows.push((t, status));
    }
    let msg = views::list(&bot.texts, key, &rows)?;
    bot.ephemeral(tx, ev, msg).await?;
    Ok(Handled::Done)
}

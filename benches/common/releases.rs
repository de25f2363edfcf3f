//! What the executor benchmarks share: releases put in flight directly in the store.

use releasebot::bot::Bot;
use releasebot::domain::plan::Plan;
use releasebot::domain::ticket::TicketStatus;
use releasebot::domain::Actor;
use releasebot::store::tickets::{self, NewTicket};
use std::collections::BTreeMap;

/// `n` tickets of service `bench` at their release, applications `bench-0000`… (one each:
/// a release lock per application and environment would otherwise queue them one behind
/// the other), each with its execution of `plan` started, in one transaction.
pub async fn in_flight(bot: &Bot, n: usize, version: &str, plan: &Plan) -> anyhow::Result<()> {
    let submitter = Actor::new("slack", "UBENCH");
    let mut tx = releasebot::work::Work::begin(&bot.core).await?;
    for i in 0..n {
        let application = format!("bench-{i:04}");
        let mut fields = BTreeMap::new();
        fields.insert("version".to_string(), version.to_string());
        fields.insert("application".to_string(), application.clone());
        let t = tickets::insert(
            &mut tx,
            NewTicket {
                flow_id: "app-release",
                service: "bench",
                application: &application,
                status: TicketStatus::Releasing(4),
                submitter: &submitter,
                fields: &fields,
                channel: "CBENCH",
                now: bot.now(),
            },
        )
        .await?;
        releasebot::executor::start(&bot.exec_deps(), &mut tx, &t, plan).await?;
    }
    tx.commit().await?;
    Ok(())
}

//! A ticket's release plan, read before it runs (`/release plan`).

use crate::chat::texts::duration;
use crate::chat::texts::escape;
use crate::chat::{Field, Message, Texts};
use crate::domain::ticket::Ticket;
use serde_json::json;

fn policy_text(texts: &Texts, p: &crate::domain::plan::FailurePolicy) -> anyhow::Result<String> {
    use crate::domain::plan::FailurePolicy as P;
    match p {
        P::Rollback => texts.plain("policy_rollback"),
        P::Pause => texts.plain("policy_pause"),
        P::Skip => texts.plain("policy_skip"),
        P::Abort => texts.plain("policy_abort"),
        P::Retry {
            times,
            backoff_secs,
            then,
        } => texts.render(
            "policy_retry",
            &json!({ "times": times, "backoff": duration(texts, *backoff_secs)?, "then": policy_text(texts, then)? }),
        ),
    }
}

/// `/release plan`: what would run, before anyone approves.
pub fn dry_run(texts: &Texts, ticket: &Ticket, plan: &crate::domain::plan::Plan) -> anyhow::Result<Message> {
    let mut lines = Vec::new();
    let mut simulated = false;
    for (i, s) in plan.steps.iter().enumerate() {
        simulated |= s.simulated();
        let thresholds = match &s.thresholds {
            Some(t) => Some(texts.render(
                "plan_thresholds",
                &json!({ "success": t.min_success_rate, "p95": t.max_p95_ms, "p99": t.max_p99_ms, "drop": t.max_success_rate_drop }),
            )?),
            None => None,
        };
        let batches = s.batches.as_ref().map(|b| json!({ "first": b.first, "size": b.size }));
        lines.push(texts.render(
            "plan_step",
            &json!({
                "n": i + 1, "name": s.name, "type": serde_json::to_value(s.kind)?, "provider": s.provider.name(),
                "simulated": s.simulated(), "weight": s.weight,
                "duration": s.duration_secs.map(|d| duration(texts, d)).transpose()?,
                "thresholds": thresholds, "gate": s.role, "batches": batches,
                "timeout": s.timeout_secs.map(|d| duration(texts, d)).transpose()?,
                "requires": (!s.requires.is_empty()).then(|| s.requires.join(", ")),
                "policy": policy_text(texts, &s.on_failure)?,
            }),
        )?);
    }
    let data = json!({
        "ticket": ticket.id.to_string(), "plan": plan.name, "template": serde_json::to_value(plan.template)?,
    });
    let scope = ticket.fields.get("scope").filter(|s| !s.trim().is_empty());
    let fields = vec![
        Field {
            label: texts.plain("label_application")?,
            value: escape(&ticket.application),
        },
        Field {
            label: texts.plain("label_version")?,
            value: escape(ticket.fields.get("version").map(String::as_str).unwrap_or("—")),
        },
        Field {
            label: texts.plain("label_targets")?,
            value: match scope {
                Some(s) => escape(s),
                None => texts.plain("plan_all_targets")?,
            },
        },
        Field {
            label: texts.plain("label_expected_duration")?,
            value: texts.render(
                "plan_expected",
                &json!({ "duration": duration(texts, plan.expected_secs())? }),
            )?,
        },
    ];
    Ok(Message {
        page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
        link: None,
        title: texts.render("plan_title", &data)?,
        fields,
        body: Some(lines.join("\n")),
        context: if simulated {
            Some(texts.plain("plan_simulated")?)
        } else {
            None
        },
        buttons: vec![],
    })
}

//! A ticket's forms checked: field validation, the precheck of a submitted form, and the
//! answers that name what is wrong.

use super::*;
use crate::work::Work;

pub(super) fn field_errors_localized(
    bot: &Bot,
    defs: &[FieldDef],
    errors: &BTreeMap<String, FieldError>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (id, e) in errors {
        let mut data = e.params();
        if let Some(label) = defs.iter().find(|d| &d.id == id).map(|d| d.label.clone()) {
            data["label"] = json!(label);
        }
        out.insert(
            id.clone(),
            bot.texts.render(&format!("field_error_{}", e.code()), &data)?,
        );
    }
    Ok(out)
}

pub(super) fn validate(
    bot: &Bot,
    defs: &[FieldDef],
    values: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, BTreeMap<String, FieldError>> {
    let ctx = ValidationContext {
        now_ms: bot.now(),
        applications: &bot.config.applications,
        environments: &bot.config.environments,
    };
    fields::validate(defs, values, &ctx)
}

/// See [`Bot::precheck_form`]. Unknown callbacks and tickets pass here; processing
/// answers them.
pub async fn precheck_form(
    bot: &Bot,
    callback: &str,
    values: &BTreeMap<String, String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let Some(cb) = FormCallback::decode(callback) else {
        return Ok(BTreeMap::new());
    };
    let (ticket, stage) = match &cb {
        FormCallback::New { service } => {
            let defs = bot
                .config
                .flow_of_service(service)
                .and_then(|(_, f)| f.submission())
                .map(|s| s.fields.clone())
                .unwrap_or_default();
            return localized_errors(bot, &defs, values);
        }
        FormCallback::Decide {
            kind: DecisionKind::Reject,
            ..
        } => {
            let mut errors = BTreeMap::new();
            if let Some((key, data)) = comment_problem(bot, DecisionKind::Reject, values)? {
                errors.insert(COMMENT_FIELD.to_string(), bot.texts.render(key, &data)?);
            }
            return Ok(errors);
        }
        FormCallback::Decide {
            ticket, stage, kind, ..
        } => {
            if let Some((key, data)) = comment_problem(bot, *kind, values)? {
                return Ok(BTreeMap::from([(
                    COMMENT_FIELD.to_string(),
                    bot.texts.render(key, &data)?,
                )]));
            }
            (*ticket, *stage)
        }
        FormCallback::Resubmit { ticket, .. } => (*ticket, 0),
    };
    let mut conn = bot.store.pool.acquire().await?;
    let Some(t) = q::get(&mut conn, ticket).await? else {
        return Ok(BTreeMap::new());
    };
    let defs = bot
        .config
        .flows
        .get(&t.flow_id)
        .and_then(|f| f.stages.get(stage))
        .map(|s| s.fields.clone())
        .unwrap_or_default();
    localized_errors(bot, &defs, values)
}

/// What is wrong with a decision's comment, if anything (as a message key and its
/// data): a rejection needs a reason, and no comment is longer than any other answer.
pub(super) fn comment_problem(
    bot: &Bot,
    kind: DecisionKind,
    values: &BTreeMap<String, String>,
) -> anyhow::Result<Option<(&'static str, serde_json::Value)>> {
    let comment = values.get(COMMENT_FIELD).map(|c| c.trim()).unwrap_or("");
    let label = match kind {
        DecisionKind::Reject if comment.is_empty() => return Ok(Some(("field_error_reason_required", json!({})))),
        DecisionKind::Reject => bot.texts.plain("form_reason_label")?,
        DecisionKind::Approve => bot.texts.plain("form_comment_label")?,
    };
    let max = crate::domain::fields::MAX_FIELD_LEN;
    Ok((comment.chars().count() > max).then(|| ("field_error_too_long", json!({ "label": label, "max": max }))))
}

pub(super) fn localized_errors(
    bot: &Bot,
    defs: &[FieldDef],
    values: &BTreeMap<String, String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    match validate(bot, defs, values) {
        Ok(_) => Ok(BTreeMap::new()),
        Err(e) => field_errors_localized(bot, defs, &e),
    }
}

/// Tells the user about form errors found when processing (the platform could not show them inline).
pub(super) async fn say_form_errors(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    defs: &[FieldDef],
    errors: &BTreeMap<String, FieldError>,
) -> anyhow::Result<()> {
    let localized = field_errors_localized(bot, defs, errors)?;
    let fields = localized
        .into_iter()
        .map(|(id, e)| crate::chat::Field {
            label: defs.iter().find(|d| d.id == id).map(|d| d.label.clone()).unwrap_or(id),
            value: e,
        })
        .collect();
    let title = bot.texts.plain("form_rejected")?;
    bot.ephemeral(
        tx,
        ev,
        Message {
            title,
            fields,
            ..Default::default()
        },
    )
    .await
}

pub(super) async fn say_unknown_service(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    query: Option<&str>,
) -> anyhow::Result<Handled> {
    let names: Vec<&str> = bot.config.services.values().map(|s| s.name.as_str()).collect();
    bot.say(
        tx,
        ev,
        "unknown_service",
        json!({ "service": query, "services": names.join(", ") }),
    )
    .await?;
    Ok(Handled::Done)
}

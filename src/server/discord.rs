//! `POST /discord/interactions`: Ed25519-checked interactions. Discord takes the answer
//! in the HTTP response (within 3 s), and a modal can only be such an answer, so the
//! event is recorded, processed at once, and its private answer or form is handed back
//! here; anything else goes through the outbox as usual. Forms longer than five inputs
//! are asked in several modals, their answers kept in `form_drafts` meanwhile.

use super::verified::{header, Refusal, Scheme, Verified};
use super::{internal, AppState};
use crate::chat::discord::parse::{self, Context, Parsed, Source};
use crate::chat::discord::render::{self, reply, CONFIRM_PREFIX, DISMISS};
use crate::chat::discord::{verify, PLATFORM};
use crate::chat::{ButtonStyle, Field, Form, Inbound, InboundKind, Message, Outbound};
use crate::store;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long the route processes an event itself before it defers (Discord allows 3 s).
const INLINE_BUDGET: Duration = Duration::from_millis(2_000);
/// Unfinished multi-step forms are forgotten after a day.
const DRAFT_TTL_MS: i64 = 24 * 3_600_000;

/// Discord's signature: Ed25519 over the timestamp and the body, with the application's
/// public key.
pub struct Discord;

impl Scheme for Discord {
    const NAME: &'static str = "Discord";
    type Proof = ();

    fn check(
        state: &AppState,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Option<impl std::future::Future<Output = Result<(), Refusal>> + Send> {
        let verifier = state.discord.as_ref()?;
        let checked = verify::verify(
            verifier,
            header(headers, "x-signature-ed25519"),
            header(headers, "x-signature-timestamp"),
            body,
        )
        .map_err(|_| Refusal::Signature("invalid request signature"));
        Some(std::future::ready(checked))
    }
}

fn answer(v: Value) -> Response {
    Json(v).into_response()
}

fn private(state: &AppState, m: &Message) -> Response {
    match reply::private(m, &state.bot.texts, &[]) {
        Ok(v) => answer(v),
        Err(e) => internal(e),
    }
}

fn say(state: &AppState, key: &str, data: Value) -> Response {
    match state.bot.texts.render(key, &data) {
        Ok(title) => private(
            state,
            &Message {
                title,
                ..Default::default()
            },
        ),
        Err(e) => internal(e),
    }
}

pub async fn interactions(State(state): State<AppState>, Verified { body, .. }: Verified<Discord>) -> Response {
    let parsed = match parse::interaction(&body) {
        Ok(p) => p,
        Err(parse::ParseError::Malformed(why)) => {
            tracing::warn!(reason = %why, "malformed Discord payload");
            return (StatusCode::BAD_REQUEST, why).into_response();
        }
    };
    match parsed {
        Parsed::Ping => answer(reply::pong()),
        Parsed::Ignored => say(&state, "unknown_action", json!({})),
        Parsed::FormStep {
            ctx,
            draft,
            page,
            answers,
        } => form_step(&state, ctx, &draft, page, answers).await,
        Parsed::Event { key, event, source } => {
            if let InboundKind::Action { action, .. } = &event.kind {
                if action == DISMISS {
                    return dismissed(&state);
                }
                if let Some(real) = action.strip_prefix(CONFIRM_PREFIX) {
                    return confirm(&state, real);
                }
            }
            handle(&state, &key, &event, source).await
        }
    }
}

/// Discord has no confirmation dialogs: ask privately, with the real button.
fn confirm(state: &AppState, action: &str) -> Response {
    let texts = &state.bot.texts;
    let built = (|| -> anyhow::Result<Value> {
        let m = Message {
            title: texts.plain("confirm_generic_title")?,
            ..Default::default()
        };
        let yes = (texts.plain("btn_confirm_yes")?, action.to_string(), ButtonStyle::Danger);
        let no = (
            texts.plain("btn_confirm_no")?,
            DISMISS.to_string(),
            ButtonStyle::Default,
        );
        reply::private(&m, texts, &[yes, no])
    })();
    match built {
        Ok(v) => answer(v),
        Err(e) => internal(e),
    }
}

fn dismissed(state: &AppState) -> Response {
    match state.bot.texts.plain("confirm_dismissed") {
        Ok(t) => answer(reply::replaced(&t)),
        Err(e) => internal(e),
    }
}

/// Records the event, processes it within the budget, and answers with its private
/// reply or form; otherwise acknowledges and lets the outbox follow up. Nothing is left
/// "thinking…" (a deferred type 5 that may never be followed up): a button or form is
/// acknowledged without a loading state (type 6); a command still being handled says it
/// was received and that the answer follows, and one handled with nothing private to say
/// says it is done (its effect is in the channel).
async fn handle(state: &AppState, key: &str, event: &Inbound, source: Source) -> Response {
    let bot = &state.bot;
    let deferred = || match source {
        Source::Command => say(state, "command_received", json!({})),
        Source::Component | Source::Modal => answer(reply::deferred_update()),
    };
    let settled = || match source {
        Source::Command => say(state, "command_done", json!({})),
        Source::Component | Source::Modal => answer(reply::deferred_update()),
    };
    let id = match bot.record(key, event).await {
        Ok(Some(id)) => id,
        // A retried delivery: the first one was answered.
        Ok(None) => return settled(),
        Err(e) => return internal(e),
    };
    match tokio::time::timeout(INLINE_BUDGET, bot.process_now(id)).await {
        Ok(Ok(true)) => {}
        // Queued behind an earlier event of the same ticket: handled later, answered then.
        Ok(Ok(false)) => return deferred(),
        Ok(Err(e)) => return internal(e),
        Err(_) => {
            tracing::warn!(inbox_id = id, "processing took too long; answering later");
            return deferred();
        }
    }
    let Some(token) = event.reply.as_deref() else {
        return settled();
    };
    let res = reply_for(state, token, &event.actor.user_id).await;
    bot.outbox_notify.notify_one();
    match res {
        Ok(Some(r)) => r,
        Ok(None) => settled(),
        Err(e) => internal(e),
    }
}

/// The private answer or form the bot wrote for this interaction, as the response.
async fn reply_for(state: &AppState, token: &str, user: &str) -> anyhow::Result<Option<Response>> {
    let store = &state.bot.store;
    let Some(payload) = store::outbox::take_reply(store, PLATFORM, token, state.bot.now()).await? else {
        return Ok(None);
    };
    let out = serde_json::from_str::<Outbound>(&payload)?;
    match crate::chat::links::with_page_link(out, Some(&state.bot.links), &state.bot.texts) {
        Outbound::OpenForm { form, .. } => {
            let draft = new_draft(state, user, &form).await?;
            Ok(Some(answer(reply::form(&form, &draft, 1, &BTreeMap::new()))))
        }
        Outbound::Ephemeral { message, .. } => Ok(Some(private(state, &message))),
        _ => Ok(None),
    }
}

async fn new_draft(state: &AppState, user: &str, form: &Form) -> anyhow::Result<String> {
    let now = state.bot.now();
    let _ = store::forms::prune(&state.bot.store, now - DRAFT_TTL_MS).await;
    let id = format!("{:016x}", rand::random::<u64>());
    store::forms::create(
        &state.bot.store,
        &store::forms::Draft {
            id: id.clone(),
            platform: PLATFORM.into(),
            user_id: user.into(),
            form: serde_json::to_string(form)?,
            answers: "{}".into(),
        },
        now,
    )
    .await?;
    Ok(id)
}

async fn form_step(
    state: &AppState,
    ctx: Context,
    draft_id: &str,
    page: usize,
    answers: Option<BTreeMap<String, String>>,
) -> Response {
    match form_step_inner(state, ctx, draft_id, page, answers).await {
        Ok(r) => r,
        Err(e) => internal(e),
    }
}

async fn form_step_inner(
    state: &AppState,
    ctx: Context,
    draft_id: &str,
    page: usize,
    answers: Option<BTreeMap<String, String>>,
) -> anyhow::Result<Response> {
    let texts = &state.bot.texts;
    let store = &state.bot.store;
    let draft = store::forms::get(store, draft_id)
        .await?
        .filter(|d| d.platform == PLATFORM && d.user_id == ctx.actor.user_id);
    let Some(draft) = draft else {
        return Ok(say(state, "form_expired", json!({})));
    };
    let form: Form = serde_json::from_str(&draft.form)?;
    let mut saved: BTreeMap<String, String> = serde_json::from_str(&draft.answers)?;
    let pages = render::pages(&form);
    let page = page.min(pages);
    let Some(given) = answers else {
        // "Continue" or "Fix the answers": the next modal, pre-filled.
        return Ok(answer(reply::form(&form, draft_id, page, &saved)));
    };
    saved.extend(given);
    store::forms::save_answers(store, draft_id, &serde_json::to_string(&saved)?).await?;
    // Empty optional inputs count as not given, as on Slack.
    let values: BTreeMap<String, String> = saved
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut errors = state.bot.precheck_form(&form.callback, &values).await?;
    if page < pages {
        // The answers of this page and the earlier ones are checked now, not after the
        // last page: what is wrong comes back on the page it is on.
        let answered: Vec<&str> = (1..=page).flat_map(|p| render::page_fields(&form, p)).collect();
        errors.retain(|id, _| answered.contains(&id.as_str()));
    }
    if !errors.is_empty() {
        let first_bad = (1..=pages)
            .find(|p| render::page_fields(&form, *p).iter().any(|id| errors.contains_key(*id)))
            .unwrap_or(1);
        let fields = errors
            .into_iter()
            .map(|(id, e)| Field {
                label: form
                    .fields
                    .iter()
                    .find(|f| f.id == id)
                    .map(|f| f.label.clone())
                    .unwrap_or(id),
                value: e,
            })
            .collect();
        let m = Message {
            title: texts.plain("form_rejected")?,
            fields,
            ..Default::default()
        };
        let fix = (
            texts.plain("btn_form_fix")?,
            parse::form_step_id(draft_id, first_bad),
            ButtonStyle::Primary,
        );
        return Ok(answer(reply::private(&m, texts, &[fix])?));
    }
    if page < pages {
        let m = Message {
            title: texts.render(
                "form_step_saved",
                &json!({ "page": page, "pages": pages, "title": crate::chat::markdown::unescape(&form.title) }),
            )?,
            ..Default::default()
        };
        let label = texts.render("btn_form_continue", &json!({ "next": page + 1, "pages": pages }))?;
        let next = (label, parse::form_step_id(draft_id, page + 1), ButtonStyle::Primary);
        return Ok(answer(reply::private(&m, texts, &[next])?));
    }
    let event = Inbound {
        actor: ctx.actor,
        actor_name: ctx.actor_name,
        channel: if form.reply_channel.is_empty() {
            ctx.channel
        } else {
            form.reply_channel.clone()
        },
        trigger: Some(ctx.token.clone()),
        reply: Some(ctx.token),
        kind: InboundKind::FormSubmit {
            callback: form.callback.clone(),
            values,
        },
    };
    let key = format!("{PLATFORM}:{}", ctx.interaction_id);
    Ok(handle(state, &key, &event, Source::Modal).await)
}

//! `POST /discord/interactions`: Ed25519-checked interactions. Discord takes the answer
//! in the HTTP response (within 3 s), and a modal can only be such an answer, so the
//! event is recorded, processed at once, and its private answer or form is handed back
//! here; anything else goes through the outbox as usual. Forms longer than five inputs
//! are asked in several modals, their answers kept meanwhile (`bot::drafts`).

use super::verified::{header, Refusal, Scheme, Verified};
use super::{internal, AppState};
use crate::bot::drafts::Step;
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
            let draft = crate::bot::drafts::start(&state.bot, PLATFORM, user, &form).await?;
            Ok(Some(answer(reply::form(&form, &draft, 1, &BTreeMap::new()))))
        }
        Outbound::Ephemeral { message, .. } => Ok(Some(private(state, &message))),
        _ => Ok(None),
    }
}

/// The form's pages as Discord's modals hold them.
fn layout(form: &Form) -> crate::bot::drafts::Pages {
    (1..=render::pages(form))
        .map(|p| render::page_fields(form, p).into_iter().map(str::to_string).collect())
        .collect()
}

async fn form_step(
    state: &AppState,
    ctx: Context,
    draft_id: &str,
    page: usize,
    answers: Option<BTreeMap<String, String>>,
) -> Response {
    let user = ctx.actor.user_id.clone();
    let step = crate::bot::drafts::step(&state.bot, (PLATFORM, &user), draft_id, (page, answers), layout).await;
    match step.and_then(|step| form_step_answer(state, ctx, draft_id, step)) {
        Ok(Answer::Now(r)) => r,
        Ok(Answer::Submit(key, event)) => handle(state, &key, &event, Source::Modal).await,
        Err(e) => internal(e),
    }
}

/// What a form step answers: a response now, or the submitted form's event to handle.
enum Answer {
    Now(Response),
    Submit(String, Inbound),
}

fn form_step_answer(state: &AppState, ctx: Context, draft_id: &str, step: Step) -> anyhow::Result<Answer> {
    let texts = &state.bot.texts;
    let now = |r: Response| Ok(Answer::Now(r));
    match step {
        Step::Expired => now(say(state, "form_expired", json!({}))),
        Step::Page { form, page, saved } => now(answer(reply::form(&form, draft_id, page, &saved))),
        Step::Rejected { errors, first_bad, .. } => {
            let m = Message {
                title: texts.plain("form_rejected")?,
                fields: errors
                    .into_iter()
                    .map(|(label, value)| Field { label, value })
                    .collect(),
                ..Default::default()
            };
            let fix = (
                texts.plain("btn_form_fix")?,
                parse::form_step_id(draft_id, first_bad),
                ButtonStyle::Primary,
            );
            now(answer(reply::private(&m, texts, &[fix])?))
        }
        Step::Saved { form, page, pages } => {
            let m = Message {
                title: texts.render(
                    "form_step_saved",
                    &json!({ "page": page, "pages": pages, "title": crate::chat::markdown::unescape(&form.title) }),
                )?,
                ..Default::default()
            };
            let label = texts.render("btn_form_continue", &json!({ "next": page + 1, "pages": pages }))?;
            let next = (label, parse::form_step_id(draft_id, page + 1), ButtonStyle::Primary);
            now(answer(reply::private(&m, texts, &[next])?))
        }
        Step::Complete { form, values } => {
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
            Ok(Answer::Submit(format!("{PLATFORM}:{}", ctx.interaction_id), event))
        }
    }
}

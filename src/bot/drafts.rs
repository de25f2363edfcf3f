//! A form answered over several pages (Discord's modals hold five inputs each): its
//! answers are kept in a draft between pages, checked as they come — what is wrong comes
//! back on the page it is on — and submitted once the last page is answered.

use super::Bot;
use crate::chat::Form;
use crate::store::forms::{self, Draft};
use std::collections::BTreeMap;

/// Unfinished multi-step forms are forgotten after a day.
const DRAFT_TTL_MS: i64 = 24 * 3_600_000;

/// How a form is cut into pages: the field ids on each page, first page first.
pub type Pages = Vec<Vec<String>>;

/// What the person is shown next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The draft is gone (expired, or someone else's).
    Expired,
    /// Page `page` of the form, pre-filled with the answers so far.
    Page {
        form: Form,
        page: usize,
        saved: BTreeMap<String, String>,
    },
    /// Answers are wrong: each field's label and why, and the first page with a wrong one.
    Rejected {
        form: Form,
        errors: Vec<(String, String)>,
        first_bad: usize,
    },
    /// Page `page` of `pages` is saved; the next one follows.
    Saved { form: Form, page: usize, pages: usize },
    /// Every page is answered and checked: the form is submitted with these values.
    Complete {
        form: Form,
        values: BTreeMap<String, String>,
    },
}

/// Keeps a new draft of `form` for `user`; its id.
pub async fn start(bot: &Bot, platform: &str, user: &str, form: &Form) -> anyhow::Result<String> {
    let now = bot.now();
    let _ = forms::prune(&bot.store, now - DRAFT_TTL_MS).await;
    let id = format!("{:016x}", rand::random::<u64>());
    let draft = Draft {
        id: id.clone(),
        platform: platform.into(),
        user_id: user.into(),
        form: serde_json::to_string(form)?,
        answers: "{}".into(),
    };
    forms::create(&bot.store, &draft, now).await?;
    Ok(id)
}

/// The answers of page `page` (none: the person asked to see it), kept and checked.
pub async fn step(
    bot: &Bot,
    (platform, user): (&str, &str),
    draft_id: &str,
    (page, answers): (usize, Option<BTreeMap<String, String>>),
    layout: impl Fn(&Form) -> Pages,
) -> anyhow::Result<Step> {
    let draft = forms::get(&bot.store, draft_id)
        .await?
        .filter(|d| d.platform == platform && d.user_id == user);
    let Some(draft) = draft else {
        return Ok(Step::Expired);
    };
    let form: Form = serde_json::from_str(&draft.form)?;
    let mut saved: BTreeMap<String, String> = serde_json::from_str(&draft.answers)?;
    let pages = layout(&form);
    let page = page.min(pages.len());
    let Some(given) = answers else {
        // "Continue" or "Fix the answers": the page again, pre-filled.
        return Ok(Step::Page { form, page, saved });
    };
    saved.extend(given);
    forms::save_answers(&bot.store, draft_id, &serde_json::to_string(&saved)?).await?;
    // Empty optional inputs count as not given, as on Slack.
    let values: BTreeMap<String, String> = saved
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut errors = bot.precheck_form(&form.callback, &values).await?;
    if page < pages.len() {
        // The answers of this page and the earlier ones are checked now, not after the
        // last page: what is wrong comes back on the page it is on.
        let answered: Vec<&String> = pages[..page].iter().flatten().collect();
        errors.retain(|id, _| answered.contains(&id));
    }
    if !errors.is_empty() {
        let first_bad = pages
            .iter()
            .position(|ids| ids.iter().any(|id| errors.contains_key(id)))
            .map_or(1, |i| i + 1);
        let label = |id: &str| {
            form.fields
                .iter()
                .find(|f| f.id == id)
                .map_or_else(|| id.to_string(), |f| f.label.clone())
        };
        let errors = errors.into_iter().map(|(id, e)| (label(&id), e)).collect();
        return Ok(Step::Rejected {
            form,
            errors,
            first_bad,
        });
    }
    if page < pages.len() {
        return Ok(Step::Saved {
            form,
            page,
            pages: pages.len(),
        });
    }
    Ok(Step::Complete { form, values })
}

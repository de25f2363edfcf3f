//! Every kind of message as Discord and DingTalk receive it, in both locales: a whole
//! release (help, the form, each stage, the live progress, the alert of a failing
//! canary and its rollback, the report, QC, show, the role list), snapshotted with
//! `insta`. Each message appears once, in its final form.

mod common;

use common::platforms::{approve_every_stage, everywhere_config, settle, DingTalk, Discord, Platform, Who};
use common::*;
use serde_json::{json, Value};

async fn scenario(p: &dyn Platform, locale: &str) -> TestBot {
    let config = format!("{}\n[sim]\nnew_error_rate = 8.0\n", everywhere_config());
    let bot = TestBot::with(locale, &config).await;
    p.command(&bot, Who::Alice, "/release help").await;
    p.submit_release(&bot, Who::Alice, &valid_release(MD5)).await;
    settle(&bot, p, 0).await;
    approve_every_stage(&bot, p).await;
    // Two people's answers are independent deliveries: one after the other, for a stable order.
    p.command(&bot, Who::Alice, "/release show REL-1").await;
    bot.settle().await;
    p.command(&bot, Who::Ada, "/role list").await;
    bot.settle().await;
    bot
}

/// Keeps the final version of each message, in order of first appearance.
fn finals(items: Vec<(String, Value)>) -> Vec<Value> {
    let mut order: Vec<String> = Vec::new();
    let mut last = std::collections::HashMap::new();
    for (id, v) in items {
        if !last.contains_key(&id) {
            order.push(id.clone());
        }
        last.insert(id, v);
    }
    order
        .into_iter()
        .map(|id| last.remove(&id).unwrap_or(Value::Null))
        .collect()
}

async fn discord_transcript(locale: &str) -> Vec<Value> {
    let d = Discord::default();
    let bot = scenario(&d, locale).await;
    let mut items = Vec::new();
    for (i, r) in d.responses.lock().unwrap().iter().enumerate() {
        items.push((format!("response-{i}"), json!({ "interaction_response": r })));
    }
    let mut posted = std::collections::HashMap::new();
    for (i, c) in bot.discord.calls().iter().enumerate() {
        match c.route.as_str() {
            "send_message" if c.response.is_object() => {
                let id = c.response["id"].as_str().unwrap().to_string();
                posted.insert(id.clone(), ());
                items.push((id, json!({ "message": snapshot_body(&c.body) })));
            }
            "edit_message" => items.push((c.message.clone(), json!({ "message": c.body }))),
            "followup" => items.push((format!("followup-{i}"), json!({ "followup": c.body }))),
            _ => {}
        }
    }
    redact_drafts(finals(items))
}

/// Draft ids are random: `form:0123456789abcdef:2` becomes `form:DRAFT:2`.
fn redact_drafts(v: Vec<Value>) -> Vec<Value> {
    let text = serde_json::to_string(&v).unwrap();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find("form:") {
        out.push_str(&rest[..i + 5]);
        rest = &rest[i + 5..];
        let hex = rest.chars().take_while(|c| c.is_ascii_hexdigit()).count();
        if hex == 16 {
            out.push_str("DRAFT");
            rest = &rest[16..];
        }
    }
    out.push_str(rest);
    serde_json::from_str(&out).unwrap()
}

async fn dingtalk_transcript(locale: &str) -> Vec<Value> {
    let t = DingTalk::default();
    let bot = scenario(&t, locale).await;
    let mut items = Vec::new();
    for (i, c) in bot.dingtalk.calls().iter().enumerate() {
        if c.status != 200 {
            continue;
        }
        match c.route.as_str() {
            "card_create" | "card_update" => {
                let id = c.body["outTrackId"].as_str().unwrap().to_string();
                items.push((id, json!({ "card": c.body["cardData"]["cardParamMap"] })));
            }
            "group_send" | "direct_send" => {
                let param: Value = serde_json::from_str(c.body["msgParam"].as_str().unwrap()).unwrap();
                items.push((format!("robot-{i}"), json!({ c.route.clone(): param })));
            }
            _ => {}
        }
    }
    finals(items)
}

#[tokio::test]
async fn discord_messages_in_english() {
    insta::assert_json_snapshot!("discord_en", discord_transcript("en").await);
}

#[tokio::test]
async fn discord_messages_in_chinese() {
    insta::assert_json_snapshot!("discord_zh", discord_transcript("zh-CN").await);
}

#[tokio::test]
async fn dingtalk_messages_in_english() {
    insta::assert_json_snapshot!("dingtalk_en", dingtalk_transcript("en").await);
}

#[tokio::test]
async fn dingtalk_messages_in_chinese() {
    insta::assert_json_snapshot!("dingtalk_zh", dingtalk_transcript("zh-CN").await);
}

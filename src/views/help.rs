//! Help texts and the answers to a command that could not be read.

use crate::chat::{Message, Texts};
use crate::command::{CommandError, Verb};
use serde_json::json;

/// The help of a command; `service` is the default service's name. DingTalk has no
/// slash commands: there the usages go without the slash, after @-mentioning the robot.
pub fn help(texts: &Texts, command: &str, service: &str, platform: &str) -> anyhow::Result<Message> {
    let dingtalk = platform == crate::chat::dingtalk::PLATFORM;
    let mut lines = Vec::new();
    for v in Verb::ALL.into_iter().filter(|v| v.command() == command) {
        let usage = if dingtalk {
            v.usage().trim_start_matches('/')
        } else {
            v.usage()
        };
        lines.push(texts.render(
            "help_line",
            &json!({ "usage": usage, "text": texts.render(v.help_key(), &json!({ "service": service }))? }),
        )?);
    }
    Ok(Message {
        title: texts.render("help_title", &json!({ "command": command, "slash": !dingtalk }))?,
        body: Some(lines.join("\n")),
        context: dingtalk.then(|| texts.plain("help_dingtalk_hint")).transpose()?,
        ..Default::default()
    })
}

pub fn command_error(texts: &Texts, e: &CommandError) -> anyhow::Result<Message> {
    let (command, word) = match &e.problem {
        crate::command::Problem::UnknownVerb { command, word } => (command.clone(), word.clone()),
        p => (
            e.verb
                .map(|v| v.command().to_string())
                .unwrap_or_else(|| "release".into()),
            p.word().to_string(),
        ),
    };
    let title = texts.render(
        &format!("usage_{}", e.problem.code()),
        &json!({ "word": word, "command": command }),
    )?;
    let context = match e.verb {
        Some(v) => texts.render("usage_line", &json!({ "usage": v.usage() }))?,
        None => texts.render("usage_see_help", &json!({ "command": command }))?,
    };
    Ok(Message {
        title,
        context: Some(context),
        ..Default::default()
    })
}

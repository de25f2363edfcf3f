//! Words of a command line: quoting, `key=value` pairs and mentions.

use super::Problem;
use crate::domain::Actor;
use std::collections::BTreeMap;

pub use crate::domain::actor::PLATFORMS;

/// Parses a neutral mention token `<@platform:user>`, or an explicit `platform:user-id`
/// (to name someone on another platform) whose id has the shape its platform issues.
pub fn parse_mention(token: &str) -> Result<Actor, Problem> {
    let inner = token
        .strip_prefix("<@")
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(token);
    let Some(actor) = Actor::parse(inner).filter(|a| PLATFORMS.contains(&a.platform.as_str())) else {
        return Err(Problem::NotAMention(token.to_string()));
    };
    if !actor.is_well_formed() {
        return Err(Problem::BadUserId(token.to_string()));
    }
    Ok(actor)
}

/// Splits a command line into words; double quotes group words (`notes="two words"`).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in text.chars() {
        match c {
            '"' | '“' | '”' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// `field=value` (field: letters, digits, `_`, `-`, `.`).
pub(super) fn key_value(word: &str) -> Option<(String, String)> {
    let (k, v) = word.split_once('=')?;
    let ok = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    ok.then(|| (k.to_ascii_lowercase(), v.to_string()))
}

/// Separates `field=value` words from the others.
pub(super) fn split_values(rest: &[String]) -> (Vec<String>, BTreeMap<String, String>) {
    let mut plain = Vec::new();
    let mut values = BTreeMap::new();
    for w in rest {
        match key_value(w) {
            Some((k, v)) => {
                values.insert(k, v);
            }
            None => plain.push(w.clone()),
        }
    }
    (plain, values)
}

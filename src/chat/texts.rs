//! All user-facing wording: handlebars templates from `messages/<locale>/<key>.hbs`,
//! compiled into the binary, registered once, rendered in strict mode.

use anyhow::Context;
use handlebars::Handlebars;
use include_dir::{include_dir, Dir};
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;

static MESSAGES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/messages");

pub const LOCALES: &[&str] = &["en", "zh-CN"];

/// User text for a neutral message: every character a platform's markup could read
/// (`<`, `&`, `*`, `_`, `` ` ``, `[`, `]`, `~`, `|`, `#`, `\\`) as an entity, which each
/// renderer turns back into its own literal form (see [`crate::chat::markdown`]).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let entity = c
            .is_ascii_punctuation()
            .then(|| crate::chat::markdown::ENTITIES.iter().find(|(_, ch)| *ch == c))
            .flatten();
        match entity {
            Some((entity, _)) => out.push_str(entity),
            None => out.push(c),
        }
    }
    out
}

/// A duration in words (`1 h 5 min`), localized.
pub fn duration(texts: &Texts, secs: u64) -> anyhow::Result<String> {
    texts.render(
        "duration",
        &serde_json::json!({ "h": secs / 3600, "m": secs % 3600 / 60, "s": secs % 60, "zero": secs == 0 }),
    )
}

#[derive(Clone)]
pub struct Texts {
    hb: Arc<Handlebars<'static>>,
    locale: &'static str,
}

impl std::fmt::Debug for Texts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Texts").field("locale", &self.locale).finish()
    }
}

fn registry() -> anyhow::Result<Handlebars<'static>> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(escape);
    for locale in LOCALES {
        let dir = MESSAGES
            .get_dir(locale)
            .with_context(|| format!("messages/{locale} is missing"))?;
        for file in dir.files() {
            let path = file.path();
            if path.extension().and_then(|e| e.to_str()) != Some("hbs") {
                continue;
            }
            let stem = path.file_stem().and_then(|s| s.to_str()).context("template name")?;
            let text = file
                .contents_utf8()
                .with_context(|| format!("{} is not UTF-8", path.display()))?;
            // One trailing newline is the file's, not the message's.
            let text = text.strip_suffix('\n').unwrap_or(text);
            hb.register_template_string(&format!("{locale}/{stem}"), text)
                .with_context(|| format!("messages/{}", path.display()))?;
        }
    }
    Ok(hb)
}

fn keys(locale: &str) -> BTreeSet<String> {
    MESSAGES
        .get_dir(locale)
        .map(|d| {
            d.files()
                .filter_map(|f| f.path().file_stem().and_then(|s| s.to_str()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Texts {
    pub fn new(locale: &str) -> anyhow::Result<Self> {
        let locale = LOCALES
            .iter()
            .find(|l| l.eq_ignore_ascii_case(locale))
            .copied()
            .with_context(|| format!("unknown locale \"{locale}\" (expected one of {})", LOCALES.join(", ")))?;
        Ok(Self {
            hb: Arc::new(registry()?),
            locale,
        })
    }

    pub fn locale(&self) -> &'static str {
        self.locale
    }

    /// The same templates in another locale.
    pub fn with_locale(&self, locale: &str) -> anyhow::Result<Self> {
        let locale = LOCALES
            .iter()
            .find(|l| **l == locale)
            .copied()
            .with_context(|| format!("unknown locale {locale}"))?;
        Ok(Self {
            hb: self.hb.clone(),
            locale,
        })
    }

    pub fn render<T: Serialize>(&self, key: &str, data: &T) -> anyhow::Result<String> {
        let mut text = self
            .hb
            .render(&format!("{}/{key}", self.locale), data)
            .with_context(|| format!("rendering messages/{}/{key}.hbs", self.locale))?;
        // Handlebars writes into an 8 KiB buffer; texts are kept (progress lines, queued
        // messages), mostly a few dozen bytes long.
        text.shrink_to_fit();
        Ok(text)
    }

    /// A template without variables.
    pub fn plain(&self, key: &str) -> anyhow::Result<String> {
        self.render(key, &serde_json::json!({}))
    }

    /// Problems with the message catalogue: a key present in one locale only.
    pub fn check() -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = registry() {
            problems.push(format!("{e:#}"));
        }
        let base = keys(LOCALES[0]);
        for locale in &LOCALES[1..] {
            let other = keys(locale);
            for k in base.difference(&other) {
                problems.push(format!(
                    "messages/{locale}/{k}.hbs is missing (present in {})",
                    LOCALES[0]
                ));
            }
            for k in other.difference(&base) {
                problems.push(format!(
                    "messages/{}/{k}.hbs is missing (present in {locale})",
                    LOCALES[0]
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chinese_catalogue_uses_one_term_per_concept() {
        // A ticket is 单据 (never 工单); a stage is 环节 (never 阶段).
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("messages/zh-CN");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for other in ["工单", "阶段"] {
                assert!(!text.contains(other), "{}: {other}", path.display());
            }
        }
    }

    #[test]
    fn every_locale_has_every_message() {
        assert_eq!(Texts::check(), Vec::<String>::new());
    }

    #[test]
    fn escaping_keeps_markup_out() {
        assert_eq!(escape("<!channel> & co"), "&lt;!channel&gt; &amp; co");
        assert_eq!(
            escape("**x** [a](b) #1 a_b `c` ~d~ |e| \\"),
            "&#42;&#42;x&#42;&#42; &#91;a&#93;(b) &#35;1 a&#95;b &#96;c&#96; &#126;d&#126; &#124;e&#124; &#92;"
        );
    }

    #[test]
    fn unknown_locale_is_refused() {
        assert!(Texts::new("fr").is_err());
        assert_eq!(Texts::new("zh-cn").unwrap().locale(), "zh-CN");
    }
}

//! The neutral message model as HTML: the local chat's renderer, also used by the
//! release and ticket pages. Everything from a message is escaped here, whatever the
//! neutral text's own escaping, so that no text can become markup.

use crate::chat::{Button, ButtonStyle, Form, InputKind, Message};
use std::collections::BTreeMap;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How a person is shown: the local chat's demo users by their role's name, others by id.
pub fn person(platform: &str, user: &str) -> String {
    if platform == super::PLATFORM {
        super::display_name(user)
    } else {
        format!("{user} ({platform})")
    }
}

/// Neutral text (`*bold*`, `` `code` ``, code blocks, `<url|label>`, `<@platform:user>`,
/// entity-escaped user text) as HTML.
pub fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_block = false;
    for (n, line) in text.split('\n').enumerate() {
        if line.trim_start().starts_with("```") {
            out.push_str(if in_block { "</pre>" } else { "<pre>" });
            in_block = !in_block;
            continue;
        }
        if n > 0 && !out.ends_with("<pre>") {
            out.push_str(if in_block { "\n" } else { "<br>" });
        }
        if in_block {
            out.push_str(&esc(&crate::chat::markdown::unescape(line)));
        } else {
            out.push_str(&line_html(line));
        }
    }
    if in_block {
        out.push_str("</pre>");
    }
    out
}

/// One line: tokens `<…>` become mentions and links; the rest is escaped, then styled.
fn line_html(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('<') {
        out.push_str(&styled(&rest[..start]));
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else {
            out.push_str(&styled(&rest[start..]));
            return out;
        };
        let inner = &after[..end];
        if let Some((platform, user)) = inner.strip_prefix('@').and_then(|m| m.split_once(':')) {
            out.push_str(&format!(
                "<span class=\"mention\">@{}</span>",
                esc(&person(platform, user))
            ));
        } else if let Some((url, label)) = inner.split_once('|').filter(|(u, _)| safe_url(u)) {
            out.push_str(&format!(
                "<a href=\"{}\">{}</a>",
                esc(&crate::chat::markdown::unescape(url)),
                esc(&crate::chat::markdown::unescape(label))
            ));
        } else if safe_url(inner) {
            let url = esc(&crate::chat::markdown::unescape(inner));
            out.push_str(&format!("<a href=\"{url}\">{url}</a>"));
        } else {
            out.push_str(&styled(&format!("<{inner}>")));
        }
        rest = &after[end + 1..];
    }
    out.push_str(&styled(rest));
    out
}

fn safe_url(u: &str) -> bool {
    u.starts_with("http://") || u.starts_with("https://") || u.starts_with('/')
}

/// Neutral text as HTML with `*bold*` and `` `code` `` (markers that pair up on the line;
/// user text's own `*` and `` ` `` are entities until the markers are found).
fn styled(s: &str) -> String {
    let text = |t: &str| esc(&crate::chat::markdown::unescape(t));
    let code: Vec<&str> = s.split('`').collect();
    let mut out = String::with_capacity(s.len());
    let pairs = code.len() % 2 == 1;
    for (i, part) in code.iter().enumerate() {
        if i % 2 == 1 && pairs {
            out.push_str("<code>");
            out.push_str(&text(part));
            out.push_str("</code>");
        } else {
            if i > 0 && !pairs {
                out.push('`');
            }
            let parts: Vec<&str> = part.split('*').collect();
            let paired = parts.len() >= 3 && parts.len() % 2 == 1;
            for (j, p) in parts.iter().enumerate() {
                if j > 0 {
                    out.push_str(match (paired, j % 2 == 1) {
                        (false, _) => "*",
                        (true, true) => "<b>",
                        (true, false) => "</b>",
                    });
                }
                out.push_str(&text(p));
            }
        }
    }
    out
}

/// The text of a message without markup (the demo's transcript, page titles).
pub fn plain(text: &str) -> String {
    crate::chat::markdown::to_markdown(text, crate::chat::markdown::Flavor::Plain, &|p, u| {
        format!("@{}", person(p, u))
    })
}

/// A message's fields, each a `<div><dt>label</dt><dd>value</dd></div>`.
pub fn fields(m: &Message) -> String {
    m.fields
        .iter()
        .map(|f| format!("<div><dt>{}</dt><dd>{}</dd></div>", inline(&f.label), inline(&f.value)))
        .collect()
}

/// A message's content (title, fields, body, context), without its buttons.
pub fn content(m: &Message) -> String {
    let mut out = format!("<div class=\"title\">{}</div>", inline(&m.title));
    if !m.fields.is_empty() {
        out.push_str("<dl class=\"fields\">");
        for f in &m.fields {
            out.push_str(&format!(
                "<div><dt>{}</dt><dd>{}</dd></div>",
                inline(&f.label),
                inline(&f.value)
            ));
        }
        out.push_str("</dl>");
    }
    if let Some(b) = &m.body {
        out.push_str(&format!("<div class=\"body\">{}</div>", inline(b)));
    }
    if let Some(c) = &m.context_with_link() {
        out.push_str(&format!("<div class=\"context\">{}</div>", inline(c)));
    }
    out
}

fn button(b: &Button, id: i64, version: i64) -> String {
    let class = match b.style {
        ButtonStyle::Primary => "primary",
        ButtonStyle::Danger => "danger",
        ButtonStyle::Default => "default",
    };
    let confirm = b
        .confirm
        .as_ref()
        .map(|c| {
            format!(
                " data-confirm-title=\"{}\" data-confirm-text=\"{}\" data-confirm-ok=\"{}\" data-confirm-cancel=\"{}\"",
                esc(&plain(&c.title)),
                esc(&plain(&c.text)),
                esc(&plain(&c.ok)),
                esc(&plain(&c.cancel))
            )
        })
        .unwrap_or_default();
    format!(
        "<button type=\"button\" class=\"{class}\" data-action=\"{}\" data-message=\"{id}\" data-version=\"{version}\"{confirm}>{}</button>",
        esc(&b.action),
        esc(&plain(&b.label))
    )
}

/// A message as the chat shows it: `id` and `version` go with its buttons' presses.
pub fn message(m: &Message, id: i64, version: i64, ephemeral: Option<&str>, reply: bool) -> String {
    let mut classes = String::from("message");
    if ephemeral.is_some() {
        classes.push_str(" ephemeral");
    }
    if reply {
        classes.push_str(" reply");
    }
    let mut out = format!("<article class=\"{classes}\" id=\"m{id}\" data-version=\"{version}\">");
    if let Some(note) = ephemeral {
        out.push_str(&format!("<div class=\"only-you\">{}</div>", esc(note)));
    }
    out.push_str(&content(m));
    if !m.buttons.is_empty() {
        out.push_str("<div class=\"buttons\">");
        for b in &m.buttons {
            out.push_str(&button(b, id, version));
        }
        out.push_str("</div>");
    }
    out.push_str("</article>");
    out
}

/// A form as a dialog, with `errors` next to their fields and `values` kept.
pub fn form(f: &Form, id: &str, values: &BTreeMap<String, String>, errors: &BTreeMap<String, String>) -> String {
    let mut out = format!(
        "<form class=\"modal\" id=\"form\" data-form=\"{}\" novalidate><h2>{}</h2>",
        esc(id),
        inline(&f.title)
    );
    if let Some(intro) = &f.intro {
        out.push_str(&format!("<p class=\"intro\">{}</p>", inline(intro)));
    }
    for field in &f.fields {
        let name = esc(&field.id);
        let value = values
            .get(&field.id)
            .or(field.initial.as_ref())
            .cloned()
            .unwrap_or_default();
        let required = if field.required { " required" } else { "" };
        let invalid = errors.contains_key(&field.id);
        let aria = if invalid { " aria-invalid=\"true\"" } else { "" };
        out.push_str(&format!(
            "<label class=\"field{}\" for=\"f-{name}\"><span>{}{}</span>",
            if invalid { " invalid" } else { "" },
            inline(&field.label),
            if field.required { " *" } else { "" }
        ));
        match &field.input {
            InputKind::Text => out.push_str(&format!(
                "<input id=\"f-{name}\" name=\"{name}\" value=\"{}\"{required}{aria}>",
                esc(&value)
            )),
            InputKind::Multiline => out.push_str(&format!(
                "<textarea id=\"f-{name}\" name=\"{name}\" rows=\"3\"{required}{aria}>{}</textarea>",
                esc(&value)
            )),
            InputKind::Select { options } => {
                out.push_str(&format!("<select id=\"f-{name}\" name=\"{name}\"{required}{aria}>"));
                if !field.required || value.is_empty() {
                    out.push_str("<option value=\"\"></option>");
                }
                for o in options {
                    let sel = if *o == value { " selected" } else { "" };
                    out.push_str(&format!("<option value=\"{}\"{sel}>{}</option>", esc(o), esc(o)));
                }
                out.push_str("</select>");
            }
        }
        if let Some(h) = &field.hint {
            out.push_str(&format!("<small class=\"hint\">{}</small>", inline(h)));
        }
        out.push_str(&format!(
            "<small class=\"error\" id=\"e-{name}\">{}</small></label>",
            errors.get(&field.id).map(|e| inline(e)).unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "<div class=\"buttons\"><button type=\"button\" class=\"default\" data-dismiss>{}</button><button type=\"submit\" class=\"primary\">{}</button></div></form>",
        esc(&plain(&f.cancel)),
        esc(&plain(&f.submit))
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_in_a_message_becomes_markup() {
        assert_eq!(
            inline("*REL-1* by <@local:ops> &lt;script&gt; `x&lt;y` <https://e.x/?a=1&b=2|page>"),
            "<b>REL-1</b> by <span class=\"mention\">@Ops</span> &lt;script&gt; <code>x&lt;y</code> <a href=\"https://e.x/?a=1&amp;b=2\">page</a>"
        );
        assert_eq!(inline("<javascript:alert(1)|x>"), "&lt;javascript:alert(1)|x&gt;");
        assert_eq!(inline("a\n```\n<b>\n```"), "a<pre>&lt;b&gt;</pre>");
        assert_eq!(inline("\"q\" 'a'"), "&quot;q&quot; &#39;a&#39;");
        // What a person typed keeps its asterisks and backticks.
        let typed = crate::chat::texts::escape("*not bold* `not code`");
        assert_eq!(
            inline(&format!("*Notes*: {typed}")),
            "<b>Notes</b>: *not bold* `not code`"
        );
    }
}

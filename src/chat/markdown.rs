//! Neutral message text (Slack-flavoured: `*bold*`, `<url|label>`, `<@platform:user>`
//! mentions, user text entity-escaped by [`crate::chat::texts::escape`]) to each
//! platform's markup.
//!
//! User text reaches a message only through `escape`, which turns every character that a
//! markup could read (`*` is `&#42;`) into an entity. So markup and user text stay apart
//! in neutral text, and each platform gets user text in its own literal form:
//! - Discord and DingTalk: backslash escapes (both read CommonMark escapes); DingTalk's
//!   markdown also reads HTML (`<font>`), so `<`, `>` and `&` stay entities there;
//! - Slack, which has no escapes: `*`, `_`, `~` and `` ` `` as the fallback text of an
//!   invalid date token (`<!date^00000000^{_}|*>`), which Slack always shows as plain text;
//! - plain text (notification titles, transcripts): as is.
//!
//! Code (spans and fenced blocks) shows its text as is on every platform, and so do web
//! addresses in user text (an escape inside one would break the link).

/// What a converted text is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Text without markup: notification titles, transcripts, page titles.
    Plain,
    /// Slack mrkdwn (`*bold*`, `<url|label>`).
    Slack,
    /// Discord markdown (no HTML).
    Discord,
    /// DingTalk markdown (CommonMark with HTML).
    DingTalk,
}

/// The entities of escaped user text and the characters they stand for.
pub const ENTITIES: &[(&str, char)] = &[
    ("&lt;", '<'),
    ("&gt;", '>'),
    ("&#42;", '*'),
    ("&#95;", '_'),
    ("&#96;", '`'),
    ("&#91;", '['),
    ("&#93;", ']'),
    ("&#126;", '~'),
    ("&#124;", '|'),
    ("&#35;", '#'),
    ("&#92;", '\\'),
    ("&amp;", '&'),
];

/// Converts neutral text; `mention(platform, user)` renders each mention token.
pub fn to_markdown(text: &str, flavor: Flavor, mention: &dyn Fn(&str, &str) -> String) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut fenced = false;
    for (n, line) in text.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push_str(line);
            continue;
        }
        if fenced {
            out.push_str(&literal(line, flavor));
            continue;
        }
        let spans: Vec<&str> = line.split('`').collect();
        let code = |i: usize| i % 2 == 1 && spans.len() % 2 == 1;
        // `*bold*`: asterisks outside code that pair up on the line.
        let stars: usize = (0..spans.len())
            .filter(|i| !code(*i))
            .map(|i| spans[i].matches('*').count())
            .sum();
        let bold = stars >= 2 && stars.is_multiple_of(2);
        for (i, span) in spans.iter().enumerate() {
            if i > 0 {
                out.push('`');
            }
            if code(i) {
                out.push_str(&literal(span, flavor));
            } else {
                out.push_str(&inline(span, flavor, bold, mention));
            }
        }
    }
    out
}

/// Text outside code: mention and link tokens, bold markers, user text decoded.
fn inline(s: &str, flavor: Flavor, bold: bool, mention: &dyn Fn(&str, &str) -> String) -> String {
    let marker = match (bold, flavor) {
        (false, _) | (true, Flavor::Slack) => "*",
        (true, Flavor::Plain) => "",
        (true, _) => "**",
    };
    let text = |t: &str| t.split('*').map(|p| decode(p, flavor)).collect::<Vec<_>>().join(marker);
    let mut out = String::with_capacity(s.len() + 8);
    let mut rest = s;
    while let Some(start) = rest.find('<') {
        out.push_str(&text(&rest[..start]));
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else {
            out.push_str(&text(&rest[start..]));
            return out;
        };
        let inner = &after[..end];
        if let Some((platform, user)) = inner.strip_prefix('@').and_then(|m| m.split_once(':')) {
            out.push_str(&mention(platform, user));
        } else if let Some((url, label)) = inner.split_once('|') {
            let label = literal(label, flavor);
            match flavor {
                Flavor::Plain => out.push_str(&label),
                Flavor::Slack => out.push_str(&format!("<{}|{label}>", literal(url, flavor))),
                _ => out.push_str(&format!("[{label}]({})", unescape(url))),
            }
        } else if inner.starts_with("http") {
            match flavor {
                Flavor::Slack => out.push_str(&format!("<{}>", literal(inner, flavor))),
                _ => out.push_str(&unescape(inner)),
            }
        } else if flavor == Flavor::Slack {
            // Slack's own tokens (`<!here>`) are written by us, never by users.
            out.push_str(&format!("<{inner}>"));
        } else {
            out.push_str(&text(&format!("<{inner}>")));
        }
        rest = &after[end + 1..];
    }
    out.push_str(&text(rest));
    out
}

/// Escaped user text in the flavor's literal form; web addresses are left whole.
fn decode(s: &str, flavor: Flavor) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_inclusive(char::is_whitespace) {
        if word.starts_with("http://") || word.starts_with("https://") {
            // No escapes inside an address; DingTalk still must not see a tag.
            out.push_str(&map_entities(word, |entity, c, out| match (c, flavor) {
                ('<' | '>', Flavor::DingTalk) | ('<' | '>' | '&', Flavor::Slack) => out.push_str(entity),
                (c, _) => out.push(c),
            }));
        } else if flavor == Flavor::Slack {
            out.push_str(&slack_word(word));
        } else {
            out.push_str(&map_entities(word, |entity, c, out| match (c, flavor) {
                (c, Flavor::Plain) => out.push(c),
                ('<' | '>' | '&', Flavor::DingTalk) => out.push_str(entity),
                // Discord reads no HTML; a `>` quotes only at the start of a line.
                ('<' | '>' | '&', _) => out.push(c),
                (c, _) => {
                    out.push('\\');
                    out.push(c);
                }
            }));
        }
    }
    out
}

/// A word of user text for Slack. Slack reads `*`, `_` and `~` as markup only at a word's
/// edge (`TRAFFIC_SHIFT` stays as it is), and `` ` `` anywhere.
fn slack_word(word: &str) -> String {
    let all = chars(word);
    let alnum = |j: usize| all.get(j).is_some_and(|(c, _)| c.is_alphanumeric());
    let mut out = String::with_capacity(word.len());
    for (j, (c, entity)) in all.iter().enumerate() {
        let inside = j > 0 && alnum(j - 1) && alnum(j + 1);
        match (c, entity) {
            ('`', Some(_)) => out.push_str("<!date^00000000^{_}|`>"),
            ('*' | '_' | '~', Some(_)) if !inside => out.push_str(&format!("<!date^00000000^{{_}}|{c}>")),
            ('<' | '>' | '&', Some(entity)) => out.push_str(entity),
            (c, _) => out.push(*c),
        }
    }
    out
}

/// Escaped user text where markup reads no escapes (code, links): as is, with only the
/// entities the platform decodes itself kept (Slack's `&amp;`, `&lt;`, `&gt;`).
fn literal(s: &str, flavor: Flavor) -> String {
    map_entities(s, |entity, c, out| match (c, flavor) {
        ('<' | '>' | '&', Flavor::Slack) => out.push_str(entity),
        (c, _) => out.push(c),
    })
}

/// Undoes the escaping of user text, for places that show text as is.
pub fn unescape(s: &str) -> String {
    map_entities(s, |_, c, out| out.push(c))
}

/// Form errors by field, for platforms that show them as plain text.
pub fn unescape_values(m: std::collections::BTreeMap<String, String>) -> std::collections::BTreeMap<String, String> {
    m.into_iter().map(|(k, v)| (k, unescape(&v))).collect()
}

/// The text with each entity of [`ENTITIES`] replaced by what `f` writes for it.
fn map_entities(s: &str, f: impl Fn(&'static str, char, &mut String)) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    for (c, entity) in chars(s) {
        match entity {
            Some(e) => f(e, c, &mut out),
            None => out.push(c),
        }
    }
    out
}

/// The characters of escaped text, each with the entity it was written as, if any.
fn chars(s: &str) -> Vec<(char, Option<&'static str>)> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        match ENTITIES.iter().find(|(e, _)| rest.starts_with(e)) {
            Some((e, ch)) => {
                out.push((*ch, Some(*e)));
                rest = &rest[e.len()..];
            }
            None => {
                out.push((c, None));
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::texts::escape;

    fn m(p: &str, u: &str) -> String {
        format!("@{u}({p})")
    }

    #[test]
    fn converts_bold_links_mentions_and_entities() {
        assert_eq!(
            to_markdown(
                "*REL-1* by <@discord:42> see <https://x.io|docs> &lt;b&gt; &amp;",
                Flavor::Discord,
                &m
            ),
            "**REL-1** by @42(discord) see [docs](https://x.io) <b> &"
        );
        assert_eq!(to_markdown("a * b", Flavor::Discord, &m), "a * b");
        assert_eq!(to_markdown("*a* and *b*", Flavor::Discord, &m), "**a** and **b**");
        assert_eq!(to_markdown("*a* `b*c` *d*", Flavor::Plain, &m), "a `b*c` d");
    }

    #[test]
    fn user_text_stays_text_on_every_platform() {
        let user = "**big** [click](https://evil.example) <font color=red>x</font> #1 a_b_ ~s~ `c` \\";
        let neutral = format!("*Note*: {}", escape(user));
        assert_eq!(
            to_markdown(&neutral, Flavor::Discord, &m),
            r"**Note**: \*\*big\*\* \[click\](https://evil.example) <font color=red>x</font> \#1 a\_b\_ \~s\~ \`c\` \\"
        );
        assert_eq!(
            to_markdown(&neutral, Flavor::DingTalk, &m),
            r"**Note**: \*\*big\*\* \[click\](https://evil.example) &lt;font color=red&gt;x&lt;/font&gt; \#1 a\_b\_ \~s\~ \`c\` \\"
        );
        let d = |c: char| format!("<!date^00000000^{{_}}|{c}>");
        assert_eq!(
            to_markdown(&neutral, Flavor::Slack, &m),
            format!(
                r"*Note*: {s}{s}big{s}{s} [click](https://evil.example) &lt;font color=red&gt;x&lt;/font&gt; #1 a_b{u} {t}s{t} {b}c{b} \",
                s = d('*'),
                u = d('_'),
                t = d('~'),
                b = d('`')
            )
        );
        assert_eq!(to_markdown(&neutral, Flavor::Plain, &m), format!("Note: {user}"));
        assert_eq!(unescape(&escape(user)), user);
    }

    proptest::proptest! {
        #[test]
        fn any_user_text_comes_out_as_typed(user in "\\PC{0,40}") {
            let neutral = format!("*Label*: {}", escape(&user));
            proptest::prop_assert_eq!(to_markdown(&neutral, Flavor::Plain, &m), format!("Label: {user}"));
            // DingTalk never sees a tag of the user's.
            let dingtalk = to_markdown(&neutral, Flavor::DingTalk, &m);
            proptest::prop_assert!(!dingtalk.contains('<'));
            // Markdown characters are escaped, and only the label is bold.
            let discord = to_markdown(&neutral, Flavor::Discord, &m);
            if !user.contains("http") {
                let unescaped = discord.char_indices().filter(|(i, c)| {
                    "*_[]`~|#".contains(*c) && !discord[..*i].ends_with('\\')
                });
                proptest::prop_assert_eq!(unescaped.count(), 4, "{}", discord);
            }
        }
    }

    #[test]
    fn code_and_web_addresses_are_shown_as_they_are() {
        // Markdown reads no escapes inside code, and an escape inside an address breaks it.
        let text = format!(
            "`{}`\n```\n{}\n```\nsee {}",
            escape("a_b <c>"),
            escape("x*y"),
            escape("https://repo.example.com/pay_ments.tgz?a=1&b=2 now_")
        );
        assert_eq!(
            to_markdown(&text, Flavor::DingTalk, &m),
            "`a_b <c>`\n```\nx*y\n```\nsee https://repo.example.com/pay_ments.tgz?a=1&b=2 now\\_"
        );
        assert_eq!(
            to_markdown(&text, Flavor::Slack, &m),
            "`a_b &lt;c&gt;`\n```\nx*y\n```\nsee https://repo.example.com/pay_ments.tgz?a=1&amp;b=2 now<!date^00000000^{_}|_>"
        );
    }
}
